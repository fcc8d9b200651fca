// Thread-block clusters (sm_90+): the CTA's rank in its cluster, the cluster-wide barrier, an
// mbarrier arrival on a peer CTA's barrier, and TMA loads multicast to several CTAs of the
// cluster. Written from the PTX ISA ("%cluster_ctarank", "barrier.cluster", "mapa",
// "mbarrier.arrive" with .shared::cluster, "cp.async.bulk.tensor" with .multicast::cluster).
// NVRTC-clean.
#pragma once

#include "tsir/tma.h"

namespace tsir {

// This CTA's rank in its cluster (0 .. cluster size - 1).
__device__ __forceinline__ unsigned cluster_ctarank() {
  unsigned rank;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(rank));
  return rank;
}

// Every thread of every CTA of the cluster: the writes (and mbarrier inits) before it are visible
// to the cluster's threads after it. Not .aligned: threads may arrive from divergent code.
__device__ __forceinline__ void cluster_sync() {
  asm volatile(
      "barrier.cluster.arrive.release;\n"
      "barrier.cluster.wait.acquire;\n" ::
          : "memory");
}

// Arrive on the mbarrier at shared address `bar` of this CTA's layout, in the cluster's CTA
// `rank` (which may be this CTA). The default .release.cta semantics: a release at cluster scope
// costs a GPU-wide MEMBAR, and the arrivals that use this (a stage released after
// wgmma.wait_group: its operand reads are complete) publish no generic-proxy writes to the peer.
__device__ __forceinline__ void mbarrier_arrive_cluster(unsigned bar, unsigned rank) {
  asm volatile(
      "{\n"
      ".reg .b32 remote;\n"
      "mapa.shared::cluster.u32 remote, %0, %1;\n"
      "mbarrier.arrive.shared::cluster.b64 _, [remote];\n"
      "}\n" ::"r"(bar),
      "r"(rank)
      : "memory");
}

// A 2-d TMA load whose box lands at shared offset `dst` of every CTA in `cta_mask` (bit i: rank
// i), completing on the mbarrier at offset `bar` of each of them (complete_tx of the box's bytes).
__device__ __forceinline__ void tma_load_2d_multicast(unsigned dst, const TmaDescriptor& desc,
                                                      unsigned bar, int c0, int c1,
                                                      unsigned short cta_mask) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      ".multicast::cluster [%0], [%1, {%3, %4}], [%2], %5;\n" ::"r"(dst),
      "l"(tma_desc_addr(desc)), "r"(bar), "r"(c0), "r"(c1), "h"(cta_mask)
      : "memory");
}

}  // namespace tsir
