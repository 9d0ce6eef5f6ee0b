// Load-time repacking of "slq-packed-v1" into the tile layout the CUDA kernels read
// ("slq-gpu-v1"). Plain C++ (host memory); the CUDA part uploads the result as is.
//
// Layout "slq-gpu-v1" (rows padded to a multiple of 16, cols to a multiple of 256, with zero
// codes and zero scale/zero in the padding):
//   A warp tile is 16 rows x 256 cols (one "chunk"); its 4096 codes are split among the 32
//   lanes exactly as the A operand of 16 mma.m16n8k16 steps: lane (g = lane / 4, t = lane % 4)
//   owns 64 code pairs p = s * 4 + e (s = k-step 0..15, e = 0..3) at row g + 8 * (e & 1),
//   cols 16 s + 2 t + 8 * (e >> 1) + {0, 1}.
//   The b-bit code is split into bit planes of widths 4/2/1 (b = 3: 2+1, 5: 4+1, 6: 4+2,
//   7: 4+2+1; 2, 4, 8 are a single plane). A plane of width w (low bits first, at bit offset
//   `off` of the code) takes w uint4 per lane: pair p sits in plane word p / (16 / w), slot
//   p % (16 / w), low code at bit slot * w and high code at bit 16 + slot * w.
//   codes: uint32 [row_tiles, chunks, bits (uint4 index v = off + word / 4), 32 lanes, 4]
//          so each of a warp's `bits` 16-byte loads per chunk reads 512 contiguous bytes.
//   sz:    fp16 [row_tiles, kpad / group_size, 8 (g), 4] = {s(g), z(g), s(g + 8), z(g + 8)}.
//   grid:  only for matrices with grid ids (kernels/grids.h; layout.grids): uint8 [row_tiles,
//          kpad / group_size, 8 (g)] = id(g) | id(g + 8) << 4 (the ids of the two rows a lane
//          dequantizes), 0 (the uniform grid) in the padding; with `levels` = GridLevelTable(bits).
// Supported: group_size 32, 64 or 128, cols % 8 == 0 (16-byte activation loads), bits 2..8.
#ifndef SLQ_KERNELS_REPACK_H_
#define SLQ_KERNELS_REPACK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/packed_matrix.h"

namespace slq::kernels {

inline constexpr int kTileRows = 16;
inline constexpr int kChunkCols = 256;

struct GpuLayout {
  int64_t rows = 0, cols = 0;
  int bits = 0;
  int64_t group_size = 0;
  int64_t row_tiles = 0;  // ceil(rows / 16)
  int64_t chunks = 0;     // ceil(cols / 256)
  bool grids = false;     // the matrix carries per-group grid ids (the `grid` array)
  int64_t GroupsPadded() const { return chunks * kChunkCols / group_size; }
  int64_t CodeWords() const { return row_tiles * chunks * bits * 32 * 4; }
  int64_t SzHalves() const { return row_tiles * GroupsPadded() * 32; }
  int64_t GridBytes() const { return grids ? row_tiles * GroupsPadded() * 8 : 0; }
};

// Owns the host copy of a repacked matrix.
struct RepackedMatrix {
  GpuLayout layout;
  std::vector<uint32_t> codes;  // layout.CodeWords()
  std::vector<uint16_t> sz;     // layout.SzHalves() fp16
  std::vector<uint8_t> grid;    // layout.GridBytes() (empty without grid ids)
  std::vector<float> levels;    // GridLevelTable(bits) when layout.grids, else empty
};

// The levels of every grid of a width, concatenated: [kGridCount][2^bits] fp32, grid g's level
// of code q at g * 2^bits + q (kernels/grids.h). Empty when bits is not 2..8.
std::vector<float> GridLevelTable(int bits);

// Empty string when the kernels support this matrix, else why not.
std::string CheckGpuSupported(const PackedMatrixView& w);

// Repacks `w` (host memory). Empty string on success. Word-level: each 16 x 256 tile is
// unpacked once and each output word assembled in registers (RepackRowTiles), one thread.
// With grid ids it also fills `grid` (RepackGridTiles) and `levels` (GridLevelTable).
std::string RepackForGpu(const PackedMatrixView& w, RepackedMatrix* out);

// The layout RepackForGpu gives `w` (w must pass CheckGpuSupported).
GpuLayout GpuLayoutFor(const PackedMatrixView& w);
// Words of `codes` / halves of `sz` one row tile takes (CodeWords() / row_tiles, ...).
int64_t CodeWordsPerTile(const GpuLayout& l);
int64_t SzHalvesPerTile(const GpuLayout& l);
// Writes row tiles [rt_begin, rt_end) of w's repacked codes and scale/zero pairs: `codes` and
// `sz` point at the storage of tile rt_begin ((rt_end - rt_begin) * CodeWordsPerTile words,
// ... SzHalvesPerTile halves; any host memory, e.g. a pinned staging buffer). Every element of
// those tiles is written (padding zeroed), so the storage needs no initialisation. Disjoint tile
// ranges may be written from several threads at once (the caller parallelises). w must pass
// CheckGpuSupported.
void RepackRowTiles(const PackedMatrixView& w, int64_t rt_begin, int64_t rt_end, uint32_t* codes, uint16_t* sz);
// Bytes of `grid` one row tile takes (0 without grid ids).
int64_t GridBytesPerTile(const GpuLayout& l);
// Writes row tiles [rt_begin, rt_end) of w's repacked grid ids at `grid` (the storage of tile
// rt_begin, (rt_end - rt_begin) * GridBytesPerTile bytes), padding zeroed, like RepackRowTiles.
// w must carry grid ids (w.grid_ids non-null) and pass CheckGpuSupported.
void RepackGridTiles(const PackedMatrixView& w, int64_t rt_begin, int64_t rt_end, uint8_t* grid);

// The element-by-element repacking (PackedCode per element): the reference the fast one is
// tested against.
std::string RepackForGpuReference(const PackedMatrixView& w, RepackedMatrix* out);

// Decodes code q(r, c) from the repacked layout (for tests).
uint32_t RepackedCode(const RepackedMatrix& m, int64_t r, int64_t c);
// The grid id of row r, group g from the repacked layout (0 without grid ids; for tests).
int RepackedGridId(const RepackedMatrix& m, int64_t r, int64_t g);

// Bit planes of a b-bit code, widest first: fills widths[], returns the plane count.
int BitPlanes(int bits, int widths[3]);

}  // namespace slq::kernels

#endif  // SLQ_KERNELS_REPACK_H_
