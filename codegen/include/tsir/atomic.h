// Atomics with TileLang's memory orders (T.atomic_add/max/min(..., memory_order=)) and the vector
// atomic adds (T.atomic_addx2/x4). Every function returns the value the location held before.
// NVRTC-clean: no C++ standard library.
//
// ORDER is TileLang's id: 0 relaxed, 1 consume, 2 acquire, 3 release, 4 acq_rel, 5 seq_cst. The
// read-modify-write itself is a relaxed, gpu-scope atomic (PTX: `atom` without .sem/.scope);
// the order comes from fences around it: the PTX memory model's release pattern (fence.acq_rel,
// then a strong write), acquire pattern (a strong read, then fence.acq_rel) and, for seq_cst, a
// fence.sc first (how C++ seq_cst read-modify-writes map to PTX).
#pragma once

#include "tsir/math.h"

namespace tsir {

template <int ORDER>
__device__ __forceinline__ void atomic_fence_before() {
  if constexpr (ORDER == 5) {
    asm volatile("fence.sc.gpu;" ::: "memory");
  } else if constexpr (ORDER == 3 || ORDER == 4) {
    asm volatile("fence.acq_rel.gpu;" ::: "memory");
  }
}

template <int ORDER>
__device__ __forceinline__ void atomic_fence_after() {
  if constexpr (ORDER == 1 || ORDER == 2 || ORDER == 4 || ORDER == 5) {
    asm volatile("fence.acq_rel.gpu;" ::: "memory");
  }
}

// atomicAdd for every type tsir's atomics take (signed 64-bit adds as unsigned: two's complement).
template <typename T>
__device__ __forceinline__ T atomic_add_relaxed(T* p, T v) {
  return atomicAdd(p, v);
}
__device__ __forceinline__ long long atomic_add_relaxed(long long* p, long long v) {
  return static_cast<long long>(atomicAdd(reinterpret_cast<unsigned long long*>(p),
                                          static_cast<unsigned long long>(v)));
}

// `*p = f(*p, v)` by compare-and-swap on the location's bits; returns the old value.
template <typename Bits, typename T, typename F>
__device__ __forceinline__ T atomic_cas_loop(T* p, T v, F f) {
  Bits* q = reinterpret_cast<Bits*>(p);
  Bits old = *reinterpret_cast<volatile Bits*>(q);
  while (true) {
    Bits assumed = old;
    T cur = bit_cast<T>(assumed);
    old = atomicCAS(q, assumed, bit_cast<Bits>(f(cur, v)));
    if (old == assumed) return cur;
  }
}

struct MaxOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return max_ignoring_nan(a, b); }
};
struct MinOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const { return min_ignoring_nan(a, b); }
};

template <typename T>
struct has_atomic_minmax {  // the integer types atomicMax/atomicMin take
  static constexpr bool value = false;
};
template <> struct has_atomic_minmax<int> { static constexpr bool value = true; };
template <> struct has_atomic_minmax<unsigned int> { static constexpr bool value = true; };
template <> struct has_atomic_minmax<long long> { static constexpr bool value = true; };
template <> struct has_atomic_minmax<unsigned long long> { static constexpr bool value = true; };

// Integers use the hardware's atomicMax/atomicMin; floats a CAS loop with fmaxf/fminf semantics
// (a NaN operand is ignored), 16-bit floats on 16-bit words (atomicCAS on them: sm_70+).
template <bool IS_MAX, typename T>
__device__ __forceinline__ T atomic_minmax_relaxed(T* p, T v) {
  if constexpr (has_atomic_minmax<T>::value) {
    if constexpr (IS_MAX) {
      return atomicMax(p, v);
    } else {
      return atomicMin(p, v);
    }
  } else if constexpr (sizeof(T) == 8) {
    return IS_MAX ? atomic_cas_loop<unsigned long long>(p, v, MaxOp())
                  : atomic_cas_loop<unsigned long long>(p, v, MinOp());
  } else if constexpr (sizeof(T) == 4) {
    return IS_MAX ? atomic_cas_loop<unsigned int>(p, v, MaxOp())
                  : atomic_cas_loop<unsigned int>(p, v, MinOp());
  } else {
    return IS_MAX ? atomic_cas_loop<unsigned short>(p, v, MaxOp())
                  : atomic_cas_loop<unsigned short>(p, v, MinOp());
  }
}

template <int ORDER, typename T>
__device__ __forceinline__ T atomic_add(T* p, T v) {
  atomic_fence_before<ORDER>();
  T old = atomic_add_relaxed(p, v);
  atomic_fence_after<ORDER>();
  return old;
}

template <int ORDER, typename T>
__device__ __forceinline__ T atomic_max(T* p, T v) {
  atomic_fence_before<ORDER>();
  T old = atomic_minmax_relaxed<true>(p, v);
  atomic_fence_after<ORDER>();
  return old;
}

template <int ORDER, typename T>
__device__ __forceinline__ T atomic_min(T* p, T v) {
  atomic_fence_before<ORDER>();
  T old = atomic_minmax_relaxed<false>(p, v);
  atomic_fence_after<ORDER>();
  return old;
}

// Vector atomic adds at p[0..1] / p[0..3] (p aligned to the vector): each element is updated
// atomically (CUDA's vector atomicAdd). half2 / bfloat162: sm_60 / sm_80, global or shared
// memory; float2 / float4: sm_90+, global memory only (tsir refuses them elsewhere).
#ifdef __CUDA_FP16_H__
__device__ __forceinline__ void atomic_add_x2(half* p, half a, half b) {
  atomicAdd(reinterpret_cast<__half2*>(p), __halves2half2(a, b));
}
#endif
#ifdef __CUDA_BF16_H__
__device__ __forceinline__ void atomic_add_x2(__nv_bfloat16* p, __nv_bfloat16 a, __nv_bfloat16 b) {
  atomicAdd(reinterpret_cast<__nv_bfloat162*>(p), __halves2bfloat162(a, b));
}
#endif
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ void atomic_add_x2_f32(float* p, float a, float b) {
  atomicAdd(reinterpret_cast<float2*>(p), make_float2(a, b));
}
__device__ __forceinline__ void atomic_add_x4_f32(float* p, float a, float b, float c, float d) {
  atomicAdd(reinterpret_cast<float4*>(p), make_float4(a, b, c, d));
}
#endif

}  // namespace tsir
