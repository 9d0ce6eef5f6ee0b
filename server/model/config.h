// ModelConfig: the architecture hyper-parameters the forward pass needs, parsed from a Hugging
// Face config.json (+ generation_config.json) or filled in by another loader (llama2.c).
//
//   SLQ_ASSIGN_OR_RETURN(ModelConfig cfg, LoadHfConfig("/models/docs-19m"));
//
// Supported architectures (each a row of a small table in config.cc): LlamaForCausalLM,
// MistralForCausalLM, Qwen2ForCausalLM (q/k/v bias), Qwen3ForCausalLM (per-head q/k RMSNorm).
// Anything else is InvalidArgument naming the architecture and the supported list.
#ifndef SLQ_SERVER_MODEL_CONFIG_H_
#define SLQ_SERVER_MODEL_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace slq {

// How RoPE pairs dimensions inside a head of size d.
enum class RopeStyle {
  kRotateHalf,   // HF: pairs (i, i + d/2)
  kInterleaved,  // llama2.c / GPT-J: pairs (2i, 2i + 1)
};

struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3 };
  Type type = Type::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;                     // llama3
  double high_freq_factor = 4.0;                    // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

struct ModelConfig {
  std::string architecture;  // e.g. "LlamaForCausalLM"; "llama2.c" for .bin checkpoints
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_heads unless config.json says otherwise
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeStyle rope_style = RopeStyle::kRotateHalf;
  RopeScaling rope_scaling;
  int64_t sliding_window = 0;  // 0 = full attention (Mistral may set it)
  bool tie_word_embeddings = false;
  bool qkv_bias = false;               // Qwen2 (and Llama with attention_bias)
  bool qk_norm = false;                // Qwen3
  int32_t bos_token_id = -1;           // -1 = none
  std::vector<int32_t> eos_token_ids;  // may be empty

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  // InvalidArgument naming the first inconsistent field.
  [[nodiscard]] absl::Status Validate() const;
};

// Architectures accepted by ParseHfConfig, comma-separated.
std::string SupportedArchitectures();

// Parses config.json text. `source` names the file in error messages.
[[nodiscard]] absl::StatusOr<ModelConfig> ParseHfConfig(absl::string_view json_text, absl::string_view source);

// Reads dir/config.json and, if present, dir/generation_config.json (its bos/eos ids win).
[[nodiscard]] absl::StatusOr<ModelConfig> LoadHfConfig(const std::string& dir);

}  // namespace slq

#endif  // SLQ_SERVER_MODEL_CONFIG_H_
