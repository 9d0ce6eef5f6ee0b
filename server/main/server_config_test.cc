#include "server/main/server_config.h"

#include <cstdlib>
#include <fstream>

#include "gtest/gtest.h"

namespace slq {
namespace {

struct Parsed {
  ServerConfig cfg;
  absl::Status status;
};

Parsed Parse(std::vector<std::string> args) {
  Parsed p;
  CLI::App app{"slq-server"};
  RegisterServerFlags(app, &p.cfg);
  std::vector<const char*> argv = {"slq-server"};
  for (auto& a : args) argv.push_back(a.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
  p.status = ResolveServerConfig(app, &p.cfg);
  return p;
}

std::string WriteYaml(const std::string& text) {
  std::string path = ::testing::TempDir() + "/slq_cfg.yaml";
  std::ofstream(path) << text;
  return path;
}

TEST(ServerConfigTest, DefaultsDeriveFromDataDir) {
  Parsed p = Parse({"--data-dir", "/tmp/slqx"});
  ASSERT_TRUE(p.status.ok()) << p.status;
  EXPECT_EQ(p.cfg.store, "sqlite:///tmp/slqx/jobs.db");
  EXPECT_EQ(p.cfg.artifact_dir, "/tmp/slqx/artifacts");
  EXPECT_EQ(p.cfg.listen, "0.0.0.0:7070");
}

TEST(ServerConfigTest, FlagBeatsEnvBeatsFile) {
  std::string path = WriteYaml("max_queue: 7\nkv_cache_bytes: 4194304\nallowed_roots: [/a, /b]\n");
  setenv("SLQ_KV_CACHE_BYTES", "8388608", 1);
  Parsed p = Parse({"--config", path, "--max-queue", "9"});
  unsetenv("SLQ_KV_CACHE_BYTES");
  ASSERT_TRUE(p.status.ok()) << p.status;
  EXPECT_EQ(p.cfg.max_queue, 9);                                           // flag
  EXPECT_EQ(p.cfg.kv_cache_bytes, 8388608);                                // env over file
  EXPECT_EQ(p.cfg.allowed_roots, (std::vector<std::string>{"/a", "/b"}));  // file
}

TEST(ServerConfigTest, UnknownKeyAndBadValuesAreNamed) {
  Parsed p = Parse({"--config", WriteYaml("max_qeue: 7\n")});
  EXPECT_EQ(p.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(p.status.message().find("max_qeue"), std::string::npos);
  p = Parse({"--device", "tpu"});
  EXPECT_NE(p.status.message().find("--device"), std::string::npos);
  p = Parse({"--store", "mysql://x"});
  EXPECT_NE(p.status.message().find("--store"), std::string::npos);
  p = Parse({"--tls-cert", "/x.pem"});
  EXPECT_NE(p.status.message().find("--tls-key"), std::string::npos);
  p = Parse({"--config", WriteYaml("max_queue: lots\n")});
  EXPECT_NE(p.status.message().find("max_queue"), std::string::npos);
}

}  // namespace
}  // namespace slq
