#include "kernels/repack.h"

#include "kernels/dequant_ref.h"

namespace slq::kernels {
namespace {

// Where the pair holding (r, c) lives: row tile, chunk, lane, pair index, and whether c is the
// high (odd) code of the pair.
struct PairPos {
  int64_t rt, chunk;
  int lane, pair, hi;
};

PairPos Locate(int64_t r, int64_t c) {
  PairPos p;
  p.rt = r / kTileRows;
  const int rr = static_cast<int>(r % kTileRows);
  p.chunk = c / kChunkCols;
  const int k = static_cast<int>(c % kChunkCols);
  const int s = k / 16, kk = k % 16;
  const int e = (rr >= 8 ? 1 : 0) + (kk >= 8 ? 2 : 0);
  const int t = (kk % 8) / 2;
  p.lane = (rr % 8) * 4 + t;
  p.pair = s * 4 + e;
  p.hi = kk % 2;
  return p;
}

// Index of the uint32 word of plane (offset `off`, width w) for pair position pp.
int64_t WordIndex(const GpuLayout& l, const PairPos& pp, int off, int w, int* bitpos) {
  const int per_word = 16 / w;
  const int word = pp.pair / per_word;
  const int slot = pp.pair % per_word;
  *bitpos = slot * w + 16 * pp.hi;
  const int v = off + word / 4;
  return (((pp.rt * l.chunks + pp.chunk) * l.bits + v) * 32 + pp.lane) * 4 + word % 4;
}

}  // namespace

int BitPlanes(int bits, int widths[3]) {
  int n = 0;
  for (int w : {8, 4, 2, 1}) {
    if (bits & w) widths[n++] = w;
  }
  return n;
}

std::string CheckGpuSupported(const PackedMatrixView& w) {
  std::string err = ValidatePackedView(w);
  if (!err.empty()) return err;
  if (w.group_size != 64 && w.group_size != 128) {
    return "group_size = " + std::to_string(w.group_size) + " is not supported by the CUDA kernels; allowed 64 or 128";
  }
  if (w.cols % 8 != 0) {
    return "cols = " + std::to_string(w.cols) + " is not supported by the CUDA kernels; cols must be a multiple of 8";
  }
  return "";
}

std::string RepackForGpu(const PackedMatrixView& w, RepackedMatrix* out) {
  std::string err = CheckGpuSupported(w);
  if (!err.empty()) return err;
  GpuLayout& l = out->layout;
  l = GpuLayout{};
  l.rows = w.rows;
  l.cols = w.cols;
  l.bits = w.bits;
  l.group_size = w.group_size;
  l.row_tiles = (w.rows + kTileRows - 1) / kTileRows;
  l.chunks = (w.cols + kChunkCols - 1) / kChunkCols;
  out->codes.assign(static_cast<size_t>(l.CodeWords()), 0u);
  out->sz.assign(static_cast<size_t>(l.SzHalves()), 0u);
  int widths[3];
  const int np = BitPlanes(w.bits, widths);
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t c = 0; c < w.cols; ++c) {
      const uint32_t q = PackedCode(w, r, c);
      const PairPos pp = Locate(r, c);
      int off = 0;
      for (int i = 0; i < np; ++i) {
        int bitpos;
        const int64_t idx = WordIndex(l, pp, off, widths[i], &bitpos);
        out->codes[idx] |= ((q >> off) & ((1u << widths[i]) - 1u)) << bitpos;
        off += widths[i];
      }
    }
  }
  const int64_t gpr = GroupsPerRow(w.cols, w.group_size);
  const int64_t gpad = l.chunks * kChunkCols / w.group_size;
  for (int64_t r = 0; r < w.rows; ++r) {
    const int64_t rt = r / kTileRows;
    const int rr = static_cast<int>(r % kTileRows);
    for (int64_t g = 0; g < gpr; ++g) {
      const int64_t base = ((rt * gpad + g) * 8 + rr % 8) * 4 + (rr >= 8 ? 2 : 0);
      out->sz[base] = w.scales[r * gpr + g];
      out->sz[base + 1] = w.zeros[r * gpr + g];
    }
  }
  return "";
}

uint32_t RepackedCode(const RepackedMatrix& m, int64_t r, int64_t c) {
  const PairPos pp = Locate(r, c);
  int widths[3];
  const int np = BitPlanes(m.layout.bits, widths);
  uint32_t q = 0;
  int off = 0;
  for (int i = 0; i < np; ++i) {
    int bitpos;
    const int64_t idx = WordIndex(m.layout, pp, off, widths[i], &bitpos);
    q |= ((m.codes[idx] >> bitpos) & ((1u << widths[i]) - 1u)) << off;
    off += widths[i];
  }
  return q;
}

}  // namespace slq::kernels
