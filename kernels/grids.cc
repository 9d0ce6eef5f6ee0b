#include "kernels/grids.h"

namespace slq::kernels {
namespace {
#include "kernels/grids_table.inc"
}  // namespace

const float* GridLevels(int bits, int grid) {
  if (bits < 2 || bits > 8 || grid < 0 || grid >= kGridCount) return nullptr;
  return kGridTables[bits - 2][grid];
}

}  // namespace slq::kernels
