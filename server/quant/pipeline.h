// The quantization pipeline (METHOD.md sections 4-6): load -> data split -> base logits ->
// profile -> search (closed loop on the calibration split) -> verify once on held-out ->
// artifact with the fidelity certificate.
//
// One call:
//   PipelineOptions o;  o.model_path = ".../tinystories-656k";  o.data_path = ".../x.txt";
//   o.target = "ear>=0.99";  o.formats = "4-8";  o.output_dir = "/store/a1";
//   SLQ_ASSIGN_OR_RETURN(PipelineResult r, QuantizeModel(o, [](auto& stage, double f) {...}));
//   // r.target_met, r.status ("met" / "unreachable: best found EAR ... at ... bits" / ...),
//   // r.certificate (JSON, also in <output_dir>/manifest.json under "certificate").
//
// Stage by stage (for the job service; each stage's output is JSON-serialisable):
//   auto s = QuantizationSession::Open(o, progress);           // load, data, base_logits
//   LayerProfiles p = s->Profile();                            // profile
//   SearchOutcome a = s->Search(p);                            // search + closed loop
//   FidelityReport h = s->Verify(a.bits);                      // verify (held-out, once)
//   PipelineResult r = s->Finish(p, a, h);                     // certificate + artifact
// A failing target is not an error: the result says so, the artifact is still written and
// its certificate marks it failing. Errors (bad options, unreadable model, text too short)
// are Status values naming the problem.
// Thread safety: a session is used by one thread at a time.
#ifndef SLQ_SERVER_QUANT_PIPELINE_H_
#define SLQ_SERVER_QUANT_PIPELINE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "server/model/model.h"
#include "server/model/tokenizer/tokenizer.h"
#include "server/quant/cloze.h"
#include "server/quant/eval_backend.h"
#include "server/quant/eval_data.h"
#include "server/quant/metrics.h"
#include "server/quant/model_quantizer.h"
#include "server/quant/profiler.h"
#include "server/quant/search.h"

namespace slq::quant {

inline constexpr char kToolVersion[] = "slq-quant 0.1.0";

struct PipelineOptions {
  std::string model_path;      // HF folder or llama2.c .bin
  std::string tokenizer_path;  // empty: the HF model folder; a llama2.c tokenizer .bin otherwise
  std::string model_id;        // for the certificate (default: model_path)
  std::string data_path;       // calibration + held-out text (split by document)
  // A separate held-out text: when set, verification (and the TL cloze) uses it and every document of
  // data_path is calibration; empty: held-out is the split of data_path.
  std::string heldout_path;
  std::string data_id;     // for the certificate: the name/ref the calibration text was given by (default: data_path)
  std::string heldout_id;  // likewise for heldout_path
  std::string output_dir;  // artifact directory (must not exist); empty: no artifact
  std::string target = "ear>=0.99";  // ear>=X | kl<=X | bits<=X | tl
  std::string formats = "4-8";       // allowed bitwidths: "4-8", "4-5-6-7-8", "2..8", "4,6,8"
  int uniform_bits = 0;              // > 0: every layer at this width (baselines; no search)
  int64_t group_size = 128;          // 32/64/128 or -1 (per row)
  bool symmetric = false;
  bool mse_clip = false;
  bool rotate = false;  // randomized Hadamard rotation (HIGGS)
  // Roundings the search may choose per layer (rounding.h), e.g. "rtn,mse,gptq"; "rtn" alone
  // reproduces the width-only search. With uniform_bits and one rounding listed: that rounding.
  std::string quantizers = "rtn";
  // Variants the search may choose per layer (spec::ParseVariants): symmetry "" (only
  // `symmetric`'s), "asym", "sym" or "both"; group_sizes "" (only group_size) or a comma list
  // containing group_size, e.g. "64,128". The defaults reproduce the width-only search exactly.
  std::string symmetry;
  std::string group_sizes;
  // Grid Games (choice.h Choice::grids): "" or "off" (uniform grid only), "on" (every
  // asymmetric candidate carries per-group grids instead) or "both" (each asymmetric candidate
  // and its grid twin). Symmetric candidates stay uniform.
  std::string grids;
  // Compact group scales (choice.h Choice::s8, quantizer.h ScaleFormat::kS8): "" or "fp16"
  // (fp16 scales only), "s8" (every candidate in s8 scales instead) or "both" (each candidate
  // and its s8 twin). Not combined with rotate.
  std::string scales;
  double gptq_damp = 0.1;       // GPTQ dampening, relative to mean diag(X^T X) (rounding.h)
  bool gptq_act_order = false;  // GPTQ columns by descending diag(X^T X) (rounding.h)
  // Where mse/gptq take their input Gram from (eval_data.h); unused with quantizers "rtn".
  GramDataOptions gram_data;
  uint64_t rotation_seed = 1;
  std::string estimator = "measured";  // measured | proxy
  std::string solver = "dp";           // dp | lagrangian
  double temperature = 1.0;
  EvalDataOptions data;
  int bootstrap_resamples = 1000;    // held-out verification
  int calibration_resamples = 1000;  // closed-loop checks on the calibration split
  uint64_t seed = 1234;              // bootstrap + noise seeds
  int closed_loop_max_evals = 10;
  // Closed-loop acceptance: an allocation passes on calibration when its predicted held-out
  // bound (transfer_bound.h, one-sided z of the calibration -> held-out transfer) meets the
  // target. 0 = the plain calibration 95% bound (the old rule, which missed on held-out).
  double transfer_z = 1.96;
  // TL cloze items wanted from the held-out text (all its windows, cloze.h); capped by the text;
  // 0 = no TL check (a `tl` target then is refused).
  int64_t cloze_max_items = 2000;
  bool quantize_lm_head = false;  // default: LM head kept at 16 bits
  bool embeddings_fp16 = true;    // round embeddings (+ unquantized LM head) to fp16
  std::string profile_cache_dir;  // empty: no profile cache
};
// Whether a run with these options rounds any layer with mse/gptq, so needs Gram windows: some
// listed quantizer is not rtn, and not a uniform baseline over several (which rounds with rtn).
bool UsesGram(const PipelineOptions& o);
// o.gram_data with its scheme resolved: a `bits<=X` target fits the Gram on every calibration
// window ("all-calibration": no closed-loop acceptance to bias, and the larger Gram rounds better);
// fidelity targets keep windows the loop never measures.
GramDataOptions EffectiveGramData(const PipelineOptions& o);

void to_json(nlohmann::json& j, const PipelineOptions& o);
void from_json(const nlohmann::json& j, PipelineOptions& o);  // missing keys keep defaults

struct LoopStep {
  double max_damage = 0;
  double avg_bits = 0;
  double calib_metric = 0;  // predicted held-out bound from the calibration split
  double calib_mean = 0;    // calibration point estimate (EAR or KL)
  double calib_kl = 0;      // calibration mean KL (what the allocation budgets)
  bool met = false;
};

struct SearchOutcome {
  std::map<std::string, int> bits;  // per quantizable slot: the layer choice code (choice.h)
  // Per slot: the choice's name (Choice::Name, e.g. "gptq4 sym g64"), filled by Search.
  std::map<std::string, std::string> variants;
  double avg_bits = 0;           // over quantized layers, weighted by parameters
  double max_damage = 0;         // D of the chosen allocation (target mode)
  bool calibration_met = false;  // target met on the calibration split
  double calib_metric = 0;       // predicted held-out bound (see PipelineOptions::transfer_z)
  double calib_mean = 0;         // calibration point estimate of the target metric
  std::string damage_metric;     // what the knapsack budgets: "kl" (additive across layers)
  std::vector<LoopStep> steps;   // closed-loop history
  std::string note;
  double wall_seconds = 0;
};
// JSON: "bits" holds each layer's width (16 = dense); "choices" the exact choice codes and
// "variants" their names, written only when some layer is not plain RTN at the run's base
// variant (from_json prefers "choices"), so the outcome round-trips.
void to_json(nlohmann::json& j, const SearchOutcome& s);
void from_json(const nlohmann::json& j, SearchOutcome& s);

struct PipelineResult {
  bool target_met = false;
  std::string status;        // "met", "unreachable: best found EAR X at Y bits", "failed on held-out: ..."
  std::string artifact_dir;  // empty when no output_dir
  nlohmann::json certificate;
};

class QuantizationSession {
 public:
  // Stages load, data, base_logits. InvalidArgument for bad options / too little text.
  // `eval` builds where evaluations run (eval_backend.h); null: the CPU.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<QuantizationSession>> Open(
      const PipelineOptions& options, const ProgressFn& progress = nullptr, const EvalBackendFactory& eval = nullptr);

  // All quantizable slots, or only `layers` (a worker's share; MergeProfiles joins shares).
  [[nodiscard]] absl::StatusOr<LayerProfiles> Profile(const std::vector<std::string>& layers = {});
  [[nodiscard]] absl::StatusOr<SearchOutcome> Search(const LayerProfiles& profile);
  // Quantizes with `bits` and evaluates on the held-out split (bootstrap_resamples).
  [[nodiscard]] absl::StatusOr<FidelityReport> Verify(const std::map<std::string, int>& bits);
  // Builds the certificate and writes the artifact (when output_dir is set).
  [[nodiscard]] absl::StatusOr<PipelineResult> Finish(const LayerProfiles& profile, const SearchOutcome& search,
                                                      const FidelityReport& heldout);

  const EvalData& data() const { return data_; }
  Model& model() { return *model_; }
  const Target& target() const { return target_; }
  const std::vector<int>& formats() const { return formats_; }
  // Average bits/param over the quantizable layers for an allocation (each layer's exact
  // bits/param at its choice's width, symmetry and group size).
  double AverageBits(const std::map<std::string, int>& bits) const;
  // The run's base variant: choice codes are relative to it (choice.h).
  ChoiceBase choice_base() const { return BaseOf(mq_->config()); }
  std::map<std::string, double>& stage_seconds() { return stage_seconds_; }
  const PipelineOptions& options() const { return opts_; }
  // What Open builds depends only on these options (model, tokenizer, text and its split, the
  // quantizer's flags, the kept tensors' rounding): sessions with equal keys are
  // interchangeable up to Retarget. A worker reuses one across the tasks of one job (and of
  // jobs on the same model and data that differ only in target, formats, search options).
  static std::string ReuseKey(const PipelineOptions& options);
  // Takes the other options (target, formats, estimator, solver, output_dir, seeds of the
  // bootstrap, ...) from `options`, whose ReuseKey must equal this session's (else
  // FailedPrecondition); InvalidArgument for a bad target or formats.
  [[nodiscard]] absl::Status Retarget(const PipelineOptions& options);
  void set_progress(ProgressFn progress) { progress_ = std::move(progress); }
  // Where evaluations run ("cpu", "cuda:0 ...").
  std::string eval_device() const { return eval_->device(); }

 private:
  QuantizationSession() = default;
  // Applies `bits` and evaluates against the EvalBackend's base set `set`.
  absl::StatusOr<FidelityReport> EvaluateOn(const std::map<std::string, int>& bits, int set, int resamples,
                                            std::vector<SequenceMetrics>* per_seq = nullptr);
  bool Met(const FidelityReport& r, double avg_bits) const;
  double Conservative(const FidelityReport& r) const;
  // The certificate's "heldout_dataset": the text held-out verification ran on (id, path, sha256).
  nlohmann::json HeldoutDataset() const;
  // The closed loop's predicted held-out bound from a calibration report (transfer_bound.h).
  double CalibrationBound(const FidelityReport& r) const;
  std::vector<LayerOptions> Options(const LayerProfiles& profile) const;
  // Captures the quantizable slots' input Grams on the calibration split once, when `needed`
  // (some choice is mse/gptq) and not yet captured.
  absl::Status EnsureInputGrams(bool needed);

  PipelineOptions opts_;
  ProgressFn progress_;
  Target target_;
  std::vector<int> formats_;
  std::vector<Rounding> roundings_;
  spec::VariantSpace variants_;  // symmetric / group sizes offered per layer
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<std::string> tokenizer_files_;
  EvalData data_;
  std::unique_ptr<EvalBackend> eval_;      // declared before mq_: mq_'s observer points into it
  int calib_set_ = -1, heldout_set_ = -1;  // eval_'s base sets
  // InvalidArgument when `target` is `tl` and the TL cloze cannot detect a 0.05 accuracy
  // difference with 80% power (names the items it has and the held-out text it needs).
  absl::Status CheckTlTestable(const Target& target) const;
  // The current model's hits on the cloze items (base in Open, quantized in Verify).
  absl::StatusOr<std::vector<uint8_t>> ClozeHitsOfModel() const;

  ClozeTask cloze_;                       // TL task on the held-out text (windows + items)
  std::vector<uint8_t> cloze_base_hits_;  // the base model's hits (computed in Open)
  std::unique_ptr<ModelQuantizer> mq_;
  std::map<std::string, double> stage_seconds_;
};

// All stages in order.
[[nodiscard]] absl::StatusOr<PipelineResult> QuantizeModel(const PipelineOptions& options,
                                                           const ProgressFn& progress = nullptr,
                                                           const EvalBackendFactory& eval = nullptr);

}  // namespace slq::quant

#endif  // SLQ_SERVER_QUANT_PIPELINE_H_
