#include "server/gpu/gpu_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/repack.h"
#include "server/common/half.h"
#include "server/common/status_macros.h"
#include "server/common/thread_pool.h"
#include "server/gpu/gpu_model_impl.h"
#include "server/gpu/gpu_ops.h"
#include "server/model/ops.h"

namespace slq::gpu {

absl::Status CudaStatus(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(e)));
}

GpuModel::Impl::~Impl() {
  for (void* p : allocations) cudaFree(p);
}

absl::Status GpuModel::Impl::Alloc(size_t bytes, void** p) {
  *p = nullptr;
  cudaError_t e = cudaMalloc(p, std::max<size_t>(bytes, 16));
  if (e != cudaSuccess) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cudaMalloc of ", bytes, " bytes for model weights: ", cudaGetErrorString(e)));
  }
  allocations.push_back(*p);
  return absl::OkStatus();
}

absl::Status RunLinear(const GpuLinear& l, ActType act, const void* x, int64_t n, void* y, bool y_f32,
                       cublasHandle_t blas, void* qgemm_ws, size_t qgemm_ws_bytes, cudaStream_t stream, bool pdl) {
  if (l.quant) {
    if (y_f32) return absl::InternalError("RunLinear: fp32 output of a quantized linear");
    kernels::QGemmOptions opt;
    opt.pdl = pdl;
    const std::string e = kernels::QGemm(l.qm, x, n, y, act, qgemm_ws, qgemm_ws_bytes, stream, opt);
    if (!e.empty()) return absl::InternalError(absl::StrCat("QGemm (", l.desc, "): ", e));
    return absl::OkStatus();
  }
  const cudaDataType dt = act == ActType::kF16 ? CUDA_R_16F : CUDA_R_16BF;
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t s =
      cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(l.out), static_cast<int>(n), static_cast<int>(l.in),
                   &alpha, l.w, dt, static_cast<int>(l.in), x, dt, static_cast<int>(l.in), &beta, y,
                   y_f32 ? CUDA_R_32F : dt, static_cast<int>(l.out), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (s != CUBLAS_STATUS_SUCCESS) {
    return absl::InternalError(absl::StrCat("cublasGemmEx (", l.desc, ", n=", n, "): ", cublasGetStatusString(s)));
  }
  return absl::OkStatus();
}

namespace {

const char* ActName(ActType a) { return a == ActType::kF16 ? "f16" : "bf16"; }

// A linear prepared on the host: the packed views to repack for QGemm (repacked while
// uploading, straight into pinned staging memory), or fp32 weights to convert.
struct HostLinear {
  int64_t out = 0, in = 0;
  bool quant = false;
  kernels::GpuLayout layout;                       // quant: the (fused) repacked layout
  std::vector<kernels::PackedMatrixView> q_parts;  // quant: stacked by rows, each rows % 16 == 0 but the last
  int bits = 16;
  int64_t group_size = 0;
  std::vector<float> dense;                       // [out, in] owned (dequantized), or:
  const std::vector<float>* dense_src = nullptr;  // the DenseLinear's own weights (no copy)
  // A fused dense linear: its parts' weights, stacked (each [rows_i, in]).
  std::vector<const std::vector<float>*> dense_parts;
  std::string desc;
  const std::vector<float>& Dense() const { return dense_src ? *dense_src : dense; }
};

absl::StatusOr<HostLinear> Prepare(const LinearOp* op, const std::string& name, ActType act) {
  if (op == nullptr) return absl::InvalidArgumentError(absl::StrCat(name, " has no weights"));
  HostLinear h;
  h.out = op->out_features();
  h.in = op->in_features();
  if (const PackedLinear* pk = op->packed()) {
    const kernels::PackedMatrixView& q = pk->view;
    const std::string why = pk->rotation_block > 0 ? "rotated input" : kernels::CheckGpuSupported(q);
    if (why.empty()) {
      h.quant = true;
      h.layout = kernels::GpuLayoutFor(q);
      h.q_parts = {q};
      h.bits = q.bits;
      h.group_size = q.group_size;
      h.desc = absl::StrCat(op->Describe(), " (QGemm)");
      return h;
    }
    h.dense = op->WeightF32();  // dequantized, rotation undone
    h.desc = absl::StrCat(op->Describe(), " dequantized to dense ", ActName(act), " (cuBLAS; ", why, ")");
    return h;
  }
  if (const auto* dl = dynamic_cast<const DenseLinear*>(op)) {
    h.dense_src = &dl->weight();
    h.desc = absl::StrCat("dense ", ActName(act), " (cuBLAS)");
    return h;
  }
  return absl::UnimplementedError(absl::StrCat(name, ": the GPU runtime cannot run a '", op->Describe(),
                                               "' linear (only dense and slq-packed-v1 quantized ones)"));
}

bool CanFuse(const std::vector<const HostLinear*>& parts) {
  const HostLinear& a = *parts[0];
  for (const HostLinear* p : parts) {
    if (p->in != a.in || p->quant != a.quant) return false;
    if (a.quant && (p->bits != a.bits || p->group_size != a.group_size || p->layout.grids != a.layout.grids ||
                    p->out % kernels::kTileRows != 0)) {
      return false;
    }
  }
  return true;
}

HostLinear Concat(const std::vector<const HostLinear*>& parts) {
  HostLinear f;
  f.in = parts[0]->in;
  f.quant = parts[0]->quant;
  f.bits = parts[0]->bits;
  f.group_size = parts[0]->group_size;
  f.desc = parts[0]->desc;
  for (const HostLinear* p : parts) f.out += p->out;
  if (f.quant) {
    f.layout = parts[0]->layout;
    f.layout.rows = f.out;
    f.layout.row_tiles = 0;
    for (const HostLinear* p : parts) {
      f.layout.row_tiles += p->layout.row_tiles;
      f.q_parts.insert(f.q_parts.end(), p->q_parts.begin(), p->q_parts.end());
    }
  } else {
    for (const HostLinear* p : parts) f.dense_parts.push_back(&p->Dense());
  }
  return f;
}

// Host -> device copies through two pinned staging buffers on one stream: the worker pool fills
// one buffer (repacking packed codes, converting fp32 to the activation type, or copying) while
// the other one's copy is in flight, so the CPU work of the next piece overlaps the PCIe
// transfer of the previous one. (The first version converted each linear into a fresh pageable
// vector, and repacked every code element by element on one thread into pageable vectors: about
// 117 s of an 8B-shaped 4.25-bit artifact's start on an H200.) Falls back to pageable copies if
// pinned memory cannot be had.
class Uploader {
 public:
  static constexpr int64_t kStageBytes = int64_t{64} << 20;  // per staging buffer

  explicit Uploader(ActType act) : f16_(act == ActType::kF16) {
    if (cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking) != cudaSuccess) {
      stream_ = nullptr;
      (void)cudaGetLastError();  // the fallback is fine; do not leave the error for a later check
      return;
    }
    for (int b = 0; b < 2; ++b) {
      if (cudaMallocHost(&buf_[b], kStageBytes) != cudaSuccess || cudaEventCreate(&done_[b]) != cudaSuccess) {
        Release();
        (void)cudaGetLastError();
        return;
      }
    }
  }
  ~Uploader() { Release(); }
  Uploader(const Uploader&) = delete;
  Uploader& operator=(const Uploader&) = delete;

  // fp32 values -> the activation type at dst.
  absl::Status UploadAct(const std::vector<float>& src, char* dst) {
    const int64_t n = static_cast<int64_t>(src.size()), chunk = kStageBytes / 2;
    if (stream_ == nullptr) return UploadActPageable(src, dst);
    for (int64_t c0 = 0; c0 < n; c0 += chunk) {
      const int64_t len = std::min(chunk, n - c0);
      SLQ_ASSIGN_OR_RETURN(char* b, Acquire());
      Convert(src.data() + c0, len, reinterpret_cast<uint16_t*>(b));
      SLQ_RETURN_IF_ERROR(Send(dst + c0 * 2, b, static_cast<size_t>(len) * 2, nullptr, nullptr, 0));
    }
    return absl::OkStatus();
  }

  // Raw bytes (e.g. fp32 embeddings), copied into staging by the pool.
  absl::Status UploadBytes(const void* src, size_t bytes, void* dst) {
    if (stream_ == nullptr) return CudaStatus(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "upload");
    const char* s = static_cast<const char*>(src);
    for (size_t c0 = 0; c0 < bytes; c0 += kStageBytes) {
      const size_t len = std::min<size_t>(kStageBytes, bytes - c0);
      SLQ_ASSIGN_OR_RETURN(char* b, Acquire());
      WorkerPool::Default().Run(
          static_cast<int64_t>(len),
          [&](int64_t begin, int64_t end) { std::memcpy(b + begin, s + c0 + begin, static_cast<size_t>(end - begin)); },
          static_cast<int64_t>(std::max<size_t>(1, len >> 20)));
      SLQ_RETURN_IF_ERROR(Send(static_cast<char*>(dst) + c0, b, len, nullptr, nullptr, 0));
    }
    return absl::OkStatus();
  }

  // A packed matrix, repacked to slq-gpu-v1 (kernels/repack.h) by the pool a batch of row
  // tiles at a time, at codes / sz (its first row tile's words / halves on the device).
  absl::Status UploadPacked(const kernels::PackedMatrixView& v, uint32_t* codes, uint16_t* sz) {
    const kernels::GpuLayout l = kernels::GpuLayoutFor(v);
    const int64_t wpt = kernels::CodeWordsPerTile(l), spt = kernels::SzHalvesPerTile(l);
    const int64_t tile_bytes = wpt * 4 + spt * 2;
    if (stream_ == nullptr || tile_bytes > kStageBytes) return UploadPackedPageable(v, codes, sz);
    const int64_t per_batch = kStageBytes / tile_bytes;
    for (int64_t t0 = 0; t0 < l.row_tiles; t0 += per_batch) {
      const int64_t nt = std::min(per_batch, l.row_tiles - t0);
      SLQ_ASSIGN_OR_RETURN(char* b, Acquire());
      uint32_t* bc = reinterpret_cast<uint32_t*>(b);
      uint16_t* bs = reinterpret_cast<uint16_t*>(b + nt * wpt * 4);
      WorkerPool::Default().Run(nt, [&](int64_t begin, int64_t end) {
        kernels::RepackRowTiles(v, t0 + begin, t0 + end, bc + begin * wpt, bs + begin * spt);
      });
      SLQ_RETURN_IF_ERROR(Send(codes + t0 * wpt, bc, static_cast<size_t>(nt * wpt) * 4, sz + t0 * spt, bs,
                               static_cast<size_t>(nt * spt) * 2));
    }
    return absl::OkStatus();
  }

  // Waits for the copies in flight (before the weights are used).
  absl::Status Finish() {
    if (stream_ == nullptr) return absl::OkStatus();
    return CudaStatus(cudaStreamSynchronize(stream_), "upload weights");
  }

 private:
  // The next staging buffer, once its previous copy is done.
  absl::StatusOr<char*> Acquire() {
    SLQ_RETURN_IF_ERROR(CudaStatus(cudaEventSynchronize(done_[next_]), "staging buffer"));
    return static_cast<char*>(buf_[next_]);
  }
  // Queues the copies out of the current buffer (a second, optional one from the same buffer)
  // and hands the buffer back.
  absl::Status Send(void* dst, const void* src, size_t bytes, void* dst2, const void* src2, size_t bytes2) {
    SLQ_RETURN_IF_ERROR(
        CudaStatus(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "upload weights"));
    if (bytes2 > 0) {
      SLQ_RETURN_IF_ERROR(
          CudaStatus(cudaMemcpyAsync(dst2, src2, bytes2, cudaMemcpyHostToDevice, stream_), "upload weights"));
    }
    SLQ_RETURN_IF_ERROR(CudaStatus(cudaEventRecord(done_[next_], stream_), "staging event"));
    next_ ^= 1;
    return absl::OkStatus();
  }

  void Convert(const float* src, int64_t n, uint16_t* out) const {
    const bool f16 = f16_;
    WorkerPool::Default().Run(
        n,
        [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) out[i] = f16 ? FloatToHalf(src[i]) : FloatToBf16(src[i]);
        },
        static_cast<int>(std::max<int64_t>(1, n >> 16)));
  }

  absl::Status UploadActPageable(const std::vector<float>& src, char* dst) const {
    std::vector<uint16_t> w(std::min<size_t>(src.size(), kStageBytes / 2));
    for (size_t c0 = 0; c0 < src.size(); c0 += w.size()) {
      const size_t len = std::min(w.size(), src.size() - c0);
      Convert(src.data() + c0, static_cast<int64_t>(len), w.data());
      SLQ_RETURN_IF_ERROR(
          CudaStatus(cudaMemcpy(dst + c0 * 2, w.data(), len * 2, cudaMemcpyHostToDevice), "upload weights"));
    }
    return absl::OkStatus();
  }

  static absl::Status UploadPackedPageable(const kernels::PackedMatrixView& v, uint32_t* codes, uint16_t* sz) {
    const kernels::GpuLayout l = kernels::GpuLayoutFor(v);
    const int64_t wpt = kernels::CodeWordsPerTile(l), spt = kernels::SzHalvesPerTile(l);
    std::vector<uint32_t> c(static_cast<size_t>(l.CodeWords()));
    std::vector<uint16_t> s(static_cast<size_t>(l.SzHalves()));
    WorkerPool::Default().Run(l.row_tiles, [&](int64_t begin, int64_t end) {
      kernels::RepackRowTiles(v, begin, end, c.data() + begin * wpt, s.data() + begin * spt);
    });
    SLQ_RETURN_IF_ERROR(CudaStatus(cudaMemcpy(codes, c.data(), c.size() * 4, cudaMemcpyHostToDevice), "upload codes"));
    return CudaStatus(cudaMemcpy(sz, s.data(), s.size() * 2, cudaMemcpyHostToDevice), "upload scales");
  }

  void Release() {
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    for (int b = 0; b < 2; ++b) {
      if (buf_[b] != nullptr) cudaFreeHost(buf_[b]);
      if (done_[b] != nullptr) cudaEventDestroy(done_[b]);
      buf_[b] = nullptr;
      done_[b] = nullptr;
    }
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    stream_ = nullptr;
  }

  bool f16_;
  cudaStream_t stream_ = nullptr;
  void* buf_[2] = {nullptr, nullptr};
  cudaEvent_t done_[2] = {nullptr, nullptr};
  int next_ = 0;
};

// The grid ids of a quantized linear with grids (every part has them: CanFuse), repacked per
// row tile (kernels/repack.h), and its width's level table, into fresh device memory.
absl::Status UploadGrids(GpuModel::Impl& m, const HostLinear& h, Uploader& up, kernels::DeviceMatrix* qm) {
  std::vector<uint8_t> ids(static_cast<size_t>(h.layout.GridBytes()));
  int64_t at = 0;
  for (const kernels::PackedMatrixView& part : h.q_parts) {
    const kernels::GpuLayout pl = kernels::GpuLayoutFor(part);
    if (!pl.grids) return absl::InternalError("a fused linear with grid ids has a part without them");
    kernels::RepackGridTiles(part, 0, pl.row_tiles, ids.data() + at);
    at += pl.GridBytes();
  }
  const std::vector<float> levels = kernels::GridLevelTable(h.bits);
  uint8_t* grid = nullptr;
  float* lv = nullptr;
  SLQ_RETURN_IF_ERROR(m.AllocT(static_cast<int64_t>(ids.size()), &grid));
  SLQ_RETURN_IF_ERROR(m.AllocT(static_cast<int64_t>(levels.size()), &lv));
  SLQ_RETURN_IF_ERROR(up.UploadBytes(ids.data(), ids.size(), grid));
  SLQ_RETURN_IF_ERROR(up.UploadBytes(levels.data(), levels.size() * 4, lv));
  qm->grid = grid;
  qm->levels = lv;
  return absl::OkStatus();
}

absl::StatusOr<GpuLinear> UploadHost(GpuModel::Impl& m, const HostLinear& h, Uploader& up) {
  GpuLinear g;
  g.out = h.out;
  g.in = h.in;
  g.quant = h.quant;
  g.bits = h.bits;
  g.group_size = h.group_size;
  g.desc = h.desc;
  if (h.quant) {
    uint32_t* codes = nullptr;
    uint16_t* sz = nullptr;
    SLQ_RETURN_IF_ERROR(m.AllocT(h.layout.CodeWords(), &codes));
    SLQ_RETURN_IF_ERROR(m.AllocT(h.layout.SzHalves(), &sz));
    int64_t words = 0, halves = 0;
    for (const kernels::PackedMatrixView& part : h.q_parts) {
      SLQ_RETURN_IF_ERROR(up.UploadPacked(part, codes + words, sz + halves));
      const kernels::GpuLayout pl = kernels::GpuLayoutFor(part);
      words += pl.CodeWords();
      halves += pl.SzHalves();
    }
    g.qm.layout = h.layout;
    g.qm.codes = codes;
    g.qm.sz = sz;
    if (h.layout.grids) SLQ_RETURN_IF_ERROR(UploadGrids(m, h, up, &g.qm));
    m.max_rows = std::max(m.max_rows, h.out);
    return g;
  }
  SLQ_RETURN_IF_ERROR(m.Alloc(static_cast<size_t>(h.out * h.in) * 2, &g.w));
  std::vector<const std::vector<float>*> parts = h.dense_parts;
  if (parts.empty()) parts.push_back(&h.Dense());
  size_t offset = 0;
  for (const std::vector<float>* src : parts) {
    SLQ_RETURN_IF_ERROR(up.UploadAct(*src, static_cast<char*>(g.w) + offset));
    offset += src->size() * 2;
  }
  return g;
}

absl::StatusOr<float*> UploadF32(GpuModel::Impl& m, const std::vector<float>& v) {
  if (v.empty()) return nullptr;
  float* p = nullptr;
  SLQ_RETURN_IF_ERROR(m.AllocT(static_cast<int64_t>(v.size()), &p));
  SLQ_RETURN_IF_ERROR(CudaStatus(cudaMemcpy(p, v.data(), v.size() * 4, cudaMemcpyHostToDevice), "upload"));
  return p;
}

// Uploads a group of linears, fused into one when possible; else one by one into `each`.
absl::Status UploadGroup(GpuModel::Impl& m, const std::vector<std::pair<const LinearOp*, std::string>>& ops,
                         GpuLinear* fused, const std::vector<GpuLinear*>& each, Uploader& up) {
  std::vector<HostLinear> hs;
  for (const auto& [op, name] : ops) {
    SLQ_ASSIGN_OR_RETURN(HostLinear h, Prepare(op, name, m.act));
    hs.push_back(std::move(h));
  }
  std::vector<const HostLinear*> parts;
  for (const HostLinear& h : hs) parts.push_back(&h);
  if (CanFuse(parts)) {
    SLQ_ASSIGN_OR_RETURN(*fused, UploadHost(m, Concat(parts), up));
    return absl::OkStatus();
  }
  for (size_t i = 0; i < hs.size(); ++i) {
    SLQ_ASSIGN_OR_RETURN(*each[i], UploadHost(m, hs[i], up));
  }
  return absl::OkStatus();
}

absl::Status CheckShape(const ModelConfig& c) {
  SLQ_RETURN_IF_ERROR(c.Validate());
  if (c.head_dim % 2 != 0 || c.head_dim > kMaxHeadDim) {
    return absl::UnimplementedError(
        absl::StrCat("the GPU runtime needs an even head_dim <= ", kMaxHeadDim, "; this model has ", c.head_dim));
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    return absl::InvalidArgumentError("num_heads must be a multiple of num_kv_heads");
  }
  return absl::OkStatus();
}

absl::Status UploadCommon(GpuModel::Impl& m) {
  const std::vector<float> inv = RopeInvFreq(m.config);
  SLQ_ASSIGN_OR_RETURN(m.inv_freq, UploadF32(m, inv));
  return absl::OkStatus();
}

}  // namespace

bool GpuAvailable(std::string* why) { return kernels::CudaDeviceAvailable(why); }

GpuModel::GpuModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuModel::~GpuModel() = default;
const ModelConfig& GpuModel::config() const { return impl_->config; }
ActType GpuModel::act() const { return impl_->act; }

namespace {
template <typename Fn>
void ForEachLinear(const GpuModel::Impl& m, Fn&& fn) {
  for (const GpuLayer& l : m.layers) {
    for (const GpuLinear* g : {&l.qkv, &l.q, &l.k, &l.v, &l.o, &l.gate_up, &l.gate, &l.up, &l.down}) {
      if (!g->empty()) fn(*g, "layer");
    }
  }
  fn(m.lm_head, "lm_head");
}
}  // namespace

int64_t GpuModel::LinearBytes() const {
  int64_t b = 0;
  ForEachLinear(*impl_, [&](const GpuLinear& g, const char*) { b += g.Bytes(impl_->act); });
  return b;
}

int64_t GpuModel::LinearParams() const {
  int64_t p = 0;
  ForEachLinear(*impl_, [&](const GpuLinear& g, const char*) { p += g.out * g.in; });
  return p;
}

std::string GpuModel::Describe() const {
  std::map<std::string, int> kinds;
  ForEachLinear(*impl_, [&](const GpuLinear& g, const char*) { ++kinds[g.desc]; });
  std::string s = absl::StrCat("activations ", ActName(impl_->act), "; linears:");
  for (const auto& [d, n] : kinds) absl::StrAppend(&s, " [", d, "] x", n, ";");
  return s;
}

absl::StatusOr<std::unique_ptr<GpuModel>> GpuModel::Upload(const Model& model, const GpuModelOptions& options) {
  std::string why;
  if (!GpuAvailable(&why)) return absl::FailedPreconditionError(absl::StrCat("no GPU: ", why));
  const ModelConfig& c = model.config;
  SLQ_RETURN_IF_ERROR(CheckShape(c));
  auto m = std::make_unique<Impl>();
  m->config = c;
  m->act = options.act;
  Uploader up(m->act);
  if (!model.embed.empty()) {  // [vocab, hidden] fp32: through the staging buffers
    SLQ_RETURN_IF_ERROR(m->AllocT(static_cast<int64_t>(model.embed.size()), &m->embed));
    SLQ_RETURN_IF_ERROR(up.UploadBytes(model.embed.data(), model.embed.size() * 4, m->embed));
  }
  SLQ_ASSIGN_OR_RETURN(m->final_norm, UploadF32(*m, model.final_norm));
  SLQ_RETURN_IF_ERROR(UploadCommon(*m));
  m->layers.resize(model.layers.size());
  for (size_t li = 0; li < model.layers.size(); ++li) {
    const LayerWeights& l = model.layers[li];
    GpuLayer& g = m->layers[li];
    const std::string p = absl::StrCat("model.layers.", li, ".");
    SLQ_ASSIGN_OR_RETURN(g.attn_norm, UploadF32(*m, l.attn_norm));
    SLQ_ASSIGN_OR_RETURN(g.mlp_norm, UploadF32(*m, l.mlp_norm));
    SLQ_ASSIGN_OR_RETURN(g.q_bias, UploadF32(*m, l.q_bias));
    SLQ_ASSIGN_OR_RETURN(g.k_bias, UploadF32(*m, l.k_bias));
    SLQ_ASSIGN_OR_RETURN(g.v_bias, UploadF32(*m, l.v_bias));
    SLQ_ASSIGN_OR_RETURN(g.q_norm, UploadF32(*m, l.q_norm));
    SLQ_ASSIGN_OR_RETURN(g.k_norm, UploadF32(*m, l.k_norm));
    SLQ_RETURN_IF_ERROR(UploadGroup(*m,
                                    {{l.q_proj.get(), p + "self_attn.q_proj"},
                                     {l.k_proj.get(), p + "self_attn.k_proj"},
                                     {l.v_proj.get(), p + "self_attn.v_proj"}},
                                    &g.qkv, {&g.q, &g.k, &g.v}, up));
    SLQ_RETURN_IF_ERROR(UploadGroup(*m, {{l.o_proj.get(), p + "self_attn.o_proj"}}, &g.o, {&g.o}, up));
    SLQ_RETURN_IF_ERROR(UploadGroup(*m,
                                    {{l.gate_proj.get(), p + "mlp.gate_proj"}, {l.up_proj.get(), p + "mlp.up_proj"}},
                                    &g.gate_up, {&g.gate, &g.up}, up));
    SLQ_RETURN_IF_ERROR(UploadGroup(*m, {{l.down_proj.get(), p + "mlp.down_proj"}}, &g.down, {&g.down}, up));
  }
  SLQ_RETURN_IF_ERROR(UploadGroup(*m, {{model.lm_head.get(), "lm_head"}}, &m->lm_head, {&m->lm_head}, up));
  SLQ_RETURN_IF_ERROR(up.Finish());
  return std::unique_ptr<GpuModel>(new GpuModel(std::move(m)));
}

namespace {

absl::StatusOr<GpuLinear> RandomLinear(GpuModel::Impl& m, int64_t out, int64_t in, const RandomLinearSpec& s,
                                       uint64_t seed) {
  GpuLinear g;
  g.out = out;
  g.in = in;
  const float amp = 1.0f / std::sqrt(static_cast<float>(in));
  if (s.bits == 0) {
    SLQ_RETURN_IF_ERROR(m.Alloc(static_cast<size_t>(out * in) * 2, &g.w));
    FillUniformAct(g.w, out * in, seed, -amp, amp, m.act, nullptr);
    g.desc = absl::StrCat("dense ", ActName(m.act), " (cuBLAS)");
    return g;
  }
  if (s.bits < 2 || s.bits > 8 || (s.group_size != 32 && s.group_size != 64 && s.group_size != 128) || in % 8 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("random linear: bits ", s.bits, " group ", s.group_size, " in ", in,
                                                   " is not supported by QGemm"));
  }
  g.quant = true;
  g.bits = s.bits;
  g.group_size = s.group_size;
  kernels::GpuLayout& L = g.qm.layout;
  L.rows = out;
  L.cols = in;
  L.bits = s.bits;
  L.group_size = s.group_size;
  L.row_tiles = (out + kernels::kTileRows - 1) / kernels::kTileRows;
  L.chunks = (in + kernels::kChunkCols - 1) / kernels::kChunkCols;
  uint32_t* codes = nullptr;
  uint16_t* sz = nullptr;
  SLQ_RETURN_IF_ERROR(m.AllocT(L.CodeWords(), &codes));
  SLQ_RETURN_IF_ERROR(m.AllocT(L.SzHalves(), &sz));
  FillRandomU32(codes, L.CodeWords(), seed, nullptr);
  FillScaleZero(sz, L.SzHalves(), seed + 1, s.bits, amp, nullptr);
  g.qm.codes = codes;
  g.qm.sz = sz;
  if (s.grids) {  // random id bytes (the kernel reads 2 bits of each nibble) and the real levels
    L.grids = true;
    uint8_t* grid = nullptr;
    float* lv = nullptr;
    const std::vector<float> levels = kernels::GridLevelTable(s.bits);
    SLQ_RETURN_IF_ERROR(m.AllocT(L.GridBytes(), &grid));
    SLQ_RETURN_IF_ERROR(m.AllocT(static_cast<int64_t>(levels.size()), &lv));
    FillRandomU32(reinterpret_cast<uint32_t*>(grid), L.GridBytes() / 4, seed + 2, nullptr);
    SLQ_RETURN_IF_ERROR(
        CudaStatus(cudaMemcpy(lv, levels.data(), levels.size() * 4, cudaMemcpyHostToDevice), "upload grid levels"));
    g.qm.grid = grid;
    g.qm.levels = lv;
  }
  g.desc = absl::StrCat("q", s.bits, " g", s.group_size, s.grids ? " grid" : "", " (QGemm, random)");
  m.max_rows = std::max(m.max_rows, out);
  return g;
}

absl::StatusOr<float*> RandomF32(GpuModel::Impl& m, int64_t n, uint64_t seed, float lo, float hi) {
  float* p = nullptr;
  SLQ_RETURN_IF_ERROR(m.AllocT(n, &p));
  FillUniformF32(p, n, seed, lo, hi, nullptr);
  return p;
}

}  // namespace

absl::StatusOr<std::unique_ptr<GpuModel>> GpuModel::CreateRandom(const ModelConfig& c, const RandomSpecFn& spec,
                                                                 const GpuModelOptions& options, uint64_t seed) {
  std::string why;
  if (!GpuAvailable(&why)) return absl::FailedPreconditionError(absl::StrCat("no GPU: ", why));
  SLQ_RETURN_IF_ERROR(CheckShape(c));
  auto m = std::make_unique<Impl>();
  m->config = c;
  m->act = options.act;
  const int64_t h = c.hidden_size, f = c.intermediate_size;
  SLQ_ASSIGN_OR_RETURN(m->embed, RandomF32(*m, c.vocab_size * h, seed++, -1.0f, 1.0f));
  SLQ_ASSIGN_OR_RETURN(m->final_norm, RandomF32(*m, h, seed++, 0.9f, 1.1f));
  SLQ_RETURN_IF_ERROR(UploadCommon(*m));
  m->layers.resize(static_cast<size_t>(c.num_layers));
  for (int li = 0; li < c.num_layers; ++li) {
    GpuLayer& g = m->layers[li];
    const std::string p = absl::StrCat("model.layers.", li, ".");
    SLQ_ASSIGN_OR_RETURN(g.attn_norm, RandomF32(*m, h, seed++, 0.9f, 1.1f));
    SLQ_ASSIGN_OR_RETURN(g.mlp_norm, RandomF32(*m, h, seed++, 0.9f, 1.1f));
    SLQ_ASSIGN_OR_RETURN(
        g.qkv, RandomLinear(*m, c.q_dim() + 2 * c.kv_dim(), h, spec(p + "self_attn.qkv_proj", li), seed += 2));
    SLQ_ASSIGN_OR_RETURN(g.o, RandomLinear(*m, h, c.q_dim(), spec(p + "self_attn.o_proj", li), seed += 2));
    SLQ_ASSIGN_OR_RETURN(g.gate_up, RandomLinear(*m, 2 * f, h, spec(p + "mlp.gate_up_proj", li), seed += 2));
    SLQ_ASSIGN_OR_RETURN(g.down, RandomLinear(*m, h, f, spec(p + "mlp.down_proj", li), seed += 2));
  }
  SLQ_ASSIGN_OR_RETURN(m->lm_head, RandomLinear(*m, c.vocab_size, h, spec("lm_head", -1), seed += 2));
  SLQ_RETURN_IF_ERROR(CudaStatus(cudaDeviceSynchronize(), "random init"));
  return std::unique_ptr<GpuModel>(new GpuModel(std::move(m)));
}

// ---- GpuKvCache -------------------------------------------------------------------------

size_t GpuKvCache::BytesPerToken(const ModelConfig& c, ActType) {
  return static_cast<size_t>(2 * c.num_layers * c.kv_dim()) * 2;
}

int64_t GpuKvCache::BlocksForBudget(const ModelConfig& c, ActType act, int64_t block_size, size_t max_bytes) {
  const size_t per_block = BytesPerToken(c, act) * static_cast<size_t>(block_size);
  return std::max<int64_t>(1, static_cast<int64_t>(max_bytes / std::max<size_t>(per_block, 1)));
}

absl::StatusOr<std::unique_ptr<GpuKvCache>> GpuKvCache::Create(const ModelConfig& c, ActType act, int64_t block_size,
                                                               int64_t num_blocks) {
  if (block_size < 1 || num_blocks < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("GPU KV cache needs block_size >= 1 and num_blocks >= 1, got ", block_size, " and ", num_blocks));
  }
  std::unique_ptr<GpuKvCache> kv(new GpuKvCache());
  kv->act_ = act;
  kv->block_size_ = block_size;
  kv->num_blocks_ = num_blocks;
  kv->num_layers_ = c.num_layers;
  kv->kv_dim_ = c.kv_dim();
  kv->bytes_ = BytesPerToken(c, act) * static_cast<size_t>(block_size * num_blocks);
  cudaError_t e = cudaMalloc(&kv->data_, kv->bytes_);
  if (e != cudaSuccess) {
    kv->data_ = nullptr;
    return absl::ResourceExhaustedError(
        absl::StrCat("GPU KV cache of ", kv->bytes_, " bytes: ", cudaGetErrorString(e), " (lower --kv-cache-bytes)"));
  }
  SLQ_RETURN_IF_ERROR(CudaStatus(cudaMemset(kv->data_, 0, kv->bytes_), "KV cache memset"));
  return kv;
}

GpuKvCache::~GpuKvCache() {
  if (data_) cudaFree(data_);
}

}  // namespace slq::gpu
