"""Launching the generated Hopper GEMM (tsir/codegen/hopper_gemm.py) from Python, a Triton matmul in
the style of Triton's tutorial, and CUDA-event timing with L2-rotating inputs. Used by
benchmarks/hopper_gemm.py; needs a GPU with torch (and triton for the Triton baseline).

The launch is a phase-1 prototype of what the host program will do in phase 2 (docs/hopper_design.md):
tensor maps come from tsir.runtime.tensor_map and travel by value as `__grid_constant__`
parameters, i.e. cuLaunchKernel's parameter array points at their 128 bytes.
"""

from __future__ import annotations

import ctypes
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tsir.codegen.hopper_gemm import KERNEL_NAME, GemmConfig, generate
from tsir.runtime import driver as drv
from tsir.runtime.nvrtc import compile_cuda
from tsir.runtime.tensor_map import TensorMapCache, tensor_map

from tsir.layout import SwizzleMode

_MAPS = TensorMapCache()


def compile_variant(cfg: GemmConfig) -> bytes:
    return compile_cuda(generate(cfg), "sm_90a", filename=f"{cfg.name}.cu").cubin


def _max_clusters(func: Any, cfg: GemmConfig) -> int:
    """cuOccupancyMaxActiveClusters for clusters of cfg.cluster_m (0 without clusters or when the
    driver cannot tell): a GPC's SMs need not pair up, so fewer than SMs / 2 pairs may fit."""
    if cfg.cluster_m == 1:
        return 0
    from cuda.bindings import driver as cu

    config = cu.CUlaunchConfig()
    config.gridDimX, config.gridDimY, config.gridDimZ = cfg.cluster_m, 1, 1
    config.blockDimX, config.blockDimY, config.blockDimZ = cfg.threads, 1, 1
    config.sharedMemBytes = cfg.smem_bytes
    attr = cu.CUlaunchAttribute()
    attr.id = cu.CUlaunchAttributeID.CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION
    attr.value.clusterDim.x, attr.value.clusterDim.y, attr.value.clusterDim.z = cfg.cluster_m, 1, 1
    config.attrs = [attr]
    config.numAttrs = 1
    err, count = cu.cuOccupancyMaxActiveClusters(func, config)
    return int(count) if err == cu.CUresult.CUDA_SUCCESS else 0


@dataclass
class HopperGemm:
    """A loaded variant: `run(a, b, c)` launches C = A @ B (fp8: A @ B^T * scales) on torch's
    current stream."""

    cfg: GemmConfig
    func: Any
    num_sms: int
    max_clusters: int = 0
    """Clusters of cluster_m CTAs that fit on the GPU at once (0: unknown, one CTA per SM)."""

    @staticmethod
    def load(cfg: GemmConfig, device: int = 0) -> HopperGemm:
        cubin = compile_variant(cfg)
        module = drv.load_module(cubin, device)
        func = drv.get_function(module, KERNEL_NAME)
        drv.set_max_dynamic_smem(func, cfg.smem_bytes, device, KERNEL_NAME)
        sms = drv.device_attribute(device, "MULTIPROCESSOR_COUNT")
        return HopperGemm(cfg, func, sms, _max_clusters(func, cfg))

    def grid(self, m: int, n: int) -> int:
        """CTAs: every tile's, or (persistent) one per SM, in whole clusters of cluster_m."""
        cm = self.cfg.cluster_m
        clusters = -(-m // (self.cfg.block_m * cm)) * -(-n // self.cfg.block_n)
        if self.cfg.persistent:
            clusters = min(clusters, self.max_clusters or self.num_sms // cm)
        return clusters * cm

    def maps(self, a: Any, b: Any) -> tuple[Any, Any]:
        cfg = self.cfg
        span = 128 // cfg.esize  # the 128B swizzle's span, the inner extent of every box
        ma = tensor_map(a, (cfg.block_m, span), SwizzleMode.B128, cache=_MAPS, what="A")
        b_box = (cfg.block_n, span) if cfg.b_k_major else (cfg.block_k, span)
        mb = tensor_map(b, b_box, SwizzleMode.B128, cache=_MAPS, what="B")
        return ma, mb

    def launcher(
        self,
        a: Any,
        b: Any,
        c: Any,
        scale_a: Any = None,
        scale_b: Any = None,
        stream: Callable[[], int] | None = None,
    ) -> Callable[[], None]:
        """A zero-argument launch of this problem (tensor maps and parameters prepared once).
        Tensors are torch tensors or anything with data_ptr(), shape, stride(), dtype; `stream`
        returns the stream handle (default: torch's current stream)."""
        if stream is None:
            import torch

            def stream() -> int:
                return torch.cuda.current_stream().cuda_stream

        m, k = a.shape
        n = b.shape[0] if self.cfg.b_k_major else b.shape[1]
        if k == 0 or c.stride(1) != 1 or c.stride(0) % 2:
            raise ValueError("K > 0, and C row-major with an even leading dimension")
        ma, mb = self.maps(a, b)
        values = [
            ctypes.c_uint64(c.data_ptr()),
            ctypes.c_int32(m),
            ctypes.c_int32(n),
            ctypes.c_int32(k),
            ctypes.c_int32(c.stride(0)),
            ctypes.c_uint64(scale_a.data_ptr() if scale_a is not None else 0),
            ctypes.c_uint64(scale_b.data_ptr() if scale_b is not None else 0),
        ]
        maps = [ma, mb]
        if self.cfg.tma_store:  # boxes of one warpgroup's rows by the 128B swizzle's 64 columns
            maps.append(tensor_map(c, (self.cfg.wg_m, 64), SwizzleMode.B128, cache=_MAPS, what="C"))
        pointers = (ctypes.c_void_p * (len(maps) + len(values)))(
            *(m.address for m in maps), *(ctypes.addressof(v) for v in values)
        )
        keep = (maps, values, pointers)
        grid, threads, smem = self.grid(m, n), self.cfg.threads, self.cfg.smem_bytes
        cuda = drv.driver()
        func = self.func

        get_stream = stream

        def launch() -> None:
            err = cuda.cuLaunchKernel(
                func, grid, 1, 1, threads, 1, 1, smem, get_stream(), ctypes.addressof(pointers), 0
            )[0]
            if err != 0:
                raise RuntimeError(f"cuLaunchKernel: {drv.error_text(err)}")

        launch.__dict__["keep"] = keep  # the parameter storage lives as long as the launcher
        return launch


def _triton_kernel() -> Any:
    import triton
    import triton.language as tl

    configs = [
        triton.Config({"BM": 128, "BN": 256, "BK": 64, "GM": 8}, num_warps=8, num_stages=3),
        triton.Config({"BM": 128, "BN": 128, "BK": 64, "GM": 8}, num_warps=4, num_stages=4),
        triton.Config({"BM": 256, "BN": 128, "BK": 64, "GM": 8}, num_warps=8, num_stages=3),
    ]

    @triton.autotune(configs=configs, key=["M", "N", "K"])
    @triton.jit
    def matmul(a, b, c, M, N, K, sam, sak, sbk, sbn, scm, scn,
               BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GM: tl.constexpr):  # fmt: skip
        pid = tl.program_id(0)
        tiles_m, tiles_n = tl.cdiv(M, BM), tl.cdiv(N, BN)
        per_group = GM * tiles_n
        first = pid // per_group * GM
        rows = min(tiles_m - first, GM)
        pm = first + (pid % per_group) % rows
        pn = (pid % per_group) // rows
        rm = (pm * BM + tl.arange(0, BM)) % M
        rn = (pn * BN + tl.arange(0, BN)) % N
        rk = tl.arange(0, BK)
        pa = a + rm[:, None] * sam + rk[None, :] * sak
        pb = b + rk[:, None] * sbk + rn[None, :] * sbn
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for kb in range(0, tl.cdiv(K, BK)):
            ta = tl.load(pa, mask=rk[None, :] < K - kb * BK, other=0.0)
            tb = tl.load(pb, mask=rk[:, None] < K - kb * BK, other=0.0)
            acc = tl.dot(ta, tb, acc)
            pa += BK * sak
            pb += BK * sbk
        cm = pm * BM + tl.arange(0, BM)
        cn = pn * BN + tl.arange(0, BN)
        pc = c + cm[:, None] * scm + cn[None, :] * scn
        tl.store(pc, acc.to(c.dtype.element_ty), mask=(cm[:, None] < M) & (cn[None, :] < N))

    return matmul


_TRITON: list[Any] = []


def triton_launcher(a: Any, b: Any, c: Any) -> Callable[[], None]:
    import triton

    if not _TRITON:
        _TRITON.append(_triton_kernel())
    kernel = _TRITON[0]
    m, k = a.shape
    n = b.shape[1]

    def grid(meta: dict[str, int]) -> tuple[int]:
        return (triton.cdiv(m, meta["BM"]) * triton.cdiv(n, meta["BN"]),)

    def launch() -> None:
        kernel[grid](a, b, c, m, n, k, a.stride(0), a.stride(1), b.stride(0), b.stride(1),
                     c.stride(0), c.stride(1))  # fmt: skip

    return launch


def time_ms(launches: Sequence[Callable[[], None]], reps: int, warmup: int = 5) -> float:
    """Median milliseconds of one launch, rotating through `launches` (one per input copy, so
    that consecutive runs do not find their operands in L2), timed one by one with CUDA events."""
    import torch

    for i in range(warmup):
        launches[i % len(launches)]()
    events = [
        (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        for _ in range(reps)
    ]
    for i, (start, end) in enumerate(events):
        start.record()
        launches[i % len(launches)]()
        end.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in events)
