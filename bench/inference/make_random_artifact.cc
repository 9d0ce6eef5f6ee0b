// make_random_artifact: writes an slq artifact of any Llama shape with random codes, WITHOUT
// quantizing anything, through the real artifact writer (quant::WriteArtifact), so its format is
// exactly what the pipeline writes. For load-time benchmarks (slq_load_bench, slq-server).
//
//   make_random_artifact OUT_DIR [--layers 32] [--bits 4] [--group 128] [--vocab 128256]
//       [--tokenizer-from DIR]
//
// Defaults are Llama-3-8B's shapes (hidden 4096, 32 layers, 32/8 heads of 128, intermediate
// 14336, vocab 128256) at 4 bits g128 asymmetric (4.25 bits/param). --bits takes a list that is
// cycled over the linears of each layer ("4" or a mix such as "3,4,5,6,8"). Embeddings and the LM
// head are random fp16 values (stored F16, "kept at 16 bits" like the pipeline's) unless
// --head-bits quantizes the head. --tokenizer-from copies that folder's tokenizer.json (any
// vocabulary: the server only needs a tokenizer file to load).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "server/common/half.h"
#include "server/common/thread_pool.h"
#include "server/model/model.h"
#include "server/quant/artifact.h"
#include "server/quant/quantized_linear.h"

namespace slq {
namespace {

// SplitMix64: a cheap, seedable stream (one per row, so rows fill in parallel reproducibly).
uint64_t Mix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Random codes (every bit random; a row's unused high bits zero), scales ~ 0.02 / 2^bits,
// zeros = -s * 2^(bits-1) (+ per-group noise for asymmetric layers).
std::unique_ptr<LinearOp> RandomQuantized(int64_t rows, int64_t cols, int bits, int64_t group, bool symmetric,
                                          uint64_t seed) {
  quant::QuantizedMatrix q;
  q.rows = rows;
  q.cols = cols;
  q.bits = bits;
  q.group_size = group;
  q.symmetric = symmetric;
  const int64_t wpr = kernels::WordsPerRow(cols, bits), gpr = kernels::GroupsPerRow(cols, group);
  q.codes.resize(static_cast<size_t>(rows * wpr));
  q.scales.resize(static_cast<size_t>(rows * gpr));
  q.zeros.resize(q.scales.size());
  const int tail_bits = static_cast<int>((cols * bits) % 32);
  const uint32_t tail_mask = tail_bits == 0 ? ~0u : (1u << tail_bits) - 1u;
  ParallelFor(rows, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      uint64_t s = seed * 0x100000001b3ull + static_cast<uint64_t>(r);
      uint32_t* row = q.codes.data() + r * wpr;
      for (int64_t w = 0; w < wpr; ++w) row[w] = static_cast<uint32_t>(Mix(s));
      row[wpr - 1] &= tail_mask;
      for (int64_t g = 0; g < gpr; ++g) {
        const float step = 0.02f / static_cast<float>(1 << bits) * (0.5f + static_cast<float>(Mix(s) % 1000) / 1000.0f);
        const uint16_t s16 = FloatToHalf(step);
        q.scales[r * gpr + g] = s16;
        q.zeros[r * gpr + g] = symmetric ? quant::SymmetricZero(s16, bits)
                                         : FloatToHalf(-HalfToFloat(s16) * static_cast<float>(1 << (bits - 1)) *
                                                       (0.9f + static_cast<float>(Mix(s) % 200) / 1000.0f));
      }
    }
  });
  return std::make_unique<quant::QuantizedLinear>(std::move(q));
}

// Random values exactly representable in fp16 (so the writer stores them as F16).
std::vector<float> RandomHalfValues(int64_t n, float amp, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  ParallelFor(
      n,
      [&](int64_t b, int64_t e) {
        uint64_t s = seed * 0x100000001b3ull + static_cast<uint64_t>(b);
        for (int64_t i = b; i < e; ++i) {
          const float x = (static_cast<float>(Mix(s) % 20001) / 10000.0f - 1.0f) * amp;
          v[i] = HalfToFloat(FloatToHalf(x));
        }
      },
      0, 1 << 16);
  return v;
}

int Run(int argc, char** argv) {
  CLI::App app{"Writes an slq artifact with random codes (no quantization) through the real artifact writer"};
  std::string out, bits_list = "4", tokenizer_from;
  int64_t layers = 32, hidden = 4096, intermediate = 14336, heads = 32, kv_heads = 8, head_dim = 128, vocab = 128256;
  int64_t group = 128;
  int head_bits = 0;
  bool symmetric = false;
  app.add_option("out", out, "artifact folder to create (must not exist)")->required();
  app.add_option("--layers", layers, "transformer blocks");
  app.add_option("--hidden", hidden);
  app.add_option("--intermediate", intermediate);
  app.add_option("--heads", heads);
  app.add_option("--kv-heads", kv_heads);
  app.add_option("--head-dim", head_dim);
  app.add_option("--vocab", vocab);
  app.add_option("--bits", bits_list, "bits of the linears, a list cycled over each layer's 7 linears");
  app.add_option("--group", group, "group size");
  app.add_option("--head-bits", head_bits, "0: LM head kept at 16 bits (dense); else its bits");
  app.add_flag("--symmetric", symmetric, "symmetric groups (no stored zeros: bits + 16/g per param)");
  app.add_option("--tokenizer-from", tokenizer_from, "folder whose tokenizer.json (+ config) is copied in");
  CLI11_PARSE(app, argc, argv);
  std::vector<int> bits;
  for (absl::string_view b : absl::StrSplit(bits_list, ',')) {
    int v = 0;
    if (!absl::SimpleAtoi(b, &v) || v < 2 || v > 8) {
      std::fprintf(stderr, "--bits: '%s' is not a list of widths 2..8\n", bits_list.c_str());
      return 2;
    }
    bits.push_back(v);
  }

  Model m;
  ModelConfig& c = m.config;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.vocab_size = vocab;
  c.max_position_embeddings = 8192;
  c.rope_theta = 500000.0;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  if (absl::Status s = c.Validate(); !s.ok()) {
    std::fprintf(stderr, "bad shape: %s\n", s.ToString().c_str());
    return 2;
  }
  uint64_t seed = 1;
  m.embed = RandomHalfValues(vocab * hidden, 1.0f, seed++);
  m.final_norm.assign(static_cast<size_t>(hidden), 1.0f);
  m.layers.resize(static_cast<size_t>(layers));
  for (LayerWeights& l : m.layers) {
    l.attn_norm.assign(static_cast<size_t>(hidden), 1.0f);
    l.mlp_norm.assign(static_cast<size_t>(hidden), 1.0f);
  }
  int k = 0;
  for (const LinearSlot& s : m.LinearSlots()) {
    if (s.layer < 0) continue;  // the head below
    // Shapes from the config: [out, in] per slot name.
    const std::string& n = s.name;
    auto ends = [&](const char* suffix) { return n.size() >= std::strlen(suffix) && n.ends_with(suffix); };
    int64_t rows = hidden, cols = hidden;
    if (ends("q_proj")) rows = c.q_dim();
    if (ends("k_proj") || ends("v_proj")) rows = c.kv_dim();
    if (ends("o_proj")) cols = c.q_dim();
    if (ends("gate_proj") || ends("up_proj")) rows = intermediate;
    if (ends("down_proj")) cols = intermediate;
    *s.op = RandomQuantized(rows, cols, bits[static_cast<size_t>(k++) % bits.size()], group, symmetric, seed++);
  }
  if (head_bits > 0) {
    m.lm_head = RandomQuantized(vocab, hidden, head_bits, group, symmetric, seed++);
  } else {
    m.lm_head = std::make_unique<DenseLinear>(vocab, hidden, RandomHalfValues(vocab * hidden, 0.05f, seed++));
  }
  quant::ArtifactWriteOptions wo;
  wo.certificate = {{"note", "random codes (make_random_artifact): not a quantized model"}};
  if (!tokenizer_from.empty()) {
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
      const std::string p = tokenizer_from + "/" + f;
      if (std::filesystem::exists(p)) wo.extra_files.push_back(p);
    }
  }
  if (absl::Status s = quant::WriteArtifact(m, out, wo); !s.ok()) {
    std::fprintf(stderr, "write: %s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("wrote %s: %lld layers, bits %s g%lld%s, vocab %lld, %.2f GB of weights\n", out.c_str(),
              static_cast<long long>(layers), bits_list.c_str(), static_cast<long long>(group),
              symmetric ? " symmetric" : "", static_cast<long long>(vocab),
              static_cast<double>(std::filesystem::file_size(out + "/" + quant::kWeightsName)) / 1e9);
  return 0;
}

}  // namespace
}  // namespace slq

int main(int argc, char** argv) { return slq::Run(argc, argv); }
