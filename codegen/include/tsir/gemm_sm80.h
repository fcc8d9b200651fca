// Warp-level tensor-core GEMM for sm_80+ (mma.sync.m16n8k16, fp16/bf16 in, fp32 accumulate), with
// operands read from shared memory by ldmatrix. Written from the PTX ISA for NVRTC: no C++ standard
// library. Used by tsir's Gemm tile operator; the accumulator layout below is the one tsir's
// `mma_block_c_fragment` describes, so tsir can read and write the accumulator element-wise.
#pragma once
#include "tsir/common.h"

namespace tsir {

// Shared operand tiles are stored in tsir's swizzled layouts (tsir/layout/swizzle.py): a rows x cols
// tile is cut into column blocks SWZ bytes wide, each stored as its own rows x SWZ region, and inside
// a region byte offset o becomes o ^ (((o >> 7) & (SWZ / 16 - 1)) << 4) -- the 128/64/32-byte
// swizzles of TMA and GMMA. The 8 rows an ldmatrix phase reads then hit 8 different bank groups.
// SWZ == 0: plain rows of LD elements (LD > cols when rows are padded).
template <int SWZ, int ROWS, int LD, typename T>
__device__ __forceinline__ const T* tile_ptr(const T* base, int row, int col) {
  if (SWZ == 0) return base + row * LD + col;
  constexpr int span = SWZ / (int)sizeof(T);
  unsigned o = (unsigned)(row * SWZ + (col % span) * (int)sizeof(T));
  o ^= ((o >> 7) & (unsigned)(SWZ / 16 - 1)) << 4;
  const char* region = reinterpret_cast<const char*>(base) + (col / span) * (ROWS * SWZ);
  return reinterpret_cast<const T*>(region + o);
}

__device__ __forceinline__ unsigned smem_addr(const void* p) {
  return (unsigned)__cvta_generic_to_shared(p);
}

__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

template <typename T>
struct MmaOp;

template <>
struct MmaOp<half> {
  static __device__ __forceinline__ void run(float* c, const unsigned* a, const unsigned* b) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
};

template <>
struct MmaOp<__nv_bfloat16> {
  static __device__ __forceinline__ void run(float* c, const unsigned* a, const unsigned* b) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
};

// The B fragments of a warp's NI n8 tiles for k-step k0.
template <int NI, bool TRANS_B, int SWZ_B, int ROWS_B, int LD_B, typename T>
__device__ __forceinline__ void load_b_fragments(const T* B, unsigned (&b)[NI][2], int n0, int k0, int lane) {
#pragma unroll
  for (int ni = 0; ni < NI; ni += 2) {
    const int n = n0 + ni * 8;
    unsigned r[4];
    if (!TRANS_B) {
      ldmatrix_x4_trans(r, tile_ptr<SWZ_B, ROWS_B, LD_B>(
                               B, k0 + lane % 8 + ((lane / 8) % 2) * 8, n + (lane / 16) * 8));
    } else {
      ldmatrix_x4(r, tile_ptr<SWZ_B, ROWS_B, LD_B>(
                         B, n + lane % 8 + (lane / 16) * 8, k0 + ((lane / 8) % 2) * 8));
    }
    b[ni][0] = r[0];
    b[ni][1] = r[1];
    b[ni + 1][0] = r[2];
    b[ni + 1][1] = r[3];
  }
}

// The A fragments of a warp's MI m16 tiles and the B fragments of its NI n8 tiles for k-step k0.
template <int MI, int NI, bool TRANS_A, bool TRANS_B, int SWZ_A, int ROWS_A, int LD_A, int SWZ_B, int ROWS_B,
          int LD_B, typename T>
__device__ __forceinline__ void load_fragments(const T* A, const T* B, unsigned (&a)[MI][4], unsigned (&b)[NI][2],
                                               int m0, int n0, int k0, int lane) {
#pragma unroll
  for (int mi = 0; mi < MI; ++mi) {
    const int m = m0 + mi * 16;
    if (!TRANS_A) {
      ldmatrix_x4(a[mi], tile_ptr<SWZ_A, ROWS_A, LD_A>(A, m + lane % 16, k0 + (lane / 16) * 8));
    } else {
      ldmatrix_x4_trans(a[mi], tile_ptr<SWZ_A, ROWS_A, LD_A>(
                                   A, k0 + lane % 8 + (lane / 16) * 8, m + ((lane / 8) % 2) * 8));
    }
  }
  load_b_fragments<NI, TRANS_B, SWZ_B, ROWS_B, LD_B>(B, b, n0, k0, lane);
}

// C[M x N] += A * B for one thread block of WARPS_M x WARPS_N warps.
//   A: M x K (row-major, K contiguous) or, with TRANS_A, K x M (M contiguous); B: K x N (N
//   contiguous) or, with TRANS_B, N x K (K contiguous). SWZ_*/LD_* describe their shared layouts.
// Warp w = wm * WARPS_N + wn owns the (M / WARPS_M) x (N / WARPS_N) sub-tile at (wm, wn). Its
// m16n8 tiles (mi, ni) keep their four accumulators at c[(mi * NI + ni) * 4 + r] with
//   row = mi * 16 + lane / 4 + 8 * (r / 2),  col = ni * 8 + (lane % 4) * 2 + r % 2.
template <int M, int N, int K, int WARPS_M, int WARPS_N, bool TRANS_A, bool TRANS_B, int SWZ_A,
          int LD_A, int SWZ_B, int LD_B, typename T>
__device__ __forceinline__ void gemm_ss(const T* A, const T* B, float* c) {
  constexpr int TM = M / WARPS_M, TN = N / WARPS_N;
  constexpr int MI = TM / 16, NI = TN / 8;
  static_assert(TM % 16 == 0 && TN % 16 == 0 && K % 16 == 0, "gemm_ss: tile not a multiple of the mma");
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int m0 = (warp / WARPS_N) * TM;
  const int n0 = (warp % WARPS_N) * TN;
  constexpr int ROWS_A = TRANS_A ? K : M;
  constexpr int ROWS_B = TRANS_B ? N : K;
  // Fragments of step k + 1 are loaded before the mma of step k is issued (double buffering),
  // so ldmatrix latency hides behind the tensor cores.
  unsigned a[2][MI][4];
  unsigned b[2][NI][2];
  load_fragments<MI, NI, TRANS_A, TRANS_B, SWZ_A, ROWS_A, LD_A, SWZ_B, ROWS_B, LD_B>(A, B, a[0], b[0], m0, n0, 0, lane);
#pragma unroll
  for (int ks = 0; ks < K / 16; ++ks) {
    if (ks + 1 < K / 16) {
      load_fragments<MI, NI, TRANS_A, TRANS_B, SWZ_A, ROWS_A, LD_A, SWZ_B, ROWS_B, LD_B>(
          A, B, a[(ks + 1) % 2], b[(ks + 1) % 2], m0, n0, (ks + 1) * 16, lane);
    }
#pragma unroll
    for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
      for (int ni = 0; ni < NI; ++ni) {
        MmaOp<T>::run(c + (mi * NI + ni) * 4, a[ks % 2][mi], b[ks % 2][ni]);
      }
    }
  }
}

// C[M x N] += A * B with A in registers (the flash-attention P @ V: P is the previous gemm's
// accumulator, cast to 16 bits in place). Each thread holds the A operands of its warp's rows as
// mma.m16n8k16 reads them: halves a[(mi * (K / 16) + ki) * 8 + r] for the warp's m16 tile mi and
// k-step ki, r as in the PTX A fragment table (row groupID + 8 ((r / 2) % 2), column
// 2 threadID_in_group + r % 2 + 8 (r / 4)); the warps of one warp row (WARPS_N of them) hold the
// same A. B and C as for gemm_ss.
//
// Why the previous accumulator is already in this order: the f32 accumulator of m16n8k16 holds
// c_r at row groupID + 8 (r / 2), column 2 threadID_in_group + r % 2 of its n8 tile (PTX ISA,
// "Matrix Fragments for mma.m16n8k16", C/D table). Two adjacent n8 tiles 2 ki and 2 ki + 1 hold,
// in registers 0..3 then 0..3, exactly the elements a_0..a_3 then a_4..a_7 of the A fragment of
// k-step ki (the A table's column 8 (r / 4) is the second n8 tile), in the same order; a cast of
// each value to 16 bits, kept in place, makes consecutive halves (2r, 2r + 1) the .f16x2 /
// .bf16x2 register r of the A operand.
template <int M, int N, int K, int WARPS_M, int WARPS_N, bool TRANS_B, int SWZ_B, int LD_B, typename T>
__device__ __forceinline__ void gemm_rs(const T* a, const T* B, float* c) {
  constexpr int TM = M / WARPS_M, TN = N / WARPS_N;
  constexpr int MI = TM / 16, NI = TN / 8, KI = K / 16;
  static_assert(TM % 16 == 0 && TN % 16 == 0 && K % 16 == 0, "gemm_rs: tile not a multiple of the mma");
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int n0 = (warp % WARPS_N) * TN;
  constexpr int ROWS_B = TRANS_B ? N : K;
  const unsigned* ar = reinterpret_cast<const unsigned*>(a);
  unsigned b[2][NI][2];
  load_b_fragments<NI, TRANS_B, SWZ_B, ROWS_B, LD_B>(B, b[0], n0, 0, lane);
#pragma unroll
  for (int ks = 0; ks < KI; ++ks) {
    if (ks + 1 < KI) {
      load_b_fragments<NI, TRANS_B, SWZ_B, ROWS_B, LD_B>(B, b[(ks + 1) % 2], n0, (ks + 1) * 16, lane);
    }
#pragma unroll
    for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
      for (int ni = 0; ni < NI; ++ni) {
        MmaOp<T>::run(c + (mi * NI + ni) * 4, ar + (mi * KI + ks) * 4, b[ks % 2][ni]);
      }
    }
  }
}

}  // namespace tsir
