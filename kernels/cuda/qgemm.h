// Fused dequantize + matmul on the GPU for "slq-gpu-v1" repacked weights (see kernels/repack.h).
//
//   y [n, rows] = x [n, cols] * W'^T, W'(r, c) = zero + scale * q, fp32 accumulation on the
//   tensor cores (mma.sync m16n8k16), activations and output fp16 or bf16, n = 1..any.
//   Grid matrices (per-group grid ids, kernels/grids.h): W'(r, c) = zero + scale * L[q] with L
//   the group's grid. kAuto (n <= kStreamAutoMaxN) and kStream (any n) run the streaming
//   kernel's grid variant: the A operand is the level itself, looked up in shared memory (two
//   codes at a time for widths <= 3 by default), exact: fp16 holds every level; bf16 does not
//   (8 significant bits, the levels up to 11), so each level is split exactly as hi + lo
//   (kernels/grid_split.h) and each fragment takes two mma into one fp32 accumulator; s, z are
//   folded in fp32. Otherwise (larger n; kTiled / kLegacyGemv / kStreamSmem) they run the tiled
//   kernel, which looks the level up in a shared-memory copy of the width's level table and
//   dequantizes in fp32 (one rounding to the activation type).
//   Three kernels (QGemmOptions::kernel): the streaming kernel (default for n <= 16,
//   qgemm_stream.cu) and the legacy small-batch kernel (n <= 8) feed the codes to the mma as
//   exact integers plus a constant and apply scale/zero per group in fp32 on the accumulators;
//   the tiled kernel (default for n > 16; tokens tiled by 16/32/64) dequantizes in registers
//   to the activation type (fp16: exact code, one rounding of s*q+z; bf16: the same in bf16).
// Group sizes 32, 64 and 128 (kernels/repack.h). Group size 32 runs the streaming kernel (its
// G = 32 instantiations, shallower register ring) and the tiled kernel (8 scale slots per chunk);
// kStreamSmem falls back to kStream and kLegacyGemv to kTiled for it.
// Plain C++ API: device pointers are void*, the stream is a cudaStream_t passed as void*.
// Functions return an empty string on success, else a message naming the bad value.
// Thread-safety: launches are thread-compatible; a workspace must not be shared by launches
// that can run concurrently (different streams).
#ifndef SLQ_KERNELS_CUDA_QGEMM_H_
#define SLQ_KERNELS_CUDA_QGEMM_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/grids.h"
#include "kernels/repack.h"

namespace slq::kernels {

enum class ActType { kF16, kBF16 };

// A repacked matrix in device memory. Owns nothing: free with FreeDeviceMatrix.
struct DeviceMatrix {
  GpuLayout layout;
  const uint32_t* codes = nullptr;  // device, layout.CodeWords()
  const uint16_t* sz = nullptr;     // device, layout.SzHalves()
  // Only when layout.grids: the repacked grid ids (layout.GridBytes()) and the width's level
  // table (GridLevelTable(bits), kGridCount << bits floats).
  const uint8_t* grid = nullptr;
  const float* levels = nullptr;
  int64_t Bytes() const {
    return layout.CodeWords() * 4 + layout.SzHalves() * 2 + layout.GridBytes() +
           (layout.grids ? int64_t{kGridCount} << layout.bits : 0) * 4;
  }
};

// True when a CUDA device is usable; otherwise *why says what is missing.
bool CudaDeviceAvailable(std::string* why);

std::string UploadMatrix(const RepackedMatrix& m, DeviceMatrix* out);
void FreeDeviceMatrix(DeviceMatrix* m);

// Workspace for split-K: bytes needed for matrices of up to `rows` rows and `max_n` tokens.
// It must be zeroed once after allocation (AllocWorkspace does); launches leave it zeroed.
size_t QGemmWorkspaceBytes(int64_t rows, int64_t max_n);
std::string AllocWorkspace(size_t bytes, void** ws);

// Which kernel runs. kAuto: the streaming kernel for n <= kStreamAutoMaxN, else the tiled one
// (allow_gemv = false forces the tiled kernel); measured on the H200 (2026-12-01): the streaming
// kernel is at least as fast as the others up to n = 16 on most shapes, 1.3-1.4x slower than
// the tiled one at n = 32. The others force one kernel for any n (the
// legacy small-batch kernel only for n <= 8; larger n fall back to the tiled one).
// kStreamSmem: the streaming kernel with its weight ring in shared memory (cp.async) instead of
// registers (qgemm_stream_smem.cu), for n <= 16 like kStream (larger n: the tiled kernel);
// kAuto picks it only where it measured faster (3 bits, n = 2..16; see AutoStream in qgemm.cu).
// Grid matrices (layout.grids): kStream and kAuto for n <= kStreamAutoMaxN (fp16; bf16 only at
// width 2, where it measured faster than tiled) run the streaming grid variant (fp16 and bf16);
// every other case runs the tiled kernel.
enum class QKernel { kAuto, kLegacyGemv, kTiled, kStream, kStreamSmem };
inline constexpr int64_t kStreamAutoMaxN = 16;

struct QGemmOptions {
  int splits = 0;          // split-K factor; 0 = choose from the shape and the SM count
  bool allow_gemv = true;  // kAuto only: false forces the tiled kernel
  QKernel kernel = QKernel::kAuto;
  // Programmatic dependent launch (streaming kernel only): the kernel may start while the
  // previous kernel on the stream finishes; it reads weights before and x only after the
  // grid dependency is resolved, and writes nothing before. Other kernels ignore it.
  bool pdl = false;
  // Streaming kernel: each warp keeps its weights this many KiB ahead of its register ring in
  // flight as L2 bulk prefetches (-1 = default, 0 = off). For measurement sweeps.
  int prefetch_kib = -1;
  // kStreamSmem: ring depth per warp, 1 = ~6 KiB of codes (default), 2 = ~12 KiB (2..8 chunks).
  int ring = 1;
  // Streaming grid variant: widths <= grid_pair_bits (at most 4) look both codes of an A register
  // up at once in a table of level pairs, wider ones each code on its own (fp16 and bf16 alike).
  // Default 3: at 4 bits the pair table (256 entries per grid) has bank conflicts the per-code
  // table (conflict-free) does not; on the H200 (session 9, fp16) pairs won at 2-3 bits and lost
  // at 4. 0 = per-code everywhere. For measurement.
  int grid_pair_bits = 3;
};

// x: device [n, cols] (act), y: device [n, rows] (act). x must be 16-byte aligned.
std::string QGemm(const DeviceMatrix& w, const void* x, int64_t n, void* y, ActType act, void* workspace,
                  size_t workspace_bytes, void* stream, const QGemmOptions& opt = {});

}  // namespace slq::kernels

#endif  // SLQ_KERNELS_CUDA_QGEMM_H_
