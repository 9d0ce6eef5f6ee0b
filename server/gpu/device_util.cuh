// Device helpers shared by the .cu files of server/gpu: activation conversions, warp/block
// reductions, the KV slab offset, programmatic dependent launch. Internal (CUDA only).
#ifndef SLQ_SERVER_GPU_DEVICE_UTIL_CUH_
#define SLQ_SERVER_GPU_DEVICE_UTIL_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <cstdint>

#include "server/gpu/gpu_ops.h"

namespace slq::gpu::dev {

inline cudaStream_t S(void* s) { return static_cast<cudaStream_t>(s); }

// Multiprocessors of the current device (read once; 132 when it cannot be read).
inline int SmCount() {
  static const int n = [] {
    int dev = 0, sms = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || sms <= 0) {
      return 132;
    }
    return sms;
  }();
  return n;
}

// Element offset of the K (kind 0) or V (kind 1) slab of `layer` in KV block `block`.
__device__ __forceinline__ int64_t SlabOffset(const KvView& kv, int32_t block, int64_t layer, int kind) {
  return ((static_cast<int64_t>(block) * kv.num_layers + layer) * 2 + kind) * kv.block_size * kv.kv_dim;
}

// Programmatic dependent launch (PDL): a kernel launched with programmatic stream serialization
// may start while the kernel before it drains. Every kernel of server/gpu calls this first:
// it waits until the previous grid has completed and its writes are visible (a no-op for a
// normal launch), then lets the next PDL-launched kernel be scheduled.
__device__ __forceinline__ void PdlWaitThenRelease() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// kernel<<<grid, block, 0, s>>>(args...), with programmatic stream serialization when pdl.
template <typename... KArgs, typename... Args>
void Launch(bool pdl, void (*kernel)(KArgs...), dim3 grid, dim3 block, cudaStream_t s, Args... args) {
  if (!pdl) {
    kernel<<<grid, block, 0, s>>>(args...);
    return;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = 0;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  (void)cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);  // errors: cudaGetLastError
}

template <typename T>
__device__ __forceinline__ float ToF(T v);
template <>
__device__ __forceinline__ float ToF<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float ToF<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T FromF(float v);
template <>
__device__ __forceinline__ __half FromF<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromF<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

template <typename V>
__device__ __forceinline__ V WarpSum(V v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
template <typename V>
__device__ V BlockSum(V v, V* red) {
  v = WarpSum(v);
  const int w = threadIdx.x / 32, l = threadIdx.x % 32, nw = blockDim.x / 32;
  __syncthreads();
  if (l == 0) red[w] = v;
  __syncthreads();
  V r = l < nw ? red[l] : V(0);
  return WarpSum(r);
}
__device__ __forceinline__ float BlockMax(float v, float* red) {
  v = WarpMax(v);
  const int w = threadIdx.x / 32, l = threadIdx.x % 32, nw = blockDim.x / 32;
  __syncthreads();
  if (l == 0) red[w] = v;
  __syncthreads();
  float r = l < nw ? red[l] : -FLT_MAX;
  return WarpMax(r);
}

}  // namespace slq::gpu::dev

#endif  // SLQ_SERVER_GPU_DEVICE_UTIL_CUH_
