// slq_grid_error_bench: what per-group grids (Grid Games, kernels/grids.h), compact "s8" scales
// (kernels/scale_codes.h) and the group size do to a real model's weight error, at equal bits.
// For every width and every (scale format, group size): the relative squared weight error
// ||W - W'||^2 / ||W||^2 summed over the model's transformer linears, uniform grid and per-group
// grids, with the bits per parameter each costs (exact: BitsPerParam, s8 base included), the
// error relative to fp16 g128 uniform of the same width when that configuration is in the run,
// the share of groups on grid 0, and the quantization time (this process's wall clock; indicative
// on a shared machine). RTN, asymmetric; --mse-clip: MSE-clipped ranges, and grids then pick
// (clip, grid) jointly, with the sequential rule (clip on the uniform grid, then the grid) as an
// extra row "grids seq". --rotate quantizes every layer with the randomized Hadamard rotation
// (errors in the original basis; fp16 scales only).
//
//   slq_grid_error_bench --model ../shared/models/docs-19m --bits 4-8 --scales both --group-sizes 32,64,128
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "kernels/grids.h"
#include "server/model/model_loader.h"
#include "server/quant/packing.h"
#include "server/quant/quantizer.h"

namespace slq::quant {
namespace {

struct Totals {
  double err = 0, norm = 0, seconds = 0, bits = 0, params = 0;
  int64_t groups = 0, on_grid0 = 0;
};

// Quantizes w at cfg and adds its squared error, squared norm, time, bits and grid-0 share to t.
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
  t.groups += rows * gpr;
  if (q->has_grids()) {
    for (uint8_t id : UnpackCodes(q->grid_ids.data(), rows, gpr, kernels::kGridIdBits)) t.on_grid0 += id == 0;
  } else {
    t.on_grid0 += rows * gpr;
  }
  return true;
}

// One configuration of the table: scale format, group size, grids and the (clip, grid) rule.
struct Variant {
  ScaleFormat scales;
  int64_t group;
  bool grids, joint;
  std::string Name() const {
    return std::string(ScaleFormatName(scales)) + " | " + std::to_string(group) + " | " +
           (grids ? (joint ? "grids" : "grids seq") : "uniform");
  }
};

}  // namespace
}  // namespace slq::quant

int main(int argc, char** argv) {
  using namespace slq;
  using namespace slq::quant;
  CLI::App app{"relative weight error and bits/param per width, scale format, group size and grids, on a real model"};
  std::string model_path, bits_range = "2-8", scales = "fp16", groups_arg = "128";
  bool mse_clip = false, lm_head = false, rotate = false;
  app.add_option("--model", model_path, "model folder or file (LoadModel)")->required();
  app.add_option("--group-sizes", groups_arg, "comma-separated group sizes (-1 = per row), e.g. 32,64,128");
  app.add_option("--group-size", groups_arg, "alias of --group-sizes");
  app.add_option("--bits", bits_range, "widths, LO-HI");
  app.add_option("--scales", scales, "fp16, s8 or both (s8 with both: every group size; fp16: g128 and the given)");
  app.add_flag("--mse-clip", mse_clip, "MSE-clipped ranges; grids pick (clip, grid) jointly, plus a sequential row");
  app.add_flag("--lm-head", lm_head, "include the LM head");
  app.add_flag("--rotate", rotate, "randomized Hadamard rotation of every layer's input dimension (fp16 scales)");
  CLI11_PARSE(app, argc, argv);
  int lo = 2, hi = 8;
  if (std::sscanf(bits_range.c_str(), "%d-%d", &lo, &hi) != 2 || lo < 2 || hi > 8 || lo > hi) {
    std::fprintf(stderr, "--bits %s: expected LO-HI within 2-8, e.g. 2-8\n", bits_range.c_str());
    return 2;
  }
  if (scales != "fp16" && scales != "s8" && scales != "both") {
    std::fprintf(stderr, "--scales %s: expected fp16, s8 or both\n", scales.c_str());
    return 2;
  }
  if (rotate && scales != "fp16") {
    std::fprintf(stderr, "--rotate works with --scales fp16 only (s8 scales with a rotation are not supported)\n");
    return 2;
  }
  std::vector<int64_t> group_sizes;
  for (absl::string_view g : absl::StrSplit(groups_arg, ',')) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(g, &v) || (v < 1 && v != -1)) {
      std::fprintf(stderr, "--group-sizes %s: expected comma-separated sizes >= 1 or -1\n", groups_arg.c_str());
      return 2;
    }
    group_sizes.push_back(v);
  }
  // The variants: fp16 at each group size (with both: g128 only, the baseline), s8 at each.
  std::vector<Variant> variants;
  auto add = [&](ScaleFormat f, int64_t g) {
    variants.push_back({f, g, false, true});
    variants.push_back({f, g, true, true});
    if (mse_clip) variants.push_back({f, g, true, false});
  };
  if (scales == "fp16") {
    for (int64_t g : group_sizes) add(ScaleFormat::kFp16, g);
  } else {
    if (scales == "both") add(ScaleFormat::kFp16, 128);
    for (int64_t g : group_sizes) add(ScaleFormat::kS8, g);
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
  double params = 0;
  for (LinearSlot& s : (*model)->LinearSlots()) {
    if (s.layer < 0 && !lm_head) continue;
    const LinearOp* op = s.op->get();
    linears.push_back({op->WeightF32(), op->out_features(), op->in_features()});
    params += static_cast<double>(op->out_features() * op->in_features());
  }
  std::printf("model %s: %zu linears (%.0f params), %s ranges, asymmetric RTN%s\n\n", model_path.c_str(),
              linears.size(), params, mse_clip ? "MSE-clipped" : "min/max", rotate ? ", Hadamard-rotated inputs" : "");
  std::printf(
      "| bits | scales | group | grids | rel. error | bits/param | error / fp16 g128 uniform | groups on grid 0 "
      "| quantize s |\n|---:|---|---:|---|---:|---:|---:|---:|---:|\n");
  for (int bits = lo; bits <= hi; ++bits) {
    double baseline = -1;  // fp16 g128 uniform of this width, when in the run
    for (const Variant& v : variants) {
      Totals t;
      for (const Linear& l : linears) {
        QuantConfig cfg;
        cfg.bits = bits;
        cfg.group_size = v.group;
        cfg.mse_clip = mse_clip;
        cfg.rotate = rotate;
        cfg.rotation_seed = 1;
        cfg.grids = v.grids;
        cfg.joint_clip_grid = v.joint;
        cfg.scales = v.scales;
        if (!Accumulate(l.w, l.rows, l.cols, cfg, t)) return 1;
      }
      const double rel = t.err / t.norm;
      if (v.scales == ScaleFormat::kFp16 && v.group == 128 && !v.grids) baseline = rel;
      char ratio[32] = "-";
      if (baseline > 0) std::snprintf(ratio, sizeof(ratio), "%.4f", rel / baseline);
      std::printf("| %d | %s | %.4e | %.4f | %s | %.3f | %.2f |\n", bits, v.Name().c_str(), rel, t.bits / t.params,
                  ratio, static_cast<double>(t.on_grid0) / static_cast<double>(t.groups), t.seconds);
      std::fflush(stdout);
    }
  }
  return 0;
}
