"""TileOperatorNode: the base of tile-level operations, the interface the passes drive them
through, and the registry of ops by name.

A tile op is an IR node (its fields are its spec) that lives in a `TileOpStmt`. In its own file
under `tsir/tileop/` it declares:

- the regions it reads and writes (`reads`, `writes`) and how its work spreads over threads
  (`spread`);
- its layout rules at each inference level (`infer_layout(args, level)`: STRICT, what the hardware
  fixes; COMMON, what follows from layouts already known; FREE, a choice for what nothing fixes);
- its lowerings (`register_lowering`): one per operand placement or hardware path, each with named
  requirements; `lower` takes the first whose requirements hold, and a refusal lists every
  lowering with the requirement it failed (CONVENTIONS 15);
- its printer form (`print_form`), the builder text that re-creates it;
- whether it may be issued ahead by the software pipeliner (`async_load`).

LayoutInference and LowerTileOp call only this interface: no pass asks which op it holds.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..buffer import Buffer, BufferRegion
from ..errors import UnsupportedError
from ..expr import const_value
from ..node import Node, node_fields
from ..stmt import Stmt
from .planned_layouts import FragmentPlan, plan_row_group, row_group_fragment

if TYPE_CHECKING:
    from ..arith import Analyzer
    from ..layout import Layout
    from ..printer_expr import ExprPrinter
    from ..target import Target

__all__ = [
    "TileOperatorNode",
    "InferLevel",
    "OpEnum",
    "coerce_enums",
    "Spread",
    "OpArgs",
    "LayoutInferArgs",
    "LowerArgs",
    "LayoutFact",
    "Requirement",
    "requirement",
    "Lowering",
    "AsyncLoad",
    "BulkLoad",
    "register_tile_op",
    "get_tile_op",
    "registered_tile_ops",
    "FRAGMENT",
]

FRAGMENT = "local.fragment"


class InferLevel(enum.IntEnum):
    FREE = 0
    COMMON = 1
    STRICT = 2


class OpEnum(str, enum.Enum):
    """A choice among named values in a tile op's fields (a reduction kind, a memory order).
    Members are their strings: they compare, hash, print and format as the value, so code and
    tables written with the strings keep working, and a field given a string is coerced
    (`coerce_enums`)."""

    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


def coerce_enums(op: Any, **fields: type[OpEnum]) -> None:
    """In `__post_init__`: turn the named fields' strings into their enum members (a bad value is
    a ValueError naming the allowed ones)."""
    for name, cls in fields.items():
        value = getattr(op, name)
        if value is None or isinstance(value, cls):
            continue
        try:
            member = cls(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in cls)
            raise ValueError(
                f"{type(op).__name__}.{name} must be one of {allowed}, got {value!r}"
            ) from None
        object.__setattr__(op, name, member)


class Spread(OpEnum):
    """Over which threads an op's work is spread."""

    BLOCK = "block"
    """Collective over the threads that run it, which split its elements."""
    WARP = "warp"
    """Collective over one warp."""
    THREAD = "thread"
    """Each calling thread does its own, independent part (a scalar store)."""


@dataclass
class OpArgs:
    """What an op may read while its layouts are inferred or it is lowered (and what the
    requirements of its lowerings read): the target, the threads that run it, the layouts known so
    far and the plans they were built from (`tsir.tileop.planned_layouts`)."""

    target: Target
    num_threads: int
    layout_map: dict[Buffer, Layout] = field(default_factory=dict)
    plans: dict[Buffer, FragmentPlan] = field(default_factory=dict)
    tensor_params: frozenset[Buffer] | None = field(default=None, kw_only=True)
    """The function's tensor parameters (None: not known here). A TMA tensor map describes a
    parameter as the host passes it, never a view of one (T.reshape, T.Tensor(..., X.data))."""


def tensor_params(func: Any) -> frozenset[Buffer]:
    """The tensor parameters of PrimFunc `func` (for `OpArgs.tensor_params`)."""
    return frozenset(p for p in func.params if isinstance(p, Buffer))


@dataclass
class LayoutInferArgs(OpArgs):
    analyzer: Analyzer | None = None
    origins: dict[Buffer, str] = field(default_factory=dict)
    """What gave each buffer its layout so far (an op's `describe()`), for error messages."""
    explain_choice: Callable[[str, Any], None] | None = None
    """Records a choice made at a cost (a replicated layout) for TSIR_EXPLAIN: `(message, span)`."""


@dataclass
class LowerArgs(OpArgs):
    """What an op needs to lower itself, beyond `OpArgs`."""

    thread_var: Any = None
    """The linear thread index within the threads that run the op (from 0)."""
    buffer_remap: dict[Buffer, Buffer] = field(default_factory=dict)
    """Logical buffer -> the physical buffer that replaces it (a fragment -> its registers)."""
    add_workspace: Callable[..., Buffer] | None = None
    """Allocates a scratch buffer in the enclosing kernel (reductions need shared workspace):
    `(name, shape, dtype, scope, align=16)`, shape entries ints or PrimExprs."""
    reducers: set[Buffer] = field(default_factory=set)
    """Fragments made by T.alloc_reducer in scope: per-thread partial results."""
    lower_nested: Callable[[Stmt, bool], Stmt] | None = None
    """Lowers statements nested in the op (a T.Parallel body): `lower_nested(s, owned)`, where
    `owned` says the op rewrites the fragment accesses of `s` itself."""
    explain: Callable[[str], None] | None = None
    """Records a decision made against what the program asked for (TSIR_EXPLAIN)."""


@dataclass(frozen=True, slots=True)
class LayoutFact:
    """A layout an op infers for one buffer, and the plan it was built from (None: none)."""

    layout: Layout
    plan: FragmentPlan | None = None


# -- lowerings with named requirements (CONVENTIONS 15) ---------------------------------------------

Check = Callable[[Any, OpArgs], "str | None"]


@dataclass(frozen=True, slots=True)
class Requirement:
    """A named predicate of a lowering: `check(op, args)` is None when it holds, else the reason
    it does not (a phrase that completes "<requirement>: ...")."""

    name: str
    check: Check
    program: bool = True
    """False for a fact of the target alone (a lowering for other hardware): its refusal is not a
    decision about the program and is not reported under TSIR_EXPLAIN."""


def requirement(name: str, *, program: bool = True) -> Callable[[Check], Requirement]:
    """`@requirement("target has mma.sync")` on `def f(op, args) -> str | None`."""

    def wrap(fn: Check) -> Requirement:
        return Requirement(name, fn, program)

    return wrap


LowerFn = Callable[[Any, "LowerArgs", "Analyzer"], Stmt]
LayoutsFn = Callable[[Any, OpArgs], "dict[Buffer, LayoutFact]"]


@dataclass(frozen=True, slots=True)
class Lowering:
    """One way to lower an op: used when every requirement holds."""

    name: str
    requires: tuple[Requirement, ...]
    lower: LowerFn
    preferred: bool = False
    """A faster path: when it declines and a later lowering is used, the reason is reported
    under TSIR_EXPLAIN (`LowerArgs.explain`)."""
    layouts: LayoutsFn | None = None
    """The layouts this lowering fixes (STRICT), for ops whose layouts depend on the path."""

    def refusal(self, op: Any, args: OpArgs) -> str | None:
        """Why this lowering does not apply to `op` (its first failed requirement), or None."""
        failed = self.failed(op, args)
        return None if failed is None else f"{failed[0].name}: {failed[1]}"

    def failed(self, op: Any, args: OpArgs) -> tuple[Requirement, str] | None:
        """The first requirement `op` fails, and why; None when all hold."""
        for r in self.requires:
            why = r.check(op, args)
            if why is not None:
                return r, why
        return None


# -- the base class --------------------------------------------------------------------------------


class TileOperatorNode(Node):
    """Base class of tile operators. Subclasses are `@node` dataclasses registered by name."""

    __slots__ = ()
    op_name: ClassVar[str] = "tile_op"
    lowerings: ClassVar[tuple[Lowering, ...]] = ()

    # -- what it touches ------------------------------------------------------------------------
    def spread(self) -> Spread:
        return Spread.BLOCK

    def reads(self) -> tuple[BufferRegion, ...]:
        return ()

    def writes(self) -> tuple[BufferRegion, ...]:
        return ()

    def buffers(self) -> list[Buffer]:
        """Every buffer the op touches, in order of first appearance (reads, then writes)."""
        return list(dict.fromkeys(r.buffer for r in (*self.reads(), *self.writes())))

    def fragments(self) -> list[Buffer]:
        return [b for b in self.buffers() if b.scope == FRAGMENT]

    def describe(self) -> str:
        """How errors name the op: its class and the buffers it touches."""
        names = sorted({r.buffer.name for r in (*self.reads(), *self.writes())})
        return f"{type(self).__name__} (`{', '.join(names)}`)"

    # -- layout inference -----------------------------------------------------------------------
    def infer_layout(self, args: LayoutInferArgs, level: InferLevel) -> dict[Buffer, LayoutFact]:
        """The layouts this op fixes at `level`. The default fixes nothing at STRICT and COMMON
        and, at FREE, gives each of its fragments without a layout tsir's row-group layout."""
        if level is InferLevel.FREE:
            return free_fragment_layouts(self.fragments(), args)
        return {}

    # -- lowering -------------------------------------------------------------------------------
    def lower(self, args: LowerArgs, analyzer: Analyzer) -> Stmt:
        """The thread-level IR of the op: its first lowering whose requirements hold."""
        return self.select_lowering(args).lower(self, args, analyzer)

    def requested_lowering(self) -> str | None:
        """The lowering the program asked for by name (None: the first that applies). A requested
        lowering that does not apply is an error, never a silent fallback."""
        return None

    def select_lowering(self, args: OpArgs) -> Lowering:
        lowerings = type(self).lowerings
        if not lowerings:
            raise NotImplementedError(f"{type(self).__name__} registers no lowering")
        wanted = self.requested_lowering()
        if wanted is not None:
            # The named path and its forms ("mma.sync" takes "mma.sync rs" for a register A).
            chosen = [v for v in lowerings if v.name == wanted or v.name.startswith(wanted + " ")]
            if not chosen:
                names = ", ".join(v.name for v in lowerings)
                raise UnsupportedError(
                    f"{self.title()}: no lowering named {wanted!r}; it has {names}",
                    where="LowerTileOp",
                )
            lowerings = tuple(chosen)
        declined: list[tuple[Lowering, str]] = []
        quiet: set[str] = set()  # declined for the target alone: nothing to report
        for v in lowerings:
            failed = v.failed(self, args)
            if failed is None:
                explain = getattr(args, "explain", None)
                for d, reason in declined:
                    if d.preferred and explain is not None and d.name not in quiet:
                        explain(f"{self.title()}: {v.name} instead of {d.name}: {reason}")
                return v
            if not failed[0].program:
                quiet.add(v.name)
            declined.append((v, f"{failed[0].name}: {failed[1]}"))
        if wanted is not None:
            # A forced path: its forms that do not fit the op's operands say nothing.
            declined = [d for d in declined if d[0].name not in quiet] or declined
        if len(declined) == 1:
            raise UnsupportedError(f"{self.title()}: {declined[0][1]}", where="LowerTileOp")
        listing = "".join(f"\n  - {v.name}: {why}" for v, why in declined)
        raise UnsupportedError(
            f"{self.title()}: no lowering applies:{listing}", where="LowerTileOp"
        )

    def title(self) -> str:
        """The op as refusals name it: its builder function, else its registered name."""
        return self.op_name

    @classmethod
    def register_lowering(
        cls,
        name: str,
        *requires: Requirement,
        first: bool = False,
        preferred: bool = False,
        layouts: LayoutsFn | None = None,
    ) -> Callable[[LowerFn], LowerFn]:
        """`@Op.register_lowering("name", req, ...)` on `def lower(op, args, analyzer) -> Stmt`.
        Lowerings are tried in registration order; `first=True` puts this one before the others
        (a hardware-specific path added beside a general one); `layouts` are the layouts it fixes
        (see `Lowering`)."""

        def wrap(fn: LowerFn) -> LowerFn:
            if any(v.name == name for v in cls.__dict__.get("lowerings", ())):
                raise ValueError(f"{cls.__name__} has a lowering named {name!r} already")
            v = Lowering(name, tuple(requires), fn, preferred, layouts)
            own = tuple(cls.__dict__.get("lowerings", ()))
            cls.lowerings = (v, *own) if first else (*own, v)
            return fn

        return wrap

    # -- software pipelining --------------------------------------------------------------------
    def async_load(self) -> AsyncLoad | None:
        """This op as a load the pipeliner may issue iterations ahead of its consumers, or None."""
        return None

    def bulk_load(self, args: OpArgs, mbarrier: Any) -> BulkLoad | str:
        """This op as a bulk (TMA) load that completes on the mbarrier `mbarrier` (a shared
        `uint64` element), for an mbarrier pipeline; or why it cannot be one."""
        return f"{self.title()} has no bulk (TMA) form"

    # -- printing -------------------------------------------------------------------------------
    def print_form(self, p: ExprPrinter) -> str:
        """The builder text that re-creates this op. The default, for ops without a builder
        function, is `T.tile_op("<registered name>", field=value, ...)`, which the builder rebuilds
        through the registry."""
        fields = "".join(f", {f.name}={p.value(getattr(self, f.name))}" for f in node_fields(self))
        return f"T.tile_op({p.value(self.op_name)}{fields})"


@dataclass(frozen=True, slots=True)
class AsyncLoad:
    """A global->shared load that may run ahead: the tile it fills, the buffer it reads, and the
    op made asynchronous (committed and waited for by the pipeline)."""

    tile: Buffer
    source: Buffer
    op: TileOperatorNode


@dataclass(frozen=True, slots=True)
class BulkLoad:
    """A load that completes on an mbarrier: the op to issue, and the bytes it completes there
    (what the barrier's expect_tx announces)."""

    op: TileOperatorNode
    nbytes: int


def free_fragment_layouts(buffers: list[Buffer], args: OpArgs) -> dict[Buffer, LayoutFact]:
    """tsir's row-group layout (`planned_layouts`) for each of `buffers` without a layout; a
    fragment whose shape is not constant 1-D or 2-D gets none (LayoutInference reports it)."""
    out: dict[Buffer, LayoutFact] = {}
    for buf in buffers:
        if buf in args.layout_map or buf in out:
            continue
        shape = tuple(const_value(d) for d in buf.shape)
        if any(d is None for d in shape) or len(shape) > 2:
            continue
        plan = plan_row_group(shape, args.num_threads, buf.dtype.bytes)  # pyright: ignore[reportArgumentType]  # a constant here: checked by const_value above
        out[buf] = LayoutFact(row_group_fragment(plan, len(shape)), plan)
    return out


# -- the registry ----------------------------------------------------------------------------------

_REGISTRY: dict[str, type[TileOperatorNode]] = {}
OpT = TypeVar("OpT", bound=type[TileOperatorNode])


def register_tile_op(name: str) -> Callable[[OpT], OpT]:
    """Register a tile operator class under `name` (e.g. "tl.Copy"): the name LowerTileOp marks
    its code with, and the name `T.tile_op` rebuilds it from."""

    def wrap(cls: OpT) -> OpT:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"tile op {name!r} registered twice")
        _REGISTRY[name] = cls
        cls.op_name = name
        return cls

    return wrap


def get_tile_op(name: str) -> type[TileOperatorNode]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"no tile op named {name!r}; registered: {', '.join(sorted(_REGISTRY))}"
        ) from None


def registered_tile_ops() -> dict[str, type[TileOperatorNode]]:
    return dict(_REGISTRY)
