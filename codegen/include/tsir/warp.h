// Warp shuffles and warp reductions (TileLang's T.shfl_* and T.warp_reduce_*): every lane of the
// warp takes part (mask 0xffffffff). NVRTC-clean: no C++ standard library.
#pragma once

#include "tsir/math.h"

namespace tsir {

// The value of `v` in lane (laneid ^ lane_mask) of the same `width`-lane segment.
template <typename T>
__device__ __forceinline__ T shfl_xor_w(T v, int lane_mask, int width) {
  return __shfl_xor_sync(0xffffffffu, v, lane_mask, width);
}

// The value of `v` in lane laneid + delta of the segment (the lane's own past its end).
template <typename T>
__device__ __forceinline__ T shfl_down(T v, unsigned delta, int width) {
  return __shfl_down_sync(0xffffffffu, v, delta, width);
}

// The value of `v` in lane laneid - delta of the segment (the lane's own before its start).
template <typename T>
__device__ __forceinline__ T shfl_up(T v, unsigned delta, int width) {
  return __shfl_up_sync(0xffffffffu, v, delta, width);
}

// The value of `v` in lane src_lane % width of the segment.
template <typename T>
__device__ __forceinline__ T shfl_idx(T v, int src_lane, int width) {
  return __shfl_sync(0xffffffffu, v, src_lane, width);
}

// Butterfly reductions over the 32 lanes: every lane ends with the same result.
template <typename T>
__device__ __forceinline__ T warp_reduce_sum(T v) {
#pragma unroll
  for (int m = 16; m >= 1; m >>= 1) v = v + __shfl_xor_sync(0xffffffffu, v, m);
  return v;
}
template <typename T>
__device__ __forceinline__ T warp_reduce_max(T v) {
#pragma unroll
  for (int m = 16; m >= 1; m >>= 1) v = max_ignoring_nan(v, T(__shfl_xor_sync(0xffffffffu, v, m)));
  return v;
}
template <typename T>
__device__ __forceinline__ T warp_reduce_min(T v) {
#pragma unroll
  for (int m = 16; m >= 1; m >>= 1) v = min_ignoring_nan(v, T(__shfl_xor_sync(0xffffffffu, v, m)));
  return v;
}
template <typename T>
__device__ __forceinline__ T warp_reduce_bitand(T v) {
#pragma unroll
  for (int m = 16; m >= 1; m >>= 1) v = v & T(__shfl_xor_sync(0xffffffffu, v, m));
  return v;
}
template <typename T>
__device__ __forceinline__ T warp_reduce_bitor(T v) {
#pragma unroll
  for (int m = 16; m >= 1; m >>= 1) v = v | T(__shfl_xor_sync(0xffffffffu, v, m));
  return v;
}

}  // namespace tsir
