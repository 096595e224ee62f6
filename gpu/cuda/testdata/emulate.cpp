// Host emulation of the non-tensor-core kernels in ../kernels/poai.cu:
// each __global__ function runs once per thread index, sequentially, on
// the CPU, with the few CUDA intrinsics they use defined in plain C++.
// emulation_test.go compiles it with the host C++ compiler and checks the
// outputs against package gpu bit for bit, so the kernels' arithmetic is
// tested on machines without a GPU.
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
struct uint4 { uint32_t x, y, z, w; };
static uint4 make_uint4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return {a, b, c, d}; }
struct dim { uint32_t x; };
static dim blockIdx, threadIdx, blockDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __constant__
#define __restrict__
#define __launch_bounds__(x)
static uint32_t __umulhi(uint32_t a, uint32_t b) { return (uint32_t)(((uint64_t)a * b) >> 32); }
static uint32_t __funnelshift_r(uint32_t lo, uint32_t hi, int n) { return (uint32_t)((((uint64_t)hi << 32) | lo) >> (n & 31)); }
static uint32_t __byte_perm(uint32_t x, uint32_t y, uint32_t s) {
  uint8_t b[8]; for (int i = 0; i < 4; i++) { b[i] = x >> (8 * i); b[4 + i] = y >> (8 * i); }
  uint32_t r = 0; for (int i = 0; i < 4; i++) r |= (uint32_t)b[(s >> (4 * i)) & 7] << (8 * i); return r;
}
#define POAI_HOST_EMULATION
#include "../kernels/poai.cu"
#define RUN(n, bs, call) do { blockDim.x = bs; for (uint64_t t = 0; t < (uint64_t)(n); t++) { blockIdx.x = t / bs; threadIdx.x = t % bs; call; } } while (0)
int main(int argc, char** argv) {
  // args: k0 k1 stream templates-file output-file
  if (argc != 6) return 2;
  uint32_t k0 = strtoul(argv[1], 0, 0), k1 = strtoul(argv[2], 0, 0), st = strtoul(argv[3], 0, 0);
  FILE* o = fopen(argv[5], "wb");
  if (!o) return 3;
  // int8 rows: rows 0..7, k=64
  static uint8_t a[8 * 64]; RUN(8 * 4, 32, fill_int8_rows(a, 0, 8, 64, 0, k0, k1, st)); fwrite(a, 1, sizeof a, o);
  // int8 Bt: k=64, m=32
  static uint8_t bt[32 * 64]; RUN(64 * 2, 32, fill_int8_bt(bt, 64, 32, 1, k0, k1, st)); fwrite(bt, 1, sizeof bt, o);
  static uint16_t ab[8 * 64]; RUN(8 * 8, 32, fill_bf16_rows(ab, 0, 8, 64, 2, k0, k1, st)); fwrite(ab, 2, 8 * 64, o);
  static uint16_t bb[32 * 64]; RUN(64 * 4, 32, fill_bf16_bt(bb, 64, 32, 3, k0, k1, st)); fwrite(bb, 2, 32 * 64, o);
  // leaf_rows over rows of 5, 13, 16, 17 values
  int ms[4] = {5, 13, 16, 17};
  for (int q = 0; q < 4; q++) {
    int m = ms[q]; uint32_t c[3 * 17]; for (int i = 0; i < 3 * m; i++) c[i] = 0x01020304u * (i + 1) + 0x9e3779b9u * q;
    fwrite(c, 4, 3 * m, o);
    uint32_t out[3 * 8]; RUN(3, 32, leaf_rows(c, 3, m, out)); fwrite(out, 4, 24, o);
  }
  // VRAM: templates from argv files
  Template ft, lt; FILE* tf = fopen(argv[4], "rb");
  if (!tf || fread(&ft, 64, 1, tf) != 1 || fread(&lt, 64, 1, tf) != 1) return 4;
  fclose(tf);
  uint64_t total = 4 * 16; static uint32_t mem[64 * 8];
  RUN(total, 32, vram_fill(mem, 0, total, 5, ft)); fwrite(mem, 4, total * 8, o);
  uint32_t outs[4 * 8], lvs[4 * 8]; RUN(4, 32, vram_lanes(mem, total, 0, 4, 7, outs, lvs, lt));
  fwrite(outs, 4, 32, o); fwrite(lvs, 4, 32, o);
  fclose(o);
  return 0;
}
