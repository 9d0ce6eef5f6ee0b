#include "server/quant/safetensors_io.h"

#include <cstdio>
#include <filesystem>

#include "gtest/gtest.h"

namespace slq::quant {
namespace {

TEST(SafetensorsIoTest, RoundTripsMixedDtypesAndRejectsTruncation) {
  SafetensorsWriter w;
  std::vector<uint32_t> codes = {1, 2, 3, 0xffffffffu, 5, 6};
  std::vector<uint16_t> scales = {0x3c00, 0x4000, 0x3555};
  std::vector<float> norm = {1.f, -2.5f};
  w.Add("a.codes", "U32", {2, 3}, codes.data(), codes.size() * 4);
  w.Add("a.scales", "F16", {3}, scales.data(), scales.size() * 2);
  w.Add("norm", "F32", {2}, norm.data(), norm.size() * 4);
  w.SetMetadata("format", "slq");
  const std::string blob = w.Serialize();
  auto r = ParseSafetensors(blob, "mem");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->metadata.at("format"), "slq");
  const RawTensor* c = r->Find("a.codes");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(0, memcmp(c->bytes.data(), codes.data(), 24));
  EXPECT_EQ(*ToFloat32(*r->Find("norm")), norm);
  EXPECT_FLOAT_EQ((*ToFloat32(*r->Find("a.scales")))[1], 2.0f);
  EXPECT_FALSE(ToFloat32(*c).ok());
  auto t = ParseSafetensors(blob.substr(0, blob.size() - 3), "trunc");
  EXPECT_EQ(t.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(t.status().message().find("norm"), std::string::npos);
  EXPECT_FALSE(ParseSafetensors("abc", "tiny").ok());
}

}  // namespace
}  // namespace slq::quant
