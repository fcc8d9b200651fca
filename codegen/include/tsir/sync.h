// tsir synchronization: fences, flag waits with acquire semantics and an optional timeout.
// Written from the PTX ISA ("membar/fence", "ld.acquire", the Memory Consistency Model) and the
// CUDA C++ Programming Guide (clock64, printf, __trap). NVRTC-clean: no C++ standard library.
#pragma once

#include "ldst.h"

namespace tsir {

// fence.acq_rel orders this thread's earlier accesses before its later ones for every observer in
// the scope: CTA (the block), GPU (the device), SYS (every GPU and the host).
__device__ __forceinline__ void fence_cta() { asm volatile("fence.acq_rel.cta;" ::: "memory"); }
__device__ __forceinline__ void fence_gpu() { asm volatile("fence.acq_rel.gpu;" ::: "memory"); }
__device__ __forceinline__ void fence_sys() { asm volatile("fence.acq_rel.sys;" ::: "memory"); }

// bar.sync with a barrier id other than 0 (__syncthreads' barrier): the `count` threads of the
// warps that reach it with this id synchronize, the others go on. `count` is a multiple of 32.
// Used for tile ops that run in a warp-aligned range of the block's threads.
__device__ __forceinline__ void named_barrier(int id, int count) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(count) : "memory");
}

// The relations of the wait_* family, in the order the Python side numbers them.
enum Rel : int { EQ = 0, NE = 1, GE = 2, LE = 3, GT = 4, LT = 5 };

namespace detail {

template <int R, typename T> __device__ __forceinline__ bool holds(T v, T want) {
  if constexpr (R == EQ) return v == want;
  else if constexpr (R == NE) return v != want;
  else if constexpr (R == GE) return v >= want;
  else if constexpr (R == LE) return v <= want;
  else if constexpr (R == GT) return v > want;
  else return v < want;
}

template <int R> __device__ __forceinline__ const char* rel_text() {
  if constexpr (R == EQ) return "==";
  else if constexpr (R == NE) return "!=";
  else if constexpr (R == GE) return ">=";
  else if constexpr (R == LE) return "<=";
  else if constexpr (R == GT) return ">";
  else return "<";
}

template <typename T> __device__ __forceinline__ bool is_signed_int() { return (T)(-1) < (T)0; }

// Print what a timed-out wait saw, then trap: the kernel fails with an error the host sees
// (cudaErrorIllegalInstruction / CUDA_ERROR_LAUNCH_FAILED) instead of hanging forever.
template <int R, typename T>
__device__ __noinline__ void wait_timed_out(const void* flag, T seen, T want, long long cycles,
                                            int rank, int peer) {
  if (is_signed_int<T>()) {
    printf("tsir: wait timed out on rank %d (block %d, thread %d): flag %p (peer %d) holds %lld, "
           "waited for %s %lld for %lld cycles\n",
           rank, (int)blockIdx.x, (int)threadIdx.x, flag, peer, (long long)seen, rel_text<R>(),
           (long long)want, cycles);
  } else {
    printf("tsir: wait timed out on rank %d (block %d, thread %d): flag %p (peer %d) holds %llu, "
           "waited for %s %llu for %lld cycles\n",
           rank, (int)blockIdx.x, (int)threadIdx.x, flag, peer, (unsigned long long)seen,
           rel_text<R>(), (unsigned long long)want, cycles);
  }
  __trap();
}

}  // namespace detail

// Spin until `*flag REL want` holds, reading the flag with ld.acquire at `Scope` (GPU for flags
// only this device writes, SYS for flags a peer GPU or the host writes), so everything written
// before the matching release is visible once it returns. Every calling thread spins.
// timeout <= 0 spins forever; otherwise, after `timeout` clock64() cycles without success the
// thread prints the flag address, the value seen, the expected value and `rank`, then traps.
template <int R, int Scope = SYS, int Space_ = GLOBAL, typename T>
__device__ __forceinline__ void wait(const T* flag, typename detail::Identity<T>::type want,
                                     long long timeout = 0, int rank = -1, int peer = -1) {
  T v = ld<ACQUIRE, Scope, Space_>(flag);
  if (detail::holds<R>(v, want)) return;
  const long long start = clock64();
#pragma unroll 1
  while (true) {
    v = ld<ACQUIRE, Scope, Space_>(flag);
    if (detail::holds<R>(v, want)) return;
    if (timeout > 0) {
      const long long spent = clock64() - start;
      if (spent > timeout) detail::wait_timed_out<R>(flag, v, want, spent, rank, peer);
    }
  }
}

}  // namespace tsir
