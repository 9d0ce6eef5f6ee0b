// slq_gpu_decode_bench: end-to-end batch-1 decode of a Llama-3-8B-shaped model with random
// weights built directly on the GPU (no file), through the real GPU runtime (GpuForward:
// embedding, 32 layers, LM head, greedy argmax on the GPU; the token is fed back from the host).
// Configs: bf16 / fp16 dense (cuBLAS), uniform 4-bit g128 (QGemm), an SLQ-like ~5.7-bit mix.
// Each runs with and without CUDA graphs; a device-to-device copy measured in the same run
// gives the achievable bandwidth. Output: a markdown table (stdout and --out).
// --breakdown: after the timed steps, one more decode step runs eagerly with its launches queued
// behind a GPU busy-wait and an event after each kernel group, and a second table gives each
// group's GPU time (summed over layers). Each group's figure includes the cost of one event record
// (about 3 us on the H200: the GPU sum exceeded the graph step by ~0.9 ms over 292 intervals), so
// compare groups with each other and across runs, not with the graph step.
//
// The device loop (GpuGreedyDecode) decodes the same prompt again for `tokens` steps with the
// argmax fed back on the GPU and the ids read once at the end.
// --pdl: the step's own kernels launch with programmatic dependent launch (GpuWorkspaceOptions).
// --linear-pdl / --no-linear-pdl: the quantized linears do (QGemmOptions::pdl; default: on, as
// GpuWorkspaceOptions), in the step and in the linears-only replay.
//
//   slq_gpu_decode_bench [--tokens 128] [--prompt 16] [--configs bf16,f16,q4,mix] [--breakdown]
//                        [--pdl] [--linear-pdl|--no-linear-pdl] [--out f.md]
// Quantized configs take suffixes: q4-grid / mix-grid (grid matrices: random grid ids per group,
// kernels/grids.h), and -bf16 for bf16 activations (default fp16, as the dense f16), e.g.
// q4,q4-grid,q4-bf16,q4-grid-bf16.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "server/gpu/gpu_forward.h"
#include "server/gpu/gpu_model.h"
#include "server/gpu/gpu_model_impl.h"  // internal: the linears-only replay below

namespace {

using slq::gpu::ActType;
using slq::gpu::RandomLinearSpec;

slq::ModelConfig Llama3_8B() {
  slq::ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = 4096;
  c.intermediate_size = 14336;
  c.num_layers = 32;
  c.num_heads = 32;
  c.num_kv_heads = 8;
  c.head_dim = 128;
  c.vocab_size = 128256;
  c.max_position_embeddings = 8192;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500000.0;
  c.rope_scaling.type = slq::RopeScaling::Type::kLlama3;
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 8192;
  c.bos_token_id = 128000;
  return c;
}

// SLQ-like mix: q/k/v/o 6 bits; gate_up 5/4/5/6 by layer mod 4; down 6 (8 in the first and
// last layer); lm_head 6; all g128.
RandomLinearSpec MixSpec(const std::string& name, int layer) {
  RandomLinearSpec s;
  s.group_size = 128;
  s.bits = 6;
  if (name.find("gate_up") != std::string::npos) s.bits = std::vector<int>{5, 4, 5, 6}[layer % 4];
  if (name.find("down") != std::string::npos && (layer == 0 || layer == 31)) s.bits = 8;
  return s;
}

// A quantized config name: "q4" or "mix", then optionally "-grid", then optionally "-bf16".
struct QuantConfigName {
  bool ok = false, mix = false, grids = false, bf16 = false;
};
QuantConfigName ParseQuantConfig(std::string name) {
  QuantConfigName q;
  auto strip = [&name](const std::string& suffix) {
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      return false;
    }
    name.resize(name.size() - suffix.size());
    return true;
  };
  q.bf16 = strip("-bf16");
  q.grids = strip("-grid");
  q.mix = name == "mix";
  q.ok = q.mix || name == "q4";
  return q;
}

double MeasureCopyTBs() {
  const size_t bytes = size_t{4} << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) return 0;
  cudaMemset(a, 1, bytes);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
  cudaEventRecord(e0);
  constexpr int kReps = 10;
  for (int i = 0; i < kReps; ++i) cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice);
  cudaEventRecord(e1);
  cudaEventSynchronize(e1);
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * static_cast<double>(bytes) * kReps / (ms * 1e-3) / 1e12;
}

// Time of one token's linears alone (batch 1, same kernels and order as the forward pass,
// replayed from a CUDA graph): the part of a decode step that is weight streaming.
double LinearsOnlyMs(const slq::gpu::GpuModel& gm, bool linear_pdl) {
  const auto& m = gm.impl();
  std::vector<const slq::gpu::GpuLinear*> ls;
  for (const auto& l : m.layers) {
    for (const auto* g : {&l.qkv, &l.q, &l.k, &l.v, &l.o, &l.gate_up, &l.gate, &l.up, &l.down}) {
      if (!g->empty()) ls.push_back(g);
    }
  }
  ls.push_back(&m.lm_head);
  int64_t max_in = 0, max_out = 0;
  for (const auto* g : ls) {
    max_in = std::max(max_in, g->in);
    max_out = std::max(max_out, g->out);
  }
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  cublasHandle_t blas;
  cublasCreate(&blas);
  void *bws = nullptr, *x = nullptr, *y = nullptr, *qws = nullptr;
  cudaMalloc(&bws, 32 << 20);
  cublasSetStream(blas, s);
  cublasSetWorkspace(blas, bws, 32 << 20);
  cudaMalloc(&x, static_cast<size_t>(max_in) * 2);
  cudaMalloc(&y, static_cast<size_t>(max_out) * 4);
  cudaMemset(x, 0, static_cast<size_t>(max_in) * 2);
  const size_t qb = slq::kernels::QGemmWorkspaceBytes(std::max<int64_t>(m.max_rows, 16), 16);
  slq::kernels::AllocWorkspace(qb, &qws);
  auto run = [&]() {
    for (const auto* g : ls) {
      (void)slq::gpu::RunLinear(*g, m.act, x, 1, y, g == &m.lm_head && !g->quant, blas, qws, qb, s, linear_pdl);
    }
  };
  run();
  cudaStreamSynchronize(s);
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
  run();
  cudaStreamEndCapture(s, &graph);
  cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphLaunch(exec, s);
  cudaStreamSynchronize(s);
  constexpr int kReps = 20;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kReps; ++i) cudaGraphLaunch(exec, s);
  cudaStreamSynchronize(s);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / kReps;
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaFree(qws);
  cudaFree(x);
  cudaFree(y);
  cudaFree(bws);
  cublasDestroy(blas);
  cudaStreamDestroy(s);
  return ms;
}

struct Row {
  std::string config, linears;
  double bits = 0, mb_per_token = 0, tps_eager = 0, tps_graph = 0, ms_eager = 0, ms_graph = 0;
  double floor_ms = 0, copy_floor_ms = 0, linears_ms = 0, ms_device = 0;
  std::string first_tokens, device_tokens;
  slq::gpu::StepBreakdown breakdown;
};

}  // namespace

int main(int argc, char** argv) {
  int64_t tokens = 128, prompt = 16;
  std::string configs = "bf16,f16,q4,mix", out_path;
  bool breakdown = false, pdl = false, linear_pdl = slq::gpu::GpuWorkspaceOptions{}.linear_pdl;
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--no-linear-pdl") {
      linear_pdl = false;
      --i;
      continue;
    }
    if (k == "--breakdown" || k == "--pdl" || k == "--linear-pdl") {
      (k == "--pdl" ? pdl : k == "--linear-pdl" ? linear_pdl : breakdown) = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "flag %s needs a value\n", k.c_str());
      return 2;
    }
    if (k == "--tokens")
      tokens = std::atoll(argv[i + 1]);
    else if (k == "--prompt")
      prompt = std::atoll(argv[i + 1]);
    else if (k == "--configs")
      configs = argv[i + 1];
    else if (k == "--out")
      out_path = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  std::string why;
  if (!slq::gpu::GpuAvailable(&why)) {
    std::fprintf(stderr, "no GPU: %s\n", why.c_str());
    return 1;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  const double copy_tbs = MeasureCopyTBs();
  const slq::ModelConfig cfg = Llama3_8B();
  std::vector<Row> rows;
  std::stringstream ss(configs);
  std::string name;
  while (std::getline(ss, name, ',')) {
    slq::gpu::GpuModelOptions mo;
    slq::gpu::RandomSpecFn spec;
    if (name == "bf16" || name == "f16") {
      mo.act = name == "bf16" ? ActType::kBF16 : ActType::kF16;
      spec = [](const std::string&, int) { return RandomLinearSpec{0, 128}; };
    } else if (const QuantConfigName q = ParseQuantConfig(name); q.ok) {
      // q4 / mix, optionally "-grid" (every quantized linear carries random grid ids, the
      // real level tables) and "-bf16" (bf16 activations; default fp16, GpuModelOptions).
      if (q.bf16) mo.act = ActType::kBF16;
      const bool grids = q.grids;
      if (q.mix) {
        spec = [grids](const std::string& n, int layer) {
          RandomLinearSpec s = MixSpec(n, layer);
          s.grids = grids;
          return s;
        };
      } else {
        spec = [grids](const std::string&, int) { return RandomLinearSpec{4, 128, grids}; };
      }
    } else {
      std::fprintf(stderr, "unknown config %s\n", name.c_str());
      return 2;
    }
    auto gm = slq::gpu::GpuModel::CreateRandom(cfg, spec, mo, 1234);
    if (!gm.ok()) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), std::string(gm.status().message()).c_str());
      return 1;
    }
    Row row;
    row.config = name;
    row.linears = (*gm)->Describe();
    row.bits = 8.0 * static_cast<double>((*gm)->LinearBytes()) / static_cast<double>((*gm)->LinearParams());
    constexpr int64_t kBs = 16;
    const int64_t blocks = 2 * ((prompt + tokens) / kBs + 2);
    auto kv = slq::gpu::GpuKvCache::Create(cfg, (*gm)->act(), kBs, blocks);
    slq::gpu::GpuWorkspaceOptions wo;
    wo.pdl = pdl;
    wo.linear_pdl = linear_pdl;
    auto ws = slq::gpu::GpuWorkspace::Create(**gm, wo);
    if (!kv.ok() || !ws.ok()) {
      std::fprintf(stderr, "%s: kv/workspace failed\n", name.c_str());
      return 1;
    }
    // Bytes per token: every linear's weights + the K/V read at the mean context.
    const double kv_bytes = static_cast<double>(slq::gpu::GpuKvCache::BytesPerToken(cfg, (*gm)->act())) *
                            (static_cast<double>(prompt) + static_cast<double>(tokens) / 2);
    const double bytes = static_cast<double>((*gm)->LinearBytes()) + kv_bytes;
    row.mb_per_token = bytes / 1e6;
    row.floor_ms = bytes / 3.0e12 * 1e3;
    row.copy_floor_ms = bytes / (copy_tbs * 1e12) * 1e3;
    row.linears_ms = LinearsOnlyMs(**gm, linear_pdl);
    for (int graphs = 0; graphs < 2; ++graphs) {
      (*ws)->set_cuda_graphs(graphs == 1);
      slq::BlockAllocator alloc(blocks, kBs);
      slq::BlockTable t;
      std::vector<int32_t> p(static_cast<size_t>(prompt));
      for (int64_t i = 0; i < prompt; ++i) p[i] = static_cast<int32_t>((i * 7919 + 13) % cfg.vocab_size);
      slq::gpu::GpuForwardResult r;
      slq::gpu::GpuForwardOptions fo;
      fo.host_rows = {0};
      slq::ForwardChunk c0{&t, p, false};
      absl::Status st =
          slq::gpu::GpuForward(**gm, **kv, alloc, std::span<const slq::ForwardChunk>(&c0, 1), ws->get(), fo, &r);
      int32_t next = r.argmax.empty() ? 0 : r.argmax[0];
      std::string toks;
      auto t0 = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < tokens && st.ok(); ++i) {
        if (i == 2) t0 = std::chrono::steady_clock::now();  // steps 0-1: eager run + capture
        slq::ForwardChunk c{&t, std::span<const int32_t>(&next, 1), false};
        st = slq::gpu::GpuForward(**gm, **kv, alloc, std::span<const slq::ForwardChunk>(&c, 1), ws->get(), fo, &r);
        if (st.ok()) next = r.argmax[0];
        if (i < 6) toks += std::to_string(next) + " ";
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!st.ok()) {
        std::fprintf(stderr, "%s: %s\n", name.c_str(), std::string(st.message()).c_str());
        return 1;
      }
      const double tps = static_cast<double>(tokens - 2) / s;
      (graphs ? row.tps_graph : row.tps_eager) = tps;
      (graphs ? row.ms_graph : row.ms_eager) = 1e3 / tps;
      if (graphs) row.first_tokens = toks;
      if (graphs && breakdown) {
        slq::gpu::GpuForwardOptions po = fo;
        po.breakdown = &row.breakdown;
        slq::ForwardChunk c{&t, std::span<const int32_t>(&next, 1), false};
        st = slq::gpu::GpuForward(**gm, **kv, alloc, std::span<const slq::ForwardChunk>(&c, 1), ws->get(), po, &r);
        if (!st.ok()) {
          std::fprintf(stderr, "%s breakdown: %s\n", name.c_str(), std::string(st.message()).c_str());
          return 1;
        }
      }
      if (graphs) {
        // Device loop (GpuGreedyDecode): the same prompt in a second sequence, `tokens` steps with
        // no host round trip per token; the first call captures, the second (same contexts) is timed.
        for (int pass = 0; pass < 2 && st.ok(); ++pass) {
          slq::BlockTable t2;
          slq::ForwardChunk c2{&t2, p, false};
          st = slq::gpu::GpuForward(**gm, **kv, alloc, std::span<const slq::ForwardChunk>(&c2, 1), ws->get(), fo, &r);
          const int32_t first = r.argmax.empty() ? 0 : r.argmax[0];
          std::vector<int32_t> ids;
          slq::BlockTable* tables[] = {&t2};
          const auto d0 = std::chrono::steady_clock::now();
          if (st.ok()) st = slq::gpu::GpuGreedyDecode(**gm, **kv, alloc, tables, {&first, 1}, tokens, ws->get(), &ids);
          const double ds = std::chrono::duration<double>(std::chrono::steady_clock::now() - d0).count();
          row.ms_device = 1e3 * ds / static_cast<double>(tokens);
          row.device_tokens.clear();
          for (size_t i = 0; i < ids.size() && i < 6; ++i) row.device_tokens += std::to_string(ids[i]) + " ";
          alloc.Release(&t2);
        }
        if (!st.ok()) {
          std::fprintf(stderr, "%s device loop: %s\n", name.c_str(), std::string(st.message()).c_str());
          return 1;
        }
        std::fprintf(stderr, "%s device loop: %.3f ms/token, tokens %s\n", name.c_str(), row.ms_device,
                     row.device_tokens.c_str());
      }
      std::fprintf(stderr, "%s graphs=%d: %.1f tokens/s (%.3f ms/token), tokens %s\n", name.c_str(), graphs, tps,
                   1e3 / tps, toks.c_str());
    }
    std::fprintf(stderr, "  %s\n", row.linears.c_str());
    rows.push_back(row);
  }
  std::ostringstream md;
  md << "Device: " << prop.name << " (" << prop.multiProcessorCount << " SMs); measured D2D copy " << copy_tbs
     << " TB/s (read + write)\n";
  md << "Llama-3-8B shape (32 layers, hidden 4096, 32/8 heads, intermediate 14336, vocab 128256), random "
        "weights, batch 1, prompt "
     << prompt << ", " << tokens << " decode steps (first 2 not timed); small kernels with programmatic dependent "
     << "launch: " << (pdl ? "on" : "off")
     << "; programmatic dependent launch of the quantized linears: " << (linear_pdl ? "on" : "off") << "\n\n";
  md << "| config | bits/param (linears) | MB/token | floor ms @3.0 TB/s | floor ms @copy | eager ms/token | "
        "graph ms/token | tokens/s eager | tokens/s graph | graph vs 3.0 TB/s floor | graph vs copy floor | "
        "linears alone ms | device-loop ms/token | tokens/s device loop |\n";
  md << "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  char buf[512];
  for (const Row& r : rows) {
    std::snprintf(
        buf, sizeof(buf),
        "| %s | %.2f | %.1f | %.3f | %.3f | %.3f | %.3f | %.1f | %.1f | %.0f%% | %.0f%% | %.3f | %.3f | %.1f |\n",
        r.config.c_str(), r.bits, r.mb_per_token, r.floor_ms, r.copy_floor_ms, r.ms_eager, r.ms_graph, r.tps_eager,
        r.tps_graph, 100.0 * r.floor_ms / r.ms_graph, 100.0 * r.copy_floor_ms / r.ms_graph, r.linears_ms, r.ms_device,
        1e3 / r.ms_device);
    md << buf;
  }
  md << "\n";
  for (const Row& r : rows) {
    md << "- " << r.config << ": " << r.linears << "; first tokens " << r.first_tokens << "(device loop "
       << r.device_tokens << ")\n";
  }
  if (breakdown) {
    md << "\nBreakdown of one decode step at context " << prompt + tokens + 1
       << " (eager, launches queued behind a GPU busy-wait: kernel time without launch gaps, plus the cost of "
          "the event recorded after each group, about 3 us per group and layer on the H200; ms summed over "
          "layers)\n\n| group |";
    for (const Row& r : rows) md << " " << r.config << " ms |";
    md << "\n|---|";
    for (size_t i = 0; i < rows.size(); ++i) md << "---:|";
    md << "\n";
    std::vector<std::string> groups;
    for (const Row& r : rows) {
      for (const auto& [g, ms] : r.breakdown.ms) {
        if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
      }
    }
    auto cell = [&](const std::string& text) { md << " " << text << " |"; };
    for (const std::string& g : groups) {
      md << "| " << g << " |";
      for (const Row& r : rows) {
        double v = 0;
        for (const auto& [gg, ms] : r.breakdown.ms) v += gg == g ? ms : 0;
        std::snprintf(buf, sizeof(buf), "%.3f", v);
        cell(buf);
      }
      md << "\n";
    }
    auto line = [&](const char* label, auto value) {
      md << "| " << label << " |";
      for (const Row& r : rows) {
        std::snprintf(buf, sizeof(buf), "%.3f", value(r));
        cell(buf);
      }
      md << "\n";
    };
    line("**GPU sum**", [](const Row& r) { return r.breakdown.total_ms; });
    line("GPU sum without the linears", [](const Row& r) {
      double v = r.breakdown.total_ms;
      for (const auto& [g, ms] : r.breakdown.ms) v -= g.rfind("linear", 0) == 0 || g.rfind("lm_head", 0) == 0 ? ms : 0;
      return v;
    });
    line("graph step (table above)", [](const Row& r) { return r.ms_graph; });
    line("graph step - GPU sum (host work + launch gaps - event cost)",
         [](const Row& r) { return r.ms_graph - r.breakdown.total_ms; });
  }
  std::printf("%s", md.str().c_str());
  if (!out_path.empty()) std::ofstream(out_path) << md.str();
  return 0;
}
