// The input Gram file cache (input_gram.h CachedInputGrams) on a real model and text.
#include "server/quant/input_gram.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "server/common/test_paths.h"
#include "server/model/model_loader.h"
#include "server/model/tokenizer/tokenizer.h"
#include "server/quant/eval_data.h"

namespace slq::quant {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> CacheFiles(const std::string& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  return out;
}

TEST(InputGramCache, ReturnsTheCapturedGramsAndRecapturesABadFile) {
  const std::string dir = testing::ModelsDir() + "/tinystories-656k";
  auto model = LoadModel(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  auto tok = Tokenizer::FromHfDir(dir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto text = ReadFile(testing::DataDir() + "/tinystories-valid-part1.txt");
  ASSERT_TRUE(text.ok());
  EvalDataOptions o;
  o.max_calibration_sequences = 4;
  o.max_heldout_sequences = 4;
  auto data = PrepareEvalData(*text, **tok, o);
  ASSERT_TRUE(data.ok()) << data.status();
  std::vector<std::string> names;
  for (const LinearSlot& s : (*model)->LinearSlots()) {
    if (s.layer == 0) names.push_back(s.name);
  }
  ASSERT_FALSE(names.empty());
  auto fresh = CaptureInputGrams(**model, names, data->calibration);
  ASSERT_TRUE(fresh.ok()) << fresh.status();

  const std::string cache = (fs::temp_directory_path() / ("slq-gram-cache-" + std::to_string(::getpid()))).string();
  fs::remove_all(cache);
  const std::string key = (*model)->identity_sha256;
  ASSERT_FALSE(key.empty());
  auto first = CachedInputGrams(**model, names, data->calibration, cache, key);
  ASSERT_TRUE(first.ok()) << first.status();
  auto files = CacheFiles(cache);
  ASSERT_EQ(files.size(), 1u);
  const auto size = fs::file_size(files[0]);
  auto second = CachedInputGrams(**model, names, data->calibration, cache, key);  // from the file
  ASSERT_TRUE(second.ok()) << second.status();
  for (const std::string& n : names) {
    EXPECT_EQ(first->at(n).h, fresh->at(n).h) << n;
    EXPECT_EQ(second->at(n).h, fresh->at(n).h) << n;
    EXPECT_EQ(second->at(n).tokens, fresh->at(n).tokens) << n;
    EXPECT_EQ(second->at(n).cols, fresh->at(n).cols) << n;
  }

  // A truncated file is captured again and replaced.
  fs::resize_file(files[0], size / 2);
  auto third = CachedInputGrams(**model, names, data->calibration, cache, key);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->at(names[0]).h, fresh->at(names[0]).h);
  EXPECT_EQ(fs::file_size(files[0]), size);

  // Other windows, another model key or other slots: other files, never the cached Grams.
  std::vector<std::vector<int32_t>> fewer(data->calibration.begin(), data->calibration.begin() + 2);
  auto other = CachedInputGrams(**model, names, fewer, cache, key);
  ASSERT_TRUE(other.ok());
  EXPECT_LT(other->at(names[0]).tokens, fresh->at(names[0]).tokens);
  ASSERT_TRUE(CachedInputGrams(**model, names, data->calibration, cache, key + "x").ok());
  ASSERT_TRUE(CachedInputGrams(**model, {names[0]}, data->calibration, cache, key).ok());
  EXPECT_EQ(CacheFiles(cache).size(), 4u);
  fs::remove_all(cache);
}

}  // namespace
}  // namespace slq::quant
