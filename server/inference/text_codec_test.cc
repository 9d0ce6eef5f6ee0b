#include "server/inference/text_codec.h"

#include <gtest/gtest.h>

#include "server/inference/request_stream.h"

namespace slq::inference {
namespace {

TEST(Utf8, CompletePrefixHoldsTruncatedCharacters) {
  EXPECT_EQ(CompleteUtf8Prefix("abc"), 3u);
  EXPECT_EQ(CompleteUtf8Prefix("a\xC3"), 1u);         // é truncated
  EXPECT_EQ(CompleteUtf8Prefix("a\xC3\xA9"), 3u);     // é complete
  EXPECT_EQ(CompleteUtf8Prefix("\xF0\x9F\x98"), 0u);  // 😀 missing its last byte
  EXPECT_EQ(CompleteUtf8Prefix("x\xFF"), 2u);         // invalid: not held
  EXPECT_EQ(CompleteUtf8Prefix("\xE2\x28"), 2u);      // broken sequence: not held
}

TEST(Utf8, LossyReplacesInvalidBytes) {
  EXPECT_EQ(LossyUtf8("a\xFF"
                      "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(LossyUtf8("\xC3\xA9"), "\xC3\xA9");
  EXPECT_EQ(LossyUtf8("\xC3"), "\xEF\xBF\xBD");
}

TEST(ByteTextCodec, StreamReleasesOnlyWholeCharacters) {
  ByteTextCodec codec(260, 256, 257);
  const std::string text = "h\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80!";  // h é € 😀 !
  auto ids = codec.Encode(text, /*add_special=*/true);
  ASSERT_TRUE(ids.ok());
  ASSERT_EQ((*ids)[0], 256);
  auto s = codec.NewTextStream();
  std::vector<std::string> deltas;
  for (size_t i = 1; i < ids->size(); ++i) deltas.push_back(s->Push((*ids)[i]));
  deltas.push_back(s->Finish());
  const std::vector<std::string> want = {"h", "", "\xC3\xA9",         "",  "", "\xE2\x82\xAC", "",
                                         "",  "", "\xF0\x9F\x98\x80", "!", ""};
  EXPECT_EQ(deltas, want);
}

TEST(ByteTextCodec, FinishFlushesTruncatedAsReplacement) {
  ByteTextCodec codec(260, 256, 257);
  auto s = codec.NewTextStream();
  EXPECT_EQ(s->Push(0xE2), "");
  EXPECT_EQ(s->Push(257), "");  // EOS decodes to nothing
  EXPECT_EQ(s->Finish(), "\xEF\xBF\xBD");
}

TEST(RequestStream, MergesPendingEventsAndStopsAfterFinal) {
  RequestStream s;
  int notified = 0;
  s.SetNotifier([&] { ++notified; });
  GenerationEvent a;
  a.token_ids = {1};
  a.text = "x";
  GenerationEvent b;
  b.token_ids = {2};
  b.text = "y";
  b.final = true;
  b.finish = FinishReason::kLength;
  s.Push(a);
  s.Push(b);
  s.Push(a);  // after final: ignored
  EXPECT_EQ(notified, 2);
  auto m = s.TryPopMerged();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->token_ids, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(m->text, "xy");
  EXPECT_TRUE(m->final);
  EXPECT_EQ(m->finish, FinishReason::kLength);
  EXPECT_FALSE(s.TryPopMerged().has_value());
  GenerationEvent e;
  EXPECT_FALSE(s.Next(&e, absl::Milliseconds(1)));
}

}  // namespace
}  // namespace slq::inference
