// poai proof-workload kernels for NVIDIA GPUs (compute capability 8.0 and
// up). Every kernel reproduces, bit for bit, a definition in package gpu:
// the Philox4x32-10 matrices (gpu.Int8At, gpu.BF16Bits), the RFC 6962 leaf
// hash of a result row (gpu.LeafHash), and the VRAM blocks and lanes
// (gpu.VRAMBlock, gpu.VRAMLane). The GEMM kernels use the tensor cores
// through WMMA (int8 with int32 accumulation, bf16 with fp32 accumulation).
//
// Built to PTX by `go generate ./gpu/cuda` (see gen.go) and embedded in the
// binary; the driver JIT-compiles the PTX for the device at load time.
#ifndef POAI_HOST_EMULATION
#include <cuda_bf16.h>
#include <mma.h>
#include <stdint.h>

using namespace nvcuda;
#endif

// ---------------------------------------------------------------- Philox
// Salmon, Moraes, Dror and Shaw, "Parallel Random Numbers: As Easy as 1,
// 2, 3", SC11: Philox4x32-10 (see gpu/philox.go).
__device__ __forceinline__ void philox(uint32_t c[4], uint32_t k0, uint32_t k1) {
#pragma unroll
  for (int r = 0; r < 10; r++) {
    if (r > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    uint32_t hi0 = __umulhi(0xD2511F53u, c[0]), lo0 = 0xD2511F53u * c[0];
    uint32_t hi1 = __umulhi(0xCD9E8D57u, c[2]), lo1 = 0xCD9E8D57u * c[2];
    uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
  }
}

// fill_int8_rows writes rows [row0, row0+rows) of the int8 matrix `matrix`
// (k columns, k % 16 == 0) row-major into dst: 16 columns per Philox block.
extern "C" __global__ void fill_int8_rows(uint8_t* dst, uint32_t row0, uint32_t rows, uint32_t k,
                                          uint32_t matrix, uint32_t k0, uint32_t k1, uint32_t stream) {
  uint32_t blocks = k / 16;
  uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= (uint64_t)rows * blocks) return;
  uint32_t r = (uint32_t)(t / blocks), blk = (uint32_t)(t % blocks);
  uint32_t c[4] = {blk, row0 + r, matrix, stream};
  philox(c, k0, k1);
  *(uint4*)(dst + (uint64_t)r * k + (uint64_t)blk * 16) = make_uint4(c[0], c[1], c[2], c[3]);
}

// fill_int8_bt writes Bᵀ (m×k row-major: row j is column j of B) for the
// int8 matrix `matrix` of k rows and m columns (m % 16 == 0). Thread
// (p, jb) makes the Philox block of B's row p, columns 16·jb..16·jb+15;
// neighbouring threads take neighbouring p, so stores coalesce.
extern "C" __global__ void fill_int8_bt(uint8_t* dst, uint32_t k, uint32_t m, uint32_t matrix,
                                        uint32_t k0, uint32_t k1, uint32_t stream) {
  uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= (uint64_t)k * (m / 16)) return;
  uint32_t p = (uint32_t)(t % k), jb = (uint32_t)(t / k);
  uint32_t c[4] = {jb, p, matrix, stream};
  philox(c, k0, k1);
#pragma unroll
  for (int b = 0; b < 16; b++) {
    dst[(uint64_t)(jb * 16 + b) * k + p] = (uint8_t)(c[b / 4] >> (8 * (b % 4)));
  }
}

__device__ __forceinline__ uint16_t bf16_from_random(uint32_t r) {
  uint32_t sign = r & 0x8000u;
  uint32_t e = 126u + ((r >> 14) & 1u);
  return (uint16_t)(sign | (e << 7) | (r & 0x7fu));
}

// fill_bf16_rows writes rows of the bf16 matrix `matrix` (k % 8 == 0):
// eight columns per Philox block (gpu.BF16Bits).
extern "C" __global__ void fill_bf16_rows(uint16_t* dst, uint32_t row0, uint32_t rows, uint32_t k,
                                          uint32_t matrix, uint32_t k0, uint32_t k1, uint32_t stream) {
  uint32_t blocks = k / 8;
  uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= (uint64_t)rows * blocks) return;
  uint32_t r = (uint32_t)(t / blocks), blk = (uint32_t)(t % blocks);
  uint32_t c[4] = {blk, row0 + r, matrix, stream};
  philox(c, k0, k1);
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; i++) {
    w[i] = (uint32_t)bf16_from_random(c[i] & 0xffffu) | ((uint32_t)bf16_from_random(c[i] >> 16) << 16);
  }
  *(uint4*)(dst + (uint64_t)r * k + (uint64_t)blk * 8) = make_uint4(w[0], w[1], w[2], w[3]);
}

// fill_bf16_bt writes Bᵀ of the bf16 matrix `matrix` (k rows, m columns,
// m % 8 == 0), m×k row-major.
extern "C" __global__ void fill_bf16_bt(uint16_t* dst, uint32_t k, uint32_t m, uint32_t matrix,
                                        uint32_t k0, uint32_t k1, uint32_t stream) {
  uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= (uint64_t)k * (m / 8)) return;
  uint32_t p = (uint32_t)(t % k), jb = (uint32_t)(t / k);
  uint32_t c[4] = {jb, p, matrix, stream};
  philox(c, k0, k1);
#pragma unroll
  for (int e = 0; e < 8; e++) {
    dst[(uint64_t)(jb * 8 + e) * k + p] = bf16_from_random(c[e / 2] >> (16 * (e % 2)));
  }
}

// ---------------------------------------------------------------- GEMM
// C (rows×m, row-major) = A (rows×k, row-major) · B, where B is given as
// Bᵀ (m×k row-major, i.e. B column-major). Block tile 128×128, eight warps
// of 64×32, K step BK; operands staged through shared memory with 16-byte
// loads, the next tile prefetched into registers while the tensor cores
// work. Requires rows % 128 == 0, m % 128 == 0, k % BK == 0.
#ifndef POAI_HOST_EMULATION
#define TM 128
#define TN 128

template <typename T, typename Acc, int BK>
__device__ __forceinline__ void gemm_tile(const T* __restrict__ A, const T* __restrict__ Bt, Acc* __restrict__ C,
                                          uint32_t k, uint32_t m) {
  // Shared tiles hold BK/16 column groups of TM rows × 16 elements each, so
  // every 16×16 fragment is 256-bit aligned and contiguous (ldm = 16).
  constexpr int VEC = 16 / sizeof(T);         // elements per 16-byte load
  constexpr int LOADS = TM * BK / VEC / 256;  // 16-byte loads per thread per operand
  __shared__ __align__(128) T As[TM * BK];
  __shared__ __align__(128) T Bs[TN * BK];

  const int tid = threadIdx.x, warp = tid / 32;
  const int wm = warp / 4, wn = warp % 4;  // 2 × 4 warps: 64 rows × 32 columns each
  const uint64_t row0 = (uint64_t)blockIdx.y * TM, col0 = (uint64_t)blockIdx.x * TN;

  wmma::fragment<wmma::accumulator, 16, 16, 16, Acc> acc[4][2];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], (Acc)0);

  uint4 ra[LOADS], rb[LOADS];
  auto load = [&](uint32_t kk) {
#pragma unroll
    for (int l = 0; l < LOADS; l++) {
      int idx = tid + l * 256;
      int r = idx / (BK / VEC), cv = idx % (BK / VEC);
      ra[l] = *(const uint4*)(A + (row0 + r) * k + kk + cv * VEC);
      rb[l] = *(const uint4*)(Bt + (col0 + r) * k + kk + cv * VEC);
    }
  };
  load(0);
  for (uint32_t kk = 0; kk < k; kk += BK) {
#pragma unroll
    for (int l = 0; l < LOADS; l++) {
      int idx = tid + l * 256;
      int r = idx / (BK / VEC), c = (idx % (BK / VEC)) * VEC;
      int off = ((c / 16) * TM + r) * 16 + c % 16;
      *(uint4*)(As + off) = ra[l];
      *(uint4*)(Bs + off) = rb[l];
    }
    __syncthreads();
    if (kk + BK < k) load(kk + BK);
#pragma unroll
    for (int ks = 0; ks < BK / 16; ks++) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[4];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb[2];
#pragma unroll
      for (int i = 0; i < 4; i++) wmma::load_matrix_sync(fa[i], As + (ks * TM + wm * 64 + i * 16) * 16, 16);
#pragma unroll
      for (int j = 0; j < 2; j++) wmma::load_matrix_sync(fb[j], Bs + (ks * TN + wn * 32 + j * 16) * 16, 16);
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 2; j++)
      wmma::store_matrix_sync(C + (row0 + wm * 64 + i * 16) * m + col0 + wn * 32 + j * 16, acc[i][j], m,
                              wmma::mem_row_major);
}

// gemm_int8: int8 inputs, int32 accumulation and output.
extern "C" __global__ void __launch_bounds__(256) gemm_int8(const signed char* A, const signed char* Bt, int* C,
                                                           uint32_t k, uint32_t m) {
  gemm_tile<signed char, int, 64>(A, Bt, C, k, m);
}

// gemm_bf16: bf16 inputs, fp32 accumulation and output.
extern "C" __global__ void __launch_bounds__(256) gemm_bf16(const __nv_bfloat16* A, const __nv_bfloat16* Bt, float* C,
                                                           uint32_t k, uint32_t m) {
  gemm_tile<__nv_bfloat16, float, 32>(A, Bt, C, k, m);
}

#endif  // POAI_HOST_EMULATION

// ---------------------------------------------------------------- SHA-256
// FIPS 180-4.
__constant__ uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

__device__ __forceinline__ uint32_t rotr(uint32_t x, int n) { return __funnelshift_r(x, x, n); }

__device__ __forceinline__ void sha_init(uint32_t s[8]) {
  s[0] = 0x6a09e667; s[1] = 0xbb67ae85; s[2] = 0x3c6ef372; s[3] = 0xa54ff53a;
  s[4] = 0x510e527f; s[5] = 0x9b05688c; s[6] = 0x1f83d9ab; s[7] = 0x5be0cd19;
}

// sha_compress folds one 64-byte block, given as 16 big-endian words, into s.
__device__ __forceinline__ void sha_compress(uint32_t s[8], const uint32_t in[16]) {
  uint32_t w[16];
#pragma unroll
  for (int i = 0; i < 16; i++) w[i] = in[i];
  uint32_t a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
#pragma unroll
  for (int i = 0; i < 64; i++) {
    uint32_t wi;
    if (i < 16) {
      wi = w[i];
    } else {
      uint32_t w15 = w[(i - 15) & 15], w2 = w[(i - 2) & 15];
      uint32_t s0 = rotr(w15, 7) ^ rotr(w15, 18) ^ (w15 >> 3);
      uint32_t s1 = rotr(w2, 17) ^ rotr(w2, 19) ^ (w2 >> 10);
      wi = w[i & 15] + s0 + w[(i - 7) & 15] + s1;
      w[i & 15] = wi;
    }
    uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    uint32_t ch = (e & f) ^ (~e & g);
    uint32_t t1 = h + S1 + ch + K256[i] + wi;
    uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    uint32_t mj = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t2 = S0 + mj;
    h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
  }
  s[0] += a; s[1] += b; s[2] += c; s[3] += d; s[4] += e; s[5] += f; s[6] += g; s[7] += h;
}

__device__ __forceinline__ uint32_t bswap(uint32_t x) { return __byte_perm(x, 0, 0x0123); }

// leaf_rows writes, for each of `rows` rows of m 32-bit values (int32 or
// float32 bits, little-endian), the RFC 6962 leaf SHA-256(0x00 || row
// bytes) as 8 big-endian state words (gpu.LeafHash). One thread per row.
extern "C" __global__ void leaf_rows(const uint32_t* __restrict__ C, uint32_t rows, uint32_t m, uint32_t* out) {
  uint32_t r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const uint32_t* v = C + (uint64_t)r * m;
  // Message: 1 prefix byte + 4m row bytes, then 0x80, zeros, 64-bit length.
  // Word q (big-endian) holds message bytes 4q..4q+3: the top byte of
  // v[q-1] (or the prefix) followed by the low three bytes of v[q].
  const uint64_t bits = (4ull * m + 1) * 8;
  const uint32_t words = ((4u * m + 1 + 9 + 63) / 64) * 16;
  uint32_t s[8];
  sha_init(s);
  uint32_t prev = 0;  // v[q-1]'s top byte goes first; the prefix byte is 0
  for (uint32_t base = 0; base < words; base += 16) {
    uint32_t w[16];
#pragma unroll
    for (int i = 0; i < 16; i++) {
      uint32_t q = base + i, x;
      if (q < m) {
        uint32_t cur = v[q];
        x = (prev & 0xff000000u) | ((cur & 0xffu) << 16) | (cur & 0xff00u) | ((cur >> 16) & 0xffu);
        prev = cur;
      } else if (q == m) {
        x = (prev & 0xff000000u) | 0x00800000u;
      } else if (q == words - 2) {
        x = (uint32_t)(bits >> 32);
      } else if (q == words - 1) {
        x = (uint32_t)bits;
      } else {
        x = 0;
      }
      w[i] = x;
    }
    sha_compress(s, w);
  }
#pragma unroll
  for (int i = 0; i < 8; i++) out[(uint64_t)r * 8 + i] = s[i];
}

// ---------------------------------------------------------------- VRAM
// vram_fill computes blocks [g0, g0+count) of the VRAM workload into mem
// (8 state words per block; gpu.VRAMBlock): x = SHA-256(tmpl with g at
// bytes 43..50), then rounds−1 times x = SHA-256(x || LE64(g)). tmpl is the
// padded first message with g = 0, as 16 big-endian words.
struct Template {
  uint32_t w[16];
};

extern "C" __global__ void vram_fill(uint32_t* mem, uint64_t g0, uint64_t count, uint32_t rounds, Template tmpl) {
  uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= count) return;
  uint64_t g = g0 + t;
  uint32_t w[16];
#pragma unroll
  for (int i = 0; i < 16; i++) w[i] = tmpl.w[i];
#pragma unroll
  for (int i = 0; i < 8; i++) {
    int b = 43 + i;
    w[b / 4] |= (uint32_t)((g >> (8 * i)) & 0xff) << (24 - 8 * (b % 4));
  }
  uint32_t s[8];
  sha_init(s);
  sha_compress(s, w);
  const uint32_t glo = bswap((uint32_t)g), ghi = bswap((uint32_t)(g >> 32));
  for (uint32_t r = 1; r < rounds; r++) {
    uint32_t m[16];
#pragma unroll
    for (int i = 0; i < 8; i++) m[i] = s[i];
    m[8] = glo; m[9] = ghi; m[10] = 0x80000000u;
    m[11] = 0; m[12] = 0; m[13] = 0; m[14] = 0; m[15] = 40 * 8;
    sha_init(s);
    sha_compress(s, m);
  }
  uint4* dst = (uint4*)(mem + g * 8);
  dst[0] = make_uint4(s[0], s[1], s[2], s[3]);
  dst[1] = make_uint4(s[4], s[5], s[6], s[7]);
}

// vram_lanes runs lanes [l0, l0+count) (gpu.VRAMLane): x = SHA-256(tmpl
// with the lane at bytes 47..54), then `reads` times x = SHA-256(x ||
// mem[LE64(x[0:8]) mod total]). It writes each lane's output and its leaf
// SHA-256(0x00 || output), each as 8 big-endian state words.
extern "C" __global__ void vram_lanes(const uint32_t* __restrict__ mem, uint64_t total, uint64_t l0, uint64_t count,
                                      uint32_t reads, uint32_t* outputs, uint32_t* leaves, Template tmpl) {
  uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= count) return;
  uint64_t lane = l0 + t;
  uint32_t w[16];
#pragma unroll
  for (int i = 0; i < 16; i++) w[i] = tmpl.w[i];
#pragma unroll
  for (int i = 0; i < 8; i++) {
    int b = 47 + i;
    w[b / 4] |= (uint32_t)((lane >> (8 * i)) & 0xff) << (24 - 8 * (b % 4));
  }
  uint32_t x[8];
  sha_init(x);
  sha_compress(x, w);
  for (uint32_t r = 0; r < reads; r++) {
    uint64_t idx = ((uint64_t)bswap(x[1]) << 32 | bswap(x[0])) % total;
    const uint4* src = (const uint4*)(mem + idx * 8);
    uint4 b0 = src[0], b1 = src[1];
    uint32_t m[16] = {x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7],
                      b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
    uint32_t pad[16] = {0x80000000u, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 512};
    sha_init(x);
    sha_compress(x, m);
    sha_compress(x, pad);
  }
  uint32_t lw[16];
  lw[0] = x[0] >> 8;
#pragma unroll
  for (int i = 1; i < 8; i++) lw[i] = (x[i - 1] << 24) | (x[i] >> 8);
  lw[8] = (x[7] << 24) | 0x00800000u;
#pragma unroll
  for (int i = 9; i < 15; i++) lw[i] = 0;
  lw[15] = 33 * 8;
  uint32_t lf[8];
  sha_init(lf);
  sha_compress(lf, lw);
#pragma unroll
  for (int i = 0; i < 8; i++) {
    outputs[t * 8 + i] = x[i];
    leaves[t * 8 + i] = lf[i];
  }
}
