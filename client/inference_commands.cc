// slqctl: generate (streams text as it arrives), models, load, unload, tokenize, score.
#include <cmath>
#include <iostream>
#include <memory>

#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/output.h"

namespace slq::client {
namespace {

using InferenceStub = slq::v1::InferenceService::Stub;

void AddGenerate(CLI::App& app, const GlobalOptions& g, Handler* selected) {
  struct Opts {
    std::string model, prompt;
    int max_tokens = 128, top_k = 0;
    double temperature = 0, top_p = 0, repetition_penalty = 0, timeout = 0;
    uint64_t seed = 0;
    std::vector<std::string> stop;
    bool logprobs = false, stats = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("generate", "Stream a generation from a loaded model");
  cmd->add_option("model", o->model, "Model name (see slqctl models)")->required();
  cmd->add_option("prompt", o->prompt, "Prompt text")->required();
  cmd->add_option("--max-tokens,-n", o->max_tokens, "Tokens to generate")->capture_default_str();
  cmd->add_option("--temperature,-t", o->temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "0 = off");
  cmd->add_option("--top-p", o->top_p, "0 or 1 = off");
  cmd->add_option("--repetition-penalty", o->repetition_penalty, "1 = off");
  cmd->add_option("--seed", o->seed, "Sampling seed");
  cmd->add_option("--stop", o->stop, "Stop string (repeatable)");
  cmd->add_option("--deadline", o->timeout, "Seconds before the server gives up (0 = none)");
  cmd->add_flag("--logprobs", o->logprobs, "Print each token's log-probability (with --json)");
  cmd->add_flag("--stats", o->stats, "Print TTFT and tokens/s to stderr at the end");
  cmd->callback([&g, o, selected] {
    *selected = [&g, o](Client& c) {
      slq::v1::GenerateRequest req;
      req.set_model(o->model);
      req.set_prompt(o->prompt);
      req.set_max_tokens(o->max_tokens);
      auto* s = req.mutable_sampling();
      s->set_temperature(o->temperature);
      s->set_top_k(o->top_k);
      s->set_top_p(o->top_p);
      s->set_repetition_penalty(o->repetition_penalty);
      s->set_seed(o->seed);
      for (const auto& st : o->stop) req.add_stop(st);
      req.set_logprobs(o->logprobs);
      grpc::ClientContext ctx;
      c.Prepare(&ctx, false);
      if (o->timeout > 0) {
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(static_cast<int64_t>(o->timeout * 1000)));
      }
      auto reader = c.inference().Generate(&ctx, req);
      slq::v1::GenerateResponse resp;
      slq::v1::Usage usage;
      slq::v1::FinishReason finish = slq::v1::FINISH_REASON_UNSPECIFIED;
      if (!g.json) std::cout << o->prompt << std::flush;
      while (reader->Read(&resp)) {
        if (g.json) {
          std::cout << ToJson(resp) << std::endl;
        } else {
          std::cout << resp.text() << std::flush;
        }
        if (resp.has_usage()) usage = resp.usage();
        if (resp.finish_reason() != slq::v1::FINISH_REASON_UNSPECIFIED) finish = resp.finish_reason();
      }
      grpc::Status st = reader->Finish();
      if (!g.json) std::cout << "\n";
      if (!st.ok()) return ReportRpcError(st, "generate");
      if (o->stats) {
        double decode = usage.total_seconds() - usage.ttft_seconds();
        std::cerr << absl::StrFormat(
            "[%d prompt + %d generated tokens, TTFT %.1f ms, %.1f tokens/s decode, finish %s]\n", usage.prompt_tokens(),
            usage.generated_tokens(), usage.ttft_seconds() * 1e3,
            decode > 0 ? (usage.generated_tokens() - 1) / decode : 0.0, slq::v1::FinishReason_Name(finish));
      }
      return int{kExitOk};
    };
  });
}

void AddModelCommands(CLI::App& app, const GlobalOptions& g, Handler* selected) {
  CLI::App* models = app.add_subcommand("models", "List loaded models");
  models->callback([&g, selected] {
    *selected = [&g](Client& c) {
      slq::v1::ListModelsResponse resp;
      grpc::Status s = c.Call(c.inference(), &InferenceStub::ListModels, slq::v1::ListModelsRequest(), &resp);
      if (!s.ok()) return ReportRpcError(s, "models");
      if (!g.json) {
        std::cout << absl::StrFormat("%-24s %-5s %6s %9s %7s %-6s %s\n", "NAME", "QUANT", "BITS", "MiB", "CTX",
                                     "DEVICE", "SOURCE");
      }
      for (const auto& m : resp.models()) {
        if (g.json) {
          std::cout << ToJson(m) << std::endl;
        } else {
          std::cout << absl::StrFormat("%-24s %-5s %6.2f %9.2f %7d %-6s %s\n", m.name(), m.quantized() ? "yes" : "no",
                                       m.avg_bits(), m.memory_bytes() / 1048576.0, m.context_length(), m.device(),
                                       m.source());
        }
      }
      return int{kExitOk};
    };
  });

  struct LoadOpts {
    std::string name, artifact, path, uri, shadow;
  };
  auto lo = std::make_shared<LoadOpts>();
  CLI::App* load = app.add_subcommand("load", "Load an artifact or a base model for serving");
  load->add_option("--name", lo->name, "Serve under this name");
  auto* a = load->add_option("--artifact", lo->artifact, "Artifact id");
  auto* p = load->add_option("--path", lo->path, "Artifact directory on the server");
  auto* u = load->add_option("--uri", lo->uri, "Base model URI (unquantized)");
  a->excludes(p)->excludes(u);
  p->excludes(u);
  load->add_option("--shadow-base", lo->shadow, "Base model name to shadow-evaluate against");
  load->callback([&g, lo, selected] {
    *selected = [&g, lo](Client& c) {
      slq::v1::LoadModelRequest req;
      req.set_name(lo->name);
      if (!lo->artifact.empty()) req.set_artifact_id(lo->artifact);
      if (!lo->path.empty()) req.set_artifact_path(lo->path);
      if (!lo->uri.empty()) req.set_model_uri(lo->uri);
      req.set_shadow_base_model(lo->shadow);
      slq::v1::LoadModelResponse resp;
      grpc::Status s = c.Call(c.inference(), &InferenceStub::LoadModel, req, &resp, /*with_deadline=*/false);
      if (!s.ok()) return ReportRpcError(s, "load");
      if (g.json) {
        std::cout << ToJson(resp.model()) << std::endl;
      } else {
        std::cout << "loaded " << resp.model().name() << " (" << resp.model().source() << ")\n";
      }
      return int{kExitOk};
    };
  });

  auto uname = std::make_shared<std::string>();
  CLI::App* unload = app.add_subcommand("unload", "Unload a model");
  unload->add_option("name", *uname, "Model name")->required();
  unload->callback([uname, selected] {
    *selected = [uname](Client& c) {
      slq::v1::UnloadModelRequest req;
      req.set_name(*uname);
      slq::v1::UnloadModelResponse resp;
      grpc::Status s = c.Call(c.inference(), &InferenceStub::UnloadModel, req, &resp);
      if (!s.ok()) return ReportRpcError(s, "unload");
      std::cout << "unloaded " << *uname << "\n";
      return int{kExitOk};
    };
  });
}

void AddTextCommands(CLI::App& app, const GlobalOptions& g, Handler* selected) {
  auto model = std::make_shared<std::string>();
  auto text = std::make_shared<std::string>();
  CLI::App* tok = app.add_subcommand("tokenize", "Tokenize text with a model's tokenizer");
  tok->add_option("model", *model, "Model name")->required();
  tok->add_option("text", *text, "Text")->required();
  tok->callback([&g, model, text, selected] {
    *selected = [&g, model, text](Client& c) {
      slq::v1::TokenizeRequest req;
      req.set_model(*model);
      req.set_text(*text);
      req.set_add_special_tokens(true);
      slq::v1::TokenizeResponse resp;
      grpc::Status s = c.Call(c.inference(), &InferenceStub::Tokenize, req, &resp);
      if (!s.ok()) return ReportRpcError(s, "tokenize");
      if (g.json) {
        std::cout << ToJson(resp) << std::endl;
      } else {
        for (int i = 0; i < resp.ids_size(); ++i) {
          std::cout << resp.ids(i) << (i < resp.pieces_size() ? "\t" + resp.pieces(i) : "") << "\n";
        }
      }
      return int{kExitOk};
    };
  });

  auto smodel = std::make_shared<std::string>();
  auto stext = std::make_shared<std::string>();
  CLI::App* score = app.add_subcommand("score", "Per-token log-probabilities of a text");
  score->add_option("model", *smodel, "Model name")->required();
  score->add_option("text", *stext, "Text")->required();
  score->callback([&g, smodel, stext, selected] {
    *selected = [&g, smodel, stext](Client& c) {
      slq::v1::ScoreRequest req;
      req.set_model(*smodel);
      req.set_text(*stext);
      slq::v1::ScoreResponse resp;
      grpc::Status s = c.Call(c.inference(), &InferenceStub::Score, req, &resp);
      if (!s.ok()) return ReportRpcError(s, "score");
      if (g.json) {
        std::cout << ToJson(resp) << std::endl;
      } else {
        std::cout << absl::StrFormat("%d tokens, mean NLL %.4f nats (perplexity %.3f)\n", resp.ids_size(),
                                     resp.mean_nll(), std::exp(resp.mean_nll()));
      }
      return int{kExitOk};
    };
  });
}

}  // namespace

void RegisterInferenceCommands(CLI::App& app, const GlobalOptions& g, Handler* selected) {
  AddGenerate(app, g, selected);
  AddModelCommands(app, g, selected);
  AddTextCommands(app, g, selected);
}

}  // namespace slq::client
