#include "server/quant/choice.h"

#include <set>

#include "gtest/gtest.h"

namespace slq::quant {
namespace {

constexpr Rounding kRoundings[] = {Rounding::kRtn, Rounding::kMse, Rounding::kGptq};

// Every choice round-trips through its code, under every base a run can have; distinct choices
// get distinct codes.
TEST(ChoiceTest, EveryChoiceRoundTripsUnderEveryBase) {
  for (bool base_sym : {false, true}) {
    for (int64_t base_group : {32, 64, 128, -1}) {
      const ChoiceBase base{base_sym, base_group};
      std::set<int> codes;
      for (int b = 2; b <= 8; ++b) {
        for (Rounding r : kRoundings) {
          for (bool sym : {false, true}) {
            for (int64_t g : {32, 64, 128, -1}) {
              const Choice c{b, r, sym, g};
              auto code = EncodeChoice(c, base);
              ASSERT_TRUE(code.ok()) << code.status();
              EXPECT_FALSE(IsDenseChoice(*code));
              EXPECT_TRUE(CheckChoice(*code).ok());
              EXPECT_EQ(ChoiceBits(*code), b);
              EXPECT_EQ(ChoiceRounding(*code), r);
              EXPECT_EQ(UsesActivations(*code), r != Rounding::kRtn);
              auto back = DecodeChoice(*code, base);
              ASSERT_TRUE(back.ok()) << back.status();
              EXPECT_EQ(*back, c) << *code << " " << back->Name() << " vs " << c.Name();
              EXPECT_TRUE(codes.insert(*code).second) << "code " << *code << " used twice";
              // The rtn twin keeps the variant.
              auto twin = DecodeChoice(WithRounding(*code, Rounding::kRtn), base);
              ASSERT_TRUE(twin.ok());
              EXPECT_EQ(*twin, (Choice{b, Rounding::kRtn, sym, g}));
            }
          }
        }
      }
      EXPECT_EQ(codes.size(), 7u * 3 * 2 * 4);
    }
  }
}

// Codes written before variants existed (bits + 16 * rounding) mean the run's base variant,
// whatever it is (so --symmetric runs' caches and certificates keep their meaning too).
TEST(ChoiceTest, OldCodesMeanTheBaseVariant) {
  for (const ChoiceBase base : {ChoiceBase{false, 128}, ChoiceBase{true, 64}, ChoiceBase{false, -1}}) {
    for (int b = 2; b <= 8; ++b) {
      for (Rounding r : kRoundings) {
        const int old = b + 16 * static_cast<int>(r);
        EXPECT_EQ(EncodeChoice(b, r), old);
        EXPECT_EQ(*EncodeChoice(Choice{b, r, base.symmetric, base.group_size}, base), old);
        EXPECT_EQ(*DecodeChoice(old, base), (Choice{b, r, base.symmetric, base.group_size}));
      }
    }
  }
  EXPECT_EQ(*EncodeChoice(Choice{4, Rounding::kRtn, false, 128}, {}), 4);
  EXPECT_EQ(*EncodeChoice(Choice{8, Rounding::kRtn, true, 128}, {}), 8 + 64);
  EXPECT_EQ(*EncodeChoice(Choice{5, Rounding::kGptq, false, 64}, {}), 5 + 32 + 2 * 128);
}

TEST(ChoiceTest, DenseAndBadCodes) {
  EXPECT_TRUE(DecodeChoice(0, {})->dense());
  EXPECT_TRUE(DecodeChoice(16, {})->dense());
  EXPECT_EQ(*EncodeChoice(Choice{}, {}), 0);
  EXPECT_EQ(DecodeChoice(16, {})->BitsPerParam(1, 64), 16.0);
  EXPECT_EQ(DecodeChoice(0, {})->Name(), "dense");
  for (int bad : {-4, 1, 9, 4 + 48, 4 + 5 * 128, 64, 128}) {
    EXPECT_EQ(DecodeChoice(bad, {}).status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_FALSE(CheckChoice(bad).ok()) << bad;
  }
  EXPECT_FALSE(EncodeChoice(Choice{9, Rounding::kRtn, false, 128}, {}).ok());
  EXPECT_FALSE(EncodeChoice(Choice{4, Rounding::kRtn, false, 256}, {}).ok());           // not a base, not offered
  EXPECT_TRUE(EncodeChoice(Choice{4, Rounding::kRtn, false, 256}, {false, 256}).ok());  // the base
}

// A choice's bits/param are the stored layout's: width + fp16 scale (+ fp16 zero when
// asymmetric) per group.
TEST(ChoiceTest, BitsPerParamAreExactPerVariant) {
  EXPECT_DOUBLE_EQ((Choice{8, Rounding::kRtn, true, 128}).BitsPerParam(1, 256), 8.125);
  EXPECT_DOUBLE_EQ((Choice{8, Rounding::kRtn, false, 128}).BitsPerParam(1, 256), 8.25);
  EXPECT_DOUBLE_EQ((Choice{4, Rounding::kGptq, false, 64}).BitsPerParam(1, 256), 4.5);
  EXPECT_DOUBLE_EQ((Choice{4, Rounding::kMse, true, 64}).BitsPerParam(1, 256), 4.25);
  EXPECT_DOUBLE_EQ((Choice{3, Rounding::kRtn, false, -1}).BitsPerParam(1, 256), 3 + 32.0 / 256);
  // Ragged last group: 3 groups of 64 over 160 columns.
  EXPECT_DOUBLE_EQ((Choice{4, Rounding::kRtn, false, 64}).BitsPerParam(1, 160), 4 + 32.0 * 3 / 160);
  // Config carries the variant, the rest of the base is kept.
  QuantConfig base;
  base.mse_clip = true;
  const QuantConfig c = Choice{6, Rounding::kRtn, true, 64}.Config(base);
  EXPECT_EQ(c.bits, 6);
  EXPECT_TRUE(c.symmetric);
  EXPECT_EQ(c.group_size, 64);
  EXPECT_TRUE(c.mse_clip);
  EXPECT_EQ((Choice{6, Rounding::kGptq, true, 64}).Name(), "gptq6 sym g64");
  EXPECT_EQ((Choice{8, Rounding::kRtn, false, -1}).Name(), "rtn8 asym row");
}

// Grid choices (Grid Games): code + 1024, asymmetric only; every code without grids keeps its
// meaning, the grid twin of each asymmetric choice round-trips, and its bits charge the 2-bit
// grid index per group.
TEST(ChoiceTest, GridChoicesAddTheirFlagAndKeepOldCodes) {
  for (const ChoiceBase base : {ChoiceBase{false, 128}, ChoiceBase{true, 64}, ChoiceBase{false, -1}}) {
    std::set<int> codes;
    for (int b = 2; b <= 8; ++b) {
      for (Rounding r : kRoundings) {
        for (bool sym : {false, true}) {
          for (int64_t g : {32, 64, 128, -1}) {
            const Choice plain{b, r, sym, g};
            const int code = *EncodeChoice(plain, base);
            EXPECT_LT(code, kChoiceGrid);
            EXPECT_FALSE(ChoiceGrids(code));
            EXPECT_TRUE(codes.insert(code).second);
            Choice grid = plain;
            grid.grids = true;
            auto gcode = EncodeChoice(grid, base);
            if (sym) {  // grids need asymmetric scales
              EXPECT_EQ(gcode.status().code(), absl::StatusCode::kInvalidArgument);
              EXPECT_FALSE(DecodeChoice(code + kChoiceGrid, base).ok()) << code + kChoiceGrid;
              continue;
            }
            ASSERT_TRUE(gcode.ok()) << gcode.status();
            EXPECT_EQ(*gcode, code + kChoiceGrid);
            EXPECT_TRUE(ChoiceGrids(*gcode));
            EXPECT_EQ(ChoiceBits(*gcode), b);
            EXPECT_EQ(ChoiceRounding(*gcode), r);
            EXPECT_EQ(UsesActivations(*gcode), r != Rounding::kRtn);
            EXPECT_FALSE(IsDenseChoice(*gcode));
            EXPECT_EQ(*DecodeChoice(*gcode, base), grid);
            EXPECT_EQ(*DecodeChoice(WithRounding(*gcode, Rounding::kRtn), base),
                      (Choice{b, Rounding::kRtn, sym, g, true}));
            EXPECT_TRUE(codes.insert(*gcode).second);
            EXPECT_TRUE(grid.Config(QuantConfig{}).grids);
            EXPECT_FALSE(plain.Config(QuantConfig{}).grids);
          }
        }
      }
    }
  }
  // The session-7 codes are unchanged.
  EXPECT_EQ(*EncodeChoice(Choice{5, Rounding::kGptq, false, 64}, {}), 5 + 32 + 2 * 128);
  EXPECT_EQ(*EncodeChoice(Choice{4, Rounding::kGptq, false, 128, true}, {}), 4 + 32 + 1024);
  EXPECT_EQ(*EncodeChoice(Choice{4, Rounding::kRtn, false, 64, true}, {}), 4 + 2 * 128 + 1024);
  // A dense layer has no grid twin; codes past the last flag are invalid (2048 is the s8 flag).
  for (int bad : {1024, 1024 + 16, 1024 + 9, 4096 + 4, 1024 + 4 + 5 * 128}) {
    EXPECT_EQ(DecodeChoice(bad, {}).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  // Exact bits: + 2 bits per group for the grid index (ragged last group counted).
  EXPECT_DOUBLE_EQ((Choice{4, Rounding::kGptq, false, 128, true}).BitsPerParam(1, 256), 4 + 34.0 / 128);
  EXPECT_DOUBLE_EQ((Choice{4, Rounding::kRtn, false, 64, true}).BitsPerParam(1, 160), 4 + 34.0 * 3 / 160);
  EXPECT_DOUBLE_EQ((Choice{3, Rounding::kRtn, false, -1, true}).BitsPerParam(1, 256), 3 + 34.0 / 256);
  EXPECT_EQ((Choice{4, Rounding::kGptq, false, 128, true}).Name(), "gptq4 asym g128 grid");
  EXPECT_EQ((Choice{4, Rounding::kGptq, false, 128}).Name(), "gptq4 asym g128");
}

TEST(ChoiceTest, S8ScalesAreAFlagWithExactBits) {
  const ChoiceBase base{false, 128};
  const Choice c{4, Rounding::kGptq, false, 64, true, true};
  const absl::StatusOr<int> code = EncodeChoice(c, base);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 4 + 16 * 2 + 128 * 2 + kChoiceGrid + kChoiceS8);
  EXPECT_TRUE(ChoiceS8(*code));
  EXPECT_TRUE(ChoiceGrids(*code));
  EXPECT_EQ(ChoiceBits(*code), 4);
  EXPECT_EQ(*DecodeChoice(*code, base), c);
  EXPECT_EQ(c.Name(), "gptq4 asym g64 grid s8");
  // 8-bit scale code + 4-bit zero-point + 2-bit grid id per group of 64, + the 32-bit base.
  EXPECT_DOUBLE_EQ(c.BitsPerParam(10, 256), 4 + 14.0 * 4 / 256 + 32.0 / (10 * 256));
  // Symmetric: the scale code only.
  EXPECT_DOUBLE_EQ((Choice{8, Rounding::kRtn, true, 128, false, true}).BitsPerParam(2, 256),
                   8 + 8.0 * 2 / 256 + 32.0 / 512);
  EXPECT_FALSE(DecodeChoice(kChoiceS8, base).ok());          // dense with s8
  EXPECT_FALSE(DecodeChoice(2 * kChoiceS8 + 4, base).ok());  // unknown flag
  EXPECT_EQ(DecodeChoice(4 + kChoiceS8, base)->Config(QuantConfig{}).scales, ScaleFormat::kS8);
}

}  // namespace
}  // namespace slq::quant
