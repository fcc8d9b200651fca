"""`tsir.compile`: lower, generate CUDA, compile with NVRTC, and wrap it as a callable Kernel."""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any, Final

from tsir import knobs
from tsir.buffer import Buffer
from tsir.errors import CompileError, TSIRError, UnsupportedError
from tsir.expr import Call, IntImm, Var
from tsir.function import FAST_MATH_ATTR, Module, PrimFunc, fast_math_error
from tsir.stmt import Allocate, CpEngineCopy, LaunchKernel, LetStmt, SeqStmt
from tsir.target import Target

from . import warmup

__all__ = ["Kernel", "compile", "fast_math_options", "host_program"]


def host_program(module: Module) -> Any:
    """The runtime's description of the host function: parameters and the launches in order."""
    from tsir.codegen.host import python_expr
    from tsir.runtime.host_program import (
        HostProgram,
        KernelArg,
        LaunchStep,
        ScalarParam,
        TensorMapArg,
        TensorParam,
        WorkspaceParam,
    )

    host = module.host
    params: list[Any] = []
    names: dict[str, str] = {}

    def claim(name: str, what: str) -> None:
        if name in names and names[name] != what:
            raise CompileError(
                f"the name `{name}` is used by both {names[name]} and {what}; rename one"
            )
        names[name] = what

    for p in host.params:
        if isinstance(p, Buffer):
            claim(p.name, f"parameter `{p.name}`")
            shape: list[int | str] = []
            for d in p.shape:
                if isinstance(d, Var):
                    claim(d.name, f"dynamic dimension `{d.name}`")
                    shape.append(d.name)
                elif hasattr(d, "value"):
                    shape.append(int(d.value))  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
                else:
                    raise CompileError(
                        f"parameter `{p.name}`: dimension `{d}` must be a constant or a T.dynamic symbol"
                    )
            params.append(
                TensorParam(
                    p.name, str(p.dtype), tuple(shape), None, p.align, p.scope == "symmetric"
                )
            )
        else:
            claim(p.name, f"scalar `{p.name}`")
            params.append(ScalarParam(p.name, str(p.dtype)))
    steps = []
    body = host.body
    # T.alloc_global: scratch the launcher allocates per call (Allocates around the launches).
    workspaces = []
    while isinstance(body, Allocate):
        ws = body.buffer
        if ws.scope != "global":
            raise CompileError(
                f"host allocation of `{ws.name}` in {ws.scope} memory is not supported"
            )
        claim(ws.name, f"T.alloc_global buffer `{ws.name}`")
        wshape: list[int | str] = []
        for d in ws.shape:
            if isinstance(d, Var) and d.name in names:
                wshape.append(d.name)
            elif hasattr(d, "value"):
                wshape.append(int(d.value))  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            else:
                raise CompileError(
                    f"T.alloc_global `{ws.name}`: dimension `{d}` must be a constant or a T.dynamic "
                    f"symbol of a parameter's shape"
                )
        workspaces.append(WorkspaceParam(ws.name, str(ws.dtype), tuple(wshape)))
        body = body.body
    stmts = body.stmts if isinstance(body, SeqStmt) else (body,)
    copies = []
    maps: dict[Var, Any] = {}

    def tensor_map(v: Var, value: Any) -> Any:
        # tma_descriptor(address_of(A[0, ...]), box_0, ..., box_{r-1}, swizzle_bytes)
        if not (isinstance(value, Call) and value.op == "tma_descriptor"):
            raise CompileError(f"host binding of `{v.name}` is not a tensor map: {value}")
        first = value.args[0].args[0]  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        box = tuple(int(a.value) for a in value.args[1:-1] if isinstance(a, IntImm))
        swizzle = value.args[-1]
        if len(box) != len(value.args) - 2 or not isinstance(swizzle, IntImm):
            raise CompileError(f"tensor map `{v.name}`: the box and swizzle must be constants")
        return TensorMapArg(first.buffer.name, box, int(swizzle.value))

    for s in stmts:
        while isinstance(s, LetStmt):
            maps[s.var] = tensor_map(s.var, s.value)
            s = s.body
        if isinstance(s, CpEngineCopy):
            from tsir.runtime.cpengine import copy_step

            copies.append(copy_step(s, len(steps)))
            continue
        if not isinstance(s, LaunchKernel):
            raise CompileError(
                f"host statement {type(s).__name__} is not supported yet; only kernel launches "
                f"and copy-engine transfers"
            )
        grid = tuple(python_expr(g) for g in s.grid) + ("1",) * (3 - len(s.grid))
        block = tuple(s.threads) + (1,) * (3 - len(s.threads))
        args = tuple(
            KernelArg(a.name, "ptr")
            if isinstance(a, Buffer)
            else maps[a]
            if isinstance(a, Var) and a in maps
            else KernelArg(a.name, str(a.dtype))
            for a in s.args
        )
        steps.append(LaunchStep(s.kernel, grid, block, s.dyn_shared_bytes, args))  # pyright: ignore[reportArgumentType]  # narrowed by a check above that the checker cannot follow
    return HostProgram(tuple(params), tuple(steps), tuple(copies), tuple(workspaces))


class Kernel:
    """A compiled function: call it with tensors (and scalars) in parameter order.

    `cuda_source` is the generated CUDA C++, `cubin` the NVRTC output, `asm` every stage by name
    ("tsir" the lowered IR text, "cuda", "cubin", and "ptx" on request), `lowered` each pass's IR.
    """

    def __init__(
        self,
        func: PrimFunc,
        target: Target,
        lowered: Any,
        source: str,
        binary: Any,
        program: Any,
        timings: dict[str, float],
    ):
        self.func = func
        self.target = target
        self._lowered = lowered
        self.cuda_source = source
        self.binary = binary
        self.cubin: bytes = binary.cubin
        self.program = program
        self.timings = timings
        self._launcher: Any = None
        # Requests the compiler could not honour, one line each (TSIR_EXPLAIN=1 prints them).
        self.report: list[str] = []

    @property
    def lowered(self) -> Any:
        """The IR after every pass (recomputed on first access when the compile was a cache hit)."""
        if self._lowered is None:
            from tsir.passes import lower

            self._lowered = lower(self.func, self.target)
        return self._lowered

    @property
    def module(self) -> Module:
        return self.lowered.module

    @property
    def asm(self) -> dict[str, Any]:
        return _Asm(self)

    @property
    def name(self) -> str:
        return self.func.name

    def __call__(self, *args: Any, stream: Any = None) -> None:
        launcher = self._launcher
        if launcher is None:
            from tsir.runtime.launch import Launcher

            launcher = self._launcher = Launcher(self.program, self.cubin)
        launcher(*args, stream=stream)

    def __repr__(self) -> str:
        return f"<tsir.Kernel {self.func.name} for {self.target}>"


class _Asm(dict):
    def __init__(self, k: Kernel):
        super().__init__(tsir=str(k.module), cuda=k.cuda_source, cubin=k.cubin)
        self._k = k

    def __missing__(self, key: str) -> Any:
        if key == "ptx":
            from tsir.runtime.nvrtc import get_ptx

            value = get_ptx(
                self._k.cuda_source, self._k.target, extra_options=fast_math_options(self._k.func)
            )
            self[key] = value
            return value
        raise KeyError(f"no stage {key!r}; stages: tsir, cuda, ptx, cubin")


# Parts of the tsir package that never run inside `tsir.lower` or the code generator, so a change
# to them cannot change a lowering (the function's printed form and structural hash are in the
# key): the front ends that only build IR, the reference interpreter, and test-support modules
# (which belong under tests/; listed in case one is still in the package). An installed tsir holds
# the runtime as tsir/runtime: of it, only kernel.py and host_program.py shape a lowering.
_NOT_COMPILER: Final = ("script", "compat", "interpret", "runtime")
_TEST_SUPPORT: Final = ("arith/corpus.py", "arith/tvm_oracle.py")


def compiler_source_files() -> list[Path]:
    """tsir's compiler sources: the IR, builder helpers, layouts, tile ops, arithmetic, passes,
    codegen, and the host-program builder; not the parts in `_NOT_COMPILER` / `_TEST_SUPPORT`."""
    import tsir.codegen
    import tsir.passes

    import tsir

    root = Path(tsir.__file__).parent
    files = {
        p
        for p in root.rglob("*.py")
        if p.relative_to(root).parts[0] not in _NOT_COMPILER
        and p.relative_to(root).as_posix() not in _TEST_SUPPORT
    }
    for pkg in (tsir.passes, tsir.codegen):
        assert pkg.__file__ is not None  # regular packages, not namespace packages
        files.update(Path(pkg.__file__).parent.rglob("*.py"))
    here = Path(__file__).parent
    files.update((here / "kernel.py", here / "host_program.py"))
    return sorted(f for f in files if "__pycache__" not in f.parts)


@cache
def compiler_source_hash() -> str:
    """sha256 of `compiler_source_files()`, once per process: a changed compiler never reuses a
    lowering cached by another version of itself, and nothing but the compiler invalidates one."""
    digest = hashlib.sha256()
    for path in compiler_source_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _lowering_key(func: PrimFunc, target: Target) -> str:
    from tsir.runtime import cache

    from tsir.structural import structural_hash

    return cache.make_key(
        "lowering", [str(func), str(structural_hash(func)), target.arch, compiler_source_hash()]
    )


def _program_to_json(program: Any) -> Any:
    return dataclasses.asdict(program)


def _program_from_json(data: Any) -> Any:
    from tsir.runtime.host_program import HostProgram, LaunchStep, ScalarParam, TensorParam

    params: list[Any] = []
    for p in data["params"]:
        if "shape" in p:
            strides = tuple(p["strides"]) if p["strides"] is not None else None
            params.append(
                TensorParam(
                    p["name"],
                    p["dtype"],
                    tuple(p["shape"]),
                    strides,
                    p["align"],
                    p.get("symmetric", False),
                )
            )
        else:
            params.append(ScalarParam(p["name"], p["dtype"]))
    steps = tuple(
        LaunchStep(
            s["kernel"],
            tuple(s["grid"]),
            tuple(s["block"]),
            s["dyn_smem"],
            tuple(_arg_from_json(a) for a in s["args"]),
        )
        for s in data["steps"]
    )
    from tsir.runtime.host_program import CopyStep, WorkspaceParam

    copies = tuple(CopyStep(**c) for c in data.get("copies", ()))
    workspaces = tuple(
        WorkspaceParam(w["name"], w["dtype"], tuple(w["shape"])) for w in data.get("workspaces", ())
    )
    return HostProgram(tuple(params), steps, copies, workspaces)


def _arg_from_json(data: dict[str, Any]) -> Any:
    from tsir.runtime.host_program import KernelArg, TensorMapArg

    if "tensor" in data:  # a TensorMapArg
        return TensorMapArg(
            data["tensor"],
            tuple(data["box"]),
            data["swizzle"],
            data["l2_promotion"],
            data["oob_nan"],
        )
    return KernelArg(data["name"], data["ctype"])


def compile(func: PrimFunc, target: Any = "cuda") -> Kernel:  # noqa: A001
    """Lower `func` for `target`, generate CUDA C++ and compile it with NVRTC.

    Both halves are cached on disk: the lowering (keyed by the function's printed form and structural
    hash, the target and tsir's own sources) and the cubin (keyed by the CUDA source and options).
    """
    from tsir.codegen.cuda import generate_cuda
    from tsir.passes import lower, user_errors
    from tsir.runtime import cache
    from tsir.runtime.cache import CacheEntry
    from tsir.runtime.nvrtc import compile_cuda

    if not isinstance(func, PrimFunc):
        raise TSIRError(
            f"tsir.compile expects a PrimFunc (the `.func` of a `with T.prim_func(...) as f:` block), "
            f"got {type(func).__name__}"
        )
    tgt = Target.parse(target)
    nvrtc = fast_math_options(func)
    t0 = time.perf_counter()
    lowered = None
    key = _lowering_key(func, tgt) if cache.enabled() else None
    entry = cache.load("lowering", key) if key is not None else None
    if entry is not None:
        source = entry.blobs["cuda"].decode()
        program = _program_from_json(entry.meta["program"])
        report = [str(x) for x in entry.meta.get("report", [])]
        if knobs.explain:
            for line in report:
                print(f"[tsir explain] {func.name}: {line}", file=sys.stderr)
        t1 = time.perf_counter()
    else:
        # NVRTC's first-use set-up overlaps the lowering (runtime/warmup.py); a cached lowering
        # leaves nothing to overlap
        warmup.start(tgt)
        lowered = lower(func, tgt)
        t1 = time.perf_counter()
        with user_errors("codegen", lowered.module):
            source = generate_cuda(lowered.module)
            program = host_program(lowered.module)
        report = [str(d) for d in lowered.report]
        if key is not None:
            meta = {"program": _program_to_json(program), "report": report}
            cache.store("lowering", key, CacheEntry({"cuda": source.encode()}, meta))
    t2 = time.perf_counter()
    warmup.wait()
    binary = compile_cuda(source, tgt, filename=f"{func.name}.cu", extra_options=nvrtc)
    t3 = time.perf_counter()
    timings = {"lower": t1 - t0, "codegen": t2 - t1, "nvrtc": t3 - t2, "total": t3 - t0}
    kernel = Kernel(func, tgt, lowered, source, binary, program, timings)
    kernel.report = report
    return kernel


# NVRTC's options for each `T.func_attr({"fast_math": ...})` mode (tsir/function.py says what each
# allows).
_FAST_MATH_NVRTC: Final = {False: (), "ftz": ("-ftz=true",), True: ("--use_fast_math",)}


def fast_math_options(func: PrimFunc) -> tuple[str, ...]:
    """The NVRTC options `func`'s fast-math attribute asks for (after the knob's, which apply to
    every compile); a value that is not a mode raises UnsupportedError."""
    mode = func.attr(FAST_MATH_ATTR, False)
    why = fast_math_error(mode)
    if why is not None:
        raise UnsupportedError(f"function `{func.name}`: {why}", where="tsir.compile")
    return _FAST_MATH_NVRTC[mode]
