// Test-only crash points: lets the recovery tests stop a process at an exact job stage, so a
// kill -9 lands there deterministically instead of after a guessed sleep.
//
//   SLQ_TEST_PAUSE_AT=profile,published SLQ_TEST_PAUSE_DIR=/tmp/x slq-worker ...
//
// TestPausePoint("profile") then, the first time this process reaches that point, creates
// $SLQ_TEST_PAUSE_DIR/paused-profile (holding the pid) and blocks the calling thread until the
// test creates $SLQ_TEST_PAUSE_DIR/resume-profile (or kills the process). Each point pauses at
// most once per process. Without SLQ_TEST_PAUSE_AT (production) it returns at once; never set
// it outside tests.
//
// Points: the worker calls them with the job stage its task reports (fetch, profile, search,
// pack, verify) and "written" (pack task: the verified artifact is complete in its staging
// dir, not yet reported); the scheduler calls "publish" (before the artifact is renamed into
// objects/) and "published" (renamed, job row not yet updated). Thread-safe.
#ifndef SLQ_SERVER_JOBS_TEST_PAUSE_H_
#define SLQ_SERVER_JOBS_TEST_PAUSE_H_

#include <string>

namespace slq {

void TestPausePoint(const std::string& point);

}  // namespace slq

#endif  // SLQ_SERVER_JOBS_TEST_PAUSE_H_
