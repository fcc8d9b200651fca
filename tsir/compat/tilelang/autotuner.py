"""`tilelang.autotune` / `AutoTuner` over tsir.

Every configuration is built and compiled in parallel on the CPU first (forked workers fill tsir's
on-disk compile cache; the parent then loads each kernel from it), then timed one by one on the GPU
with a progress line. The winner is cached on disk per function, configuration space, fixed
arguments and device, so a second run compiles only the winner.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tsir  # compat sits above the whole package

from ... import knobs
from ...errors import TSIRError, UnsupportedError
from ...script import build_jit
from .jit import JitFunction, jit
from .kernel import JITKernel, resolve_target
from .profiler import TensorSupplyType

__all__ = ["autotune", "AutoTuner", "AutotuneResult", "tune"]


@dataclass
class AutotuneResult:
    """The winner: `.kernel`, `.config`, `.latency` (ms), `.ref_latency`; calls go to the kernel."""

    latency: float
    config: dict[str, Any]
    ref_latency: float | None
    kernel: JITKernel
    failures: dict[str, str] = field(default_factory=dict)
    from_cache: bool = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.kernel(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["kernel"], name)

    def __iter__(self) -> Any:  # the older `latency, config, ref_latency = result` spelling
        return iter((self.latency, self.config, self.ref_latency))


class _Progress:
    def __init__(self, what: str, total: int):
        self.what, self.total, self.done = what, total, 0
        self.tty = sys.stderr.isatty()

    def step(self, note: str = "") -> None:
        self.done += 1
        line = f"[tsir autotune] {self.what} {self.done}/{self.total} {note}"
        if self.tty:
            end = "\n" if self.done == self.total else ""
            print("\r" + line.ljust(78), end=end, file=sys.stderr, flush=True)
        elif self.done == self.total or self.done % max(1, self.total // 10) == 0:
            print(line, file=sys.stderr, flush=True)


def _config_name(c: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in c.items())


# The worker pool forks the parent, so a worker sees the user's functions without pickling them.
_WORK: dict[str, Any] = {}


def _warm(index: int) -> str | None:
    make, configs, arch = _WORK["make"], _WORK["configs"], _WORK["arch"]
    try:
        tsir.compile(make(configs[index]), target=arch)
        return None
    except Exception as exc:  # noqa: BLE001  (reported per configuration)
        return f"{type(exc).__name__}: {exc}"


def _parallel_warm(
    make_func: Callable[[dict[str, Any]], Any], configs: list[dict[str, Any]], arch: str
) -> dict[int, str]:
    workers = int(
        os.environ.get("TSIR_AUTOTUNE_WORKERS", str(min(os.cpu_count() or 1, len(configs))))
    )
    if workers <= 1 or len(configs) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return {}
    _WORK.update(make=make_func, configs=configs, arch=arch)
    errors: dict[int, str] = {}
    progress = _Progress("compiled", len(configs))
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            for i, err in enumerate(pool.map(_warm, range(len(configs)))):
                progress.step(_config_name(configs[i]) if err is None else "(failed)")
                if err is not None:
                    errors[i] = err
    finally:
        _WORK.clear()
    return errors


def _cache_path(key: str) -> Path:
    return Path(knobs.get("cache_dir")) / "autotune" / f"{key}.json"


def _device_name(arch: str) -> str:
    try:
        import torch  # pyright: ignore[reportMissingImports]  # optional: torch is not a dependency of tsir

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name()}|{arch}"
    except ImportError:
        pass
    return arch


def tune(
    make_kernel: Callable[[dict[str, Any]], JITKernel],
    make_func: Callable[[dict[str, Any]], Any],
    configs: Sequence[dict[str, Any]],
    *,
    key_parts: Sequence[Any],
    target: Any = "auto",
    bench: Callable[[JITKernel], float] | None = None,
    check: Callable[[JITKernel], None] | None = None,
    ref_bench: Callable[[], float] | None = None,
    use_cache: bool = True,
) -> AutotuneResult:
    """Compile every config (in parallel), time each with `bench`, return the fastest."""
    configs = [dict(c) for c in configs]
    if not configs:
        raise UnsupportedError("autotune: the configuration space is empty")
    arch = tsir.Target.parse(resolve_target(target)).arch
    text = json.dumps(
        [
            [repr(p) for p in key_parts],
            [sorted((k, repr(v)) for k, v in c.items()) for c in configs],
            _device_name(arch),
            tsir.__version__,
        ]
    )
    key = hashlib.sha256(text.encode()).hexdigest()[:32]
    path = _cache_path(key)
    if use_cache and path.is_file():
        try:
            saved = json.loads(path.read_text())
            winner = configs[saved["index"]]
            kernel = make_kernel(winner)
            return AutotuneResult(
                saved["latency"], winner, saved.get("ref_latency"), kernel, from_cache=True
            )
        except (ValueError, KeyError, IndexError, OSError):
            pass  # an unreadable entry is a miss
    failures = {
        _config_name(configs[i]): e for i, e in _parallel_warm(make_func, configs, arch).items()
    }
    kernels: list[tuple[int, JITKernel]] = []
    for i, c in enumerate(configs):
        if _config_name(c) in failures:
            continue
        try:
            kernels.append((i, make_kernel(c)))
        except TSIRError as exc:
            failures[_config_name(c)] = f"{type(exc).__name__}: {exc.message}"
    if bench is None:
        raise UnsupportedError("autotune needs a way to time the kernels (a GPU and torch)")
    progress = _Progress("timed", len(kernels))
    best: tuple[float, int, JITKernel] | None = None
    for i, k in kernels:
        try:
            if check is not None:
                check(k)
            t = bench(k)
        except (TSIRError, AssertionError, RuntimeError) as exc:
            failures[_config_name(configs[i])] = f"{type(exc).__name__}: {exc}"
            progress.step("(failed)")
            continue
        progress.step(f"{t:.4f} ms  {_config_name(configs[i])}")
        if best is None or t < best[0]:
            best = (t, i, k)
    if best is None:
        lines = "\n".join(f"  {c}: {e}" for c, e in list(failures.items())[:10])
        raise UnsupportedError(f"autotune: no configuration compiled and ran:\n{lines}")
    ref = ref_bench() if ref_bench is not None else None
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps(
                {
                    "index": best[1],
                    "config": {k: repr(v) for k, v in configs[best[1]].items()},
                    "latency": best[0],
                    "ref_latency": ref,
                    "time": time.time(),
                }
            )
        )
        os.replace(tmp, path)
    return AutotuneResult(best[0], configs[best[1]], ref, best[2], failures)


def _gpu_bench(
    warmup: float, rep: float, supply: Any, inputs: Sequence[Any] | None
) -> Callable[[JITKernel], float]:
    def bench(k: JITKernel) -> float:
        return float(k.get_profiler(supply).do_bench(warmup=warmup, rep=rep, input_tensors=inputs))

    return bench


class AutotunedFunction:
    """What `@autotune(configs=...)` returns over a `@jit` function."""

    def __init__(self, fn: Any, configs: Any, warmup: float, rep: float, profile: dict[str, Any]):
        self.jitf: JitFunction = fn if isinstance(fn, JitFunction) else jit(fn)
        self.configs = configs
        self.warmup, self.rep = warmup, rep
        self.profile = {**self.jitf.profile_args, **profile}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        space = list(self.configs(*args, **kwargs) if callable(self.configs) else self.configs)  # pyright: ignore[reportArgumentType]  # configs: a list of dicts, or a function returning one
        keys = {k for c in space for k in c}
        fixed = {k: kwargs.pop(k) for k in list(kwargs) if k in keys}
        space = [c for c in space if all(c.get(k, v) == v for k, v in fixed.items())]
        jitf = self.jitf
        if not space:
            space = [fixed]

        def make_kernel(c: dict[str, Any]) -> JITKernel:
            return jitf.compile(*args, **kwargs, **fixed, **c)

        def make_func(c: dict[str, Any]) -> Any:
            # Runs in the forked workers: builds the IR only (compiling goes by target name,
            # never through the CUDA driver, which a forked child must not touch).
            if jitf.is_body_form:
                return build_jit(jitf.fn, args, {**kwargs, **fixed, **c}).func
            return jitf.fn(*args, **kwargs, **fixed, **c)

        if len(space) == 1:
            return self._finish(jitf, make_kernel(space[0]), args, kwargs, None)
        ref_prog = self.profile.get("ref_prog")
        supply = self.profile.get("supply_type") or TensorSupplyType.Auto
        tensors = [a for a in args if hasattr(a, "shape")] if jitf.is_body_form else None
        check: Callable[[JITKernel], None] | None = None
        if ref_prog is not None and not self.profile.get("skip_check", False):

            def check_outputs(k: JITKernel) -> None:
                k.get_profiler(supply).assert_allclose(
                    ref_prog,
                    input_tensors=tensors,
                    atol=self.profile.get("atol", 1e-2),
                    rtol=self.profile.get("rtol", 1e-2),
                    max_mismatched_ratio=self.profile.get("max_mismatched_ratio", 0.01),
                )

            check = check_outputs
        key_parts = [
            getattr(jitf.fn, "__module__", ""),
            getattr(jitf.fn, "__qualname__", ""),
            inspect.getsource(jitf.fn),
            [_arg(a) for a in args],
            sorted((k, _arg(v)) for k, v in {**kwargs, **fixed}.items()),
        ]
        result = tune(
            make_kernel,
            make_func,
            space,
            key_parts=key_parts,
            target=jitf.target,
            bench=_gpu_bench(self.warmup, self.rep, supply, tensors),
            check=check,
        )
        return self._finish(jitf, result.kernel, args, kwargs, result)

    def _finish(
        self,
        jitf: JitFunction,
        kernel: JITKernel,
        args: Any,
        kwargs: Any,
        result: AutotuneResult | None,
    ) -> Any:
        if jitf.is_body_form:
            return kernel(*jitf._inputs(kernel, args, kwargs))
        if result is None:
            return kernel
        return result


def _arg(x: Any) -> Any:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return ("tensor", tuple(int(s) for s in x.shape), str(x.dtype))
    return repr(x)


def autotune(
    configs: Any = None, warmup: float = 25, rep: float = 100, timeout: float = 100, **profile: Any
) -> Callable[[Any], AutotunedFunction]:
    """`@tilelang.autotune(configs=[{...}, ...], warmup=, rep=)` over `@tilelang.jit`."""
    allowed = {
        "supply_type",
        "ref_prog",
        "skip_check",
        "atol",
        "rtol",
        "max_mismatched_ratio",
        "keys",
        "cache_input_tensors",
        "manual_check_prog",
    }
    unknown = set(profile) - allowed
    if unknown:
        raise UnsupportedError(
            f"@autotune({', '.join(sorted(unknown))}=...) is not supported by tsir"
        )
    profile.pop("keys", None)  # the config dicts name the keys already
    if configs is None:
        raise UnsupportedError(
            "@autotune without configs=: tsir has no automatic search space (TileLang's carver)"
        )

    def deco(fn: Any) -> AutotunedFunction:
        return AutotunedFunction(fn, configs, warmup, rep, profile)

    return deco


class AutoTuner:
    """`AutoTuner.from_kernel(kernel=fn, configs=[...]).set_compile_args(...).set_profile_args(...).run()`."""

    def __init__(self, fn: Callable[..., Any], configs: Sequence[dict[str, Any]]):
        self.fn, self.configs = fn, list(configs)
        self.compile_args: dict[str, Any] = {}
        self.profile_args: dict[str, Any] = {}

    @classmethod
    def from_kernel(
        cls, kernel: Callable[..., Any], configs: Sequence[dict[str, Any]]
    ) -> AutoTuner:
        return cls(kernel, configs)

    def set_compile_args(
        self, out_idx: Any = None, target: Any = "auto", **kwargs: Any
    ) -> AutoTuner:
        self.compile_args = {"out_idx": out_idx, "target": target, **kwargs}
        return self

    def set_profile_args(self, **kwargs: Any) -> AutoTuner:
        self.profile_args = kwargs
        return self

    def run(self, warmup: float = 25, rep: float = 100, timeout: float = 30) -> AutotuneResult:
        args = dict(self.compile_args)
        profile = {
            **{
                k: args.pop(k) for k in list(args) if k in ("supply_type", "ref_prog", "skip_check")
            },
            **self.profile_args,
        }
        jitf = jit(
            self.fn, out_idx=args.pop("out_idx", None), target=args.pop("target", "auto"), **args
        )
        tuned = AutotunedFunction(jitf, self.configs, warmup, rep, profile)
        out = tuned()
        return (
            out
            if isinstance(out, AutotuneResult)
            else AutotuneResult(float("nan"), self.configs[0], None, out)
        )
