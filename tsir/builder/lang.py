"""`tsir.T`: the builder users write kernels with (names follow TileLang's `T.*`)."""

from __future__ import annotations

import builtins as _py
import contextlib
from typing import Any, Iterator

from ..buffer import Buffer, BufferRegion, Range, make_buffer
from ..dtype import DataType, bool_, dtype as as_dtype, int32 as _int32
from ..errors import BuildError, DTypeError, user_location
from ..expr import (
    BufferLoad, Call, FloatImm, IntImm, Max, Min, PrimExpr, Select, Var, binary, cast as _cast,
    const_value, convert,
)
from ..function import PrimFunc
from ..intrin import MATH_UNARY
from ..stmt import AttrStmt, Evaluate, For, ForKind, IfThenElse, KernelLaunch, SeqStmt, Stmt, TileOpStmt
from ..tileop import Copy, Fill
from .frame import Builder, Frame, KernelFrameInfo, builder_stack, current_builder, infer_name
from .indexing import check_buffer_use, store_value
from .dist_lang import *  # noqa: F403  (T.put_block, T.wait_eq, ...: TileScale's distributed names)
from .dist_lang import __all__ as _dist_all
from .cpengine_lang import cp_engine_copy
from .nvshmem_lang import nvshmem
from .tile_lang import *  # noqa: F403  (T.gemm, T.reduce_*, T.annotate_layout)
from .tile_lang import __all__ as _tile_all

__all__ = [
    "prim_func", "param", "scalar", "dynamic", "Kernel", "Parallel", "Pipelined", "serial", "unroll",
    "vectorized", "If", "Else", "attr", "call_intrin", "evaluate", "get_thread_binding", "get_block_binding", "sync_threads",
    "sync_warp", "alloc_shared", "alloc_fragment", "alloc_local", "alloc_var", "copy", "fill",
    "clear", "cast", "if_then_else", "infinity", "ceildiv", "max", "min", "abs", "all", "any",
    *MATH_UNARY,
    *_dist_all,
    *_tile_all,
    "cp_engine_copy",
    "nvshmem",
]


# -- structure ------------------------------------------------------------------------------------


class FuncHandle:
    """What `with T.prim_func(name) as f:` binds; `f.func` is the PrimFunc once the block exits."""

    def __init__(self, name: str):
        self.name = name
        self.func: PrimFunc | None = None
        self._builder = Builder(name)

    def __enter__(self) -> FuncHandle:
        builder_stack().append(self._builder)
        self._builder.push(Frame("func", lambda body: None))
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        b = self._builder
        stack = builder_stack()
        try:
            if exc_type is None:
                if len(b.frames) != 1:
                    raise BuildError("a loop or `with` block of the function was left open")
                body = b.frames[0].body()
                self.func = PrimFunc(self.name, tuple(b.params), body)
        finally:
            b.frames.clear()
            if stack and stack[-1] is b:
                stack.pop()


def prim_func(name: Any) -> Any:
    """`with T.prim_func("name") as f:` builds a function; `@T.prim_func` on a Python function whose
    parameters are annotated `T.Tensor(shape, dtype)` parses its source (the script form)."""
    if callable(name) and not isinstance(name, str):
        # The script front end sits above the builder (it drives these very functions), so the
        # decorator spelling forwards up to it instead of the builder importing it at load time.
        from ..script import prim_func as script_prim_func

        return script_prim_func(name)
    if not isinstance(name, str) or not name.isidentifier():
        raise BuildError(f"T.prim_func needs a function name that is a C identifier, got {name!r}")
    return FuncHandle(name)


def _check_name(b: Builder, name: str, what: str) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise BuildError(f"{what} name must be an identifier, got {name!r}")
    if _py.any(getattr(p, "name", None) == name for p in b.params):
        raise BuildError(f"{what} `{name}` is declared twice")


def param(name: str, shape: Any, dtype: Any, scope: str = "global") -> Buffer:
    """A tensor parameter: a dim may be an int or a `T.dynamic` symbol."""
    b = current_builder("T.param")
    _check_name(b, name, "parameter")
    if scope not in ("global", "symmetric"):
        raise BuildError(f"parameter `{name}`: scope must be 'global' or 'symmetric', got {scope!r}")
    if b.kernels or len(b.frames) != 1:
        raise BuildError(f"parameter `{name}` must be declared before any statement of the function")
    buf = make_buffer(name, shape, dtype, scope)
    b.params.append(buf)
    return buf


def scalar(name: str, dtype: Any = "int32") -> Var:
    """A scalar parameter, passed as a Python number at call time."""
    b = current_builder("T.scalar")
    _check_name(b, name, "parameter")
    v = Var(name, as_dtype(dtype))
    b.params.append(v)
    return v


def dynamic(name: str, dtype: Any = "int32") -> Var:
    """A symbolic dimension, bound from the shapes of the tensors passed at call time."""
    if not isinstance(name, str) or not name.isidentifier():
        raise BuildError(f"T.dynamic needs an identifier, got {name!r}")
    dt = as_dtype(dtype)
    if not dt.is_int:
        raise DTypeError(f"T.dynamic(`{name}`) must have an integer dtype, got {dt}")
    return Var(name, dt)


@contextlib.contextmanager
def Kernel(*grid: Any, threads: Any = 128, cluster: Any = None) -> Iterator[Any]:
    """A kernel launch over `grid` blocks of `threads` threads (int or up to 3 dims)."""
    b = current_builder("T.Kernel")
    if b.kernel is not None:
        raise BuildError("T.Kernel cannot be nested inside another T.Kernel")
    if not 1 <= len(grid) <= 3:
        raise BuildError(f"T.Kernel takes 1 to 3 grid extents, got {len(grid)}")
    dims = []
    for g in grid:
        e = convert(g)
        if not e.dtype.is_int:
            raise DTypeError(f"T.Kernel grid extent `{g}` must be an integer, got {e.dtype}")
        dims.append(e)
    tdims = (threads,) if isinstance(threads, int) else tuple(threads)
    if not tdims or len(tdims) > 3 or _py.any(not isinstance(t, int) or t < 1 for t in tdims):
        raise BuildError(f"T.Kernel threads must be a positive int or up to 3 of them, got {threads!r}")
    n = 1
    for t in tdims:
        n *= t
    if n > 1024:
        raise BuildError(f"T.Kernel: {n} threads per block exceeds the CUDA limit of 1024")
    if cluster is not None:
        from ..errors import UnsupportedError

        raise UnsupportedError(
            f"T.Kernel(cluster={cluster!r}): thread-block clusters are not launched by tsir yet "
            "(the launch would silently run without them); drop `cluster=`",
            loc=user_location(),
        )
    bvars = tuple(Var(x, _int32) for x in ("bx", "by", "bz")[: len(dims)])
    tvars = tuple(Var(x, _int32) for x in ("tx", "ty", "tz")[: len(tdims)])
    info = KernelFrameInfo(bvars, tvars, tdims)
    name = b.unique(f"{b.name}_kernel")
    clus = None if cluster is None else ((cluster,) if isinstance(cluster, int) else tuple(cluster))

    def finish(body: Stmt) -> Stmt:
        return KernelLaunch(name, tuple(dims), tdims, bvars, tvars, body, clus)

    frame = b.push(Frame("kernel", finish, kernel=info))
    b.kernels.append(info)
    yield bvars[0] if len(bvars) == 1 else bvars
    b.pop(frame)


def _loop(kind: ForKind, extents: tuple[Any, ...], names: list[str], annotations: tuple = ()) -> Iterator[Any]:
    b = current_builder(f"T.{kind.value}")
    ranges: list[tuple[PrimExpr, PrimExpr]] = []
    for e in extents:
        if isinstance(e, tuple):
            lo, hi = convert(e[0]), convert(e[1])
            ranges.append((lo, hi - lo))
        else:
            x = convert(e)
            if not x.dtype.is_int:
                raise DTypeError(f"loop extent `{e}` must be an integer, got {x.dtype}")
            ranges.append((IntImm(0, x.dtype), x))
    if kind is ForKind.PARALLEL and b.kernel is None:
        raise BuildError("T.Parallel must be inside a T.Kernel")
    if len(names) != len(ranges):
        names = [f"{names[0]}{k}" for k in range(len(ranges))] if len(ranges) > 1 else names[:1]
    lvars = [Var(n, r[1].dtype) for n, r in zip(names, ranges)]
    frames = []
    for v, (lo, ext) in zip(lvars, ranges):
        def finish(body: Stmt, v: Var = v, lo: PrimExpr = lo, ext: PrimExpr = ext) -> Stmt:
            return For(v, lo, ext, kind, body, None, annotations)

        frames.append(b.push(Frame(kind.value, finish)))
    yield lvars[0] if len(lvars) == 1 else tuple(lvars)
    for f in reversed(frames):
        b.pop(f)


def Parallel(*extents: Any) -> Iterator[Any]:
    """An element-wise loop nest; the compiler distributes its iterations over the block's threads."""
    if not extents:
        raise BuildError("T.Parallel needs at least one extent")
    return _loop(ForKind.PARALLEL, extents, _loop_name("i"))


def Pipelined(
    start: Any, stop: Any = None, num_stages: int = 0, order: Any = None, stage: Any = None,
    group: Any = None,
) -> Iterator[Any]:
    """A serial loop whose copies may be software-pipelined `num_stages` deep (0: not pipelined).
    `T.Pipelined(n)` runs 0..n-1, `T.Pipelined(start, stop)` runs start..stop-1. `order=`,
    `stage=` and `group=` (a hand-written schedule in TileLang) raise: tsir's pipeliner chooses
    the schedule itself, and accepting them would ignore them."""
    if not isinstance(num_stages, int) or isinstance(num_stages, bool) or num_stages < 0:
        raise BuildError(f"T.Pipelined num_stages must be an int >= 0, got {num_stages!r}")
    for key, value in (("order", order), ("stage", stage), ("group", group)):
        if value is not None:
            from ..errors import UnsupportedError

            raise UnsupportedError(
                f"T.Pipelined({key}=...): explicit pipeline schedules are not supported; tsir "
                "stages the copies that lead the loop body itself (drop order=/stage=/group=)",
                loc=user_location(),
            )
    kind = ForKind.PIPELINED if num_stages > 0 else ForKind.SERIAL
    ann = (("num_stages", num_stages),) if num_stages else ()
    if stop is None:
        return _loop(kind, (start,), _loop_name("k"), ann)
    if const_value(start) == 0:
        return _loop(kind, (stop,), _loop_name("k"), ann)
    if kind is ForKind.SERIAL:
        return _loop(kind, ((start, stop),), _loop_name("k"), ann)
    # The pipeliner counts stages from iteration 0: run 0..stop-start and hand the user start + k.
    return _offset_loop(kind, start, stop, _loop_name("k"), ann)


def _offset_loop(kind: ForKind, start: Any, stop: Any, names: list[str], ann: tuple) -> Iterator[Any]:
    lo = convert(start)
    for k in _loop(kind, (convert(stop, lo.dtype) - lo,), names, ann):
        yield lo + k


def serial(start: Any, stop: Any = None) -> Iterator[Any]:
    return _loop(ForKind.SERIAL, ((start, stop) if stop is not None else start,), _loop_name("i"))


def unroll(start: Any, stop: Any = None) -> Iterator[Any]:
    return _loop(ForKind.UNROLLED, ((start, stop) if stop is not None else start,), _loop_name("i"))


def vectorized(start: Any, stop: Any = None) -> Iterator[Any]:
    return _loop(ForKind.VECTORIZED, ((start, stop) if stop is not None else start,), _loop_name("v"))


def _loop_name(default: str) -> list[str]:
    """The user's loop target names (`for row, col in T.Parallel(...)` gives ["row", "col"])."""
    from ..errors import user_location
    import re

    loc = user_location()
    if loc is not None:
        m = re.match(r"\s*for\s+\(?\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*,?\s*\)?\s+in\b", loc.line)
        if m:
            return [n.strip() for n in m.group(1).split(",")]
    return [default]


@contextlib.contextmanager
def If(cond: Any) -> Iterator[None]:
    b = current_builder("T.If")
    c = _as_cond(cond, "T.If")

    def finish(body: Stmt) -> Stmt:
        return IfThenElse(c, body)

    frame = b.push(Frame("if", finish))
    yield
    b.pop(frame)


@contextlib.contextmanager
def attr(key: str, value: Any) -> Iterator[None]:
    """`AttrStmt(key, value, body)` around the statements of the block: a pass-level annotation
    (the printer's form for AttrStmt; tile programs rarely need it)."""
    b = current_builder("T.attr")
    if not isinstance(key, str):
        raise BuildError(f"T.attr: the key must be a string, got {key!r}")

    def finish(body: Stmt) -> Stmt:
        return AttrStmt(key, value, body)

    frame = b.push(Frame("attr", finish))
    yield
    b.pop(frame)


@contextlib.contextmanager
def Else() -> Iterator[None]:
    b = current_builder("T.Else")
    parent = b.frame
    last = parent.items[-1] if parent.items else None
    if not isinstance(last, IfThenElse) or last.else_case is not None:
        raise BuildError("`with T.Else():` must directly follow a `with T.If(...):` block")

    def finish(body: Stmt) -> Stmt | None:
        parent.items[-1] = last.replace(else_case=body)
        return None

    frame = b.push(Frame("else", finish))
    yield
    b.pop(frame)


def _as_cond(cond: Any, what: str) -> PrimExpr:
    c = convert(cond)
    if not c.dtype.is_bool:
        raise DTypeError(f"{what} needs a boolean condition, got `{c}` of dtype {c.dtype}")
    return c


def get_thread_binding(dim: int = 0) -> Var:
    b = current_builder("T.get_thread_binding")
    k = b.kernel
    if k is None:
        raise BuildError("T.get_thread_binding must be used inside a T.Kernel")
    if not 0 <= dim < len(k.thread_vars):
        raise BuildError(f"T.get_thread_binding({dim}): the kernel has {len(k.thread_vars)} thread dims")
    return k.thread_vars[dim]


def get_block_binding(dim: int = 0) -> Var:
    b = current_builder("T.get_block_binding")
    k = b.kernel
    if k is None or not 0 <= dim < len(k.block_vars):
        raise BuildError(f"T.get_block_binding({dim}) needs an enclosing T.Kernel with that grid dim")
    return k.block_vars[dim]


def _emit(stmt: Stmt, what: str) -> None:
    b = current_builder(what)
    b.frame.emit(stmt)


def sync_threads() -> None:
    _emit(Evaluate(Call(_int32, "sync_threads", ())), "T.sync_threads")


def sync_warp() -> None:
    _emit(Evaluate(Call(_int32, "sync_warp", ())), "T.sync_warp")


def call_intrin(dtype: Any, op: str, *args: Any) -> PrimExpr:
    """A call of an intrinsic (`tsir.intrin.INTRINSICS`) or of a device-header function
    (`tsir.<header>.<function>`): the printer's form for `Call`."""
    if not isinstance(op, str) or not op:
        raise BuildError(f"T.call_intrin: the callee must be a non-empty string, got {op!r}")
    return Call(as_dtype(dtype), op, tuple(convert(a) for a in args))


def evaluate(value: Any) -> None:
    """Evaluate an expression for its side effects (a call): the printer's form for `Evaluate`."""
    _emit(Evaluate(convert(value)), "T.evaluate")


# -- memory ---------------------------------------------------------------------------------------


def _alloc(shape: Any, dtype: Any, scope: str, default_name: str) -> Buffer:
    b = current_builder(f"T.alloc_{default_name}")
    k = b.kernel
    if k is None:
        raise BuildError(f"{scope} buffers must be allocated inside a T.Kernel")
    name = b.unique(infer_name(default_name))
    if isinstance(shape, (int, PrimExpr)):
        shape = (shape,)
    for d in shape:
        if const_value(d) is None:
            raise BuildError(f"`{name}`: {scope} buffers need constant shapes, got {shape!r}")
    buf = make_buffer(name, shape, dtype, scope)
    b.owner[buf] = k
    b.frame.allocate(buf)
    return buf


def alloc_shared(shape: Any, dtype: Any, scope: str = "shared.dyn") -> Buffer:
    if scope not in ("shared", "shared.dyn"):
        raise BuildError(f"T.alloc_shared scope must be 'shared' or 'shared.dyn', got {scope!r}")
    return _alloc(shape, dtype, scope, "shared")


def alloc_fragment(shape: Any, dtype: Any) -> Buffer:
    return _alloc(shape, dtype, "local.fragment", "frag")


def alloc_local(shape: Any, dtype: Any) -> Buffer:
    return _alloc(shape, dtype, "local", "local")


def alloc_var(dtype: Any, init: Any = None) -> Buffer:
    """A per-thread scalar variable: read and write it as `v[0]`."""
    buf = _alloc((1,), dtype, "local.var", "var")
    if init is not None:
        buf[0] = init
    return buf


def _region(x: Any, what: str) -> BufferRegion | BufferLoad:
    if isinstance(x, Buffer):
        check_buffer_use(x, element_access=False)
        return BufferRegion.full(x)
    if isinstance(x, (BufferRegion, BufferLoad)):
        return x
    raise BuildError(f"{what} must be a buffer, a slice of one or one element of one, got {x!r}")


def _squeezed(extents: tuple[PrimExpr, ...]) -> list[PrimExpr]:
    return [e for e in extents if const_value(e) != 1]


def _same_extent(a: PrimExpr, b: PrimExpr) -> bool:
    if a is b:
        return True
    ca, cb = const_value(a), const_value(b)
    if ca is not None and cb is not None:
        return ca == cb
    from ..structural import structural_equal

    return structural_equal(a, b)


def _element_region(load: BufferLoad, extents: tuple[PrimExpr, ...], what: str) -> BufferRegion:
    """`A[i, j]` used as a copy operand: the region starting there with the other side's extents."""
    n = load.buffer.ndim
    ext = list(_squeezed(extents))
    if len(ext) > n:
        raise BuildError(
            f"{what}: `{load.buffer.name}` has {n} dimensions but the other side of the copy has "
            f"{len(ext)} non-unit extents"
        )
    full = [IntImm(1, e.dtype) for e in load.indices[: n - len(ext)]] + ext
    return BufferRegion(load.buffer, tuple(Range(i, e) for i, e in zip(load.indices, full)))


def copy(src: Any, dst: Any) -> None:
    """Copy a region to another (global, shared, local); dtypes are cast. See DESIGN's semantics."""
    b = current_builder("T.copy")
    s, d = _region(src, "T.copy source"), _region(dst, "T.copy destination")
    if isinstance(s, BufferLoad) and isinstance(d, BufferLoad):
        d_region = BufferRegion(d.buffer, tuple(Range(i, IntImm(1, i.dtype)) for i in d.indices))
        s_region = BufferRegion(s.buffer, tuple(Range(i, IntImm(1, i.dtype)) for i in s.indices))
    elif isinstance(s, BufferLoad):
        d_region = d  # type: ignore[assignment]
        s_region = _element_region(s, d_region.extents, "T.copy source")
    elif isinstance(d, BufferLoad):
        s_region = s
        d_region = _element_region(d, s_region.extents, "T.copy destination")
    else:
        s_region, d_region = s, d
    se, de = _squeezed(s_region.extents), _squeezed(d_region.extents)
    if len(se) != len(de) or not _py.all(_same_extent(x, y) for x, y in zip(se, de)):
        from ..printer import print_expr

        fmt = lambda r: "(" + ", ".join(print_expr(e) for e in r.extents) + ")"  # noqa: E731
        raise BuildError(
            f"T.copy shape mismatch: source `{s_region.buffer.name}` region {fmt(s_region)} vs "
            f"destination `{d_region.buffer.name}` region {fmt(d_region)} (non-unit extents must "
            f"match in order)"
        )
    _check_region_bounds(s_region, "T.copy source")
    _check_region_bounds(d_region, "T.copy destination")
    if b.kernel is None:
        raise BuildError("T.copy must be inside a T.Kernel (use T.cp_engine_copy for host-side copies)")
    b.frame.emit(TileOpStmt(Copy(s_region, d_region)))


def _check_region_bounds(r: BufferRegion, what: str) -> None:
    """Regions of on-chip buffers must fit (they have no bounds guards); global ones are guarded."""
    if r.buffer.scope in ("global", "symmetric"):
        return
    for dim, (rng, ext) in enumerate(zip(r.region, r.buffer.shape)):
        lo, n, size = const_value(rng.min), const_value(rng.extent), const_value(ext)
        if lo is not None and n is not None and size is not None and (lo < 0 or lo + n > size):
            raise BuildError(
                f"{what}: region [{lo}, {lo + n}) exceeds dimension {dim} of `{r.buffer.name}` "
                f"(extent {size})"
            )


def fill(dst: Any, value: Any) -> None:
    b = current_builder("T.fill")
    d = _region(dst, "T.fill destination")
    if isinstance(d, BufferLoad):
        d = BufferRegion(d.buffer, tuple(Range(i, IntImm(1, i.dtype)) for i in d.indices))
    if b.kernel is None:
        raise BuildError("T.fill must be inside a T.Kernel")
    _check_region_bounds(d, "T.fill destination")
    b.frame.emit(TileOpStmt(Fill(d, store_value(d.buffer, value))))


def clear(dst: Any) -> None:
    fill(dst, 0)


# -- element math ---------------------------------------------------------------------------------


def cast(value: Any, dtype: Any) -> PrimExpr:
    return _cast(as_dtype(dtype), value)


def ceildiv(a: Any, b: Any) -> Any:
    """Ceiling division of integers (a Python int when both are ints)."""
    if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool):
        if b == 0:
            from ..errors import ArithError

            raise ArithError(f"T.ceildiv({a}, 0): division by zero")
        return -(-a // b)
    if isinstance(b, int):
        return (convert(a) + (b - 1)) // b
    return (convert(a, b.dtype) + b - 1) // b


def if_then_else(cond: Any, t: Any, f: Any) -> PrimExpr:
    c = _as_cond(cond, "T.if_then_else")
    if isinstance(t, PrimExpr):
        fe = convert(f, t.dtype)
        te = t
    else:
        fe = convert(f)
        te = convert(t, fe.dtype)
    if te.dtype != fe.dtype:
        raise DTypeError(f"T.if_then_else branches have different dtypes: {te.dtype} and {fe.dtype}")
    if isinstance(c, IntImm):
        return te if c.value else fe
    return Select(c, te, fe)


def infinity(dtype: Any) -> PrimExpr:
    dt = as_dtype(dtype)
    if not dt.is_float:
        raise DTypeError(f"T.infinity needs a float dtype, got {dt}")
    return FloatImm(float("inf"), dt)


def max(a: Any, b: Any) -> PrimExpr:  # noqa: A001
    return binary(Max, a, b)


def min(a: Any, b: Any) -> PrimExpr:  # noqa: A001
    return binary(Min, a, b)


def abs(x: Any) -> PrimExpr:  # noqa: A001
    e = convert(x)
    if e.dtype.is_unsigned or e.dtype.is_bool:
        return e
    return Call(e.dtype, "abs", (e,))


def all(*conds: Any) -> PrimExpr:  # noqa: A001
    """The conjunction of conditions (True for none)."""
    if not conds:
        return IntImm(1, bool_)
    out = _as_cond(conds[0], "T.all")
    for c in conds[1:]:
        out = out & _as_cond(c, "T.all")
    return out


def any(*conds: Any) -> PrimExpr:  # noqa: A001
    """The disjunction of conditions (False for none)."""
    if not conds:
        return IntImm(0, bool_)
    out = _as_cond(conds[0], "T.any")
    for c in conds[1:]:
        out = out | _as_cond(c, "T.any")
    return out


def _math(name: str) -> Any:
    def fn(x: Any) -> PrimExpr:
        e = convert(x)
        if not e.dtype.is_float:
            raise DTypeError(f"T.{name} needs a floating-point operand, got `{e}` of dtype {e.dtype}; use T.cast")
        return Call(e.dtype, name, (e,))

    fn.__name__ = name
    fn.__doc__ = f"Element-wise {name} of a floating-point expression."
    return fn


for _name in MATH_UNARY:
    globals()[_name] = _math(_name)

_ = (DataType, SeqStmt)


def __getattr__(name: str) -> Any:
    """`T.int64(5)`, `T.float16(0.5)`, `T.bool(True)`, `T.float32("-inf")`: a constant of the named
    dtype (an expression argument is cast). The printer writes constants this way when a bare
    literal would get another dtype. Resolved here, not as globals, so `bool`, `int` stay builtins."""
    try:
        dt = as_dtype(name)
    except Exception:
        dt = None
    if dt is None or str(dt) != name or dt.lanes != 1 or dt.is_handle:
        raise AttributeError(f"module 'tsir.T' has no attribute {name!r}")

    def make(value: Any) -> PrimExpr:
        if isinstance(value, PrimExpr):
            return _cast(dt, value)
        if isinstance(value, str) and dt.is_float:
            value = float(value)  # "inf", "-inf", "nan"
        return convert(value, dt)

    make.__name__ = name
    return make
