// tsir device helpers used by generated code. Written for NVRTC: no C++ standard library.
#pragma once

namespace tsir {

// Integer division rounding toward minus infinity (C's `/` rounds toward zero).
template <typename T>
__device__ __forceinline__ T floordiv(T a, T b) {
  T q = a / b;
  T r = a - q * b;
  return (r != 0 && ((r < 0) != (b < 0))) ? q - 1 : q;
}

// The remainder matching floordiv: it has the sign of the divisor.
template <typename T>
__device__ __forceinline__ T floormod(T a, T b) {
  T r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

}  // namespace tsir
