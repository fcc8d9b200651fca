"""The structure half of `tsir.T`: functions, parameters, kernels, loops, branches, bindings,
barriers and raw calls."""

from __future__ import annotations

import builtins as _py
import contextlib
import re
from collections.abc import Iterator
from typing import Any

from ..buffer import Buffer, index_hooks, make_buffer
from ..dtype import dtype as as_dtype
from ..dtype import int32 as _int32
from ..errors import BuildError, DTypeError, UnsupportedError, user_location
from ..expr import Call, IntImm, PrimExpr, StringImm, Var, const_value, convert
from ..function import FAST_MATH_ATTR, IMPORT_ATTR, PrimFunc, fast_math_error
from ..stmt import AttrStmt, Evaluate, For, ForKind, IfThenElse, KernelLaunch, Stmt
from .frame import Builder, Frame, KernelFrameInfo, builder_stack, current_builder
from .indexing import BUILDER_ACCESS
from .math_lang import as_cond

__all__ = [
    "prim_func",
    "param",
    "scalar",
    "dynamic",
    "Kernel",
    "Parallel",
    "Pipelined",
    "serial",
    "unroll",
    "vectorized",
    "If",
    "Else",
    "attr",
    "call_intrin",
    "evaluate",
    "get_thread_binding",
    "get_block_binding",
    "sync_threads",
    "sync_warp",
    "thread_binding",
    "scope",
    "func_attr",
]


class FuncHandle:
    """What `with T.prim_func(name) as f:` binds; `f.func` is the PrimFunc once the block exits."""

    def __init__(self, name: str):
        self.name = name
        self.func: PrimFunc | None = None
        self._builder = Builder(name)

    def __enter__(self) -> FuncHandle:
        builder_stack().append(self._builder)
        index_hooks().append(BUILDER_ACCESS)  # `A[i] = v` and checked indexing, while this runs
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
                self.func = PrimFunc(self.name, tuple(b.params), body, tuple(b.attrs.items()))
        finally:
            b.frames.clear()
            if stack and stack[-1] is b:
                stack.pop()
            hooks = index_hooks()
            if hooks and hooks[-1] is BUILDER_ACCESS:
                hooks.pop()


def prim_func(name: Any) -> Any:
    """`with T.prim_func("name") as f:` builds a function (the decorator spelling, `@T.prim_func`
    on a Python function, is `tsir.T.prim_func`: the script front end sits above the builder)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise BuildError(f"T.prim_func needs a function name that is a C identifier, got {name!r}")
    return FuncHandle(name)


def func_attr(attrs: dict[str, Any]) -> None:
    """Attributes of the function being built (`PrimFunc.attrs`): the printer's form for them."""
    b = current_builder("T.func_attr")
    if not isinstance(attrs, dict) or not all(isinstance(k, str) for k in attrs):
        raise BuildError(f"T.func_attr takes a dict with string keys, got {attrs!r}")
    for key, value in attrs.items():
        why = _func_attr_error(b, key, value)
        if why is not None:
            raise BuildError(f"T.func_attr: {why}")
    b.attrs.update(attrs)


# The keys T.func_attr takes, beside fast_math (tsir.function): TVM script's conventions, which
# tsir already follows (nothing is accepted and ignored: a value tsir does not do raises).
_ACCEPTED_ATTRS = ("fast_math", "global_symbol", "tir.noalias", IMPORT_ATTR)


def _func_attr_error(b: Builder, key: str, value: Any) -> str | None:
    """Why `key: value` is not a function attribute tsir honours (None when it is one)."""
    if key == FAST_MATH_ATTR:
        return fast_math_error(value)
    if key == IMPORT_ATTR:  # what T.import_source records (and the printer writes back)
        if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
            return f"{IMPORT_ATTR} is a tuple of CUDA source strings (T.import_source)"
        return None
    if key == "global_symbol":  # the kernel's symbol: tsir names it after the function
        if value != b.name:
            return (
                f"global_symbol {value!r}: tsir names the function's symbol after the function "
                f"({b.name!r}); name it in T.prim_func(...)"
            )
        return None
    if key == "tir.noalias":  # tsir's kernels take their tensors as __restrict__ pointers
        if value is not True and not (isinstance(value, IntImm) and value.value == 1):
            return "tir.noalias must be True: tsir assumes parameters do not alias"
        return None
    return f"unknown attribute {key!r}: tsir takes {', '.join(_ACCEPTED_ATTRS)}"


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
        raise BuildError(
            f"parameter `{name}`: scope must be 'global' or 'symmetric', got {scope!r}"
        )
    if b.kernels or len(b.frames) != 1:
        raise BuildError(
            f"parameter `{name}` must be declared before any statement of the function"
        )
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
def Kernel(
    *grid: Any,
    threads: Any = 128,
    cluster: Any = None,
    dyn_shared_bytes: int = 0,
    name: str | None = None,
    persistent: bool = False,
) -> Iterator[Any]:
    """A kernel launch over `grid` blocks of `threads` threads (int or up to 3 dims).
    `dyn_shared_bytes` and `name` are the printer's forms for what passes set (a planned shared
    memory pool, a kernel's symbol); programs leave them out. `persistent=True`: on sm_90a, a
    warp-specialized kernel (a TMA pipeline) runs one block per SM that loops over the grid's
    blocks in L2-friendly panels (`T.use_swizzle`'s, 8 columns by default); elsewhere, or when the
    kernel is not warp-specialized, the report says why it runs as a plain grid."""
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
        raise BuildError(
            f"T.Kernel threads must be a positive int or up to 3 of them, got {threads!r}"
        )
    n = 1
    for t in tdims:
        n *= t
    if n > 1024:
        raise BuildError(f"T.Kernel: {n} threads per block exceeds the CUDA limit of 1024")
    if cluster is not None:
        raise UnsupportedError(
            f"T.Kernel(cluster={cluster!r}): thread-block clusters are not launched by tsir yet "
            "(the launch would silently run without them); drop `cluster=`",
            loc=user_location(),
        )
    bvars = tuple(Var(x, _int32) for x in ("bx", "by", "bz")[: len(dims)])
    tvars = tuple(Var(x, _int32) for x in ("tx", "ty", "tz")[: len(tdims)])
    info = KernelFrameInfo(bvars, tvars, tdims)
    if (
        not isinstance(dyn_shared_bytes, int)
        or isinstance(dyn_shared_bytes, bool)
        or dyn_shared_bytes < 0
    ):
        raise BuildError(
            f"T.Kernel: dyn_shared_bytes must be an int >= 0, got {dyn_shared_bytes!r}"
        )
    default = b.unique(f"{b.name}_kernel")
    if name is not None and (not isinstance(name, str) or not name.isidentifier()):
        raise BuildError(f"T.Kernel: name must be an identifier, got {name!r}")
    kname = default if name is None else name
    clus = None if cluster is None else ((cluster,) if isinstance(cluster, int) else tuple(cluster))

    def finish(body: Stmt) -> Stmt:
        return KernelLaunch(kname, tuple(dims), tdims, bvars, tvars, body, clus, dyn_shared_bytes)

    if not isinstance(persistent, bool):
        raise BuildError(f"T.Kernel: persistent must be True or False, got {persistent!r}")
    frame = b.push(Frame("kernel", finish, kernel=info))
    if persistent:
        frame.items.append(("attr", "persistent", True))
    b.kernels.append(info)
    yield bvars[0] if len(bvars) == 1 else bvars
    b.pop(frame)


def _loop(
    kind: ForKind,
    extents: tuple[Any, ...],
    names: list[str],
    annotations: tuple = (),
    thread: str | None = None,
) -> Iterator[Any]:
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
            return For(v, lo, ext, kind, body, thread, annotations)

        frames.append(b.push(Frame(kind.value, finish)))
    yield lvars[0] if len(lvars) == 1 else tuple(lvars)
    for f in reversed(frames):
        b.pop(f)


def thread_binding(extent: Any, thread: str = "threadIdx.x") -> Iterator[Any]:
    """A loop bound to a hardware index (`threadIdx.x`): the printer's form for lowered IR."""
    if thread not in (
        "threadIdx.x",
        "threadIdx.y",
        "threadIdx.z",
        "blockIdx.x",
        "blockIdx.y",
        "blockIdx.z",
    ):
        raise BuildError(
            f"T.thread_binding: thread must be threadIdx.x/y/z or blockIdx.x/y/z, got {thread!r}"
        )
    return _loop(ForKind.THREAD_BINDING, (extent,), _loop_name("t"), thread=thread)


@contextlib.contextmanager
def scope() -> Iterator[None]:
    """A block of statements: what an allocation (or let) inside it is scoped to (the printer's
    form for a scope that ends before the statements that follow)."""
    b = current_builder("T.scope")

    def finish(body: Stmt) -> Stmt:
        return body

    frame = b.push(Frame("scope", finish))
    yield
    b.pop(frame)


def Parallel(*extents: Any) -> Iterator[Any]:
    """An element-wise loop nest; the compiler distributes its iterations over the block's threads."""
    if not extents:
        raise BuildError("T.Parallel needs at least one extent")
    return _loop(ForKind.PARALLEL, extents, _loop_name("i"))


def Pipelined(
    start: Any,
    stop: Any = None,
    num_stages: int = 0,
    order: Any = None,
    stage: Any = None,
    group: Any = None,
    warp_specialize: bool = True,
    tma: bool | None = None,
    pingpong: bool = False,
) -> Iterator[Any]:
    """A serial loop whose copies may be software-pipelined `num_stages` deep (0: not pipelined).
    `T.Pipelined(n)` runs 0..n-1, `T.Pipelined(start, stop)` runs start..stop-1. `order=`,
    `stage=` and `group=` (a hand-written schedule in TileLang) are checked and kept on the loop;
    tsir's pipeliner schedules the loop itself (a schedule never changes the results) and says so
    under TSIR_EXPLAIN. On sm_90a the loads become TMA
    copies into an mbarrier ring where they can (`tma=None`), must (`tma=True`: an error naming
    the copy and the rule it breaks otherwise) or must not (`tma=False`: cp.async);
    `warp_specialize=False` keeps such a ring in the kernel's own threads (no producer
    warpgroup). `pingpong=True` makes the two consumer warpgroups of such a warp-specialized loop
    take turns issuing their wgmma (FlashAttention-3's ping-pong: one warpgroup's softmax runs
    under the other's gemms); where the loop is not one (another target, one consumer
    warpgroup), TSIR_EXPLAIN says why it was not applied."""
    if not isinstance(num_stages, int) or isinstance(num_stages, bool) or num_stages < 0:
        raise BuildError(f"T.Pipelined num_stages must be an int >= 0, got {num_stages!r}")
    if not isinstance(warp_specialize, bool):
        raise BuildError(
            f"T.Pipelined warp_specialize must be True or False, got {warp_specialize!r}"
        )
    if tma is not None and not isinstance(tma, bool):
        raise BuildError(f"T.Pipelined tma must be True, False or None, got {tma!r}")
    if not isinstance(pingpong, bool):
        raise BuildError(f"T.Pipelined pingpong must be True or False, got {pingpong!r}")
    if pingpong:
        # Requests no target can honour: refused here, at the user's line.
        if num_stages < 2:
            raise BuildError(
                f"T.Pipelined pingpong=True needs num_stages >= 2 (got {num_stages}): the two "
                "consumer warpgroups take turns in a warp-specialized TMA pipeline"
            )
        if not warp_specialize or tma is False:
            given = "warp_specialize=False" if not warp_specialize else "tma=False"
            raise BuildError(
                f"T.Pipelined pingpong=True contradicts {given}: ping-pong orders the consumer "
                "warpgroups of a warp-specialized TMA pipeline"
            )
    schedule = _schedule_hint(order, stage, group, num_stages)
    kind = ForKind.PIPELINED if num_stages > 0 else ForKind.SERIAL
    ann = (("num_stages", num_stages),) if num_stages else ()
    if schedule is not None:
        ann += (("schedule", schedule),)
    if not warp_specialize and num_stages:
        ann += (("warp_specialize", False),)
    if tma is not None and num_stages:
        ann += (("tma", tma),)
    if pingpong:
        ann += (("pingpong", True),)
    if stop is None:
        return _loop(kind, (start,), _loop_name("k"), ann)
    if const_value(start) == 0:
        return _loop(kind, (stop,), _loop_name("k"), ann)
    if kind is ForKind.SERIAL:
        return _loop(kind, ((start, stop),), _loop_name("k"), ann)
    # The pipeliner counts stages from iteration 0: run 0..stop-start and hand the user start + k.
    return _offset_loop(kind, start, stop, _loop_name("k"), ann)


def _int_list(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not _py.all(
        isinstance(x, int) and not isinstance(x, bool) for x in value
    ):
        raise BuildError(f"T.Pipelined {what}= must be a list of ints, got {value!r}")
    return tuple(value)


def _schedule_hint(
    order: Any, stage: Any, group: Any, num_stages: int
) -> (
    tuple[tuple[int, ...] | None, tuple[int, ...] | None, tuple[tuple[int, ...], ...] | None] | None
):
    """TileLang's hand-written schedule (`order=`, `stage=`, `group=`), checked for form. A
    schedule changes when statements run, never what the loop computes, so tsir accepts it and
    InjectSoftwarePipeline says under TSIR_EXPLAIN that it scheduled the loop itself."""
    if order is None and stage is None and group is None:
        return None
    if not num_stages:
        raise BuildError("T.Pipelined order=/stage=/group= need num_stages > 0 (a pipelined loop)")
    o = None if order is None else _int_list(order, "order")
    st = None if stage is None else _int_list(stage, "stage")
    if o is not None and st is not None and len(o) != len(st):
        raise BuildError(
            f"T.Pipelined order= and stage= must have one entry per statement group: "
            f"{len(o)} vs {len(st)}"
        )
    g = None
    if group is not None:
        if not isinstance(group, (list, tuple)):
            raise BuildError(f"T.Pipelined group= must be a list of lists of ints, got {group!r}")
        g = tuple(_int_list(x, "group") for x in group)
    return (o, st, g)


def _offset_loop(
    kind: ForKind, start: Any, stop: Any, names: list[str], ann: tuple
) -> Iterator[Any]:
    lo = convert(start)
    for k in _loop(kind, (convert(stop, lo.dtype) - lo,), names, ann):
        yield lo + k


def serial(start: Any, stop: Any = None) -> Iterator[Any]:
    return _loop(ForKind.SERIAL, ((start, stop) if stop is not None else start,), _loop_name("i"))


def unroll(start: Any, stop: Any = None) -> Iterator[Any]:
    return _loop(ForKind.UNROLLED, ((start, stop) if stop is not None else start,), _loop_name("i"))


def vectorized(start: Any, stop: Any = None) -> Iterator[Any]:
    return _loop(
        ForKind.VECTORIZED, ((start, stop) if stop is not None else start,), _loop_name("v")
    )


def _loop_name(default: str) -> list[str]:
    """The user's loop target names (`for row, col in T.Parallel(...)` gives ["row", "col"])."""
    loc = user_location()
    if loc is not None:
        m = re.match(
            r"\s*for\s+\(?\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*,?\s*\)?\s+in\b", loc.line
        )
        if m:
            return [n.strip() for n in m.group(1).split(",")]
    return [default]


@contextlib.contextmanager
def If(cond: Any) -> Iterator[None]:
    b = current_builder("T.If")
    c = as_cond(cond, "T.If")

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


def get_thread_binding(dim: int = 0) -> Var:
    b = current_builder("T.get_thread_binding")
    k = b.kernel
    if k is None:
        raise BuildError("T.get_thread_binding must be used inside a T.Kernel")
    if not 0 <= dim < len(k.thread_vars):
        raise BuildError(
            f"T.get_thread_binding({dim}): the kernel has {len(k.thread_vars)} thread dims"
        )
    return k.thread_vars[dim]


def get_block_binding(dim: int = 0) -> Var:
    b = current_builder("T.get_block_binding")
    k = b.kernel
    if k is None or not 0 <= dim < len(k.block_vars):
        raise BuildError(
            f"T.get_block_binding({dim}) needs an enclosing T.Kernel with that grid dim"
        )
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
    # A Python string argument is a string constant (a message, a buffer name: T.print's calls).
    values = tuple(StringImm(a) if isinstance(a, str) else convert(a) for a in args)
    return Call(as_dtype(dtype), op, values)


def evaluate(value: Any) -> None:
    """Evaluate an expression for its side effects (a call): the printer's form for `Evaluate`."""
    _emit(Evaluate(convert(value)), "T.evaluate")
