// slq_cpu_bench: for each real model, prompt (prefill) tokens/s, single-sequence decode
// tokens/s, batched decode tokens/s (B sequences per forward call, as continuous batching
// runs them) and peak RSS, printed as a markdown table. --artifact adds quantized SLQ artifacts
// (their packed linears run through QuantizedLinear; --baseline-kernels forces the x86-64
// baseline build of the packed kernels instead of AVX2).
//
//   slq_cpu_bench --models ../shared/models --prompt 128 --decode 128 --batch 8
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "kernels/packed_dot.h"
#include "server/common/thread_pool.h"
#include "server/model/forward.h"
#include "server/model/generate.h"
#include "server/model/model_loader.h"
#include "server/quant/artifact.h"

namespace slq {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// User + system CPU seconds of the whole process so far.
double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

double PeakRssMiB() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // ru_maxrss is in KiB on Linux
}

std::vector<int32_t> RandomIds(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = static_cast<int32_t>(3 + rng() % (vocab - 3));
  ids[0] = 1;
  return ids;
}

struct Row {
  std::string model;
  int64_t params = 0;
  double prefill_tps = 0, decode_tps = 0, decode_per_cpu_s = 0, batch_tps = 0, rss_mib = 0;
};

// Median prefill throughput over `reps` fresh sequences of `n` tokens.
double Prefill(const Model& m, int64_t n, int reps) {
  std::vector<double> tps;
  for (int r = 0; r < reps; ++r) {
    auto ids = RandomIds(n, m.config.vocab_size, r);
    auto t = Clock::now();
    auto logits = TeacherForcedLogits(m, ids);
    if (!logits.ok()) return 0;
    tps.push_back(n / Since(t));
  }
  std::sort(tps.begin(), tps.end());
  return tps[tps.size() / 2];
}

// Decode tokens/s (wall) and, via *per_cpu_s, tokens per CPU-second of the process (all
// threads): on a shared, oversubscribed machine the latter shows the cost per token.
double Decode(const Model& m, int64_t prompt, int64_t n, double* per_cpu_s = nullptr) {
  GenerateOptions o;
  o.max_new_tokens = n;
  o.sampling.temperature = 0;
  o.use_model_eos = false;
  auto ids = RandomIds(prompt, m.config.vocab_size, 7);
  const double cpu0 = CpuSeconds();
  auto r = Generate(m, ids, o);
  if (!r.ok() || r->tokens.size() < 2) return 0;
  // Called with a 1-token prompt, so the CPU time is (almost) all decode steps.
  if (per_cpu_s != nullptr) *per_cpu_s = r->tokens.size() / (CpuSeconds() - cpu0);
  return (r->tokens.size() - 1) / r->decode_seconds;
}

// B sequences, each prefilled with `prompt` tokens, then `n` decode steps of B tokens per call.
double BatchedDecode(const Model& m, int64_t prompt, int64_t n, int64_t batch) {
  const int64_t bs = 16, per_seq = (prompt + n + bs - 1) / bs;
  KvBlockPool pool(m.config, bs, batch * per_seq);
  std::vector<BlockTable> tables(batch);
  std::vector<std::vector<int32_t>> next(batch);
  ForwardWorkspace ws;
  std::vector<float> logits;
  for (int64_t b = 0; b < batch; ++b) {
    auto ids = RandomIds(prompt, m.config.vocab_size, 100 + b);
    ForwardChunk c{&tables[b], ids, false};
    if (!Forward(m, pool, std::span(&c, 1), &ws, &logits).ok()) return 0;
    next[b] = {static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin())};
  }
  const int64_t V = m.config.vocab_size;
  auto t = Clock::now();
  for (int64_t s = 0; s < n; ++s) {
    std::vector<ForwardChunk> chunks;
    for (int64_t b = 0; b < batch; ++b) chunks.push_back({&tables[b], next[b], false});
    if (!Forward(m, pool, chunks, &ws, &logits).ok()) return 0;
    for (int64_t b = 0; b < batch; ++b) {
      const float* row = logits.data() + b * V;
      next[b][0] = static_cast<int32_t>(std::max_element(row, row + V) - row);
    }
  }
  return n * batch / Since(t);
}

}  // namespace
}  // namespace slq

int main(int argc, char** argv) {
  using namespace slq;
  CLI::App app{"slq CPU runtime benchmark"};
  std::string models_dir = "../shared/models";
  int64_t prompt = 128, decode = 128, batch = 8;
  int reps = 3;
  std::vector<std::string> names = {"stories260k/stories260K.bin", "tinystories-656k", "docs-19m"};
  app.add_option("--models", models_dir, "folder with the models");
  app.add_option("--model", names, "model paths relative to --models");
  app.add_option("--prompt", prompt, "prefill length");
  app.add_option("--decode", decode, "decode steps");
  app.add_option("--batch", batch, "sequences per batched decode step");
  app.add_option("--reps", reps, "prefill repetitions (median)");
  std::vector<std::string> artifacts;
  bool baseline_kernels = false;
  app.add_option("--artifact", artifacts, "SLQ artifact directories (quantized models) to add");
  app.add_flag("--baseline-kernels", baseline_kernels, "packed kernels: force the baseline ISA build");
  CLI11_PARSE(app, argc, argv);
  kernels::ForceBaselinePackedKernels(baseline_kernels);

  std::vector<Row> rows;
  std::vector<std::string> all = names;
  for (const std::string& a : artifacts) all.push_back("artifact:" + a);
  for (const std::string& name : all) {
    absl::StatusOr<std::unique_ptr<Model>> m;
    if (name.rfind("artifact:", 0) == 0) {
      auto art = quant::LoadArtifact(name.substr(9));
      if (art.ok()) {
        m = std::move(art->model);
      } else {
        m = art.status();
      }
    } else {
      m = LoadModel(models_dir + "/" + name, {.compute_sha256 = false});
    }
    if (!m.ok()) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), std::string(m.status().message()).c_str());
      return 1;
    }
    Row r;
    r.model = name.rfind("artifact:", 0) == 0 ? name : name.substr(0, name.find('/'));
    r.params = (*m)->ParamCount();
    Decode(**m, 8, 8);  // warm up (page faults, OpenBLAS threads)
    r.prefill_tps = Prefill(**m, prompt, reps);
    r.decode_tps = Decode(**m, prompt, decode);
    Decode(**m, 1, decode, &r.decode_per_cpu_s);
    r.batch_tps = BatchedDecode(**m, prompt, decode, batch);
    r.rss_mib = PeakRssMiB();
    rows.push_back(r);
  }
  std::printf("threads: %d (SLQ_THREADS / hardware), prompt %ld tokens, decode %ld steps, packed kernels %s\n\n",
              DefaultThreads(), static_cast<long>(prompt), static_cast<long>(decode), kernels::PackedKernelIsa());
  std::printf(
      "| model | params | prefill tok/s | decode tok/s (batch 1) "
      "| decode tok per CPU-s (batch 1) | decode tok/s (batch %ld) "
      "| peak RSS MiB (cumulative) |\n|---|---:|---:|---:|---:|---:|---:|\n",
      static_cast<long>(batch));
  for (const Row& r : rows) {
    std::printf("| %s | %ld | %.0f | %.1f | %.1f | %.1f | %.0f |\n", r.model.c_str(), static_cast<long>(r.params),
                r.prefill_tps, r.decode_tps, r.decode_per_cpu_s, r.batch_tps, r.rss_mib);
  }
  return 0;
}
