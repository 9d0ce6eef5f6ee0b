// Bitwidth-specialised unpack + dot / dequant kernels (see packed_dot.h). Compiled at -O3
// (CMakeLists.txt) so the 8-lane loops vectorise.
#include "server/quant/packed_dot.h"

#include <algorithm>
#include <atomic>

#include "server/common/half.h"
#include "server/quant/packing.h"

namespace slq::quant {
namespace {

using kernels::PackedMatrixView;

// 32 codes of B bits from B words (block-aligned: code 0 starts at bit 0 of w[0]).
template <int B>
[[gnu::always_inline]] inline void Unpack32(const uint32_t* w, float* out) {
  constexpr uint32_t kMask = (1u << B) - 1;
#pragma GCC unroll 32
  for (int j = 0; j < 32; ++j) {
    const int bit = j * B, wi = bit >> 5, sh = bit & 31;
    uint32_t v = w[wi] >> sh;
    if (sh + B > 32) v |= w[wi + 1] << (32 - sh);
    out[j] = static_cast<float>(v & kMask);
  }
}

template <int B>
[[gnu::always_inline]] inline float RowDot(const PackedMatrixView& v, int64_t r, const float* x,
                                           const float* xsum) {
  const int64_t g = v.group_size, cols = v.cols, gpr = kernels::GroupsPerRow(cols, g);
  const uint32_t* words = v.codes + r * kernels::WordsPerRow(cols, B);
  const uint16_t* sc = v.scales + r * gpr;
  const uint16_t* zr = v.zeros + r * gpr;
  alignas(32) float buf[32];
  float acc = 0.0f;
  for (int64_t k = 0; k < gpr; ++k) {
    const int64_t j0 = k * g, j1 = std::min(cols, j0 + g);
    float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = j0;
    if ((j0 & 31) == 0) {
      for (; j + 32 <= j1; j += 32) {
        Unpack32<B>(words + (j >> 5) * B, buf);
#pragma GCC unroll 32
        for (int l = 0; l < 32; ++l) lanes[l & 7] += buf[l] * x[j + l];
      }
    }
    float qx = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for (; j < j1; ++j) qx += static_cast<float>(GetCode(words, j, B)) * x[j];
    acc += HalfToFloat(sc[k]) * qx + HalfToFloat(zr[k]) * xsum[k];
  }
  return acc;
}

template <int B>
[[gnu::always_inline]] inline void Dequant(const PackedMatrixView& v, int64_t r, float* out) {
  const int64_t g = v.group_size, cols = v.cols, gpr = kernels::GroupsPerRow(cols, g);
  const uint32_t* words = v.codes + r * kernels::WordsPerRow(cols, B);
  alignas(32) float buf[32];
  for (int64_t k = 0; k < gpr; ++k) {
    const int64_t j0 = k * g, j1 = std::min(cols, j0 + g);
    const float s = HalfToFloat(v.scales[r * gpr + k]), m = HalfToFloat(v.zeros[r * gpr + k]);
    int64_t j = j0;
    if ((j0 & 31) == 0) {
      for (; j + 32 <= j1; j += 32) {
        Unpack32<B>(words + (j >> 5) * B, buf);
#pragma GCC unroll 32
        for (int l = 0; l < 32; ++l) out[j + l] = m + s * buf[l];
      }
    }
    for (; j < j1; ++j) out[j] = m + s * static_cast<float>(GetCode(words, j, B));
  }
}

#define SLQ_BITS_SWITCH(CALL)                 \
  switch (v.bits) {                           \
    case 2: return CALL(2);                   \
    case 3: return CALL(3);                   \
    case 4: return CALL(4);                   \
    case 5: return CALL(5);                   \
    case 6: return CALL(6);                   \
    case 7: return CALL(7);                   \
    default: return CALL(8);                  \
  }
#define SLQ_DOT(B) RowDot<B>(v, r, x, xsum)
#define SLQ_DEQ(B) Dequant<B>(v, r, out)

float DotBaseline(const PackedMatrixView& v, int64_t r, const float* x, const float* xsum) {
  SLQ_BITS_SWITCH(SLQ_DOT)
}
void DequantBaseline(const PackedMatrixView& v, int64_t r, float* out) { SLQ_BITS_SWITCH(SLQ_DEQ) }

#if defined(__x86_64__) && defined(__GNUC__)
#define SLQ_HAVE_AVX2_BUILD 1
[[gnu::target("avx2,fma")]] float DotAvx2(const PackedMatrixView& v, int64_t r, const float* x,
                                          const float* xsum) {
  SLQ_BITS_SWITCH(SLQ_DOT)
}
[[gnu::target("avx2,fma")]] void DequantAvx2(const PackedMatrixView& v, int64_t r, float* out) {
  SLQ_BITS_SWITCH(SLQ_DEQ)
}
bool CpuHasAvx2() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
#else
bool CpuHasAvx2() { return false; }
#endif

std::atomic<bool> g_force_baseline{false};

bool UseAvx2() { return CpuHasAvx2() && !g_force_baseline.load(std::memory_order_relaxed); }

}  // namespace

float PackedRowDotFast(const PackedMatrixView& v, int64_t r, const float* x, const float* xsum) {
#ifdef SLQ_HAVE_AVX2_BUILD
  if (UseAvx2()) return DotAvx2(v, r, x, xsum);
#endif
  return DotBaseline(v, r, x, xsum);
}

void DequantRowFast(const PackedMatrixView& v, int64_t r, float* out) {
#ifdef SLQ_HAVE_AVX2_BUILD
  if (UseAvx2()) return DequantAvx2(v, r, out);
#endif
  DequantBaseline(v, r, out);
}

const char* PackedKernelIsa() { return UseAvx2() ? "avx2" : "baseline"; }

bool ForceBaselinePackedKernels(bool force) { return g_force_baseline.exchange(force); }

}  // namespace slq::quant
