// tsir distributed device code: the rank table of this module, remote address translation,
// cooperative remote copies and the cross-rank barrier. NVRTC-clean: no C++ standard library.
//
// The rank table lives in __constant__ memory of the module that includes this header (one
// translation unit per module). The host fills it after loading the module and before its first
// launch (tsir.runtime.dist.table); it is never written by device code.
#pragma once

#include "ldst.h"
#include "sync.h"

#define TSIR_MAX_RANKS 64

namespace tsir {

struct RankTable {
  int rank;                                   // this process's rank
  int num_ranks;                              // ranks in the group
  unsigned long long heap_bytes;              // size of every rank's symmetric heap
  unsigned long long base[TSIR_MAX_RANKS];    // each rank's heap, mapped into this process
};

}  // namespace tsir

extern "C" {
__constant__ tsir::RankTable tsir_rank_table;
}

namespace tsir {

__device__ __forceinline__ int rank() { return tsir_rank_table.rank; }
__device__ __forceinline__ int num_ranks() { return tsir_rank_table.num_ranks; }

// The address of `p`'s counterpart on rank `pe`: the same offset into pe's symmetric heap. `p`
// must point into this rank's heap (tsir checks symmetric arguments at launch).
template <typename T> __device__ __forceinline__ T* remote_ptr(T* p, int pe) {
  const unsigned long long offset =
      reinterpret_cast<unsigned long long>(p) - tsir_rank_table.base[tsir_rank_table.rank];
  return reinterpret_cast<T*>(tsir_rank_table.base[pe] + offset);
}

// -- cooperative copies -------------------------------------------------------------------------

namespace detail {

template <int N> struct Word;
template <> struct Word<1> { typedef unsigned char type; };
template <> struct Word<2> { typedef unsigned short type; };
template <> struct Word<4> { typedef unsigned int type; };
template <> struct Word<8> { typedef uint2 type; };
template <> struct Word<16> { typedef uint4 type; };

// Copy n words, word i by thread (i % size == idx). U loads are issued before their stores so
// that U accesses per thread are in flight (what hides NVLink and HBM latency).
template <typename W, int U>
__device__ __forceinline__ void copy_words(W* dst, const W* src, unsigned long long n,
                                           unsigned idx, unsigned size) {
  unsigned long long i = idx;
  const unsigned long long step = (unsigned long long)size * U;
  for (; i + (unsigned long long)(U - 1) * size < n; i += step) {
    W r[U];
#pragma unroll
    for (int u = 0; u < U; ++u) r[u] = src[i + (unsigned long long)u * size];
#pragma unroll
    for (int u = 0; u < U; ++u) dst[i + (unsigned long long)u * size] = r[u];
  }
  for (; i < n; i += size) dst[i] = src[i];
}

// dst and src are congruent modulo N: bytes up to the first N-aligned address, N-byte words, and
// the bytes left at the end (nothing is dropped).
template <int N>
__device__ __forceinline__ void copy_congruent(char* dst, const char* src, unsigned long long n,
                                               unsigned idx, unsigned size) {
  unsigned long long head = (N - (reinterpret_cast<unsigned long long>(dst) & (N - 1))) & (N - 1);
  if (head > n) head = n;
  copy_words<unsigned char, 1>(reinterpret_cast<unsigned char*>(dst),
                               reinterpret_cast<const unsigned char*>(src), head, idx, size);
  dst += head;
  src += head;
  n -= head;
  const unsigned long long words = n / N;
  typedef typename Word<N>::type W;
  copy_words<W, (N >= 4 ? 8 : 4)>(reinterpret_cast<W*>(dst), reinterpret_cast<const W*>(src),
                                  words, idx, size);
  const unsigned long long done = words * N;
  copy_words<unsigned char, 1>(reinterpret_cast<unsigned char*>(dst + done),
                               reinterpret_cast<const unsigned char*>(src + done), n - done, idx,
                               size);
}

}  // namespace detail

// Copy `nbytes` bytes from src to dst, split over the `size` threads of a group in which the
// caller is number `idx` (a warp: lane and 32; a block: linear thread index and block size).
// Any size and alignment: the widest access both pointers allow (16 bytes when they agree modulo
// 16), with the unaligned head and tail done bytewise. Either side may be a peer's memory.
// No synchronization: tsir emits the warp or block barrier around the call.
__device__ __forceinline__ void copy_group(void* dst, const void* src, unsigned long long nbytes,
                                           unsigned idx, unsigned size) {
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  const unsigned long long x =
      reinterpret_cast<unsigned long long>(d) ^ reinterpret_cast<unsigned long long>(s);
  if ((x & 15) == 0) {
    detail::copy_congruent<16>(d, s, nbytes, idx, size);
  } else if ((x & 7) == 0) {
    detail::copy_congruent<8>(d, s, nbytes, idx, size);
  } else if ((x & 3) == 0) {
    detail::copy_congruent<4>(d, s, nbytes, idx, size);
  } else if ((x & 1) == 0) {
    detail::copy_congruent<2>(d, s, nbytes, idx, size);
  } else {
    detail::copy_words<unsigned char, 8>(reinterpret_cast<unsigned char*>(d),
                                         reinterpret_cast<const unsigned char*>(s), nbytes, idx,
                                         size);
  }
}

// -- the cross-rank barrier ---------------------------------------------------------------------
//
// `bar` is an int32 symmetric buffer of at least num_ranks() elements, zeroed once. On each rank:
//   bar[rank]   local arrivals: the low 20 bits count the blocks arrived in the current epoch, the
//               high 12 bits are the epoch (so up to 2^20 - 1 blocks per grid);
//   bar[j], j != rank   the number of epochs rank j has completed (written by rank j, modulo 2^32).
// Every block's thread 0 adds 1 to bar[rank]. The block that completes the epoch adds 1 to
// bar[rank] of every peer, waits until every peer has done the same for it, then advances the
// epoch (adding 2^20 - blocks clears the count and carries into the epoch), which releases the
// other blocks of its rank. Nothing is reset, so the barrier is reusable, and kernels of any grid
// size may share one buffer (between barriers the count is 0). A rank is at most one epoch ahead
// of another, so epochs compare modulo 2^12 without ambiguity.
// With Fence, each thread's earlier writes (including puts to peers) are visible to every thread
// of every rank after the barrier (fence.acq_rel.sys on both sides); without it (sync_blocks) the
// barrier only orders execution and the barrier's own accesses.

namespace detail {

__device__ __noinline__ void barrier_timed_out(const unsigned* slot, unsigned seen,
                                               unsigned want_epoch, int rank, int peer,
                                               long long cycles) {
  printf("tsir: barrier_blocks timed out on rank %d (block %d) waiting for rank %d: slot %p holds "
         "%u, expected epoch %u after %lld cycles\n",
         rank, (int)(blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z)), peer,
         (const void*)slot, seen, want_epoch, cycles);
  __trap();
}

__device__ __forceinline__ void barrier_check_time(long long start, long long timeout,
                                                   const unsigned* slot, unsigned seen,
                                                   unsigned want, int peer) {
  if (timeout > 0) {
    const long long spent = clock64() - start;
    if (spent > timeout) barrier_timed_out(slot, seen, want, rank(), peer, spent);
  }
}

}  // namespace detail

template <bool Fence>
__device__ __forceinline__ void barrier_blocks(int* bar, long long timeout = 0) {
  if (Fence) fence_sys();
  __syncthreads();
  if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) {
    const unsigned blocks = gridDim.x * gridDim.y * gridDim.z;
    if (blocks >= (1u << 20)) {
      printf("tsir: barrier_blocks supports up to %u blocks per grid, got %u\n", (1u << 20) - 1, blocks);
      __trap();
    }
    const int me = rank();
    const int n = num_ranks();
    unsigned* slots = reinterpret_cast<unsigned*>(bar);
    unsigned* own = slots + me;
    const unsigned old = atom_add<ACQ_REL, GPU>(own, 1u);
    const unsigned epoch = old >> 20;
    const long long start = clock64();
    if ((old & 0xFFFFFu) == blocks - 1) {
      for (int j = 0; j < n; ++j) {
        if (j != me) asm volatile("red.release.sys.global.add.u32 [%0], 1;" ::"l"(remote_ptr(own, j))
                                  : "memory");
      }
      for (int j = 0; j < n; ++j) {
        if (j == me) continue;
#pragma unroll 1
        while (true) {
          const unsigned seen = ld<ACQUIRE, SYS>(slots + j);
          if (((seen - (epoch + 1)) & 0xFFFu) < 0x800u) break;
          detail::barrier_check_time(start, timeout, slots + j, seen, (epoch + 1) & 0xFFFu, j);
        }
      }
      atom_add<ACQ_REL, GPU>(own, (1u << 20) - blocks);
    } else {
#pragma unroll 1
      while (true) {
        const unsigned seen = ld<ACQUIRE, GPU>(own);
        if ((seen >> 20) != epoch) break;
        detail::barrier_check_time(start, timeout, own, seen, (epoch + 1) & 0xFFFu, me);
      }
    }
  }
  __syncthreads();
  if (Fence) fence_sys();
}

}  // namespace tsir
