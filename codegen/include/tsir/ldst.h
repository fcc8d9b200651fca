// tsir scalar loads, stores and atomics with memory-order semantics, written from the PTX ISA
// ("ld", "st", "atom", "red" and the Memory Consistency Model). NVRTC-clean: no C++ standard library.
//
//   tsir::st<Sem, Scope, Space, Hint>(T* p, T v)       Sem: WEAK VOLATILE RELAXED RELEASE
//   tsir::ld<Sem, Scope, Space, Hint>(const T* p)      Sem: WEAK VOLATILE RELAXED ACQUIRE
//   tsir::atom_add<Sem, Scope>(T* p, T v) -> old       Sem: RELAXED ACQUIRE RELEASE ACQ_REL
//
// Scope is CTA, GPU or SYS and only matters for RELAXED / ACQUIRE / RELEASE / ACQ_REL: PTX gives
// `.weak` and `.volatile` accesses no scope (a volatile access behaves like a relaxed one at system
// scope). Space GLOBAL prints `.global` (pointers into cudaMalloc'd or IPC-mapped memory), GENERIC
// prints none (shared memory, or unknown). Hint NO_ALLOCATE adds `.L1::no_allocate`, NON_COHERENT
// (loads only, weak only) uses the read-only path `ld.global.nc`. Every combination the Python side
// accepts has a specialization below; any other one fails to compile with a static_assert, which
// tsir's builder never lets through (it raises TSIRError when the op is built).
// T may be any 1-, 2-, 4- or 8-byte type (integers, floats, half, bf16, fp8): the bits travel
// through an unsigned register of that width.
#pragma once

namespace tsir {

enum Sem : int { WEAK = 0, VOLATILE = 1, RELAXED = 2, ACQUIRE = 3, RELEASE = 4, ACQ_REL = 5 };
enum Scope : int { CTA = 0, GPU = 1, SYS = 2 };
enum Space : int { GLOBAL = 0, GENERIC = 1 };
enum Hint : int { NO_HINT = 0, NO_ALLOCATE = 1, NON_COHERENT = 2, NON_COHERENT_NO_ALLOCATE = 3 };

namespace detail {

template <typename T> struct Identity { typedef T type; };

// The register type that carries N bytes (b8 travels in a 16-bit register, as PTX allows).
template <int N> struct Reg;
template <> struct Reg<1> { typedef unsigned short type; typedef unsigned char mem; };
template <> struct Reg<2> { typedef unsigned short type; typedef unsigned short mem; };
template <> struct Reg<4> { typedef unsigned int type; typedef unsigned int mem; };
template <> struct Reg<8> { typedef unsigned long long type; typedef unsigned long long mem; };

template <typename T>
__device__ __forceinline__ typename Reg<sizeof(T)>::type to_reg(const T& v) {
  return static_cast<typename Reg<sizeof(T)>::type>(
      *reinterpret_cast<const typename Reg<sizeof(T)>::mem*>(&v));
}

template <typename T>
__device__ __forceinline__ T from_reg(typename Reg<sizeof(T)>::type r) {
  T out;
  *reinterpret_cast<typename Reg<sizeof(T)>::mem*>(&out) =
      static_cast<typename Reg<sizeof(T)>::mem>(r);
  return out;
}

template <int S, int Scope, int Space, int Hint> struct StImpl {
  static_assert(S < 0, "tsir::st: not a valid PTX memory order / scope / space / hint combination");
};
template <int S, int Scope, int Space, int Hint> struct LdImpl {
  static_assert(S < 0, "tsir::ld: not a valid PTX memory order / scope / space / hint combination");
};

}  // namespace detail

// One specialization per valid (order, scope, space, hint); PREFIX is the instruction without its
// type suffix. The width dispatch is the same for every prefix.
#define TSIR_ST_BODY(PREFIX)                                                                      \
  template <typename T> static __device__ __forceinline__ void run(T* p, T v) {                 \
    static_assert(sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8,         \
                  "tsir::st stores 1, 2, 4 or 8 bytes");                                        \
    if constexpr (sizeof(T) == 1) {                                                             \
      asm volatile(PREFIX ".b8 [%0], %1;" ::"l"(p), "h"(to_reg(v)) : "memory");                 \
    } else if constexpr (sizeof(T) == 2) {                                                      \
      asm volatile(PREFIX ".b16 [%0], %1;" ::"l"(p), "h"(to_reg(v)) : "memory");                \
    } else if constexpr (sizeof(T) == 4) {                                                      \
      asm volatile(PREFIX ".b32 [%0], %1;" ::"l"(p), "r"(to_reg(v)) : "memory");                \
    } else {                                                                                    \
      asm volatile(PREFIX ".b64 [%0], %1;" ::"l"(p), "l"(to_reg(v)) : "memory");                \
    }                                                                                           \
  }

#define TSIR_LD_BODY(PREFIX)                                                                      \
  template <typename T> static __device__ __forceinline__ T run(const T* p) {                   \
    static_assert(sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8,         \
                  "tsir::ld loads 1, 2, 4 or 8 bytes");                                         \
    typename Reg<sizeof(T)>::type r;                                                            \
    if constexpr (sizeof(T) == 1) {                                                             \
      asm volatile(PREFIX ".b8 %0, [%1];" : "=h"(r) : "l"(p) : "memory");                       \
    } else if constexpr (sizeof(T) == 2) {                                                      \
      asm volatile(PREFIX ".b16 %0, [%1];" : "=h"(r) : "l"(p) : "memory");                      \
    } else if constexpr (sizeof(T) == 4) {                                                      \
      asm volatile(PREFIX ".b32 %0, [%1];" : "=r"(r) : "l"(p) : "memory");                      \
    } else {                                                                                    \
      asm volatile(PREFIX ".b64 %0, [%1];" : "=l"(r) : "l"(p) : "memory");                      \
    }                                                                                           \
    return from_reg<T>(r);                                                                      \
  }

// Weak and volatile accesses carry no scope: any Scope selects the same instruction.
#define TSIR_ST_UNSCOPED(S, SPACE, HINT, PREFIX) \
  template <int Scope> struct StImpl<S, Scope, SPACE, HINT> { TSIR_ST_BODY(PREFIX) };
#define TSIR_ST_SCOPED(S, SCOPE, SPACE, HINT, PREFIX) \
  template <> struct StImpl<S, SCOPE, SPACE, HINT> { TSIR_ST_BODY(PREFIX) };
#define TSIR_LD_UNSCOPED(S, SPACE, HINT, PREFIX) \
  template <int Scope> struct LdImpl<S, Scope, SPACE, HINT> { TSIR_LD_BODY(PREFIX) };
#define TSIR_LD_SCOPED(S, SCOPE, SPACE, HINT, PREFIX) \
  template <> struct LdImpl<S, SCOPE, SPACE, HINT> { TSIR_LD_BODY(PREFIX) };

// The scoped orders, for each of the three scopes, in global (with and without L1::no_allocate)
// and generic space.
#define TSIR_ST_ORDER(S, NAME)                                                                    \
  TSIR_ST_SCOPED(S, CTA, GLOBAL, NO_HINT, "st." NAME ".cta.global")                             \
  TSIR_ST_SCOPED(S, GPU, GLOBAL, NO_HINT, "st." NAME ".gpu.global")                             \
  TSIR_ST_SCOPED(S, SYS, GLOBAL, NO_HINT, "st." NAME ".sys.global")                             \
  TSIR_ST_SCOPED(S, CTA, GLOBAL, NO_ALLOCATE, "st." NAME ".cta.global.L1::no_allocate")         \
  TSIR_ST_SCOPED(S, GPU, GLOBAL, NO_ALLOCATE, "st." NAME ".gpu.global.L1::no_allocate")         \
  TSIR_ST_SCOPED(S, SYS, GLOBAL, NO_ALLOCATE, "st." NAME ".sys.global.L1::no_allocate")         \
  TSIR_ST_SCOPED(S, CTA, GENERIC, NO_HINT, "st." NAME ".cta")                                   \
  TSIR_ST_SCOPED(S, GPU, GENERIC, NO_HINT, "st." NAME ".gpu")                                   \
  TSIR_ST_SCOPED(S, SYS, GENERIC, NO_HINT, "st." NAME ".sys")
#define TSIR_LD_ORDER(S, NAME)                                                                    \
  TSIR_LD_SCOPED(S, CTA, GLOBAL, NO_HINT, "ld." NAME ".cta.global")                             \
  TSIR_LD_SCOPED(S, GPU, GLOBAL, NO_HINT, "ld." NAME ".gpu.global")                             \
  TSIR_LD_SCOPED(S, SYS, GLOBAL, NO_HINT, "ld." NAME ".sys.global")                             \
  TSIR_LD_SCOPED(S, CTA, GLOBAL, NO_ALLOCATE, "ld." NAME ".cta.global.L1::no_allocate")         \
  TSIR_LD_SCOPED(S, GPU, GLOBAL, NO_ALLOCATE, "ld." NAME ".gpu.global.L1::no_allocate")         \
  TSIR_LD_SCOPED(S, SYS, GLOBAL, NO_ALLOCATE, "ld." NAME ".sys.global.L1::no_allocate")         \
  TSIR_LD_SCOPED(S, CTA, GENERIC, NO_HINT, "ld." NAME ".cta")                                   \
  TSIR_LD_SCOPED(S, GPU, GENERIC, NO_HINT, "ld." NAME ".gpu")                                   \
  TSIR_LD_SCOPED(S, SYS, GENERIC, NO_HINT, "ld." NAME ".sys")

namespace detail {
TSIR_ST_UNSCOPED(WEAK, GLOBAL, NO_HINT, "st.global")
TSIR_ST_UNSCOPED(WEAK, GLOBAL, NO_ALLOCATE, "st.global.L1::no_allocate")
TSIR_ST_UNSCOPED(WEAK, GENERIC, NO_HINT, "st")
TSIR_ST_UNSCOPED(VOLATILE, GLOBAL, NO_HINT, "st.volatile.global")
TSIR_ST_UNSCOPED(VOLATILE, GENERIC, NO_HINT, "st.volatile")
TSIR_ST_ORDER(RELAXED, "relaxed")
TSIR_ST_ORDER(RELEASE, "release")

TSIR_LD_UNSCOPED(WEAK, GLOBAL, NO_HINT, "ld.global")
TSIR_LD_UNSCOPED(WEAK, GLOBAL, NO_ALLOCATE, "ld.global.L1::no_allocate")
TSIR_LD_UNSCOPED(WEAK, GLOBAL, NON_COHERENT, "ld.global.nc")
TSIR_LD_UNSCOPED(WEAK, GLOBAL, NON_COHERENT_NO_ALLOCATE, "ld.global.nc.L1::no_allocate")
TSIR_LD_UNSCOPED(WEAK, GENERIC, NO_HINT, "ld")
TSIR_LD_UNSCOPED(VOLATILE, GLOBAL, NO_HINT, "ld.volatile.global")
TSIR_LD_UNSCOPED(VOLATILE, GENERIC, NO_HINT, "ld.volatile")
TSIR_LD_ORDER(RELAXED, "relaxed")
TSIR_LD_ORDER(ACQUIRE, "acquire")
}  // namespace detail

#undef TSIR_ST_ORDER
#undef TSIR_LD_ORDER
#undef TSIR_ST_SCOPED
#undef TSIR_ST_UNSCOPED
#undef TSIR_LD_SCOPED
#undef TSIR_LD_UNSCOPED
#undef TSIR_ST_BODY
#undef TSIR_LD_BODY

// Store `v` at `p` with the given order (the value is given at the pointer's type).
template <int S, int Scope = GPU, int Space_ = GLOBAL, int Hint_ = NO_HINT, typename T>
__device__ __forceinline__ void st(T* p, typename detail::Identity<T>::type v) {
  static_assert(S != ACQUIRE && S != ACQ_REL, "tsir::st: a store cannot have acquire semantics");
  detail::StImpl<S, Scope, Space_, Hint_>::run(p, v);
}

// Load the value at `p` with the given order.
template <int S, int Scope = GPU, int Space_ = GLOBAL, int Hint_ = NO_HINT, typename T>
__device__ __forceinline__ T ld(const T* p) {
  static_assert(S != RELEASE && S != ACQ_REL, "tsir::ld: a load cannot have release semantics");
  return detail::LdImpl<S, Scope, Space_, Hint_>::run(p);
}

// -- atomics ----------------------------------------------------------------------------------

namespace detail {
template <int S, int Scope> struct AtomImpl {
  static_assert(S < 0, "tsir::atom_add: sem must be RELAXED, ACQUIRE, RELEASE or ACQ_REL");
};
#define TSIR_ATOM(S, SCOPE, PREFIX)                                                               \
  template <> struct AtomImpl<S, SCOPE> {                                                       \
    template <typename T> static __device__ __forceinline__ T add(T* p, T v) {                  \
      T old;                                                                                    \
      if constexpr (sizeof(T) == 4 && (T)0.5f != (T)0) {                                        \
        asm volatile(PREFIX ".add.f32 %0, [%1], %2;" : "=f"(old) : "l"(p), "f"(v) : "memory");  \
      } else if constexpr (sizeof(T) == 8 && (T)0.5f != (T)0) {                                 \
        asm volatile(PREFIX ".add.f64 %0, [%1], %2;" : "=d"(old) : "l"(p), "d"(v) : "memory");  \
      } else if constexpr (sizeof(T) == 4) {                                                    \
        asm volatile(PREFIX ".add.u32 %0, [%1], %2;" : "=r"(old) : "l"(p), "r"(v) : "memory");  \
      } else {                                                                                  \
        static_assert(sizeof(T) == 8, "tsir::atom_add takes 4- or 8-byte values");              \
        asm volatile(PREFIX ".add.u64 %0, [%1], %2;" : "=l"(old) : "l"(p), "l"(v) : "memory");  \
      }                                                                                         \
      return old;                                                                               \
    }                                                                                           \
  };
#define TSIR_ATOM_SCOPES(S, NAME)                 \
  TSIR_ATOM(S, CTA, "atom." NAME ".cta.global")   \
  TSIR_ATOM(S, GPU, "atom." NAME ".gpu.global")   \
  TSIR_ATOM(S, SYS, "atom." NAME ".sys.global")
TSIR_ATOM_SCOPES(RELAXED, "relaxed")
TSIR_ATOM_SCOPES(ACQUIRE, "acquire")
TSIR_ATOM_SCOPES(RELEASE, "release")
TSIR_ATOM_SCOPES(ACQ_REL, "acq_rel")
#undef TSIR_ATOM_SCOPES
#undef TSIR_ATOM
}  // namespace detail

// Atomically add `v` to `*p` (global memory, local or a peer's) and return the previous value.
// Integer adds use the unsigned instruction: two's complement makes it right for signed types.
template <int S = RELAXED, int Scope = GPU, typename T>
__device__ __forceinline__ T atom_add(T* p, typename detail::Identity<T>::type v) {
  return detail::AtomImpl<S, Scope>::add(p, v);
}

}  // namespace tsir
