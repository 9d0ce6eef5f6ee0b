#include "server/jobs/job_types.h"

#include <set>

#include "gtest/gtest.h"

namespace slq {
namespace {

TEST(JobTypesTest, NamesRoundTrip) {
  for (JobState s :
       {JobState::kQueued, JobState::kRunning, JobState::kSucceeded, JobState::kFailed, JobState::kCancelled}) {
    EXPECT_EQ(*ParseJobState(JobStateName(s)), s);
  }
  for (JobStage s : {JobStage::kFetch, JobStage::kProfile, JobStage::kSearch, JobStage::kPack, JobStage::kVerify,
                     JobStage::kPublish}) {
    EXPECT_EQ(*ParseJobStage(JobStageName(s)), s);
  }
  auto bad = ParseJobState("DONE");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'DONE'"), std::string::npos);
  EXPECT_NE(bad.status().message().find("QUEUED"), std::string::npos);
}

TEST(JobTypesTest, TransitionsRespectTerminalStates) {
  EXPECT_TRUE(ValidateJobTransition(JobState::kQueued, JobState::kRunning).ok());
  EXPECT_TRUE(ValidateJobTransition(JobState::kRunning, JobState::kRunning).ok());
  EXPECT_TRUE(ValidateJobTransition(JobState::kRunning, JobState::kSucceeded).ok());
  EXPECT_TRUE(ValidateJobTransition(JobState::kRunning, JobState::kQueued).ok());
  EXPECT_FALSE(ValidateJobTransition(JobState::kQueued, JobState::kSucceeded).ok());
  for (JobState t : {JobState::kSucceeded, JobState::kFailed, JobState::kCancelled}) {
    for (JobState to :
         {JobState::kQueued, JobState::kRunning, JobState::kSucceeded, JobState::kFailed, JobState::kCancelled}) {
      absl::Status s = ValidateJobTransition(t, to);
      EXPECT_TRUE(absl::IsFailedPrecondition(s)) << JobStateName(t) << "->" << JobStateName(to);
    }
  }
}

TEST(JobTypesTest, RequestHashCoversEveryParameterButTheKey) {
  JobRequest a{.model_uri = "hf://o/m",
               .target = "ear>=0.99",
               .formats = "4-8",
               .group_size = 128,
               .calibration_data = "cal",
               .eval_data = "eval",
               .options_json = "{}",
               .idempotency_key = "k1"};
  JobRequest b = a;
  b.idempotency_key = "k2";
  EXPECT_EQ(RequestHash(a), RequestHash(b));
  std::set<std::string> hashes{RequestHash(a)};
  JobRequest c = a;
  c.group_size = 64;
  hashes.insert(RequestHash(c));
  c = a;
  c.target = "ear>=0.98";
  hashes.insert(RequestHash(c));
  c = a;
  c.formats = "4";
  hashes.insert(RequestHash(c));
  c = a;
  c.options_json = "{\"x\":1}";
  hashes.insert(RequestHash(c));
  c = a;  // shifting a character between fields must change the hash
  c.model_uri = "hf://o/mc";
  c.target = "al";
  hashes.insert(RequestHash(c));
  EXPECT_EQ(hashes.size(), 6u);
}

TEST(JobTypesTest, IdsAreRandomHex) {
  std::string id = NewJobId();
  ASSERT_EQ(id.size(), 4u + 16u);
  EXPECT_EQ(id.substr(0, 4), "job-");
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef", 4), std::string::npos);
  EXPECT_NE(NewJobId(), NewJobId());
  EXPECT_EQ(NewTaskId().substr(0, 5), "task-");
}

}  // namespace
}  // namespace slq
