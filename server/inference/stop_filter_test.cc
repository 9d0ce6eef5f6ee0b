#include "server/inference/stop_filter.h"

#include <gtest/gtest.h>

namespace slq::inference {
namespace {

// Feeds `pieces` and returns the emitted text; *stopped reports a match.
std::string Feed(StopFilter& f, const std::vector<std::string>& pieces, bool* stopped) {
  std::string out;
  *stopped = false;
  for (const auto& p : pieces) {
    out += f.Append(p, stopped);
    if (*stopped) return out;
  }
  return out + f.Flush();
}

TEST(StopFilter, CutsBeforeStopSplitAcrossDeltas) {
  StopFilter f({"THE END"});
  bool stopped;
  EXPECT_EQ(Feed(f, {"and so", " TH", "E E", "ND and more"}, &stopped), "and so ");
  EXPECT_TRUE(stopped);
}

TEST(StopFilter, HoldsOnlyPossiblePrefixes) {
  StopFilter f({"\n\n"});
  bool stopped = false;
  EXPECT_EQ(f.Append("line\n", &stopped), "line");  // "\n" may start the stop string
  EXPECT_EQ(f.Append("next", &stopped), "\nnext");  // it did not
  EXPECT_FALSE(stopped);
  EXPECT_EQ(f.Append("\n", &stopped), "");
  EXPECT_EQ(f.Append("\n", &stopped), "");
  EXPECT_TRUE(stopped);
}

TEST(StopFilter, EarliestOfSeveralStopsWins) {
  StopFilter f({"cat", "a c"});
  bool stopped;
  EXPECT_EQ(Feed(f, {"I saw a cat"}, &stopped), "I saw ");
  EXPECT_TRUE(stopped);
}

TEST(StopFilter, NoMatchEmitsEverything) {
  StopFilter f({"xyz"});
  bool stopped;
  EXPECT_EQ(Feed(f, {"abc", "xy", "q"}, &stopped), "abcxyq");
  EXPECT_FALSE(stopped);
}

TEST(StopFilter, MultiByteStop) {
  StopFilter f({"\xC3\xA9t\xC3\xA9"});  // "été"
  bool stopped;
  EXPECT_EQ(Feed(f, {"un \xC3\xA9", "t\xC3\xA9 chaud"}, &stopped), "un ");
  EXPECT_TRUE(stopped);
}

}  // namespace
}  // namespace slq::inference
