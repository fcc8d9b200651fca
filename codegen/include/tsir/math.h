// Element math the CUDA math API spells differently per type. NVRTC-clean: no C++ standard
// library.
#pragma once

namespace tsir {

// The bits of `x` read as a `To` (T.reinterpret): both types have the same size.
template <typename To, typename From>
__device__ __forceinline__ To bit_cast(From x) {
  static_assert(sizeof(To) == sizeof(From), "T.reinterpret needs types of one width");
  To y;
  memcpy(&y, &x, sizeof(To));
  return y;
}

// T.isnan / T.isinf on float and double (half types use __hisnan / __hisinf).
__device__ __forceinline__ bool is_nan(float x) { return x != x; }
__device__ __forceinline__ bool is_nan(double x) { return x != x; }
__device__ __forceinline__ bool is_inf(float x) { return __float_as_uint(x) << 1 == 0xff000000u; }
__device__ __forceinline__ bool is_inf(double x) {
  return static_cast<unsigned long long>(__double_as_longlong(x)) << 1 == 0xffe0000000000000ull;
}

// max/min ignoring a NaN operand (fmaxf/fminf semantics) for every arithmetic type.
template <typename T>
__device__ __forceinline__ T max_ignoring_nan(T a, T b) {
  return (b != b || a > b) ? a : b;
}
template <typename T>
__device__ __forceinline__ T min_ignoring_nan(T a, T b) {
  return (b != b || a < b) ? a : b;
}

}  // namespace tsir
