#include "server/inference/scheduler.h"

#include <gtest/gtest.h>

namespace slq::inference {
namespace {

std::unique_ptr<Sequence> Seq(uint64_t id, int64_t prompt_len) {
  static ByteTextCodec codec(260, 256, 257);
  GenerationRequest r;
  return std::make_unique<Sequence>(id, r, std::vector<int32_t>(prompt_len, 65), codec.NewTextStream(),
                                    std::make_shared<RequestStream>());
}

SchedulerOptions Opts() {
  SchedulerOptions o;
  o.max_running = 4;
  o.token_budget = 10;
  o.prefill_chunk = 6;
  o.admit_headroom = 4;
  o.max_context = 128;
  return o;
}

TEST(Scheduler, ValidatesOptions) {
  SchedulerOptions o = Opts();
  o.token_budget = o.max_running;
  EXPECT_EQ(ValidateSchedulerOptions(o).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateSchedulerOptions(Opts()).ok());
}

TEST(Scheduler, ChunksPrefillWithinTheTokenBudget) {
  BlockAllocator alloc(64, 4);
  Scheduler s(&alloc, Opts());
  s.Enqueue(Seq(1, 15));
  s.Enqueue(Seq(2, 3));
  s.Admit();
  EXPECT_EQ(s.num_running(), 2);
  auto plan = s.PlanStep();
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].seq->id, 1u);
  EXPECT_EQ(plan[0].count, 6);  // prefill_chunk
  EXPECT_EQ(plan[1].count, 3);  // the short prompt fits whole
  // Admission reserved prompt + headroom: 15 + 4 = 19 positions -> 5 blocks, 3 + 4 -> 2 blocks.
  EXPECT_EQ(alloc.num_free(), 64 - 5 - 2);
}

TEST(Scheduler, DecodersComeBeforePrefills) {
  BlockAllocator alloc(64, 4);
  Scheduler s(&alloc, Opts());
  s.Enqueue(Seq(1, 20));
  s.Enqueue(Seq(2, 1));  // remaining() == 1: decodes in this step
  s.Admit();
  auto plan = s.PlanStep();
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].seq->id, 2u);
  EXPECT_EQ(plan[0].count, 1);
  EXPECT_EQ(plan[1].seq->id, 1u);
  EXPECT_EQ(plan[1].count, 6);
}

TEST(Scheduler, AdmitsOnlyWhatFitsInFifoOrder) {
  BlockAllocator alloc(6, 4);  // 24 positions
  Scheduler s(&alloc, Opts());
  s.Enqueue(Seq(1, 12));  // 16 positions with headroom: 4 blocks
  s.Enqueue(Seq(2, 8));   // 12: 3 blocks, does not fit after the first
  s.Enqueue(Seq(3, 1));   // would fit, but may not overtake the head
  s.Admit();
  EXPECT_EQ(s.num_running(), 1);
  EXPECT_EQ(s.num_waiting(), 2);
  auto done = s.Finish(s.PlanStep()[0].seq);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(alloc.num_free(), 6);
  s.Admit();
  EXPECT_EQ(s.num_running(), 2);
}

TEST(Scheduler, PreemptsTheYoungestWhenThePoolIsFull) {
  BlockAllocator alloc(4, 4);  // 16 positions
  SchedulerOptions o = Opts();
  o.admit_headroom = 0;
  Scheduler s(&alloc, o);
  s.Enqueue(Seq(1, 8));
  s.Enqueue(Seq(2, 8));
  s.Admit();
  ASSERT_EQ(s.num_running(), 2);
  // Pretend both prompts are cached and one token was sampled each: each needs a third block.
  for (Sequence* q : {s.PlanStep()[0].seq, s.PlanStep()[1].seq}) {
    q->table.num_tokens = 8;
    q->tokens.push_back(66);
  }
  auto plan = s.PlanStep();
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].seq->id, 1u);
  EXPECT_EQ(plan[0].count, 1);
  EXPECT_EQ(s.num_running(), 1);
  EXPECT_EQ(s.num_waiting(), 1);
  EXPECT_EQ(s.preemptions(), 1);
  auto removed = s.RemoveIf([](const Sequence& q) { return q.id == 2; });
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0]->cached(), 0);  // recomputed from scratch on re-admission
}

}  // namespace
}  // namespace slq::inference
