#include "server/model/test_model_util.h"

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/half.h"
#include "server/common/status_macros.h"
#include "server/model/safetensors_writer.h"

namespace slq::testing {
namespace {

TestTensor Random(std::mt19937_64& rng, std::vector<int64_t> shape, float scale, float mean = 0) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  TestTensor t{std::move(shape), std::vector<float>(static_cast<size_t>(n))};
  for (float& v : t.data) v = mean + scale * nd(rng);
  return t;
}

// HF rotate_half row order -> llama2.c interleaved row order, per head.
std::vector<float> ToInterleaved(const TestTensor& t, int64_t heads) {
  const int64_t rows = t.shape[0], cols = t.shape[1], hd = rows / heads, half = hd / 2;
  std::vector<float> out(t.data.size());
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t s = 0; s < 2; ++s) {
        const float* src = t.data.data() + (h * hd + s * half + i) * cols;
        std::memcpy(out.data() + (h * hd + 2 * i + s) * cols, src, cols * sizeof(float));
      }
    }
  }
  return out;
}

}  // namespace

std::map<std::string, TestTensor> MakeTinyWeights(const TinyModelSpec& s) {
  std::mt19937_64 rng(s.seed);
  const int64_t hd = s.hidden / s.heads, q = s.heads * hd, kv = s.kv_heads * hd;
  std::map<std::string, TestTensor> w;
  w["model.embed_tokens.weight"] = Random(rng, {s.vocab, s.hidden}, 1.0f);
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    const float a = 1.0f / std::sqrt(static_cast<float>(s.hidden));
    w[p + "input_layernorm.weight"] = Random(rng, {s.hidden}, 0.1f, 1.0f);
    w[p + "post_attention_layernorm.weight"] = Random(rng, {s.hidden}, 0.1f, 1.0f);
    w[p + "self_attn.q_proj.weight"] = Random(rng, {q, s.hidden}, 2 * a);
    w[p + "self_attn.k_proj.weight"] = Random(rng, {kv, s.hidden}, 2 * a);
    w[p + "self_attn.v_proj.weight"] = Random(rng, {kv, s.hidden}, a);
    w[p + "self_attn.o_proj.weight"] = Random(rng, {s.hidden, q}, a);
    w[p + "mlp.gate_proj.weight"] = Random(rng, {s.intermediate, s.hidden}, a);
    w[p + "mlp.up_proj.weight"] = Random(rng, {s.intermediate, s.hidden}, a);
    w[p + "mlp.down_proj.weight"] = Random(rng, {s.hidden, s.intermediate}, 1.0f / std::sqrt(float(s.intermediate)));
    if (s.qkv_bias) {
      w[p + "self_attn.q_proj.bias"] = Random(rng, {q}, 0.2f);
      w[p + "self_attn.k_proj.bias"] = Random(rng, {kv}, 0.2f);
      w[p + "self_attn.v_proj.bias"] = Random(rng, {kv}, 0.2f);
    }
    if (s.qk_norm) {
      w[p + "self_attn.q_norm.weight"] = Random(rng, {hd}, 0.1f, 1.0f);
      w[p + "self_attn.k_norm.weight"] = Random(rng, {hd}, 0.1f, 1.0f);
    }
  }
  w["model.norm.weight"] = Random(rng, {s.hidden}, 0.1f, 1.0f);
  if (!s.tied) w["lm_head.weight"] = Random(rng, {s.vocab, s.hidden}, 0.5f);
  return w;
}

absl::Status WriteTinyHfModel(const std::string& dir, const TinyModelSpec& s,
                              const std::map<std::string, TestTensor>& w, bool bf16) {
  std::filesystem::create_directories(dir);
  nlohmann::json cfg = {{"architectures", {s.architecture}},
                        {"hidden_size", s.hidden},
                        {"intermediate_size", s.intermediate},
                        {"num_hidden_layers", s.layers},
                        {"num_attention_heads", s.heads},
                        {"num_key_value_heads", s.kv_heads},
                        {"vocab_size", s.vocab},
                        {"max_position_embeddings", s.max_pos},
                        {"rms_norm_eps", 1e-5},
                        {"rope_theta", s.rope_theta},
                        {"hidden_act", "silu"},
                        {"tie_word_embeddings", s.tied},
                        {"bos_token_id", 1},
                        {"eos_token_id", 2}};
  if (s.qkv_bias && s.architecture == "LlamaForCausalLM") cfg["attention_bias"] = true;
  if (s.sliding_window > 0) cfg["sliding_window"] = s.sliding_window;
  SLQ_RETURN_IF_ERROR(WriteFileAtomic(dir + "/config.json", cfg.dump(2)));
  SafetensorsWriter writer;
  for (const auto& [name, t] : w) {
    if (!bf16) {
      SLQ_RETURN_IF_ERROR(writer.AddF32(name, t.shape, t.data));
      continue;
    }
    std::vector<uint16_t> h(t.data.size());
    for (size_t i = 0; i < h.size(); ++i) h[i] = FloatToBf16(t.data[i]);
    SLQ_RETURN_IF_ERROR(writer.Add(name, DType::kBF16, t.shape,
                                   std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(h.data()), h.size() * 2)));
  }
  return writer.Write(dir + "/model.safetensors");
}

absl::Status WriteTinyLlama2c(const std::string& path, const TinyModelSpec& s,
                              const std::map<std::string, TestTensor>& w) {
  std::string out;
  auto put_ints = [&](std::initializer_list<int32_t> v) {
    for (int32_t x : v) out.append(reinterpret_cast<const char*>(&x), 4);
  };
  auto put = [&](const std::vector<float>& v) {
    out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  };
  const int32_t vocab = static_cast<int32_t>(s.tied ? s.vocab : -s.vocab);
  put_ints({int32_t(s.hidden), int32_t(s.intermediate), int32_t(s.layers), int32_t(s.heads), int32_t(s.kv_heads), vocab,
            int32_t(s.max_pos)});
  put(w.at("model.embed_tokens.weight").data);
  auto per_layer = [&](const std::string& suffix, int64_t heads) {
    for (int64_t l = 0; l < s.layers; ++l) {
      const TestTensor& t = w.at(absl::StrCat("model.layers.", l, ".", suffix));
      put(heads > 0 ? ToInterleaved(t, heads) : t.data);
    }
  };
  per_layer("input_layernorm.weight", 0);
  per_layer("self_attn.q_proj.weight", s.heads);
  per_layer("self_attn.k_proj.weight", s.kv_heads);
  per_layer("self_attn.v_proj.weight", 0);
  per_layer("self_attn.o_proj.weight", 0);
  per_layer("post_attention_layernorm.weight", 0);
  per_layer("mlp.gate_proj.weight", 0);
  per_layer("mlp.down_proj.weight", 0);
  per_layer("mlp.up_proj.weight", 0);
  put(w.at("model.norm.weight").data);
  put(std::vector<float>(static_cast<size_t>(s.max_pos * (s.hidden / s.heads)), 0.0f));
  if (!s.tied) put(w.at("lm_head.weight").data);
  return WriteFileAtomic(path, out);
}

std::string MakeTempDir(const std::string& tag) {
  static std::atomic<int> counter{0};
  const char* base = std::getenv("TEST_TMPDIR");
  std::filesystem::path dir =
      std::filesystem::path(base ? base : "/tmp") / absl::StrCat("slq_", tag, "_", ::getpid(), "_", counter++);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace slq::testing
