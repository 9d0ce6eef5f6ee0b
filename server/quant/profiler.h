// Per-layer sensitivity profiling (METHOD.md section 4).
//
//   ModelQuantizer mq(model.get(), cfg, false);  SLQ_RETURN_IF_ERROR(mq.Init());
//   SLQ_ASSIGN_OR_RETURN(int calib, eval->AddBaseSet(calib_seqs));   // eval_backend.h
//   SLQ_ASSIGN_OR_RETURN(LayerProfiles p, ProfileLayers(mq, *eval, calib, opts, progress));
//   double d = p.Damage(i, 4, DamageMetric::kKl);
//
// Measured: each quantizable layer alone at each allowed choice, the rest dense; records mean
// KL and mean 1 - EAR over the calibration positions against the base logits of the
// EvalBackend's set (L x |B| evaluations, on the CPU or the GPU: the backend mirrors every
// swap through the ModelQuantizer's change observer). A choice whose weights for a layer are
// bit-identical to an already measured one's (ModelQuantizer::SameWeights: g64 vs g128 on a
// layer of <= 64 columns) takes that measurement instead of an evaluation. Results are cached as JSON files in
// opts.cache_dir, one per (estimator, model sha, data sha, bitwidth, group size, quantizer flags, temperature). The
// proxy caches its alphas per (model sha, data sha, noise, seed, temperature, rotation) and its relative errors per
// (model sha, bitwidth, group size, quantizer flags): a cached proxy profile costs no forward pass. Proxy (linearity
// theorem, HIGGS): err_l(b) = ||W - W'||^2 / ||W||^2 from the weights alone; alpha_l from one pass with Gaussian noise
// of relative energy noise_rel injected into layer l: predicted KL_l(b) = alpha_kl_l * err_l(b) (KL is second order in
// the perturbation, err is a squared norm) and 1 - EAR_l(b) = alpha_ear_l * sqrt(err_l(b)) (TV is first order).
// Scale-out: `layers` restricts the work to some slots so that several workers can each
// profile a share (each with its own model copy); MergeProfiles joins the shares.
// Thread safety: mutates the model through the ModelQuantizer; one profile at a time per model.
#ifndef SLQ_SERVER_QUANT_PROFILER_H_
#define SLQ_SERVER_QUANT_PROFILER_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/quant/eval_backend.h"
#include "server/quant/evaluator.h"
#include "server/quant/model_quantizer.h"

namespace slq::quant {

enum class DamageMetric { kKl, kOneMinusEar };

// Bitwidth keys below are layer choice codes (choice.h, relative to the ModelQuantizer's
// config): the bitwidth for RTN at the base variant, EncodeChoice(...) otherwise. The cache keys
// hold the code and the base (group size, symmetric), so each names one variant exactly; grid
// choices also name the grid tables (artifact.h kGridTablesName).
struct LayerProfile {
  std::string name;
  int layer = -1;
  int64_t rows = 0, cols = 0;
  std::map<int, double> kl;             // measured: mean KL with only this layer at b bits
  std::map<int, double> one_minus_ear;  // measured: mean 1 - EAR
  std::map<int, double> rel_err;        // ||W - W'||^2 / ||W||^2 (both estimators)
  double alpha_kl = 0, alpha_ear = 0;   // proxy calibration
};

struct LayerProfiles {
  std::string estimator;  // "measured" or "proxy"
  std::vector<int> bits;
  int64_t group_size = 0;
  std::vector<LayerProfile> layers;
  double wall_seconds = 0;
  int cache_hits = 0;  // cache files served whole (measured: per bitwidth; proxy: alphas + per bitwidth)
  int twins = 0;       // measured: (layer, choice)s copied from a choice with identical weights (not evaluated)
  // Predicted damage of layer i at b bits.
  double Damage(size_t i, int bits, DamageMetric metric) const;
};
void to_json(nlohmann::json& j, const LayerProfiles& p);
void from_json(const nlohmann::json& j, LayerProfiles& p);

struct ProfileOptions {
  std::string estimator = "measured";  // or "proxy"
  std::vector<int> bits = {4, 8};
  double temperature = 1.0;
  double noise_rel = 0.01;  // proxy: relative noise energy of the calibration injection
  uint64_t seed = 1234;
  std::string cache_dir;            // empty: no cache
  std::string model_sha, data_sha;  // cache key parts
  std::string activation_key;       // where mse/gptq choices' Gram came from (part of their keys)
  std::vector<std::string> layers;  // empty: all quantizable slots
};

using ProgressFn = std::function<void(const std::string& stage, double fraction)>;

[[nodiscard]] absl::StatusOr<LayerProfiles> ProfileLayers(ModelQuantizer& mq, EvalBackend& eval, int calib_set,
                                                          const ProfileOptions& opts, const ProgressFn& progress);

// Joins per-worker shares (same estimator/bits); layers ordered by the first share's order.
[[nodiscard]] absl::StatusOr<LayerProfiles> MergeProfiles(const std::vector<LayerProfiles>& parts);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_PROFILER_H_
