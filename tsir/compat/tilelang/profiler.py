"""TileLang's profiler over torch: `do_bench` (CUDA events with L2 flushing, or CUPTI through
torch.profiler) and `Profiler.assert_allclose` against a reference program."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any

from ...errors import LaunchError, UnsupportedError
from ...expr import IntImm

__all__ = ["TensorSupplyType", "do_bench", "Profiler", "make_inputs"]


class TensorSupplyType(enum.Enum):
    Integer = 1
    Uniform = 2
    Normal = 3
    Randn = 4
    Zero = 5
    One = 6
    Auto = 7


def _flush_buffer(torch: Any) -> Any:
    # 256 MB: larger than the L2 of any current NVIDIA GPU (H100: 50 MB, B200: 126 MB).
    return torch.empty(256 * 1024 * 1024 // 4, dtype=torch.int32, device="cuda")


def do_bench(
    fn: Callable[[], Any],
    warmup: float = 25,
    rep: float = 100,
    _n_warmup: int = 0,
    _n_repeat: int = 0,
    quantiles: Sequence[float] | None = None,
    fast_flush: bool = True,
    backend: str = "event",
    return_mode: str = "mean",
) -> Any:
    """Time `fn` in ms. `warmup`/`rep` are milliseconds (an iteration count is derived from a first
    estimate, as in TileLang/Triton) unless `_n_warmup`/`_n_repeat` give counts. The L2 cache is
    flushed before every timed call. `backend="cupti"` times the kernels alone with CUPTI."""
    import torch  # pyright: ignore[reportMissingImports]  # optional: torch is not a dependency of tsir

    if backend not in ("event", "cupti"):
        raise UnsupportedError(f"do_bench(backend={backend!r}): use 'event' or 'cupti'")
    if return_mode not in ("mean", "median", "min", "max", "all"):
        raise UnsupportedError(f"do_bench(return_mode={return_mode!r}) is not supported")
    fn()
    torch.cuda.synchronize()
    cache = _flush_buffer(torch)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(5):
        cache.zero_()
        fn()
    end.record()
    torch.cuda.synchronize()
    estimate = max(start.elapsed_time(end) / 5, 1e-4)
    n_warmup = _n_warmup or max(1, int(warmup / estimate))
    n_repeat = _n_repeat or max(1, int(rep / estimate))
    for _ in range(n_warmup):
        fn()
    if backend == "cupti":
        times = _cupti_times(torch, fn, cache, n_repeat)
    else:
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n_repeat)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n_repeat)]
        for s, e in zip(starts, ends):
            if fast_flush:
                cache.zero_()
            s.record()
            fn()
            e.record()
        torch.cuda.synchronize()
        times = [s.elapsed_time(e) for s, e in zip(starts, ends)]
    t = torch.tensor(times, dtype=torch.float64)
    if quantiles is not None:
        qs = torch.quantile(t, torch.tensor(list(quantiles), dtype=torch.float64)).tolist()
        return qs[0] if len(qs) == 1 else qs
    if return_mode == "all":
        return times
    return float(
        getattr(torch, return_mode)(t).item() if return_mode != "median" else t.median().item()
    )


def _cupti_times(torch: Any, fn: Callable[[], Any], cache: Any, n: int) -> list[float]:
    try:
        from torch.profiler import ProfilerActivity, profile  # pyright: ignore[reportMissingImports]  # optional: torch is not a dependency of tsir
    except ImportError as exc:
        raise UnsupportedError(
            f"do_bench(backend='cupti') needs torch.profiler (CUPTI): {exc}"
        ) from None
    if ProfilerActivity.CUDA not in torch.profiler.supported_activities():
        raise UnsupportedError(
            "do_bench(backend='cupti'): this torch build has no CUPTI (CUDA profiler activity)"
        )
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(n):
            cache.zero_()
            fn()
        torch.cuda.synchronize()
    total = 0.0
    for ev in prof.key_averages():
        name = ev.key
        if "zero" in name.lower() or "fill" in name.lower() or "memset" in name.lower():
            continue  # the L2 flush
        total += getattr(ev, "device_time_total", getattr(ev, "cuda_time_total", 0.0))
    return [total / n / 1000.0]


def make_inputs(
    params: Sequence[Any], supply: TensorSupplyType, shapes: Sequence[tuple[int, ...]]
) -> list[Any]:
    """Random tensors for `params` (tsir Buffers) with the given concrete shapes."""
    import torch  # pyright: ignore[reportMissingImports]  # optional: torch is not a dependency of tsir

    out = []
    for p, shape in zip(params, shapes):
        dt = torch_dtype(str(p.dtype))
        is_float = p.dtype.is_float
        kind = supply
        if kind is TensorSupplyType.Auto:
            kind = TensorSupplyType.Normal if is_float else TensorSupplyType.Integer
        if kind is TensorSupplyType.Zero:
            t = torch.zeros(shape, dtype=dt, device="cuda")
        elif kind is TensorSupplyType.One:
            t = torch.ones(shape, dtype=dt, device="cuda")
        elif kind is TensorSupplyType.Integer or not is_float:
            lo, hi = (0, 2) if str(p.dtype) in ("bool", "uint8") else (-2, 3)
            t = torch.randint(lo, hi, shape, device="cuda").to(dt)
        elif kind is TensorSupplyType.Uniform:
            t = torch.rand(shape, device="cuda", dtype=torch.float32).to(dt)
        else:
            t = torch.randn(shape, device="cuda", dtype=torch.float32).to(dt)
        out.append(t)
    return out


class Profiler:
    """`kernel.get_profiler()`: inputs made from the kernel's parameters, checks and timings."""

    def __init__(self, kernel: Any, supply: TensorSupplyType):
        self.kernel = kernel
        self.supply = supply
        self._inputs: list[Any] | None = None

    def _input_shapes(self) -> list[tuple[int, ...]]:
        shapes = []
        for i in self.kernel.in_idx:
            p = self.kernel.params[i]
            if not hasattr(p, "shape"):
                raise UnsupportedError(
                    f"the profiler cannot make a value for the scalar parameter `{p.name}`; pass input_tensors="
                )
            if not all(isinstance(d, IntImm) for d in p.shape):
                raise UnsupportedError(
                    f"the profiler cannot make `{p.name}` (dynamic shape {p.shape}); pass input_tensors="
                )
            shapes.append(tuple(d.value for d in p.shape))
        return shapes

    def _make_inputs(self) -> list[Any]:
        if self._inputs is None:
            params = [self.kernel.params[i] for i in self.kernel.in_idx]
            self._inputs = make_inputs(params, self.supply, self._input_shapes())
        return self._inputs

    def assert_allclose(
        self,
        reference_program: Callable[..., Any],
        input_tensors: Sequence[Any] | None = None,
        atol: float = 1e-2,
        rtol: float = 1e-2,
        max_mismatched_ratio: float = 0.01,
    ) -> None:
        import torch  # pyright: ignore[reportMissingImports]  # optional: torch is not a dependency of tsir

        ins = list(input_tensors) if input_tensors is not None else self._make_inputs()
        got = self.kernel(*ins)
        ref = reference_program(*ins)
        got_l = got if isinstance(got, (list, tuple)) else [got]
        ref_l = ref if isinstance(ref, (list, tuple)) else [ref]
        if len(got_l) != len(ref_l):
            raise LaunchError(
                f"the kernel returned {len(got_l)} outputs, the reference {len(ref_l)}"
            )
        for k, (g, r) in enumerate(zip(got_l, ref_l)):
            r = (
                r.to(g.dtype)
                if hasattr(r, "to")
                else torch.as_tensor(r, device=g.device, dtype=g.dtype)
            )
            close = torch.isclose(g.float(), r.float(), atol=atol, rtol=rtol)
            bad = (~close).sum().item()
            if bad > max_mismatched_ratio * close.numel():
                diff = (g.float() - r.float()).abs().max().item()
                raise AssertionError(
                    f"output {k}: {bad} of {close.numel()} elements differ beyond atol={atol}, "
                    f"rtol={rtol} (max abs diff {diff})"
                )

    def do_bench(
        self,
        func: Callable[..., Any] | None = None,
        warmup: float = 25,
        rep: float = 100,
        n_warmup: int = 0,
        n_repeat: int = 0,
        input_tensors: Sequence[Any] | None = None,
        backend: str = "event",
        quantiles: Sequence[float] | None = None,
        return_mode: str = "mean",
    ) -> Any:
        ins = list(input_tensors) if input_tensors is not None else self._make_inputs()
        target = func if func is not None else self.kernel
        return do_bench(
            lambda: target(*ins),
            warmup=warmup,
            rep=rep,
            _n_warmup=n_warmup,
            _n_repeat=n_repeat,
            quantiles=quantiles,
            backend=backend,
            return_mode=return_mode,
        )


def torch_dtype(name: str) -> Any:
    """The torch dtype of a tsir dtype name (torch is optional: imported on use)."""
    import torch  # pyright: ignore[reportMissingImports]  # optional: torch is not a dependency of tsir

    special = {"float8_e4m3": "float8_e4m3fn", "bool": "bool"}
    return getattr(torch, special.get(name, name))
