#include "server/quant/rounding.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kernels/grids.h"
#include "server/common/half.h"
#include "server/common/status_macros.h"
#include "server/common/thread_pool.h"
#include "server/quant/packing.h"
#include "server/spec/job_spec.h"

namespace slq::quant {
namespace {

// The grid (0..kGridCount-1) with the least sum_j h_j (w_j - w'_j)^2 for a group under fp16
// (s, m); ties keep the lower id (grid 0, uniform, first).
int BestGrid(const float* w, const double* h, int64_t n, int bits, float s, float m) {
  int best = 0;
  double best_err = -1;
  for (int id = 0; id < kernels::kGridCount; ++id) {
    const double e = EncodeGroup(w, h, n, bits, s, m, kernels::GridLevels(bits, id), nullptr);
    if (best_err < 0 || e < best_err) {
      best_err = e;
      best = id;
    }
  }
  return best;
}

// The activation-weighted MSE group: see rounding.h. With grids (asymmetric only) the grid is
// chosen jointly with the trimmed range: the least error over (trim, grid); *grid receives it.
void MseGroup(const float* w, const double* h, int64_t n, int bits, bool symmetric, bool grids, uint8_t* codes,
              uint16_t* s16, uint16_t* z16, uint8_t* grid, std::vector<uint8_t>& trial) {
  float lo = w[0], hi = w[0];
  for (int64_t i = 1; i < n; ++i) {
    lo = std::min(lo, w[i]);
    hi = std::max(hi, w[i]);
  }
  trial.resize(static_cast<size_t>(n));
  double best = -1;
  auto consider = [&](uint16_t s, uint16_t z, int id) {
    const float* lv = grids ? kernels::GridLevels(bits, id) : nullptr;
    const double e = EncodeGroup(w, h, n, bits, HalfToFloat(s), HalfToFloat(z), lv, trial.data());
    if (best < 0 || e < best) {
      best = e;
      *s16 = s;
      *z16 = z;
      *grid = static_cast<uint8_t>(id);
      std::copy(trial.begin(), trial.end(), codes);
    }
  };
  if (symmetric) {
    const float absmax = std::max(std::fabs(lo), std::fabs(hi));
    const float half_levels = static_cast<float>((1 << (bits - 1)) - 1);
    for (int k = 0; k <= 10; ++k) {
      const uint16_t s = FloatToHalf((1.0f - 0.04f * static_cast<float>(k)) * absmax / half_levels);
      consider(s, SymmetricZero(s, bits), 0);
    }
    return;
  }
  const float range = hi - lo, levels = static_cast<float>((1 << bits) - 1);
  for (int id = 0; id < (grids ? kernels::kGridCount : 1); ++id) {
    for (int a = 0; a <= 5; ++a) {
      for (int b = 0; b <= 5; ++b) {
        const float l = lo + 0.04f * static_cast<float>(a) * range, u = hi - 0.04f * static_cast<float>(b) * range;
        consider(FloatToHalf((u - l) / levels), FloatToHalf(l), id);
      }
    }
  }
}

// Packs per-group grid ids [rows, gpr] into q.grid_ids (the seam's layout).
void PackGridIds(const std::vector<uint8_t>& ids, int64_t gpr, QuantizedMatrix& q) {
  const int64_t words = kernels::WordsPerRow(gpr, kernels::kGridIdBits);
  q.grid_ids.assign(static_cast<size_t>(q.rows * words), 0);
  for (int64_t r = 0; r < q.rows; ++r) {
    PackRow(ids.data() + r * gpr, gpr, kernels::kGridIdBits, q.grid_ids.data() + r * words);
  }
}

// S8 scales (QuantConfig::scales == kS8): the (u, z) of one group of n values, h-weighted, on its
// best grid (quantizer.h FitGroupS8BestGrid); codes (when non-null) receive the winner's. Fills the
// group's slot of q's scale_codes / zero_points and the fp16 expansion in q.scales / q.zeros;
// returns the grid id.
int FitGroupS8Grids(const float* w, const double* h, int64_t n, bool grids, bool mse_clip, int64_t slot,
                    QuantizedMatrix& q, uint8_t* codes) {
  uint8_t z = 0;
  const int id = FitGroupS8BestGrid(w, h, n, q.bits, q.symmetric, mse_clip, grids, q.scale_base, &q.scale_codes[slot],
                                    &z, &q.scales[slot], &q.zeros[slot], codes);
  if (!q.zero_points.empty()) q.zero_points[slot] = z;
  return id;
}

// In place: lower Cholesky factor of the SPD matrix a [n, n] (upper part left as is). False if
// not positive definite.
bool CholeskyLower(std::vector<double>& a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double d = a[j * n + j];
    for (int64_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0.0)) return false;
    const double ljj = std::sqrt(d);
    a[j * n + j] = ljj;
    ParallelFor(
        n - j - 1,
        [&](int64_t b, int64_t e) {
          for (int64_t i = j + 1 + b; i < j + 1 + e; ++i) {
            double s = a[i * n + j];
            for (int64_t k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = s / ljj;
          }
        },
        0, 64);
  }
  return true;
}

// U with H^-1 = U^T U (upper triangular, row-major), from the dampened H; false if H (after
// dampening) is not positive definite.
bool InverseUpperFactor(std::vector<double> h, int64_t n, std::vector<double>* u) {
  if (!CholeskyLower(h, n)) return false;  // H = L L^T
  // Linv = L^-1 (lower), by forward substitution column by column.
  std::vector<double> linv(static_cast<size_t>(n * n), 0.0);
  ParallelFor(
      n,
      [&](int64_t b, int64_t e) {
        for (int64_t c = b; c < e; ++c) {
          for (int64_t i = c; i < n; ++i) {
            double s = i == c ? 1.0 : 0.0;
            for (int64_t k = c; k < i; ++k) s -= h[i * n + k] * linv[k * n + c];
            linv[i * n + c] = s / h[i * n + i];
          }
        }
      },
      0, 8);
  // H^-1 = Linv^T Linv.
  std::vector<double> hinv(static_cast<size_t>(n * n));
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(n), static_cast<int>(n), static_cast<int>(n),
              1.0, linv.data(), static_cast<int>(n), linv.data(), static_cast<int>(n), 0.0, hinv.data(),
              static_cast<int>(n));
  if (!CholeskyLower(hinv, n)) return false;  // H^-1 = M M^T, U = M^T
  u->assign(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i; j < n; ++j) (*u)[i * n + j] = hinv[j * n + i];
  }
  return true;
}

// The column order GPTQ rounds in: natural, or (act-order) by descending diag(H), stable.
std::vector<int64_t> ColumnOrder(const std::vector<double>& h, int64_t cols, bool act_order) {
  std::vector<int64_t> perm(static_cast<size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  if (act_order) {
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return h[a * cols + a] > h[b * cols + b]; });
  }
  return perm;
}

absl::Status Gptq(const float* w, const QuantConfig& cfg, const InputGram& gram, const GptqOptions& opt,
                  QuantizedMatrix& q) {
  const int64_t rows = q.rows, cols = q.cols, g = q.group_size;
  std::vector<double> h0 = gram.h;
  std::vector<double> w0(w, w + rows * cols);
  double mean_diag = 0;
  for (int64_t i = 0; i < cols; ++i) mean_diag += h0[i * cols + i];
  mean_diag /= static_cast<double>(cols);
  if (!(mean_diag > 0)) mean_diag = 1.0;
  for (int64_t i = 0; i < cols; ++i) {
    if (h0[i * cols + i] == 0.0) {  // a dead input: its weight never matters
      h0[i * cols + i] = 1.0;
      for (int64_t r = 0; r < rows; ++r) w0[r * cols + i] = 0.0;
    }
  }
  const int64_t gpr = kernels::GroupsPerRow(cols, g), wpr = kernels::WordsPerRow(cols, q.bits);
  // Grids: each group's grid id [rows, gpr], picked when its (scale, zero) are fitted, by the
  // least diag(H)-weighted squared error of rounding the group's weights at that moment.
  std::vector<uint8_t> grid_of(cfg.grids ? static_cast<size_t>(rows * gpr) : 0, 0);
  const bool s8 = cfg.scales == ScaleFormat::kS8;
  if (s8 && !cfg.grids) grid_of.assign(static_cast<size_t>(rows * gpr), 0);  // FitGroupS8Grids writes id 0
  std::vector<double> diag(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) diag[j] = h0[j * cols + j];
  // The (scale, zero) (and grid) of group k of row r from its weights at src (grp, scratch:
  // per-thread buffers of g).
  auto fit_group = [&](const double* src, int64_t r, int64_t k, std::vector<float>& grp,
                       std::vector<uint8_t>& scratch) {
    const int64_t n = std::min(g, cols - k * g);
    for (int64_t j = 0; j < n; ++j) grp[j] = static_cast<float>(src[j]);
    if (s8) {  // FitGroupS8 on the matrix's base (from the weights before any update), diag(H)-weighted
      grid_of[r * gpr + k] = static_cast<uint8_t>(
          FitGroupS8Grids(grp.data(), diag.data() + k * g, n, cfg.grids, cfg.mse_clip, r * gpr + k, q, nullptr));
      return;
    }
    QuantizeGroup(grp.data(), n, q.bits, cfg.symmetric, cfg.mse_clip, scratch.data(), &q.scales[r * gpr + k],
                  &q.zeros[r * gpr + k]);
    if (cfg.grids) {
      grid_of[r * gpr + k] =
          static_cast<uint8_t>(BestGrid(grp.data(), diag.data() + k * g, n, q.bits, HalfToFloat(q.scales[r * gpr + k]),
                                        HalfToFloat(q.zeros[r * gpr + k])));
    }
  };
  // Static groups (act-order): every group's (scale, zero) from the weights before any update,
  // in the natural column order, so a permuted rounding order still gives the packed layout.
  if (opt.act_order) {
    ParallelFor(
        rows,
        [&](int64_t begin, int64_t end) {
          std::vector<float> grp(static_cast<size_t>(g));
          std::vector<uint8_t> scratch(static_cast<size_t>(g));
          for (int64_t r = begin; r < end; ++r) {
            for (int64_t k = 0; k < gpr; ++k) fit_group(w0.data() + r * cols + k * g, r, k, grp, scratch);
          }
        },
        0, 16);
  }
  // Work in the rounding order: column i of wd / h is original column perm[i].
  const std::vector<int64_t> perm = ColumnOrder(h0, cols, opt.act_order);
  std::vector<double> h(static_cast<size_t>(cols * cols)), wd(static_cast<size_t>(rows * cols));
  for (int64_t a = 0; a < cols; ++a) {
    for (int64_t b = 0; b < cols; ++b) h[a * cols + b] = h0[perm[a] * cols + perm[b]];
  }
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t a = 0; a < cols; ++a) wd[r * cols + a] = w0[r * cols + perm[a]];
  }
  std::vector<double> u;
  double damp = opt.damp;
  for (int attempt = 0;; ++attempt) {
    std::vector<double> hd = h;
    for (int64_t i = 0; i < cols; ++i) hd[i * cols + i] += damp * mean_diag;
    if (InverseUpperFactor(std::move(hd), cols, &u)) break;
    if (attempt == 4) {
      return absl::FailedPreconditionError(
          absl::StrCat("gptq: the input Gram is not positive definite even with damp ", damp));
    }
    damp *= 10;
  }
  const int64_t block = g * ((std::max<int64_t>(opt.block, 1) + g - 1) / g);
  std::vector<uint8_t> codes(static_cast<size_t>(rows * cols));
  for (int64_t i1 = 0; i1 < cols; i1 += block) {
    const int64_t i2 = std::min(i1 + block, cols), nb = i2 - i1;
    std::vector<double> err(static_cast<size_t>(rows * nb));
    ParallelFor(
        rows,
        [&](int64_t begin, int64_t end) {
          std::vector<float> grp(static_cast<size_t>(g));
          std::vector<uint8_t> scratch(static_cast<size_t>(g));
          for (int64_t r = begin; r < end; ++r) {
            double* row = wd.data() + r * cols;
            for (int64_t i = i1; i < i2; ++i) {
              const int64_t col = perm[i], k = col / g;
              // Natural order: a group starts (col == i); its (scale, zero) from the updated weights.
              if (!opt.act_order && i % g == 0) fit_group(row + i, r, k, grp, scratch);
              const float s = HalfToFloat(q.scales[r * gpr + k]), m = HalfToFloat(q.zeros[r * gpr + k]);
              const float* lv = cfg.grids ? kernels::GridLevels(q.bits, grid_of[r * gpr + k]) : nullptr;
              float v = 0.0f;
              codes[r * cols + col] = NearestCode(static_cast<float>(row[i]), s, m, q.bits, lv, &v);
              const double e = (row[i] - static_cast<double>(v)) / u[i * cols + i];
              const double* ui = u.data() + i * cols;
              for (int64_t j = i + 1; j < i2; ++j) row[j] -= e * ui[j];
              err[r * nb + (i - i1)] = e;
            }
          }
        },
        0, 16);
    if (i2 < cols) {  // lazy update of the columns after the block: W[:, i2:] -= E U[i1:i2, i2:]
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(cols - i2),
                  static_cast<int>(nb), -1.0, err.data(), static_cast<int>(nb), u.data() + i1 * cols + i2,
                  static_cast<int>(cols), 1.0, wd.data() + i2, static_cast<int>(cols));
    }
  }
  for (int64_t r = 0; r < rows; ++r) PackRow(codes.data() + r * cols, cols, q.bits, q.codes.data() + r * wpr);
  if (cfg.grids) PackGridIds(grid_of, gpr, q);
  return absl::OkStatus();
}

}  // namespace

void AccumulateGram(const float* x, int64_t n, InputGram* g) {
  const int64_t c = g->cols;
  if (n <= 0 || c <= 0) return;
  if (g->h.empty()) g->h.assign(static_cast<size_t>(c * c), 0.0);
  std::vector<double> xd(x, x + n * c);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(c), static_cast<int>(c), static_cast<int>(n),
              1.0, xd.data(), static_cast<int>(c), xd.data(), static_cast<int>(c), 1.0, g->h.data(),
              static_cast<int>(c));
  g->tokens += n;
}

absl::StatusOr<QuantizedMatrix> QuantizeMatrixRounded(const float* w, int64_t rows, int64_t cols,
                                                      const QuantConfig& cfg, Rounding rounding, const InputGram* gram,
                                                      const GptqOptions& gptq) {
  SLQ_ASSIGN_OR_RETURN(QuantizedMatrix q, QuantizeMatrix(w, rows, cols, cfg));  // validates; RTN codes
  if (rounding == Rounding::kRtn) return q;
  if (gram == nullptr || gram->cols != cols || gram->h.size() != static_cast<size_t>(cols * cols)) {
    return absl::InvalidArgumentError(
        absl::StrCat(RoundingName(rounding), " needs the Gram matrix of the layer's ", cols, " inputs"));
  }
  if (cfg.rotate) {
    return absl::InvalidArgumentError(absl::StrCat(RoundingName(rounding), " is not combined with rotation"));
  }
  if (cfg.grids && cfg.symmetric) {
    return absl::InvalidArgumentError(
        absl::StrCat(RoundingName(rounding), " with grids needs asymmetric scales (drop grids or symmetric)"));
  }
  q.rounding = rounding;
  if (rounding == Rounding::kGptq) {
    SLQ_RETURN_IF_ERROR(Gptq(w, cfg, *gram, gptq, q));
    return q;
  }
  const int64_t g = q.group_size, gpr = kernels::GroupsPerRow(cols, g), wpr = kernels::WordsPerRow(cols, q.bits);
  std::vector<double> diag(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) diag[j] = gram->h[j * cols + j];
  std::vector<uint8_t> grid_of(static_cast<size_t>(rows * gpr), 0);
  const bool s8 = cfg.scales == ScaleFormat::kS8;  // QuantizeMatrix set q.scale_base from w
  ParallelFor(
      rows,
      [&](int64_t begin, int64_t end) {
        std::vector<uint8_t> codes(static_cast<size_t>(cols)), trial;
        for (int64_t r = begin; r < end; ++r) {
          for (int64_t k = 0; k < gpr; ++k) {
            const int64_t j0 = k * g, n = std::min(g, cols - j0);
            if (s8) {
              grid_of[r * gpr + k] =
                  static_cast<uint8_t>(FitGroupS8Grids(w + r * cols + j0, diag.data() + j0, n, cfg.grids,
                                                       /*mse_clip=*/true, r * gpr + k, q, codes.data() + j0));
              continue;
            }
            MseGroup(w + r * cols + j0, diag.data() + j0, n, q.bits, q.symmetric, cfg.grids, codes.data() + j0,
                     &q.scales[r * gpr + k], &q.zeros[r * gpr + k], &grid_of[r * gpr + k], trial);
          }
          PackRow(codes.data(), cols, q.bits, q.codes.data() + r * wpr);
        }
      },
      0, 16);
  if (cfg.grids) PackGridIds(grid_of, gpr, q);
  return q;
}

double OutputError(const float* w, const QuantizedMatrix& q, const InputGram& g) {
  const std::vector<float> wq = DequantizeOriginalBasis(q);
  std::vector<float> d(wq.size());
  for (size_t i = 0; i < d.size(); ++i) d[i] = w[i] - wq[i];
  return OutputEnergy(d.data(), q.rows, g);
}

double OutputEnergy(const float* w, int64_t rows, const InputGram& g) {
  const int64_t c = g.cols;
  std::vector<double> per_row(static_cast<size_t>(rows));
  ParallelFor(
      rows,
      [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const float* x = w + r * c;
          double s = 0;
          for (int64_t i = 0; i < c; ++i) {
            double t = 0;
            const double* hi = g.h.data() + i * c;
            for (int64_t j = 0; j < c; ++j) t += hi[j] * x[j];
            s += x[i] * t;
          }
          per_row[r] = s;
        }
      },
      0, 4);
  double total = 0;
  for (double v : per_row) total += v;
  return total;
}

bool NeedsGram(const std::vector<Rounding>& roundings) {
  return std::any_of(roundings.begin(), roundings.end(), [](Rounding r) { return r != Rounding::kRtn; });
}

absl::StatusOr<std::vector<Rounding>> ParseRoundings(std::string_view list) {
  SLQ_ASSIGN_OR_RETURN(std::vector<std::string> names, spec::ParseQuantizers(list));  // the one validator
  std::vector<Rounding> out;
  for (const std::string& name : names) {
    out.push_back(name == "rtn" ? Rounding::kRtn : name == "mse" ? Rounding::kMse : Rounding::kGptq);
  }
  return out;
}

}  // namespace slq::quant
