// Bitwidth-specialised unpack + dot / dequant kernels (see packed_dot.h). Compiled at -O3
// (CMakeLists.txt) so the baseline build's 8-lane loops vectorise; the AVX2 build uses
// intrinsics (8 codes per 64-bit broadcast + per-lane variable shifts).
#include "kernels/packed_dot.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "kernels/grids.h"
#include "server/common/half.h"

namespace slq::kernels {
namespace {

// 32 codes of B bits from B words (block-aligned: code 0 starts at bit 0 of w[0]), as floats
// (uniform groups) or as integers (T = uint32_t: the level lookup of grid groups).
template <int B, typename T>
[[gnu::always_inline]] inline void Unpack32(const uint32_t* w, T* out) {
  constexpr uint32_t kMask = (1u << B) - 1;
#pragma GCC unroll 32
  for (int j = 0; j < 32; ++j) {
    const int bit = j * B, wi = bit >> 5, sh = bit & 31;
    uint32_t v = w[wi] >> sh;
    if (sh + B > 32) v |= w[wi + 1] << (32 - sh);
    out[j] = static_cast<T>(v & kMask);
  }
}

// The grids of one row: Levels(k) is the level table of group k, or null for the uniform grid
// (grid 0, or a view without grid ids), which takes the integer-code paths unchanged.
class RowGrids {
 public:
  RowGrids(const PackedMatrixView& v, int64_t r, int bits) {
    if (v.grid_ids == nullptr) return;
    ids_ = v.grid_ids + r * WordsPerRow(GroupsPerRow(v.cols, v.group_size), kGridIdBits);
    for (int k = 1; k < kGridCount; ++k) levels_[k] = GridLevels(bits, k);
  }
  const float* Levels(int64_t k) const { return ids_ == nullptr ? nullptr : levels_[PackedCode(ids_, k, kGridIdBits)]; }

 private:
  const uint32_t* ids_ = nullptr;
  const float* levels_[kGridCount] = {};
};

// sum x[j] * L[q_j] over [j0, j1) of a grid group (L = lv): integer unpack + table lookup on 8
// independent lanes (32-code blocks when j0 is block-aligned, then the scalar tail).
template <int B>
[[gnu::always_inline]] inline float GridGroupDot(const uint32_t* words, int64_t j0, int64_t j1, const float* x,
                                                 const float* lv) {
  alignas(32) uint32_t ibuf[32];
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = j0;
  if ((j0 & 31) == 0) {
    for (; j + 32 <= j1; j += 32) {
      Unpack32<B>(words + (j >> 5) * B, ibuf);
#pragma GCC unroll 32
      for (int l = 0; l < 32; ++l) lanes[l & 7] += lv[ibuf[l]] * x[j + l];
    }
  }
  float qx = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
  for (; j < j1; ++j) qx += lv[PackedCode(words, j, B)] * x[j];
  return qx;
}

// out[j] = m + s * L[q_j] over [j0, j1) of a grid group, by table lookup.
template <int B>
[[gnu::always_inline]] inline void GridGroupDequant(const uint32_t* words, int64_t j0, int64_t j1, float s, float m,
                                                    const float* lv, float* out) {
  alignas(32) uint32_t ibuf[32];
  int64_t j = j0;
  if ((j0 & 31) == 0) {
    for (; j + 32 <= j1; j += 32) {
      Unpack32<B>(words + (j >> 5) * B, ibuf);
#pragma GCC unroll 32
      for (int l = 0; l < 32; ++l) out[j + l] = m + s * lv[ibuf[l]];
    }
  }
  for (; j < j1; ++j) out[j] = m + s * lv[PackedCode(words, j, B)];
}

template <int B>
[[gnu::always_inline]] inline float RowDot(const PackedMatrixView& v, int64_t r, const float* x, const float* xsum) {
  const int64_t g = v.group_size, cols = v.cols, gpr = GroupsPerRow(cols, g);
  const uint32_t* words = v.codes + r * WordsPerRow(cols, B);
  const uint16_t* sc = v.scales + r * gpr;
  const uint16_t* zr = v.zeros + r * gpr;
  const RowGrids grids(v, r, B);
  alignas(32) float buf[32];
  float acc = 0.0f;
  for (int64_t k = 0; k < gpr; ++k) {
    const int64_t j0 = k * g, j1 = std::min(cols, j0 + g);
    if (const float* lv = grids.Levels(k)) {
      acc += HalfToFloat(sc[k]) * GridGroupDot<B>(words, j0, j1, x, lv) + HalfToFloat(zr[k]) * xsum[k];
      continue;
    }
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
    for (; j < j1; ++j) qx += static_cast<float>(PackedCode(words, j, B)) * x[j];
    acc += HalfToFloat(sc[k]) * qx + HalfToFloat(zr[k]) * xsum[k];
  }
  return acc;
}

template <int B>
[[gnu::always_inline]] inline void Dequant(const PackedMatrixView& v, int64_t r, float* out) {
  const int64_t g = v.group_size, cols = v.cols, gpr = GroupsPerRow(cols, g);
  const uint32_t* words = v.codes + r * WordsPerRow(cols, B);
  const RowGrids grids(v, r, B);
  alignas(32) float buf[32];
  for (int64_t k = 0; k < gpr; ++k) {
    const int64_t j0 = k * g, j1 = std::min(cols, j0 + g);
    const float s = HalfToFloat(v.scales[r * gpr + k]), m = HalfToFloat(v.zeros[r * gpr + k]);
    if (const float* lv = grids.Levels(k)) {
      GridGroupDequant<B>(words, j0, j1, s, m, lv, out);
      continue;
    }
    int64_t j = j0;
    if ((j0 & 31) == 0) {
      for (; j + 32 <= j1; j += 32) {
        Unpack32<B>(words + (j >> 5) * B, buf);
#pragma GCC unroll 32
        for (int l = 0; l < 32; ++l) out[j + l] = m + s * buf[l];
      }
    }
    for (; j < j1; ++j) out[j] = m + s * static_cast<float>(PackedCode(words, j, B));
  }
}

#define SLQ_BITS_SWITCH(CALL) \
  switch (v.bits) {           \
    case 2:                   \
      return CALL(2);         \
    case 3:                   \
      return CALL(3);         \
    case 4:                   \
      return CALL(4);         \
    case 5:                   \
      return CALL(5);         \
    case 6:                   \
      return CALL(6);         \
    case 7:                   \
      return CALL(7);         \
    default:                  \
      return CALL(8);         \
  }
#define SLQ_DOT(B) RowDot<B>(v, r, x, xsum)
#define SLQ_DEQ(B) Dequant<B>(v, r, out)

float DotBaseline(const PackedMatrixView& v, int64_t r, const float* x, const float* xsum) { SLQ_BITS_SWITCH(SLQ_DOT) }
void DequantBaseline(const PackedMatrixView& v, int64_t r, float* out) { SLQ_BITS_SWITCH(SLQ_DEQ) }

#if defined(__x86_64__) && defined(__GNUC__)
#define SLQ_HAVE_AVX2_BUILD 1

// 8 codes of B bits (B bytes, byte-aligned since 8 B bits = B bytes) as 8 floats. The 8 codes
// are shifted out of one broadcast 64-bit word with per-lane shifts, so the order in the
// register is [c0 c4 c1 c5 c2 c6 c3 c7] before the final permute restores 0..7.
// `end`: one past the row's last byte. An 8-byte load (one mov) where it stays inside the row;
// only a row's last blocks copy exactly B bytes (a B-byte copy followed by an 8-byte reload
// stalls store forwarding, which made 3/5/6/7 bits slower than the baseline build).
template <int B>
[[gnu::always_inline, gnu::target("avx2,fma")]] inline __m256i Codes8Int(const uint8_t* p, const uint8_t* end) {
  uint64_t v = 0;
  if (p + 8 <= end) {
    std::memcpy(&v, p, 8);
  } else {
    std::memcpy(&v, p, B);
  }
  const __m256i vv = _mm256_set1_epi64x(static_cast<long long>(v));
  const __m256i lo = _mm256_srlv_epi64(vv, _mm256_setr_epi64x(0, B, 2 * B, 3 * B));
  const __m256i hi = _mm256_srlv_epi64(vv, _mm256_setr_epi64x(4 * B, 5 * B, 6 * B, 7 * B));
  const __m256i mixed = _mm256_blend_epi32(lo, _mm256_slli_epi64(hi, 32), 0xAA);
  const __m256i ordered = _mm256_permutevar8x32_epi32(mixed, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
  return _mm256_and_si256(ordered, _mm256_set1_epi32((1 << B) - 1));
}

template <int B>
[[gnu::always_inline, gnu::target("avx2,fma")]] inline __m256 Codes8(const uint8_t* p, const uint8_t* end) {
  return _mm256_cvtepi32_ps(Codes8Int<B>(p, end));
}

// Widths whose grid levels the AVX2 kernels look up in registers (at most 32 levels: four
// 8-lane tables); wider grids use the scalar table lookup.
constexpr int kMaxRegisterGridBits = 5;

// A grid's levels in registers: t[i] holds levels 8i..8i+7 (2 bits: the 4 levels twice).
struct LevelRegs {
  __m256 t[4];
};

template <int B>
[[gnu::always_inline, gnu::target("avx2,fma")]] inline LevelRegs LoadLevels(const float* lv) {
  static_assert(B <= kMaxRegisterGridBits);
  LevelRegs r;
  if constexpr (B == 2) {
    const __m128 l4 = _mm_loadu_ps(lv);
    r.t[0] = _mm256_insertf128_ps(_mm256_castps128_ps256(l4), l4, 1);
  } else {
    for (int i = 0; i < (1 << (B - 3)); ++i) r.t[i] = _mm256_loadu_ps(lv + 8 * i);
  }
  return r;
}

// The levels L[q] of 8 codes of a grid group, looked up in registers: a lane permute per 8-level
// table (it uses the code's low 3 bits), then blends on the code's bits 3 and 4.
template <int B>
[[gnu::always_inline, gnu::target("avx2,fma")]] inline __m256 Levels8(const uint8_t* p, const uint8_t* end,
                                                                      const LevelRegs& r) {
  const __m256i idx = Codes8Int<B>(p, end);
  if constexpr (B <= 3) {
    return _mm256_permutevar8x32_ps(r.t[0], idx);
  } else {
    const __m256 bit3 = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));  // sign bit = code bit 3
    const __m256 l01 =
        _mm256_blendv_ps(_mm256_permutevar8x32_ps(r.t[0], idx), _mm256_permutevar8x32_ps(r.t[1], idx), bit3);
    if constexpr (B == 4) {
      return l01;
    } else {
      const __m256 l23 =
          _mm256_blendv_ps(_mm256_permutevar8x32_ps(r.t[2], idx), _mm256_permutevar8x32_ps(r.t[3], idx), bit3);
      return _mm256_blendv_ps(l01, l23, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 27)));  // code bit 4
    }
  }
}

[[gnu::always_inline, gnu::target("avx2,fma")]] inline float HSum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

template <int B>
[[gnu::always_inline, gnu::target("avx2,fma")]] inline float RowDotAvx2(const PackedMatrixView& v, int64_t r,
                                                                        const float* x, const float* xsum) {
  const int64_t g = v.group_size, cols = v.cols, gpr = GroupsPerRow(cols, g);
  const uint32_t* words = v.codes + r * WordsPerRow(cols, B);
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(words);
  const uint8_t* end = bytes + 4 * WordsPerRow(cols, B);
  const uint16_t* sc = v.scales + r * gpr;
  const uint16_t* zr = v.zeros + r * gpr;
  const RowGrids grids(v, r, B);
  float acc = 0.0f;
  for (int64_t k = 0; k < gpr; ++k) {
    const int64_t j0 = k * g, j1 = std::min(cols, j0 + g);
    if (const float* lv = grids.Levels(k)) {  // grid group: sum x L[q]
      float qx;
      if constexpr (B <= kMaxRegisterGridBits) {  // levels in registers
        const LevelRegs t = LoadLevels<B>(lv);
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int64_t j = j0;
        if ((j0 & 7) == 0) {
          for (; j + 16 <= j1; j += 16) {
            a0 = _mm256_fmadd_ps(Levels8<B>(bytes + (j >> 3) * B, end, t), _mm256_loadu_ps(x + j), a0);
            a1 = _mm256_fmadd_ps(Levels8<B>(bytes + ((j >> 3) + 1) * B, end, t), _mm256_loadu_ps(x + j + 8), a1);
          }
          for (; j + 8 <= j1; j += 8) {
            a0 = _mm256_fmadd_ps(Levels8<B>(bytes + (j >> 3) * B, end, t), _mm256_loadu_ps(x + j), a0);
          }
        }
        qx = HSum(_mm256_add_ps(a0, a1));
        for (; j < j1; ++j) qx += lv[PackedCode(words, j, B)] * x[j];
      } else {  // 64..256 levels: table lookup (an AVX2 gather measured slower)
        qx = GridGroupDot<B>(words, j0, j1, x, lv);
      }
      acc += HalfToFloat(sc[k]) * qx + HalfToFloat(zr[k]) * xsum[k];
      continue;
    }
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t j = j0;
    if ((j0 & 7) == 0) {
      for (; j + 16 <= j1; j += 16) {
        a0 = _mm256_fmadd_ps(Codes8<B>(bytes + (j >> 3) * B, end), _mm256_loadu_ps(x + j), a0);
        a1 = _mm256_fmadd_ps(Codes8<B>(bytes + ((j >> 3) + 1) * B, end), _mm256_loadu_ps(x + j + 8), a1);
      }
      for (; j + 8 <= j1; j += 8) {
        a0 = _mm256_fmadd_ps(Codes8<B>(bytes + (j >> 3) * B, end), _mm256_loadu_ps(x + j), a0);
      }
    }
    float qx = HSum(_mm256_add_ps(a0, a1));
    for (; j < j1; ++j) qx += static_cast<float>(PackedCode(words, j, B)) * x[j];
    acc += HalfToFloat(sc[k]) * qx + HalfToFloat(zr[k]) * xsum[k];
  }
  return acc;
}

template <int B>
[[gnu::always_inline, gnu::target("avx2,fma")]] inline void DequantAvx2Bits(const PackedMatrixView& v, int64_t r,
                                                                            float* out) {
  const int64_t g = v.group_size, cols = v.cols, gpr = GroupsPerRow(cols, g);
  const uint32_t* words = v.codes + r * WordsPerRow(cols, B);
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(words);
  const uint8_t* end = bytes + 4 * WordsPerRow(cols, B);
  const RowGrids grids(v, r, B);
  for (int64_t k = 0; k < gpr; ++k) {
    const int64_t j0 = k * g, j1 = std::min(cols, j0 + g);
    const float s = HalfToFloat(v.scales[r * gpr + k]), m = HalfToFloat(v.zeros[r * gpr + k]);
    const __m256 vs = _mm256_set1_ps(s), vm = _mm256_set1_ps(m);
    int64_t j = j0;
    if (const float* lv = grids.Levels(k)) {
      if constexpr (B <= kMaxRegisterGridBits) {
        // s * L[q] is exact in fp32 (two 11-bit mantissas: levels are fp16-exact), so the FMA
        // rounds like m + s * L[q].
        const LevelRegs t = LoadLevels<B>(lv);
        if ((j0 & 7) == 0) {
          for (; j + 8 <= j1; j += 8)
            _mm256_storeu_ps(out + j, _mm256_fmadd_ps(Levels8<B>(bytes + (j >> 3) * B, end, t), vs, vm));
        }
        for (; j < j1; ++j) out[j] = m + s * lv[PackedCode(words, j, B)];
      } else {
        GridGroupDequant<B>(words, j0, j1, s, m, lv, out);
      }
      continue;
    }
    if ((j0 & 7) == 0) {
      // s * code is exact in fp32 (11-bit x 8-bit mantissas), so the FMA rounds like m + s * code.
      for (; j + 8 <= j1; j += 8)
        _mm256_storeu_ps(out + j, _mm256_fmadd_ps(Codes8<B>(bytes + (j >> 3) * B, end), vs, vm));
    }
    for (; j < j1; ++j) out[j] = m + s * static_cast<float>(PackedCode(words, j, B));
  }
}

#define SLQ_DOT_AVX2(B) RowDotAvx2<B>(v, r, x, xsum)
#define SLQ_DEQ_AVX2(B) DequantAvx2Bits<B>(v, r, out)
[[gnu::target("avx2,fma")]] float DotAvx2(const PackedMatrixView& v, int64_t r, const float* x, const float* xsum) {
  SLQ_BITS_SWITCH(SLQ_DOT_AVX2)
}
[[gnu::target("avx2,fma")]] void DequantAvx2(const PackedMatrixView& v, int64_t r, float* out) {
  SLQ_BITS_SWITCH(SLQ_DEQ_AVX2)
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

}  // namespace slq::kernels
