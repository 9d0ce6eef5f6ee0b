// Exact parity with Hugging Face `tokenizers`: ids and decoded text of every entry of
// tests/data/reference/tokenizer_<model>.json ([{"text", "ids", "decoded"}], produced by the
// real library with encode(text, add_special_tokens=True) and
// decode(ids, skip_special_tokens=True)). Reports the first mismatch of each model.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/test_paths.h"
#include "server/model/tokenizer/tokenizer.h"

namespace slq {
namespace {

using Ids = std::vector<int32_t>;

std::string Escape(std::string_view s, size_t max = 160) {
  nlohmann::json j = std::string(s.substr(0, max));
  return j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace) + (s.size() > max ? "..." : "");
}

std::string IdWindow(const Ids& ids, size_t at, const Tokenizer& t) {
  std::ostringstream os;
  const size_t b = at >= 3 ? at - 3 : 0, e = std::min(ids.size(), at + 5);
  os << "[";
  for (size_t i = b; i < e; ++i) {
    os << (i == at ? " >>" : " ") << ids[i] << Escape(t.TokenBytes(ids[i]), 20);
  }
  return os.str() + " ]";
}

// Empty string when equal, else a description of the first difference.
std::string CompareIds(const Ids& want, const Ids& got, const Tokenizer& t) {
  if (want == got) return "";
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  std::ostringstream os;
  os << "ids differ at position " << i << " (expected " << want.size() << " ids, got " << got.size() << ")\n  expected "
     << IdWindow(want, i, t) << "\n  got      " << IdWindow(got, i, t);
  return os.str();
}

std::string CompareText(const std::string& want, const std::string& got) {
  if (want == got) return "";
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  const size_t b = i >= 20 ? i - 20 : 0;
  std::ostringstream os;
  os << "decoded text differs at byte " << i << "\n  expected ..." << Escape(want.substr(b, 60)) << "\n  got      ..."
     << Escape(got.substr(b, 60));
  return os.str();
}

void CheckModel(const std::string& name) {
  const std::string ref_path = testing::TestDataDir() + "/reference/tokenizer_" + name + ".json";
  if (!std::filesystem::exists(ref_path)) GTEST_SKIP() << "no reference file " << ref_path;
  auto text = ReadFile(ref_path);
  ASSERT_TRUE(text.ok()) << text.status();
  const nlohmann::json ref = nlohmann::json::parse(*text, nullptr, false);
  ASSERT_TRUE(ref.is_array()) << ref_path << " is not a JSON list";
  auto tok = Tokenizer::FromHfDir(testing::ModelsDir() + "/" + name);
  ASSERT_TRUE(tok.ok()) << tok.status();
  int id_failures = 0, text_failures = 0;
  for (size_t k = 0; k < ref.size(); ++k) {
    const std::string input = ref[k].at("text").get<std::string>();
    const Ids want = ref[k].at("ids").get<Ids>();
    const Ids got = (*tok)->Encode(input, true);
    const std::string id_diff = CompareIds(want, got, **tok);
    if (!id_diff.empty() && id_failures++ == 0) {
      ADD_FAILURE() << name << " entry #" << k << " text " << Escape(input) << "\n" << id_diff;
    }
    const std::string text_diff = CompareText(ref[k].at("decoded").get<std::string>(), (*tok)->Decode(want, true));
    if (!text_diff.empty() && text_failures++ == 0) {
      ADD_FAILURE() << name << " entry #" << k << " decode of the reference ids of text " << Escape(input) << "\n"
                    << text_diff;
    }
  }
  EXPECT_EQ(id_failures, 0) << "of " << ref.size() << " entries";
  EXPECT_EQ(text_failures, 0) << "of " << ref.size() << " entries";
  std::printf("[parity] %s: %zu entries, %d id mismatches, %d decode mismatches\n", name.c_str(), ref.size(),
              id_failures, text_failures);
}

TEST(TokenizerParityTest, TinyStories656k) { CheckModel("tinystories-656k"); }
TEST(TokenizerParityTest, Docs19m) { CheckModel("docs-19m"); }

}  // namespace
}  // namespace slq
