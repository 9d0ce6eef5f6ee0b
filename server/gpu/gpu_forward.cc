#include "server/gpu/gpu_forward.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/gpu/gpu_model_impl.h"
#include "server/gpu/gpu_ops.h"

namespace slq::gpu {

struct GpuWorkspace::Impl {
  const GpuModel::Impl* model = nullptr;
  GpuWorkspaceOptions opt;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  void* blas_ws = nullptr;
  // Activation buffers, sized for cap_t tokens / cap_r logits rows.
  int64_t cap_t = 0, cap_r = 0, cap_meta = 0;
  float *x = nullptr, *q32 = nullptr, *cos = nullptr, *sin = nullptr, *logits = nullptr, *lps = nullptr;
  void *xn = nullptr, *qkv = nullptr, *att = nullptr, *delta = nullptr, *gu = nullptr, *hbuf = nullptr;
  void *xr = nullptr, *lm_act = nullptr;
  int32_t* ids = nullptr;
  float* argmax_part = nullptr;   // [cap_r, kArgmaxMaxParts, 3]
  int32_t* argmax_cnt = nullptr;  // [cap_r], zero between launches
  std::vector<void*> bufs;        // the activation buffers above
  int32_t* meta_d = nullptr;
  int32_t* meta_h = nullptr;  // pinned
  void* qws = nullptr;
  size_t qws_bytes = 0;
  // Flash-decoding partials: fp32 [split_rows, num_heads, head_dim + 2] and the per (token,
  // kv head) counters [split_rows / 2, num_kv_heads] (zero between launches).
  float* attn_part = nullptr;
  int32_t* attn_cnt = nullptr;
  int64_t split_rows = 0;
  // Graphs by (T, R, S); `seen` counts eager steps of a shape (captured on the second).
  using GraphKey = std::tuple<int64_t, int64_t, int64_t>;
  std::map<GraphKey, cudaGraphExec_t> graphs;
  std::map<GraphKey, int> seen;
  // GpuGreedyDecode: graphs of (step + advance) by (B, S), its ids [cap, B] and step counter.
  std::map<std::pair<int64_t, int64_t>, cudaGraphExec_t> greedy_graphs;
  int32_t* greedy_out = nullptr;
  int32_t* greedy_step = nullptr;
  int64_t greedy_cap = 0;
  const void* graph_kv = nullptr;  // the KV storage the graphs were captured with
  int64_t captured = 0, launches = 0;
  // Teacher-forced scoring: a private cache and allocator.
  std::unique_ptr<GpuKvCache> tf_kv;
  std::unique_ptr<BlockAllocator> tf_alloc;

  ~Impl() {
    if (stream) cudaStreamSynchronize(stream);
    ResetGraphs();
    FreeBuffers();
    if (meta_d) cudaFree(meta_d);
    if (meta_h) cudaFreeHost(meta_h);
    if (qws) cudaFree(qws);
    if (attn_part) cudaFree(attn_part);
    if (attn_cnt) cudaFree(attn_cnt);
    if (greedy_out) cudaFree(greedy_out);
    if (greedy_step) cudaFree(greedy_step);
    if (blas_ws) cudaFree(blas_ws);
    if (blas) cublasDestroy(blas);
    if (stream) cudaStreamDestroy(stream);
  }
  void ResetGraphs() {
    for (auto& [k, g] : graphs) cudaGraphExecDestroy(g);
    graphs.clear();
    for (auto& [k, g] : greedy_graphs) cudaGraphExecDestroy(g);
    greedy_graphs.clear();
    seen.clear();
  }
  void FreeBuffers() {
    for (void* p : bufs) cudaFree(p);
    bufs.clear();
  }
  absl::Status Buf(size_t bytes, void** p) {
    cudaError_t e = cudaMalloc(p, std::max<size_t>(bytes, 256));
    if (e != cudaSuccess) {
      *p = nullptr;
      return absl::ResourceExhaustedError(
          absl::StrCat("GPU activation buffer of ", bytes, " bytes: ", cudaGetErrorString(e)));
    }
    bufs.push_back(*p);
    return absl::OkStatus();
  }
  template <typename T>
  absl::Status BufT(int64_t n, T** p) {
    void* v = nullptr;
    absl::Status s = Buf(static_cast<size_t>(n) * sizeof(T), &v);
    *p = static_cast<T*>(v);
    return s;
  }
  // Grows the buffers for T tokens, R rows and `meta` ints (invalidates graphs when it does).
  absl::Status Ensure(int64_t T, int64_t R, int64_t meta);
  // Allocates the flash-decoding partials on first use.
  absl::Status EnsureSplitBuffers();
};

namespace {

constexpr size_t kBlasWorkspace = 32u << 20;

inline void* At(void* p, int64_t elems) { return static_cast<char*>(p) + elems * 2; }

// Rows of the flash-decoding partial buffer: T * splits <= this (e.g. 64 decode streams x 8).
constexpr int64_t kSplitRows = 512;
// GPU busy-wait in front of a profiled step: longer than the host needs to enqueue it.
constexpr int64_t kProfileSpinNs = 50'000'000;

// Events after each kernel group of one eager step (GpuForwardOptions::breakdown).
class StepTimer {
 public:
  explicit StepTimer(cudaStream_t s) : s_(s) {}
  ~StepTimer() {
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
  }
  StepTimer(const StepTimer&) = delete;
  StepTimer& operator=(const StepTimer&) = delete;
  // Records the end of `group` (the first call, with group "", the start).
  void Mark(const char* group) {
    cudaEvent_t e = nullptr;
    if (!status_.ok()) return;
    status_ = CudaStatus(cudaEventCreate(&e), "profile event");
    if (!status_.ok()) return;
    events_.push_back(e);
    groups_.emplace_back(group);
    status_ = CudaStatus(cudaEventRecord(e, s_), "profile event record");
  }
  // After the stream is synchronised: the time between consecutive events, summed by group.
  absl::Status Collect(StepBreakdown* out) const {
    SLQ_RETURN_IF_ERROR(status_);
    out->ms.clear();
    out->total_ms = 0;
    for (size_t i = 1; i < events_.size(); ++i) {
      float ms = 0;
      SLQ_RETURN_IF_ERROR(CudaStatus(cudaEventElapsedTime(&ms, events_[i - 1], events_[i]), "profile elapsed"));
      auto it = std::find_if(out->ms.begin(), out->ms.end(), [&](const auto& p) { return p.first == groups_[i]; });
      if (it == out->ms.end()) it = out->ms.insert(out->ms.end(), {groups_[i], 0.0});
      it->second += ms;
      out->total_ms += ms;
    }
    return absl::OkStatus();
  }

 private:
  cudaStream_t s_;
  std::vector<cudaEvent_t> events_;
  std::vector<std::string> groups_;
  absl::Status status_;
};

// Captures what `enqueue` launches on `stream` into an instantiated CUDA graph; the capture is
// ended (and its graph freed) on every path.
template <typename F>
absl::StatusOr<cudaGraphExec_t> CaptureGraph(cudaStream_t stream, F&& enqueue) {
  SLQ_RETURN_IF_ERROR(CudaStatus(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed), "capture"));
  absl::Status es = enqueue();
  cudaGraph_t graph = nullptr;
  const cudaError_t ee = cudaStreamEndCapture(stream, &graph);
  if (es.ok()) es = CudaStatus(ee, "end capture");
  cudaGraphExec_t exec = nullptr;
  if (es.ok()) es = CudaStatus(cudaGraphInstantiate(&exec, graph, 0), "graph instantiate");
  if (graph) cudaGraphDestroy(graph);
  SLQ_RETURN_IF_ERROR(es);
  return exec;
}

// Enqueues the whole step for T tokens and R logits rows (metadata already on the device).
// splits: the attention's KV splits (AttentionSplits); timer: null, or events after each group.
absl::Status Enqueue(const GpuModel::Impl& m, GpuWorkspace::Impl& w, const GpuKvCache& kv, int64_t T, int64_t R,
                     int64_t splits, StepTimer* timer) {
  const ModelConfig& c = m.config;
  const ActType act = m.act;
  cudaStream_t s = w.stream;
  const int64_t h = c.hidden_size, f = c.intermediate_size, qd = c.q_dim(), kvd = c.kv_dim();
  TokenMeta meta;
  meta.tokens = w.meta_d;
  meta.pos = w.meta_d + T;
  meta.bt_start = w.meta_d + 2 * T;
  const int32_t* rows = w.meta_d + 3 * T;
  meta.bt = w.meta_d + 3 * T + R;
  KvView kvv;
  kvv.base = kv.data();
  kvv.num_layers = c.num_layers;
  kvv.block_size = kv.block_size();
  kvv.kv_dim = kvd;
  const bool pdl = w.opt.pdl;
  // The quantized linears stream their weights while the kernel before them drains.
  auto lin = [&](const GpuLinear& l, const void* x, int64_t n, void* y, bool f32) {
    return RunLinear(l, act, x, n, y, f32, w.blas, w.qws, w.qws_bytes, s, w.opt.linear_pdl);
  };
  auto mark = [&](const char* group) {
    if (timer) timer->Mark(group);
  };
  mark("");
  EmbedRows(m.embed, meta.tokens, T, h, w.x, s);  // after the metadata copy: a plain launch
  RopeTable(m.inv_freq, meta.pos, T, c.head_dim / 2, w.cos, w.sin, s, pdl);
  mark("embed + rope table");
  for (int64_t li = 0; li < c.num_layers; ++li) {
    const GpuLayer& L = m.layers[li];
    AddRmsNorm(w.x, li == 0 ? nullptr : w.delta, nullptr, T, h, L.attn_norm, c.rms_norm_eps, w.xn, act, s, pdl);
    mark("add + rmsnorm (attn)");
    QkvPostArgs a;
    if (!L.qkv.empty()) {
      SLQ_RETURN_IF_ERROR(lin(L.qkv, w.xn, T, w.qkv, false));
      a.q = w.qkv;
      a.k = At(w.qkv, qd);
      a.v = At(w.qkv, qd + kvd);
      a.ldq = a.ldkv = qd + 2 * kvd;
    } else {
      SLQ_RETURN_IF_ERROR(lin(L.q, w.xn, T, w.qkv, false));
      SLQ_RETURN_IF_ERROR(lin(L.k, w.xn, T, At(w.qkv, T * qd), false));
      SLQ_RETURN_IF_ERROR(lin(L.v, w.xn, T, At(w.qkv, T * (qd + kvd)), false));
      a.q = w.qkv;
      a.k = At(w.qkv, T * qd);
      a.v = At(w.qkv, T * (qd + kvd));
      a.ldq = qd;
      a.ldkv = kvd;
    }
    a.q_bias = L.q_bias;
    a.k_bias = L.k_bias;
    a.v_bias = L.v_bias;
    a.q_norm = L.q_norm;
    a.k_norm = L.k_norm;
    a.eps = c.rms_norm_eps;
    a.cos = w.cos;
    a.sin = w.sin;
    a.interleaved = c.rope_style == RopeStyle::kInterleaved;
    a.T = T;
    a.num_heads = c.num_heads;
    a.num_kv_heads = c.num_kv_heads;
    a.head_dim = c.head_dim;
    a.layer = li;
    a.q_out = w.q32;
    mark("linear qkv");
    QkvPost(a, meta, kvv, act, s, pdl);
    mark("qkv post (rope, kv write)");
    AttentionArgs at;
    at.q = w.q32;
    at.out = w.att;
    at.T = T;
    at.num_heads = c.num_heads;
    at.num_kv_heads = c.num_kv_heads;
    at.head_dim = c.head_dim;
    at.layer = li;
    at.sliding_window = c.sliding_window;
    at.splits = splits;
    at.partial = w.attn_part;
    at.counters = w.attn_cnt;
    PagedAttention(at, meta, kvv, act, s, pdl);
    mark("attention");
    SLQ_RETURN_IF_ERROR(lin(L.o, w.att, T, w.delta, false));
    mark("linear o");
    AddRmsNorm(w.x, w.delta, nullptr, T, h, L.mlp_norm, c.rms_norm_eps, w.xn, act, s, pdl);
    mark("add + rmsnorm (mlp)");
    if (!L.gate_up.empty()) {
      SLQ_RETURN_IF_ERROR(lin(L.gate_up, w.xn, T, w.gu, false));
      mark("linear gate_up");
      SwiGlu(w.gu, At(w.gu, f), 2 * f, T, f, w.hbuf, act, s, pdl);
    } else {
      SLQ_RETURN_IF_ERROR(lin(L.gate, w.xn, T, w.gu, false));
      SLQ_RETURN_IF_ERROR(lin(L.up, w.xn, T, At(w.gu, T * f), false));
      mark("linear gate_up");
      SwiGlu(w.gu, At(w.gu, T * f), f, T, f, w.hbuf, act, s, pdl);
    }
    mark("swiglu");
    SLQ_RETURN_IF_ERROR(lin(L.down, w.hbuf, T, w.delta, false));
    mark("linear down");
  }
  AddRmsNorm(w.x, c.num_layers > 0 ? w.delta : nullptr, rows, R, h, m.final_norm, c.rms_norm_eps, w.xr, act, s, pdl);
  mark("final rmsnorm");
  if (m.lm_head.quant) {
    SLQ_RETURN_IF_ERROR(lin(m.lm_head, w.xr, R, w.lm_act, false));
    ActToFloat(w.lm_act, R * c.vocab_size, w.logits, act, s, pdl);
  } else {
    SLQ_RETURN_IF_ERROR(lin(m.lm_head, w.xr, R, w.logits, true));
  }
  mark("lm_head (+ to fp32)");
  ArgmaxLogprob(w.logits, R, c.vocab_size, w.ids, w.lps, w.argmax_part, w.argmax_cnt, s, pdl);
  mark("argmax + logprob");
  return CudaStatus(cudaGetLastError(), "forward launch");
}

}  // namespace

absl::Status GpuWorkspace::Impl::Ensure(int64_t T, int64_t R, int64_t meta) {
  const ModelConfig& c = model->config;
  if (T > cap_t || R > cap_r) {
    SLQ_RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(stream), "sync before growing buffers"));
    ResetGraphs();
    FreeBuffers();
    if (qws) cudaFree(qws);
    qws = nullptr;
    cap_t = std::max({T, cap_t * 2, int64_t{16}});
    cap_r = std::max({R, cap_r * 2, int64_t{16}});
    const int64_t h = c.hidden_size, f = c.intermediate_size, qd = c.q_dim(), kvd = c.kv_dim();
    const int64_t t = cap_t, r = cap_r;
    SLQ_RETURN_IF_ERROR(BufT(t * h, &x));
    SLQ_RETURN_IF_ERROR(BufT(t * qd, &q32));
    SLQ_RETURN_IF_ERROR(BufT(t * (c.head_dim / 2), &cos));
    SLQ_RETURN_IF_ERROR(BufT(t * (c.head_dim / 2), &sin));
    SLQ_RETURN_IF_ERROR(Buf(t * h * 2, &xn));
    SLQ_RETURN_IF_ERROR(Buf(t * (qd + 2 * kvd) * 2, &qkv));
    SLQ_RETURN_IF_ERROR(Buf(t * qd * 2, &att));
    SLQ_RETURN_IF_ERROR(Buf(t * h * 2, &delta));
    SLQ_RETURN_IF_ERROR(Buf(t * 2 * f * 2, &gu));
    SLQ_RETURN_IF_ERROR(Buf(t * f * 2, &hbuf));
    SLQ_RETURN_IF_ERROR(Buf(r * h * 2, &xr));
    SLQ_RETURN_IF_ERROR(BufT(r * c.vocab_size, &logits));
    if (model->lm_head.quant) SLQ_RETURN_IF_ERROR(Buf(r * c.vocab_size * 2, &lm_act));
    SLQ_RETURN_IF_ERROR(BufT(r, &ids));
    SLQ_RETURN_IF_ERROR(BufT(r, &lps));
    SLQ_RETURN_IF_ERROR(BufT(r * kArgmaxMaxParts * 3, &argmax_part));
    SLQ_RETURN_IF_ERROR(BufT(r, &argmax_cnt));
    SLQ_RETURN_IF_ERROR(
        CudaStatus(cudaMemsetAsync(argmax_cnt, 0, static_cast<size_t>(r) * 4, stream), "zero argmax counters"));
    qws_bytes = kernels::QGemmWorkspaceBytes(std::max<int64_t>(model->max_rows, 16), std::max(cap_t, cap_r));
    const std::string e = kernels::AllocWorkspace(qws_bytes, &qws);
    if (!e.empty()) return absl::ResourceExhaustedError(e);
  }
  if (meta > cap_meta) {
    SLQ_RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(stream), "sync before growing metadata"));
    ResetGraphs();
    if (meta_d) cudaFree(meta_d);
    if (meta_h) cudaFreeHost(meta_h);
    meta_d = nullptr;
    meta_h = nullptr;
    cap_meta = std::max({meta, cap_meta * 2, int64_t{4096}});
    SLQ_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&meta_d, static_cast<size_t>(cap_meta) * 4), "metadata buffer"));
    SLQ_RETURN_IF_ERROR(
        CudaStatus(cudaMallocHost(&meta_h, static_cast<size_t>(cap_meta) * 4), "pinned metadata buffer"));
  }
  return absl::OkStatus();
}

absl::Status GpuWorkspace::Impl::EnsureSplitBuffers() {
  if (attn_part != nullptr) return absl::OkStatus();
  const ModelConfig& c = model->config;
  const size_t part = static_cast<size_t>(kSplitRows * c.num_heads * (c.head_dim + 2)) * sizeof(float);
  const size_t cnt = static_cast<size_t>(kSplitRows / 2 * c.num_kv_heads) * sizeof(int32_t);
  SLQ_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&attn_part, part), "attention partials"));
  SLQ_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&attn_cnt, cnt), "attention split counters"));
  SLQ_RETURN_IF_ERROR(CudaStatus(cudaMemsetAsync(attn_cnt, 0, cnt, stream), "zero split counters"));
  split_rows = kSplitRows;
  return absl::OkStatus();
}

GpuWorkspace::GpuWorkspace(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuWorkspace::~GpuWorkspace() = default;
void GpuWorkspace::set_cuda_graphs(bool on) { impl_->opt.cuda_graphs = on; }
void GpuWorkspace::set_pdl(bool on) {
  if (impl_->opt.pdl == on) return;
  cudaStreamSynchronize(impl_->stream);
  impl_->ResetGraphs();
  impl_->opt.pdl = on;
}
void GpuWorkspace::set_linear_pdl(bool on) {
  if (impl_->opt.linear_pdl == on) return;
  cudaStreamSynchronize(impl_->stream);
  impl_->ResetGraphs();
  impl_->opt.linear_pdl = on;
}
int64_t GpuWorkspace::graphs_captured() const { return impl_->captured; }
int64_t GpuWorkspace::graph_launches() const { return impl_->launches; }

absl::StatusOr<std::unique_ptr<GpuWorkspace>> GpuWorkspace::Create(const GpuModel& model,
                                                                   const GpuWorkspaceOptions& options) {
  auto w = std::make_unique<Impl>();
  w->model = &model.impl();
  w->opt = options;
  SLQ_RETURN_IF_ERROR(CudaStatus(cudaStreamCreateWithFlags(&w->stream, cudaStreamNonBlocking), "stream"));
  if (cublasCreate(&w->blas) != CUBLAS_STATUS_SUCCESS) return absl::InternalError("cublasCreate failed");
  SLQ_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&w->blas_ws, kBlasWorkspace), "cuBLAS workspace"));
  if (cublasSetStream(w->blas, w->stream) != CUBLAS_STATUS_SUCCESS ||
      cublasSetWorkspace(w->blas, w->blas_ws, kBlasWorkspace) != CUBLAS_STATUS_SUCCESS) {
    return absl::InternalError("cublasSetStream/cublasSetWorkspace failed");
  }
  return std::unique_ptr<GpuWorkspace>(new GpuWorkspace(std::move(w)));
}

absl::Status GpuForward(const GpuModel& model, GpuKvCache& kv, BlockAllocator& alloc,
                        std::span<const ForwardChunk> chunks, GpuWorkspace* ws, const GpuForwardOptions& options,
                        GpuForwardResult* out) {
  const GpuModel::Impl& m = model.impl();
  const ModelConfig& c = m.config;
  GpuWorkspace::Impl& w = ws->impl();
  if (w.model != &m) return absl::InvalidArgumentError("GpuForward: the workspace was made for another model");
  if (chunks.empty()) return absl::InvalidArgumentError("GpuForward needs at least one chunk");
  if (kv.num_layers() != c.num_layers || kv.kv_dim() != c.kv_dim() || kv.act() != m.act) {
    return absl::InvalidArgumentError("GPU KV cache was built for a different model shape or type");
  }
  if (kv.block_size() != alloc.block_size() || alloc.num_blocks() > kv.num_blocks()) {
    return absl::InvalidArgumentError(absl::StrCat("block allocator (", alloc.num_blocks(), " x ", alloc.block_size(),
                                                   ") does not match the GPU KV cache (", kv.num_blocks(), " x ",
                                                   kv.block_size(), ")"));
  }
  SLQ_RETURN_IF_ERROR(ValidateForwardChunks(c, chunks));
  SLQ_RETURN_IF_ERROR(ReserveForwardChunks(alloc, chunks));
  absl::Status st = [&]() -> absl::Status {
    int64_t T = 0, R = 0, nbt = 0, max_ctx = 0;
    for (const ForwardChunk& ch : chunks) {
      const int64_t n = static_cast<int64_t>(ch.tokens.size());
      T += n;
      R += ch.all_logits ? n : 1;
      nbt += static_cast<int64_t>(ch.table->blocks.size());
      max_ctx = std::max(max_ctx, ch.table->num_tokens + n);
    }
    if (c.sliding_window > 0) max_ctx = std::min(max_ctx, c.sliding_window);
    if (!options.host_rows.empty() && static_cast<int64_t>(options.host_rows.size()) != R) {
      return absl::InvalidArgumentError(
          absl::StrCat("host_rows has ", options.host_rows.size(), " entries for ", R, " logits rows"));
    }
    SLQ_RETURN_IF_ERROR(w.Ensure(T, R, 3 * T + R + nbt));
    int64_t splits = 1;
    if (FlashDecodeSupported(c.head_dim, c.num_heads, c.num_kv_heads)) {
      splits = AttentionSplits(T, c.num_kv_heads, max_ctx, kSplitRows);
      if (splits > 1) SLQ_RETURN_IF_ERROR(w.EnsureSplitBuffers());
    }
    if (w.graph_kv != kv.data()) {
      w.ResetGraphs();
      w.graph_kv = kv.data();
    }
    int32_t* tok = w.meta_h;
    int32_t* pos = tok + T;
    int32_t* bts = tok + 2 * T;
    int32_t* rows = tok + 3 * T;
    int32_t* bt = rows + R;
    int64_t t = 0, r = 0, b = 0;
    for (const ForwardChunk& ch : chunks) {
      const int64_t n = static_cast<int64_t>(ch.tokens.size());
      for (int64_t j = 0; j < n; ++j, ++t) {
        tok[t] = ch.tokens[j];
        pos[t] = static_cast<int32_t>(ch.table->num_tokens + j);
        bts[t] = static_cast<int32_t>(b);
        if (ch.all_logits || j == n - 1) rows[r++] = static_cast<int32_t>(t);
      }
      std::memcpy(bt + b, ch.table->blocks.data(), ch.table->blocks.size() * 4);
      b += static_cast<int64_t>(ch.table->blocks.size());
    }
    const size_t meta_bytes = static_cast<size_t>(3 * T + R + nbt) * 4;
    SLQ_RETURN_IF_ERROR(
        CudaStatus(cudaMemcpyAsync(w.meta_d, w.meta_h, meta_bytes, cudaMemcpyHostToDevice, w.stream), "metadata"));
    const GpuWorkspace::Impl::GraphKey key{T, R, splits};
    const bool graphable = w.opt.cuda_graphs && T <= w.opt.max_graph_tokens && options.breakdown == nullptr;
    auto it = w.graphs.find(key);
    if (graphable && it == w.graphs.end() && static_cast<int64_t>(w.graphs.size()) < w.opt.max_graphs &&
        w.seen[key]++ >= 1) {
      SLQ_ASSIGN_OR_RETURN(cudaGraphExec_t exec,
                           CaptureGraph(w.stream, [&] { return Enqueue(m, w, kv, T, R, splits, nullptr); }));
      it = w.graphs.emplace(key, exec).first;
      ++w.captured;
    }
    if (graphable && it != w.graphs.end()) {
      SLQ_RETURN_IF_ERROR(CudaStatus(cudaGraphLaunch(it->second, w.stream), "graph launch"));
      ++w.launches;
    } else if (options.breakdown != nullptr) {
      StepTimer timer(w.stream);
      SpinDelay(kProfileSpinNs, w.stream);
      SLQ_RETURN_IF_ERROR(Enqueue(m, w, kv, T, R, splits, &timer));
      SLQ_RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(w.stream), "profiled step"));
      SLQ_RETURN_IF_ERROR(timer.Collect(options.breakdown));
    } else {
      SLQ_RETURN_IF_ERROR(Enqueue(m, w, kv, T, R, splits, nullptr));
    }
    const int64_t V = c.vocab_size;
    out->argmax.resize(static_cast<size_t>(R));
    out->argmax_logprob.resize(static_cast<size_t>(R));
    // Host logits only where some row is wanted (a full [R, vocab] buffer is large).
    bool any_host = options.host_rows.empty();
    for (uint8_t h : options.host_rows) any_host = any_host || h != 0;
    if (any_host) {
      out->logits.resize(static_cast<size_t>(R * V));
    } else {
      out->logits.clear();
    }
    SLQ_RETURN_IF_ERROR(
        CudaStatus(cudaMemcpyAsync(out->argmax.data(), w.ids, R * 4, cudaMemcpyDeviceToHost, w.stream), "copy ids"));
    SLQ_RETURN_IF_ERROR(CudaStatus(
        cudaMemcpyAsync(out->argmax_logprob.data(), w.lps, R * 4, cudaMemcpyDeviceToHost, w.stream), "copy logprobs"));
    if (options.device_logits != nullptr) {
      SLQ_RETURN_IF_ERROR(
          CudaStatus(cudaMemcpyAsync(options.device_logits, w.logits, R * V * 4, cudaMemcpyDeviceToDevice, w.stream),
                     "copy device logits"));
    }
    if (options.host_rows.empty()) {
      SLQ_RETURN_IF_ERROR(CudaStatus(
          cudaMemcpyAsync(out->logits.data(), w.logits, R * V * 4, cudaMemcpyDeviceToHost, w.stream), "copy logits"));
    } else {
      for (int64_t i = 0; i < R; ++i) {
        if (!options.host_rows[i]) continue;
        SLQ_RETURN_IF_ERROR(CudaStatus(
            cudaMemcpyAsync(out->logits.data() + i * V, w.logits + i * V, V * 4, cudaMemcpyDeviceToHost, w.stream),
            "copy logits row"));
      }
    }
    return CudaStatus(cudaStreamSynchronize(w.stream), "forward");
  }();
  if (!st.ok()) {
    ReleaseForwardChunks(alloc, chunks, chunks.size());
    return st;
  }
  for (const ForwardChunk& ch : chunks) ch.table->num_tokens += static_cast<int64_t>(ch.tokens.size());
  return absl::OkStatus();
}

absl::Status GpuGreedyDecode(const GpuModel& model, GpuKvCache& kv, BlockAllocator& alloc,
                             std::span<BlockTable* const> tables, std::span<const int32_t> first_tokens,
                             int64_t n_steps, GpuWorkspace* ws, std::vector<int32_t>* out) {
  const GpuModel::Impl& m = model.impl();
  const ModelConfig& c = m.config;
  GpuWorkspace::Impl& w = ws->impl();
  const int64_t B = static_cast<int64_t>(tables.size());
  if (w.model != &m) return absl::InvalidArgumentError("GpuGreedyDecode: the workspace was made for another model");
  if (B == 0 || static_cast<int64_t>(first_tokens.size()) != B || n_steps <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("GpuGreedyDecode needs one first token per sequence (", B,
                                                   " sequences, ", first_tokens.size(), " tokens) and n_steps > 0"));
  }
  if (kv.num_layers() != c.num_layers || kv.kv_dim() != c.kv_dim() || kv.act() != m.act ||
      kv.block_size() != alloc.block_size() || alloc.num_blocks() > kv.num_blocks()) {
    return absl::InvalidArgumentError("GpuGreedyDecode: the KV cache or allocator does not match the model");
  }
  // Validation and block reservation as for n_steps tokens per sequence (every later token is
  // an argmax, so in range).
  std::vector<std::vector<int32_t>> toks(static_cast<size_t>(B));
  std::vector<ForwardChunk> chunks(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    toks[b].assign(static_cast<size_t>(n_steps), first_tokens[b]);
    chunks[b] = ForwardChunk{tables[b], toks[b], false};
  }
  SLQ_RETURN_IF_ERROR(ValidateForwardChunks(c, chunks));
  SLQ_RETURN_IF_ERROR(ReserveForwardChunks(alloc, chunks));
  absl::Status st = [&]() -> absl::Status {
    int64_t nbt = 0, max_ctx = 0;
    for (BlockTable* t : tables) {
      nbt += static_cast<int64_t>(t->blocks.size());
      max_ctx = std::max(max_ctx, t->num_tokens + n_steps);
    }
    if (c.sliding_window > 0) max_ctx = std::min(max_ctx, c.sliding_window);
    SLQ_RETURN_IF_ERROR(w.Ensure(B, B, 4 * B + nbt));
    if (w.graph_kv != kv.data()) {
      w.ResetGraphs();
      w.graph_kv = kv.data();
    }
    int64_t splits = 1;
    if (FlashDecodeSupported(c.head_dim, c.num_heads, c.num_kv_heads)) {
      splits = AttentionSplits(B, c.num_kv_heads, max_ctx, kSplitRows);
      if (splits > 1) SLQ_RETURN_IF_ERROR(w.EnsureSplitBuffers());
    }
    if (n_steps * B > w.greedy_cap) {
      SLQ_RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(w.stream), "sync before growing greedy buffers"));
      if (w.greedy_out) cudaFree(w.greedy_out);
      w.greedy_out = nullptr;
      SLQ_RETURN_IF_ERROR(
          CudaStatus(cudaMalloc(&w.greedy_out, static_cast<size_t>(n_steps * B) * 4), "greedy ids buffer"));
      w.greedy_cap = n_steps * B;
      if (!w.greedy_step) SLQ_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&w.greedy_step, 4), "greedy step counter"));
      for (auto& [k, g] : w.greedy_graphs) cudaGraphExecDestroy(g);  // they point at the old buffer
      w.greedy_graphs.clear();
    }
    // Metadata as GpuForward's for T = R = B: tokens, pos, bt_start, rows, block tables.
    int32_t* tok = w.meta_h;
    int32_t* pos = tok + B;
    int32_t* bts = tok + 2 * B;
    int32_t* rows = tok + 3 * B;
    int32_t* bt = rows + B;
    int64_t off = 0;
    for (int64_t b = 0; b < B; ++b) {
      tok[b] = first_tokens[b];
      pos[b] = static_cast<int32_t>(tables[b]->num_tokens);
      bts[b] = static_cast<int32_t>(off);
      rows[b] = static_cast<int32_t>(b);
      std::memcpy(bt + off, tables[b]->blocks.data(), tables[b]->blocks.size() * 4);
      off += static_cast<int64_t>(tables[b]->blocks.size());
    }
    SLQ_RETURN_IF_ERROR(CudaStatus(
        cudaMemcpyAsync(w.meta_d, w.meta_h, static_cast<size_t>(4 * B + nbt) * 4, cudaMemcpyHostToDevice, w.stream),
        "greedy metadata"));
    SLQ_RETURN_IF_ERROR(CudaStatus(cudaMemsetAsync(w.greedy_step, 0, 4, w.stream), "greedy step counter"));
    auto step = [&]() -> absl::Status {
      SLQ_RETURN_IF_ERROR(Enqueue(m, w, kv, B, B, splits, nullptr));
      GreedyAdvance(w.meta_d, w.meta_d + B, w.ids, B, w.greedy_out, w.greedy_step, w.stream);
      return CudaStatus(cudaGetLastError(), "greedy advance");
    };
    const auto key = std::make_pair(B, splits);
    auto it = w.greedy_graphs.find(key);
    if (w.opt.cuda_graphs && B <= w.opt.max_graph_tokens && it == w.greedy_graphs.end()) {
      SLQ_ASSIGN_OR_RETURN(cudaGraphExec_t exec, CaptureGraph(w.stream, step));
      it = w.greedy_graphs.emplace(key, exec).first;
      ++w.captured;
    }
    for (int64_t i = 0; i < n_steps; ++i) {
      if (it != w.greedy_graphs.end()) {
        SLQ_RETURN_IF_ERROR(CudaStatus(cudaGraphLaunch(it->second, w.stream), "graph launch"));
        ++w.launches;
      } else {
        SLQ_RETURN_IF_ERROR(step());
      }
    }
    out->resize(static_cast<size_t>(n_steps * B));
    SLQ_RETURN_IF_ERROR(CudaStatus(
        cudaMemcpyAsync(out->data(), w.greedy_out, out->size() * 4, cudaMemcpyDeviceToHost, w.stream), "copy ids"));
    return CudaStatus(cudaStreamSynchronize(w.stream), "greedy decode");
  }();
  if (!st.ok()) {
    ReleaseForwardChunks(alloc, chunks, chunks.size());
    return st;
  }
  for (BlockTable* t : tables) t->num_tokens += n_steps;
  return absl::OkStatus();
}

absl::Status GpuForward(const GpuModel& model, GpuKvCache& kv, BlockAllocator& alloc,
                        std::span<const ForwardChunk> chunks, GpuWorkspace* ws, std::vector<float>* logits) {
  GpuForwardResult r;
  SLQ_RETURN_IF_ERROR(GpuForward(model, kv, alloc, chunks, ws, {}, &r));
  *logits = std::move(r.logits);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> GpuTeacherForcedLogits(const GpuModel& model, GpuWorkspace* ws,
                                                          std::span<const int32_t> tokens) {
  constexpr int64_t kBlock = 16;
  GpuWorkspace::Impl& w = ws->impl();
  const int64_t need = std::max<int64_t>(1, (static_cast<int64_t>(tokens.size()) + kBlock - 1) / kBlock);
  if (!w.tf_kv || w.tf_kv->num_blocks() < need) {
    w.tf_alloc.reset();
    w.tf_kv.reset();
    SLQ_ASSIGN_OR_RETURN(w.tf_kv, GpuKvCache::Create(model.config(), model.act(), kBlock, need));
    w.tf_alloc = std::make_unique<BlockAllocator>(need, kBlock);
  }
  BlockTable table;
  ForwardChunk chunk{&table, tokens, /*all_logits=*/true};
  std::vector<float> logits;
  absl::Status s = GpuForward(model, *w.tf_kv, *w.tf_alloc, std::span<const ForwardChunk>(&chunk, 1), ws, &logits);
  w.tf_alloc->Release(&table);
  SLQ_RETURN_IF_ERROR(s);
  return logits;
}

}  // namespace slq::gpu
