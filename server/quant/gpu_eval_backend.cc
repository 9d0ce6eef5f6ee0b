// MakeGpuEvalBackend: see gpu_eval_backend.h.
#include "server/quant/gpu_eval_backend.h"

#include <algorithm>
#include <array>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kernels/grids.h"
#include "kernels/repack.h"
#include "server/common/status_macros.h"
#include "server/gpu/gpu_eval_ops.h"
#include "server/gpu/gpu_forward.h"
#include "server/gpu/gpu_model_impl.h"

namespace slq::gpu {
namespace {

using quant::SequenceMetrics;
using quant::Sequences;

// A device buffer freed with the owner.
struct DevBuf {
  void* p = nullptr;
  size_t bytes = 0;
  DevBuf() = default;
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  DevBuf(DevBuf&& o) noexcept : p(std::exchange(o.p, nullptr)), bytes(std::exchange(o.bytes, 0)) {}
  ~DevBuf() {
    if (p) cudaFree(p);
  }
  // Grows (contents not kept) to at least n bytes.
  absl::Status Reserve(size_t n, const char* what) {
    if (n <= bytes) return absl::OkStatus();
    if (p) cudaFree(p);
    p = nullptr;
    bytes = 0;
    const cudaError_t e = cudaMalloc(&p, std::max<size_t>(n, 256));
    if (e != cudaSuccess) {
      p = nullptr;
      return absl::ResourceExhaustedError(
          absl::StrCat("GPU evaluation: cudaMalloc of ", n, " bytes for ", what, ": ", cudaGetErrorString(e)));
    }
    bytes = n;
    return absl::OkStatus();
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(p);
  }
};

// Where one quantizable slot lives in the mirror: rows [row0, row0 + rows) of a dense linear.
struct SlotPlace {
  const GpuLinear* lin = nullptr;
  int64_t row0 = 0, rows = 0, cols = 0;
  const LinearOp* original = nullptr;  // the Model's op at upload (pointer identity only)
  DevBuf backup;                       // act [rows, cols]: the original weights
  void* region() const { return static_cast<char*>(lin->w) + row0 * cols * 2; }
  size_t bytes() const { return static_cast<size_t>(rows * cols) * 2; }
};

struct BaseSet {
  Sequences seqs;
  std::vector<int64_t> offset;  // first row of each sequence
  int64_t rows = 0;
  DevBuf logits;  // fp32 [rows, vocab]
  DevBuf next;    // int32 [rows]: the next token, -1 at each sequence's last position
  std::vector<std::vector<int32_t>> argmax;
};

class GpuEvalBackend final : public quant::EvalBackend {
 public:
  static absl::StatusOr<std::unique_ptr<quant::EvalBackend>> Create(const Model& model, const GpuEvalOptions& o) {
    std::unique_ptr<GpuEvalBackend> b(new GpuEvalBackend());
    b->opt_ = o;
    SLQ_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(o.device_index), "cudaSetDevice"));
    b->opt_.max_batch_tokens = std::max<int64_t>(o.max_batch_tokens, 1);
    for (const ConstLinearSlot& s : model.LinearSlots()) {
      if (dynamic_cast<const DenseLinear*>(s.op) == nullptr) {
        return absl::FailedPreconditionError(absl::StrCat("GPU evaluation needs a dense model; ", s.name, " holds '",
                                                          s.op ? s.op->Describe() : "nothing", "'"));
      }
    }
    GpuModelOptions mo;
    mo.act = o.act;
    SLQ_ASSIGN_OR_RETURN(b->gm_, GpuModel::Upload(model, mo));
    GpuWorkspaceOptions wo;
    wo.cuda_graphs = false;  // teacher-forced batches are large and ragged
    SLQ_ASSIGN_OR_RETURN(b->ws_, GpuWorkspace::Create(*b->gm_, wo));
    SLQ_RETURN_IF_ERROR(CudaStatus(cudaStreamCreateWithFlags(&b->stream_, cudaStreamNonBlocking), "stream"));
    const int dev = o.device_index;
    cudaDeviceProp prop{};
    SLQ_RETURN_IF_ERROR(CudaStatus(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties"));
    b->name_ =
        absl::StrCat("cuda:", dev, " ", prop.name, " (", o.act == ActType::kF16 ? "fp16" : "bf16", " dense mirror)");
    for (const ConstLinearSlot& s : model.LinearSlots()) SLQ_RETURN_IF_ERROR(b->Place(s));
    SLQ_RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(b->stream_), "backing up the original weights"));
    return std::unique_ptr<quant::EvalBackend>(std::move(b));
  }

  ~GpuEvalBackend() override {
    if (stream_) {
      cudaSetDevice(opt_.device_index);
      cudaStreamSynchronize(stream_);
      cudaStreamDestroy(stream_);
    }
  }

  std::string device() const override { return name_; }

  absl::StatusOr<int> AddBaseSet(const Sequences& seqs) override {
    SLQ_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(opt_.device_index), "cudaSetDevice"));
    const int64_t V = gm_->config().vocab_size;
    BaseSet set;
    set.seqs = seqs;
    std::vector<int32_t> next;
    for (const auto& s : seqs) {
      set.offset.push_back(set.rows);
      set.rows += static_cast<int64_t>(s.size());
      for (size_t t = 0; t < s.size(); ++t) next.push_back(t + 1 < s.size() ? s[t + 1] : -1);
    }
    SLQ_RETURN_IF_ERROR(set.logits.Reserve(static_cast<size_t>(set.rows * V) * 4, "base logits"));
    SLQ_RETURN_IF_ERROR(set.next.Reserve(next.size() * 4, "target tokens"));
    if (!next.empty()) {
      SLQ_RETURN_IF_ERROR(CudaStatus(cudaMemcpy(set.next.p, next.data(), next.size() * 4, cudaMemcpyHostToDevice),
                                     "upload target tokens"));
    }
    set.argmax.resize(seqs.size());
    SLQ_RETURN_IF_ERROR(RunBatches(
        set,
        [&](size_t first, const GpuForwardResult& r) {
          int64_t row = 0;
          for (size_t i = first; row < static_cast<int64_t>(r.argmax.size()); ++i) {
            const int64_t n = static_cast<int64_t>(seqs[i].size());
            set.argmax[i].assign(r.argmax.begin() + row, r.argmax.begin() + row + n);
            row += n;
          }
          return absl::OkStatus();
        },
        set.logits.as<float>()));
    sets_.push_back(std::move(set));
    return static_cast<int>(sets_.size()) - 1;
  }

  const std::vector<std::vector<int32_t>>& BaseArgmax(int set) const override {
    return sets_.at(static_cast<size_t>(set)).argmax;
  }

  absl::Status SlotChanged(const std::string& slot, const LinearOp& op) override {
    SLQ_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(opt_.device_index), "cudaSetDevice"));
    auto it = places_.find(slot);
    if (it == places_.end()) return absl::NotFoundError(absl::StrCat("GPU evaluation: no slot named ", slot));
    SlotPlace& p = it->second;
    if (op.out_features() != p.rows || op.in_features() != p.cols) {
      return absl::InvalidArgumentError(absl::StrCat("GPU evaluation: ", slot, " is [", p.rows, ", ", p.cols,
                                                     "], the new op [", op.out_features(), ", ", op.in_features(),
                                                     "]"));
    }
    const ActType act = gm_->act();
    if (&op == p.original) {
      SLQ_RETURN_IF_ERROR(CudaStatus(
          cudaMemcpyAsync(p.region(), p.backup.p, p.bytes(), cudaMemcpyDeviceToDevice, stream_), "restore weights"));
    } else if (const PackedLinear* pk = op.packed(); pk != nullptr && pk->rotation_block == 0) {
      // Staging: codes, scales, zeros, then (grid ids only) the ids, all dequantized on the
      // device (kernels/cuda/packed_dequant.cuh) with the width's level table (LevelTable).
      const kernels::PackedMatrixView& q = pk->view;
      const int64_t gpr = kernels::GroupsPerRow(q.cols, q.group_size);
      const size_t cb = static_cast<size_t>(q.rows * kernels::WordsPerRow(q.cols, q.bits)) * 4;
      const size_t sb = static_cast<size_t>(q.rows * gpr) * 2, zb = sb;  // 2 * sb: a multiple of 4
      const size_t ib =
          q.grid_ids != nullptr ? static_cast<size_t>(q.rows * kernels::WordsPerRow(gpr, kernels::kGridIdBits)) * 4 : 0;
      const float* levels = nullptr;
      if (ib > 0) {
        SLQ_ASSIGN_OR_RETURN(levels, LevelTable(q.bits));
      }
      SLQ_RETURN_IF_ERROR(staging_.Reserve(cb + sb + zb + ib, "packed weights"));
      char* base = staging_.as<char>();
      SLQ_RETURN_IF_ERROR(
          CudaStatus(cudaMemcpyAsync(base, q.codes, cb, cudaMemcpyHostToDevice, stream_), "upload codes"));
      SLQ_RETURN_IF_ERROR(
          CudaStatus(cudaMemcpyAsync(base + cb, q.scales, sb, cudaMemcpyHostToDevice, stream_), "upload scales"));
      SLQ_RETURN_IF_ERROR(
          CudaStatus(cudaMemcpyAsync(base + cb + sb, q.zeros, zb, cudaMemcpyHostToDevice, stream_), "upload zeros"));
      char* ids = base + cb + sb + zb;
      if (ib > 0) {
        SLQ_RETURN_IF_ERROR(
            CudaStatus(cudaMemcpyAsync(ids, q.grid_ids, ib, cudaMemcpyHostToDevice, stream_), "upload grid ids"));
      }
      DequantPackedToAct(reinterpret_cast<const uint32_t*>(base), reinterpret_cast<const uint16_t*>(base + cb),
                         reinterpret_cast<const uint16_t*>(base + cb + sb),
                         ib > 0 ? reinterpret_cast<const uint32_t*>(ids) : nullptr, levels, q.rows, q.cols, q.bits,
                         q.group_size, p.region(), act, stream_);
    } else {
      // Dense and rotated layers: the CPU's dequantized fp32 weights.
      std::vector<float> rotated;
      const std::vector<float>* w = nullptr;
      if (pk != nullptr) {
        rotated = op.WeightF32();  // dequantized, rotation undone
        w = &rotated;
      } else if (const auto* dl = dynamic_cast<const DenseLinear*>(&op)) {
        w = &dl->weight();
      } else {
        return absl::UnimplementedError(absl::StrCat("GPU evaluation cannot mirror a '", op.Describe(), "' op"));
      }
      SLQ_RETURN_IF_ERROR(UploadF32(*w, p.region()));
    }
    SLQ_RETURN_IF_ERROR(CudaStatus(cudaGetLastError(), "weight update launch"));
    return CudaStatus(cudaStreamSynchronize(stream_), "weight update");
  }

  absl::Status KeptTensorsChanged(const Model& model) override {
    SLQ_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(opt_.device_index), "cudaSetDevice"));
    const GpuModel::Impl& m = gm_->impl();
    if (model.embed.size() != static_cast<size_t>(m.config.vocab_size * m.config.hidden_size)) {
      return absl::InvalidArgumentError("GPU evaluation: the embeddings changed shape");
    }
    SLQ_RETURN_IF_ERROR(CudaStatus(
        cudaMemcpy(m.embed, model.embed.data(), model.embed.size() * 4, cudaMemcpyHostToDevice), "upload embeddings"));
    // An unquantized LM head may have been replaced (rounded): it is the new original.
    auto it = places_.find("lm_head");
    const auto* head = dynamic_cast<const DenseLinear*>(model.lm_head.get());
    if (it != places_.end() && head != nullptr && head != it->second.original) {
      SlotPlace& p = it->second;
      SLQ_RETURN_IF_ERROR(UploadF32(head->weight(), p.region()));
      SLQ_RETURN_IF_ERROR(CudaStatus(
          cudaMemcpyAsync(p.backup.p, p.region(), p.bytes(), cudaMemcpyDeviceToDevice, stream_), "back up LM head"));
      p.original = head;
    }
    return CudaStatus(cudaStreamSynchronize(stream_), "kept tensors");
  }

  absl::StatusOr<std::vector<SequenceMetrics>> Compare(int set_id, double temperature) override {
    SLQ_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(opt_.device_index), "cudaSetDevice"));
    if (set_id < 0 || static_cast<size_t>(set_id) >= sets_.size()) {
      return absl::InvalidArgumentError(absl::StrCat("no base set ", set_id));
    }
    if (!(temperature > 0.0)) {
      return absl::InvalidArgumentError(absl::StrCat("temperature = ", temperature, "; must be > 0"));
    }
    const BaseSet& set = sets_[static_cast<size_t>(set_id)];
    const int64_t V = gm_->config().vocab_size;
    SLQ_RETURN_IF_ERROR(scratch_.Reserve(static_cast<size_t>(MaxBatchRows(set) * V) * 4, "logits"));
    SLQ_RETURN_IF_ERROR(metrics_.Reserve(static_cast<size_t>(set.rows) * (32 + 8), "metrics"));
    double* out = metrics_.as<double>();
    int32_t* amb = reinterpret_cast<int32_t*>(out + 4 * set.rows);
    int32_t* amq = amb + set.rows;
    SLQ_RETURN_IF_ERROR(RunBatches(
        set,
        [&](size_t first, const GpuForwardResult& r) {
          const int64_t row0 = set.offset[first];
          const int64_t R = static_cast<int64_t>(r.argmax.size());
          CompareRows(set.logits.as<float>() + row0 * V, scratch_.as<float>(), R, V, set.next.as<int32_t>() + row0,
                      1.0 / temperature, out + 4 * row0, amb + row0, amq + row0, stream_);
          SLQ_RETURN_IF_ERROR(CudaStatus(cudaGetLastError(), "compare launch"));
          return CudaStatus(cudaStreamSynchronize(stream_), "compare");
        },
        nullptr));
    std::vector<double> h(static_cast<size_t>(4 * set.rows));
    std::vector<int32_t> hb(static_cast<size_t>(set.rows)), hq(static_cast<size_t>(set.rows));
    if (set.rows > 0) {
      SLQ_RETURN_IF_ERROR(CudaStatus(cudaMemcpy(h.data(), out, h.size() * 8, cudaMemcpyDeviceToHost), "metrics"));
      SLQ_RETURN_IF_ERROR(CudaStatus(cudaMemcpy(hb.data(), amb, hb.size() * 4, cudaMemcpyDeviceToHost), "argmax"));
      SLQ_RETURN_IF_ERROR(CudaStatus(cudaMemcpy(hq.data(), amq, hq.size() * 4, cudaMemcpyDeviceToHost), "argmax"));
    }
    std::vector<SequenceMetrics> res;
    for (size_t i = 0; i < set.seqs.size(); ++i) {
      const int64_t n = static_cast<int64_t>(set.seqs[i].size());
      if (n < 2) continue;
      SequenceMetrics m;
      for (int64_t t = 0; t < n - 1; ++t) {
        const size_t r = static_cast<size_t>(set.offset[i] + t);
        m.ear.push_back(h[4 * r]);
        m.kl.push_back(h[4 * r + 1]);
        m.nll_base.push_back(h[4 * r + 2]);
        m.nll_quant.push_back(h[4 * r + 3]);
        m.flip.push_back(hb[r] != hq[r]);
        m.argmax_quant.push_back(hq[r]);
      }
      res.push_back(std::move(m));
    }
    return res;
  }

 private:
  GpuEvalBackend() = default;

  // Finds the slot's place in the mirror and backs up its weights.
  absl::Status Place(const ConstLinearSlot& s) {
    const GpuModel::Impl& m = gm_->impl();
    const ModelConfig& c = m.config;
    SlotPlace p;
    p.original = s.op;
    p.rows = s.op->out_features();
    p.cols = s.op->in_features();
    if (s.layer < 0) {
      p.lin = &m.lm_head;
    } else {
      const GpuLayer& L = m.layers.at(static_cast<size_t>(s.layer));
      const bool qkv = !L.qkv.empty(), gu = !L.gate_up.empty();
      struct Suffix {
        const char* name;
        const GpuLinear* fused;
        const GpuLinear* alone;
        int64_t row0;
      };
      const Suffix table[] = {
          {".q_proj", qkv ? &L.qkv : nullptr, &L.q, 0},
          {".k_proj", qkv ? &L.qkv : nullptr, &L.k, c.q_dim()},
          {".v_proj", qkv ? &L.qkv : nullptr, &L.v, c.q_dim() + c.kv_dim()},
          {".o_proj", nullptr, &L.o, 0},
          {".gate_proj", gu ? &L.gate_up : nullptr, &L.gate, 0},
          {".up_proj", gu ? &L.gate_up : nullptr, &L.up, c.intermediate_size},
          {".down_proj", nullptr, &L.down, 0},
      };
      for (const Suffix& x : table) {
        if (!absl::EndsWith(s.name, x.name)) continue;
        p.lin = x.fused ? x.fused : x.alone;
        p.row0 = x.fused ? x.row0 : 0;
      }
    }
    if (p.lin == nullptr || p.lin->quant || p.lin->w == nullptr || p.lin->in != p.cols ||
        p.row0 + p.rows > p.lin->out) {
      return absl::InternalError(absl::StrCat("GPU evaluation: cannot place slot ", s.name, " in the dense mirror"));
    }
    SLQ_RETURN_IF_ERROR(p.backup.Reserve(p.bytes(), "original weights"));
    SLQ_RETURN_IF_ERROR(CudaStatus(
        cudaMemcpyAsync(p.backup.p, p.region(), p.bytes(), cudaMemcpyDeviceToDevice, stream_), "back up weights"));
    places_.emplace(s.name, std::move(p));
    return absl::OkStatus();
  }

  // fp32 host weights -> act region (through a device fp32 staging buffer).
  absl::Status UploadF32(const std::vector<float>& w, void* region) {
    SLQ_RETURN_IF_ERROR(staging_.Reserve(w.size() * 4, "fp32 weights"));
    SLQ_RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(staging_.p, w.data(), w.size() * 4, cudaMemcpyHostToDevice, stream_),
                                   "upload weights"));
    F32ToAct(staging_.as<float>(), static_cast<int64_t>(w.size()), region, gm_->act(), stream_);
    return CudaStatus(cudaGetLastError(), "convert weights");
  }

  // Largest number of rows of one batch of `set`.
  int64_t MaxBatchRows(const BaseSet& set) const {
    int64_t best = 0, cur = 0;
    for (const auto& s : set.seqs) {
      const int64_t n = static_cast<int64_t>(s.size());
      if (cur > 0 && cur + n > opt_.max_batch_tokens) cur = 0;
      cur += n;
      best = std::max(best, cur);
    }
    return best;
  }

  // Teacher-forced batches of whole sequences (up to max_batch_tokens tokens, at least one
  // sequence each); logits go to `dst` + the batch's first row (or to scratch_ when null),
  // then done(first sequence, result) runs.
  template <typename Fn>
  absl::Status RunBatches(const BaseSet& set, Fn&& done, float* dst) {
    constexpr int64_t kBlock = 16;
    const int64_t V = gm_->config().vocab_size;
    size_t i = 0;
    while (i < set.seqs.size()) {
      size_t j = i;
      int64_t tokens = 0, blocks = 0;
      while (j < set.seqs.size()) {
        const int64_t n = static_cast<int64_t>(set.seqs[j].size());
        if (j > i && tokens + n > opt_.max_batch_tokens) break;
        tokens += n;
        blocks += (n + kBlock - 1) / kBlock;
        ++j;
      }
      std::vector<BlockTable> tables(j - i);
      std::vector<ForwardChunk> chunks;
      for (size_t k = i; k < j; ++k) {
        if (set.seqs[k].empty()) continue;
        chunks.push_back({&tables[k - i], set.seqs[k], /*all_logits=*/true});
      }
      if (!chunks.empty()) {
        if (!kv_ || kv_->num_blocks() < blocks) {
          alloc_.reset();
          kv_.reset();
          SLQ_ASSIGN_OR_RETURN(kv_, GpuKvCache::Create(gm_->config(), gm_->act(), kBlock, blocks));
          alloc_ = std::make_unique<BlockAllocator>(blocks, kBlock);
        }
        GpuForwardOptions fo;
        fo.host_rows.assign(static_cast<size_t>(tokens), 0);
        fo.device_logits = dst ? dst + set.offset[i] * V : scratch_.as<float>();
        GpuForwardResult r;
        absl::Status s = GpuForward(*gm_, *kv_, *alloc_, chunks, ws_.get(), fo, &r);
        for (BlockTable& t : tables) alloc_->Release(&t);
        SLQ_RETURN_IF_ERROR(s);
        SLQ_RETURN_IF_ERROR(done(i, r));
      }
      i = j;
    }
    return absl::OkStatus();
  }

  GpuEvalOptions opt_;
  std::string name_;
  std::unique_ptr<GpuModel> gm_;
  std::unique_ptr<GpuWorkspace> ws_;
  std::unique_ptr<GpuKvCache> kv_;
  std::unique_ptr<BlockAllocator> alloc_;
  cudaStream_t stream_ = nullptr;
  std::map<std::string, SlotPlace> places_;
  std::vector<BaseSet> sets_;
  DevBuf staging_, scratch_, metrics_;
  // The level table of each width (kernels::GridLevelTable), uploaded on first use.
  std::array<DevBuf, 9> level_tables_;

  // Device copy of the width's grid level table (bits 2..8), uploaded once per backend.
  absl::StatusOr<const float*> LevelTable(int bits) {
    if (bits < 2 || bits > 8) {
      return absl::InvalidArgumentError(
          absl::StrCat("GPU evaluation: grid ids on a ", bits, "-bit matrix; allowed 2..8"));
    }
    DevBuf& t = level_tables_[static_cast<size_t>(bits)];
    if (t.p == nullptr) {
      const std::vector<float> levels = kernels::GridLevelTable(bits);
      SLQ_RETURN_IF_ERROR(t.Reserve(levels.size() * 4, "grid levels"));
      // On stream_, before the dequantization that reads it. Pageable source: cudaMemcpyAsync
      // returns once `levels` is staged, so it may go out of scope. On failure the table is
      // dropped so that the next call uploads it again.
      const cudaError_t e = cudaMemcpyAsync(t.p, levels.data(), levels.size() * 4, cudaMemcpyHostToDevice, stream_);
      if (e != cudaSuccess) {
        cudaFree(t.p);
        t.p = nullptr;
        t.bytes = 0;
        return CudaStatus(e, "upload grid levels");
      }
    }
    return t.as<float>();
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<quant::EvalBackend>> MakeGpuEvalBackend(const Model& model,
                                                                       const GpuEvalOptions& options) {
  std::string why;
  if (!GpuAvailable(&why)) return absl::FailedPreconditionError(absl::StrCat("no GPU: ", why));
  return GpuEvalBackend::Create(model, options);
}

}  // namespace slq::gpu
