#include "server/model/model.h"

#include "absl/strings/str_cat.h"

namespace slq {

std::vector<LinearSlot> Model::LinearSlots() {
  std::vector<LinearSlot> slots;
  slots.reserve(layers.size() * 7 + 1);
  for (size_t i = 0; i < layers.size(); ++i) {
    LayerWeights& l = layers[i];
    const std::string p = absl::StrCat("model.layers.", i, ".");
    const int li = static_cast<int>(i);
    slots.push_back({p + "self_attn.q_proj", li, &l.q_proj});
    slots.push_back({p + "self_attn.k_proj", li, &l.k_proj});
    slots.push_back({p + "self_attn.v_proj", li, &l.v_proj});
    slots.push_back({p + "self_attn.o_proj", li, &l.o_proj});
    slots.push_back({p + "mlp.gate_proj", li, &l.gate_proj});
    slots.push_back({p + "mlp.up_proj", li, &l.up_proj});
    slots.push_back({p + "mlp.down_proj", li, &l.down_proj});
  }
  slots.push_back({"lm_head", -1, &lm_head});
  return slots;
}

std::vector<ConstLinearSlot> Model::LinearSlots() const {
  std::vector<ConstLinearSlot> out;
  // The non-const overload only takes addresses; nothing is modified.
  for (const LinearSlot& s : const_cast<Model*>(this)->LinearSlots()) {
    out.push_back({s.name, s.layer, s.op->get()});
  }
  return out;
}

namespace {
int64_t OpParams(const std::unique_ptr<LinearOp>& op) { return op ? op->in_features() * op->out_features() : 0; }
size_t VecBytes(const std::vector<float>& v) { return v.size() * sizeof(float); }
}  // namespace

int64_t Model::ParamCount() const {
  int64_t n = static_cast<int64_t>(embed.size() + final_norm.size());
  for (const LayerWeights& l : layers) {
    n += static_cast<int64_t>(l.attn_norm.size() + l.mlp_norm.size() + l.q_bias.size() + l.k_bias.size() +
                              l.v_bias.size() + l.q_norm.size() + l.k_norm.size());
    n += OpParams(l.q_proj) + OpParams(l.k_proj) + OpParams(l.v_proj) + OpParams(l.o_proj) + OpParams(l.gate_proj) +
         OpParams(l.up_proj) + OpParams(l.down_proj);
  }
  if (!config.tie_word_embeddings) n += OpParams(lm_head);
  return n;
}

size_t Model::MemoryBytes() const {
  size_t n = VecBytes(embed) + VecBytes(final_norm);
  auto op_bytes = [](const std::unique_ptr<LinearOp>& op) { return op ? op->MemoryBytes() : 0; };
  for (const LayerWeights& l : layers) {
    n += VecBytes(l.attn_norm) + VecBytes(l.mlp_norm) + VecBytes(l.q_bias) + VecBytes(l.k_bias) + VecBytes(l.v_bias) +
         VecBytes(l.q_norm) + VecBytes(l.k_norm);
    n += op_bytes(l.q_proj) + op_bytes(l.k_proj) + op_bytes(l.v_proj) + op_bytes(l.o_proj) + op_bytes(l.gate_proj) +
         op_bytes(l.up_proj) + op_bytes(l.down_proj);
  }
  return n + op_bytes(lm_head);
}

}  // namespace slq
