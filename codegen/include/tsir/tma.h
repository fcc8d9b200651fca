// The tensor memory accelerator (sm_90+): bulk tensor copies between global and shared memory,
// described by a tensor map the host encodes (cuTensorMapEncodeTiled, tsir/runtime/tensor_map.py)
// and passes by value as a `const __grid_constant__ tsir::TmaDescriptor` kernel parameter.
// Written from the PTX ISA ("cp.async.bulk.tensor", "prefetch.tensormap", "cp.async.bulk
// .commit_group/.wait_group") and the CUDA driver API's tensor-map rules. NVRTC-clean.
//
// A load writes a box of the tensor into shared memory (the box's elements in row-major order,
// innermost dimension first, permuted by the map's swizzle), fills out-of-bounds elements with
// zeros, and completes on an mbarrier by decrementing its transaction count by the box's full size
// in bytes (out-of-bounds elements included). Coordinates are element indices, innermost first,
// and may be negative or past the end.
#pragma once

#include "tsir/mbarrier.h"

namespace tsir {

// The opaque 128-byte tensor map (CUtensorMap without cuda.h); 64-byte alignment is required.
struct alignas(64) TmaDescriptor {
  unsigned long long opaque[16];
};

__device__ __forceinline__ unsigned long long tma_desc_addr(const TmaDescriptor& desc) {
  return reinterpret_cast<unsigned long long>(&desc);
}

// Fetch the tensor map into the TMA unit's cache ahead of the first copy.
__device__ __forceinline__ void tma_prefetch_descriptor(const TmaDescriptor& desc) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(tma_desc_addr(desc)) : "memory");
}

// Global -> shared loads completing on mbarrier `bar` (shared addresses: tsir::shared_u32).
__device__ __forceinline__ void tma_load_1d(unsigned dst, const TmaDescriptor& desc, unsigned bar,
                                            int c0) {
  asm volatile(
      "cp.async.bulk.tensor.1d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3}], [%2];\n" ::"r"(dst),
      "l"(tma_desc_addr(desc)), "r"(bar), "r"(c0)
      : "memory");
}

__device__ __forceinline__ void tma_load_2d(unsigned dst, const TmaDescriptor& desc, unsigned bar,
                                            int c0, int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4}], [%2];\n" ::"r"(dst),
      "l"(tma_desc_addr(desc)), "r"(bar), "r"(c0), "r"(c1)
      : "memory");
}

__device__ __forceinline__ void tma_load_3d(unsigned dst, const TmaDescriptor& desc, unsigned bar,
                                            int c0, int c1, int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4, %5}], [%2];\n" ::"r"(dst),
      "l"(tma_desc_addr(desc)), "r"(bar), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}

// The same 2-d load with an L2 eviction-priority hint (a createpolicy value, e.g. evict_last for
// operands that other blocks re-read soon).
__device__ __forceinline__ void tma_load_2d_hint(unsigned dst, const TmaDescriptor& desc,
                                                 unsigned bar, int c0, int c1,
                                                 unsigned long long policy) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      ".L2::cache_hint [%0], [%1, {%3, %4}], [%2], %5;\n" ::"r"(dst),
      "l"(tma_desc_addr(desc)), "r"(bar), "r"(c0), "r"(c1), "l"(policy)
      : "memory");
}

__device__ __forceinline__ unsigned long long l2_policy_evict_last() {
  unsigned long long policy;
  asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;\n" : "=l"(policy));
  return policy;
}

__device__ __forceinline__ unsigned long long l2_policy_evict_first() {
  unsigned long long policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
  return policy;
}

// Shared -> global stores (out-of-bounds elements of the box are not written). The shared source
// must have been written before a fence_proxy_async_shared() in each writing thread and a barrier;
// stores are tracked in bulk groups of the issuing thread.
__device__ __forceinline__ void tma_store_1d(const TmaDescriptor& desc, unsigned src, int c0) {
  asm volatile(
      "cp.async.bulk.tensor.1d.global.shared::cta.tile.bulk_group [%0, {%2}], [%1];\n" ::"l"(
          tma_desc_addr(desc)),
      "r"(src), "r"(c0)
      : "memory");
}

__device__ __forceinline__ void tma_store_2d(const TmaDescriptor& desc, unsigned src, int c0,
                                             int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.global.shared::cta.tile.bulk_group [%0, {%2, %3}], [%1];\n" ::"l"(
          tma_desc_addr(desc)),
      "r"(src), "r"(c0), "r"(c1)
      : "memory");
}

__device__ __forceinline__ void tma_store_3d(const TmaDescriptor& desc, unsigned src, int c0,
                                             int c1, int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.global.shared::cta.tile.bulk_group [%0, {%2, %3, %4}], [%1];\n" ::"l"(
          tma_desc_addr(desc)),
      "r"(src), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}

__device__ __forceinline__ void tma_store_commit() {
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
}

// Wait until at most N bulk groups of this thread still *read* shared memory (the source may be
// overwritten afterwards; the global writes may still be in flight).
template <int N>
__device__ __forceinline__ void tma_store_wait_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(N) : "memory");
}

// Wait until at most N bulk groups of this thread are incomplete (global writes done).
template <int N>
__device__ __forceinline__ void tma_store_wait() {
  asm volatile("cp.async.bulk.wait_group %0;\n" ::"n"(N) : "memory");
}

}  // namespace tsir
