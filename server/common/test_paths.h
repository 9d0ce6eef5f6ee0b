// Where tests find the real models and texts (../shared) and the repo's test data.
#ifndef SLQ_SERVER_COMMON_TEST_PATHS_H_
#define SLQ_SERVER_COMMON_TEST_PATHS_H_

#include <cstdlib>
#include <string>

namespace slq::testing {

// SLQ_SHARED_DIR (set by CTest) or ../shared relative to the working directory.
inline std::string SharedDir() {
  const char* env = std::getenv("SLQ_SHARED_DIR");
  return env ? std::string(env) : std::string("../shared");
}
inline std::string ModelsDir() { return SharedDir() + "/models"; }
inline std::string DataDir() { return SharedDir() + "/data"; }

// The repository root (SLQ_SOURCE_DIR, set by CTest) or the working directory.
inline std::string SourceDir() {
  const char* env = std::getenv("SLQ_SOURCE_DIR");
  return env ? std::string(env) : std::string(".");
}
inline std::string TestDataDir() { return SourceDir() + "/tests/data"; }

}  // namespace slq::testing

#endif  // SLQ_SERVER_COMMON_TEST_PATHS_H_
