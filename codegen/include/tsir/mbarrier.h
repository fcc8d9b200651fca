// mbarriers (sm_90+): 64-bit barrier objects in shared memory with an arrival count and a
// transaction count, completing in phases. Written from the PTX ISA ("mbarrier", "Parallel
// Synchronization and Communication Instructions"). NVRTC-clean: no C++ standard library.
//
// A phase completes when its pending arrival count reaches zero *and* its pending transaction
// count (bytes announced by expect_tx, decremented by cp.async.bulk's complete_tx) is zero; the
// barrier then flips its phase parity and re-arms with the count given to init. Waiters name the
// parity of the phase they wait for: `wait(bar, p)` returns once the phase with parity p is over.
// A fresh barrier is in phase 0, so `wait(bar, 1)` returns at once (the "previous" phase counts as
// complete): a producer waiting on an `empty` barrier with parity `(round & 1) ^ 1` passes its
// first round without any consumer arrival.
#pragma once

#ifndef TSIR_MBARRIER_TIMEOUT_CYCLES
// 0: wait forever. Else a wait that sees no phase change for this many clock64() cycles prints
// the barrier and the parity it waited for, then traps (a launch failure instead of a hang).
#define TSIR_MBARRIER_TIMEOUT_CYCLES 0
#endif

namespace tsir {

// The shared-state-space address of a shared-memory object (what every .shared instruction takes).
__device__ __forceinline__ unsigned shared_u32(const void* p) {
  return (unsigned)__cvta_generic_to_shared(p);
}

// Initialise with `count` expected arrivals per phase. One thread initialises; make the
// initialisation visible before any other thread (or the TMA unit) uses the barrier:
// mbarrier_init_fence() then __syncthreads().
__device__ __forceinline__ void mbarrier_init(unsigned bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

// Orders the preceding mbarrier.init of this thread before later uses by other threads of the
// cluster and by the async proxy (TMA's complete_tx).
__device__ __forceinline__ void mbarrier_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

__device__ __forceinline__ void mbarrier_inval(unsigned bar) {
  asm volatile("mbarrier.inval.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}

// One arrival (release semantics at CTA scope: this thread's earlier accesses happen before the
// phase completes for every waiter).
__device__ __forceinline__ void mbarrier_arrive(unsigned bar) {
  asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}

// One arrival that also announces `bytes` more transaction bytes for the current phase (the bytes
// the TMA copies this thread is about to issue will complete on the barrier).
__device__ __forceinline__ void mbarrier_arrive_expect_tx(unsigned bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar),
               "r"(bytes)
               : "memory");
}

// Announce transaction bytes without arriving.
__device__ __forceinline__ void mbarrier_expect_tx(unsigned bar, unsigned bytes) {
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
}

// True once the phase with parity `parity` has completed (acquire semantics at CTA scope). The
// instruction itself may suspend the thread for a system-dependent time before answering false.
__device__ __forceinline__ bool mbarrier_try_wait(unsigned bar, unsigned parity) {
  unsigned done;
  asm volatile(
      "{\n"
      "  .reg .pred p;\n"
      "  mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 p, [%1], %2;\n"
      "  selp.u32 %0, 1, 0, p;\n"
      "}\n"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
  return done != 0;
}

#if TSIR_MBARRIER_TIMEOUT_CYCLES > 0
namespace detail {
__device__ __noinline__ void mbarrier_timed_out(unsigned bar, unsigned parity, long long cycles) {
  printf("tsir: mbarrier wait timed out (block %d, thread %d): barrier at shared 0x%x, parity %u, "
         "%lld cycles\n",
         (int)blockIdx.x, (int)threadIdx.x, bar, parity, cycles);
  __trap();
}
}  // namespace detail
#endif

// Block until the phase with parity `parity` has completed.
__device__ __forceinline__ void mbarrier_wait(unsigned bar, unsigned parity) {
  if (mbarrier_try_wait(bar, parity)) return;
#if TSIR_MBARRIER_TIMEOUT_CYCLES > 0
  const long long start = clock64();
#endif
#pragma unroll 1
  while (!mbarrier_try_wait(bar, parity)) {
#if TSIR_MBARRIER_TIMEOUT_CYCLES > 0
    const long long spent = clock64() - start;
    if (spent > (long long)TSIR_MBARRIER_TIMEOUT_CYCLES) detail::mbarrier_timed_out(bar, parity, spent);
#endif
  }
}

// A ring position: stage index and the parity of the round it is in. `advance` moves to the next
// stage, flipping the parity each time the ring wraps.
template <int STAGES>
struct RingState {
  int stage;
  unsigned phase;

  __device__ __forceinline__ void advance() {
    if (++stage == STAGES) {
      stage = 0;
      phase ^= 1u;
    }
  }
};

// ---- proxies, elect, register reconfiguration ---------------------------------------------------

// Make this thread's generic-proxy shared-memory writes (st.shared, stmatrix) visible to the async
// proxy (wgmma operand reads, TMA stores) that a later barrier orders after them.
__device__ __forceinline__ void fence_proxy_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// True in exactly one active lane of the (fully active) warp.
__device__ __forceinline__ bool elect_one() {
  unsigned pred = 0;
  asm volatile(
      "{\n"
      "  .reg .pred p;\n"
      "  elect.sync _|p, 0xffffffff;\n"
      "  selp.u32 %0, 1, 0, p;\n"
      "}\n"
      : "=r"(pred));
  return pred != 0;
}

// setmaxnreg (sm_90a): the executing warpgroup gives registers back (dec) or takes more (inc). Every
// warp of the warpgroup executes the same one; the kernel needs a register cap at entry
// (__launch_bounds__(threads, 1)); COUNT is a multiple of 8 in [24, 256].
template <int COUNT>
__device__ __forceinline__ void setmaxnreg_dec() {
  static_assert(COUNT % 8 == 0 && COUNT >= 24 && COUNT <= 256, "setmaxnreg: 24..256, step 8");
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(COUNT));
}

template <int COUNT>
__device__ __forceinline__ void setmaxnreg_inc() {
  static_assert(COUNT % 8 == 0 && COUNT >= 24 && COUNT <= 256, "setmaxnreg: 24..256, step 8");
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(COUNT));
}

// A barrier over a subset of the block's warps (bar.sync with an id and a thread count), so that
// one warpgroup can synchronise without the others. id 0 is __syncthreads's.
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Signal this warp's arrival at named barrier `id` without waiting (bar.arrive id, threads): the
// barrier completes once `threads` threads (whole warps, this one included) have arrived, by
// either form; the warps waiting in named_barrier_sync then go on, after this thread's earlier
// memory accesses. A warp must not arrive again (in either form) at the same barrier before it
// completes: the PTX ISA leaves that undefined. The producer/consumer half of a named barrier.
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

}  // namespace tsir
