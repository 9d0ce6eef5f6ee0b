#include "server/model/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "server/common/file_util.h"
#include "server/common/half.h"
#include "server/model/safetensors_writer.h"
#include "server/model/test_model_util.h"

namespace slq {
namespace {

using ::testing::HasSubstr;

// A file from a raw header string and `data_bytes` bytes of data.
std::string RawFile(const std::string& header, size_t data_bytes, uint64_t claimed_len = 0) {
  std::string out(8, '\0');
  uint64_t n = claimed_len ? claimed_len : header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\x01');
}

class SafetensorsTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& bytes) {
    std::string path = dir_ + "/" + name;
    EXPECT_TRUE(WriteFileAtomic(path, bytes).ok());
    return path;
  }
  absl::Status OpenStatus(const std::string& bytes) {
    return SafetensorsFile::Open(Write("bad.safetensors", bytes)).status();
  }
  std::string dir_ = testing::MakeTempDir("st");
};

TEST_F(SafetensorsTest, RoundTripsAllDtypes) {
  SafetensorsWriter w;
  std::vector<float> f = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -1.0f};
  ASSERT_TRUE(w.AddF32("a", {2, 3}, f).ok());
  std::vector<uint16_t> h = {FloatToHalf(0.5f), FloatToHalf(-4.0f)};
  ASSERT_TRUE(w.Add("h", DType::kF16, {2}, {reinterpret_cast<uint8_t*>(h.data()), 4}).ok());
  std::vector<uint16_t> b = {FloatToBf16(1.25f), FloatToBf16(-8.0f)};
  ASSERT_TRUE(w.Add("b", DType::kBF16, {2}, {reinterpret_cast<uint8_t*>(b.data()), 4}).ok());
  std::vector<uint32_t> u = {0xdeadbeef, 7};
  ASSERT_TRUE(w.Add("u", DType::kU32, {2}, {reinterpret_cast<uint8_t*>(u.data()), 8}).ok());
  std::vector<uint8_t> u8 = {1, 2, 3};
  ASSERT_TRUE(w.Add("u8", DType::kU8, {3}, u8).ok());
  w.SetMetadata("format", "pt");
  auto file = SafetensorsFile::Open(Write("ok.safetensors", w.Serialize()));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ((*file)->Find("a")->ShapeString(), "[2, 3]");
  EXPECT_EQ(*ToFloat32(*(*file)->Find("a")), f);
  EXPECT_EQ(*ToFloat32(*(*file)->Find("h")), (std::vector<float>{0.5f, -4.0f}));
  EXPECT_EQ(*ToFloat32(*(*file)->Find("b")), (std::vector<float>{1.25f, -8.0f}));
  EXPECT_EQ(*CopyRaw<uint32_t>(*(*file)->Find("u"), DType::kU32), u);
  EXPECT_EQ(*CopyRaw<uint8_t>(*(*file)->Find("u8"), DType::kU8), u8);
  EXPECT_FALSE(CopyRaw<uint32_t>(*(*file)->Find("u8"), DType::kU32).ok());
  auto as_float = ToFloat32(*(*file)->Find("u"));
  EXPECT_THAT(as_float.status().message(), HasSubstr("U32"));
  EXPECT_EQ((*file)->Find("missing"), nullptr);
}

TEST_F(SafetensorsTest, HeaderLengthBeyondFile) {
  auto s = OpenStatus(RawFile("{}", 0, /*claimed_len=*/1000));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("header length 1000 exceeds"));
  EXPECT_THAT(s.message(), HasSubstr("bad.safetensors"));
  EXPECT_FALSE(OpenStatus("abc").ok());  // shorter than the length field
}

TEST_F(SafetensorsTest, MalformedJson) {
  auto s = OpenStatus(RawFile("{\"a\": [", 0));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("not a valid JSON"));
}

TEST_F(SafetensorsTest, OffsetsOutOfRange) {
  auto s = OpenStatus(RawFile(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("tensor 'w'"));
  EXPECT_THAT(s.message(), HasSubstr("beyond the data buffer"));
}

TEST_F(SafetensorsTest, OverlappingOffsets) {
  auto s = OpenStatus(RawFile(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                  "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                              12));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("overlap"));
  EXPECT_THAT(s.message(), HasSubstr("'a'"));
}

TEST_F(SafetensorsTest, DtypeShapeMismatch) {
  auto s = OpenStatus(RawFile(R"({"w": {"dtype": "BF16", "shape": [3, 2], "data_offsets": [0, 24]}})", 24));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("need 12 bytes but data_offsets span 24"));
}

TEST_F(SafetensorsTest, UnknownDtype) {
  auto s = OpenStatus(RawFile(R"({"w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", 4));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("unsupported dtype 'F8_E4M3'"));
  EXPECT_THAT(s.message(), HasSubstr("tensor 'w'"));
}

TEST_F(SafetensorsTest, BadEntryFields) {
  EXPECT_FALSE(OpenStatus(RawFile(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}})", 0)).ok());
  EXPECT_FALSE(OpenStatus(RawFile(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", 4)).ok());
  EXPECT_FALSE(OpenStatus(RawFile(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", 4)).ok());
  EXPECT_FALSE(OpenStatus(RawFile(R"({"w": 3})", 0)).ok());
  EXPECT_FALSE(OpenStatus(RawFile(R"([1, 2])", 0)).ok());
}

TEST_F(SafetensorsTest, MissingTensorAndFile) {
  SafetensorsWriter w;
  std::vector<float> f = {1.0f};
  ASSERT_TRUE(w.AddF32("x", {1}, f).ok());
  auto store = TensorStore::OpenFile(Write("one.safetensors", w.Serialize()));
  ASSERT_TRUE(store.ok());
  auto t = (*store)->Get("y");
  EXPECT_EQ(t.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(t.status().message(), HasSubstr("'y'"));
  EXPECT_EQ(SafetensorsFile::Open(dir_ + "/nope.safetensors").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(TensorStore::OpenDir(dir_).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SafetensorsTest, ShardedIndex) {
  SafetensorsWriter a, b;
  std::vector<float> fa = {1, 2}, fb = {3, 4, 5};
  ASSERT_TRUE(a.AddF32("a", {2}, fa).ok());
  ASSERT_TRUE(b.AddF32("b", {3}, fb).ok());
  Write("s1.safetensors", a.Serialize());
  Write("s2.safetensors", b.Serialize());
  Write("model.safetensors.index.json",
        R"({"metadata": {}, "weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  auto store = TensorStore::OpenDir(dir_);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->Names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(*ToFloat32(**(*store)->Get("b")), fb);
  EXPECT_EQ((*store)->FilePaths().size(), 2u);
  // An index naming a tensor its shard lacks.
  Write("bad.index.json", R"({"weight_map": {"c": "s1.safetensors"}})");
  auto bad = TensorStore::OpenIndex(dir_ + "/bad.index.json");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("'c'"));
  Write("esc.index.json", R"({"weight_map": {"a": "../s1.safetensors"}})");
  EXPECT_FALSE(TensorStore::OpenIndex(dir_ + "/esc.index.json").ok());
}

TEST_F(SafetensorsTest, ExpectShapeNamesBoth) {
  SafetensorsWriter w;
  std::vector<float> f(6, 1.0f);
  ASSERT_TRUE(w.AddF32("m", {2, 3}, f).ok());
  auto file = SafetensorsFile::Open(Write("m.safetensors", w.Serialize()));
  ASSERT_TRUE(file.ok());
  std::vector<int64_t> want = {3, 2};
  auto s = ExpectShape(*(*file)->Find("m"), want);
  EXPECT_THAT(s.message(), HasSubstr("[2, 3], expected [3, 2]"));
}

// Formerly server/quant/safetensors_io_test (the artifact writer/reader's own copy): mixed
// dtypes in memory through the one writer and FromBytes, and truncation rejected naming the tensor.
TEST(SafetensorsMemoryTest, InMemoryRoundTripOfMixedDtypesAndRejectsTruncation) {
  SafetensorsWriter w;
  std::vector<uint32_t> codes = {1, 2, 3, 0xffffffffu, 5, 6};
  std::vector<uint16_t> scales = {0x3c00, 0x4000, 0x3555};
  std::vector<float> norm = {1.f, -2.5f};
  ASSERT_TRUE(w.Add("a.codes", DType::kU32, {2, 3}, codes.data(), codes.size() * 4).ok());
  ASSERT_TRUE(w.Add("a.scales", DType::kF16, {3}, scales.data(), scales.size() * 2).ok());
  ASSERT_TRUE(w.Add("norm", DType::kF32, {2}, norm.data(), norm.size() * 4).ok());
  EXPECT_FALSE(w.Add("norm", DType::kF32, {2}, norm.data(), norm.size() * 4).ok());  // duplicate
  w.SetMetadata("format", "slq");
  const std::string blob = w.Serialize();
  auto r = SafetensorsFile::FromBytes(blob, "mem");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->metadata().at("format"), "slq");
  const TensorView* c = (*r)->Find("a.codes");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(0, memcmp(c->bytes.data(), codes.data(), 24));
  EXPECT_EQ(*ToFloat32(*(*r)->Find("norm")), norm);
  EXPECT_FLOAT_EQ((*ToFloat32(*(*r)->Find("a.scales")))[1], 2.0f);
  EXPECT_FALSE(ToFloat32(*c).ok());
  auto t = SafetensorsFile::FromBytes(blob.substr(0, blob.size() - 3), "trunc");
  EXPECT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("norm"), std::string::npos) << t.status();
  EXPECT_FALSE(SafetensorsFile::FromBytes("abc", "tiny").ok());
}

}  // namespace
}  // namespace slq
