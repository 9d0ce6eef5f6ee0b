#include "server/quant/artifact_hash.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/common/sha256.h"
#include "server/common/thread_pool.h"

namespace slq::quant {
namespace {

// An open file descriptor, closed on scope exit.
class Fd {
 public:
  explicit Fd(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// sha256 of bytes [begin, begin + len) of the open file.
absl::StatusOr<std::string> Sha256Range(int fd, const std::string& path, uint64_t begin, uint64_t len) {
  Sha256Hasher h;
  std::vector<char> buf(std::min<uint64_t>(len, uint64_t{1} << 20));
  while (len > 0) {
    const ssize_t n = ::pread(fd, buf.data(), std::min<uint64_t>(len, buf.size()), static_cast<off_t>(begin));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return absl::InternalError(absl::StrCat("read error while hashing '", path, "': ", std::strerror(errno)));
    if (n == 0)
      return absl::DataLossError(absl::StrCat("artifact file ", path, " ends at byte ", begin, " (truncated?)"));
    h.Update(std::string_view(buf.data(), static_cast<size_t>(n)));
    begin += static_cast<uint64_t>(n);
    len -= static_cast<uint64_t>(n);
  }
  return h.FinishHex();
}

// One unit of hashing work: a chunk of a file, or a whole file (whole == true).
struct Task {
  size_t file;
  uint64_t begin, len;
  bool whole;
  size_t chunk;
};

}  // namespace

absl::StatusOr<std::vector<std::string>> Sha256Chunks(const std::string& path, uint64_t bytes, uint64_t chunk_bytes) {
  if (chunk_bytes == 0) return absl::InvalidArgumentError("Sha256Chunks: chunk_bytes is 0");
  Fd fd(path);
  if (fd.get() < 0) return absl::NotFoundError(absl::StrCat("cannot open '", path, "' to hash it"));
  const size_t n = static_cast<size_t>((bytes + chunk_bytes - 1) / chunk_bytes);
  std::vector<std::string> out(n);
  std::vector<absl::Status> status(n);
  WorkerPool::Default().Run(
      static_cast<int64_t>(n),
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const uint64_t begin = static_cast<uint64_t>(i) * chunk_bytes;
          absl::StatusOr<std::string> h = Sha256Range(fd.get(), path, begin, std::min(chunk_bytes, bytes - begin));
          if (h.ok()) {
            out[i] = *std::move(h);
          } else {
            status[i] = h.status();
          }
        }
      },
      static_cast<int64_t>(n));
  for (const absl::Status& s : status) {
    if (!s.ok()) return s;
  }
  return out;
}

absl::Status VerifyDigests(const std::vector<DigestCheck>& files) {
  std::vector<Task> tasks;
  for (size_t f = 0; f < files.size(); ++f) {
    const DigestCheck& d = files[f];
    if (d.chunk_bytes == 0) {
      tasks.push_back({f, 0, d.bytes, true, 0});
      continue;
    }
    const uint64_t n = (d.bytes + d.chunk_bytes - 1) / d.chunk_bytes;
    if (n != d.chunk_sha256.size()) {
      return absl::DataLossError(absl::StrCat("artifact file ", d.path, ": the manifest lists ", d.chunk_sha256.size(),
                                              " chunk digests for ", d.bytes, " bytes in chunks of ", d.chunk_bytes,
                                              " (", n, " expected)"));
    }
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t begin = i * d.chunk_bytes;
      tasks.push_back({f, begin, std::min(d.chunk_bytes, d.bytes - begin), false, static_cast<size_t>(i)});
    }
  }
  // Largest first, so a whole-file hash of an old artifact does not start last.
  std::stable_sort(tasks.begin(), tasks.end(), [](const Task& a, const Task& b) { return a.len > b.len; });
  std::vector<absl::Status> status(tasks.size());
  WorkerPool::Default().Run(
      static_cast<int64_t>(tasks.size()),
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const Task& t = tasks[i];
          const DigestCheck& d = files[t.file];
          absl::StatusOr<std::string> h = t.whole ? Sha256File(d.path) : [&]() -> absl::StatusOr<std::string> {
            Fd fd(d.path);
            if (fd.get() < 0) return absl::NotFoundError(absl::StrCat("cannot open '", d.path, "' to hash it"));
            return Sha256Range(fd.get(), d.path, t.begin, t.len);
          }();
          if (!h.ok()) {
            status[i] = h.status();
          } else if (t.whole && *h != d.sha256) {
            status[i] = absl::DataLossError(absl::StrCat("artifact file ", d.path, " sha256 ", *h,
                                                         " differs from the manifest's ", d.sha256, " (corrupted)"));
          } else if (!t.whole && *h != d.chunk_sha256[t.chunk]) {
            status[i] = absl::DataLossError(
                absl::StrCat("artifact file ", d.path, " bytes [", t.begin, ", ", t.begin + t.len, ") sha256 ", *h,
                             " differ from the manifest's ", d.chunk_sha256[t.chunk], " (corrupted)"));
          }
        }
      },
      static_cast<int64_t>(tasks.size()));
  // Report the first bad file in the caller's order (then its first bad chunk).
  const absl::Status* first = nullptr;
  const Task* first_task = nullptr;
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (status[i].ok()) continue;
    const Task& t = tasks[i];
    if (first == nullptr || t.file < first_task->file || (t.file == first_task->file && t.begin < first_task->begin)) {
      first = &status[i];
      first_task = &t;
    }
  }
  return first == nullptr ? absl::OkStatus() : *first;
}

}  // namespace slq::quant
