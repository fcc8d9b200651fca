// cp.async (sm_80+): global -> shared copies that bypass registers, completed by commit/wait groups.
#pragma once

namespace tsir {

// Copy 16 bytes; when `valid` is false the 16 shared bytes are zero-filled and global memory is not
// read (the source-size operand is 0), so out-of-bounds tiles need no separate zeroing.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
  unsigned dst = (unsigned)__cvta_generic_to_shared(smem);
  int src_size = valid ? 16 : 0;
  // .L2::128B: L2 fetches the whole 128-byte line (tile rows are read 128 bytes at a time).
  asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(src_size));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

}  // namespace tsir
