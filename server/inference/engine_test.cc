#include "server/inference/engine.h"

#include <gtest/gtest.h>

#include <thread>

#include "server/inference/test_util.h"
#include "server/inference/tokenizer_codec.h"
#include "server/model/generate.h"
#include "server/model/model_loader.h"

namespace slq::inference {
namespace {

using testing::ByteCodec;
using testing::ByteModel;
using testing::Collect;
using testing::Collected;

EngineOptions SmallOptions() {
  EngineOptions o;
  o.model_name = "test";
  o.kv_block_size = 8;
  o.kv_cache_bytes = 8 << 20;
  o.max_running = 64;
  o.token_budget = 96;
  o.prefill_chunk = 8;  // small: prompts are split over steps
  return o;
}

std::unique_ptr<Engine> MakeEngine(std::shared_ptr<const Model> m, std::shared_ptr<const TextCodec> c,
                                   const EngineOptions& o) {
  auto e = Engine::Create(std::move(m), std::move(c), o);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? std::move(*e) : nullptr;
}

GenerationRequest SampledRequest(int i) {
  GenerationRequest r;
  std::vector<int32_t> prompt = {testing::kByteBos};
  for (int k = 0; k < 3 + (i * 7) % 29; ++k) prompt.push_back(97 + (i + k) % 26);
  r.prompt_ids = prompt;
  r.max_tokens = 12 + i % 9;
  r.sampling.temperature = 0.9f;
  r.sampling.top_k = i % 3 == 0 ? 0 : 40;
  r.sampling.top_p = i % 2 == 0 ? 1.0f : 0.9f;
  r.sampling.repetition_penalty = i % 4 == 0 ? 1.2f : 1.0f;
  r.sampling.seed = 1000 + i;
  r.logprobs = i % 5 == 0;
  return r;
}

TEST(Engine, BatchOf64MatchesEachRequestRunAlone) {
  auto model = ByteModel();
  ASSERT_NE(model, nullptr);
  auto engine = MakeEngine(model, ByteCodec(), SmallOptions());
  ASSERT_NE(engine, nullptr);
  constexpr int kN = 64;
  std::vector<Collected> alone(kN);
  for (int i = 0; i < kN; ++i) {
    auto s = engine->Submit(SampledRequest(i));
    ASSERT_TRUE(s.ok()) << s.status();
    alone[i] = Collect(**s);
    ASSERT_TRUE(alone[i].final.status.ok()) << alone[i].final.status;
  }
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < kN; ++i) streams.push_back(*engine->Submit(SampledRequest(i)));
  int distinct = 0;
  for (int i = 0; i < kN; ++i) {
    Collected b = Collect(*streams[i]);
    EXPECT_EQ(b.ids, alone[i].ids) << "request " << i;
    EXPECT_EQ(b.text, alone[i].text) << "request " << i;
    EXPECT_EQ(b.final.finish, alone[i].final.finish) << "request " << i;
    ASSERT_EQ(b.logprobs.size(), alone[i].logprobs.size());
    for (size_t k = 0; k < b.logprobs.size(); ++k) EXPECT_NEAR(b.logprobs[k], alone[i].logprobs[k], 1e-4);
    if (i > 0 && alone[i].ids != alone[0].ids) ++distinct;
  }
  EXPECT_GT(distinct, kN / 2);                    // distinct seeds really give distinct streams
  EXPECT_GE(engine->stats().max_batch_seen, 32);  // they really ran batched
}

TEST(Engine, GreedyMatchesThePlainGenerateLoopOnARealModel) {
  const std::string path = testing::SharedModel("stories260k/stories260K.bin");
  auto loaded = LoadModel(path, {.compute_sha256 = false});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  std::shared_ptr<const Model> model(std::move(*loaded));
  auto codec = LoadCodecFor(path, model->config.vocab_size);
  ASSERT_TRUE(codec.ok()) << codec.status();
  auto engine = MakeEngine(model, *codec, SmallOptions());
  const std::vector<std::string> prompts = {"Once upon a time", "The little dog", "Lily saw a big",
                                            "One day, a boy named Tom"};
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<std::vector<int32_t>> ids;
  for (const auto& p : prompts) {
    ids.push_back((*codec)->Encode(p, true).value());
    GenerationRequest r;
    r.prompt_ids = ids.back();
    r.max_tokens = 60;
    r.sampling.temperature = 0;
    streams.push_back(*engine->Submit(r));
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    Collected c = Collect(*streams[i]);
    GenerateOptions go;
    go.max_new_tokens = 60;
    go.sampling.temperature = 0;
    auto ref = Generate(*model, ids[i], go);
    ASSERT_TRUE(ref.ok()) << ref.status();
    std::vector<int32_t> want = ref->tokens;
    if (ref->finish_reason == "stop") {
      want.pop_back();  // the engine does not emit the stop token
      EXPECT_EQ(c.final.finish, FinishReason::kStop);
    } else {
      EXPECT_EQ(c.final.finish, FinishReason::kLength);
    }
    EXPECT_EQ(c.ids, want) << prompts[i];
    const auto* tc = dynamic_cast<const TokenizerCodec*>(codec->get());
    ASSERT_NE(tc, nullptr);
    EXPECT_EQ(c.text, tc->tokenizer().Decode(c.ids));  // deltas add up to the full decode
    EXPECT_FALSE(c.text.empty());
    EXPECT_EQ(c.final.usage.prompt_tokens, static_cast<int64_t>(ids[i].size()));
    EXPECT_EQ(c.final.usage.generated_tokens, static_cast<int64_t>(c.ids.size()));
    EXPECT_GT(c.final.usage.ttft_seconds, 0);
    EXPECT_GE(c.final.usage.total_seconds, c.final.usage.ttft_seconds);
  }
}

TEST(Engine, StopStringIsCutFromTheOutput) {
  const std::string dir = testing::SharedModel("tinystories-656k");
  auto loaded = LoadModel(dir, {.compute_sha256 = false});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  std::shared_ptr<const Model> model(std::move(*loaded));
  auto codec = LoadCodecFor(dir, model->config.vocab_size);
  ASSERT_TRUE(codec.ok()) << codec.status();
  auto engine = MakeEngine(model, *codec, SmallOptions());
  GenerationRequest r;
  r.prompt_text = "Once upon a time";
  r.add_bos = true;
  r.max_tokens = 48;
  r.sampling.temperature = 0;
  Collected full = Collect(**engine->Submit(r));
  ASSERT_GT(full.text.size(), 20u) << full.text;
  // A stop string taken from the middle of the greedy text: the output must end right before it.
  const size_t at = full.text.find(' ', full.text.size() / 2);
  ASSERT_NE(at, std::string::npos);
  const std::string stop = full.text.substr(at, 4);
  r.stop = {stop, "zzzz-never"};
  Collected cut = Collect(**engine->Submit(r));
  EXPECT_EQ(cut.final.finish, FinishReason::kStop);
  EXPECT_EQ(cut.text, full.text.substr(0, full.text.find(stop))) << "stop '" << stop << "'";
  EXPECT_LT(cut.ids.size(), full.ids.size());
}

TEST(Engine, EveryDeltaIsValidUtf8) {
  auto engine = MakeEngine(ByteModel(), ByteCodec(), SmallOptions());
  std::string all;
  for (int i = 0; i < 8; ++i) {
    GenerationRequest r = SampledRequest(i);
    r.sampling.temperature = 1.5f;  // random bytes: many broken sequences
    r.max_tokens = 40;
    auto s = *engine->Submit(r);
    GenerationEvent e;
    while (s->Next(&e, absl::Seconds(30))) {
      EXPECT_EQ(LossyUtf8(e.text), e.text);
      all += e.text;
      if (e.final) break;
    }
  }
  EXPECT_FALSE(all.empty());
}

TEST(Engine, CancelMidStreamFreesKvBlocks) {
  auto engine = MakeEngine(ByteModel(1024, 3, /*eos=*/false), ByteCodec(/*eos=*/false), SmallOptions());
  ASSERT_EQ(engine->stats().kv_blocks_used, 0);
  GenerationRequest r = SampledRequest(3);
  r.max_tokens = 1000;
  auto s = *engine->Submit(r);
  GenerationEvent e;
  int tokens = 0;
  while (tokens < 5 && s->Next(&e, absl::Seconds(30))) tokens += static_cast<int>(e.token_ids.size());
  ASSERT_FALSE(e.final);
  EXPECT_GT(engine->stats().kv_blocks_used, 0);
  s->Cancel();
  Collected rest = Collect(*s);
  EXPECT_EQ(rest.final.finish, FinishReason::kCancelled);
  EXPECT_EQ(rest.final.status.code(), absl::StatusCode::kCancelled);
  EXPECT_LT(rest.final.usage.generated_tokens, 1000);
  for (int i = 0; i < 200 && engine->stats().kv_blocks_used != 0; ++i) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(engine->stats().kv_blocks_used, 0);
}

TEST(Engine, DeadlineDropsTheRequest) {
  auto engine = MakeEngine(ByteModel(1024, 3, /*eos=*/false), ByteCodec(/*eos=*/false), SmallOptions());
  GenerationRequest r = SampledRequest(1);
  r.max_tokens = 1000;
  r.deadline = absl::Now() + absl::Milliseconds(20);
  Collected c = Collect(**engine->Submit(r));
  EXPECT_EQ(c.final.finish, FinishReason::kCancelled);
  EXPECT_EQ(c.final.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(c.final.usage.generated_tokens, 1000);
}

TEST(Engine, QueueLimitGivesResourceExhausted) {
  EngineOptions o = SmallOptions();
  o.max_running = 1;
  o.token_budget = 8;
  o.max_queue = 2;
  auto engine = MakeEngine(ByteModel(1024, 3, /*eos=*/false), ByteCodec(/*eos=*/false), o);
  GenerationRequest r = SampledRequest(2);
  r.max_tokens = 1000;
  auto running = *engine->Submit(r);
  for (int i = 0; i < 400 && engine->stats().running != 1; ++i) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_EQ(engine->stats().running, 1);
  auto w1 = engine->Submit(r);
  auto w2 = engine->Submit(r);
  ASSERT_TRUE(w1.ok() && w2.ok());
  auto rejected = engine->Submit(r);
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(rejected.status().message().find("queue limit 2"), std::string::npos) << rejected.status();
  for (auto& s : {running, *w1, *w2}) s->Cancel();
  for (auto& s : {running, *w1, *w2}) EXPECT_EQ(Collect(*s).final.finish, FinishReason::kCancelled);
}

TEST(Engine, PreemptionUnderKvPressureKeepsOutputs) {
  EngineOptions o = SmallOptions();
  o.kv_block_size = 4;
  auto model = ByteModel();
  // Room for ~3 sequences of 60 positions: 16 requests must share it (and get preempted).
  o.kv_cache_bytes = 48 * KvBlockPool::BytesPerToken(model->config) * 4;
  o.admit_headroom = 0;
  auto engine = MakeEngine(model, ByteCodec(), o);
  std::vector<Collected> alone;
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 16; ++i) {
    GenerationRequest r = SampledRequest(i);
    r.max_tokens = 30;
    reqs.push_back(r);
    alone.push_back(Collect(**engine->Submit(r)));
  }
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (auto& r : reqs) streams.push_back(*engine->Submit(r));
  for (int i = 0; i < 16; ++i) EXPECT_EQ(Collect(*streams[i]).ids, alone[i].ids) << i;
  EXPECT_GT(engine->stats().preemptions, 0);
  // Stats are published after each step: wait for the last one.
  for (int i = 0; i < 200 && engine->stats().kv_blocks_used != 0; ++i) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_EQ(engine->stats().kv_blocks_used, 0);
}

TEST(Engine, ValidationNamesTheField) {
  auto engine = MakeEngine(ByteModel(64), ByteCodec(), SmallOptions());
  auto code_and_msg = [&](GenerationRequest r, const std::string& needle) {
    auto s = engine->Submit(std::move(r));
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << needle;
    EXPECT_NE(s.status().message().find(needle), std::string::npos) << s.status();
  };
  GenerationRequest ok;
  ok.prompt_ids = {1, 2, 3};
  ok.max_tokens = 4;
  GenerationRequest r = ok;
  r.prompt_ids.clear();
  code_and_msg(r, "prompt is empty");
  r = ok;
  r.max_tokens = 0;
  code_and_msg(r, "max_tokens");
  r.max_tokens = 65;
  code_and_msg(r, "max_tokens is 65; allowed 1..64");
  r = ok;
  r.prompt_ids.assign(65, 7);
  code_and_msg(r, "context length of 64");
  r = ok;
  r.prompt_ids = {1, 999};
  code_and_msg(r, "prompt_ids[1] = 999");
  r = ok;
  r.sampling.temperature = -1;
  code_and_msg(r, "temperature");
  r = ok;
  r.stop = {""};
  code_and_msg(r, "stop[0]");
  r = ok;
  r.deadline = absl::Now() - absl::Seconds(1);
  EXPECT_EQ(engine->Submit(r).status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(engine->Submit(ok).ok());
}

TEST(Engine, DeviceOptionIsChecked) {
  auto model = ByteModel();
  ASSERT_NE(model, nullptr);
  EngineOptions o = SmallOptions();
  o.device = "tpu";
  auto e = Engine::Create(model, ByteCodec(), o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(e.status().message().find("cpu or cuda"), std::string::npos) << e.status();
  o.device = "cuda";
  std::string why;
  if (CudaBackendAvailable(&why)) GTEST_SKIP() << "a GPU is usable here: covered by engine_gpu_test";
  e = Engine::Create(model, ByteCodec(), o);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kFailedPrecondition);
  // "built without CUDA ..." in CPU-only builds, "no GPU: ..." in CUDA builds on a GPU-less host.
  const std::string msg(e.status().message());
  EXPECT_TRUE(msg.find("built without CUDA") != std::string::npos || msg.find("no GPU") != std::string::npos) << msg;
}

TEST(Engine, ShutdownCancelsOrDrains) {
  auto model = ByteModel(1024, 3, /*eos=*/false);
  {
    auto engine = MakeEngine(model, ByteCodec(false), SmallOptions());
    GenerationRequest r = SampledRequest(5);
    r.max_tokens = 1000;
    auto s = *engine->Submit(r);
    engine->Shutdown(/*drain=*/false);
    Collected c = Collect(*s);
    EXPECT_EQ(c.final.finish, FinishReason::kCancelled);
    EXPECT_EQ(c.final.status.code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(engine->Submit(r).status().code(), absl::StatusCode::kUnavailable);
  }
  {
    auto engine = MakeEngine(model, ByteCodec(), SmallOptions());
    GenerationRequest r = SampledRequest(6);
    r.max_tokens = 20;
    auto s = *engine->Submit(r);
    engine->Shutdown(/*drain=*/true);
    Collected c = Collect(*s);
    EXPECT_TRUE(c.final.status.ok()) << c.final.status;
    EXPECT_NE(c.final.finish, FinishReason::kCancelled);
  }
}

}  // namespace
}  // namespace slq::inference
