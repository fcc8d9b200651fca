// Warpgroup matrix multiply-accumulate (sm_90a): wgmma.mma_async issued by a warpgroup (4
// consecutive warps whose first warp index is a multiple of 4), B from shared memory through a
// matrix descriptor, A from a descriptor or from registers, fp32 accumulators in registers.
// Written from the PTX ISA ("Asynchronous Warpgroup Level Matrix Multiply-Accumulate", its matrix
// descriptor, shared-memory layouts and register fragments). NVRTC-clean.
//
// Ordering rules the callers follow (PTX ISA, "wgmma.fence"):
// - wgmma_fence() before the first wgmma of a batch when the accumulator or A registers were
//   written by ordinary instructions since the last wgmma (a fresh tile, the epilogue, a rescale);
// - wgmma_commit() closes the batch into a wgmma-group; wgmma_wait<N>() returns once at most N of
//   this warpgroup's groups are pending: only then may the accumulators be read, A registers be
//   rewritten, or the shared operands be overwritten;
// - shared memory written by ordinary stores and read by wgmma needs fence_proxy_async_shared()
//   (mbarrier.h) in each writer before the barrier that orders it; TMA writes need nothing more
//   than the mbarrier wait.
#pragma once

#include "tsir/mbarrier.h"
#include "tsir/wgmma_ops_lo.h"
#include "tsir/wgmma_ops_hi.h"

namespace tsir {

// Element-type pairs of one instruction (the KIND of wgmma_ops::Op<N>::ss/rs).
enum WgmmaKind : int {
  kWgmmaF16 = 0,
  kWgmmaBF16 = 1,
  kWgmmaE4M3E4M3 = 2,
  kWgmmaE4M3E5M2 = 3,
  kWgmmaE5M2E4M3 = 4,
  kWgmmaE5M2E5M2 = 5,
};

// K of one instruction: 16 for 16-bit types, 32 for 8-bit ones.
template <int KIND>
struct WgmmaK {
  static constexpr int value = KIND <= kWgmmaBF16 ? 16 : 32;
};

// The layout-type field of a descriptor (bits 62-63).
enum WgmmaSwizzle : int {
  kSwizzleNone = 0,  // interleaved 8x16-byte core matrices
  kSwizzle128B = 1,
  kSwizzle64B = 2,
  kSwizzle32B = 3,
};

// A shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"):
//   bits  0-13  start address >> 4         (of the operand's first element, shared state space)
//   bits 16-29  leading-dimension byte offset >> 4
//   bits 32-45  stride-dimension byte offset >> 4
//   bits 49-51  base offset (0: every swizzle pattern starts at its own alignment, 1024 bytes for
//               128B, 512 for 64B, 256 for 32B; tsir allocates operand tiles that way)
//   bits 62-63  WgmmaSwizzle
// Leading byte offset (LBO) and stride byte offset (SBO), in bytes:
// - K-major operand (K contiguous), swizzled: SBO = distance between consecutive 8-row groups
//   (8 * swizzle bytes in a dense tile); LBO unused (1). Unswizzled: LBO = distance between the
//   two core matrices adjacent in K, SBO = between core matrices adjacent in M/N.
// - MN-major operand (M or N contiguous; f16/bf16 only, transpose immediate 1), swizzled:
//   LBO = distance between consecutive swizzle-width blocks along M/N, SBO = distance between
//   consecutive groups of 8 K-rows.
// tsir/layout/wgmma_layouts.py computes both and checks them against the ISA's canonical layouts.
__device__ __forceinline__ unsigned long long wgmma_desc(unsigned smem_addr, unsigned lbo,
                                                         unsigned sbo, int swizzle) {
  unsigned long long desc = 0;
  desc |= (unsigned long long)((smem_addr & 0x3FFFFu) >> 4);
  desc |= (unsigned long long)((lbo & 0x3FFFFu) >> 4) << 16;
  desc |= (unsigned long long)((sbo & 0x3FFFFu) >> 4) << 32;
  desc |= (unsigned long long)(swizzle & 3) << 62;
  return desc;
}

// The same descriptor moved by `bytes` (a multiple of 16): the start-address field is the only
// one that changes when a K step walks inside a swizzle atom or across atoms.
__device__ __forceinline__ unsigned long long wgmma_desc_advance(unsigned long long desc,
                                                                 unsigned bytes) {
  return desc + (unsigned long long)(bytes >> 4);
}

__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}

__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}

template <int N>
__device__ __forceinline__ void wgmma_wait() {
  static_assert(N >= 0 && N <= 7, "wgmma.wait_group takes 0..7");
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

// Pins accumulator registers in place around asynchronous wgmma: the compiler may not move reads
// or writes of `r` across this point (it cannot see that wgmma writes them later).
__device__ __forceinline__ void wgmma_fence_operand(float& r) { asm volatile("" : "+f"(r)::"memory"); }

template <int R>
__device__ __forceinline__ void wgmma_fence_operands(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) wgmma_fence_operand(d[i]);
}

// The same for registers that hold 16- or 8-bit values in pairs or quads (a register-A operand,
// read until its group retires), as 32-bit words.
template <int R>
__device__ __forceinline__ void wgmma_fence_operands_u32(unsigned (&r)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+r"(r[i])::"memory");
}

// D(64xN) (+)= A(64xK) * B(KxN), A and B from shared memory. TRANS_A/TRANS_B: 0 = K-major,
// 1 = M-/N-major (16-bit types only). scale_d = 0: D = A*B.
template <int KIND, int N, int TRANS_A = 0, int TRANS_B = 0>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 2], unsigned long long desc_a,
                                         unsigned long long desc_b, int scale_d) {
  static_assert(N % 8 == 0 && N >= 8 && N <= 256, "wgmma N is 8..256 in steps of 8");
  static_assert(KIND <= kWgmmaBF16 || (TRANS_A == 0 && TRANS_B == 0),
                "8-bit wgmma operands must be K-major");
  wgmma_ops::Op<N>::template ss<KIND, TRANS_A, TRANS_B>(d, desc_a, desc_b, scale_d);
}

// D(64xN) (+)= A(64xK, four 32-bit registers per thread) * B(KxN from shared memory). A's
// registers follow the A fragment of wgmma_layouts.py (for 16-bit types the same as the
// accumulator fragment of a 64xK tile, so a converted accumulator feeds the next product).
template <int KIND, int N, int TRANS_B = 0>
__device__ __forceinline__ void wgmma_rs(float (&d)[N / 2], const unsigned (&a)[4],
                                         unsigned long long desc_b, int scale_d) {
  static_assert(N % 8 == 0 && N >= 8 && N <= 256, "wgmma N is 8..256 in steps of 8");
  static_assert(KIND <= kWgmmaBF16 || TRANS_B == 0, "8-bit wgmma operands must be K-major");
  wgmma_ops::Op<N>::template rs<KIND, TRANS_B>(d, a, desc_b, scale_d);
}

// ---- epilogue helpers ------------------------------------------------------------------------

// Two fp32 values as one 32-bit register of two 16-bit floats (low half = lo).
__device__ __forceinline__ unsigned pack_half2(float lo, float hi) {
  unsigned r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

__device__ __forceinline__ unsigned pack_bfloat162(float lo, float hi) {
  unsigned r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

// stmatrix: each of the 4 (x4) 8x8 16-bit matrices takes one register per lane (the mma/wgmma
// accumulator pair of that lane: row lane/4, columns 2*(lane%4)+{0,1}); lanes 8q..8q+7 give the
// addresses of the 8 rows of matrix q. .trans stores the transpose.
__device__ __forceinline__ void stmatrix_x4(unsigned addr, unsigned r0, unsigned r1, unsigned r2,
                                            unsigned r3) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr),
               "r"(r0), "r"(r1), "r"(r2), "r"(r3)
               : "memory");
}

__device__ __forceinline__ void stmatrix_x4_trans(unsigned addr, unsigned r0, unsigned r1,
                                                  unsigned r2, unsigned r3) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(
                   addr),
               "r"(r0), "r"(r1), "r"(r2), "r"(r3)
               : "memory");
}

}  // namespace tsir
