// Warp-level helpers for tile reductions. NVRTC-clean: no C++ standard library.
#pragma once

namespace tsir {

// The value of `v` in lane (laneid ^ mask) of the warp (all 32 lanes take part).
template <typename T>
__device__ __forceinline__ T shfl_xor(T v, int mask) {
  return __shfl_xor_sync(0xffffffffu, v, mask);
}

}  // namespace tsir
