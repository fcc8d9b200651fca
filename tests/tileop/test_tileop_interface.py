"""The interface the passes drive tile ops through (tsir/tileop/base.py): the registry, lowerings
with named requirements and their refusals, the printer forms, and no pass asking which op it
holds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tsir
from tsir import T
from tsir.buffer import Buffer, BufferRegion
from tsir.dtype import int32
from tsir.errors import BuildError, UnsupportedError
from tsir.expr import Call, StringImm
from tsir.node import node
from tsir.printer import print_func, rebuild
from tsir.stmt import Evaluate, Stmt
from tsir.tileop import (
    LowerArgs,
    OpArgs,
    ParallelLoop,
    TileOperatorNode,
    get_tile_op,
    registered_tile_ops,
    requirement,
)

ROOT = Path(__file__).resolve().parents[2]
SM90 = tsir.Target.parse("sm_90a")


def test_every_registered_op_can_lower_and_print() -> None:
    """Each registered op either registers lowerings or lowers itself, and has a printer form."""
    ops = registered_tile_ops()
    assert {"tl.Copy", "tl.Fill", "tl.Gemm", "tl.Reduce", "tl.AtomicAdd", "tl.CumSum"} <= set(ops)
    for name, cls in ops.items():
        assert cls.op_name == name
        assert get_tile_op(name) is cls
        assert cls.lowerings or cls.lower is not TileOperatorNode.lower, name
        assert callable(cls.print_form)


def test_an_unknown_op_name_lists_the_registered_ones() -> None:
    with pytest.raises(KeyError, match="no tile op named 'tl.Nope'; registered: .*tl.Copy"):
        get_tile_op("tl.Nope")


# -- lowerings with named requirements ------------------------------------------------------------


@node
class _Twice(TileOperatorNode):
    """A test op with a preferred lowering that declines on odd `n` and a general one."""

    buf: Buffer
    n: int
    force: str | None = None

    def writes(self) -> tuple[BufferRegion, ...]:
        return (BufferRegion.full(self.buf),)

    def requested_lowering(self) -> str | None:
        return self.force


@requirement("an even count")
def _even(op: _Twice, args: OpArgs) -> str | None:
    return None if op.n % 2 == 0 else f"n={op.n} is odd"


@requirement("a count below 100")
def _small(op: _Twice, args: OpArgs) -> str | None:
    return None if op.n < 100 else f"n={op.n} is too large"


def _mark(name: str) -> Stmt:
    return Evaluate(Call(int32, "tsir.test.mark", (StringImm(name),)))


_Twice.register_lowering("general", _small)(lambda op, args, analyzer: _mark("general"))
_Twice.register_lowering("fast", _even, first=True, preferred=True)(
    lambda op, args, analyzer: _mark("fast")
)


def _args(explained: list[str] | None = None) -> LowerArgs:
    return LowerArgs(SM90, 128, explain=explained.append if explained is not None else None)


def _buf() -> Buffer:
    return tsir.buffer.make_buffer("S", (8,), "float32", "shared.dyn")


def test_the_first_lowering_whose_requirements_hold_is_used() -> None:
    """`first=True` puts a lowering before those registered earlier."""
    assert [v.name for v in _Twice.lowerings] == ["fast", "general"]
    assert _Twice(_buf(), 4).lower(_args(), None).value.args[0].value == "fast"  # type: ignore[attr-defined, arg-type]


def test_a_preferred_lowering_that_declines_is_explained() -> None:
    """A fallback from a preferred path is reported (TSIR_EXPLAIN), naming the requirement."""
    explained: list[str] = []
    out = _Twice(_buf(), 5).lower(_args(explained), None)  # type: ignore[arg-type]
    assert out.value.args[0].value == "general"  # type: ignore[attr-defined]
    assert explained == ["tile_op: general instead of fast: an even count: n=5 is odd"]


def test_a_refusal_lists_every_lowering_and_why_it_declined() -> None:
    with pytest.raises(UnsupportedError) as e:
        _Twice(_buf(), 101).lower(_args(), None)  # type: ignore[arg-type]
    text = str(e.value)
    assert "no lowering applies" in text
    assert "- fast: an even count: n=101 is odd" in text
    assert "- general: a count below 100: n=101 is too large" in text


def test_a_requested_lowering_that_does_not_apply_is_an_error_not_a_fallback() -> None:
    with pytest.raises(UnsupportedError, match="an even count: n=3 is odd"):
        _Twice(_buf(), 3, force="fast").lower(_args(), None)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedError, match="no lowering named 'tma'; it has fast, general"):
        _Twice(_buf(), 3, force="tma").lower(_args(), None)  # type: ignore[arg-type]


def test_a_lowering_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="has a lowering named 'general' already"):
        _Twice.register_lowering("general")(lambda op, args, analyzer: _mark("x"))


def test_reduce_refusal_names_each_lowering() -> None:
    """A fragment whose rows are held by three threads (no butterfly group), where no shared
    workspace can stage it: every Reduce lowering says why it declines."""
    from tsir.buffer import BufferRegion, make_buffer
    from tsir.target import Target
    from tsir.tileop import LowerArgs, Reduce

    rows = tsir.layout.Fragment.from_fn(
        (4, 96), lambda i, j: j // 32, lambda i, j: (i * 32 + j % 32,)
    )
    per_row = tsir.layout.Fragment.from_fn((4,), lambda i, rep: rep, lambda i: (i,), 32)
    X = make_buffer("X", (4, 96), "float32", "local.fragment")
    m = make_buffer("m", (4,), "float32", "local.fragment")
    op = Reduce(BufferRegion.full(X), BufferRegion.full(m), 1, "max")
    args = LowerArgs(Target.parse("sm_80"), 32, {X: rows, m: per_row})
    with pytest.raises(UnsupportedError) as e:
        op.select_lowering(args)
    text = str(e.value)
    assert "T.reduce_max: no lowering applies" in text
    assert "- rows: a row-group tile into the layout its reduction gives:" in text
    assert (
        "- layout: a fragment source: the threads that share a line of the fragment are not a butterfly group"
        in text
    )
    assert (
        "- staged: a fragment source, a shared workspace: no shared workspace can be allocated here"
        in text
    )
    assert "- shared: a shared-tile source: `X` is local.fragment" in text


# -- the registry drives the generic printer form ---------------------------------------------------


def test_an_op_without_a_builder_function_rebuilds_through_the_registry() -> None:
    """A pipelined (asynchronous) copy has no T.copy spelling: it prints as T.tile_op and rebuilds."""
    with T.prim_func("f") as f:
        A = T.param("A", (64,), "float32")
        with T.Kernel(1, threads=64):
            S = T.alloc_shared((64,), "float32")
            T.tile_op("tl.Copy", src=A, dst=S, async_copy=True)
    text = print_func(f.func)
    assert 'T.tile_op("tl.Copy", src=A, dst=S, async_copy=True)' in text
    tsir.assert_structural_equal(rebuild(text), f.func)


def test_tile_op_errors_name_the_problem() -> None:
    with T.prim_func("f"):
        A = T.param("A", (64,), "float32")
        with T.Kernel(1, threads=64):
            with pytest.raises(BuildError, match="no tile op named 'tl.Nope'"):
                T.tile_op("tl.Nope", dst=A)
            with pytest.raises(BuildError, match="no field colour; it has dst, value"):
                T.tile_op("tl.Fill", dst=A, colour=1)


# -- no pass asks which op it holds ---------------------------------------------------------------


def _op_class_names() -> set[str]:
    return {cls.__name__ for cls in registered_tile_ops().values()} | {
        "ParallelLoop",
        "_RemoteCopy",
    }


@pytest.mark.parametrize("path", sorted((ROOT / "passes").glob("*.py")), ids=lambda p: p.name)
def test_no_pass_has_an_isinstance_test_on_a_tile_op_class(path: Path) -> None:
    """Passes drive ops through the interface (CONVENTIONS 31: "a pass that asks which op is this
    is a smell"); a new op needs no pass change."""
    names = _op_class_names()
    found = []
    for n in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(n, ast.Call)
            and getattr(n.func, "id", None) == "isinstance"
            and len(n.args) == 2
        ):
            classes = n.args[1].elts if isinstance(n.args[1], ast.Tuple) else [n.args[1]]
            found += [
                f"line {n.lineno}: {c.id}"
                for c in classes
                if isinstance(c, ast.Name) and c.id in names
            ]
    assert not found, f"{path.name} tests tile-op classes: {found}"


def test_parallel_nests_are_not_registered() -> None:
    """ParallelLoop is the op view of a T.Parallel nest; it never stands in a TileOpStmt."""
    assert ParallelLoop not in registered_tile_ops().values()
