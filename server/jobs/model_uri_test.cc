#include "server/jobs/model_uri.h"

#include "gtest/gtest.h"

namespace slq {
namespace {

TEST(ModelUriTest, ParsesTheThreeSchemes) {
  auto hf = ParseModelUri("hf://org-1/Model.v2@refs/pr/3");
  ASSERT_TRUE(hf.ok()) << hf.status();
  EXPECT_EQ(hf->scheme, ModelUri::Scheme::kHf);
  EXPECT_EQ(hf->repo, "org-1/Model.v2");
  EXPECT_EQ(hf->revision, "refs/pr/3");
  EXPECT_EQ(ParseModelUri("hf://a/b")->revision, "main");
  auto f = ParseModelUri("file:///models/x");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->path, "/models/x");
  auto h = ParseModelUri("https://host.example/m/tiny/");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->scheme, ModelUri::Scheme::kHttps);
  EXPECT_EQ(h->url, "https://host.example/m/tiny");
  EXPECT_EQ(ParseModelUri("http://h/x")->scheme, ModelUri::Scheme::kHttp);
}

TEST(ModelUriTest, RejectsMalformedWithClearMessages) {
  auto s3 = ParseModelUri("s3://bucket/model");
  ASSERT_TRUE(absl::IsInvalidArgument(s3.status()));
  EXPECT_NE(s3.status().message().find("unknown scheme 's3'"), std::string::npos) << s3.status();
  EXPECT_NE(s3.status().message().find("file, https, hf"), std::string::npos);
  for (const char* bad : {"", "models/tiny", "file://relative/x", "https:///path", "hf://onlyorg", "hf://a/b/c",
                          "hf://a/../b", "hf://a/b@", "hf://a/b@../x", "hf://a b/c"}) {
    auto r = ParseModelUri(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << bad;
  }
  EXPECT_NE(ParseModelUri("hf://onlyorg").status().message().find("hf://onlyorg"), std::string::npos);
}

}  // namespace
}  // namespace slq
