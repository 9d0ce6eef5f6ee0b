// Model: the weights of a decoder-only transformer (Llama family), independent of the file
// format it came from. Loaders (model_loader.h) build it; forward.h runs it; the quantization
// engine swaps its LinearOps through LinearSlots().
//
// Ownership: the Model owns every tensor. LinearSlot::op points into the Model and stays valid
// as long as the Model lives (slots are stable: layers are never resized after loading).
// Thread safety: a loaded Model is read-only during forward passes and may be shared by
// several threads; swapping ops through LinearSlots() must not race with a forward pass.
#ifndef SLQ_SERVER_MODEL_MODEL_H_
#define SLQ_SERVER_MODEL_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "server/model/config.h"
#include "server/model/linear.h"

namespace slq {

struct LayerWeights {
  std::vector<float> attn_norm;               // [hidden] input_layernorm
  std::vector<float> mlp_norm;                // [hidden] post_attention_layernorm
  std::unique_ptr<LinearOp> q_proj;           // [q_dim, hidden]
  std::unique_ptr<LinearOp> k_proj;           // [kv_dim, hidden]
  std::unique_ptr<LinearOp> v_proj;           // [kv_dim, hidden]
  std::unique_ptr<LinearOp> o_proj;           // [hidden, q_dim]
  std::unique_ptr<LinearOp> gate_proj;        // [intermediate, hidden]
  std::unique_ptr<LinearOp> up_proj;          // [intermediate, hidden]
  std::unique_ptr<LinearOp> down_proj;        // [hidden, intermediate]
  std::vector<float> q_bias, k_bias, v_bias;  // [q_dim], [kv_dim], [kv_dim]; empty unless qkv_bias
  std::vector<float> q_norm, k_norm;          // [head_dim] each; empty unless qk_norm
};

// One quantizable linear: HF name ("model.layers.3.mlp.up_proj", "lm_head"), its layer index
// (-1 for the LM head) and the slot to read or replace.
struct LinearSlot {
  std::string name;
  int layer = -1;
  std::unique_ptr<LinearOp>* op = nullptr;
};

// Read-only view of a linear slot (for code that only inspects ops: bits accounting,
// serialisation). Same names and order as LinearSlot.
struct ConstLinearSlot {
  std::string name;
  int layer = -1;
  const LinearOp* op = nullptr;
};

// One source file and its digest (model identity).
struct FileDigest {
  std::string name;    // file name relative to the model folder
  std::string sha256;  // lowercase hex
  uint64_t bytes = 0;
};

struct Model {
  ModelConfig config;
  std::vector<float> embed;  // [vocab, hidden] token embeddings
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;      // [hidden]
  std::unique_ptr<LinearOp> lm_head;  // [vocab, hidden]; a copy of `embed` when tied

  std::string format;             // loader name: "hf-safetensors", "llama2c"
  std::string source_path;        // what was loaded
  std::vector<FileDigest> files;  // empty if digests were not computed
  // sha256 over the sorted "name sha256\n" lines of `files`: the model's identity.
  std::string identity_sha256;

  // q, k, v, o, gate, up, down of every layer in order, then "lm_head".
  std::vector<LinearSlot> LinearSlots();
  std::vector<ConstLinearSlot> LinearSlots() const;
  // Parameter count as in the checkpoint (a tied head counted once).
  int64_t ParamCount() const;
  // Bytes held: embeddings, norms, biases and every op's MemoryBytes().
  size_t MemoryBytes() const;
};

}  // namespace slq

#endif  // SLQ_SERVER_MODEL_MODEL_H_
