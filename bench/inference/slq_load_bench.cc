// slq_load_bench: where the time of loading an artifact goes, stage by stage.
//
//   slq_load_bench ARTIFACT_DIR [--threads 16] [--repack fast|reference] [--repeat 1]
//
// Stages (wall seconds, each after the previous one, so the page cache is warm after the first):
//   verify   quant::ReadVerifiedManifest: manifest + size and sha256 of every listed file
//   load     quant::LoadArtifact: verify again + mmap + build the Model (QuantizedLinear slots);
//            "build" = load - verify
//   repack   every packed linear into the GPU layout (kernels/repack.h) on the host:
//            fast = RepackRowTiles over row tiles on the worker pool (what GpuModel::Upload does),
//            reference = the element-wise RepackForGpuReference on one thread (the old loader)
//   upload   gpu::GpuModel::Upload (repack + H2D copies), only in CUDA builds with a GPU
// --threads sets SLQ_THREADS (the worker pool's size) before anything starts the pool.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "kernels/repack.h"
#include "server/common/thread_pool.h"
#include "server/model/model.h"
#include "server/quant/artifact.h"
#if SLQ_LOAD_BENCH_GPU
#include "server/gpu/gpu_model.h"
#endif

namespace slq {
namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// User + system CPU seconds of the process so far (all threads): on a shared machine the
// CPU time of a stage is steadier than its wall time.
double Cpu() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

// Repacks every packed linear of `m`; returns the bytes of codes + scale/zero produced.
int64_t RepackAll(const Model& m, bool reference) {
  int64_t bytes = 0;
  std::vector<uint32_t> codes;
  std::vector<uint16_t> sz;
  for (const ConstLinearSlot& s : m.LinearSlots()) {
    const PackedLinear* p = s.op->packed();
    if (p == nullptr || !kernels::CheckGpuSupported(p->view).empty()) continue;
    if (reference) {
      kernels::RepackedMatrix r;
      (void)kernels::RepackForGpuReference(p->view, &r);
      bytes += static_cast<int64_t>(r.codes.size() * 4 + r.sz.size() * 2);
      continue;
    }
    const kernels::GpuLayout l = kernels::GpuLayoutFor(p->view);
    codes.resize(static_cast<size_t>(l.CodeWords()));
    sz.resize(static_cast<size_t>(l.SzHalves()));
    const int64_t wpt = kernels::CodeWordsPerTile(l), spt = kernels::SzHalvesPerTile(l);
    WorkerPool::Default().Run(l.row_tiles, [&](int64_t b, int64_t e) {
      kernels::RepackRowTiles(p->view, b, e, codes.data() + b * wpt, sz.data() + b * spt);
    });
    bytes += l.CodeWords() * 4 + l.SzHalves() * 2;
  }
  return bytes;
}

int Run(int argc, char** argv) {
  CLI::App app{"Times the stages of loading an slq artifact"};
  std::string dir, repack = "fast";
  int threads = 0, repeat = 1;
  app.add_option("artifact", dir, "artifact folder")->required();
  app.add_option("--threads", threads, "worker pool size (SLQ_THREADS); 0 = the machine's cores");
  app.add_option("--repack", repack, "fast | reference")->check(CLI::IsMember({"fast", "reference"}));
  app.add_option("--repeat", repeat, "repetitions of every stage (the minimum is reported too)");
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) setenv("SLQ_THREADS", std::to_string(threads).c_str(), 1);
  std::printf("artifact %s, %d pool threads, repack %s\n", dir.c_str(), WorkerPool::Default().threads(),
              repack.c_str());
  for (int rep = 0; rep < repeat; ++rep) {
    double t0 = Now(), c0 = Cpu();
    absl::StatusOr<nlohmann::json> man = quant::ReadVerifiedManifest(dir);
    const double verify = Now() - t0, verify_cpu = Cpu() - c0;
    if (!man.ok()) {
      std::fprintf(stderr, "verify: %s\n", man.status().ToString().c_str());
      return 1;
    }
    t0 = Now();
    c0 = Cpu();
    absl::StatusOr<quant::LoadedArtifact> a = quant::LoadArtifact(dir);
    const double load = Now() - t0, load_cpu = Cpu() - c0;
    if (!a.ok()) {
      std::fprintf(stderr, "load: %s\n", a.status().ToString().c_str());
      return 1;
    }
    t0 = Now();
    c0 = Cpu();
    const int64_t bytes = RepackAll(*a->model, repack == "reference");
    const double rp = Now() - t0, rp_cpu = Cpu() - c0;
    std::printf(
        "run %d: verify %.3f s (cpu %.2f) | load %.3f s (cpu %.2f; build %.3f s, cpu %.2f) | repack %.3f s (cpu %.2f; "
        "%.2f GB, %s) | host model %.2f GB",
        rep, verify, verify_cpu, load, load_cpu, load - verify, load_cpu - verify_cpu, rp, rp_cpu,
        static_cast<double>(bytes) / 1e9, repack.c_str(), static_cast<double>(a->model->MemoryBytes()) / 1e9);
#if SLQ_LOAD_BENCH_GPU
    std::string why;
    if (gpu::GpuAvailable(&why)) {
      t0 = Now();
      absl::StatusOr<std::unique_ptr<gpu::GpuModel>> g = gpu::GpuModel::Upload(*a->model);
      const double up = Now() - t0;
      if (!g.ok()) {
        std::fprintf(stderr, "\nupload: %s\n", g.status().ToString().c_str());
        return 1;
      }
      std::printf(" | upload %.3f s (%.2f GB of linears on the GPU) | verify+load+upload %.3f s", up,
                  static_cast<double>((*g)->LinearBytes()) / 1e9, load + up);
    } else {
      std::printf(" | upload skipped (%s)", why.c_str());
    }
#else
    std::printf(" | upload skipped (no CUDA in this build)");
#endif
    std::printf("\n");
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace slq

int main(int argc, char** argv) { return slq::Run(argc, argv); }
