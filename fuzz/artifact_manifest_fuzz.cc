// Fuzz target: the artifact manifest loader (slq::quant::LoadArtifact, server/quant/artifact*.cc).
//
// At start-up the target writes one real artifact: a tiny random Llama model (the test helper,
// fixed seed) with layer 0's linears quantized to 4 bits, through quant::WriteArtifact. Each
// input replaces that artifact's manifest.json and loads the artifact. Inputs that keep the
// manifest's file list (so the sha256 check passes) reach the model_config and per-linear
// parsing; the rest exercise the file verification.
//
// `artifact_manifest_fuzz --write-seed=DIR` writes the real manifest to DIR/manifest.json and
// exits (scripts/fuzz.sh builds the seed corpus with it). The weights are deterministic, so
// the seed's sha256 entries match the artifact every run writes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "fuzz/fuzz_util.h"
#include "server/common/file_util.h"
#include "server/model/linear.h"
#include "server/model/model_loader.h"
#include "server/model/test_model_util.h"
#include "server/quant/artifact.h"
#include "server/quant/quantized_linear.h"
#include "server/quant/quantizer.h"

namespace {

std::string g_artifact_dir;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "artifact_manifest_fuzz setup: %s\n", what.c_str());
  std::exit(1);
}

void WriteRealArtifact(const std::string& dir) {
  const std::string model_dir = slq::fuzz::ScratchDir() + "/model";
  slq::testing::TinyModelSpec spec;
  spec.vocab = 32;
  spec.hidden = 64;
  spec.intermediate = 64;
  spec.layers = 1;
  spec.heads = 2;
  spec.kv_heads = 1;
  spec.max_pos = 16;
  spec.seed = 7;
  absl::Status s = slq::testing::WriteTinyHfModel(model_dir, spec, slq::testing::MakeTinyWeights(spec));
  if (!s.ok()) Die(s.ToString());
  slq::LoadOptions lo;
  lo.compute_sha256 = false;
  auto model = slq::LoadModel(model_dir, lo);
  if (!model.ok()) Die(model.status().ToString());
  for (slq::LinearSlot& slot : (*model)->LinearSlots()) {
    if (slot.layer != 0) continue;
    const auto* d = dynamic_cast<const slq::DenseLinear*>(slot.op->get());
    if (d == nullptr) Die("slot " + slot.name + " is not dense");
    slq::quant::QuantConfig cfg;
    cfg.bits = 4;
    cfg.group_size = 32;
    auto q = slq::quant::QuantizeMatrix(d->weight().data(), d->out_features(), d->in_features(), cfg);
    if (!q.ok()) Die(q.status().ToString());
    *slot.op = std::make_unique<slq::quant::QuantizedLinear>(std::move(*q));
  }
  slq::quant::ArtifactWriteOptions wo;
  wo.certificate = {{"target", "ear>=0.99"}};
  s = slq::quant::WriteArtifact(**model, dir, wo);
  if (!s.ok()) Die(s.ToString());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  g_artifact_dir = slq::fuzz::ScratchDir() + "/artifact";
  WriteRealArtifact(g_artifact_dir);
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = (*argv)[i];
    if (arg.rfind("--write-seed=", 0) == 0) {
      const std::string out = arg.substr(13);
      std::filesystem::create_directories(out);
      std::filesystem::copy_file(g_artifact_dir + "/manifest.json", out + "/manifest.json",
                                 std::filesystem::copy_options::overwrite_existing);
      std::exit(0);
    }
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::FILE* f = std::fopen((g_artifact_dir + "/manifest.json").c_str(), "wb");
    if (f == nullptr) std::abort();
    if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
  }
  auto loaded = slq::quant::LoadArtifact(g_artifact_dir);
  if (loaded.ok() && !slq::CheckModelShapes(*loaded->model).ok()) __builtin_trap();
  return 0;
}
