"""Every example kernel at a small shape, checked against torch: the workload that `make gpu-test`
runs under compute-sanitizer (racecheck, synccheck, memcheck, initcheck).

Usage: python3 scripts/sanitize_kernels.py [name-substring ...]   (prints one line per case; exits 1
on a wrong result). scripts/gpu_sanitize.sh runs it under each compute-sanitizer tool, checking only
tsir's kernels (their names end in `_kernel`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import hopper_ws_gemm  # noqa: E402
import torch  # noqa: E402
from elementwise_2d import fused_exp_scale_bias  # noqa: E402
from flash_attention import flash_attention  # noqa: E402
from flash_attention_hopper import flash_attention_hopper  # noqa: E402
from gemm import matmul  # noqa: E402
from softmax import (  # noqa: E402
    column_sum,
    column_sum_atomic,
    layer_norm,
    prefix_sum_rows,
    softmax,
    tile_sum_and_max,
)
from tilelang_forms import gemm_loop, gemm_scaled_a, histogram, layer_norm_rows, split_roles  # noqa: E402
from transpose import transpose  # noqa: E402
from vector_add import vector_add  # noqa: E402

import tsir  # noqa: E402

dev = "cuda"


def rnd(*shape: int, dtype: Any = torch.float32) -> Any:
    return torch.randn(*shape, device=dev, dtype=dtype)


def nan(*shape: int, dtype: Any = torch.float32) -> Any:
    return torch.full(shape, float("nan"), device=dev, dtype=dtype)


def close(out: Any, ref: Any, tol: float) -> bool:
    """Compared on the host: a torch kernel comparing on the GPU would read the reference that a
    torch kernel outside the sanitizer's `_kernel` filter wrote (cuDNN's softmax, say), which
    initcheck then reports as uninitialized (seen on an H100: 162,816 such reports, all in torch's
    elementwise kernel inside this function)."""
    out, ref = out.detach().cpu().double(), ref.detach().cpu().double()
    return bool(((out - ref).norm() / max(ref.norm().item(), 1e-30)).item() < tol)


def same(out: Any, ref: Any) -> bool:
    """Exactly equal, compared on the host (see `close`)."""
    return bool(torch.equal(out.detach().cpu(), ref.detach().cpu()))


def case_gemm(stages: int, M: int = 80, N: int = 72, K: int = 96, **kw: Any) -> Callable[[], bool]:
    def run() -> bool:
        k = tsir.compile(
            matmul(M, N, K, bm=64, bn=64, bk=32, num_stages=stages, **kw), target="cuda"
        )
        ta, tb = kw.get("transpose_A", False), kw.get("transpose_B", False)
        a, b = rnd(M, K, dtype=torch.float16), rnd(K, N, dtype=torch.float16)
        c = nan(M, N, dtype=torch.float16)
        k(a.t().contiguous() if ta else a, b.t().contiguous() if tb else b, c)
        return close(c, a.double() @ b.double(), 1e-2)

    return run


def case_gemm_loop(stages: int | None) -> Callable[[], bool]:
    def run() -> bool:
        M, N, K = 70, 96, 80
        k = tsir.compile(gemm_loop(M, N, K, num_stages=stages), target="cuda")
        a, b, c = rnd(M, K, dtype=torch.float16), rnd(K, N, dtype=torch.float16), nan(M, N)
        k(a, b, c)
        return close(c, a.double() @ b.double(), 1e-3)

    return run


def run_layer_norm_rows(blk_m: int, dtype: str) -> bool:
    N, D = 5, 256
    tdt = getattr(torch, dtype)
    k = tsir.compile(layer_norm_rows(N, D, blk_m, 128, dtype), target="cuda")
    x, g, b = rnd(N, D, dtype=tdt), rnd(D, dtype=tdt), rnd(D, dtype=tdt)
    y, mean, rstd = nan(N, D, dtype=tdt), nan(N), nan(N)
    k(x, g, b, y, mean, rstd)
    ref = torch.nn.functional.layer_norm(x.double(), (D,), g.double(), b.double(), eps=1e-5)
    return close(y, ref, 1e-2) and close(mean, x.double().mean(-1), 1e-5)


def run_softmax() -> bool:
    k = tsir.compile(softmax(512, 2), target="cuda")
    x, y = rnd(5, 512), nan(5, 512)
    k(x, y)
    return close(y, torch.softmax(x.double(), -1), 1e-5)


def run_layer_norm() -> bool:
    k = tsir.compile(layer_norm(512, 2), target="cuda")
    x, w, b, y = rnd(6, 512), rnd(512), rnd(512), nan(6, 512)
    k(x, w, b, y)
    return close(
        y, torch.nn.functional.layer_norm(x.double(), (512,), w.double(), b.double()), 1e-4
    )


def run_column_sum(atomic: bool) -> bool:
    N = 512
    k = tsir.compile((column_sum_atomic if atomic else column_sum)(N), target="cuda")
    x = rnd(100, N)
    out = torch.zeros(N, device=dev) if atomic else nan(N)
    k(x, out)
    return close(out, x.double().sum(0), 1e-5)


def run_prefix_sum() -> bool:
    k = tsir.compile(prefix_sum_rows(128), target="cuda")
    x, y = rnd(20, 128), nan(20, 128)
    k(x, y)
    return close(y, x.double().cumsum(-1), 1e-5)


def run_reducers() -> bool:
    k = tsir.compile(tile_sum_and_max(512), target="cuda")
    x = rnd(20, 512)
    out = nan(3, 2)
    k(x, out)
    t = x.double().view(-1, 512)
    ref_sum = torch.stack([t[i * 8 : (i + 1) * 8].sum() for i in range(3)])
    ref_max = torch.stack([t[i * 8 : (i + 1) * 8].max() for i in range(3)])
    return close(out[:, 0], ref_sum, 1e-5) and close(out[:, 1], ref_max, 1e-6)


def run_flash_attention(D: int) -> bool:
    BH, S = 2, 100
    k = tsir.compile(flash_attention(BH, S, D), target="cuda")
    q, kk, v = (rnd(BH, S, D, dtype=torch.float16) for _ in range(3))
    o = nan(BH, S, D, dtype=torch.float16)
    k(q, kk, v, o)
    p = torch.softmax(q.double() @ kk.double().transpose(1, 2) / math.sqrt(D), -1)
    return close(o, p @ v.double(), 1e-2)


def run_transpose() -> bool:
    k = tsir.compile(transpose(N=192), target="cuda")
    x, y = rnd(100, 192), nan(192, 100)
    k(x, y)
    return same(y, x.t())


def run_vector_add() -> bool:
    k = tsir.compile(vector_add(), target="cuda")
    a, b, c = rnd(3000), rnd(3000), nan(3000)
    k(a, b, c)
    return same(c, a + b)


def run_elementwise() -> bool:
    k = tsir.compile(fused_exp_scale_bias(512), target="cuda")
    x, w, b, y = rnd(9, 512), rnd(512), rnd(512), nan(9, 512)
    k(x, w, b, y)
    return close(y, torch.exp(x.double()) * w.double() + b.double(), 1e-6)


def run_gemm_scaled_a() -> bool:
    M, N, K = 70, 96, 80
    k = tsir.compile(gemm_scaled_a(M, N, K), target="cuda")
    a, s, b, c = (
        rnd(M, K, dtype=torch.float16),
        torch.rand(M, device=dev) + 0.5,
        rnd(K, N, dtype=torch.float16),
        nan(M, N),
    )
    k(a, s, b, c)
    return close(c, (a.float() * s[:, None]).half().double() @ b.double(), 1e-3)


def run_histogram() -> bool:
    k = tsir.compile(histogram(5000, 32), target="cuda")
    x = torch.randint(0, 1000, (5000,), device=dev, dtype=torch.int32)
    h = torch.zeros(32, device=dev, dtype=torch.int32)
    k(x, h)
    return same(h, torch.bincount((x % 32).long(), minlength=32).to(torch.int32))


def run_split_roles() -> bool:
    k = tsir.compile(split_roles(256, 128), target="cuda")
    x, y, z = rnd(256), nan(256), nan(256)
    k(x, y, z)
    return same(y, x.flip(0) + 1.0) and same(z, torch.full_like(x, 7.0))


def hopper() -> bool:
    return torch.cuda.get_device_capability() >= (9, 0)


def run_ws_gemm(loops: bool) -> bool:
    """Explicit warp roles and mbarriers (sm_90a only; True elsewhere, there is nothing to run)."""
    if not hopper():
        return True
    M, N, K = 128, 128, 256
    f = (
        hopper_ws_gemm.ws_gemm_loops(M, N, K, stages=2)
        if loops
        else hopper_ws_gemm.ws_gemm_barrier(M, N, K)
    )
    k = tsir.compile(f, target="cuda")
    a, b, c = (
        rnd(M, K, dtype=torch.float16),
        rnd(K, N, dtype=torch.float16),
        nan(M, N, dtype=torch.float16),
    )
    k(a, b, c)
    return close(c, a.double() @ b.double(), 2e-3)


def run_gemm_hopper(**kw: Any) -> bool:
    """The tile program on the Hopper path (TMA ring, wgmma, producer warpgroup) at a ragged
    shape: persistent blocks over several tiles each, two consumer warpgroups, and the TMA-store
    epilogue (sm_90a only; True elsewhere)."""
    if not hopper():
        return True
    M, N, K = 520, 392, 200
    kw = {"bm": 128, "bn": 128, **kw}
    f = matmul(M, N, K, bk=64, threads=256, num_stages=3, swizzle=2, **kw)
    k = tsir.compile(f, target="cuda")
    a, b = rnd(M, K, dtype=torch.float16), rnd(K, N, dtype=torch.float16)
    c = nan(M, N, dtype=torch.float16)
    k(a, b, c)
    return close(c, a.double() @ b.double(), 2e-3)


def run_attention_hopper(causal: bool, **kw: Any) -> bool:
    """The Hopper attention program (wgmma, TMA ring, producer warpgroup) at a ragged length."""
    if not hopper():
        return True
    BH, S, D = 2, 200, 64
    k = tsir.compile(flash_attention_hopper(BH, S, D, causal=causal, **kw), target="cuda")
    q, kk, v = (rnd(BH, S, D, dtype=torch.float16) for _ in range(3))
    o = nan(BH, S, D, dtype=torch.float16)
    k(q, kk, v, o)
    # The reference on the host: torch's own GPU kernels match the `_kernel` filter too (SDPA's
    # causal mask runs `where`, seen reading memory that uninstrumented kernels wrote: 80,000
    # initcheck reports on an H100 that were not tsir's).
    q, kk, v = (x.cpu().float() for x in (q, kk, v))
    ref = torch.nn.functional.scaled_dot_product_attention(q, kk, v, is_causal=causal)
    return close(o, ref, 5e-3)


CASES: dict[str, Callable[[], bool]] = {
    "vector_add": run_vector_add,
    "elementwise": run_elementwise,
    "transpose": run_transpose,
    "softmax": run_softmax,
    "layer_norm": run_layer_norm,
    "column_sum": lambda: run_column_sum(False),
    "column_sum_atomic": lambda: run_column_sum(True),
    "prefix_sum": run_prefix_sum,
    "reducers": run_reducers,
    "flash_attention_d64": lambda: run_flash_attention(64),
    "gemm_stages0": case_gemm(0),
    "gemm_stages2": case_gemm(2),
    "gemm_stages3_tt": case_gemm(3, transpose_A=True, transpose_B=True),
    "gemm_smem_epilogue": case_gemm(3, epilogue="smem"),
    "gemm_serial_loop": case_gemm_loop(None),
    "gemm_pipelined_1": case_gemm_loop(1),
    "gemm_pipelined_4": case_gemm_loop(4),
    "gemm_scaled_a": run_gemm_scaled_a,
    "layer_norm_rows_blk1_bf16": lambda: run_layer_norm_rows(1, "bfloat16"),
    "layer_norm_rows_blk2_fp16": lambda: run_layer_norm_rows(2, "float16"),
    "histogram": run_histogram,
    "split_roles": run_split_roles,
    "ws_gemm_barrier": lambda: run_ws_gemm(False),
    "ws_gemm_loops": lambda: run_ws_gemm(True),
    "attention_hopper": lambda: run_attention_hopper(False),
    "attention_hopper_causal": lambda: run_attention_hopper(True),
    "attention_hopper_overlap_pingpong": lambda: run_attention_hopper(
        True, overlap=True, pingpong=True
    ),
    "gemm_hopper_persistent": lambda: run_gemm_hopper(persistent=True),
    "gemm_hopper_tma_store": lambda: run_gemm_hopper(persistent=True, epilogue="shared"),
    # 64-row tiles: the two consumer warpgroups split the columns, and so do their TMA stores.
    "gemm_hopper_tma_store_bm64": lambda: run_gemm_hopper(
        persistent=True, epilogue="shared", bm=64, bn=128
    ),
}


def main(argv: list[str]) -> int:
    torch.manual_seed(0)
    bad = 0
    for name, run in CASES.items():
        if argv and not any(a in name for a in argv):
            continue
        try:
            ok = run()
            torch.cuda.synchronize()
        except Exception as exc:  # noqa: BLE001  (report every case, then fail)
            ok = False
            print(f"{name}: error {type(exc).__name__}: {exc}".splitlines()[0])
        print(f"{name}: {'ok' if ok else 'WRONG'}", flush=True)
        bad += not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
