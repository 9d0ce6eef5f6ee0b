#include "server/quant/profiler.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "server/common/file_util.h"
#include "server/common/sha256.h"
#include "server/common/status_macros.h"
#include "server/quant/artifact.h"

namespace slq::quant {
namespace {

using nlohmann::json;

// The GPTQ dampening, column order and refit (rounding.h GptqOptions) are part of a gptq choice's
// key; with the refit and token-scaled damp off the key is the one from before them.
std::string DampKey(const ModelQuantizer& mq, int choice) {
  if (ChoiceRounding(choice) != Rounding::kGptq) return "";
  const GptqOptions& o = mq.gptq_options();
  return absl::StrCat("|damp=", o.damp, o.act_order ? "|act-order" : "",
                      o.damp_per_col > 0 ? absl::StrCat("|damp-per-col=", o.damp_per_col) : "",
                      o.refit ? absl::StrCat("|refit1=", o.refit_damp, o.refit_s8 ? ":s8" : "", ":", o.refit_passes,
                                             ":", o.refit_rounds)
                              : "");
}

// Grid choices name the grid tables they round on (artifact.h kGridTablesName), so entries made
// with other tables are never served.
std::string GridKey(int choice) { return ChoiceGrids(choice) ? absl::StrCat("|grids=", kGridTablesName) : ""; }

// S8 choices name their scale scheme: the code's factor (kernels/scale_codes.h, 3-bit exponent +
// 5-bit mantissa), the matrix base (DefaultScaleBase: 1.1 x the largest step / 252) and the
// (u, z) fit (quantizer.h FitGroupS8). Change this name when any of them changes, so entries
// made under the old scheme are never served.
constexpr char kS8SchemeName[] = "s8-e3m5-base1.1-fit1";
std::string S8Key(int choice) { return ChoiceS8(choice) ? absl::StrCat("|scales=", kS8SchemeName) : ""; }

// RTN with mse_clip and grids picks (clip, grid) jointly (quantizer.h QuantConfig::joint_clip_grid);
// entries made under the sequential rule (before it, or with it off) are never served.
std::string ClipGridKey(const QuantConfig& c, int choice) {
  if (!c.mse_clip || !ChoiceGrids(choice)) return "";
  return c.joint_clip_grid ? "|clip-grid=joint" : "|clip-grid=seq";
}

std::string CacheKey(const ProfileOptions& o, const ModelQuantizer& mq, int bits) {
  const QuantConfig& c = mq.config();
  return absl::StrCat(o.estimator, "|model=", o.model_sha, "|data=", o.data_sha, "|b=", bits, "|g=", c.group_size,
                      "|sym=", c.symmetric, "|clip=", c.mse_clip, "|rot=", c.rotate, ":", c.rotation_seed,
                      "|T=", o.temperature, DampKey(mq, bits), GridKey(bits), S8Key(bits), ClipGridKey(c, bits),
                      UsesActivations(bits) && !o.activation_key.empty() ? "|gram=" + o.activation_key : "");
}

std::string CachePath(const ProfileOptions& o, const std::string& key) {
  return absl::StrCat(o.cache_dir, "/profile-", Sha256Hex(key).substr(0, 32), ".json");
}

// Cached {layer: [kl, 1-ear]} for one bitwidth, or empty when absent/unusable.
json ReadCache(const ProfileOptions& o, const std::string& key) {
  if (o.cache_dir.empty() || o.model_sha.empty() || o.data_sha.empty()) return {};
  auto text = ReadFile(CachePath(o, key));
  if (!text.ok()) return {};
  json j = json::parse(*text, nullptr, false);
  if (j.is_discarded() || j.value("key", "") != key || !j.contains("layers")) return {};
  return j["layers"];
}

void WriteCache(const ProfileOptions& o, const std::string& key, const json& layers) {
  if (o.cache_dir.empty() || o.model_sha.empty() || o.data_sha.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(o.cache_dir, ec);
  (void)WriteFileAtomic(CachePath(o, key), json{{"key", key}, {"layers", layers}}.dump());
}

// Choices that differ in the group size alone can quantize a narrow layer identically.
bool OnlyGroupDiffers(const ModelQuantizer& mq, int a, int b) {
  const absl::StatusOr<Choice> x = DecodeChoice(a, BaseOf(mq.config())), y = DecodeChoice(b, BaseOf(mq.config()));
  return x.ok() && y.ok() && !x->dense() && x->bits == y->bits && x->rounding == y->rounding &&
         x->symmetric == y->symmetric && x->grids == y->grids && x->s8 == y->s8;
}

absl::StatusOr<MeanDamage> Measure(EvalBackend& eval, int set, double temperature) {
  SLQ_ASSIGN_OR_RETURN(auto per_seq, eval.Compare(set, temperature));
  return MeanOf(per_seq);
}

absl::Status ProfileMeasured(ModelQuantizer& mq, EvalBackend& eval, int set, const ProfileOptions& o,
                             const ProgressFn& progress, LayerProfiles& out) {
  const double total = static_cast<double>(o.bits.size() * out.layers.size());
  double done = 0;
  for (int b : o.bits) {
    const std::string key = CacheKey(o, mq, b);
    json cached = ReadCache(o, key);
    json fresh = cached.is_object() ? cached : json::object();
    bool all_cached = true;
    for (LayerProfile& lp : out.layers) {
      // A choice that gives this layer the same weights as one already measured (e.g. g64 and
      // g128 on a 64-column layer) has its measurement: copied, not re-evaluated (exact).
      int twin = 0;
      if (!fresh.contains(lp.name)) {
        for (const auto& [prev, kl] : lp.kl) {
          if (!OnlyGroupDiffers(mq, prev, b)) continue;
          SLQ_ASSIGN_OR_RETURN(const bool same, mq.SameWeights(lp.name, prev, b));
          if (same) {
            twin = prev;
            break;
          }
        }
      }
      if (fresh.contains(lp.name)) {
        lp.kl[b] = fresh[lp.name][0].get<double>();
        lp.one_minus_ear[b] = fresh[lp.name][1].get<double>();
      } else if (twin != 0) {
        all_cached = false;
        lp.kl[b] = lp.kl[twin];
        lp.one_minus_ear[b] = lp.one_minus_ear[twin];
        fresh[lp.name] = {lp.kl[b], lp.one_minus_ear[b]};
        ++out.twins;
      } else {
        all_cached = false;
        SLQ_RETURN_IF_ERROR(mq.SetBits(lp.name, b));
        auto d = Measure(eval, set, o.temperature);
        SLQ_RETURN_IF_ERROR(mq.Restore(lp.name));
        if (!d.ok()) return d.status();
        lp.kl[b] = d->kl;
        lp.one_minus_ear[b] = d->one_minus_ear;
        fresh[lp.name] = {d->kl, d->one_minus_ear};
      }
      // The relative weight error is cached as a third entry: for mse/gptq choices it costs one
      // activation-aware quantization of the layer, as much as the evaluation on a GPU. Entries
      // written before it was cached get it now (and the file is rewritten).
      if (fresh[lp.name].size() >= 3) {
        lp.rel_err[b] = fresh[lp.name][2].get<double>();
      } else {
        SLQ_ASSIGN_OR_RETURN(lp.rel_err[b], mq.RelativeError(lp.name, b));
        fresh[lp.name].push_back(lp.rel_err[b]);
        all_cached = false;
      }
      if (progress) progress("profile", ++done / total);
    }
    if (all_cached) {
      ++out.cache_hits;
    } else {
      WriteCache(o, key, fresh);
    }
  }
  return absl::OkStatus();
}

// Proxy cache keys: the noise-injection alphas depend on the data but not on the bitwidth; the
// relative weight errors depend on the bitwidth but not on the data (the weights alone).
std::string ProxyAlphaKey(const ProfileOptions& o, const QuantConfig& c) {
  return absl::StrCat("proxy-alpha|model=", o.model_sha, "|data=", o.data_sha, "|noise=", o.noise_rel, "|seed=", o.seed,
                      "|T=", o.temperature, "|rot=", c.rotate, ":", c.rotation_seed);
}
std::string ProxyErrKey(const ProfileOptions& o, const ModelQuantizer& mq, int bits) {
  const QuantConfig& c = mq.config();
  // mse / gptq round with the calibration inputs: their errors depend on the data too.
  const bool rtn = ChoiceRounding(bits) == Rounding::kRtn;
  return absl::StrCat("proxy-err|model=", o.model_sha, "|b=", bits, "|g=", c.group_size, "|sym=", c.symmetric,
                      "|clip=", c.mse_clip, "|rot=", c.rotate, ":", c.rotation_seed,
                      rtn ? "" : absl::StrCat("|data=", o.data_sha), DampKey(mq, bits), GridKey(bits), S8Key(bits),
                      ClipGridKey(c, bits),
                      UsesActivations(bits) && !o.activation_key.empty() ? "|gram=" + o.activation_key : "");
}

// The proxy's err of a layer choice. RTN: ||W - W'||^2 / ||W||^2. mse / gptq trade weight error
// for output error, so their err is RTN's at the same width and variant scaled by the ratio of
// output errors ||(W - W')X||^2 (choice over RTN): the alpha calibrated on weight noise then still applies.
absl::StatusOr<double> ProxyError(ModelQuantizer& mq, const std::string& name, int choice) {
  const int rtn = WithRounding(choice, Rounding::kRtn);
  SLQ_ASSIGN_OR_RETURN(const double e, mq.RelativeError(name, rtn));
  if (ChoiceRounding(choice) == Rounding::kRtn) return e;
  SLQ_ASSIGN_OR_RETURN(const double out_rtn, mq.RelativeOutputError(name, rtn));
  SLQ_ASSIGN_OR_RETURN(const double out, mq.RelativeOutputError(name, choice));
  return out_rtn > 0 ? e * out / out_rtn : e;
}

absl::Status ProfileProxy(ModelQuantizer& mq, EvalBackend& eval, int set, const ProfileOptions& o,
                          const ProgressFn& progress, LayerProfiles& out) {
  const double total = static_cast<double>(out.layers.size() * (1 + o.bits.size()));
  double done = 0;
  const std::string akey = ProxyAlphaKey(o, mq.config());
  json alphas = ReadCache(o, akey);
  if (!alphas.is_object()) alphas = json::object();
  bool alpha_fresh = false;
  for (size_t i = 0; i < out.layers.size(); ++i) {
    LayerProfile& lp = out.layers[i];
    if (alphas.contains(lp.name)) {
      lp.alpha_kl = alphas[lp.name][0].get<double>();
      lp.alpha_ear = alphas[lp.name][1].get<double>();
    } else {
      // Seed by the slot's index in the whole model (not in this share) so that shares and
      // the cache agree with a whole-model profile.
      uint64_t slot_index = i;
      for (size_t k = 0; k < mq.slots().size(); ++k) {
        if (mq.slots()[k].name == lp.name) slot_index = k;
      }
      SLQ_RETURN_IF_ERROR(mq.InjectNoise(lp.name, o.noise_rel, o.seed + slot_index));
      auto d = Measure(eval, set, o.temperature);
      SLQ_RETURN_IF_ERROR(mq.Restore(lp.name));
      if (!d.ok()) return d.status();
      lp.alpha_kl = d->kl / o.noise_rel;
      lp.alpha_ear = d->one_minus_ear / std::sqrt(o.noise_rel);
      alphas[lp.name] = {lp.alpha_kl, lp.alpha_ear};
      alpha_fresh = true;
    }
    if (progress) progress("profile", ++done / total);
  }
  if (alpha_fresh) {
    WriteCache(o, akey, alphas);
  } else {
    ++out.cache_hits;
  }
  for (int b : o.bits) {
    const std::string ekey = ProxyErrKey(o, mq, b);
    json errs = ReadCache(o, ekey);
    if (!errs.is_object()) errs = json::object();
    bool fresh = false;
    for (LayerProfile& lp : out.layers) {
      if (errs.contains(lp.name)) {
        lp.rel_err[b] = errs[lp.name].get<double>();
      } else {
        SLQ_ASSIGN_OR_RETURN(lp.rel_err[b], ProxyError(mq, lp.name, b));
        errs[lp.name] = lp.rel_err[b];
        fresh = true;
      }
      if (progress) progress("profile", ++done / total);
    }
    if (fresh) {
      WriteCache(o, ekey, errs);
    } else {
      ++out.cache_hits;
    }
  }
  return absl::OkStatus();
}

}  // namespace

double LayerProfiles::Damage(size_t i, int bits, DamageMetric metric) const {
  const LayerProfile& lp = layers[i];
  if (estimator == "proxy") {
    auto it = lp.rel_err.find(bits);
    const double e = it == lp.rel_err.end() ? 0.0 : it->second;
    return metric == DamageMetric::kKl ? lp.alpha_kl * e : lp.alpha_ear * std::sqrt(e);
  }
  const auto& m = metric == DamageMetric::kKl ? lp.kl : lp.one_minus_ear;
  auto it = m.find(bits);
  return it == m.end() ? 0.0 : std::max(0.0, it->second);
}

absl::StatusOr<LayerProfiles> ProfileLayers(ModelQuantizer& mq, EvalBackend& eval, int calib_set,
                                            const ProfileOptions& o, const ProgressFn& progress) {
  if (o.estimator != "measured" && o.estimator != "proxy") {
    return absl::InvalidArgumentError(absl::StrCat("estimator '", o.estimator, "'; allowed: measured, proxy"));
  }
  if (o.bits.empty()) return absl::InvalidArgumentError("no bitwidths to profile");
  if (!(o.noise_rel > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("noise_rel = ", o.noise_rel, "; must be > 0"));
  }
  const auto t0 = std::chrono::steady_clock::now();
  LayerProfiles out;
  out.estimator = o.estimator;
  out.bits = o.bits;
  out.group_size = mq.config().group_size;
  const std::set<std::string> only(o.layers.begin(), o.layers.end());
  for (const SlotInfo& s : mq.slots()) {
    if (only.empty() || only.count(s.name)) out.layers.push_back({s.name, s.layer, s.rows, s.cols, {}, {}, {}, 0, 0});
  }
  if (out.layers.size() < only.size()) {
    return absl::NotFoundError("some requested layers are not quantizable slots of this model");
  }
  absl::Status s = o.estimator == "measured" ? ProfileMeasured(mq, eval, calib_set, o, progress, out)
                                             : ProfileProxy(mq, eval, calib_set, o, progress, out);
  mq.RestoreAll();
  SLQ_RETURN_IF_ERROR(s);
  out.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

absl::StatusOr<LayerProfiles> MergeProfiles(const std::vector<LayerProfiles>& parts) {
  if (parts.empty()) return absl::InvalidArgumentError("no profiles to merge");
  LayerProfiles out = parts[0];
  std::set<std::string> seen;
  for (const auto& l : out.layers) seen.insert(l.name);
  for (size_t i = 1; i < parts.size(); ++i) {
    if (parts[i].estimator != out.estimator || parts[i].bits != out.bits) {
      return absl::InvalidArgumentError("profiles to merge differ in estimator or bitwidths");
    }
    for (const auto& l : parts[i].layers) {
      if (!seen.insert(l.name).second) {
        return absl::InvalidArgumentError(absl::StrCat("layer ", l.name, " profiled twice"));
      }
      out.layers.push_back(l);
    }
    out.wall_seconds += parts[i].wall_seconds;
    out.cache_hits += parts[i].cache_hits;
    out.twins += parts[i].twins;
  }
  return out;
}

void to_json(json& j, const LayerProfiles& p) {
  json layers = json::array();
  auto m2j = [](const std::map<int, double>& m) {
    json o = json::object();
    for (auto& [k, v] : m) o[std::to_string(k)] = v;
    return o;
  };
  for (const auto& l : p.layers) {
    layers.push_back({{"name", l.name},
                      {"layer", l.layer},
                      {"rows", l.rows},
                      {"cols", l.cols},
                      {"kl", m2j(l.kl)},
                      {"one_minus_ear", m2j(l.one_minus_ear)},
                      {"rel_err", m2j(l.rel_err)},
                      {"alpha_kl", l.alpha_kl},
                      {"alpha_ear", l.alpha_ear}});
  }
  j = {{"estimator", p.estimator},
       {"bits", p.bits},
       {"group_size", p.group_size},
       {"layers", layers},
       {"wall_seconds", p.wall_seconds},
       {"cache_hits", p.cache_hits},
       {"twins", p.twins}};
}

void from_json(const json& j, LayerProfiles& p) {
  auto j2m = [](const json& o) {
    std::map<int, double> m;
    for (auto& [k, v] : o.items()) m[std::stoi(k)] = v.get<double>();
    return m;
  };
  p.estimator = j.at("estimator").get<std::string>();
  p.bits = j.at("bits").get<std::vector<int>>();
  p.group_size = j.at("group_size").get<int64_t>();
  p.wall_seconds = j.value("wall_seconds", 0.0);
  p.cache_hits = j.value("cache_hits", 0);
  p.twins = j.value("twins", 0);
  p.layers.clear();
  for (const auto& l : j.at("layers")) {
    LayerProfile lp;
    lp.name = l.at("name").get<std::string>();
    lp.layer = l.at("layer").get<int>();
    lp.rows = l.at("rows").get<int64_t>();
    lp.cols = l.at("cols").get<int64_t>();
    lp.kl = j2m(l.at("kl"));
    lp.one_minus_ear = j2m(l.at("one_minus_ear"));
    lp.rel_err = j2m(l.at("rel_err"));
    lp.alpha_kl = l.at("alpha_kl").get<double>();
    lp.alpha_ear = l.at("alpha_ear").get<double>();
    p.layers.push_back(std::move(lp));
  }
}

}  // namespace slq::quant
