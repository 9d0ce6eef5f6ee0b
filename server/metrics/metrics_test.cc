#include "server/metrics/metrics.h"

#include <curl/curl.h>

#include <string>

#include "gtest/gtest.h"

namespace slq {
namespace {

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// GETs http://127.0.0.1:port<path>; the HTTP status goes to *code when given.
std::string Scrape(int port, const std::string& path = "/metrics", long* code = nullptr) {
  std::string body;
  CURL* curl = curl_easy_init();
  std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  CURLcode rc = curl_easy_perform(curl);
  if (code != nullptr) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, code);
  curl_easy_cleanup(curl);
  EXPECT_EQ(rc, CURLE_OK) << curl_easy_strerror(rc);
  return body;
}

TEST(MetricsTest, ServesRecordedValuesOverHttp) {
  Metrics m;
  ASSERT_TRUE(m.Serve("127.0.0.1:0").ok());
  ASSERT_GT(m.port(), 0);
  m.jobs("QUEUED").Set(3);
  m.inference_ttft("tiny").Observe(0.02);
  m.generated_tokens("tiny").Increment(7);
  m.stage_duration("profile").Observe(12);
  m.kv_cache_usage("tiny").Set(0.25);
  std::string body = Scrape(m.port());
  EXPECT_NE(body.find("slq_jobs{state=\"QUEUED\"} 3"), std::string::npos) << body;
  EXPECT_NE(body.find("slq_inference_ttft_seconds_count{model=\"tiny\"} 1"), std::string::npos);
  EXPECT_NE(body.find("slq_inference_generated_tokens_total{model=\"tiny\"} 7"), std::string::npos);
  EXPECT_NE(body.find("slq_job_stage_duration_seconds_bucket{stage=\"profile\",le=\"30\"} 1"), std::string::npos);
  EXPECT_NE(body.find("slq_kv_cache_usage_ratio{model=\"tiny\"} 0.25"), std::string::npos);
}

TEST(MetricsTest, OnlyMetricsIsServedAndRepeatedScrapesWork) {
  Metrics m;
  ASSERT_TRUE(m.Serve("127.0.0.1:0").ok());
  long code = 0;
  Scrape(m.port(), "/", &code);
  EXPECT_EQ(code, 404);
  for (int i = 0; i < 20; ++i) {
    m.jobs("RUNNING").Set(i);
    EXPECT_NE(Scrape(m.port(), "/metrics?x=1", &code).find("slq_jobs{state=\"RUNNING\"} " + std::to_string(i)),
              std::string::npos);
    EXPECT_EQ(code, 200);
  }
}

TEST(MetricsTest, PortInUseIsAClearError) {
  Metrics a;
  ASSERT_TRUE(a.Serve("127.0.0.1:0").ok());
  Metrics b;
  absl::Status s = b.Serve("127.0.0.1:" + std::to_string(a.port()));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("in use"), std::string::npos) << s.message();
  EXPECT_EQ(b.port(), 0);
}

TEST(MetricsTest, BadListenAddressIsAClearError) {
  Metrics m;
  absl::Status s = m.Serve("not-an-address:99999");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not-an-address"), std::string::npos);
}

}  // namespace
}  // namespace slq
