// The bf16 split of a grid level (kernels/grids.h) for bf16 mma operands. Every level is an fp16
// value (up to 11 significant bits) but bf16 keeps 8, so a bf16 mma cannot take the level itself.
// It takes two: L = hi + lo with hi = bf16(L) and lo = bf16(L - hi), both rounded to nearest
// even. For an fp16 value the split is exact: L - hi is a multiple of L's fp16 ulp no larger
// than half a bf16 ulp of L, i.e. at most 3 significant bits (grid_split_test.cc checks every
// level of every grid). Products of bf16 values are exact in fp32, so hi * x + lo * x
// accumulated in fp32 equals L * x accumulated in fp32: the streaming kernel's bf16 grid variant
// (kernels/cuda/qgemm_stream_device.cuh) is as exact as its fp16 one.
//
//   const SplitLevel s = SplitLevelBf16(GridLevels(4, 1)[3]);
//   Bf16Value(s.hi) + Bf16Value(s.lo) == GridLevels(4, 1)[3]   // exactly
//
// Plain bit operations, the same function on the host (tests) and on the device (the kernel's
// table fill). Thread safety: pure functions.
#ifndef SLQ_KERNELS_GRID_SPLIT_H_
#define SLQ_KERNELS_GRID_SPLIT_H_

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SLQ_GRID_SPLIT_HD __host__ __device__
#else
#define SLQ_GRID_SPLIT_HD
#endif

namespace slq::kernels {

// The bf16 bits of a finite float, rounded to nearest even.
SLQ_GRID_SPLIT_HD inline uint16_t Bf16Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// The float value of bf16 bits (exact).
SLQ_GRID_SPLIT_HD inline float Bf16Value(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

struct SplitLevel {
  uint16_t hi;  // bf16(L)
  uint16_t lo;  // bf16(L - hi); 0 when L is bf16-exact
};

SLQ_GRID_SPLIT_HD inline SplitLevel SplitLevelBf16(float level) {
  const uint16_t hi = Bf16Bits(level);
  return {hi, Bf16Bits(level - Bf16Value(hi))};  // the difference is exact in fp32
}

// The split as one 32-bit word: hi in bits [0, 16), lo in bits [16, 32).
SLQ_GRID_SPLIT_HD inline uint32_t SplitLevelWord(float level) {
  const SplitLevel s = SplitLevelBf16(level);
  return static_cast<uint32_t>(s.hi) | (static_cast<uint32_t>(s.lo) << 16);
}

}  // namespace slq::kernels

#endif  // SLQ_KERNELS_GRID_SPLIT_H_
