// Group-wise uniform quantization of a weight matrix (METHOD.md section 3).
//
//   QuantConfig cfg;  cfg.bits = 4;  cfg.group_size = 128;
//   SLQ_ASSIGN_OR_RETURN(QuantizedMatrix q, QuantizeMatrix(w.data(), rows, cols, cfg));
//   std::vector<float> w_hat = Dequantize(q);  // [rows, cols], in the (rotated) basis
//
// Decisions (see also kernels/packed_matrix.h):
// - Scale s and zero m are fp16; the zero is a float offset (the group minimum for
//   asymmetric, -s * (2^(b-1) - 1) for symmetric), never an integer zero-point. Symmetric
//   matrices keep the zero in memory (one dequant path) but artifacts store only the scale.
// - Codes are computed against the fp16-ROUNDED s and m, so w' = m16 + s16 * q is exactly what
//   the artifact dequantizes to.
// - Scales (QuantConfig::scales, kernels/scale_codes.h): kFp16 stores the fp16 (s, m) of each
//   group; kS8 stores an 8-bit scale code and an integer zero-point per group and one fp32 base
//   per matrix, and the codes are rounded against the (s16, m16) those expand to, so the fp16
//   scales/zeros of a QuantizedMatrix are always filled and every decoder reads them alike.
// - Grids (QuantConfig::grids, kernels/grids.h): with the same (s, m), each group picks the
//   grid of least squared error; w' = m16 + s16 * L[q] with L that grid's levels.
// - MSE clipping shrinks [m, M] (asymmetric: both ends by a factor a; symmetric: max|w|) over
//   a grid a in {1, 0.95, ..., 0.55} and keeps the a with the least squared error per group.
//   With grids too, the (a, grid) pair of least error is chosen jointly
//   (QuantConfig::joint_clip_grid; S8: one FitGroupS8 per grid).
// - Rotation (HIGGS): the input dimension is multiplied by a block-diagonal orthogonal matrix
//   R = blockdiag(H D / sqrt(n)) (H Walsh-Hadamard, D random +-1 signs from a seed, n the
//   largest power of two <= 1024 dividing cols). Since R is orthogonal, w.x = (R w).(R x): rows
//   of W are rotated before quantization and activations are rotated at inference.
// Thread safety: all functions are pure; QuantizedMatrix is a plain value.
#ifndef SLQ_SERVER_QUANT_QUANTIZER_H_
#define SLQ_SERVER_QUANT_QUANTIZER_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/grids.h"
#include "kernels/packed_matrix.h"

namespace slq::quant {

// How the codes and the per-group (scale, zero) are chosen; every rounding yields the same
// slq-packed-v1 layout (codes + fp16 scale/zero per group), so every kernel runs them unchanged.
// rtn: round to nearest on min/max (optionally MSE-clipped) ranges. mse and gptq need the Gram
// matrix of the layer's inputs (rounding.h).
enum class Rounding : int { kRtn = 0, kMse = 1, kGptq = 2 };
const char* RoundingName(Rounding r);  // "rtn", "mse", "gptq"

// How a group's (scale, zero) are stored (kernels/scale_codes.h): kFp16 = fp16 scale + fp16 zero;
// kS8 = 8-bit scale code + integer zero-point of `bits` bits (+ one fp32 base per matrix).
enum class ScaleFormat : int { kFp16 = 0, kS8 = 1 };
const char* ScaleFormatName(ScaleFormat f);  // "fp16", "s8"

struct QuantConfig {
  int bits = 4;                // 2..8
  int64_t group_size = 128;    // 32, 64, 128 (any >= 1 accepted) or -1 = per row
  bool symmetric = false;      // default asymmetric
  bool mse_clip = false;       // grid search of a shrink factor per group
  bool rotate = false;         // randomized Hadamard rotation of the input dimension
  uint64_t rotation_seed = 0;  // seed of the random signs
  // Grid Games (kernels/grids.h): each group takes the best of kernels::kGridCount grids, its
  // index stored in kernels::kGridIdBits bits. Asymmetric only.
  bool grids = false;
  ScaleFormat scales = ScaleFormat::kFp16;  // kS8: compact scales (kernels/scale_codes.h)
  // With mse_clip and grids: each group picks the (clip, grid) pair of least squared error
  // (true), or, false, first its clip on the uniform grid, then its grid at that (scale, zero)
  // (the rule before joint search; kept as the baseline of benches and tests).
  bool joint_clip_grid = true;
  std::string Describe() const;  // e.g. "q4 g128 asym", "q4 g128 asym grid", "q4 g64 asym s8"
};

// The random rotation applied to the input dimension (identity when block == 0).
struct Rotation {
  int64_t block = 0;  // power of two dividing cols; 0 = no rotation
  uint64_t seed = 0;
  bool enabled() const { return block > 0; }
};

// Builds the rotation for `cols` input features (largest power of two <= 1024 dividing cols).
Rotation MakeRotation(int64_t cols, uint64_t seed);
// In place: each of the n vectors of length cols (row-major [n, cols]) becomes R v.
void ApplyRotation(const Rotation& rot, float* v, int64_t n, int64_t cols);

// An owning quantized matrix in the slq-packed-v1 layout.
struct QuantizedMatrix {
  int64_t rows = 0, cols = 0;
  int bits = 0;
  int64_t group_size = 0;  // resolved: per-row == cols
  bool symmetric = false;
  bool mse_clip = false;
  Rounding rounding = Rounding::kRtn;  // recorded in artifacts ("quantizer")
  Rotation rotation;
  std::vector<uint32_t> codes;   // [rows, WordsPerRow(cols, bits)] packed codes
  std::vector<uint16_t> scales;  // [rows, GroupsPerRow(cols, group_size)] fp16
  std::vector<uint16_t> zeros;   // [rows, GroupsPerRow(cols, group_size)] fp16
  // [rows, WordsPerRow(GroupsPerRow(cols, group_size), kernels::kGridIdBits)]; empty = uniform grid
  std::vector<uint32_t> grid_ids;
  bool has_grids() const { return !grid_ids.empty(); }
  // Compact scales (ScaleFormat::kS8, kernels/scale_codes.h): the artifact's form. scales/zeros
  // above are always the fp16 expansion of these (ExpandScaleCodes), so only artifacts and
  // bits/param read them. Empty = fp16 scales.
  std::vector<uint8_t> scale_codes;  // [rows, GroupsPerRow(cols, group_size)] u
  std::vector<uint8_t> zero_points;  // [rows, GroupsPerRow(cols, group_size)] z; empty when symmetric
  float scale_base = 0.0f;           // D
  bool has_scale_codes() const { return !scale_codes.empty(); }
  ScaleFormat scale_format() const { return has_scale_codes() ? ScaleFormat::kS8 : ScaleFormat::kFp16; }
  kernels::PackedMatrixView View() const;
  std::string Describe() const;
  double BitsPerParam() const;
};

// Validates bits and group size; returns the resolved group size (cols for -1).
[[nodiscard]] absl::StatusOr<int64_t> ResolveGroupSize(int bits, int64_t group_size, int64_t cols);

// Quantizes w [rows, cols] fp32. InvalidArgument on bad bits/group size/shape, non-finite w, or
// grids with symmetric. With cfg.grids, grid_ids holds every group's grid (rotation composes:
// the grids apply in the rotated basis).
[[nodiscard]] absl::StatusOr<QuantizedMatrix> QuantizeMatrix(const float* w, int64_t rows, int64_t cols,
                                                             const QuantConfig& cfg);

// Quantizes one group of n values. codes[n] receive codes in [0, 2^bits-1]; returns via
// *scale16 / *zero16 the fp16 bits. With `grids` (asymmetric only; ignored when symmetric) each
// grid of kernels::GridLevels(bits, k) rounds every value to its nearest level
// (kernels::NearestLevel), and the grid with the least squared error wins (ties: the lowest
// index, so a group the uniform grid fits best stays on grid 0); its index goes to *grid_id
// (0 without grids). The codes then index that grid's levels. Without mse_clip, or with
// `joint` false, the (scale, zero) are those of the uniform grid (min/max or MSE-clipped) and
// every grid is tried at them; with mse_clip and `joint`, every (shrink, grid) pair is tried
// and the least error wins (ties: the larger range, then the lower grid), so its error is never
// above the sequential rule's. Used by QuantizeMatrix and rounding.cc.
void QuantizeGroup(const float* w, int64_t n, int bits, bool symmetric, bool mse_clip, uint8_t* codes,
                   uint16_t* scale16, uint16_t* zero16, bool grids = false, int* grid_id = nullptr, bool joint = true);

// The code of x under fp16 (s, m) on the grid `levels` (2^bits ascending levels, kernels/grids.h;
// null = the uniform grid: nearbyint, clamped) and, via *value, its dequantized weight m + s * L[q]
// (fp32, as the format). s <= 0: code 0. The one rounding rule of every quantizer.
// Inline: the inner loop of RTN, mse and GPTQ rounding.
inline uint8_t NearestCode(float x, float s, float m, int bits, const float* levels, float* value) {
  const int n = 1 << bits;
  uint8_t q = 0;
  if (s > 0.0f && levels == nullptr) {
    q = static_cast<uint8_t>(std::clamp(std::nearbyint((x - m) / s), 0.0f, static_cast<float>(n - 1)));
  } else if (s > 0.0f) {
    q = kernels::NearestLevel(levels, n, (x - m) / s);
  }
  *value = m + s * (levels ? levels[q] : static_cast<float>(q));
  return q;
}
// Encodes one group of n values under fp16 (s16, m16) on `levels` (null: uniform) with NearestCode
// and returns sum_j h_j (w_j - w'_j)^2 (h null: unweighted); codes written when non-null.
double EncodeGroup(const float* w, const double* h, int64_t n, int bits, float s16, float m16, const float* levels,
                   uint8_t* codes);

// S8 scales (kernels/scale_codes.h). The matrix's base D: DefaultScaleBase of the largest group
// step that min/max (asymmetric) or max|w| (symmetric) ranges need over w [rows, cols] at group
// size g (resolved). GPTQ takes it from the weights before error feedback.
float S8ScaleBase(const float* w, int64_t rows, int64_t cols, int64_t g, int bits, bool symmetric);

// The S8 (scale code u, zero-point z) of one group of n values (h: optional per-value weights of
// the squared error, e.g. diag(H); null = plain), and its fp16 expansion *s16 / *m16: the pair
// of least (weighted) squared error when the codes are re-rounded against it, among the codes
// around the min/max range (u in {u0 - 2 .. u0 + 1} with u0 the smallest code covering the
// range; z in {z0 - 1 .. z0 + 1}, z0 = nearest to -min / s) and, with mse_clip, around each
// range shrunk by a in {0.95, ..., 0.55}. Symmetric groups get only u (*z = 0; m16 =
// SymmetricZero). On the uniform grid (`levels` null) or the given grid's levels. Returns the
// error; codes (when non-null) receive the winner's codes.
double FitGroupS8(const float* w, const double* h, int64_t n, int bits, bool symmetric, bool mse_clip, float base,
                  const float* levels, uint8_t* u, uint8_t* z, uint16_t* s16, uint16_t* m16, uint8_t* codes);

// FitGroupS8 on every grid in turn (grids: each of kernels::kGridCount, asymmetric only; else the
// uniform grid alone), each with its own (u, z): the least (weighted) error wins, ties keep the
// lower grid. Returns the winner's grid id; the outputs (and codes, when non-null) are its.
int FitGroupS8BestGrid(const float* w, const double* h, int64_t n, int bits, bool symmetric, bool mse_clip, bool grids,
                       float base, uint8_t* u, uint8_t* z, uint16_t* s16, uint16_t* m16, uint8_t* codes);

// Dequantized weights [rows, cols] fp32 in the rotated basis (what Forward multiplies by).
std::vector<float> Dequantize(const QuantizedMatrix& q);
// Dequantized weights mapped back to the original basis (R^T applied per row).
std::vector<float> DequantizeOriginalBasis(const QuantizedMatrix& q);

// Bits per parameter: bits + 32 / group_size (fp16 scale + fp16 zero per group); per-row:
// bits + 32 / cols. Ragged last groups are counted exactly: bits + 32 * groups / cols.
// Symmetric groups store only the scale (the zero is SymmetricZero(scale)): bits + 16 / g.
// Grids add kernels::kGridIdBits per group (the grid index): + 2 / g.
// S8 scales (`rows` > 0 needed) store 8 bits per group (+ `bits` for the asymmetric zero-point)
// instead of 16 / 32, plus the 32-bit base once per matrix: + 32 / (rows * cols).
double BitsPerParam(int bits, int64_t group_size, int64_t cols, bool symmetric = false, bool grids = false,
                    ScaleFormat scales = ScaleFormat::kFp16, int64_t rows = 0);

// The fp16 zero of a symmetric group: -s * (2^(b-1) - 1) rounded to fp16, a function of the
// stored fp16 scale, so artifacts do not store it (the loader recomputes it bit-exactly).
uint16_t SymmetricZero(uint16_t scale16, int bits);

// ||W - W'||_F^2 / ||W||_F^2 of an already quantized w [q.rows, q.cols] (row-parallel, no
// dequantized copy).
double RelativeError(const float* w, const QuantizedMatrix& q);

// Relative error ||W - W'||_F^2 / ||W||_F^2 of quantizing w at cfg (the linearity proxy's err).
[[nodiscard]] absl::StatusOr<double> RelativeQuantError(const float* w, int64_t rows, int64_t cols,
                                                        const QuantConfig& cfg);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_QUANTIZER_H_
