// Kernels of gpu_ops.h against CPU references. PagedAttention's flash-decoding kernel against a double-precision CPU
// reference and against the reference kernel, on random paged K/V: contexts 1, 16, 300 and 2048, GQA groups of 1, 3, 4
// and 8 query heads, head_dim 64 / 128 / 256, fp16 and bf16, split counts 1..64, a sliding window, a prefill-shaped
// (causal) launch and a decode batch of sequences of different lengths. ArgmaxLogprob split over several blocks per row
// (and in one block) against the host's argmax and log-softmax, ties included. DequantPackedToAct (gpu_eval_ops.h)
// bit-identical to kernels::DequantRow rounded to the activation type, with and without grid ids. Label gpu: every
// test skips (GTEST_SKIP) when no GPU is present.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/dequant_ref.h"
#include "kernels/grids.h"
#include "kernels/repack.h"
#include "kernels/test_matrix.h"
#include "server/common/half.h"
#include "server/gpu/gpu_eval_ops.h"
#include "server/gpu/gpu_model.h"
#include "server/gpu/gpu_ops.h"

namespace slq::gpu {
namespace {

#define SKIP_WITHOUT_GPU()                                        \
  do {                                                            \
    std::string why_;                                             \
    if (!GpuAvailable(&why_)) GTEST_SKIP() << "no GPU: " << why_; \
  } while (0)

#define CUDA_OK(x) ASSERT_EQ((x), cudaSuccess) << #x

struct Shape {
  int64_t num_heads, num_kv_heads, head_dim;
};

// A paged cache of two layers (attention reads layer 1) with its blocks in shuffled order, the
// queries, and per-token metadata; all on the device, with fp32 host copies for the reference.
class AttentionFixture {
 public:
  static constexpr int64_t kLayers = 2, kLayer = 1, kBlockSize = 16;

  AttentionFixture(Shape sh, ActType act, std::vector<int64_t> seq_lens) : sh_(sh), act_(act), lens_(seq_lens) {}
  ~AttentionFixture() {
    for (void* p : allocs_) cudaFree(p);
  }

  // Tokens to score: (sequence, position) pairs.
  struct Tok {
    int64_t seq, pos;
  };

  void Build(const std::vector<Tok>& toks) {
    toks_ = toks;
    kv_dim_ = sh_.num_kv_heads * sh_.head_dim;
    int64_t nblocks = 0;
    for (int64_t n : lens_) nblocks += (n + kBlockSize - 1) / kBlockSize;
    std::vector<int32_t> ids(static_cast<size_t>(nblocks));
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), std::mt19937(7));
    int64_t b = 0;
    for (int64_t n : lens_) {
      tables_.emplace_back();
      for (int64_t i = 0; i < (n + kBlockSize - 1) / kBlockSize; ++i) tables_.back().push_back(ids[b++]);
    }
    const int64_t cache_elems = nblocks * kLayers * 2 * kBlockSize * kv_dim_;
    void* cache = Alloc(cache_elems * 2);
    FillUniformAct(cache, cache_elems, 11, -2.0f, 2.0f, act_, nullptr);
    cache_f32_ = ToHost(cache, cache_elems);
    kv_.base = cache;
    kv_.num_layers = kLayers;
    kv_.block_size = kBlockSize;
    kv_.kv_dim = kv_dim_;
    const int64_t T = static_cast<int64_t>(toks.size()), qd = sh_.num_heads * sh_.head_dim;
    q_ = static_cast<float*>(Alloc(T * qd * 4));
    FillUniformF32(q_, T * qd, 12, -1.5f, 1.5f, nullptr);
    q_host_.resize(static_cast<size_t>(T * qd));
    ASSERT_EQ(cudaMemcpy(q_host_.data(), q_, T * qd * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    // meta: pos [T], bt_start [T], bt (all tables).
    std::vector<int32_t> meta;
    std::vector<int64_t> starts;
    int64_t off = 0;
    for (const auto& t : tables_) {
      starts.push_back(off);
      off += static_cast<int64_t>(t.size());
    }
    for (const Tok& t : toks) meta.push_back(static_cast<int32_t>(t.pos));
    for (const Tok& t : toks) meta.push_back(static_cast<int32_t>(starts[t.seq]));
    for (const auto& t : tables_) meta.insert(meta.end(), t.begin(), t.end());
    auto* md = static_cast<int32_t*>(Alloc(static_cast<int64_t>(meta.size()) * 4));
    ASSERT_EQ(cudaMemcpy(md, meta.data(), meta.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
    meta_.pos = md;
    meta_.bt_start = md + T;
    meta_.bt = md + 2 * T;
    out_ = Alloc(T * qd * 2);
    partial_ = static_cast<float*>(Alloc(T * kMaxAttentionSplits * sh_.num_heads * (sh_.head_dim + 2) * 4));
    counters_ = static_cast<int32_t*>(Alloc(T * sh_.num_kv_heads * 4));
    ASSERT_EQ(cudaMemset(counters_, 0, T * sh_.num_kv_heads * 4), cudaSuccess);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  }

  // Attention output [T, q_dim] (fp32 of the act result) of one launch.
  std::vector<float> Run(AttentionImpl impl, int64_t splits, int64_t window = 0) {
    AttentionArgs a;
    a.q = q_;
    a.out = out_;
    a.T = static_cast<int64_t>(toks_.size());
    a.num_heads = sh_.num_heads;
    a.num_kv_heads = sh_.num_kv_heads;
    a.head_dim = sh_.head_dim;
    a.layer = kLayer;
    a.sliding_window = window;
    a.impl = impl;
    a.splits = splits;
    a.partial = partial_;
    a.counters = counters_;
    cudaMemset(out_, 0xff, a.T * sh_.num_heads * sh_.head_dim * 2);  // NaN-ish: unwritten outputs fail
    PagedAttention(a, meta_, kv_, act_, nullptr);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    return ToHost(out_, a.T * sh_.num_heads * sh_.head_dim);
  }

  // Double-precision reference of token i.
  std::vector<double> Reference(int64_t window = 0) const {
    const int64_t D = sh_.head_dim, G = sh_.num_heads / sh_.num_kv_heads, qd = sh_.num_heads * D;
    std::vector<double> out(toks_.size() * static_cast<size_t>(qd));
    for (size_t i = 0; i < toks_.size(); ++i) {
      const Tok& tk = toks_[i];
      const int64_t first = window > 0 ? std::max<int64_t>(0, tk.pos - window + 1) : 0;
      for (int64_t h = 0; h < sh_.num_heads; ++h) {
        const int64_t kvh = h / G;
        std::vector<double> sc;
        for (int64_t j = first; j <= tk.pos; ++j) {
          const float* k = Row(tk.seq, j, 0) + kvh * D;
          double d = 0;
          for (int64_t e = 0; e < D; ++e) d += static_cast<double>(q_host_[i * qd + h * D + e]) * k[e];
          sc.push_back(d / std::sqrt(static_cast<double>(D)));
        }
        const double mx = *std::max_element(sc.begin(), sc.end());
        double sum = 0;
        for (double& s : sc) sum += (s = std::exp(s - mx));
        for (int64_t e = 0; e < D; ++e) {
          double o = 0;
          for (int64_t j = first; j <= tk.pos; ++j) o += sc[j - first] * Row(tk.seq, j, 1)[kvh * D + e];
          out[i * qd + h * D + e] = o / sum;
        }
      }
    }
    return out;
  }

  const std::vector<int32_t>& Counters() {
    counters_host_.resize(toks_.size() * static_cast<size_t>(sh_.num_kv_heads));
    EXPECT_EQ(cudaMemcpy(counters_host_.data(), counters_, counters_host_.size() * 4, cudaMemcpyDeviceToHost),
              cudaSuccess);
    return counters_host_;
  }

 private:
  void* Alloc(int64_t bytes) {
    void* p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, static_cast<size_t>(std::max<int64_t>(bytes, 256))), cudaSuccess);
    allocs_.push_back(p);
    return p;
  }
  std::vector<float> ToHost(const void* act_buf, int64_t n) {
    float* f = nullptr;
    EXPECT_EQ(cudaMalloc(&f, static_cast<size_t>(n) * 4), cudaSuccess);
    ActToFloat(act_buf, n, f, act_, nullptr);
    std::vector<float> h(static_cast<size_t>(n));
    EXPECT_EQ(cudaMemcpy(h.data(), f, static_cast<size_t>(n) * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    cudaFree(f);
    return h;
  }
  // K (kind 0) or V (kind 1) row of position j of sequence seq, layer kLayer.
  const float* Row(int64_t seq, int64_t j, int kind) const {
    const int64_t blk = tables_[seq][j / kBlockSize];
    return cache_f32_.data() + ((blk * kLayers + kLayer) * 2 + kind) * kBlockSize * kv_dim_ +
           (j % kBlockSize) * kv_dim_;
  }

  Shape sh_;
  ActType act_;
  std::vector<int64_t> lens_;
  std::vector<Tok> toks_;
  std::vector<std::vector<int32_t>> tables_;
  int64_t kv_dim_ = 0;
  std::vector<float> cache_f32_, q_host_;
  std::vector<int32_t> counters_host_;
  KvView kv_;
  TokenMeta meta_;
  float* q_ = nullptr;
  void* out_ = nullptr;
  float* partial_ = nullptr;
  int32_t* counters_ = nullptr;
  std::vector<void*> allocs_;
};

// max |got - want| over max |want|.
double RelErr(const std::vector<float>& got, const std::vector<double>& want) {
  double err = 0, mx = 1e-30;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    err = std::max(err, std::fabs(got[i] - want[i]));
    mx = std::max(mx, std::fabs(want[i]));
  }
  return err / mx;
}

// Output rounding of the activation type (plus fp32 accumulation); the reference kernel is held
// to the same bound.
double Tol(ActType act) { return act == ActType::kF16 ? 2e-3 : 1.5e-2; }

std::string Name(Shape s, ActType act, int64_t ctx) {
  return std::to_string(s.num_heads) + "/" + std::to_string(s.num_kv_heads) + " heads, d " +
         std::to_string(s.head_dim) + (act == ActType::kF16 ? ", fp16" : ", bf16") + ", context " + std::to_string(ctx);
}

TEST(FlashDecode, SupportedShapes) {
  EXPECT_TRUE(FlashDecodeSupported(128, 32, 8));
  EXPECT_TRUE(FlashDecodeSupported(64, 6, 2));
  EXPECT_TRUE(FlashDecodeSupported(256, 16, 2));
  EXPECT_FALSE(FlashDecodeSupported(16, 8, 4));    // head_dim
  EXPECT_FALSE(FlashDecodeSupported(96, 32, 8));   // head_dim
  EXPECT_FALSE(FlashDecodeSupported(128, 32, 2));  // 16 q heads per kv head
}

TEST(FlashDecode, SplitsFollowContextAndBatch) {
  SKIP_WITHOUT_GPU();
  EXPECT_EQ(AttentionSplits(1, 8, 16, 512), 1);
  EXPECT_EQ(AttentionSplits(1, 8, kMinKeysPerSplit, 512), 1);
  EXPECT_EQ(AttentionSplits(1, 8, 300, 512), 4);
  const int64_t s2k = AttentionSplits(1, 8, 2048, 512);
  EXPECT_GE(s2k, 4);
  EXPECT_LE(s2k, 2048 / kMinKeysPerSplit);
  EXPECT_EQ(AttentionSplits(2048, 8, 2048, 512), 1);  // prefill: enough blocks already
  EXPECT_LE(AttentionSplits(64, 8, 4096, 512) * 64, 512);
  EXPECT_EQ(AttentionSplits(1, 8, 1 << 20, 512), kMaxAttentionSplits);
}

// Decode: one token per sequence at the end of its context, every split count that the context
// allows, against the reference and the reference kernel.
TEST(FlashDecode, DecodeMatchesReference) {
  SKIP_WITHOUT_GPU();
  const Shape shapes[] = {{32, 8, 128}, {6, 2, 64}, {8, 8, 64}, {16, 2, 256}};
  for (const Shape& sh : shapes) {
    for (ActType act : {ActType::kF16, ActType::kBF16}) {
      for (int64_t ctx : {1, 16, 300, 2048}) {
        if (sh.head_dim == 256 && ctx == 2048 && act == ActType::kBF16) continue;  // keep the run short
        SCOPED_TRACE(Name(sh, act, ctx));
        AttentionFixture f(sh, act, {ctx});
        f.Build({{0, ctx - 1}});
        const std::vector<double> want = f.Reference();
        const double ref_err = RelErr(f.Run(AttentionImpl::kReference, 1), want);
        EXPECT_LE(ref_err, Tol(act));
        for (int64_t s : {int64_t{1}, int64_t{2}, int64_t{4}, int64_t{16}, kMaxAttentionSplits,
                          AttentionSplits(1, sh.num_kv_heads, ctx, 512)}) {
          const double err = RelErr(f.Run(AttentionImpl::kAuto, s), want);
          EXPECT_LE(err, Tol(act)) << "splits " << s << " (reference kernel " << ref_err << ")";
        }
        for (int32_t c : f.Counters()) EXPECT_EQ(c, 0);
      }
    }
  }
}

// A decode batch of sequences of different lengths (some shorter than the split count).
TEST(FlashDecode, BatchOfUnequalContexts) {
  SKIP_WITHOUT_GPU();
  for (ActType act : {ActType::kF16, ActType::kBF16}) {
    AttentionFixture f({32, 8, 128}, act, {1, 5, 130, 700, 2048});
    f.Build({{0, 0}, {1, 4}, {2, 129}, {3, 699}, {4, 2047}});
    const std::vector<double> want = f.Reference();
    for (int64_t s : {1, 8, 32}) {
      EXPECT_LE(RelErr(f.Run(AttentionImpl::kAuto, s), want), Tol(act)) << "splits " << s;
    }
    for (int32_t c : f.Counters()) EXPECT_EQ(c, 0);
  }
}

// Prefill shape: every position of one sequence (causal), and a sliding window.
TEST(FlashDecode, CausalPrefillAndSlidingWindow) {
  SKIP_WITHOUT_GPU();
  AttentionFixture f({6, 2, 64}, ActType::kF16, {300});
  std::vector<AttentionFixture::Tok> toks;
  for (int64_t p = 0; p < 300; ++p) toks.push_back({0, p});
  f.Build(toks);
  const std::vector<double> want = f.Reference();
  EXPECT_LE(RelErr(f.Run(AttentionImpl::kAuto, 1), want), Tol(ActType::kF16));
  EXPECT_LE(RelErr(f.Run(AttentionImpl::kAuto, 2), want), Tol(ActType::kF16));
  const std::vector<double> win = f.Reference(/*window=*/100);
  EXPECT_LE(RelErr(f.Run(AttentionImpl::kReference, 1, 100), win), Tol(ActType::kF16));
  EXPECT_LE(RelErr(f.Run(AttentionImpl::kAuto, 1, 100), win), Tol(ActType::kF16));
  EXPECT_LE(RelErr(f.Run(AttentionImpl::kAuto, 4, 100), win), Tol(ActType::kF16));
}

// Rows of 128256 random logits with planted maxima (one tie: the lower id wins).
TEST(ArgmaxLogprob, MatchesHostInOneAndManyBlocks) {
  SKIP_WITHOUT_GPU();
  for (int64_t vocab : {int64_t{100}, int64_t{8192}, int64_t{128256}}) {
    for (int64_t R : {int64_t{1}, int64_t{3}, int64_t{300}}) {
      SCOPED_TRACE("vocab " + std::to_string(vocab) + " rows " + std::to_string(R));
      std::mt19937 rng(static_cast<uint32_t>(vocab + R));
      std::normal_distribution<float> nd(0.0f, 3.0f);
      std::vector<float> h(static_cast<size_t>(R * vocab));
      for (float& v : h) v = nd(rng);
      for (int64_t r = 0; r < R; ++r) {
        float* row = h.data() + r * vocab;
        const int64_t a = static_cast<int64_t>(rng() % vocab), b = static_cast<int64_t>(rng() % vocab);
        row[a] = 40.0f;
        if (r % 2 == 0) row[b] = 40.0f;  // a tie on even rows
      }
      float *dl = nullptr, *lp = nullptr, *part = nullptr;
      int32_t *ids = nullptr, *cnt = nullptr;
      CUDA_OK(cudaMalloc(&dl, h.size() * 4));
      CUDA_OK(cudaMalloc(&lp, R * 4));
      CUDA_OK(cudaMalloc(&ids, R * 4));
      CUDA_OK(cudaMalloc(&part, R * kArgmaxMaxParts * 3 * 4));
      CUDA_OK(cudaMalloc(&cnt, R * 4));
      CUDA_OK(cudaMemset(cnt, 0, R * 4));
      CUDA_OK(cudaMemcpy(dl, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
      for (bool many : {false, true}) {
        ArgmaxLogprob(dl, R, vocab, ids, lp, many ? part : nullptr, many ? cnt : nullptr, nullptr);
        ArgmaxLogprob(dl, R, vocab, ids, lp, many ? part : nullptr, many ? cnt : nullptr, nullptr);  // reuse
        CUDA_OK(cudaDeviceSynchronize());
        std::vector<int32_t> gi(static_cast<size_t>(R)), gc(static_cast<size_t>(R));
        std::vector<float> gl(static_cast<size_t>(R));
        CUDA_OK(cudaMemcpy(gi.data(), ids, R * 4, cudaMemcpyDeviceToHost));
        CUDA_OK(cudaMemcpy(gl.data(), lp, R * 4, cudaMemcpyDeviceToHost));
        CUDA_OK(cudaMemcpy(gc.data(), cnt, R * 4, cudaMemcpyDeviceToHost));
        for (int64_t r = 0; r < R; ++r) {
          const float* row = h.data() + r * vocab;
          const int64_t want = std::max_element(row, row + vocab) - row;  // first maximum
          double sum = 0;
          for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - row[want]);
          EXPECT_EQ(gi[r], want) << "row " << r << (many ? " (many blocks)" : " (one block)");
          EXPECT_NEAR(gl[r], -std::log(sum), 1e-4) << "row " << r;
          EXPECT_EQ(gc[r], 0);
        }
      }
      if (vocab == 128256 && R == 1) {
        EXPECT_GT(ArgmaxParts(R, vocab), 1);
      }
      cudaFree(dl);
      cudaFree(lp);
      cudaFree(ids);
      cudaFree(part);
      cudaFree(cnt);
    }
  }
}

// Random grid ids 0..3 (or all 0) for every group of m: a packed 2-bit stream per row.
std::vector<uint32_t> GridIds(const kernels::OwnedPacked& m, bool all_zero, std::mt19937_64& rng) {
  const int64_t gpr = kernels::GroupsPerRow(m.cols, m.group_size);
  const int64_t wpr = kernels::WordsPerRow(gpr, kernels::kGridIdBits);
  std::vector<uint32_t> ids(static_cast<size_t>(m.rows * wpr), 0u);
  std::uniform_int_distribution<uint32_t> id(0, kernels::kGridCount - 1);
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t g = 0; g < gpr; ++g) {
      const uint32_t v = all_zero ? 0u : id(rng);
      ids[static_cast<size_t>(r * wpr + g * kernels::kGridIdBits / 32)] |= v << (g * kernels::kGridIdBits % 32);
    }
  }
  return ids;
}

// The eval backend's slot change dequantizes on the device: every element must be the oracle's
// fp32 weight (kernels::DequantRow) rounded once to the activation type. Every width, group
// sizes 64 / 128 / 48 (short last group) / per-row, no ids, random ids, all-zero ids.
TEST(DequantPackedToAct, BitIdenticalToTheCpuOracleWithAndWithoutGridIds) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(23);
  {  // The oracle must honour grid ids, else the grid cases below compare against the wrong function.
    kernels::OwnedPacked m = kernels::RandomPacked(1, 64, 4, 64, rng);
    std::fill(m.codes.begin(), m.codes.end(), 0u);
    kernels::SetCode(m, 0, 0, 1);
    const uint32_t one[1] = {1u};
    kernels::PackedMatrixView v = m.View();
    v.grid_ids = one;
    ASSERT_NE(kernels::DequantWeight(v, 0, 0), kernels::DequantWeight(m.View(), 0, 0))
        << "kernels::DequantWeight ignores grid ids: these cases need helper F's grid-aware oracle";
  }
  for (int bits = 2; bits <= 8; ++bits) {
    for (const int64_t g : {64, 128, 48, 200}) {
      for (const int mode : {0, 1, 2}) {  // no ids, random ids, all-zero ids
        const int64_t rows = 37, cols = 200;
        kernels::OwnedPacked m = kernels::RandomPacked(rows, cols, bits, g, rng);
        const std::vector<uint32_t> ids = mode == 0 ? std::vector<uint32_t>{} : GridIds(m, mode == 2, rng);
        kernels::PackedMatrixView v = m.View();
        v.grid_ids = ids.empty() ? nullptr : ids.data();
        const std::vector<float> levels = kernels::GridLevelTable(bits);
        void *dc = nullptr, *ds = nullptr, *dz = nullptr, *di = nullptr, *dl = nullptr, *out = nullptr;
        CUDA_OK(cudaMalloc(&dc, m.codes.size() * 4));
        CUDA_OK(cudaMalloc(&ds, m.scales.size() * 2));
        CUDA_OK(cudaMalloc(&dz, m.zeros.size() * 2));
        CUDA_OK(cudaMalloc(&di, std::max<size_t>(1, ids.size()) * 4));
        CUDA_OK(cudaMalloc(&dl, levels.size() * 4));
        CUDA_OK(cudaMalloc(&out, static_cast<size_t>(rows * cols) * 2));
        CUDA_OK(cudaMemcpy(dc, m.codes.data(), m.codes.size() * 4, cudaMemcpyHostToDevice));
        CUDA_OK(cudaMemcpy(ds, m.scales.data(), m.scales.size() * 2, cudaMemcpyHostToDevice));
        CUDA_OK(cudaMemcpy(dz, m.zeros.data(), m.zeros.size() * 2, cudaMemcpyHostToDevice));
        if (!ids.empty()) {
          CUDA_OK(cudaMemcpy(di, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice));
        }
        CUDA_OK(cudaMemcpy(dl, levels.data(), levels.size() * 4, cudaMemcpyHostToDevice));
        for (const ActType act : {ActType::kF16, ActType::kBF16}) {
          CUDA_OK(cudaMemset(out, 0xFF, static_cast<size_t>(rows * cols) * 2));
          DequantPackedToAct(static_cast<const uint32_t*>(dc), static_cast<const uint16_t*>(ds),
                             static_cast<const uint16_t*>(dz), ids.empty() ? nullptr : static_cast<const uint32_t*>(di),
                             ids.empty() ? nullptr : static_cast<const float*>(dl), rows, cols, bits, g, out, act,
                             nullptr);
          CUDA_OK(cudaDeviceSynchronize());
          std::vector<uint16_t> got(static_cast<size_t>(rows * cols));
          CUDA_OK(cudaMemcpy(got.data(), out, got.size() * 2, cudaMemcpyDeviceToHost));
          std::vector<float> row(static_cast<size_t>(cols));
          int64_t diff = 0;
          for (int64_t r = 0; r < rows; ++r) {
            kernels::DequantRow(v, r, row.data());
            for (int64_t c = 0; c < cols; ++c) {
              const uint16_t want = act == ActType::kF16 ? FloatToHalf(row[c]) : FloatToBf16(row[c]);
              diff += got[static_cast<size_t>(r * cols + c)] != want;
            }
          }
          EXPECT_EQ(diff, 0) << "bits " << bits << " g " << g << " ids " << mode << " "
                             << (act == ActType::kF16 ? "f16" : "bf16");
        }
        for (void* p : {dc, ds, dz, di, dl, out}) cudaFree(p);
      }
    }
  }
}

}  // namespace
}  // namespace slq::gpu
