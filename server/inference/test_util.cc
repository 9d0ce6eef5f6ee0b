#include "server/inference/test_util.h"

#include <fstream>

#include "nlohmann/json.hpp"
#include "server/common/test_paths.h"
#include "server/model/model_loader.h"
#include "server/model/test_model_util.h"

namespace slq::inference::testing {

std::shared_ptr<const Model> ByteModel(int64_t max_pos, uint64_t seed) {
  slq::testing::TinyModelSpec spec;
  spec.vocab = 260;
  spec.hidden = 32;
  spec.intermediate = 48;
  spec.max_pos = max_pos;
  spec.seed = seed;
  const std::string dir = slq::testing::MakeTempDir("byte_model");
  if (!slq::testing::WriteTinyHfModel(dir, spec, slq::testing::MakeTinyWeights(spec)).ok()) return nullptr;
  nlohmann::json gen = {{"bos_token_id", kByteBos}, {"eos_token_id", kByteEos}};
  std::ofstream(dir + "/generation_config.json") << gen.dump();
  auto m = LoadModel(dir, {.compute_sha256 = false});
  if (!m.ok()) return nullptr;
  return std::shared_ptr<const Model>(std::move(*m));
}

std::shared_ptr<const TextCodec> ByteCodec() {
  return std::make_shared<ByteTextCodec>(260, kByteBos, kByteEos);
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

std::string SharedModel(const std::string& rel) { return slq::testing::ModelsDir() + "/" + rel; }

}  // namespace slq::inference::testing
