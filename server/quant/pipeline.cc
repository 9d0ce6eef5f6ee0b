#include "server/quant/pipeline.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "server/common/file_util.h"
#include "server/common/half.h"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"
#include "server/model/model_loader.h"
#include "server/quant/evaluator.h"
#include "server/quant/input_gram.h"
#include "server/quant/tl_power.h"

namespace slq::quant {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

absl::Status CheckOptions(const PipelineOptions& o) {
  if (o.model_path.empty()) return absl::InvalidArgumentError("model_path is empty");
  if (o.data_path.empty()) return absl::InvalidArgumentError("data_path is empty");
  if (o.estimator != "measured" && o.estimator != "proxy") {
    return absl::InvalidArgumentError(absl::StrCat("estimator '", o.estimator, "'; allowed: measured, proxy"));
  }
  if (o.solver != "dp" && o.solver != "lagrangian") {
    return absl::InvalidArgumentError(absl::StrCat("solver '", o.solver, "'; allowed: dp, lagrangian"));
  }
  if (o.uniform_bits != 0 && (o.uniform_bits < 2 || o.uniform_bits > 8)) {
    return absl::InvalidArgumentError(absl::StrCat("uniform_bits = ", o.uniform_bits, "; allowed 0 (search) or 2..8"));
  }
  if (o.bootstrap_resamples < 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("bootstrap_resamples = ", o.bootstrap_resamples, "; the certificate needs >= 1000"));
  }
  if (o.calibration_resamples < 1 || o.closed_loop_max_evals < 1 || !(o.transfer_z >= 0)) {
    return absl::InvalidArgumentError("calibration_resamples and closed_loop_max_evals must be >= 1, transfer_z >= 0");
  }
  if (o.cloze_max_items < 0) {
    return absl::InvalidArgumentError(absl::StrCat("cloze items (--cloze-items, cloze_max_items) = ", o.cloze_max_items,
                                                   "; must be >= 0 (0 = no TL check)"));
  }
  if (!(o.gptq_damp > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("gptq_damp = ", o.gptq_damp, "; must be > 0"));
  }
  if (!(o.temperature > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature = ", o.temperature, "; must be > 0"));
  }
  if (!o.output_dir.empty() && fs::exists(o.output_dir)) {
    return absl::AlreadyExistsError(absl::StrCat("output_dir ", o.output_dir, " exists"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const PipelineOptions& o, const Model& m,
                                                         std::vector<std::string>* files) {
  std::string path = o.tokenizer_path;
  if (path.empty())
    path = fs::is_directory(o.model_path) ? o.model_path : fs::path(o.model_path).parent_path().string();
  if (fs::is_directory(path)) {
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json",
                          "generation_config.json"}) {
      if (fs::exists(fs::path(path) / f)) files->push_back((fs::path(path) / f).string());
    }
    return Tokenizer::FromHfDir(path);
  }
  files->push_back(path);
  return Tokenizer::FromLlama2c(path, static_cast<int>(m.config.vocab_size));
}

// Rounds embeddings and a dense LM head to fp16: "kept at 16 bits", stored losslessly as F16.
void RoundKeptTensorsToFp16(Model& m, bool round_head) {
  for (float& x : m.embed) x = RoundToHalf(x);
  if (!round_head) return;
  if (const auto* d = dynamic_cast<const DenseLinear*>(m.lm_head.get())) {
    std::vector<float> w = d->weight();
    for (float& x : w) x = RoundToHalf(x);
    m.lm_head = std::make_unique<DenseLinear>(d->out_features(), d->in_features(), std::move(w));
  }
}

// s8 scales are not combined with a rotation (quantizer.h).
absl::Status CheckScalesWithRotation(const PipelineOptions& o, const spec::VariantSpace& v) {
  if (!o.rotate || std::find(v.s8.begin(), v.s8.end(), true) == v.s8.end()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("scales '", o.scales,
                   "' cannot be combined with rotate (--hadamard; rotated layers keep fp16 scales): "
                   "set scales to fp16, or drop rotate"));
}

// bits<=X against the exact floor: every quantized slot at its cheapest offered candidate,
// charged Choice::BitsPerParam(rows, cols) (ragged groups and the s8 base included), averaged
// over the slots' parameters as AverageBits does. spec::CheckBitsReachable's floor is a lower
// bound of this one (it knows no shapes).
absl::Status CheckExactBitsFloor(const Target& target, const std::vector<int>& formats,
                                 const std::vector<Rounding>& roundings, const spec::VariantSpace& v,
                                 const ModelQuantizer& mq) {
  if (target.kind != Target::Kind::kBits || formats.empty() || roundings.empty()) return absl::OkStatus();
  const ChoiceBase base = BaseOf(mq.config());
  double num = 0, den = 0, largest = 0;
  std::string cheapest;  // the largest slot's cheapest choice, for the message
  for (const SlotInfo& s : mq.slots()) {
    double best = -1;
    std::string name;
    for (bool sym : v.symmetric) {
      for (int64_t g : v.groups) {
        for (bool grids : sym ? std::vector<bool>{false} : v.grids) {
          for (bool s8 : v.s8) {
            const Choice c{formats.front(), roundings.front(), sym, g, grids, s8};
            if (!EncodeChoice(c, base).ok()) continue;
            const double b = c.BitsPerParam(s.rows, s.cols);
            if (best < 0 || b < best) {
              best = b;
              name = c.Name();
            }
          }
        }
      }
    }
    if (best < 0) continue;
    if (static_cast<double>(s.params()) > largest) {
      largest = static_cast<double>(s.params());
      cheapest = name;
    }
    num += best * static_cast<double>(s.params());
    den += static_cast<double>(s.params());
  }
  const double floor = den > 0 ? num / den : 0;
  if (den > 0 && target.value + 1e-9 < floor) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "target '%s' is unreachable for this model with formats {%s}: every layer at its cheapest offered "
        "choice (e.g. %s) averages %.4f bits/param (its groups' scales and zeros counted exactly, ragged last "
        "groups included); raise the budget to at least %.4f, or offer a smaller width, a larger group or s8 scales",
        target.ToString(), absl::StrJoin(formats, ","), cheapest, floor, floor));
  }
  return absl::OkStatus();
}

}  // namespace

bool UsesGram(const PipelineOptions& o) {
  absl::StatusOr<std::vector<Rounding>> r = ParseRoundings(o.quantizers);
  if (!r.ok() || !NeedsGram(*r)) return false;
  return o.uniform_bits == 0 || r->size() == 1;  // Search: a uniform run over several lists rounds rtn
}

GramDataOptions EffectiveGramData(const PipelineOptions& o) {
  GramDataOptions g = o.gram_data;
  absl::StatusOr<Target> t = ParseTarget(o.target);
  if (g.scheme.empty() && t.ok() && t->kind == Target::Kind::kBits) g.scheme = "all-calibration";
  return g;
}

absl::StatusOr<std::unique_ptr<QuantizationSession>> QuantizationSession::Open(const PipelineOptions& options,
                                                                               const ProgressFn& progress,
                                                                               const EvalBackendFactory& eval) {
  SLQ_RETURN_IF_ERROR(CheckOptions(options));
  std::unique_ptr<QuantizationSession> s(new QuantizationSession());
  s->opts_ = options;
  if (s->opts_.model_id.empty()) s->opts_.model_id = options.model_path;
  s->progress_ = progress;
  SLQ_ASSIGN_OR_RETURN(s->target_, ParseTarget(options.target));
  SLQ_ASSIGN_OR_RETURN(s->formats_, ParseFormats(options.formats));
  SLQ_ASSIGN_OR_RETURN(s->roundings_, ParseRoundings(options.quantizers));
  if (options.rotate && s->roundings_ != std::vector<Rounding>{Rounding::kRtn}) {
    return absl::InvalidArgumentError("rotation is only combined with quantizers 'rtn'");
  }
  SLQ_ASSIGN_OR_RETURN(s->variants_, spec::ParseVariants(options.group_size, options.symmetric, options.symmetry,
                                                         options.group_sizes, options.grids, options.scales));
  SLQ_RETURN_IF_ERROR(CheckScalesWithRotation(options, s->variants_));
  if (options.uniform_bits == 0) {
    SLQ_RETURN_IF_ERROR(spec::CheckBitsReachable(s->target_, s->formats_, s->variants_));
  }
  if (progress) progress("load", 0);
  auto t0 = Clock::now();
  SLQ_ASSIGN_OR_RETURN(s->model_, LoadModel(options.model_path));
  SLQ_ASSIGN_OR_RETURN(s->tokenizer_, LoadTokenizer(options, *s->model_, &s->tokenizer_files_));
  s->stage_seconds_["load"] = Since(t0);
  if (progress) progress("data", 0);
  t0 = Clock::now();
  SLQ_ASSIGN_OR_RETURN(std::string text, ReadFile(options.data_path));
  if (options.heldout_path.empty()) {
    SLQ_ASSIGN_OR_RETURN(s->data_, PrepareEvalData(text, *s->tokenizer_, options.data));
    if (UsesGram(options)) {
      SLQ_RETURN_IF_ERROR(AddGramWindows(text, *s->tokenizer_, options.data, EffectiveGramData(options), &s->data_));
    }
  } else {
    SLQ_ASSIGN_OR_RETURN(std::string heldout, ReadFile(options.heldout_path));
    SLQ_ASSIGN_OR_RETURN(s->data_, PrepareEvalData(text, *s->tokenizer_, options.data, &heldout));
    if (UsesGram(options)) {
      SLQ_RETURN_IF_ERROR(
          AddGramWindows(text, *s->tokenizer_, options.data, EffectiveGramData(options), &s->data_, &heldout));
    }
  }
  s->stage_seconds_["data"] = Since(t0);
  if (progress) progress("base_logits", 0);
  t0 = Clock::now();
  if (eval) {
    SLQ_ASSIGN_OR_RETURN(s->eval_, eval(*s->model_));
  } else {
    s->eval_ = MakeCpuEvalBackend(*s->model_);
  }
  s->stage_seconds_["eval_setup"] = Since(t0);  // e.g. the GPU mirror's upload
  SLQ_ASSIGN_OR_RETURN(s->calib_set_, s->eval_->AddBaseSet(s->data_.calibration));
  SLQ_ASSIGN_OR_RETURN(s->heldout_set_, s->eval_->AddBaseSet(s->data_.heldout));
  s->stage_seconds_["base_logits"] = Since(t0);
  // The base model's answers to the TL cloze (METHOD.md 1) on items from every held-out window;
  // computed once per session, the quantized model's only at verification.
  t0 = Clock::now();
  if (options.cloze_max_items > 0) {
    s->cloze_ = SelectClozeTask(s->data_.heldout_all, *s->tokenizer_, 8, options.cloze_max_items);
    SLQ_ASSIGN_OR_RETURN(s->cloze_base_hits_, s->ClozeHitsOfModel());
  }
  s->stage_seconds_["cloze_base"] = Since(t0);
  SLQ_RETURN_IF_ERROR(s->CheckTlTestable(s->target_));  // before any profiling
  // After the base logits: the rounding's own damage is part of every measurement.
  if (options.embeddings_fp16) {
    RoundKeptTensorsToFp16(*s->model_, !options.quantize_lm_head);
    SLQ_RETURN_IF_ERROR(s->eval_->KeptTensorsChanged(*s->model_));
  }
  QuantConfig cfg;
  cfg.group_size = options.group_size;
  cfg.symmetric = s->variants_.base_symmetric;  // --symmetric or symmetry "sym"
  cfg.mse_clip = options.mse_clip;
  cfg.rotate = options.rotate;
  cfg.rotation_seed = options.rotation_seed;
  SLQ_RETURN_IF_ERROR(ResolveGroupSize(4, cfg.group_size, 1 << 20).status());
  s->mq_ = std::make_unique<ModelQuantizer>(s->model_.get(), cfg, options.quantize_lm_head);
  SLQ_RETURN_IF_ERROR(s->mq_->Init());
  s->mq_->set_gptq_options(GptqOptions{.damp = options.gptq_damp, .act_order = options.gptq_act_order});
  if (options.uniform_bits == 0) {  // the exact floor needs the layers' shapes
    SLQ_RETURN_IF_ERROR(CheckExactBitsFloor(s->target_, s->formats_, s->roundings_, s->variants_, *s->mq_));
  }
  s->mq_->set_on_change(
      [e = s->eval_.get()](const std::string& slot, const LinearOp& op) { return e->SlotChanged(slot, op); });
  return s;
}

std::string QuantizationSession::ReuseKey(const PipelineOptions& o) {
  nlohmann::json data = o.data;
  // Sessions with Gram windows (and, for split-calibration, fewer calibration windows) are not
  // reused for RTN-only runs and vice versa.
  nlohmann::json gram = UsesGram(o) ? nlohmann::json(EffectiveGramData(o)) : nlohmann::json();
  return nlohmann::json{{"model_path", o.model_path},
                        {"tokenizer_path", o.tokenizer_path},
                        {"data_path", o.data_path},
                        {"heldout_path", o.heldout_path},
                        {"data", data},
                        {"group_size", o.group_size},
                        {"symmetric", o.symmetric || o.symmetry == "sym"},  // the base variant
                        {"mse_clip", o.mse_clip},
                        {"rotate", o.rotate},
                        {"rotation_seed", o.rotation_seed},
                        {"gptq_damp", o.gptq_damp},
                        {"gptq_act_order", o.gptq_act_order},
                        {"gram", gram},
                        {"quantize_lm_head", o.quantize_lm_head},
                        {"embeddings_fp16", o.embeddings_fp16},
                        {"cloze_max_items", o.cloze_max_items}}
      .dump();
}

absl::Status QuantizationSession::Retarget(const PipelineOptions& options) {
  if (ReuseKey(options) != ReuseKey(opts_)) {
    return absl::FailedPreconditionError("Retarget: the options need another model, text or quantizer");
  }
  SLQ_RETURN_IF_ERROR(CheckOptions(options));
  SLQ_ASSIGN_OR_RETURN(Target target, ParseTarget(options.target));
  SLQ_ASSIGN_OR_RETURN(std::vector<int> formats, ParseFormats(options.formats));
  SLQ_ASSIGN_OR_RETURN(std::vector<Rounding> roundings, ParseRoundings(options.quantizers));
  if (options.rotate && roundings != std::vector<Rounding>{Rounding::kRtn}) {
    return absl::InvalidArgumentError("rotation is only combined with quantizers 'rtn'");
  }
  SLQ_ASSIGN_OR_RETURN(spec::VariantSpace variants,
                       spec::ParseVariants(options.group_size, options.symmetric, options.symmetry, options.group_sizes,
                                           options.grids, options.scales));
  SLQ_RETURN_IF_ERROR(CheckScalesWithRotation(options, variants));
  if (options.uniform_bits == 0) {
    SLQ_RETURN_IF_ERROR(spec::CheckBitsReachable(target, formats, variants));
    SLQ_RETURN_IF_ERROR(CheckExactBitsFloor(target, formats, roundings, variants, *mq_));
  }
  SLQ_RETURN_IF_ERROR(CheckTlTestable(target));  // the same items (equal keys): only the target matters
  const std::string model_id = opts_.model_id;
  opts_ = options;
  if (opts_.model_id.empty()) opts_.model_id = model_id.empty() ? options.model_path : model_id;
  target_ = target;
  formats_ = std::move(formats);
  roundings_ = std::move(roundings);
  variants_ = std::move(variants);
  mq_->RestoreAll();  // every stage starts from the dense model
  return absl::OkStatus();
}

absl::StatusOr<LayerProfiles> QuantizationSession::Profile(const std::vector<std::string>& layers) {
  if (progress_) progress_("profile", 0);
  const auto t0 = Clock::now();
  LayerProfiles p;
  if (opts_.uniform_bits > 0) {  // baselines: nothing to profile
    p.estimator = opts_.estimator;
    p.bits = {opts_.uniform_bits};
    p.group_size = opts_.group_size;
  } else {
    ProfileOptions po;
    po.estimator = opts_.estimator;
    po.bits.clear();
    // Every rounding x symmetry x group x grids x scales x width (the base variant first: with one variant
    // offered, the codes and their order are the width-and-rounding search's). Grids are
    // offered to asymmetric candidates only.
    for (Rounding r : roundings_) {
      for (bool sym : variants_.symmetric) {
        for (int64_t g : variants_.groups) {
          for (bool grids : sym ? std::vector<bool>{false} : variants_.grids) {
            for (bool s8 : variants_.s8) {
              for (int b : formats_) {
                SLQ_ASSIGN_OR_RETURN(const int code, EncodeChoice(Choice{b, r, sym, g, grids, s8}, choice_base()));
                po.bits.push_back(code);
              }
            }
          }
        }
      }
    }
    SLQ_RETURN_IF_ERROR(
        EnsureInputGrams(std::any_of(po.bits.begin(), po.bits.end(), [](int c) { return UsesActivations(c); })));
    po.temperature = opts_.temperature;
    po.seed = opts_.seed;
    po.cache_dir = opts_.profile_cache_dir;
    po.layers = layers;
    po.model_sha = model_->identity_sha256;
    // A separate held-out text makes the whole text calibration: another calibration set; so
    // does split-calibration (some windows went to the Gram): keyed by the windows themselves.
    po.data_sha = absl::StrCat(data_.data_sha256, data_.heldout_sha256.empty() ? "" : "-whole", "-",
                               nlohmann::json(opts_.data).dump());
    if (data_.gram_scheme == "split-calibration") {
      absl::StrAppend(&po.data_sha, "-calibration:", Sha256Hex(nlohmann::json(data_.calibration).dump()));
    }
    // mse/gptq choices also depend on the Gram windows (their content, not only the options).
    if (!data_.gram_scheme.empty()) {
      po.activation_key = absl::StrCat(data_.gram_scheme, ":", Sha256Hex(nlohmann::json(data_.gram).dump()));
    }
    SLQ_ASSIGN_OR_RETURN(p, ProfileLayers(*mq_, *eval_, calib_set_, po, progress_));
  }
  stage_seconds_["profile"] = Since(t0);
  return p;
}

double QuantizationSession::AverageBits(const std::map<std::string, int>& bits) const {
  double num = 0, den = 0;
  for (const SlotInfo& s : mq_->slots()) {
    auto it = bits.find(s.name);
    // Codes come from this session (checked when applied); a bad one counts as dense here.
    const absl::StatusOr<Choice> c = it == bits.end() ? Choice{} : DecodeChoice(it->second, choice_base());
    const double bpp = c.ok() ? c->BitsPerParam(s.rows, s.cols) : 16.0;
    num += bpp * static_cast<double>(s.params());
    den += static_cast<double>(s.params());
  }
  return den > 0 ? num / den : 0;
}

absl::StatusOr<FidelityReport> QuantizationSession::EvaluateOn(const std::map<std::string, int>& bits, int set,
                                                               int resamples, std::vector<SequenceMetrics>* keep) {
  bool grams = false;
  for (const auto& [name, c] : bits) grams = grams || UsesActivations(c);
  SLQ_RETURN_IF_ERROR(EnsureInputGrams(grams));
  SLQ_RETURN_IF_ERROR(mq_->Apply(bits));
  SLQ_ASSIGN_OR_RETURN(auto per_seq, eval_->Compare(set, opts_.temperature));
  SLQ_ASSIGN_OR_RETURN(FidelityReport r, Summarize(per_seq, {resamples, opts_.seed}));
  if (keep != nullptr) *keep = std::move(per_seq);
  return r;
}

absl::Status QuantizationSession::EnsureInputGrams(bool needed) {
  if (!needed || mq_->has_input_grams()) return absl::OkStatus();
  const auto t0 = Clock::now();
  mq_->RestoreAll();         // the dense model's inputs
  if (data_.gram.empty()) {  // Open adds them whenever the quantizers need a Gram
    return absl::FailedPreconditionError(
        absl::StrCat("quantizers '", opts_.quantizers, "' need an input Gram but the session has no Gram windows"));
  }
  std::vector<std::string> names;
  for (const SlotInfo& s : mq_->slots()) names.push_back(s.name);
  // Never the calibration windows the profile and the closed loop measure (eval_data.h).
  SLQ_ASSIGN_OR_RETURN(auto grams,
                       CachedInputGrams(*model_, names, data_.gram, opts_.profile_cache_dir, model_->identity_sha256));
  mq_->SetInputGrams(std::move(grams));
  stage_seconds_["input_grams"] = Since(t0);
  return absl::OkStatus();
}

absl::StatusOr<FidelityReport> QuantizationSession::Verify(const std::map<std::string, int>& bits) {
  if (progress_) progress_("verify", 0);
  const auto t0 = Clock::now();
  std::vector<SequenceMetrics> per_seq;
  SLQ_ASSIGN_OR_RETURN(FidelityReport r, EvaluateOn(bits, heldout_set_, opts_.bootstrap_resamples, &per_seq));
  stage_seconds_["verify"] = Since(t0);
  // TL: the quantized model's cloze answers on the same items.
  const auto t1 = Clock::now();
  if (!cloze_.items.empty()) {
    SLQ_ASSIGN_OR_RETURN(std::vector<uint8_t> hits, ClozeHitsOfModel());
    r.task = TaskFromHits(cloze_base_hits_, hits);
    r.task.items_in_text = cloze_.available;
  }
  stage_seconds_["cloze_verify"] = Since(t1);
  if (progress_) progress_("verify", 1);
  return r;
}

absl::StatusOr<std::vector<uint8_t>> QuantizationSession::ClozeHitsOfModel() const {
  // First greedy token from a teacher-forced pass over the cloze's windows (the metric windows'
  // cached logits cover only a few of them), further tokens by generation (cloze.h).
  SLQ_ASSIGN_OR_RETURN(const std::vector<std::vector<int32_t>> am, TeacherForcedArgmax(*model_, cloze_.windows));
  return ClozeHits(*model_, *tokenizer_, cloze_.windows, cloze_.items, [&am](int64_t seq, int64_t pos) {
    return am[static_cast<size_t>(seq)][static_cast<size_t>(pos - 1)];
  });
}

absl::Status QuantizationSession::CheckTlTestable(const Target& target) const {
  if (target.kind != Target::Kind::kTaskLossless) return absl::OkStatus();
  if (opts_.cloze_max_items <= 0) {
    return absl::InvalidArgumentError(
        "target tl needs the task-lossless cloze check, but it is turned off (cloze items 0); "
        "allow items (slq quantize --cloze-items, default 2000) or choose an ear/kl/bits target");
  }
  const TaskResult t = TaskFromHits(cloze_base_hits_, cloze_base_hits_);
  if (TlConclusive(t.acc_base, t.items)) return absl::OkStatus();
  const double kb = static_cast<double>(data_.heldout_bytes) / 1024.0;
  if (t.items > 0 && t.min_detectable_diff <= kTlDetectableDifference) {  // enough items, but a useless task
    return absl::InvalidArgumentError(absl::StrFormat(
        "target tl: the base model completes %d of the %d cloze items of the held-out text (accuracy %.4f), so a "
        "%.2f accuracy difference cannot show both ways on this text; give held-out text in the model's domain "
        "(slq quantize --eval FILE, slqctl submit --eval), or choose an ear/kl/bits target",
        t.hits_base, t.items, t.acc_base, kTlDetectableDifference));
  }
  const int64_t needed = t.items > 0 ? t.items_for_5pt : ItemsToDetect(0.5, kTlDetectableDifference);
  const std::string what =
      t.items == 0 ? absl::StrFormat("target tl: the task-lossless cloze has no items; it needs >= %d. ", needed)
                   : absl::StrFormat(
                         "target tl: the task-lossless cloze has %d items (base accuracy %.3f), so it detects only "
                         "an accuracy difference of %.3f with 80%% power (alpha 0.05); a %.2f difference needs >= %d "
                         "items. ",
                         t.items, t.acc_base, t.min_detectable_diff, kTlDetectableDifference, needed);
  if (cloze_.available >= needed) {
    return absl::InvalidArgumentError(absl::StrCat(what, "The held-out text has ", cloze_.available,
                                                   " items: allow >= ", needed,
                                                   " (slq quantize --cloze-items; the default is 2000)"));
  }
  if (cloze_.available == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, absl::StrFormat("The held-out text (%.1f KB) has no sentence-final words to ask for; give held-out "
                              "text of sentences (slq quantize --eval FILE, slqctl submit --eval), or choose an "
                              "ear/kl/bits target (their certificates still report the cloze as information)",
                              kb)));
  }
  const double per_kb = static_cast<double>(cloze_.available) / std::max(kb, 1e-9);
  return absl::InvalidArgumentError(absl::StrCat(
      what, absl::StrFormat("The held-out text gave %d items from %.1f KB (%.1f items/KB): give about %.0f KB more "
                            "held-out text (%.0f KB in all; slq quantize --eval FILE, slqctl submit --eval), or "
                            "choose an ear/kl/bits target (their certificates still report the cloze as information)",
                            cloze_.available, kb, per_kb, std::ceil((needed - cloze_.available) / per_kb),
                            std::ceil(needed / per_kb))));
}

absl::StatusOr<PipelineResult> QuantizeModel(const PipelineOptions& options, const ProgressFn& progress,
                                             const EvalBackendFactory& eval) {
  SLQ_ASSIGN_OR_RETURN(auto session, QuantizationSession::Open(options, progress, eval));
  SLQ_ASSIGN_OR_RETURN(LayerProfiles profile, session->Profile());
  SLQ_ASSIGN_OR_RETURN(SearchOutcome search, session->Search(profile));
  SLQ_ASSIGN_OR_RETURN(FidelityReport heldout, session->Verify(search.bits));
  return session->Finish(profile, search, heldout);
}

}  // namespace slq::quant
