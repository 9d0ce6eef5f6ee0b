#include "server/model/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/common/test_paths.h"

namespace slq {
namespace {

using ::testing::HasSubstr;

constexpr char kLlama[] = R"({
  "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "vocab_size": 100, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
  "rope_theta": 500000.0, "tie_word_embeddings": true, "bos_token_id": 1,
  "eos_token_id": [2, 3], "hidden_act": "silu",
  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}})";

TEST(ConfigTest, ParsesLlama3) {
  auto c = ParseHfConfig(kLlama, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_EQ(c->kv_dim(), 32);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(c->rope_scaling.factor, 8.0);
  EXPECT_EQ(c->rope_theta, 500000.0);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int32_t>{2, 3}));
  EXPECT_FALSE(c->qkv_bias);
  EXPECT_EQ(c->rope_style, RopeStyle::kRotateHalf);
}

TEST(ConfigTest, ArchitectureTraits) {
  std::string qwen2 = kLlama;
  qwen2.replace(qwen2.find("LlamaForCausalLM"), 16, "Qwen2ForCausalLM");
  auto c = ParseHfConfig(qwen2, "q2");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->qkv_bias);
  EXPECT_FALSE(c->qk_norm);
  std::string qwen3 = kLlama;
  qwen3.replace(qwen3.find("LlamaForCausalLM"), 16, "Qwen3ForCausalLM");
  qwen3.replace(qwen3.find("\"hidden_size\""), 0, "\"head_dim\": 32, ");
  c = ParseHfConfig(qwen3, "q3");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->qk_norm);
  EXPECT_EQ(c->head_dim, 32);
  EXPECT_EQ(c->q_dim(), 128);
}

TEST(ConfigTest, UnsupportedArchitectureIsNamed) {
  std::string gpt = kLlama;
  gpt.replace(gpt.find("LlamaForCausalLM"), 16, "GPT2LMHeadModel");
  auto c = ParseHfConfig(gpt, "config.json");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("'GPT2LMHeadModel'"));
  EXPECT_THAT(c.status().message(), HasSubstr("LlamaForCausalLM"));
  EXPECT_THAT(c.status().message(), HasSubstr("Qwen3ForCausalLM"));
}

TEST(ConfigTest, Errors) {
  EXPECT_FALSE(ParseHfConfig("{not json", "x").ok());
  EXPECT_FALSE(ParseHfConfig(R"({"architectures": []})", "x").ok());
  auto missing = ParseHfConfig(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 8})", "x");
  EXPECT_THAT(missing.status().message(), HasSubstr("intermediate_size"));
  std::string bad_type = kLlama;
  bad_type.replace(bad_type.find("\"hidden_size\": 64"), 17, "\"hidden_size\": \"64\"");
  EXPECT_THAT(ParseHfConfig(bad_type, "x").status().message(), HasSubstr("hidden_size"));
  std::string gqa = kLlama;
  gqa.replace(gqa.find("\"num_key_value_heads\": 2"), 24, "\"num_key_value_heads\": 3");
  EXPECT_THAT(ParseHfConfig(gqa, "x").status().message(), HasSubstr("multiple"));
  std::string yarn = kLlama;
  yarn.replace(yarn.find("llama3"), 6, "yarn");
  EXPECT_THAT(ParseHfConfig(yarn, "x").status().message(), HasSubstr("'yarn'"));
  std::string act_type = kLlama;
  act_type.replace(act_type.find("\"silu\""), 6, "5");
  EXPECT_EQ(ParseHfConfig(act_type, "x").status().code(), absl::StatusCode::kInvalidArgument);
  std::string rope_type = kLlama;
  rope_type.replace(rope_type.find("\"llama3\""), 8, "[1]");
  EXPECT_EQ(ParseHfConfig(rope_type, "x").status().code(), absl::StatusCode::kInvalidArgument);
  std::string act = kLlama;
  act.replace(act.find("\"silu\""), 6, "\"gelu\"");
  EXPECT_THAT(ParseHfConfig(act, "x").status().message(), HasSubstr("gelu"));
}

TEST(ConfigTest, RealConfigs) {
  auto tiny = LoadHfConfig(slq::testing::ModelsDir() + "/tinystories-656k");
  ASSERT_TRUE(tiny.ok()) << tiny.status();
  EXPECT_EQ(tiny->hidden_size, 128);
  EXPECT_EQ(tiny->num_kv_heads, 4);
  EXPECT_TRUE(tiny->tie_word_embeddings);
  EXPECT_EQ(tiny->rms_norm_eps, 1e-6);
  auto docs = LoadHfConfig(slq::testing::ModelsDir() + "/docs-19m");
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_EQ(docs->head_dim, 64);
  EXPECT_EQ(docs->num_layers, 8);
  EXPECT_FALSE(docs->tie_word_embeddings);
  EXPECT_EQ(docs->rope_theta, 10000.0);
  EXPECT_EQ(docs->bos_token_id, 1);
  EXPECT_EQ(docs->eos_token_ids, std::vector<int32_t>{2});
}

}  // namespace
}  // namespace slq
