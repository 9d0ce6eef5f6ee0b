// slq_gptq_unit_bench: unit-level output error of GPTQ variants on a real model, summed over its
// quantizable linears: sum_layers ||(W - W')X||_F^2, with X the layer inputs on
//   gram        the Gram windows GPTQ is fitted on (eval_data.h AddGramWindows)
//   calib       the calibration windows the profile and closed loop measure (never the Gram's)
//   heldout     the held-out windows
// for each bitwidth and scale format, each variant's totals as ratios to the first variant's
// (today's GPTQ unless --variants says otherwise) at the same config, RTN's held-out ratio to
// the same, and the variant's quantization time. A ratio < 1 on calib and heldout is what
// transfers to the search; the gram column shows how much a variant fits its own data.
// A variant is '+'-joined words applied left to right to GPTQ as it was before the refit (damp
// 0.1, natural order, no refit, damp_per_col 0): base (that), default (GptqOptions{}, this
// build's pipeline default), dX (damp X), adX (damp_per_col X), act (act-order), refit / norefit
// (GptqOptions::refit), refit8 (refit with refit_s8), rdX (refit_damp X), altN (refit_rounds N).
//
//   slq_gptq_unit_bench --model ../shared/models/tinystories-656k
//       --data ../shared/data/tinystories-valid-part1.txt --bits 6,7,8 --group 64 --grids
//       --scales fp16,s8 --variants base,refit,refit+alt2,d0.03,act
//   (one command line)
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "server/common/file_util.h"
#include "server/model/model_loader.h"
#include "server/model/tokenizer/tokenizer.h"
#include "server/quant/eval_data.h"
#include "server/quant/input_gram.h"
#include "server/quant/model_quantizer.h"
#include "server/quant/rounding.h"

namespace slq::quant {
namespace {

namespace fs = std::filesystem;

struct Totals {
  double gram = 0, calib = 0, heldout = 0, seconds = 0;
};

// A variant word list (see the top comment) -> its options; nullopt on an unknown word.
std::optional<GptqOptions> ParseVariant(const std::string& v) {
  GptqOptions o{.damp_per_col = 0, .refit = false};  // GPTQ before the refit and token-scaled damp
  for (const absl::string_view w : absl::StrSplit(v, '+')) {
    if (w == "base") continue;
    if (w == "default") {
      o = GptqOptions{};
    } else if (w == "act") {
      o.act_order = true;
    } else if (w == "refit") {
      o.refit = true;
    } else if (w == "norefit") {
      o.refit = false;
    } else if (w == "refit8") {
      o.refit = o.refit_s8 = true;
    } else if (absl::StartsWith(w, "alt") && absl::SimpleAtoi(w.substr(3), &o.refit_rounds)) {
      o.refit = true;
    } else if (absl::StartsWith(w, "rd") && absl::SimpleAtod(w.substr(2), &o.refit_damp)) {
    } else if (absl::StartsWith(w, "ad") && absl::SimpleAtod(w.substr(2), &o.damp_per_col)) {
    } else if (!(absl::StartsWith(w, "d") && absl::SimpleAtod(w.substr(1), &o.damp))) {
      return std::nullopt;
    }
  }
  return o;
}

int Run(int argc, char** argv) {
  CLI::App app("GPTQ variants' output error, on Gram / calibration / held-out windows");
  std::string model_path, tokenizer_path, data_path;
  std::vector<int> bits = {4, 6, 7, 8};
  std::vector<std::string> variants = {"base", "refit"}, scales = {"s8"};
  int64_t group = 64, max_gram = GramDataOptions{}.max_sequences;
  bool grids = false;
  app.add_option("--model", model_path, "HF model folder or llama2.c .bin")->required();
  app.add_option("--tokenizer", tokenizer_path, "llama2.c tokenizer .bin (HF folders carry their own)");
  app.add_option("--data", data_path, "text (split as the pipeline splits it)")->required();
  app.add_option("--bits", bits, "bitwidths")->delimiter(',')->capture_default_str();
  app.add_option("--variants", variants, "GPTQ variants; the first is the baseline")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--scales", scales, "scale formats: fp16, s8")->delimiter(',')->capture_default_str();
  app.add_flag("--grids", grids, "grids on");
  app.add_option("--group", group, "group size")->capture_default_str();
  app.add_option("--gram-sequences", max_gram, "Gram windows at most")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::vector<GptqOptions> opts;
  for (const std::string& v : variants) {
    auto o = ParseVariant(v);
    if (!o)
      return std::fprintf(stderr,
                          "unknown variant '%s' (words: base default dX adX act refit norefit refit8 rdX altN)\n",
                          v.c_str()),
             1;
    opts.push_back(*o);
  }
  for (const std::string& f : scales) {
    if (f != "fp16" && f != "s8") return std::fprintf(stderr, "unknown scale format '%s' (fp16, s8)\n", f.c_str()), 1;
  }
  auto model = LoadModel(model_path);
  if (!model.ok()) return std::fprintf(stderr, "%s\n", model.status().ToString().c_str()), 1;
  auto tok = tokenizer_path.empty()
                 ? Tokenizer::FromHfDir(model_path)
                 : Tokenizer::FromLlama2c(tokenizer_path, static_cast<int>((*model)->config.vocab_size));
  if (!tok.ok()) return std::fprintf(stderr, "%s\n", tok.status().ToString().c_str()), 1;
  auto text = ReadFile(data_path);
  if (!text.ok()) return std::fprintf(stderr, "%s\n", text.status().ToString().c_str()), 1;
  const EvalDataOptions eo;  // the pipeline's defaults
  GramDataOptions go;
  go.max_sequences = max_gram;
  auto data = PrepareEvalData(*text, **tok, eo);
  if (!data.ok()) return std::fprintf(stderr, "%s\n", data.status().ToString().c_str()), 1;
  if (auto s = AddGramWindows(*text, **tok, eo, go, &*data); !s.ok()) {
    return std::fprintf(stderr, "%s\n", s.ToString().c_str()), 1;
  }
  std::printf("windows: gram %zu (%lld tokens, %s), calib %zu (%lld tokens), heldout %zu (%lld tokens)\n",
              data->gram.size(), static_cast<long long>(data->GramTokens()), data->gram_scheme.c_str(),
              data->calibration.size(), static_cast<long long>(data->CalibrationTokens()), data->heldout.size(),
              static_cast<long long>(data->HeldoutTokens()));
  std::vector<std::string> names;
  for (const LinearSlot& s : (*model)->LinearSlots()) {
    if (s.layer >= 0) names.push_back(s.name);
  }
  auto gram = CaptureInputGrams(**model, names, data->gram);
  auto calib = CaptureInputGrams(**model, names, data->calibration);
  auto held = CaptureInputGrams(**model, names, data->heldout);
  if (!gram.ok() || !calib.ok() || !held.ok()) return std::fprintf(stderr, "gram capture failed\n"), 1;
  ModelQuantizer mq(model->get(), QuantConfig{}, false);
  if (!mq.Init().ok()) return 1;

  std::printf(
      "| bits | scales | variant | gram | calib | heldout | rtn heldout | seconds |\n"
      "|---|---|---|---|---|---|---|---|\n");
  for (int b : bits) {
    for (const std::string& f : scales) {
      QuantConfig cfg;
      cfg.bits = b;
      cfg.group_size = group;
      cfg.grids = grids;
      cfg.scales = f == "s8" ? ScaleFormat::kS8 : ScaleFormat::kFp16;
      Totals rtn;
      std::vector<Totals> tot(opts.size());
      for (const SlotInfo& info : mq.slots()) {
        auto w = mq.Weights(info.name);
        if (!w.ok()) return 1;
        const float* wp = (*w)->data();
        auto r = QuantizeMatrixRounded(wp, info.rows, info.cols, cfg, Rounding::kRtn, nullptr);
        if (!r.ok()) return std::fprintf(stderr, "%s\n", r.status().ToString().c_str()), 1;
        rtn.heldout += OutputError(wp, *r, held->at(info.name));
        for (size_t v = 0; v < opts.size(); ++v) {
          const auto t0 = std::chrono::steady_clock::now();
          auto q = QuantizeMatrixRounded(wp, info.rows, info.cols, cfg, Rounding::kGptq, &gram->at(info.name), opts[v]);
          if (!q.ok()) return std::fprintf(stderr, "%s\n", q.status().ToString().c_str()), 1;
          Totals& t = tot[v];
          t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          t.gram += OutputError(wp, *q, gram->at(info.name));
          t.calib += OutputError(wp, *q, calib->at(info.name));
          t.heldout += OutputError(wp, *q, held->at(info.name));
        }
      }
      for (size_t v = 0; v < opts.size(); ++v) {
        const Totals& t = tot[v];
        std::printf("| %d | %s | %s | %.4fx | %.4fx | %.4fx | %.3fx | %.1f |\n", b, f.c_str(), variants[v].c_str(),
                    t.gram / tot[0].gram, t.calib / tot[0].calib, t.heldout / tot[0].heldout,
                    rtn.heldout / tot[0].heldout, t.seconds);
      }
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace slq::quant

int main(int argc, char** argv) { return slq::quant::Run(argc, argv); }
