// slq_quant_matvec_bench: batch-1 matvec time of packed (slq-packed-v1) weights vs fp32 on one
// core, per bitwidth and shape, in one process so that all variants share the machine's load:
//   fp32 sgemv     OpenBLAS cblas_sgemv over the fp32 weights (what DenseLinear runs)
//   previous       the per-weight shift/mask loop QuantizedLinear ran before packed_dot.h
//                  (copied here verbatim as the "before" baseline)
//   baseline ISA   packed_dot.h's 32-code block kernel, x86-64 baseline (SSE2) build
//   avx2           the same kernel's AVX2+FMA build (when the CPU has it)
// Each figure is the median over --reps timings of a batch of calls (ns of this thread's CPU
// time per call), single thread (run with OPENBLAS_NUM_THREADS=1 SLQ_THREADS=1). Also the
// op-level QuantizedLinear / DenseLinear Forward (n = 1, through the runtime's thread pool:
// with SLQ_THREADS=1 it runs inline, so the CPU clock sees all of it) for the same shapes.
//
//   OPENBLAS_NUM_THREADS=1 slq_quant_matvec_bench --shapes 384x128,128x384,1024x384,4096x4096
#include <cblas.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_split.h"
#include "kernels/packed_dot.h"
#include "server/common/half.h"
#include "server/model/linear.h"
#include "server/quant/packing.h"
#include "server/quant/quantized_linear.h"
#include "server/quant/quantizer.h"

namespace slq::quant {
namespace {

// The kernel QuantizedLinear ran before packed_dot.h (commit 3a863b6), for the "before" column.
template <int B>
float PreviousRowDot(const kernels::PackedMatrixView& v, int64_t r, const float* x, const float* xsum) {
  const int64_t gpr = kernels::GroupsPerRow(v.cols, v.group_size);
  const uint32_t* words = v.codes + r * kernels::WordsPerRow(v.cols, B);
  const uint16_t* scales = v.scales + r * gpr;
  const uint16_t* zeros = v.zeros + r * gpr;
  constexpr uint64_t kMask = (1u << B) - 1;
  float acc = 0.0f;
  for (int64_t k = 0; k < gpr; ++k) {
    const int64_t j0 = k * v.group_size, j1 = std::min(v.cols, j0 + v.group_size);
    float qx = 0.0f;
    for (int64_t j = j0; j < j1; ++j) {
      const uint64_t bit = static_cast<uint64_t>(j) * B;
      const uint64_t w = bit >> 5, sh = bit & 31;
      uint64_t bits = words[w] >> sh;
      if (sh + B > 32) bits |= static_cast<uint64_t>(words[w + 1]) << (32 - sh);
      qx += static_cast<float>(bits & kMask) * x[j];
    }
    acc += HalfToFloat(scales[k]) * qx + HalfToFloat(zeros[k]) * xsum[k];
  }
  return acc;
}

float PreviousDot(const kernels::PackedMatrixView& v, int64_t r, const float* x, const float* xsum) {
  switch (v.bits) {
    case 2:
      return PreviousRowDot<2>(v, r, x, xsum);
    case 3:
      return PreviousRowDot<3>(v, r, x, xsum);
    case 4:
      return PreviousRowDot<4>(v, r, x, xsum);
    case 5:
      return PreviousRowDot<5>(v, r, x, xsum);
    case 6:
      return PreviousRowDot<6>(v, r, x, xsum);
    case 7:
      return PreviousRowDot<7>(v, r, x, xsum);
    default:
      return PreviousRowDot<8>(v, r, x, xsum);
  }
}

// This thread's CPU time (ns): on a shared, oversubscribed machine wall time mostly measures
// the wait for a core, and more so for longer timings; the thread's CPU clock does not.
double ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

template <typename F>
double MedianNs(F&& f, int iters, int reps) {
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const double t0 = ThreadCpuNs();
    for (int i = 0; i < iters; ++i) f();
    t.push_back((ThreadCpuNs() - t0) / iters);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

volatile float g_sink = 0;

}  // namespace
}  // namespace slq::quant

int main(int argc, char** argv) {
  using namespace slq;
  using namespace slq::quant;
  CLI::App app{"slq packed matvec benchmark (batch 1)"};
  std::string shapes = "384x128,128x384,1024x384,384x1024,4096x4096";
  int64_t group = 128;
  int reps = 7;
  double min_bytes = 64e6;  // bytes of fp32 weights streamed per timing (sets iterations)
  bool grids = false;
  app.add_option("--shapes", shapes, "OUTxIN list");
  app.add_option("--group-size", group, "group size");
  app.add_option("--reps", reps, "timings per figure (median)");
  app.add_flag("--grids", grids, "per-group grids (Grid Games): the packed kernels' level-lookup paths");
  CLI11_PARSE(app, argc, argv);

  std::printf(
      "packed kernel ISA chosen at run time: %s; group size %ld%s; ns of thread CPU time per matvec (median of %d)\n\n",
      kernels::PackedKernelIsa(), static_cast<long>(group), grids ? ", grids" : "", reps);
  std::printf(
      "| shape (out x in) | bits | fp32 sgemv | previous | baseline ISA | avx2 | previous / fp32 "
      "| new / fp32 | speedup vs previous | op fp32 | op packed |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (absl::string_view sv : absl::StrSplit(shapes, ',')) {
    std::vector<std::string> d = absl::StrSplit(sv, 'x');
    const int64_t out = std::stoll(d.at(0)), in = std::stoll(d.at(1));
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0, 1);
    std::vector<float> w(static_cast<size_t>(out * in)), x(static_cast<size_t>(in)), y(static_cast<size_t>(out));
    for (float& v : w) v = nd(rng);
    for (float& v : x) v = nd(rng);
    const int iters = std::max<int>(1, static_cast<int>(min_bytes / (4.0 * out * in)));
    const double fp32 = MedianNs(
        [&] {
          cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(out), static_cast<int>(in), 1.0f, w.data(),
                      static_cast<int>(in), x.data(), 1, 0.0f, y.data(), 1);
          g_sink = y[0];
        },
        iters, reps);
    DenseLinear dense(out, in, w);
    const double op_fp32 = MedianNs(
        [&] {
          dense.Forward(x.data(), 1, y.data());
          g_sink = y[0];
        },
        iters, reps);
    for (int bits = 2; bits <= 8; ++bits) {
      QuantConfig cfg;
      cfg.bits = bits;
      cfg.group_size = group;
      cfg.grids = grids;
      auto q = QuantizeMatrix(w.data(), out, in, cfg);
      if (!q.ok()) return 1;
      const kernels::PackedMatrixView v = q->View();
      const int64_t gpr = kernels::GroupsPerRow(in, v.group_size);
      std::vector<float> xsum(static_cast<size_t>(gpr), 0.0f);
      for (int64_t k = 0; k < gpr; ++k) {
        for (int64_t j = k * v.group_size; j < std::min(in, (k + 1) * v.group_size); ++j) xsum[k] += x[j];
      }
      auto run = [&](auto dot) {
        return MedianNs(
            [&] {
              for (int64_t r = 0; r < out; ++r) y[r] = dot(v, r, x.data(), xsum.data());
              g_sink = y[0];
            },
            iters, reps);
      };
      const double prev = run(PreviousDot);
      kernels::ForceBaselinePackedKernels(true);
      const double base = run(kernels::PackedRowDotFast);
      kernels::ForceBaselinePackedKernels(false);
      const double avx = run(kernels::PackedRowDotFast);
      QuantizedLinear op(std::move(*q));
      const double op_q = MedianNs(
          [&] {
            op.Forward(x.data(), 1, y.data());
            g_sink = y[0];
          },
          iters, reps);
      const double best = std::min(base, avx);
      std::printf("| %ldx%ld | %d | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.1fx | %.0f | %.0f |\n",
                  static_cast<long>(out), static_cast<long>(in), bits, fp32, prev, base, avx, prev / fp32, best / fp32,
                  prev / best, op_fp32, op_q);
    }
  }
  return 0;
}
