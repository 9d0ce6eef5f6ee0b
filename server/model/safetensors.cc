#include "server/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "server/common/file_util.h"
#include "server/common/half.h"
#include "server/common/status_macros.h"
#include "server/model/worker_pool.h"

namespace slq {
namespace {

using json = nlohmann::json;

// Header sizes above this are rejected (the reference implementation uses the same bound).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DTypeInfo {
  DType dtype;
  absl::string_view name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::kF32, "F32", 4}, {DType::kF16, "F16", 2}, {DType::kBF16, "BF16", 2}, {DType::kU8, "U8", 1},
    {DType::kI8, "I8", 1},   {DType::kU16, "U16", 2}, {DType::kI16, "I16", 2},   {DType::kU32, "U32", 4},
    {DType::kI32, "I32", 4}, {DType::kI64, "I64", 8},
};

std::string SupportedDTypes() {
  std::vector<absl::string_view> names;
  for (const auto& d : kDTypes) names.push_back(d.name);
  return absl::StrJoin(names, ", ");
}

absl::Status Corrupt(const std::string& file, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors file '", file, "': ", what));
}

absl::Status CorruptTensor(const std::string& file, absl::string_view tensor, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors file '", file, "', tensor '", tensor, "': ", what));
}

// Parses one header entry into *t (offsets relative to the data buffer -> [*begin, *end)).
absl::Status ParseEntry(const std::string& file, const std::string& name, const json& e, TensorView* t, uint64_t* begin,
                        uint64_t* end) {
  if (!e.is_object()) return CorruptTensor(file, name, "header entry is not an object");
  auto dt = e.find("dtype");
  auto sh = e.find("shape");
  auto off = e.find("data_offsets");
  if (dt == e.end() || !dt->is_string()) return CorruptTensor(file, name, "missing 'dtype'");
  if (sh == e.end() || !sh->is_array()) return CorruptTensor(file, name, "missing 'shape'");
  if (off == e.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned()) {
    return CorruptTensor(file, name, "'data_offsets' must be two non-negative integers");
  }
  auto dtype = ParseDType(dt->get<std::string>());
  if (!dtype.ok()) return CorruptTensor(file, name, dtype.status().message());
  t->name = name;
  t->dtype = *dtype;
  t->file = file;
  uint64_t numel = 1;
  for (const json& d : *sh) {
    if (!d.is_number_unsigned()) return CorruptTensor(file, name, "shape entries must be >= 0");
    uint64_t v = d.get<uint64_t>();
    if (v != 0 && numel > (uint64_t{1} << 50) / v) {
      return CorruptTensor(file, name, "shape is too large");
    }
    numel *= v;
    t->shape.push_back(static_cast<int64_t>(v));
  }
  *begin = (*off)[0].get<uint64_t>();
  *end = (*off)[1].get<uint64_t>();
  if (*end < *begin) return CorruptTensor(file, name, "data_offsets end < begin");
  uint64_t want = numel * DTypeSize(t->dtype);
  if (*end - *begin != want) {
    return CorruptTensor(file, name,
                         absl::StrCat("dtype ", DTypeName(t->dtype), " and shape ", t->ShapeString(), " need ", want,
                                      " bytes but data_offsets span ", *end - *begin));
  }
  return absl::OkStatus();
}

// n zero floats. For large n the storage is first asked for transparent huge pages and its
// pages are faulted in by the worker pool, before the vector's own zero-fill: a plain
// std::vector<float>(n) first-touches every 4 KiB page on one thread, which for the fp32
// embeddings and LM head of an 8B-shaped model (4.2 GB) dominated the artifact build on the
// 2-core VM (bench/results/load-2026-12-01.md).
std::vector<float> PrefaultedFloats(size_t n) {
  std::vector<float> v;
  constexpr size_t kHuge = size_t{1} << 21;
  const size_t bytes = n * sizeof(float);
  if (bytes >= 4 * kHuge) {
    v.reserve(n);
    char* p = reinterpret_cast<char*>(v.data());
    const uintptr_t a = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
    const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kHuge - 1);
    if (e > a) (void)::madvise(reinterpret_cast<void*>(a), e - a, MADV_HUGEPAGE);  // a hint; may fail
    const int64_t pages = static_cast<int64_t>((bytes + 4095) / 4096);
    WorkerPool::Default().Run(pages, [&](int64_t b, int64_t end) {
      for (int64_t i = b; i < end; ++i) p[i * 4096] = 0;
    });
  }
  v.resize(n);
  return v;
}

}  // namespace

absl::string_view DTypeName(DType d) {
  for (const auto& e : kDTypes) {
    if (e.dtype == d) return e.name;
  }
  return "?";
}

size_t DTypeSize(DType d) {
  for (const auto& e : kDTypes) {
    if (e.dtype == d) return e.size;
  }
  return 0;
}

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  for (const auto& e : kDTypes) {
    if (e.name == name) return e.dtype;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported dtype '", name, "' (supported: ", SupportedDTypes(), ")"));
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::ShapeString() const { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no such file: '", path, "'"));
    return absl::PermissionDeniedError(absl::StrCat("cannot open '", path, "'"));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return absl::InternalError(absl::StrCat("cannot stat '", path, "'"));
  }
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ > 0) {
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      return absl::InternalError(absl::StrCat("cannot mmap '", path, "'"));
    }
    f->data_ = static_cast<const uint8_t*>(p);
    f->mapped_ = true;
  }
  ::close(fd);
  SLQ_RETURN_IF_ERROR(f->Parse());
  return f;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::FromBytes(std::string bytes,
                                                                            const std::string& what) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = what;
  f->owned_ = std::move(bytes);
  f->data_ = reinterpret_cast<const uint8_t*>(f->owned_.data());
  f->size_ = f->owned_.size();
  SLQ_RETURN_IF_ERROR(f->Parse());
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapped_ && data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

absl::Status SafetensorsFile::Parse() {
  if (size_ < 8) return Corrupt(path_, absl::StrCat("file has ", size_, " bytes, fewer than 8"));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data_[i];
  if (n > size_ - 8 || n > kMaxHeaderBytes) {
    return Corrupt(
        path_, absl::StrCat("header length ", n, " exceeds the file (", size_ - 8, " bytes after the length field)"));
  }
  absl::string_view text(reinterpret_cast<const char*>(data_ + 8), n);
  json header = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return Corrupt(path_, "header is not a valid JSON object");
  }
  const uint64_t data_size = size_ - 8 - n;
  const uint8_t* buffer = data_ + 8 + n;
  struct Range {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return Corrupt(path_, "__metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) return Corrupt(path_, "__metadata__ values must be strings");
        metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    TensorView t;
    uint64_t begin = 0, end = 0;
    SLQ_RETURN_IF_ERROR(ParseEntry(path_, it.key(), *it, &t, &begin, &end));
    if (end > data_size) {
      return CorruptTensor(
          path_, it.key(),
          absl::StrCat("data_offsets [", begin, ", ", end, ") beyond the data buffer of ", data_size, " bytes"));
    }
    t.bytes = std::span<const uint8_t>(buffer + begin, end - begin);
    auto [pos, inserted] = tensors_.emplace(it.key(), std::move(t));
    ranges.push_back({begin, end, &pos->first});
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  for (size_t i = 1; i < ranges.size(); ++i) {
    const Range& a = ranges[i - 1];
    const Range& b = ranges[i];
    if (b.begin < a.end && b.end > b.begin && a.end > a.begin) {
      return Corrupt(path_, absl::StrCat("tensors '", *a.name, "' [", a.begin, ", ", a.end, ") and '", *b.name, "' [",
                                         b.begin, ", ", b.end, ") overlap"));
    }
  }
  return absl::OkStatus();
}

const TensorView* SafetensorsFile::Find(absl::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

absl::StatusOr<std::unique_ptr<TensorStore>> TensorStore::OpenFile(const std::string& path) {
  auto store = std::make_unique<TensorStore>();
  SLQ_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  for (const auto& [name, view] : file->tensors()) store->index_[name] = &view;
  store->files_.push_back(std::move(file));
  return store;
}

absl::StatusOr<std::unique_ptr<TensorStore>> TensorStore::OpenIndex(const std::string& index_path) {
  SLQ_ASSIGN_OR_RETURN(std::string text, ReadFile(index_path));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("index '", index_path, "' is not a JSON object with a 'weight_map' object"));
  }
  const std::filesystem::path dir = std::filesystem::path(index_path).parent_path();
  auto store = std::make_unique<TensorStore>();
  std::map<std::string, const SafetensorsFile*> shards;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("index '", index_path, "': entry for '", it.key(), "' is not a file name"));
    }
    const std::string shard = it->get<std::string>();
    if (shard.find("..") != std::string::npos || (!shard.empty() && shard[0] == '/')) {
      return absl::InvalidArgumentError(
          absl::StrCat("index '", index_path, "': shard path '", shard, "' leaves the folder"));
    }
    if (!shards.count(shard)) {
      SLQ_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open((dir / shard).string()));
      shards[shard] = file.get();
      store->files_.push_back(std::move(file));
    }
    const TensorView* v = shards[shard]->Find(it.key());
    if (v == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("index '", index_path, "' maps tensor '", it.key(), "' to '",
                                                     shard, "' but that shard does not contain it"));
    }
    store->index_[it.key()] = v;
  }
  return store;
}

absl::StatusOr<std::unique_ptr<TensorStore>> TensorStore::OpenDir(const std::string& dir) {
  const std::string single = dir + "/model.safetensors";
  const std::string index = dir + "/model.safetensors.index.json";
  if (std::filesystem::exists(single)) return OpenFile(single);
  if (std::filesystem::exists(index)) return OpenIndex(index);
  return absl::NotFoundError(absl::StrCat("folder '", dir,
                                          "' has neither model.safetensors nor "
                                          "model.safetensors.index.json"));
}

const TensorView* TensorStore::Find(absl::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

absl::StatusOr<const TensorView*> TensorStore::Get(absl::string_view name) const {
  const TensorView* v = Find(name);
  if (v != nullptr) return v;
  return absl::NotFoundError(absl::StrCat("tensor '", name, "' not found in ", absl::StrJoin(FilePaths(), ", ")));
}

std::vector<std::string> TensorStore::Names() const {
  std::vector<std::string> names;
  for (const auto& [n, v] : index_) names.push_back(n);
  return names;
}

std::vector<std::string> TensorStore::FilePaths() const {
  std::vector<std::string> paths;
  for (const auto& f : files_) paths.push_back(f->path());
  return paths;
}

absl::StatusOr<std::vector<float>> ToFloat32(const TensorView& t) {
  const size_t n = static_cast<size_t>(t.numel());
  std::vector<float> out = PrefaultedFloats(n);
  const uint8_t* p = t.bytes.data();
  switch (t.dtype) {
    case DType::kF32:
      if (n > 0) std::memcpy(out.data(), p, n * 4);
      return out;
    case DType::kF16:
    case DType::kBF16: {
      const bool bf = t.dtype == DType::kBF16;
      // Parallel: an 8B-shaped checkpoint is ~7e9 values. Inside a parallel region (the loader
      // converts tensors of several layers at once) the pool runs this inline.
      WorkerPool::Default().Run(
          static_cast<int64_t>(n),
          [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) {
              uint16_t h;
              std::memcpy(&h, p + 2 * i, 2);
              out[i] = bf ? Bf16ToFloat(h) : HalfToFloat(h);
            }
          },
          static_cast<int>(std::max<size_t>(1, n >> 18)));
      return out;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' in '", t.file, "' has dtype ",
                                                     DTypeName(t.dtype), "; only F32, F16 and BF16 convert to fp32"));
  }
}

absl::Status ExpectShape(const TensorView& t, std::span<const int64_t> shape) {
  if (std::equal(t.shape.begin(), t.shape.end(), shape.begin(), shape.end())) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' in '", t.file, "' has shape ", t.ShapeString(),
                                                 ", expected [", absl::StrJoin(shape, ", "), "]"));
}

absl::Status CheckRawAccess(const TensorView& t, DType expected, size_t elem_size) {
  if (t.dtype != expected) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' in '", t.file, "' has dtype ",
                                                   DTypeName(t.dtype), ", expected ", DTypeName(expected)));
  }
  if (DTypeSize(expected) != elem_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("element size ", elem_size, " does not match dtype ", DTypeName(expected)));
  }
  return absl::OkStatus();
}

}  // namespace slq
