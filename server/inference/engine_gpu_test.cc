// The engine on the GPU backend (device "cuda"): streams on real models, greedy streams agree
// with the CPU engine, seeded streams are reproducible. Label gpu: skipped when no GPU is usable.
//
// Seeded sampling draws by walking the inverse CDF in id order, so a logit difference at fp16
// rounding level moves the draw whenever it lands in the long tail: seeded GPU streams follow
// the CPU sampler's logic (same Sampler, same seed) but not its exact tokens. The test prints
// how many seeded streams still matched the CPU's; it asserts greedy agreement and that a
// seeded request replayed alone on the GPU gives the same stream.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "server/inference/engine.h"
#include "server/inference/forward_backend.h"
#include "server/inference/test_util.h"
#include "server/inference/tokenizer_codec.h"
#include "server/model/model_loader.h"

namespace slq::inference {
namespace {

using testing::Collect;
using testing::Collected;

EngineOptions Options(const std::string& device) {
  EngineOptions o;
  o.model_name = "gpu-test";
  o.kv_block_size = 16;
  o.kv_cache_bytes = 32 << 20;
  o.prefill_chunk = 16;  // prompts split over steps: prefill chunks and decodes mix
  o.device = device;
  return o;
}

GenerationRequest Request(const std::vector<int32_t>& prompt, int i) {
  GenerationRequest r;
  r.prompt_ids = prompt;
  r.max_tokens = 40;
  r.sampling.temperature = i % 2 == 0 ? 0.0f : 0.8f;
  r.sampling.seed = 77 + i;
  r.logprobs = true;
  return r;
}

class EngineGpu : public ::testing::TestWithParam<const char*> {};

TEST_P(EngineGpu, StreamsAndAgreesWithTheCpuEngine) {
  std::string why;
  if (!CudaBackendAvailable(&why)) GTEST_SKIP() << why;
  const std::string dir = testing::SharedModel(GetParam());
  auto loaded = LoadModel(dir, {.compute_sha256 = false});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  std::shared_ptr<const Model> model(std::move(*loaded));
  auto codec = LoadCodecFor(dir, model->config.vocab_size);
  ASSERT_TRUE(codec.ok()) << codec.status();
  auto cpu = Engine::Create(model, *codec, Options("cpu"));
  auto gpu = Engine::Create(model, *codec, Options("cuda"));
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  std::printf("  backend: %s\n", (*gpu)->backend_description().c_str());
  const std::vector<std::string> prompts = {
      "Once upon a time",       "The little dog", "Lily saw a big", "One day, a boy named Tom",
      "The configuration file", "She said",       "In the morning", "It was"};
  std::vector<std::shared_ptr<RequestStream>> cs, gs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::vector<int32_t> ids = (*codec)->Encode(prompts[i], true).value();
    cs.push_back(*(*cpu)->Submit(Request(ids, static_cast<int>(i))));
    gs.push_back(*(*gpu)->Submit(Request(ids, static_cast<int>(i))));
  }
  int prefix_ok = 0, full = 0, greedy_ok = 0, seeded_same = 0;
  std::vector<Collected> gpu_out;
  for (size_t i = 0; i < prompts.size(); ++i) {
    Collected c = Collect(*cs[i]);
    Collected g = Collect(*gs[i]);
    ASSERT_TRUE(g.final.status.ok()) << g.final.status;
    EXPECT_GT(g.events, 2) << "tokens are streamed one event at a time";
    EXPECT_FALSE(g.ids.empty());
    EXPECT_EQ(g.ids.size(), g.logprobs.size());
    const size_t n = std::min<size_t>({16, c.ids.size(), g.ids.size()});
    bool same = c.ids.size() >= n && g.ids.size() >= n;
    for (size_t k = 0; same && k < n; ++k) same = c.ids[k] == g.ids[k];
    prefix_ok += same;
    full += c.ids == g.ids;
    if (i % 2 == 0) greedy_ok += same;
    if (i % 2 == 1) seeded_same += c.ids == g.ids;
    gpu_out.push_back(g);
    if (same && !c.logprobs.empty() && !g.logprobs.empty()) {
      EXPECT_NEAR(c.logprobs[0], g.logprobs[0], 0.05);
    }
    std::printf("  [%zu] %s: cpu %zu tokens, gpu %zu tokens, identical %d\n", i, i % 2 == 0 ? "greedy" : "seeded",
                c.ids.size(), g.ids.size(), c.ids == g.ids ? 1 : 0);
  }
  std::printf("  first-16-token agreement %d/%zu (greedy %d/%zu), identical streams %d/%zu (seeded %d/%zu)\n",
              prefix_ok, prompts.size(), greedy_ok, prompts.size() / 2, full, prompts.size(), seeded_same,
              prompts.size() / 2);
  // fp16 activations: a near-tie can flip a greedy token in a long stream; most must agree.
  EXPECT_GE(greedy_ok, static_cast<int>(prompts.size() / 2) - 1);
  // Seeded requests replayed one at a time on the GPU: the same seed gives the same stream as
  // long as the logits are the same, which holds for the same batch shape (batch 1 both times).
  for (size_t i = 1; i < prompts.size(); i += 2) {
    const std::vector<int32_t> ids = (*codec)->Encode(prompts[i], true).value();
    Collected a = Collect(**(*gpu)->Submit(Request(ids, static_cast<int>(i))));
    Collected b = Collect(**(*gpu)->Submit(Request(ids, static_cast<int>(i))));
    EXPECT_EQ(a.ids, b.ids) << prompts[i];
    EXPECT_FALSE(a.ids.empty());
  }
  EXPECT_GE((*gpu)->stats().max_batch_seen, 4);
}

INSTANTIATE_TEST_SUITE_P(Real, EngineGpu, ::testing::Values("tinystories-656k", "docs-19m"),
                         [](const auto& info) { return std::string(info.param).substr(0, 4); });

}  // namespace
}  // namespace slq::inference
