// Roundings that use the calibration activations (issue #17): activation-weighted MSE scales
// and GPTQ error-compensating rounding. Both emit the slq-packed-v1 layout unchanged (codes +
// fp16 scale/zero per group, or their S8 codes), so bits/param equal RTN's at the same variant.
//
//   InputGram g = ...;                       // sum over calibration tokens of x x^T (input_gram.h)
//   SLQ_ASSIGN_OR_RETURN(QuantizedMatrix q, QuantizeMatrixRounded(w, rows, cols, cfg, Rounding::kGptq, &g));
//   double e = OutputError(w, q, g);        // ||(W - W') X^T||_F^2 on the captured inputs
//
// mse: per group, the (scale, zero) that minimise sum_j H_jj (w_j - w'_j)^2 over a grid that
// trims the group's [min, max] from each end independently by t * (max - min), t in
// {0, 0.04, ..., 0.2} (symmetric: max|w| shrunk by {1, 0.96, ..., 0.6}); t = 0 is RTN's range,
// so mse is never worse than RTN on that objective.
// gptq (Frantar et al., re-derived here): H + damp * mean(diag H) I, U = upper Cholesky factor
// of its inverse; columns are rounded left to right, each column's error (w - w') / U_ii is
// propagated onto the not yet rounded columns through row i of U, inside a block at once and to
// the columns after the block lazily (one GEMM per block). A group's (scale, zero) are chosen
// (min/max, or MSE-clipped with cfg.mse_clip) from its updated weights when its first column
// is reached (the reference's static-groups-off behaviour); columns in natural order. With
// GptqOptions::act_order the columns are rounded by descending diag(H) and the groups are
// static: each group's (scale, zero) come from the weights before any update, so a column
// rounded out of order still uses its own (natural-order) group and the slq-packed-v1 layout
// and bits/param are unchanged. Columns with H_ii = 0 (never active) are set to zero before
// rounding.
// Grids (QuantConfig::grids, Grid Games, kernels/grids.h; asymmetric only): each group also
// picks one of kernels::kGridCount fixed grids and its codes index that grid's levels, w' = m16 +
// s16 * L[q]. mse: the grid is chosen jointly with the trimmed range (the least diag(H)-weighted
// error over (trim, grid); grid 0 is uniform, so never worse than mse without grids on that
// objective). gptq: when a group's (scale, zero) are fitted (its first column in natural order;
// every group up front under act-order), its grid is the one with the least diag(H)-weighted
// squared error of rounding the group's weights at that moment with that (s, m); each column
// of the group then rounds to the nearest level of that grid and its error propagates as usual.
// The result's grid_ids hold the indices (QuantizedMatrix's layout).
// S8 scales (QuantConfig::scales == kS8, kernels/scale_codes.h): the matrix's base D is
// S8ScaleBase of the weights before any error feedback (QuantizeMatrix sets it); every group's
// (scale code u, zero-point z) comes from FitGroupS8, diag(H)-weighted, where the fp16 form
// fits (s, m): gptq when the group's first column is reached (every group up front under
// act-order; with cfg.mse_clip FitGroupS8's shrinks too), mse over FitGroupS8's shrinks a in
// {1, 0.95, ..., 0.55} of the group's range with the neighbouring codes (its candidates include
// RTN's, so mse in S8 is never worse than RTN in S8 on its objective). With grids, one
// FitGroupS8 per grid (its levels), the least weighted error wins (ties keep the lower id).
// scale_codes / zero_points / scale_base are filled and scales / zeros hold their expansion.
// Rotation is not combined with mse/gptq (InvalidArgument): the Gram would have to be rotated.
// Thread safety: pure functions.
#ifndef SLQ_SERVER_QUANT_ROUNDING_H_
#define SLQ_SERVER_QUANT_ROUNDING_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/quant/choice.h"
#include "server/quant/quantizer.h"

namespace slq::quant {

// The Gram matrix of a linear layer's inputs: h = sum_t x_t x_t^T, [cols, cols] row-major, full.
struct InputGram {
  int64_t cols = 0;
  int64_t tokens = 0;
  std::vector<double> h;
};
// g += x^T x for x [n, g->cols] fp32 (g->h sized on first use).
void AccumulateGram(const float* x, int64_t n, InputGram* g);

struct GptqOptions {
  // Relative to the mean of diag(H). 0.1, not the reference's 0.01: with the ~2000 calibration
  // tokens here GPTQ overfits them; on tinystories-656k (3+4 bits, g64, all 14 layers) the
  // held-out ||(W - W')X||^2 over RTN's is 0.86x at 0.01, 0.77x at 0.1, 0.73x at 0.3, 0.75x at 1.
  double damp = 0.1;
  // Token-scaled dampening: the damp used is max(damp, damp_per_col * cols / tokens) with tokens
  // the Gram's (InputGram::tokens; ignored when 0): a ridge that grows as the Gram gets rank-poor
  // (few tokens per input). 0 = off. 2: on tinystories-656k (530 Gram tokens, 128/384 inputs)
  // held-out ||(W - W')X||^2 0.82-0.86x of damp 0.1 alone at 4-8 bits g64 grids, fp16 and S8,
  // with the refit; on docs-19m (13236 tokens) it leaves damp at 0.1-0.16
  // (bench/results/quant-refit-2026-12-02.md).
  double damp_per_col = 2.0;
  int64_t block = 128;  // columns per lazy-update block (rounded up to a multiple of the group)
  // Columns in order of descending diag(H) (stable), with static groups: every group's (scale,
  // zero) from the weights before any update, so the packed layout stays the natural one.
  bool act_order = false;
  // Refit (asymmetric groups; symmetric ones are left as GPTQ fits them): with the codes GPTQ
  // chose held fixed, each row's groups' (scale, zero) are refitted to the full Gram objective
  // (w - w')^T (H + refit_damp * mean(diag H) I) (w - w'), w'_j = m_k + s_k L[q_j]. fp16 scales:
  // the exact least squares over all the row's 2 x groups unknowns (H couples the groups),
  // rounded to fp16. S8 scales only with refit_s8: coordinate descent over each group's
  // neighbouring (u +-2, z +-2), refit_passes sweeps (off by default: a 3% scale step or a whole
  // zero-point step moves every weight of the group by more than the codes' rounding error, so
  // it found nothing held-out at 4-8 bits). A row's new groups are kept only when they lower
  // its undamped Gram objective, so the refit never raises tr((W - W')H(W - W')^T).
  // refit_rounds > 0 alternates: GPTQ again with the refitted groups held fixed (static), refit
  // again, while that lowers the objective. Codes (without alternation), grids, layout and
  // bits/param are unchanged. Off by default: on docs-19m it buys 1.3-3.5% of held-out output
  // error at 6-8 bits (fp16; ~0.1% with S8) for 2-3x GPTQ's time (bench/results/quant-refit-2026-12-02.md).
  bool refit = false;
  bool refit_s8 = false;
  double refit_damp = 0.1;
  int refit_passes = 3;
  int refit_rounds = 0;
};

// Quantizes w [rows, cols] with `rounding`. rtn ignores `gram`; mse and gptq need it
// (InvalidArgument when null or of another width, or with cfg.rotate; grids with symmetric
// scales are refused too). The result records the rounding.
[[nodiscard]] absl::StatusOr<QuantizedMatrix> QuantizeMatrixRounded(const float* w, int64_t rows, int64_t cols,
                                                                    const QuantConfig& cfg, Rounding rounding,
                                                                    const InputGram* gram,
                                                                    const GptqOptions& gptq = {});

// tr((W - W') H (W - W')^T) = ||(W - W') X^T||_F^2 over the captured tokens (W' in the original basis).
double OutputError(const float* w, const QuantizedMatrix& q, const InputGram& g);
// tr(W H W^T) = ||W X^T||_F^2.
double OutputEnergy(const float* w, int64_t rows, const InputGram& g);

// Whether any of the roundings needs the input Gram (mse, gptq).
bool NeedsGram(const std::vector<Rounding>& roundings);

// "rtn,mse,gptq" -> roundings (order kept, no duplicates; InvalidArgument naming a bad one).
[[nodiscard]] absl::StatusOr<std::vector<Rounding>> ParseRoundings(std::string_view list);

// Layer choices (width + rounding + variant) and their int codes: choice.h.

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_ROUNDING_H_
