// Test helpers: tiny random Llama-family models written as a Hugging Face folder and as a
// llama2.c checkpoint, plus a scratch-directory helper. Test-only (slq_model_testutil).
#ifndef SLQ_SERVER_MODEL_TEST_MODEL_UTIL_H_
#define SLQ_SERVER_MODEL_TEST_MODEL_UTIL_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace slq::testing {

struct TinyModelSpec {
  std::string architecture = "LlamaForCausalLM";
  int64_t vocab = 64, hidden = 32, intermediate = 48, layers = 2, heads = 4, kv_heads = 2;
  int64_t max_pos = 64;
  bool tied = false;
  bool qkv_bias = false;  // emit q/k/v biases (Qwen2)
  bool qk_norm = false;   // emit q_norm / k_norm (Qwen3)
  double rope_theta = 10000.0;
  uint64_t seed = 1;
  int64_t sliding_window = 0;  // written to config.json when > 0 (Mistral)
};

struct TestTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// HF-named random fp32 tensors for the spec (rotate_half RoPE convention).
std::map<std::string, TestTensor> MakeTinyWeights(const TinyModelSpec& spec);

// dir/config.json + dir/model.safetensors (F32, or BF16 if bf16). For tied specs only
// model.embed_tokens.weight is written.
absl::Status WriteTinyHfModel(const std::string& dir, const TinyModelSpec& spec,
                              const std::map<std::string, TestTensor>& w, bool bf16 = false);

// A llama2.c checkpoint computing the same function: q/k rows are permuted from HF's
// rotate_half order to llama2.c's interleaved order. Llama architecture only (no bias/norm).
absl::Status WriteTinyLlama2c(const std::string& path, const TinyModelSpec& spec,
                              const std::map<std::string, TestTensor>& w);

// A fresh empty directory under TEST_TMPDIR or /tmp, unique per call.
std::string MakeTempDir(const std::string& tag);

}  // namespace slq::testing

#endif  // SLQ_SERVER_MODEL_TEST_MODEL_UTIL_H_
