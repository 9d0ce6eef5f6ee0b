#include "server/quant/quantizer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "absl/strings/str_cat.h"
#include "kernels/dequant_ref.h"
#include "kernels/grids.h"
#include "kernels/scale_codes.h"
#include "server/common/half.h"
#include "server/common/status_macros.h"
#include "server/common/thread_pool.h"
#include "server/quant/packing.h"

namespace slq::quant {
namespace {

// The fp16 (scale, zero) for a group whose range is shrunk by `a`.
void GroupParams(float lo, float hi, float absmax, int bits, bool symmetric, float a, uint16_t* s_bits,
                 uint16_t* z_bits) {
  if (symmetric) {
    const float half_levels = static_cast<float>((1 << (bits - 1)) - 1);
    *s_bits = FloatToHalf(a * absmax / half_levels);
    *z_bits = SymmetricZero(*s_bits, bits);
  } else {
    const float levels = static_cast<float>((1 << bits) - 1);
    *s_bits = FloatToHalf((a * hi - a * lo) / levels);
    *z_bits = FloatToHalf(a * lo);
  }
}

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void Fwht(float* v, int64_t n) {
  for (int64_t h = 1; h < n; h <<= 1) {
    for (int64_t i = 0; i < n; i += h << 1) {
      for (int64_t j = i; j < i + h; ++j) {
        const float a = v[j], b = v[j + h];
        v[j] = a + b;
        v[j + h] = a - b;
      }
    }
  }
}

}  // namespace

namespace {
// RTN of one group in S8 scales: FitGroupS8 on the uniform grid, then (grids) each non-uniform
// grid at the same (u, z), strictly better only; or, with mse_clip, grids and
// cfg.joint_clip_grid, one FitGroupS8 per grid (its own (u, z) and clip), the least error
// winning (ties: the lower grid). Returns the grid id.
int QuantizeGroupS8(const float* w, int64_t n, const QuantConfig& cfg, float base, uint8_t* codes, uint8_t* u,
                    uint8_t* z, uint16_t* s16, uint16_t* m16) {
  uint8_t zp = 0;
  const bool grids = cfg.grids && !cfg.symmetric;
  if (grids && cfg.mse_clip && cfg.joint_clip_grid) {
    return FitGroupS8BestGrid(w, nullptr, n, cfg.bits, false, true, true, base, u, z != nullptr ? z : &zp, s16, m16,
                              codes);
  }
  double best =
      FitGroupS8(w, nullptr, n, cfg.bits, cfg.symmetric, cfg.mse_clip, base, nullptr, u, &zp, s16, m16, codes);
  if (z != nullptr) *z = zp;
  int id = 0;
  if (!grids) return id;
  std::vector<uint8_t> trial(static_cast<size_t>(n));
  for (int k = 1; k < kernels::kGridCount; ++k) {
    const double err = EncodeGroup(w, nullptr, n, cfg.bits, HalfToFloat(*s16), HalfToFloat(*m16),
                                   kernels::GridLevels(cfg.bits, k), trial.data());
    if (err < best) {
      best = err;
      id = k;
      std::copy(trial.begin(), trial.end(), codes);
    }
  }
  return id;
}
}  // namespace

const char* RoundingName(Rounding r) {
  switch (r) {
    case Rounding::kRtn:
      return "rtn";
    case Rounding::kMse:
      return "mse";
    case Rounding::kGptq:
      return "gptq";
  }
  return "rtn";
}

double EncodeGroup(const float* w, const double* h, int64_t n, int bits, float s16, float m16, const float* levels,
                   uint8_t* codes) {
  double err = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    float v = 0.0f;
    const uint8_t q = NearestCode(w[i], s16, m16, bits, levels, &v);
    if (codes) codes[i] = q;
    const double d = static_cast<double>(w[i]) - static_cast<double>(v);
    err += (h ? h[i] : 1.0) * d * d;
  }
  return err;
}

const char* ScaleFormatName(ScaleFormat f) { return f == ScaleFormat::kS8 ? "s8" : "fp16"; }

float S8ScaleBase(const float* w, int64_t rows, int64_t cols, int64_t g, int bits, bool symmetric) {
  const float levels = symmetric ? static_cast<float>((1 << (bits - 1)) - 1) : static_cast<float>((1 << bits) - 1);
  float s_max = 0.0f;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j0 = 0; j0 < cols; j0 += g) {
      const float* x = w + r * cols + j0;
      const int64_t n = std::min(g, cols - j0);
      float lo = x[0], hi = x[0];
      for (int64_t i = 1; i < n; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
      }
      const float range = symmetric ? std::max(std::fabs(lo), std::fabs(hi)) : hi - lo;
      s_max = std::max(s_max, range / levels);
    }
  }
  return kernels::DefaultScaleBase(s_max);
}

double FitGroupS8(const float* w, const double* h, int64_t n, int bits, bool symmetric, bool mse_clip, float base,
                  const float* levels, uint8_t* u, uint8_t* z, uint16_t* s16, uint16_t* m16, uint8_t* codes) {
  float lo = w[0], hi = w[0];
  for (int64_t i = 1; i < n; ++i) {
    lo = std::min(lo, w[i]);
    hi = std::max(hi, w[i]);
  }
  const int qmax = (1 << bits) - 1;
  const float half_levels = static_cast<float>((1 << (bits - 1)) - 1);
  const float absmax = std::max(std::fabs(lo), std::fabs(hi));
  double best = std::numeric_limits<double>::infinity();
  std::vector<uint8_t> trial(codes != nullptr ? static_cast<size_t>(n) : 0);
  auto consider = [&](uint8_t cu, int cz) {
    const uint16_t cs = kernels::ScaleFromCode(base, cu);
    const uint16_t cm = symmetric ? SymmetricZero(cs, bits) : kernels::ZeroFromPoint(cs, cz);
    const double err =
        EncodeGroup(w, h, n, bits, HalfToFloat(cs), HalfToFloat(cm), levels, codes != nullptr ? trial.data() : nullptr);
    if (err < best) {
      best = err;
      *u = cu;
      *z = static_cast<uint8_t>(cz);
      *s16 = cs;
      *m16 = cm;
      if (codes != nullptr) std::copy(trial.begin(), trial.end(), codes);
    }
  };
  const int shrinks = mse_clip ? 10 : 1;
  for (int k = 0; k < shrinks; ++k) {
    const float a = 1.0f - 0.05f * static_cast<float>(k);
    const float step = symmetric ? a * absmax / half_levels : a * (hi - lo) / static_cast<float>(qmax);
    const int u0 = kernels::ScaleCodeAtLeast(base, step);
    for (int cu = std::max(0, u0 - 2); cu <= std::min(255, u0 + 1); ++cu) {
      if (symmetric) {
        consider(static_cast<uint8_t>(cu), 0);
        continue;
      }
      const float s = HalfToFloat(kernels::ScaleFromCode(base, static_cast<uint8_t>(cu)));
      const int z0 = s > 0.0f ? static_cast<int>(std::nearbyint(-a * lo / s)) : 0;
      for (int cz = std::max(0, z0 - 1); cz <= std::min(qmax, z0 + 1); ++cz) consider(static_cast<uint8_t>(cu), cz);
    }
  }
  return best;
}

int FitGroupS8BestGrid(const float* w, const double* h, int64_t n, int bits, bool symmetric, bool mse_clip, bool grids,
                       float base, uint8_t* u, uint8_t* z, uint16_t* s16, uint16_t* m16, uint8_t* codes) {
  std::vector<uint8_t> trial(codes != nullptr ? static_cast<size_t>(n) : 0);
  double best = 0.0;
  int best_id = 0;
  const int count = grids && !symmetric ? kernels::kGridCount : 1;
  for (int id = 0; id < count; ++id) {
    uint8_t ku = 0, kz = 0;
    uint16_t ks = 0, km = 0;
    const double e =
        FitGroupS8(w, h, n, bits, symmetric, mse_clip, base, id == 0 ? nullptr : kernels::GridLevels(bits, id), &ku,
                   &kz, &ks, &km, codes != nullptr ? trial.data() : nullptr);
    if (id == 0 || e < best) {
      best = e;
      best_id = id;
      *u = ku;
      *z = kz;
      *s16 = ks;
      *m16 = km;
      if (codes != nullptr) std::copy(trial.begin(), trial.end(), codes);
    }
  }
  return best_id;
}

std::string QuantConfig::Describe() const {
  return absl::StrCat("q", bits, " g", group_size, symmetric ? " sym" : " asym", mse_clip ? " clip" : "",
                      rotate ? " rot" : "", grids ? " grid" : "", scales == ScaleFormat::kS8 ? " s8" : "",
                      mse_clip && grids && !joint_clip_grid ? " seq" : "");
}

Rotation MakeRotation(int64_t cols, uint64_t seed) {
  Rotation r;
  r.seed = seed;
  r.block = 1;
  while (r.block < 1024 && cols % (r.block * 2) == 0) r.block *= 2;
  return r;
}

void ApplyRotation(const Rotation& rot, float* v, int64_t n, int64_t cols) {
  if (!rot.enabled()) return;
  const float norm = 1.0f / std::sqrt(static_cast<float>(rot.block));
  for (int64_t t = 0; t < n; ++t) {
    float* row = v + t * cols;
    for (int64_t j = 0; j < cols; ++j) {
      if (SplitMix(rot.seed ^ static_cast<uint64_t>(j) * 0x2545F4914F6CDD1DULL) & 1) row[j] = -row[j];
    }
    for (int64_t b = 0; b < cols; b += rot.block) Fwht(row + b, rot.block);
    for (int64_t j = 0; j < cols; ++j) row[j] *= norm;
  }
}

kernels::PackedMatrixView QuantizedMatrix::View() const {
  kernels::PackedMatrixView v;
  v.rows = rows;
  v.cols = cols;
  v.bits = bits;
  v.group_size = group_size;
  v.codes = codes.data();
  v.scales = scales.data();
  v.zeros = zeros.data();
  v.symmetric = symmetric;
  v.grid_ids = grid_ids.empty() ? nullptr : grid_ids.data();
  return v;
}

std::string QuantizedMatrix::Describe() const {
  return absl::StrCat("q", bits, " g", group_size, symmetric ? " sym" : " asym", mse_clip ? " clip" : "",
                      rotation.enabled() ? " rot" : "", has_grids() ? " grid" : "", has_scale_codes() ? " s8" : "",
                      rounding == Rounding::kRtn ? "" : absl::StrCat(" ", RoundingName(rounding)));
}

double QuantizedMatrix::BitsPerParam() const {
  return quant::BitsPerParam(bits, group_size, cols, symmetric, has_grids(), scale_format(), rows);
}

double BitsPerParam(int bits, int64_t group_size, int64_t cols, bool symmetric, bool grids, ScaleFormat scales,
                    int64_t rows) {
  if (cols <= 0) return bits;
  const int64_t g = group_size <= 0 ? cols : group_size;
  const bool s8 = scales == ScaleFormat::kS8;
  // scale (+ zero when asymmetric) (+ the grid index), per group
  const double scale_bits = s8 ? kernels::kScaleCodeBits : 16.0;
  const double zero_bits = symmetric ? 0.0 : (s8 ? bits : 16.0);
  const double overhead = scale_bits + zero_bits + (grids ? kernels::kGridIdBits : 0);
  double bpp = bits + overhead * static_cast<double>(kernels::GroupsPerRow(cols, g)) / static_cast<double>(cols);
  if (s8 && rows > 0) bpp += kernels::kScaleBaseBits / (static_cast<double>(rows) * static_cast<double>(cols));
  return bpp;
}

uint16_t SymmetricZero(uint16_t scale16, int bits) {
  const float half_levels = static_cast<float>((1 << (bits - 1)) - 1);
  return FloatToHalf(-HalfToFloat(scale16) * half_levels);
}

absl::StatusOr<int64_t> ResolveGroupSize(int bits, int64_t group_size, int64_t cols) {
  if (bits < 2 || bits > 8) {
    return absl::InvalidArgumentError(absl::StrCat("bits = ", bits, "; allowed 2..8"));
  }
  if (cols <= 0) return absl::InvalidArgumentError(absl::StrCat("cols = ", cols, "; must be > 0"));
  if (group_size == -1) return cols;
  if (group_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("group size = ", group_size, "; allowed 32, 64, 128 (any >= 1) or -1 (per row)"));
  }
  return std::min(group_size, cols);
}

void QuantizeGroup(const float* w, int64_t n, int bits, bool symmetric, bool mse_clip, uint8_t* codes,
                   uint16_t* scale16, uint16_t* zero16, bool grids, int* grid_id, bool joint) {
  if (grid_id != nullptr) *grid_id = 0;
  float lo = w[0], hi = w[0];
  for (int64_t i = 1; i < n; ++i) {
    lo = std::min(lo, w[i]);
    hi = std::max(hi, w[i]);
  }
  const float absmax = std::max(std::fabs(lo), std::fabs(hi));
  GroupParams(lo, hi, absmax, bits, symmetric, 1.0f, scale16, zero16);
  double best = EncodeGroup(w, nullptr, n, bits, HalfToFloat(*scale16), HalfToFloat(*zero16), nullptr, codes);
  std::vector<uint8_t> trial;
  if (mse_clip && grids && !symmetric && joint) {
    // Joint: every (shrink, grid) pair; strictly better only, in order of shrink then grid.
    trial.resize(static_cast<size_t>(n));
    for (int a_k = 0; a_k < 10; ++a_k) {
      uint16_t s, z;
      GroupParams(lo, hi, absmax, bits, symmetric, 1.0f - 0.05f * static_cast<float>(a_k), &s, &z);
      for (int k = a_k == 0 ? 1 : 0; k < kernels::kGridCount; ++k) {
        const double err = EncodeGroup(w, nullptr, n, bits, HalfToFloat(s), HalfToFloat(z),
                                       k == 0 ? nullptr : kernels::GridLevels(bits, k), trial.data());
        if (err < best) {
          best = err;
          *scale16 = s;
          *zero16 = z;
          if (grid_id != nullptr) *grid_id = k;
          std::copy(trial.begin(), trial.end(), codes);
        }
      }
    }
    return;
  }
  if (mse_clip) {
    trial.resize(static_cast<size_t>(n));
    for (int k = 1; k < 10; ++k) {
      const float a = 1.0f - 0.05f * static_cast<float>(k);
      uint16_t s, z;
      GroupParams(lo, hi, absmax, bits, symmetric, a, &s, &z);
      const double err = EncodeGroup(w, nullptr, n, bits, HalfToFloat(s), HalfToFloat(z), nullptr, trial.data());
      if (err < best) {
        best = err;
        *scale16 = s;
        *zero16 = z;
        std::copy(trial.begin(), trial.end(), codes);
      }
    }
  }
  if (!grids || symmetric) return;
  // Grid Games: the same (s, m), each non-uniform grid in turn; a grid replaces the current best
  // only when strictly better, so grid 0 (uniform) wins ties.
  trial.resize(static_cast<size_t>(n));
  const float s16 = HalfToFloat(*scale16), m16 = HalfToFloat(*zero16);
  for (int k = 1; k < kernels::kGridCount; ++k) {
    const double err = EncodeGroup(w, nullptr, n, bits, s16, m16, kernels::GridLevels(bits, k), trial.data());
    if (err < best) {
      best = err;
      if (grid_id != nullptr) *grid_id = k;
      std::copy(trial.begin(), trial.end(), codes);
    }
  }
}

absl::StatusOr<QuantizedMatrix> QuantizeMatrix(const float* w, int64_t rows, int64_t cols, const QuantConfig& cfg) {
  if (rows <= 0) return absl::InvalidArgumentError(absl::StrCat("rows = ", rows, "; must be > 0"));
  SLQ_ASSIGN_OR_RETURN(const int64_t g, ResolveGroupSize(cfg.bits, cfg.group_size, cols));
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(w[i])) {
      return absl::InvalidArgumentError(absl::StrCat("weight ", i, " is not finite (", w[i], ")"));
    }
  }
  QuantizedMatrix q;
  q.rows = rows;
  q.cols = cols;
  q.bits = cfg.bits;
  q.group_size = g;
  q.symmetric = cfg.symmetric;
  q.mse_clip = cfg.mse_clip;
  if (cfg.grids && cfg.symmetric) {
    return absl::InvalidArgumentError(
        "grids need asymmetric quantization (a grid's levels span a group's [min, max]); turn off symmetric "
        "or grids");
  }
  if (cfg.rotate) q.rotation = MakeRotation(cols, cfg.rotation_seed);
  const int64_t gpr = kernels::GroupsPerRow(cols, g);
  const int64_t wpr = kernels::WordsPerRow(cols, cfg.bits);
  q.codes.assign(static_cast<size_t>(rows * wpr), 0);
  q.scales.assign(static_cast<size_t>(rows * gpr), 0);
  q.zeros.assign(static_cast<size_t>(rows * gpr), 0);
  const int64_t id_words = kernels::WordsPerRow(gpr, kernels::kGridIdBits);
  if (cfg.grids) q.grid_ids.assign(static_cast<size_t>(rows * id_words), 0);
  const bool s8 = cfg.scales == ScaleFormat::kS8;
  if (s8) {
    if (q.rotation.enabled()) {
      return absl::InvalidArgumentError("s8 scales with a rotation are not supported; turn off rotate or s8");
    }
    q.scale_codes.assign(static_cast<size_t>(rows * gpr), 0);
    if (!cfg.symmetric) q.zero_points.assign(static_cast<size_t>(rows * gpr), 0);
    q.scale_base = S8ScaleBase(w, rows, cols, g, cfg.bits, cfg.symmetric);
  }
  ParallelFor(
      rows,
      [&](int64_t begin, int64_t end) {
        std::vector<float> row(static_cast<size_t>(cols));
        std::vector<uint8_t> codes(static_cast<size_t>(cols));
        std::vector<uint8_t> ids(static_cast<size_t>(gpr));
        for (int64_t r = begin; r < end; ++r) {
          std::copy(w + r * cols, w + (r + 1) * cols, row.begin());
          ApplyRotation(q.rotation, row.data(), 1, cols);
          for (int64_t k = 0; k < gpr; ++k) {
            const int64_t j0 = k * g, n = std::min(g, cols - j0);
            int id = 0;
            if (s8) {
              id =
                  QuantizeGroupS8(row.data() + j0, n, cfg, q.scale_base, codes.data() + j0, &q.scale_codes[r * gpr + k],
                                  q.zero_points.empty() ? nullptr : &q.zero_points[r * gpr + k], &q.scales[r * gpr + k],
                                  &q.zeros[r * gpr + k]);
            } else {
              QuantizeGroup(row.data() + j0, n, cfg.bits, cfg.symmetric, cfg.mse_clip, codes.data() + j0,
                            &q.scales[r * gpr + k], &q.zeros[r * gpr + k], cfg.grids, &id, cfg.joint_clip_grid);
            }
            ids[k] = static_cast<uint8_t>(id);
          }
          PackRow(codes.data(), cols, cfg.bits, q.codes.data() + r * wpr);
          if (cfg.grids) PackRow(ids.data(), gpr, kernels::kGridIdBits, q.grid_ids.data() + r * id_words);
        }
      },
      0, 16);
  return q;
}

namespace {

// Row r of the dequantized matrix into out[cols]; original_basis: R^T applied (rotation).
void DequantizeRow(const QuantizedMatrix& q, int64_t r, bool original_basis, float* out) {
  kernels::DequantRow(q.View(), r, out);  // the one slq-packed-v1 decoder
  if (!original_basis || !q.rotation.enabled()) return;
  // R = blockdiag(H D / sqrt(n)); R^T v = D H v / sqrt(n) (H symmetric, D diagonal).
  const float norm = 1.0f / std::sqrt(static_cast<float>(q.rotation.block));
  for (int64_t b = 0; b < q.cols; b += q.rotation.block) Fwht(out + b, q.rotation.block);
  for (int64_t j = 0; j < q.cols; ++j) {
    out[j] *= norm;
    if (SplitMix(q.rotation.seed ^ static_cast<uint64_t>(j) * 0x2545F4914F6CDD1DULL) & 1) out[j] = -out[j];
  }
}

std::vector<float> DequantizeAll(const QuantizedMatrix& q, bool original_basis) {
  std::vector<float> out(static_cast<size_t>(q.rows * q.cols));
  ParallelFor(
      q.rows,
      [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) DequantizeRow(q, r, original_basis, out.data() + r * q.cols);
      },
      0, std::max<int64_t>(1, 65536 / std::max<int64_t>(q.cols, 1)));
  return out;
}

}  // namespace

std::vector<float> Dequantize(const QuantizedMatrix& q) { return DequantizeAll(q, false); }

std::vector<float> DequantizeOriginalBasis(const QuantizedMatrix& q) { return DequantizeAll(q, true); }

double RelativeError(const float* w, const QuantizedMatrix& q) {
  const int64_t rows = q.rows, cols = q.cols;
  std::vector<double> num(static_cast<size_t>(rows)), den(static_cast<size_t>(rows));
  ParallelFor(
      rows,
      [&](int64_t begin, int64_t end) {
        std::vector<float> row(static_cast<size_t>(cols));
        for (int64_t r = begin; r < end; ++r) {
          DequantizeRow(q, r, true, row.data());
          double n = 0, d = 0;
          for (int64_t j = 0; j < cols; ++j) {
            const double x = w[r * cols + j], e = x - row[j];
            n += e * e;
            d += x * x;
          }
          num[r] = n;
          den[r] = d;
        }
      },
      0, std::max<int64_t>(1, 65536 / std::max<int64_t>(cols, 1)));
  double a = 0, b = 0;
  for (int64_t r = 0; r < rows; ++r) {
    a += num[r];
    b += den[r];
  }
  return b > 0.0 ? a / b : 0.0;
}

absl::StatusOr<double> RelativeQuantError(const float* w, int64_t rows, int64_t cols, const QuantConfig& cfg) {
  SLQ_ASSIGN_OR_RETURN(QuantizedMatrix q, QuantizeMatrix(w, rows, cols, cfg));
  return RelativeError(w, q);
}

}  // namespace slq::quant
