// slq_grid_error_bench: what per-group grids (Grid Games, kernels/grids.h) do to a real model's
// weight error. For every width, the squared weight error ||W - W'||^2 summed over the model's
// transformer linears with grids over the same without (RTN, min/max or MSE-clipped ranges,
// asymmetric), the share of groups on each grid, the bits per parameter both ways, and the
// quantization time both ways (this thread's wall clock; indicative on a shared machine). --rotate
// quantizes every layer with the randomized Hadamard rotation (errors in the original basis).
//
//   slq_grid_error_bench --model ../shared/models/docs-19m --group-size 128 --bits 2-8
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "kernels/grids.h"
#include "server/model/model_loader.h"
#include "server/quant/packing.h"
#include "server/quant/quantizer.h"

namespace slq::quant {
namespace {

struct Totals {
  double err = 0, norm = 0, seconds = 0, bits = 0, params = 0;
  int64_t grid_count[kernels::kGridCount] = {};
};

// Quantizes w at cfg and adds its squared error, squared norm, time, bits and grid shares to t.
bool Accumulate(const std::vector<float>& w, int64_t rows, int64_t cols, const QuantConfig& cfg, Totals& t) {
  const auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<QuantizedMatrix> q = QuantizeMatrix(w.data(), rows, cols, cfg);
  t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!q.ok()) {
    std::fprintf(stderr, "%s\n", q.status().ToString().c_str());
    return false;
  }
  const std::vector<float> d = DequantizeOriginalBasis(*q);  // = Dequantize without --rotate
  for (size_t i = 0; i < w.size(); ++i) {
    const double e = static_cast<double>(w[i]) - d[i];
    t.err += e * e;
    t.norm += static_cast<double>(w[i]) * w[i];
  }
  const double params = static_cast<double>(rows * cols);
  t.bits += q->BitsPerParam() * params;
  t.params += params;
  const int64_t gpr = kernels::GroupsPerRow(cols, q->group_size);
  if (q->has_grids()) {
    for (uint8_t id : UnpackCodes(q->grid_ids.data(), rows, gpr, kernels::kGridIdBits)) ++t.grid_count[id];
  } else {
    t.grid_count[0] += rows * gpr;
  }
  return true;
}

}  // namespace
}  // namespace slq::quant

int main(int argc, char** argv) {
  using namespace slq;
  using namespace slq::quant;
  CLI::App app{"squared weight error with per-group grids vs the uniform grid, per width, on a real model"};
  std::string model_path, bits_range = "2-8";
  int64_t group = 128;
  bool mse_clip = false, lm_head = false, rotate = false;
  app.add_option("--model", model_path, "model folder or file (LoadModel)")->required();
  app.add_option("--group-size", group, "group size (-1 = per row)");
  app.add_option("--bits", bits_range, "widths, LO-HI");
  app.add_flag("--mse-clip", mse_clip, "MSE-clipped ranges (both ways)");
  app.add_flag("--lm-head", lm_head, "include the LM head");
  app.add_flag("--rotate", rotate, "randomized Hadamard rotation of every layer's input dimension (both ways)");
  CLI11_PARSE(app, argc, argv);
  int lo = 2, hi = 8;
  if (std::sscanf(bits_range.c_str(), "%d-%d", &lo, &hi) != 2 || lo < 2 || hi > 8 || lo > hi) {
    std::fprintf(stderr, "--bits %s: expected LO-HI within 2-8, e.g. 2-8\n", bits_range.c_str());
    return 2;
  }
  absl::StatusOr<std::unique_ptr<Model>> model = LoadModel(model_path);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  struct Linear {
    std::vector<float> w;
    int64_t rows, cols;
  };
  std::vector<Linear> linears;
  for (LinearSlot& s : (*model)->LinearSlots()) {
    if (s.layer < 0 && !lm_head) continue;
    const LinearOp* op = s.op->get();
    linears.push_back({op->WeightF32(), op->out_features(), op->in_features()});
  }
  std::printf("model %s: %zu linears, group size %ld, %s ranges, asymmetric RTN%s\n\n", model_path.c_str(),
              linears.size(), static_cast<long>(group), mse_clip ? "MSE-clipped" : "min/max",
              rotate ? ", Hadamard-rotated inputs" : "");
  std::printf(
      "| bits | rel. error uniform | rel. error grids | grids / uniform | groups on grid 0 / 1 / 2 / 3 "
      "| bits/param uniform | bits/param grids | quantize s uniform | quantize s grids |\n"
      "|---:|---:|---:|---:|---|---:|---:|---:|---:|\n");
  for (int bits = lo; bits <= hi; ++bits) {
    Totals u, g;
    for (const Linear& l : linears) {
      QuantConfig cfg;
      cfg.bits = bits;
      cfg.group_size = group;
      cfg.mse_clip = mse_clip;
      cfg.rotate = rotate;
      cfg.rotation_seed = 1;
      if (!Accumulate(l.w, l.rows, l.cols, cfg, u)) return 1;
      cfg.grids = true;
      if (!Accumulate(l.w, l.rows, l.cols, cfg, g)) return 1;
    }
    int64_t groups = 0;
    for (int64_t c : g.grid_count) groups += c;
    std::printf("| %d | %.4e | %.4e | %.4f | %.3f / %.3f / %.3f / %.3f | %.4f | %.4f | %.2f | %.2f |\n", bits,
                u.err / u.norm, g.err / g.norm, g.err / u.err, static_cast<double>(g.grid_count[0]) / groups,
                static_cast<double>(g.grid_count[1]) / groups, static_cast<double>(g.grid_count[2]) / groups,
                static_cast<double>(g.grid_count[3]) / groups, u.bits / u.params, g.bits / g.params, u.seconds,
                g.seconds);
  }
  return 0;
}
