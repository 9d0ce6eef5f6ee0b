// slq: the offline command line (no server needed).
//   slq quantize MODEL --target 'ear>=0.99' --formats 4-5-6-7-8 --data TEXT --out DIR
//   slq generate MODEL_OR_ARTIFACT "prompt" [--max-tokens N --temperature T --seed S]
//   slq export ARTIFACT_OR_MODEL --format hf|gguf --out DIR|FILE [--dtype ...]
//   slq split TEXT --calib CALIB.txt --heldout HELDOUT.txt   (quantize's own document split)
// MODEL is an HF folder or a llama2.c .bin (then --tokenizer tok.bin); an artifact is a
// directory written by `slq quantize` (its checksums are verified on load).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/export/gguf_export.h"
#include "server/export/hf_export.h"
#include "server/model/generate.h"
#include "server/model/model_loader.h"
#include "server/model/tokenizer/tokenizer.h"
#include "server/quant/artifact.h"
#include "server/quant/eval_data.h"
#include "server/quant/pipeline.h"
#include "server/spec/job_spec.h"
#include "server/worker/eval_device.h"

namespace {

namespace fs = std::filesystem;

int Quantize(const slq::quant::PipelineOptions& opts, const std::string& device, bool json) {
  std::string chosen;
  auto eval = slq::EvalBackendFor(device, &chosen);
  if (!eval.ok()) {
    std::cerr << "slq quantize: --device: " << eval.status().message() << "\n";
    return 2;
  }
  if (!json) std::fprintf(stderr, "evaluations on %s\n", chosen.c_str());
  double last = -1;
  std::string last_stage;
  auto progress = [&](const std::string& stage, double f) {
    if (json) return;
    if (stage != last_stage || f - last >= 0.1 || f >= 1) {
      std::fprintf(stderr, "\r%-10s %3.0f%%%s", stage.c_str(), f * 100, f >= 1 ? "\n" : "");
      last = f;
      last_stage = stage;
    }
  };
  auto r = slq::quant::QuantizeModel(opts, progress, *eval);
  if (!r.ok()) {
    std::cerr << "\nslq quantize: " << r.status().message() << "\n";
    return r.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  const auto& c = r->certificate;
  if (json) {
    std::cout << c.dump() << "\n";
  } else {
    const auto& h = c["heldout"];
    std::cout << absl::StrFormat(
        "%s: %s\n  avg bits/param %.3f (quantized layers), %.3f (whole model)\n"
        "  held-out EAR %.5f [%.5f, %.5f]  KL %.5f [%.5f, %.5f]  flip %.4f  PPL ratio %.4f\n"
        "  %d sequences, %d tokens; artifact %s\n",
        c.value("target", ""), r->status, c.value("avg_bits_per_param_quantized_layers", 0.0),
        c.value("avg_bits_per_param_whole_model", 0.0), h["ear"]["mean"].get<double>(), h["ear"]["lo95"].get<double>(),
        h["ear"]["hi95"].get<double>(), h["kl"]["mean"].get<double>(), h["kl"]["lo95"].get<double>(),
        h["kl"]["hi95"].get<double>(), h["flip_rate"]["mean"].get<double>(), h["ppl_ratio"]["mean"].get<double>(),
        h["sequences"].get<int64_t>(), h["tokens"].get<int64_t>(),
        r->artifact_dir.empty() ? "(not written)" : r->artifact_dir);
    if (h.contains("task")) {
      const auto& t = h["task"];
      std::cout << absl::StrFormat(
          "  TL cloze (%d items): accuracy %.3f vs base %.3f (1.96 x SE %.3f; detects %.3f with 80%% power): %s\n",
          t["items"].get<int64_t>(), t["acc_quant"].get<double>(), t["acc_base"].get<double>(),
          1.96 * t["se_base"].get<double>(), t.value("min_detectable_diff", 0.0), t.value("verdict", ""));
    }
  }
  return r->target_met ? 0 : 8;
}

int Generate(const std::string& path, const std::string& tokenizer_path, const std::string& prompt,
             slq::GenerateOptions gen) {
  std::unique_ptr<slq::Model> model;
  std::string tok_dir = path;
  if (fs::exists(fs::path(path) / "manifest.json")) {
    auto a = slq::quant::LoadArtifact(path);
    if (!a.ok()) {
      std::cerr << "slq generate: " << a.status().message() << "\n";
      return 1;
    }
    model = std::move(a->model);
  } else {
    auto m = slq::LoadModel(path);
    if (!m.ok()) {
      std::cerr << "slq generate: " << m.status().message() << "\n";
      return 1;
    }
    model = std::move(*m);
  }
  absl::StatusOr<std::unique_ptr<slq::Tokenizer>> tok =
      tokenizer_path.empty() ? slq::Tokenizer::FromHfDir(tok_dir)
                             : slq::Tokenizer::FromLlama2c(tokenizer_path, static_cast<int>(model->config.vocab_size));
  if (!tok.ok()) {
    std::cerr << "slq generate: tokenizer: " << tok.status().message() << "\n";
    return 1;
  }
  std::vector<int32_t> ids = (*tok)->Encode(prompt, true);
  slq::StreamingDecoder dec(tok->get());
  for (int32_t id : ids) (void)dec.Add(id);  // the prompt is printed as given: continue after it
  std::cout << prompt << std::flush;
  auto r = slq::Generate(*model, ids, gen, [&](int32_t id) {
    std::cout << dec.Add(id) << std::flush;
    return true;
  });
  std::cout << dec.Flush() << "\n";
  if (!r.ok()) {
    std::cerr << "slq generate: " << r.status().message() << "\n";
    return 1;
  }
  double n = static_cast<double>(r->tokens.size());
  std::cerr << absl::StrFormat("[%d prompt tokens: %.1f tok/s prefill; %d new tokens: %.1f tok/s decode; %s]\n",
                               ids.size(), ids.size() / std::max(1e-9, r->prefill_seconds), r->tokens.size(),
                               (n - 1) / std::max(1e-9, r->decode_seconds), r->finish_reason);
  return 0;
}

int Export(const std::string& artifact, const std::string& format, const std::string& out, const std::string& dtype) {
  absl::Status s;
  if (format == "hf") {
    s = slq::exporter::ExportHf(artifact, out, {.dtype = dtype.empty() ? "bf16" : dtype});
  } else if (format == "gguf") {
    s = slq::exporter::ExportGguf(artifact, out, {.dtype = dtype.empty() ? "exact" : dtype});
  } else {
    std::cerr << "slq export: --format must be hf or gguf, got '" << format << "'\n";
    return 2;
  }
  if (!s.ok()) {
    std::cerr << "slq export: " << s.message() << "\n";
    return s.code() == absl::StatusCode::kInvalidArgument || s.code() == absl::StatusCode::kFailedPrecondition ? 2 : 1;
  }
  std::cerr << "slq export: wrote " << out << " (" << format << ")\n";
  return 0;
}

// Writes the two sides of quantize's calibration / held-out document split as texts that split
// back into the same documents, so `slq quantize --data CALIB --eval HELDOUT` and external tools
// see exactly the documents slq's own split gives each side.
int Split(const std::string& text_path, const std::string& calib_path, const std::string& heldout_path,
          double heldout_fraction) {
  const absl::StatusOr<std::string> text = slq::ReadFile(text_path);
  if (!text.ok()) {
    std::cerr << "slq split: " << text.status().message() << "\n";
    return 2;
  }
  if (!(heldout_fraction > 0 && heldout_fraction < 1)) {
    std::cerr << "slq split: --heldout-fraction must be in (0, 1), got " << heldout_fraction << "\n";
    return 2;
  }
  const slq::quant::DocumentSplit s = slq::quant::SplitCalibrationHeldout(*text, heldout_fraction);
  const std::pair<const std::vector<std::string>*, std::string> sides[] = {{&s.calibration, calib_path},
                                                                           {&s.heldout, heldout_path}};
  for (const auto& [docs, path] : sides) {
    const std::string joined = slq::quant::JoinDocuments(*docs, s.rule);
    std::string rule;
    if (slq::quant::SplitDocuments(joined, &rule) != *docs) {
      std::cerr << "slq split: " << path << " would not split back into its " << docs->size() << " documents ("
                << s.rule << " rule; fewer than 4 paragraphs split as lines): give more text\n";
      return 2;
    }
    if (const absl::Status w = slq::WriteFileAtomic(path, joined); !w.ok()) {
      std::cerr << "slq split: " << w.message() << "\n";
      return 1;
    }
  }
  std::cerr << "slq split: " << s.calibration.size() + s.heldout.size() << " documents (" << s.rule
            << "): " << s.calibration.size() << " -> " << calib_path << ", " << s.heldout.size() << " -> "
            << heldout_path << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"slq: quantize a model to a fidelity target, or generate from a model or artifact (offline)"};
  app.require_subcommand(1);
  slq::quant::PipelineOptions q;
  bool json = false;
  std::string device = "auto";
  CLI::App* quant = app.add_subcommand("quantize", "Quantize a model to a fidelity target and write an artifact");
  quant->add_option("model", q.model_path, "HF model folder or llama2.c .bin")->required();
  quant->add_option("--target", q.target, "ear>=X, kl<=X, bits<=X, tl or tl<=X (server/spec/job_spec.h)")
      ->capture_default_str();
  quant->add_option("--formats", q.formats, "Allowed bitwidths: 4-8, 4-5-6-7-8, 2..8, 4,6,8")->capture_default_str();
  quant->add_option("--data", q.data_path, "Text for calibration + held-out evaluation (split by document)")
      ->required();
  quant
      ->add_option("--eval", q.heldout_path,
                   "Separate held-out text: verification (and the TL cloze) runs on it, all of --data calibrates; "
                   "the certificate names it with its sha256")
      ->check(CLI::ExistingFile);
  quant->add_option("--out", q.output_dir, "Artifact directory to create (must not exist)");
  quant->add_option("--tokenizer", q.tokenizer_path, "llama2.c tokenizer .bin (for .bin models)");
  quant->add_option("--group-size", q.group_size, "32, 64, 128 or -1 (per row)")->capture_default_str();
  quant->add_option("--uniform-bits", q.uniform_bits, "Every layer at this width (baseline; no search)");
  quant->add_option("--estimator", q.estimator, "measured or proxy (linearity theorem)")->capture_default_str();
  quant->add_option("--solver", q.solver, "dp or lagrangian")->capture_default_str();
  quant->add_flag("--symmetric", q.symmetric, "Symmetric quantization");
  quant->add_flag("--mse-clip", q.mse_clip, "MSE-optimal clipping");
  quant->add_flag("--hadamard", q.rotate, "Randomized Hadamard rotation (HIGGS)");
  q.quantizers = slq::spec::DefaultQuantizers(false);
  quant
      ->add_option("--quantizers", q.quantizers,
                   "Roundings the search may choose per layer: rtn, mse, gptq (comma-separated; 'rtn' = width "
                   "only; default rtn with --hadamard)")
      ->capture_default_str();
  quant
      ->add_option("--symmetry", q.symmetry,
                   "Scales the search may choose per layer: asym, sym (= --symmetric) or both (default: the base only)")
      ->check(CLI::IsMember({"asym", "sym", "both"}));
  quant->add_option("--group-sizes", q.group_sizes,
                    "Group sizes the search may choose per layer: a comma list containing --group-size, e.g. 64,128 "
                    "(32 and -1 run on the GPU's slow path)");
  q.grids = "off";
  quant
      ->add_option("--grids", q.grids,
                   "Grid Games: per-group non-uniform grids (asymmetric only, + 2 bits per group): off, on (every "
                   "asymmetric candidate) or both (the search chooses per layer)")
      ->check(CLI::IsMember({"off", "on", "both"}))
      ->capture_default_str();
  q.scales = "fp16";
  quant
      ->add_option("--scales", q.scales,
                   "Group scales: fp16 (fp16 scale + zero per group), s8 (8-bit scale code + integer zero-point per "
                   "group, one fp32 base per matrix: 4 + 12/64 bits at 4-bit g64 instead of 4 + 32/64) or both (the "
                   "search chooses per layer); s8 is not combined with --hadamard")
      ->check(CLI::IsMember({"fp16", "s8", "both"}))
      ->capture_default_str();
  quant->add_option("--gptq-damp", q.gptq_damp, "GPTQ dampening, relative to the mean diagonal of X^T X")
      ->capture_default_str();
  quant->add_flag("--gptq-act-order", q.gptq_act_order,
                  "GPTQ: columns in order of descending diag(X^T X) (static groups; same packed layout)");
  quant
      ->add_option("--gram-sequences", q.gram_data.max_sequences,
                   "mse/gptq: at most this many calibration-side windows, never measured, for the input Gram")
      ->capture_default_str();
  quant
      ->add_option("--calibration-sequences", q.data.max_calibration_sequences,
                   "Calibration windows the profile and the closed loop measure (evenly spaced over the calibration "
                   "side); more give tighter bounds, so fewer bits for the same certificate, and cost time")
      ->check(CLI::Range(int64_t{4}, int64_t{100000}))
      ->capture_default_str();
  quant
      ->add_option("--heldout-sequences", q.data.max_heldout_sequences,
                   "Held-out windows the verification measures (evenly spaced over the held-out side)")
      ->check(CLI::Range(int64_t{4}, int64_t{100000}))
      ->capture_default_str();
  quant->add_flag("--quantize-head", q.quantize_lm_head, "Quantize the LM head too");
  quant->add_option("--seed", q.seed, "Bootstrap and noise seed")->capture_default_str();
  quant->add_option("--profile-cache", q.profile_cache_dir, "Cache profiles (measured and proxy) in this folder");
  quant
      ->add_option(
          "--transfer-z", q.transfer_z,
          "Closed-loop margin: one-sided z of the calibration -> held-out transfer (0 = plain calibration bound)")
      ->capture_default_str();
  quant->add_option("--device", device, "Where profiling/verification run: cpu, cuda, cuda:N, auto")
      ->capture_default_str();
  quant
      ->add_option("--cloze-items", q.cloze_max_items,
                   "TL cloze items wanted from the held-out text (capped by the text; 0 = no TL check, "
                   "and a tl target is refused)")
      ->capture_default_str();
  quant->add_flag("--json", json, "Print the certificate as JSON");

  std::string path, tok, prompt = "Once upon a time";
  slq::GenerateOptions gen;
  gen.sampling.temperature = 0;
  CLI::App* g = app.add_subcommand("generate", "Generate text from a model or an artifact");
  g->add_option("model", path, "HF model folder, llama2.c .bin or artifact directory")->required();
  g->add_option("prompt", prompt, "Prompt")->capture_default_str();
  g->add_option("--tokenizer", tok, "llama2.c tokenizer .bin (for .bin models)");
  g->add_option("--max-tokens,-n", gen.max_new_tokens, "New tokens")->capture_default_str();
  g->add_option("--temperature,-t", gen.sampling.temperature, "0 = greedy")->capture_default_str();
  g->add_option("--top-p", gen.sampling.top_p, "Nucleus sampling");
  g->add_option("--seed", gen.sampling.seed, "Sampling seed");
  std::string ex_artifact, ex_format, ex_out, ex_dtype;
  CLI::App* ex = app.add_subcommand("export", "Export an artifact as a Hugging Face folder or a GGUF file");
  ex->add_option("artifact", ex_artifact,
                 "Artifact directory (slq quantize --out, or the server's artifact store); gguf: also an "
                 "unquantized HF model folder")
      ->required();
  ex->add_option("--format", ex_format,
                 "hf (dequantized safetensors + config.json + tokenizer) or gguf (exact types, or dequantized "
                 "with --dtype f32|f16)")
      ->required();
  ex->add_option("--out", ex_out, "hf: a new folder; gguf: the .gguf file")->required();
  ex->add_option("--dtype", ex_dtype,
                 "hf: bf16 (default), fp16 or fp32; gguf: exact (default: the artifact's quantized types), f32 "
                 "or f16 (every linear dequantized, the LM head as its own tensor)");
  std::string sp_text, sp_calib, sp_heldout;
  double sp_fraction = 0.5;
  CLI::App* sp =
      app.add_subcommand("split", "Write the calibration and held-out sides of quantize's document split as two texts");
  sp->add_option("text", sp_text, "Text to split (as given to quantize --data)")->required();
  sp->add_option("--calib", sp_calib, "Where to write the calibration documents")->required();
  sp->add_option("--heldout", sp_heldout, "Where to write the held-out documents")->required();
  sp->add_option("--heldout-fraction", sp_fraction, "Share of documents held out (quantize's default)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (sp->parsed()) return Split(sp_text, sp_calib, sp_heldout, sp_fraction);
  if (quant->parsed()) {
    if (quant->count("--quantizers") == 0) q.quantizers = slq::spec::DefaultQuantizers(q.rotate);
    return Quantize(q, device, json);
  }
  if (ex->parsed()) return Export(ex_artifact, ex_format, ex_out, ex_dtype);
  return Generate(path, tok, prompt, gen);
}
