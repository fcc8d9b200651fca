"""The Hopper entries of the device-call table against the headers they mirror.

CPU: every function of mbarrier.h, tma.h and wgmma.h has an interpreter entry and declared memory
effects (tsir.intrin.DEVICE_FUNCTIONS), and the CUDA twins of the GPU cases compile for sm_90a.
GPU (`-m gpu`, an sm_90 device with torch): small kernels written in CUDA C++ over the headers and
the same kernels written as tsir IR run on the same inputs; the interpreter must compute what the
hardware computes (TMA boxes byte for byte through every swizzle and the zero fill, wgmma
accumulators of the ss and rs forms through random descriptors' layouts, stmatrix, pack, elect,
TMA stores, a producer/consumer mbarrier ring, and two warpgroups taking turns on named barriers
with bar.sync and bar.arrive).

    python -m pytest -q -m gpu tests/interpret/test_hopper_gpu.py
"""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from irkit import addr, call, desc, mb, tensor_map, tma, u32, wg

import tsir
from tsir import T
from tsir.interpret.device_calls import DEVICE_CALLS
from tsir.intrin import DEVICE_FUNCTIONS
from tsir.layout.swizzle import SwizzleMode
from tsir.layout.wgmma_layouts import descriptor

HEADERS = os.path.join(os.path.dirname(__file__), "..", "..", "codegen", "include", "tsir")
_FN = re.compile(r"__device__ __forceinline__ [\w:&* ]+?\b(\w+)\s*\(")


@pytest.mark.parametrize("header", ["mbarrier", "tma", "wgmma"])
def test_every_hopper_header_function_has_semantics_and_effects(header: str) -> None:
    with open(os.path.join(HEADERS, f"{header}.h")) as fh:
        text = fh.read()
    names = {m.group(1) for m in _FN.finditer(text)} - {"advance"}  # RingState::advance
    assert len(names) >= 8
    for fn in sorted(names):
        assert f"tsir.{header}.{fn}" in DEVICE_CALLS, f"{header}.h: no interpreter entry for {fn}"
        assert f"tsir.{header}.{fn}" in DEVICE_FUNCTIONS, f"{header}.h: no effects for {fn}"
    declared = {n for n in DEVICE_FUNCTIONS if n.startswith(f"tsir.{header}.")}
    assert declared == {f"tsir.{header}.{fn}" for fn in names}


# -- the cases: a CUDA kernel, the same kernel as IR, inputs ---------------------------------------


@dataclass
class Case:
    name: str
    cuda: str  # one extern "C" kernel named `name`
    ir: Callable[[], tsir.PrimFunc]
    inputs: Callable[[np.random.Generator], list[Any]]  # arrays and ints, in parameter order
    threads: int
    smem: int  # dynamic shared memory bytes of the CUDA kernel
    maps: dict[int, tuple[tuple[int, ...], int]] = field(default_factory=dict)
    """CUDA parameter index -> (box, swizzle) of a tensor map of the array argument there."""
    rtol: float = 0.0


_ALIGNED = """
  extern __shared__ unsigned char smem_raw[];
  const unsigned raw = tsir::shared_u32(smem_raw);
  const unsigned base = (raw + 1023u) & ~1023u;  // the interpreter's allocations are 1024-aligned
  unsigned char* tile = smem_raw + (base - raw);
"""


def _tma_box_case(swizzle: int, c0: int, c1: int) -> Case:
    rows, cols = 40, 96
    inner = {0: 64, 32: 16, 64: 32, 128: 64}[swizzle]
    nbytes = 32 * inner * 2
    cuda = f"""#include "tsir/tma.h"
extern "C" __global__ void __launch_bounds__(128) tma_box(
    const __grid_constant__ tsir::TmaDescriptor map, unsigned char* out, int c0, int c1) {{
{_ALIGNED}
  __shared__ unsigned long long bar_word;
  const unsigned bar = tsir::shared_u32(&bar_word);
  if (threadIdx.x == 0) {{ tsir::mbarrier_init(bar, 1); tsir::mbarrier_init_fence(); }}
  __syncthreads();
  if (threadIdx.x == 0) {{
    tsir::mbarrier_arrive_expect_tx(bar, {nbytes}u);
    tsir::tma_load_2d(base, map, bar, c0, c1);
  }}
  tsir::mbarrier_wait(bar, 0);
  for (int i = threadIdx.x; i < {nbytes}; i += 128) out[i] = tile[i];
}}
"""

    def ir() -> tsir.PrimFunc:
        with T.prim_func("tma_box") as f:
            A = T.param("A", (rows, cols), "float16")
            out = T.param("out", (nbytes,), "uint8")
            x0, x1 = T.scalar("c0"), T.scalar("c1")
            with T.Kernel(1, threads=128):
                tx = T.get_thread_binding()
                S = T.alloc_shared((nbytes,), "uint8")
                bar = T.alloc_shared((1,), "uint64")
                with T.If(tx == 0):
                    mb("mbarrier_init", u32(bar[0]), 1)
                    mb("mbarrier_init_fence")
                T.sync_threads()
                with T.If(tx == 0):
                    mb("mbarrier_arrive_expect_tx", u32(bar[0]), nbytes)
                    tmap = tensor_map(A, (32, inner), swizzle)
                    tma("tma_load_2d", u32(S[0]), tmap, u32(bar[0]), x0, x1)
                mb("mbarrier_wait", u32(bar[0]), 0)
                for i in T.serial(nbytes // 128):
                    out[i * 128 + tx] = S[i * 128 + tx]
        return f.func

    def inputs(rng: np.random.Generator) -> list[Any]:
        a = rng.standard_normal((rows, cols)).astype(np.float16)
        return [a, np.full(nbytes, 0xAB, np.uint8), c0, c1]

    return Case("tma_box", cuda, ir, inputs, 128, nbytes + 1024, {0: ((32, inner), swizzle)})


def _tma_store_case() -> Case:
    nbytes = 32 * 32 * 4
    cuda = f"""#include "tsir/tma.h"
extern "C" __global__ void __launch_bounds__(128) tma_store(
    const __grid_constant__ tsir::TmaDescriptor map, const unsigned char* img, int c0, int c1) {{
{_ALIGNED}
  for (int i = threadIdx.x; i < {nbytes}; i += 128) tile[i] = img[i];
  tsir::fence_proxy_async_shared();
  __syncthreads();
  if (threadIdx.x == 0) {{
    tsir::tma_store_2d(map, base, c0, c1);
    tsir::tma_store_commit();
    tsir::tma_store_wait<0>();
  }}
}}
"""

    def ir() -> tsir.PrimFunc:
        with T.prim_func("tma_store") as f:
            B = T.param("B", (40, 64), "float32")
            img = T.param("img", (nbytes,), "uint8")
            x0, x1 = T.scalar("c0"), T.scalar("c1")
            with T.Kernel(1, threads=128):
                tx = T.get_thread_binding()
                S = T.alloc_shared((nbytes,), "uint8")
                for i in T.serial(nbytes // 128):
                    S[i * 128 + tx] = img[i * 128 + tx]
                mb("fence_proxy_async_shared")
                T.sync_threads()
                with T.If(tx == 0):
                    tma("tma_store_2d", tensor_map(B, (32, 32), 128), u32(S[0]), x0, x1)
                    tma("tma_store_commit")
                    tma("tma_store_wait<0>")
        return f.func

    def inputs(rng: np.random.Generator) -> list[Any]:
        img = rng.standard_normal(nbytes // 4).astype(np.float32).view(np.uint8)
        return [np.full((40, 64), -1.0, np.float32), img, 48, 20]

    return Case("tma_store", cuda, ir, inputs, 128, nbytes + 1024, {0: ((32, 32), 128)})


_KINDS = {"f16": (0, "float16"), "bf16": (1, "bfloat16"), "e4m3": (2, "float8_e4m3"),
          "e4m3e5m2": (3, "float8_e4m3")}  # fmt: skip
_LAYOUT = {0: 0, 128: 1, 64: 2, 32: 3}


def _wgmma_case(kind: str, n: int, swz_a: int, swz_b: int, ta: int, tb: int, rs: bool) -> Case:
    """Two chained m64nNk instructions reading random (finite) operand images through the
    descriptors tsir.layout.wgmma_layouts gives for swizzled tiles (A from registers with rs)."""
    code, a_dt = _KINDS[kind]
    esize = 1 if a_dt.startswith("float8") else 2
    k = 16 if esize == 2 else 32
    a_shape = (64, 2 * k) if not ta else (2 * k, 64)
    b_shape = (n, 2 * k) if not tb else (2 * k, n)
    da = [descriptor(a_shape, a_dt, SwizzleMode(swz_a), k_major=not ta, mn0=0, k0=s * k)
          for s in range(2)] if not rs else []  # fmt: skip
    db = [descriptor(b_shape, a_dt, SwizzleMode(swz_b), k_major=not tb, mn0=0, k0=s * k)
          for s in range(2)]  # fmt: skip
    a_bytes = 64 * 2 * k * esize
    b_off = -(-a_bytes // 1024) * 1024
    nbytes = b_off + n * 2 * k * esize
    la, lb = _LAYOUT[swz_a], _LAYOUT[swz_b]
    if rs:
        mma = [
            f"tsir::wgmma_rs<{code}, {n}, {tb}>(d, a[{s}], "
            f"tsir::wgmma_desc(base + {b_off + db[s].start}u, "
            f"{db[s].lbo}u, {db[s].sbo}u, {lb}), {s});"
            for s in range(2)
        ]
    else:
        mma = [
            f"tsir::wgmma_ss<{code}, {n}, {ta}, {tb}>(d, tsir::wgmma_desc(base + {da[s].start}u, "
            f"{da[s].lbo}u, {da[s].sbo}u, {la}), tsir::wgmma_desc(base + {b_off + db[s].start}u, "
            f"{db[s].lbo}u, {db[s].sbo}u, {lb}), {s});"
            for s in range(2)
        ]
    body = "\n  ".join(mma)
    name = "wgmma_case"
    cuda = f"""#include "tsir/wgmma.h"
extern "C" __global__ void __launch_bounds__(128) {name}(
    const unsigned char* img, const unsigned* aregs, float* out) {{
{_ALIGNED}
  for (int i = threadIdx.x; i < {nbytes}; i += 128) tile[i] = img[i];
  tsir::fence_proxy_async_shared();
  __syncthreads();
  unsigned a[2][4];
  for (int s = 0; s < 2; ++s)
    for (int j = 0; j < 4; ++j) a[s][j] = aregs[(s * 128 + threadIdx.x) * 4 + j];
  float d[{n // 2}];
  tsir::wgmma_fence();
  {body}
  tsir::wgmma_commit();
  tsir::wgmma_wait<0>();
  for (int i = 0; i < {n // 2}; ++i) out[threadIdx.x * {n // 2} + i] = d[i];
}}
"""
    op_rs = f"wgmma_rs<{code}, {n}, {tb}>"
    op_ss = f"wgmma_ss<{code}, {n}, {ta}, {tb}>"

    def ir() -> tsir.PrimFunc:
        with T.prim_func(name) as f:
            img = T.param("img", (nbytes,), "uint8")
            aregs = T.param("aregs", (2 * 128 * 4,), "uint32")
            out = T.param("out", (128 * n // 2,), "float32")
            with T.Kernel(1, threads=128):
                tx = T.get_thread_binding()
                S = T.alloc_shared((nbytes,), "uint8")
                a = T.alloc_local((8,), "uint32")
                d = T.alloc_local((n // 2,), "float32")
                for i in T.serial(-(-nbytes // 128)):
                    with T.If(i * 128 + tx < nbytes):
                        S[i * 128 + tx] = img[i * 128 + tx]
                mb("fence_proxy_async_shared")
                T.sync_threads()
                for j in T.serial(8):
                    a[j] = aregs[((j // 4) * 128 + tx) * 4 + j % 4]
                wg("wgmma_fence")
                for s in range(2):
                    d_b = desc(u32(S[0]) + (b_off + db[s].start), db[s].lbo, db[s].sbo, lb)
                    if rs:
                        wg(op_rs, addr(d[0]), addr(a[4 * s]), d_b, s)
                    else:
                        d_a = desc(u32(S[0]) + da[s].start, da[s].lbo, da[s].sbo, la)
                        wg(op_ss, addr(d[0]), d_a, d_b, s)
                wg("wgmma_commit")
                wg("wgmma_wait<0>")
                for i in T.serial(n // 2):
                    out[tx * (n // 2) + i] = d[i]
        return f.func

    def inputs(rng: np.random.Generator) -> list[Any]:
        np_dt = {1: ml_dtypes.float8_e4m3fn, 2: np.float16}[esize]
        if kind == "bf16":
            np_dt = ml_dtypes.bfloat16
        vals = rng.uniform(-1, 1, nbytes // esize).astype(np.float32).astype(np_dt)
        img = vals.view(np.uint8).copy()
        if kind == "e4m3e5m2":  # B is e5m2
            b = rng.uniform(-1, 1, nbytes - b_off).astype(np.float32).astype(ml_dtypes.float8_e5m2)
            img[b_off:] = b.view(np.uint8)
        areg = rng.uniform(-1, 1, 2 * 128 * 16 // esize).astype(np.float32).astype(np_dt)
        return [img, areg.view(np.uint32), np.full(128 * n // 2, np.nan, np.float32)]

    return Case(name, cuda, ir, inputs, 128, nbytes + 1024, rtol=1e-3 if esize == 1 else 1e-5)


def _misc_case() -> Case:
    """pack_half2 / pack_bfloat162 into stmatrix_x4 (and .trans) rows, read back; elect_one."""
    cuda = """#include "tsir/wgmma.h"
extern "C" __global__ void __launch_bounds__(128) misc(
    const float* x, unsigned char* out, unsigned* packed, int* elect) {
  __shared__ alignas(128) unsigned char s[4 * 1024];
  const int t = threadIdx.x, w = t / 32, lane = t % 32;
  unsigned r[4];
  for (int j = 0; j < 4; ++j) {
    const float lo = x[(t * 4 + j) * 2], hi = x[(t * 4 + j) * 2 + 1];
    r[j] = (j % 2) ? tsir::pack_bfloat162(lo, hi) : tsir::pack_half2(lo, hi);
    packed[t * 4 + j] = r[j];
  }
  const unsigned base = tsir::shared_u32(s) + w * 1024;
  tsir::stmatrix_x4(base + lane * 16, r[0], r[1], r[2], r[3]);
  tsir::stmatrix_x4_trans(base + 512 + lane * 16, r[0], r[1], r[2], r[3]);
  __syncwarp();
  for (int i = 0; i < 32; ++i) out[w * 1024 + lane * 32 + i] = s[w * 1024 + lane * 32 + i];
  elect[t] = tsir::elect_one() ? 1 : 0;
}
"""

    def ir() -> tsir.PrimFunc:
        with T.prim_func("misc") as f:
            x = T.param("x", (128 * 8,), "float32")
            out = T.param("out", (4096,), "uint8")
            packed = T.param("packed", (512,), "uint32")
            elect = T.param("elect", (128,), "int32")
            with T.Kernel(1, threads=128):
                t = T.get_thread_binding()
                S = T.alloc_shared((4096,), "uint8")
                r = T.alloc_local((4,), "uint32")
                for j in range(4):
                    fn = "pack_bfloat162" if j % 2 else "pack_half2"
                    lo, hi = x[(t * 4 + j) * 2], x[(t * 4 + j) * 2 + 1]
                    r[j] = call("uint32", f"tsir.wgmma.{fn}", lo, hi)
                    packed[t * 4 + j] = r[j]
                base = u32(S[0]) + T.cast((t // 32) * 1024, "uint32")
                lane = T.cast(t % 32, "uint32")
                wg("stmatrix_x4", base + lane * 16, r[0], r[1], r[2], r[3])
                wg("stmatrix_x4_trans", base + 512 + lane * 16, r[0], r[1], r[2], r[3])
                T.sync_warp()
                for i in T.serial(32):
                    at = (t // 32) * 1024 + (t % 32) * 32 + i
                    out[at] = S[at]
                elect[t] = T.cast(call("bool", "tsir.mbarrier.elect_one"), "int32")
        return f.func

    def inputs(rng: np.random.Generator) -> list[Any]:
        x = (rng.standard_normal(1024) * 3).astype(np.float32)
        return [x, np.zeros(4096, np.uint8), np.zeros(512, np.uint32), np.full(128, 7, np.int32)]

    return Case("misc", cuda, ir, inputs, 128, 0)


def _turns_case() -> Case:
    """Named barriers in both forms: two warpgroups take turns (ping-pong, inject_ping_pong.py)
    bumping a shared counter and logging who they are; the log must alternate."""
    cuda = """#include "tsir/mbarrier.h"
extern "C" __global__ void __launch_bounds__(256) turns(int* log) {
  __shared__ int n;
  const int t = threadIdx.x, w = t / 128;
  if (t == 0) n = 0;
  __syncthreads();
  if (w == 1) tsir::named_barrier_arrive(3, 256);
  for (int k = 0; k < 4; ++k) {
    tsir::named_barrier_sync(3 + w, 256);
    if (t % 128 == 0) { log[n] = w; n = n + 1; }
    tsir::named_barrier_arrive(4 - w, 256);
  }
  if (w == 0) tsir::named_barrier_sync(3, 256);
}
"""

    def ir() -> tsir.PrimFunc:
        with T.prim_func("turns") as f:
            log = T.param("log", (8,), "int32")
            with T.Kernel(1, threads=256):
                t = T.get_thread_binding()
                n = T.alloc_shared((1,), "int32")
                w = t // 128
                with T.If(t == 0):
                    n[0] = 0
                T.sync_threads()
                with T.If(w == 1):
                    mb("named_barrier_arrive", 3, 256)
                for _k in T.serial(4):
                    mb("named_barrier_sync", 3 + w, 256)
                    with T.If(t % 128 == 0):
                        log[n[0]] = w
                        n[0] = n[0] + 1
                    mb("named_barrier_arrive", 4 - w, 256)
                with T.If(w == 0):
                    mb("named_barrier_sync", 3, 256)
        return f.func

    def inputs(rng: np.random.Generator) -> list[Any]:
        return [np.full(8, -1, np.int32)]

    return Case("turns", cuda, ir, inputs, 256, 0)


def _ring_case() -> Case:
    """test_hopper_pipeline's 2-stage ring (producer warp, consumer warpgroup) in CUDA."""
    import test_hopper_pipeline as ring

    b128 = SwizzleMode.B128
    mma = []
    for kk in range(ring.BK // 16):
        da = descriptor((64, ring.BK), "float16", b128, k_major=True, mn0=0, k0=kk * 16)
        db = descriptor((ring.N, ring.BK), "float16", b128, k_major=True, mn0=0, k0=kk * 16)
        mma.append(
            f"tsir::wgmma_ss<tsir::kWgmmaF16, {ring.N}, 0, 0>(acc, "
            f"tsir::wgmma_desc(sa + {da.start}u, {da.lbo}u, {da.sbo}u, 1), "
            f"tsir::wgmma_desc(sb + {db.start}u, {db.lbo}u, {db.sbo}u, 1), "
            f"(kb + {kk} > 0) ? 1 : 0);"
        )
    body = "\n      ".join(mma)
    a_st, b_st = ring.A_STAGE * 2, ring.B_STAGE * 2
    cuda = f"""#include "tsir/tma.h"
#include "tsir/wgmma.h"
extern "C" __global__ void __launch_bounds__(160) ring(
    const __grid_constant__ tsir::TmaDescriptor ta, const __grid_constant__ tsir::TmaDescriptor tb,
    float* C) {{
{_ALIGNED}
  __shared__ unsigned long long bars[4];
  const unsigned full0 = tsir::shared_u32(&bars[0]), empty0 = tsir::shared_u32(&bars[2]);
  const int tx = threadIdx.x;
  if (tx == 0) {{
    for (int s = 0; s < 2; ++s) {{
      tsir::mbarrier_init(full0 + 8 * s, 1);
      tsir::mbarrier_init(empty0 + 8 * s, 1);
    }}
    tsir::mbarrier_init_fence();
  }}
  __syncthreads();
  if (tx >= 128) {{
    if (tx == 128) {{
      for (int kb = 0; kb < {ring.K // ring.BK}; ++kb) {{
        const int s = kb % 2, ph = (kb / 2) % 2;
        tsir::mbarrier_wait(empty0 + 8 * s, ph ^ 1);
        tsir::mbarrier_arrive_expect_tx(full0 + 8 * s, {ring.STAGE_BYTES}u);
        tsir::tma_load_2d(base + s * {a_st}u, ta, full0 + 8 * s, kb * {ring.BK}, 0);
        tsir::tma_load_2d(base + {2 * a_st}u + s * {b_st}u, tb, full0 + 8 * s, kb * {ring.BK}, 0);
      }}
    }}
  }} else {{
    float acc[{ring.N // 2}];
    for (int kb = 0; kb < {ring.K // ring.BK}; ++kb) {{
      const int s = kb % 2, ph = (kb / 2) % 2;
      tsir::mbarrier_wait(full0 + 8 * s, ph);
      const unsigned sa = base + s * {a_st}u, sb = base + {2 * a_st}u + s * {b_st}u;
      tsir::wgmma_fence();
      {body}
      tsir::wgmma_commit();
      tsir::wgmma_wait<0>();
      if (tx == 0) tsir::mbarrier_arrive(empty0 + 8 * s);
    }}
    for (int i = 0; i < {ring.N // 2}; ++i) {{
      const int row = 16 * (tx / 32) + (tx % 32) / 4 + 8 * ((i % 4) / 2);
      const int col = 8 * (i / 4) + 2 * (tx % 4) + i % 2;
      C[row * {ring.N} + col] = acc[i];
    }}
  }}
}}
"""

    def inputs(rng: np.random.Generator) -> list[Any]:
        a = rng.standard_normal((64, ring.K)).astype(np.float16)
        b = rng.standard_normal((ring.N, ring.K)).astype(np.float16)
        return [a, b, np.full((64, ring.N), np.nan, np.float32)]

    smem = 2 * (a_st + b_st) + 1024
    maps = {0: ((64, ring.BK), 128), 1: ((ring.N, ring.BK), 128)}
    return Case("ring", cuda, ring.ring, inputs, 160, smem, maps, rtol=1e-5)


def _cases() -> list[Case]:
    return [
        _tma_box_case(0, 8, -4),
        _tma_box_case(32, 88, 24),
        _tma_box_case(64, 80, 16),
        _tma_box_case(128, 64, -20),
        _tma_store_case(),
        _wgmma_case("f16", 32, 64, 64, 0, 1, rs=False),
        _wgmma_case("bf16", 16, 128, 32, 1, 0, rs=False),
        _wgmma_case("f16", 64, 32, 128, 1, 1, rs=False),
        _wgmma_case("e4m3e5m2", 32, 64, 64, 0, 0, rs=False),
        _wgmma_case("f16", 32, 0, 64, 0, 1, rs=True),
        _wgmma_case("e4m3", 40, 0, 32, 0, 0, rs=True),
        _misc_case(),
        _ring_case(),
        _turns_case(),
    ]


CASES = _cases()


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.name}-{CASES.index(c)}")
def test_the_gpu_twins_compile_for_sm_90a(case: Case) -> None:
    from tsir.runtime.nvrtc import compile_cuda

    compile_cuda(case.cuda, "sm_90a", filename=f"{case.name}.cu")


def _launch_cuda(case: Case, args: list[Any]) -> list[Any]:
    """Run the CUDA twin on the GPU; returns the arrays after the launch (numpy)."""
    torch = pytest.importorskip("torch")
    from tsir.runtime import driver as drv
    from tsir.runtime.nvrtc import compile_cuda
    from tsir.runtime.tensor_map import TensorMapCache
    from tsir.runtime.tensor_map import tensor_map as encode

    if torch.cuda.get_device_capability() < (9, 0):
        pytest.skip("needs an sm_90 GPU")
    binary = compile_cuda(case.cuda, "sm_90a", filename=f"{case.name}.cu")
    device = torch.cuda.current_device()
    func = drv.get_function(drv.load_module(binary.cubin, device), case.name)
    if case.smem > 48 * 1024:
        drv.set_max_dynamic_smem(func, case.smem, device, case.name)
    # torch lacks (or barely supports) unsigned and ml_dtypes types: move their bits as int types.
    as_int = {1: np.uint8, 2: np.int16, 4: np.int32, 8: np.int64}
    dev = [
        torch.from_numpy(np.ascontiguousarray(a).view(as_int[a.itemsize]).copy()).cuda()
        if isinstance(a, np.ndarray)
        else a
        for a in args
    ]
    cache = TensorMapCache()
    keep: list[Any] = []
    ptrs = []
    for i, a in enumerate(dev):
        if i in case.maps:
            box, swz = case.maps[i]
            m = encode(a, box, SwizzleMode(swz), dtype=str(args[i].dtype), cache=cache)
            keep.append(m)
            ptrs.append(m.address)
            continue
        v: Any = ctypes.c_uint64(a.data_ptr()) if hasattr(a, "data_ptr") else ctypes.c_int32(a)
        keep.append(v)
        ptrs.append(ctypes.addressof(v))
    params = (ctypes.c_void_p * len(ptrs))(*ptrs)
    stream = torch.cuda.current_stream().cuda_stream
    err = drv.driver().cuLaunchKernel(
        func, 1, 1, 1, case.threads, 1, 1, case.smem, stream, ctypes.addressof(params), 0
    )[0]
    assert err == 0, drv.error_text(err)
    torch.cuda.synchronize()
    return [
        d.cpu().numpy().view(a.dtype) if isinstance(a, np.ndarray) else a for d, a in zip(dev, args)
    ]


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.name}-{CASES.index(c)}")
def test_the_interpreter_computes_what_the_headers_compute(case: Case) -> None:
    args = case.inputs(np.random.default_rng(CASES.index(case)))
    got = _launch_cuda(case, args)
    ref = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    tsir.interpret(case.ir(), *ref)
    for g, r in zip(got, ref):
        if not isinstance(r, np.ndarray):
            continue
        if case.rtol:
            np.testing.assert_allclose(g.astype(np.float64), r.astype(np.float64),
                                       rtol=case.rtol, atol=case.rtol)  # fmt: skip
        else:
            np.testing.assert_array_equal(g.view(np.uint8), r.view(np.uint8))


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.name}-{CASES.index(c)}")
def test_the_ir_twins_run_clean_in_the_interpreter(case: Case) -> None:
    """The interpreter half of each GPU comparison runs without a hazard and writes every output."""
    args = case.inputs(np.random.default_rng(CASES.index(case)))
    before = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    tsir.interpret(case.ir(), *args)
    changed = [
        not np.array_equal(a.view(np.uint8), b.view(np.uint8))
        for a, b in zip(args, before)
        if isinstance(a, np.ndarray)
    ]
    assert any(changed)
    for a in args:
        if isinstance(a, np.ndarray) and a.dtype == np.float32:
            assert not np.isnan(a).any()
