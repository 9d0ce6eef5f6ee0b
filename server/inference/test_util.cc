#include "server/inference/test_util.h"

#include <fstream>

#include "nlohmann/json.hpp"
#include "server/common/test_paths.h"
#include "server/model/model_loader.h"
#include "server/model/test_model_util.h"
#include "server/quant/quantized_linear.h"

namespace slq::inference::testing {

std::shared_ptr<const Model> ByteModel(int64_t max_pos, uint64_t seed, bool eos) {
  slq::testing::TinyModelSpec spec;
  spec.vocab = 260;
  spec.hidden = 32;
  spec.intermediate = 48;
  spec.max_pos = max_pos;
  spec.seed = seed;
  const std::string dir = slq::testing::MakeTempDir("byte_model");
  if (!slq::testing::WriteTinyHfModel(dir, spec, slq::testing::MakeTinyWeights(spec)).ok()) return nullptr;
  nlohmann::json gen = {{"bos_token_id", kByteBos}};  // overrides config.json's ids 1 and 2
  gen["eos_token_id"] = eos ? nlohmann::json(kByteEos) : nlohmann::json::array();
  std::ofstream(dir + "/generation_config.json") << gen.dump();
  auto m = LoadModel(dir, {.compute_sha256 = false});
  if (!m.ok()) return nullptr;
  return std::shared_ptr<const Model>(std::move(*m));
}

std::shared_ptr<const TextCodec> ByteCodec(bool eos) {
  return std::make_shared<ByteTextCodec>(260, kByteBos, eos ? kByteEos : -1);
}

Collected Collect(RequestStream& s) {
  Collected c;
  GenerationEvent e;
  while (s.Next(&e, absl::Seconds(60))) {
    ++c.events;
    c.ids.insert(c.ids.end(), e.token_ids.begin(), e.token_ids.end());
    c.text += e.text;
    c.logprobs.insert(c.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
    if (e.final) {
      c.final = e;
      break;
    }
  }
  return c;
}

bool QuantizeLinears(Model* model, int bits) {
  for (LinearSlot& slot : model->LinearSlots()) {
    if (slot.layer < 0) continue;
    const auto* dense = dynamic_cast<const DenseLinear*>(slot.op->get());
    if (!dense) return false;
    quant::QuantConfig cfg;
    cfg.bits = bits;
    cfg.group_size = 32;
    auto q = quant::QuantizeMatrix(dense->weight().data(), dense->out_features(), dense->in_features(), cfg);
    if (!q.ok()) return false;
    *slot.op = std::make_unique<quant::QuantizedLinear>(std::move(*q));
  }
  return true;
}

std::string SharedModel(const std::string& rel) { return slq::testing::ModelsDir() + "/" + rel; }

}  // namespace slq::inference::testing
