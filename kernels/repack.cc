#include "kernels/repack.h"

#include <algorithm>
#include <cstring>

#include "kernels/dequant_ref.h"
#include "kernels/grids.h"

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

// The codes of one 16 x 256 tile, one byte each, zero outside the matrix.
using Tile = uint8_t[kTileRows][kChunkCols];

// Codes [c0, c0 + n) of a packed row whose stream starts word-aligned at `p` (c0 is a multiple
// of 256, so c0 * bits is a multiple of 32): a 64-bit window refilled one word at a time, never
// reading past the last word that holds a wanted code.
template <int B>
void UnpackRun(const uint32_t* p, int64_t n, uint8_t* out) {
  constexpr uint64_t kMask = (uint64_t{1} << B) - 1;
  uint64_t buf = 0;
  int have = 0;
  for (int64_t j = 0; j < n; ++j) {
    if (have < B) {
      buf |= static_cast<uint64_t>(*p++) << have;
      have += 32;
    }
    out[j] = static_cast<uint8_t>(buf & kMask);
    buf >>= B;
    have -= B;
  }
}

void UnpackTile(const PackedMatrixView& w, int64_t r0, int64_t c0, Tile& tile) {
  const int64_t wpr = WordsPerRow(w.cols, w.bits);
  const int64_t n = std::min<int64_t>(kChunkCols, w.cols - c0);
  for (int rr = 0; rr < kTileRows; ++rr) {
    uint8_t* dst = tile[rr];
    const int64_t r = r0 + rr;
    if (r >= w.rows) {
      std::memset(dst, 0, kChunkCols);
      continue;
    }
    const uint32_t* p = w.codes + r * wpr + c0 * w.bits / 32;
    switch (w.bits) {
      case 2:
        UnpackRun<2>(p, n, dst);
        break;
      case 3:
        UnpackRun<3>(p, n, dst);
        break;
      case 4:
        UnpackRun<4>(p, n, dst);
        break;
      case 5:
        UnpackRun<5>(p, n, dst);
        break;
      case 6:
        UnpackRun<6>(p, n, dst);
        break;
      case 7:
        UnpackRun<7>(p, n, dst);
        break;
      default:
        UnpackRun<8>(p, n, dst);
        break;
    }
    if (n < kChunkCols) std::memset(dst + n, 0, static_cast<size_t>(kChunkCols - n));
  }
}

// Bit plane of width W at bit offset `off` of one tile's codes into its chunk storage
// (`cc` = the chunk's [bits uint4][32 lanes][4] words): every word written whole, assembled in a
// register from its 16 / W code pairs (see the layout in repack.h).
template <int W>
void PackPlane(const Tile& tile, int off, uint32_t* cc) {
  constexpr int kPerWord = 16 / W;
  constexpr uint32_t kMask = (1u << W) - 1u;
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    for (int word = 0; word < 4 * W; ++word) {
      uint32_t v = 0;
      for (int slot = 0; slot < kPerWord; ++slot) {
        const int p = word * kPerWord + slot, s = p / 4, e = p % 4;
        const uint8_t* q = &tile[g + 8 * (e & 1)][16 * s + 2 * t + 8 * (e >> 1)];
        v |= ((static_cast<uint32_t>(q[0]) >> off) & kMask) << (slot * W);
        v |= ((static_cast<uint32_t>(q[1]) >> off) & kMask) << (16 + slot * W);
      }
      cc[((off + word / 4) * 32 + lane) * 4 + word % 4] = v;
    }
  }
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
  if (w.group_size != 32 && w.group_size != 64 && w.group_size != 128) {
    return "group_size = " + std::to_string(w.group_size) +
           " is not supported by the CUDA kernels; allowed 32, 64 or 128";
  }
  if (w.cols % 8 != 0) {
    return "cols = " + std::to_string(w.cols) + " is not supported by the CUDA kernels; cols must be a multiple of 8";
  }
  return "";
}

GpuLayout GpuLayoutFor(const PackedMatrixView& w) {
  GpuLayout l;
  l.rows = w.rows;
  l.cols = w.cols;
  l.bits = w.bits;
  l.group_size = w.group_size;
  l.row_tiles = (w.rows + kTileRows - 1) / kTileRows;
  l.chunks = (w.cols + kChunkCols - 1) / kChunkCols;
  l.grids = w.grid_ids != nullptr;
  return l;
}

int64_t CodeWordsPerTile(const GpuLayout& l) { return l.chunks * l.bits * 32 * 4; }
int64_t SzHalvesPerTile(const GpuLayout& l) { return (l.chunks * kChunkCols / l.group_size) * 32; }
int64_t GridBytesPerTile(const GpuLayout& l) { return l.grids ? l.GroupsPadded() * 8 : 0; }

std::vector<float> GridLevelTable(int bits) {
  std::vector<float> t;
  if (bits < 2 || bits > 8) return t;
  const int n = 1 << bits;
  t.reserve(static_cast<size_t>(kGridCount * n));
  for (int g = 0; g < kGridCount; ++g) {
    const float* lv = GridLevels(bits, g);
    t.insert(t.end(), lv, lv + n);
  }
  return t;
}

void RepackGridTiles(const PackedMatrixView& w, int64_t rt_begin, int64_t rt_end, uint8_t* grid) {
  const GpuLayout l = GpuLayoutFor(w);
  const int64_t bpt = GridBytesPerTile(l), gpr = GroupsPerRow(w.cols, w.group_size);
  const int64_t id_words = WordsPerRow(gpr, kGridIdBits);
  std::memset(grid, 0, static_cast<size_t>((rt_end - rt_begin) * bpt));
  for (int64_t rt = rt_begin; rt < rt_end; ++rt) {
    uint8_t* tg = grid + (rt - rt_begin) * bpt;
    const int64_t r_end = std::min(w.rows, (rt + 1) * kTileRows);
    for (int64_t r = rt * kTileRows; r < r_end; ++r) {
      const int rr = static_cast<int>(r % kTileRows);
      const int shift = rr >= 8 ? 4 : 0;
      const uint32_t* ids = w.grid_ids + r * id_words;
      for (int64_t g = 0; g < gpr; ++g) {
        tg[g * 8 + rr % 8] |= static_cast<uint8_t>(PackedCode(ids, g, kGridIdBits) << shift);
      }
    }
  }
}

void RepackRowTiles(const PackedMatrixView& w, int64_t rt_begin, int64_t rt_end, uint32_t* codes, uint16_t* sz) {
  const GpuLayout l = GpuLayoutFor(w);
  int widths[3];
  const int np = BitPlanes(w.bits, widths);
  const int64_t wpt = CodeWordsPerTile(l), spt = SzHalvesPerTile(l);
  const int64_t gpr = GroupsPerRow(w.cols, w.group_size);
  Tile tile;
  for (int64_t rt = rt_begin; rt < rt_end; ++rt) {
    uint32_t* tc = codes + (rt - rt_begin) * wpt;
    for (int64_t ch = 0; ch < l.chunks; ++ch) {
      UnpackTile(w, rt * kTileRows, ch * kChunkCols, tile);
      uint32_t* cc = tc + ch * w.bits * 128;
      int off = 0;
      for (int i = 0; i < np; ++i) {
        switch (widths[i]) {
          case 8:
            PackPlane<8>(tile, off, cc);
            break;
          case 4:
            PackPlane<4>(tile, off, cc);
            break;
          case 2:
            PackPlane<2>(tile, off, cc);
            break;
          default:
            PackPlane<1>(tile, off, cc);
            break;
        }
        off += widths[i];
      }
    }
    // sz: [gpad, 8 (g), 4] = {s(g), z(g), s(g + 8), z(g + 8)} per tile, zero in the padding.
    uint16_t* ts = sz + (rt - rt_begin) * spt;
    std::memset(ts, 0, static_cast<size_t>(spt) * sizeof(uint16_t));
    const int64_t r_end = std::min(w.rows, (rt + 1) * kTileRows);
    for (int64_t r = rt * kTileRows; r < r_end; ++r) {
      const int rr = static_cast<int>(r % kTileRows);
      const uint16_t* s = w.scales + r * gpr;
      const uint16_t* z = w.zeros + r * gpr;
      uint16_t* dst = ts + (rr % 8) * 4 + (rr >= 8 ? 2 : 0);
      for (int64_t g = 0; g < gpr; ++g) {
        dst[g * 32] = s[g];
        dst[g * 32 + 1] = z[g];
      }
    }
  }
}

std::string RepackForGpu(const PackedMatrixView& w, RepackedMatrix* out) {
  std::string err = CheckGpuSupported(w);
  if (!err.empty()) return err;
  out->layout = GpuLayoutFor(w);
  out->codes.resize(static_cast<size_t>(out->layout.CodeWords()));
  out->sz.resize(static_cast<size_t>(out->layout.SzHalves()));
  RepackRowTiles(w, 0, out->layout.row_tiles, out->codes.data(), out->sz.data());
  out->grid.resize(static_cast<size_t>(out->layout.GridBytes()));
  out->levels.clear();
  if (out->layout.grids) {
    RepackGridTiles(w, 0, out->layout.row_tiles, out->grid.data());
    out->levels = GridLevelTable(w.bits);
  }
  return "";
}

std::string RepackForGpuReference(const PackedMatrixView& w, RepackedMatrix* out) {
  std::string err = CheckGpuSupported(w);
  if (!err.empty()) return err;
  GpuLayout& l = out->layout;
  l = GpuLayoutFor(w);
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
  out->grid.assign(static_cast<size_t>(l.GridBytes()), 0u);
  out->levels.clear();
  if (l.grids) {
    for (int64_t r = 0; r < w.rows; ++r) {
      const uint32_t* ids = w.grid_ids + r * WordsPerRow(gpr, kGridIdBits);
      for (int64_t g = 0; g < gpr; ++g) {
        const int64_t at = ((r / kTileRows) * gpad + g) * 8 + r % 8;
        out->grid[at] |= static_cast<uint8_t>(PackedCode(ids, g, kGridIdBits) << ((r % kTileRows) >= 8 ? 4 : 0));
      }
    }
    out->levels = GridLevelTable(w.bits);
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

int RepackedGridId(const RepackedMatrix& m, int64_t r, int64_t g) {
  if (!m.layout.grids) return 0;
  const uint8_t b = m.grid[static_cast<size_t>(((r / kTileRows) * m.layout.GroupsPadded() + g) * 8 + r % 8)];
  return (r % kTileRows) >= 8 ? b >> 4 : b & 0xF;
}

}  // namespace slq::kernels
