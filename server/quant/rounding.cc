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
#include "kernels/scale_codes.h"
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

// x^T h x for h [n, n] row-major (double) and x fp32, summed in double: one row's ||(W - W')X||^2
// (OutputEnergy, the refit's RowObjective).
double QuadraticForm(const double* h, const float* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    double t = 0;
    const double* hi = h + i * n;
    for (int64_t j = 0; j < n; ++j) t += hi[j] * x[j];
    s += x[i] * t;
  }
  return s;
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

// The mean of diag(h) [cols, cols] (GPTQ's damp unit); 1 when it is not positive.
double MeanDiag(const std::vector<double>& h, int64_t cols) {
  double m = 0;
  for (int64_t i = 0; i < cols; ++i) m += h[i * cols + i];
  m /= static_cast<double>(cols);
  return m > 0 ? m : 1.0;
}

// w [rows, cols] in double with the weights of dead inputs (h_ii == 0: never active) set to 0,
// the weights GPTQ rounds and the refit fits.
std::vector<double> LiveWeights(const float* w, int64_t rows, int64_t cols, const std::vector<double>& h) {
  std::vector<double> w0(w, w + rows * cols);
  for (int64_t i = 0; i < cols; ++i) {
    if (h[i * cols + i] == 0.0) {
      for (int64_t r = 0; r < rows; ++r) w0[r * cols + i] = 0.0;
    }
  }
  return w0;
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

// One GPTQ pass over w. preset: every group's (scale, zero) (q's fp16 or S8 fields) and grid
// (*grid_of) are taken as given (static groups, no fitting: the refit's alternation); else they
// are fitted as rounding.h says and written to q / *grid_of. *codes [rows, cols] (natural order)
// receive the codes; packing is the caller's.
absl::Status Gptq(const float* w, const QuantConfig& cfg, const InputGram& gram, const GptqOptions& opt, bool preset,
                  QuantizedMatrix& q, std::vector<uint8_t>* codes_out, std::vector<uint8_t>* grid_of_out) {
  const int64_t rows = q.rows, cols = q.cols, g = q.group_size;
  std::vector<double> h0 = gram.h;
  const std::vector<double> w0 = LiveWeights(w, rows, cols, h0);
  const double mean_diag = MeanDiag(h0, cols);
  for (int64_t i = 0; i < cols; ++i) {
    if (h0[i * cols + i] == 0.0) h0[i * cols + i] = 1.0;  // a dead input: its weight never matters
  }
  const int64_t gpr = kernels::GroupsPerRow(cols, g);
  // Grids: each group's grid id [rows, gpr], picked when its (scale, zero) are fitted, by the
  // least diag(H)-weighted squared error of rounding the group's weights at that moment.
  std::vector<uint8_t>& grid_of = *grid_of_out;
  const bool s8 = cfg.scales == ScaleFormat::kS8;
  if (!preset) grid_of.assign(static_cast<size_t>(rows * gpr), 0);  // FitGroupS8Grids writes ids even without grids
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
  if (opt.act_order && !preset) {
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
  if (opt.damp_per_col > 0 && gram.tokens > 0) {  // token-scaled dampening (rounding.h)
    damp = std::max(damp, opt.damp_per_col * static_cast<double>(cols) / static_cast<double>(gram.tokens));
  }
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
  std::vector<uint8_t>& codes = *codes_out;
  codes.assign(static_cast<size_t>(rows * cols), 0);
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
              if (!opt.act_order && !preset && i % g == 0) fit_group(row + i, r, k, grp, scratch);
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
  return absl::OkStatus();
}

// ---- Refit of the groups' (scale, zero) with the codes fixed (GptqOptions::refit) ----

// The data of one row that the refit reads: its target weights w (the weights GPTQ rounded, dead
// inputs zeroed), its code levels l_j = L[q_j] (its group's grid; q_j on the uniform grid).
struct RefitRow {
  const double* w = nullptr;
  std::vector<double> l;
};

// l_j of row r from the codes [rows, cols] and grid ids [rows, gpr].
void RowLevels(const QuantizedMatrix& q, bool grids, const std::vector<uint8_t>& codes,
               const std::vector<uint8_t>& grid_of, int64_t r, std::vector<double>* l) {
  const int64_t cols = q.cols, g = q.group_size, gpr = kernels::GroupsPerRow(cols, g);
  l->resize(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) {
    const uint8_t c = codes[r * cols + j];
    const float* lv = grids ? kernels::GridLevels(q.bits, grid_of[r * gpr + j / g]) : nullptr;
    (*l)[j] = lv ? lv[c] : static_cast<double>(c);
  }
}

// The exact objective of row r as OutputError sums it: d = float(w - w'), w' = m16 + s16 * l in
// fp32 (the format's dequantization), then d^T H d in double.
double RowObjective(const double* h, const double* w, const std::vector<double>& l, const uint16_t* s16,
                    const uint16_t* m16, int64_t cols, int64_t g) {
  std::vector<float> d(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) {
    const float v = HalfToFloat(m16[j / g]) + HalfToFloat(s16[j / g]) * static_cast<float>(l[j]);
    d[j] = static_cast<float>(w[j]) - v;
  }
  return QuadraticForm(h, d.data(), cols);
}

// Solves the SPD system a x = b (n x n, row-major; a destroyed); false if not positive definite.
bool SolveSpd(std::vector<double>& a, std::vector<double>& b, int64_t n) {
  if (!CholeskyLower(a, n)) return false;  // a = L L^T
  for (int64_t i = 0; i < n; ++i) {        // L y = b
    double s = b[i];
    for (int64_t k = 0; k < i; ++k) s -= a[i * n + k] * b[k];
    b[i] = s / a[i * n + i];
  }
  for (int64_t i = n - 1; i >= 0; --i) {  // L^T x = y
    double s = b[i];
    for (int64_t k = i + 1; k < n; ++k) s -= a[k * n + i] * b[k];
    b[i] = s / a[i * n + i];
  }
  return true;
}

// fp16 scales: the (m_k, s_k) of every group of the row that minimise (w - w')^T (H + lambda I)
// (w - w') with w'_j = m_k + s_k l_j (k = j's group): 2 x groups unknowns, normal equations
// solved exactly (lambda > 0 keeps a group of one level solvable). s1 [cols, gpr]: H 1_k, the
// same for every row. Writes the fp16-rounded solution to s16 / m16; false (nothing written)
// when the system is singular or a step comes out non-positive or non-finite.
bool RefitRowFp16(const double* h, const std::vector<double>& s1, const RefitRow& row, int64_t cols, int64_t g,
                  double lambda, uint16_t* s16, uint16_t* m16) {
  const int64_t gpr = kernels::GroupsPerRow(cols, g), n = 2 * gpr;
  const std::vector<double>& l = row.l;
  // t[j, k] = sum_{i in k} H_ji l_i; hw = H w.
  std::vector<double> t(static_cast<size_t>(cols * gpr), 0.0), hw(static_cast<size_t>(cols), 0.0);
  for (int64_t j = 0; j < cols; ++j) {
    const double* hj = h + j * cols;
    double acc = 0;
    for (int64_t k = 0; k < gpr; ++k) {
      double tk = 0;
      for (int64_t i = k * g; i < std::min(cols, (k + 1) * g); ++i) {
        tk += hj[i] * l[i];
        acc += hj[i] * row.w[i];
      }
      t[j * gpr + k] = tk;
    }
    hw[j] = acc;
  }
  // Unknown 2k is m_k, 2k+1 is s_k.
  std::vector<double> a(static_cast<size_t>(n * n), 0.0), b(static_cast<size_t>(n), 0.0);
  for (int64_t j = 0; j < cols; ++j) {
    const int64_t k = j / g;
    for (int64_t k2 = 0; k2 < gpr; ++k2) {
      a[(2 * k) * n + 2 * k2] += s1[j * gpr + k2];
      a[(2 * k + 1) * n + 2 * k2] += l[j] * s1[j * gpr + k2];
      a[(2 * k) * n + 2 * k2 + 1] += t[j * gpr + k2];
      a[(2 * k + 1) * n + 2 * k2 + 1] += l[j] * t[j * gpr + k2];
    }
    b[2 * k] += hw[j] + lambda * row.w[j];
    b[2 * k + 1] += l[j] * (hw[j] + lambda * row.w[j]);
    a[(2 * k) * n + 2 * k] += lambda;
    a[(2 * k) * n + 2 * k + 1] += lambda * l[j];
    a[(2 * k + 1) * n + 2 * k] += lambda * l[j];
    a[(2 * k + 1) * n + 2 * k + 1] += lambda * l[j] * l[j];
  }
  if (!SolveSpd(a, b, n)) return false;
  for (int64_t k = 0; k < gpr; ++k) {
    if (!std::isfinite(b[2 * k]) || !(b[2 * k + 1] > 0.0) || !std::isfinite(b[2 * k + 1])) return false;
  }
  for (int64_t k = 0; k < gpr; ++k) {
    m16[k] = FloatToHalf(static_cast<float>(b[2 * k]));
    s16[k] = FloatToHalf(static_cast<float>(b[2 * k + 1]));
    if (!(HalfToFloat(s16[k]) > 0.0f) || !std::isfinite(HalfToFloat(m16[k]))) return false;
  }
  return true;
}

// S8 scales: coordinate descent over each group's (u, z) in {u - 2 .. u + 2} x {z - 2 .. z + 2}
// on (w - w')^T (H + lambda I) (w - w'), passes sweeps over the groups; a move is exact in O(1)
// from the maintained H e (e = w - w') since w' changes by dm + ds l on the group. Accepts
// strict improvements only. Updates u, z and their fp16 expansion s16 / m16 in place.
void RefitRowS8(const double* h, const RefitRow& row, int64_t cols, int64_t g, int bits, float base, double lambda,
                int passes, uint8_t* u, uint8_t* z, uint16_t* s16, uint16_t* m16) {
  const int64_t gpr = kernels::GroupsPerRow(cols, g);
  const std::vector<double>& l = row.l;
  std::vector<double> e(static_cast<size_t>(cols)), he(static_cast<size_t>(cols), 0.0);
  for (int64_t j = 0; j < cols; ++j) {
    e[j] = row.w[j] - (HalfToFloat(m16[j / g]) + static_cast<double>(HalfToFloat(s16[j / g])) * l[j]);
  }
  for (int64_t i = 0; i < cols; ++i) {
    double acc = 0;
    for (int64_t j = 0; j < cols; ++j) acc += h[i * cols + j] * e[j];
    he[i] = acc;
  }
  // Per group: a = 1'H1, c = l'Hl, bb = 1'Hl on its block (+ lambda's share).
  std::vector<double> qa(static_cast<size_t>(gpr)), qb(static_cast<size_t>(gpr)), qc(static_cast<size_t>(gpr));
  for (int64_t k = 0; k < gpr; ++k) {
    const int64_t j0 = k * g, j1 = std::min(cols, j0 + g);
    double a = 0, bb = 0, c = 0;
    for (int64_t i = j0; i < j1; ++i) {
      for (int64_t j = j0; j < j1; ++j) {
        const double hij = h[i * cols + j];
        a += hij;
        bb += hij * l[j];
        c += l[i] * hij * l[j];
      }
      a += lambda;
      bb += lambda * l[i];
      c += lambda * l[i] * l[i];
    }
    qa[k] = a, qb[k] = bb, qc[k] = c;
  }
  const int zmax = (1 << bits) - 1;
  for (int pass = 0; pass < passes; ++pass) {
    bool moved = false;
    for (int64_t k = 0; k < gpr; ++k) {
      const int64_t j0 = k * g, j1 = std::min(cols, j0 + g);
      double p = 0, r = 0;  // 1'(H + lambda I)e and l'(H + lambda I)e on the group
      for (int64_t j = j0; j < j1; ++j) {
        p += he[j] + lambda * e[j];
        r += l[j] * (he[j] + lambda * e[j]);
      }
      const double s0 = HalfToFloat(s16[k]), m0 = HalfToFloat(m16[k]);
      double best = 0;
      int bu = u[k], bz = z[k];
      for (int du = -2; du <= 2; ++du) {
        const int nu = u[k] + du;
        if (nu < 0 || nu > 255) continue;
        const uint16_t ns = kernels::ScaleFromCode(base, static_cast<uint8_t>(nu));
        for (int dz = -2; dz <= 2; ++dz) {
          const int nz = z[k] + dz;
          if (nz < 0 || nz > zmax || (du == 0 && dz == 0)) continue;
          const double ds = HalfToFloat(ns) - s0, dm = HalfToFloat(kernels::ZeroFromPoint(ns, nz)) - m0;
          // ||e - dm 1 - ds l||^2_(H + lambda I) - ||e||^2_(H + lambda I)
          const double change = -2.0 * (dm * p + ds * r) + dm * dm * qa[k] + 2.0 * dm * ds * qb[k] + ds * ds * qc[k];
          if (change < best) {
            best = change;
            bu = nu;
            bz = nz;
          }
        }
      }
      if (bu == u[k] && bz == z[k]) continue;
      const uint16_t ns = kernels::ScaleFromCode(base, static_cast<uint8_t>(bu));
      const uint16_t nm = kernels::ZeroFromPoint(ns, bz);
      const double ds = HalfToFloat(ns) - s0, dm = HalfToFloat(nm) - m0;
      for (int64_t j = j0; j < j1; ++j) {
        const double dj = dm + ds * l[j];
        e[j] -= dj;
        for (int64_t i = 0; i < cols; ++i) he[i] -= h[i * cols + j] * dj;
      }
      u[k] = static_cast<uint8_t>(bu), z[k] = static_cast<uint8_t>(bz), s16[k] = ns, m16[k] = nm;
      moved = true;
    }
    if (!moved) break;
  }
}

// The refit of every row of q (codes fixed; see rounding.h): each row's new groups are kept only
// when they lower its exact Gram objective (RowObjective on the undamped H), so the refit never
// raises tr((W - W')H(W - W')^T). Returns that objective summed over rows (after the refit).
double RefitScales(const std::vector<double>& w0, const InputGram& gram, const QuantConfig& cfg, const GptqOptions& opt,
                   double mean_diag, const std::vector<uint8_t>& codes, const std::vector<uint8_t>& grid_of,
                   QuantizedMatrix& q) {
  const int64_t rows = q.rows, cols = q.cols, g = q.group_size, gpr = kernels::GroupsPerRow(cols, g);
  const double* h = gram.h.data();
  const double lambda = opt.refit_damp * mean_diag;
  const bool s8 = q.has_scale_codes(), refit = opt.refit && !q.symmetric && (!s8 || opt.refit_s8);
  std::vector<double> s1;  // [cols, gpr]: H 1_k (fp16 solve)
  if (refit && !s8) {
    s1.assign(static_cast<size_t>(cols * gpr), 0.0);
    for (int64_t j = 0; j < cols; ++j) {
      for (int64_t i = 0; i < cols; ++i) s1[j * gpr + i / g] += h[j * cols + i];
    }
  }
  std::vector<double> obj(static_cast<size_t>(rows));
  ParallelFor(
      rows,
      [&](int64_t begin, int64_t end) {
        RefitRow row;
        std::vector<uint16_t> s16(static_cast<size_t>(gpr)), m16(static_cast<size_t>(gpr));
        std::vector<uint8_t> u(static_cast<size_t>(gpr)), z(static_cast<size_t>(gpr));
        for (int64_t r = begin; r < end; ++r) {
          row.w = w0.data() + r * cols;
          RowLevels(q, cfg.grids, codes, grid_of, r, &row.l);
          uint16_t* qs = q.scales.data() + r * gpr;
          uint16_t* qz = q.zeros.data() + r * gpr;
          const double before = RowObjective(h, row.w, row.l, qs, qz, cols, g);
          obj[r] = before;
          if (!refit) continue;
          std::copy(qs, qs + gpr, s16.begin());
          std::copy(qz, qz + gpr, m16.begin());
          if (s8) {
            std::copy(q.scale_codes.begin() + r * gpr, q.scale_codes.begin() + (r + 1) * gpr, u.begin());
            std::copy(q.zero_points.begin() + r * gpr, q.zero_points.begin() + (r + 1) * gpr, z.begin());
            RefitRowS8(h, row, cols, g, q.bits, q.scale_base, lambda, opt.refit_passes, u.data(), z.data(), s16.data(),
                       m16.data());
          } else if (!RefitRowFp16(h, s1, row, cols, g, lambda, s16.data(), m16.data())) {
            continue;
          }
          const double after = RowObjective(h, row.w, row.l, s16.data(), m16.data(), cols, g);
          if (!(after < before)) continue;
          obj[r] = after;
          std::copy(s16.begin(), s16.end(), qs);
          std::copy(m16.begin(), m16.end(), qz);
          if (s8) {
            std::copy(u.begin(), u.end(), q.scale_codes.begin() + r * gpr);
            std::copy(z.begin(), z.end(), q.zero_points.begin() + r * gpr);
          }
        }
      },
      0, 4);
  double total = 0;
  for (double v : obj) total += v;
  return total;
}

// GPTQ (rounding.h), then with opt.refit the refit and opt.refit_rounds alternations (GPTQ again
// with the refitted groups held fixed, refit again); the pass of least Gram objective is packed.
absl::Status GptqRefit(const float* w, const QuantConfig& cfg, const InputGram& gram, const GptqOptions& opt,
                       QuantizedMatrix& q) {
  const int64_t rows = q.rows, cols = q.cols, gpr = kernels::GroupsPerRow(cols, q.group_size);
  std::vector<uint8_t> codes, grid_of;
  SLQ_RETURN_IF_ERROR(Gptq(w, cfg, gram, opt, /*preset=*/false, q, &codes, &grid_of));
  if (opt.refit) {
    const std::vector<double> w0 = LiveWeights(w, rows, cols, gram.h);  // as Gptq rounds them
    const double mean_diag = MeanDiag(gram.h, cols);
    double best = RefitScales(w0, gram, cfg, opt, mean_diag, codes, grid_of, q);
    for (int round = 0; round < opt.refit_rounds; ++round) {
      QuantizedMatrix next = q;
      std::vector<uint8_t> next_codes, next_grids = grid_of;
      SLQ_RETURN_IF_ERROR(Gptq(w, cfg, gram, opt, /*preset=*/true, next, &next_codes, &next_grids));
      const double obj = RefitScales(w0, gram, cfg, opt, mean_diag, next_codes, next_grids, next);
      if (!(obj < best)) break;
      best = obj;
      q = std::move(next);
      codes = std::move(next_codes);
      grid_of = std::move(next_grids);
    }
  }
  const int64_t wpr = kernels::WordsPerRow(cols, q.bits);
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
    SLQ_RETURN_IF_ERROR(GptqRefit(w, cfg, *gram, gptq, q));
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
          per_row[r] = QuadraticForm(g.h.data(), w + r * c, c);
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
