// slq_gptq_unit_bench: unit-level output error of GPTQ vs RTN on a real model, summed over its
// quantizable linears: sum_layers ||(W - W')X||_F^2 / the same for RTN, with X the layer inputs on
//   gram        the Gram windows GPTQ is fitted on (eval_data.h AddGramWindows)
//   calib       the calibration windows the profile and closed loop measure (never the Gram's)
//   heldout     the held-out windows
// for each bitwidth, dampening and column order (natural / act-order). A ratio < 1 on calib and
// heldout is what transfers to the search; the gram column shows how much GPTQ fits its own data.
//
//   slq_gptq_unit_bench --model ../shared/models/tinystories-656k
//       --data ../shared/data/tinystories-valid-part1.txt --bits 3,4 --damps 0.01,0.1,0.3,1
//   (one command line)
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
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
  double gram = 0, calib = 0, heldout = 0;
};

int Run(int argc, char** argv) {
  CLI::App app("GPTQ vs RTN output error per layer, on Gram / calibration / held-out windows");
  std::string model_path, tokenizer_path, data_path;
  std::vector<int> bits = {3, 4};
  std::vector<double> damps = {0.01, 0.1, 0.3, 1.0};
  int64_t group = 128, max_gram = GramDataOptions{}.max_sequences;
  app.add_option("--model", model_path, "HF model folder or llama2.c .bin")->required();
  app.add_option("--tokenizer", tokenizer_path, "llama2.c tokenizer .bin (HF folders carry their own)");
  app.add_option("--data", data_path, "text (split as the pipeline splits it)")->required();
  app.add_option("--bits", bits, "bitwidths")->delimiter(',')->capture_default_str();
  app.add_option("--damps", damps, "GPTQ dampenings")->delimiter(',')->capture_default_str();
  app.add_option("--group", group, "group size")->capture_default_str();
  app.add_option("--gram-sequences", max_gram, "Gram windows at most")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

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

  std::printf("| bits | damp | order | gram | calib | heldout |\n|---|---|---|---|---|---|\n");
  for (int b : bits) {
    QuantConfig cfg;
    cfg.bits = b;
    cfg.group_size = group;
    Totals rtn;
    std::map<std::pair<double, bool>, Totals> gptq;
    for (const SlotInfo& info : mq.slots()) {
      auto w = mq.Weights(info.name);
      if (!w.ok()) return 1;
      const float* wp = (*w)->data();
      auto r = QuantizeMatrixRounded(wp, info.rows, info.cols, cfg, Rounding::kRtn, nullptr);
      if (!r.ok()) return std::fprintf(stderr, "%s\n", r.status().ToString().c_str()), 1;
      rtn.gram += OutputError(wp, *r, gram->at(info.name));
      rtn.calib += OutputError(wp, *r, calib->at(info.name));
      rtn.heldout += OutputError(wp, *r, held->at(info.name));
      for (double d : damps) {
        for (bool act : {false, true}) {
          auto q = QuantizeMatrixRounded(wp, info.rows, info.cols, cfg, Rounding::kGptq, &gram->at(info.name),
                                         GptqOptions{.damp = d, .act_order = act});
          if (!q.ok()) return std::fprintf(stderr, "%s\n", q.status().ToString().c_str()), 1;
          Totals& t = gptq[{d, act}];
          t.gram += OutputError(wp, *q, gram->at(info.name));
          t.calib += OutputError(wp, *q, calib->at(info.name));
          t.heldout += OutputError(wp, *q, held->at(info.name));
        }
      }
    }
    for (const auto& [key, t] : gptq) {
      std::printf("| %d | %g | %s | %.3fx | %.3fx | %.3fx |\n", b, key.first, key.second ? "act-order" : "natural",
                  t.gram / rtn.gram, t.calib / rtn.calib, t.heldout / rtn.heldout);
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace slq::quant

int main(int argc, char** argv) { return slq::quant::Run(argc, argv); }
