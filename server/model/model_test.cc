#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "server/common/file_util.h"
#include "server/model/model_loader.h"
#include "server/model/safetensors_writer.h"
#include "server/model/test_model_util.h"

namespace slq {
namespace {

using ::testing::HasSubstr;
using testing::MakeTempDir;
using testing::MakeTinyWeights;
using testing::TinyModelSpec;

const std::vector<float>& Weight(const std::unique_ptr<LinearOp>& op) {
  return dynamic_cast<const DenseLinear&>(*op).weight();
}

TEST(ModelLoaderTest, LoadsTinyHfModel) {
  TinyModelSpec spec;
  auto w = MakeTinyWeights(spec);
  const std::string dir = MakeTempDir("hf");
  ASSERT_TRUE(WriteTinyHfModel(dir, spec, w).ok());
  auto m = LoadModel(dir);
  ASSERT_TRUE(m.ok()) << m.status();
  const Model& model = **m;
  EXPECT_EQ(model.format, "hf-safetensors");
  EXPECT_EQ(model.layers.size(), 2u);
  EXPECT_EQ(Weight(model.layers[1].k_proj), w["model.layers.1.self_attn.k_proj.weight"].data);
  EXPECT_EQ(Weight(model.lm_head), w["lm_head.weight"].data);
  int64_t params = 0;
  for (const auto& [n, t] : w) params += static_cast<int64_t>(t.data.size());
  EXPECT_EQ(model.ParamCount(), params);
  EXPECT_EQ(model.MemoryBytes(), static_cast<size_t>(params) * 4);
  EXPECT_EQ(model.files.size(), 2u);  // config.json + model.safetensors
  EXPECT_EQ(model.identity_sha256.size(), 64u);
}

TEST(ModelLoaderTest, LinearSlotsNameEveryOpAndCanSwap) {
  TinyModelSpec spec;
  const std::string dir = MakeTempDir("slots");
  ASSERT_TRUE(WriteTinyHfModel(dir, spec, MakeTinyWeights(spec)).ok());
  auto m = LoadModel(dir, {.compute_sha256 = false});
  ASSERT_TRUE(m.ok());
  auto slots = (*m)->LinearSlots();
  ASSERT_EQ(slots.size(), 2u * 7 + 1);
  EXPECT_EQ(slots[0].name, "model.layers.0.self_attn.q_proj");
  EXPECT_EQ(slots[13].name, "model.layers.1.mlp.down_proj");
  EXPECT_EQ(slots[13].layer, 1);
  EXPECT_EQ(slots.back().name, "lm_head");
  EXPECT_EQ(slots.back().layer, -1);
  *slots[4].op = std::make_unique<DenseLinear>(48, 32, std::vector<float>(48 * 32, 0.0f));
  EXPECT_EQ(Weight((*m)->layers[0].gate_proj)[0], 0.0f);
  const Model& cm = **m;
  auto views = cm.LinearSlots();
  ASSERT_EQ(views.size(), slots.size());
  EXPECT_EQ(views[4].name, "model.layers.0.mlp.gate_proj");
  EXPECT_EQ(views[4].op, (*m)->layers[0].gate_proj.get());
  EXPECT_EQ(views.back().op, (*m)->lm_head.get());
}

TEST(ModelLoaderTest, TiedBf16StoresOnlyEmbeddings) {
  TinyModelSpec spec{.tied = true};
  auto w = MakeTinyWeights(spec);
  const std::string dir = MakeTempDir("tied");
  ASSERT_TRUE(WriteTinyHfModel(dir, spec, w, /*bf16=*/true).ok());
  auto m = LoadModel(dir);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(Weight((*m)->lm_head), (*m)->embed);
  EXPECT_NEAR((*m)->embed[5], w["model.embed_tokens.weight"].data[5],
              std::abs(w["model.embed_tokens.weight"].data[5]) / 128);
  // The tied head is counted once.
  EXPECT_EQ((*m)->ParamCount() + spec.vocab * spec.hidden, static_cast<int64_t>((*m)->MemoryBytes() / 4));
}

TEST(ModelLoaderTest, LoadsLlama2cCheckpoint) {
  TinyModelSpec spec;
  auto w = MakeTinyWeights(spec);
  const std::string path = MakeTempDir("l2c") + "/m.bin";
  ASSERT_TRUE(WriteTinyLlama2c(path, spec, w).ok());
  auto m = LoadModel(path);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->format, "llama2c");
  EXPECT_EQ((*m)->config.rope_style, RopeStyle::kInterleaved);
  EXPECT_FALSE((*m)->config.tie_word_embeddings);
  EXPECT_EQ(Weight((*m)->layers[1].down_proj), w["model.layers.1.mlp.down_proj.weight"].data);
  EXPECT_EQ(Weight((*m)->lm_head), w["lm_head.weight"].data);
  // Truncated file.
  auto data = ReadFile(path);
  ASSERT_TRUE(WriteFileAtomic(path, data->substr(0, data->size() - 100)).ok());
  auto bad = LoadModel(path);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("truncated"));
  // A corrupt header asking for 2^30 layers is an error, not an allocation.
  std::string huge = *data;
  const int32_t layers = 1 << 30;
  std::memcpy(huge.data() + 8, &layers, 4);
  ASSERT_TRUE(WriteFileAtomic(path, huge).ok());
  EXPECT_EQ(LoadModel(path).status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(WriteFileAtomic(path, *data + "xxxx").ok());  // trailing bytes
  EXPECT_THAT(LoadModel(path).status().message(), HasSubstr("implies"));
}

TEST(ModelLoaderTest, Errors) {
  TinyModelSpec spec;
  auto w = MakeTinyWeights(spec);
  const std::string dir = MakeTempDir("err");
  w.erase("model.layers.1.mlp.up_proj.weight");
  ASSERT_TRUE(WriteTinyHfModel(dir, spec, w).ok());
  auto missing = LoadModel(dir);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("model.layers.1.mlp.up_proj.weight"));
  w = MakeTinyWeights(spec);
  w["model.norm.weight"].shape = {16, 2};
  ASSERT_TRUE(WriteTinyHfModel(dir, spec, w).ok());
  EXPECT_THAT(LoadModel(dir).status().message(), HasSubstr("expected [32]"));
  EXPECT_THAT(LoadModel(dir + "/nothing").status().message(), HasSubstr("known format"));
  // Tied, but neither embed_tokens nor lm_head stored.
  TinyModelSpec tied{.tied = true};
  w = MakeTinyWeights(tied);
  w.erase("model.embed_tokens.weight");
  ASSERT_TRUE(WriteTinyHfModel(dir, tied, w).ok());
  EXPECT_THAT(LoadModel(dir).status().message(), HasSubstr("model.embed_tokens.weight"));
}

}  // namespace
}  // namespace slq
