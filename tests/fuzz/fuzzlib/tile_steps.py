"""Steps of a tile kernel (the part of each block's body a TileLang user writes), each emitted as
builder code and as the numpy it means. A step returns False when the state cannot take it."""

from __future__ import annotations

from .expr_gen import Ex, ExprGen, const
from .kernel_state import Buf, KernelState
from .numerics import ulp_tol

__all__ = [
    "TileCtx",
    "STEPS",
    "leaves_2d",
    "leaves_1d",
    "step_load",
    "step_ew",
    "step_reduce",
    "step_rowop",
    "step_layernorm",
    "store_tile_to",
    "pick_dtype",
]

FLOAT_DTYPES = ["float32", "float32", "float16", "bfloat16"]
ALL_DTYPES = ["float32", "float32", "float16", "bfloat16", "int32"]


class TileCtx:
    """Names and sizes of the tile a block works on."""

    def __init__(
        self, bm: int, bn: int, r0: str, c0: str, m_name: str = "M", n_name: str = "N"
    ) -> None:
        self.bm, self.bn, self.r0, self.c0 = bm, bn, r0, c0
        self.m_name, self.n_name = m_name, n_name
        self.axis: dict[str, str] = {}
        """1-D buffer name -> 'row' (extent bm, indexed by i) or 'col' (extent bn, by j)"""
        self.inputs: list[tuple[str, str]] = []
        """global (M, N) inputs: (name, dtype)"""
        self.scalars: list[Ex] = []
        """scalar parameters (T.scalar), as expression leaves"""
        self.vectors: list[tuple[str, str]] = []
        """global (N,) inputs: (name, dtype)"""
        self.whole_cols = c0 == "0"
        """one block covers every column (bn == N): slices may be written `:`"""
        self.row_out = False
        """blocks own whole rows (one block column): per-row results may go to global `R`"""
        self.r_dtype: str | None = None
        """dtype of the global row output `R`, once a step writes it"""
        self.m_exact = True
        """M is a multiple of bm (row stores need no guard)"""


def pick_dtype(st: KernelState, options: list[str] | None = None) -> str:
    return st.ch.choice(options or ALL_DTYPES, "dtype")


def _store(value: Ex, dtype: str) -> str:
    """numpy text of `value` as stored into a `dtype` buffer (value already has that IR dtype)."""
    if dtype == "int32":
        return value.n
    return f'rnd({value.n}, "{dtype}")'


def leaves_2d(st: KernelState, cx: TileCtx, dst: Buf | None) -> list[Ex]:
    out: list[Ex] = []
    for b in st.tiles(2):
        out.append(st.as_leaf(b, "i, j", b.name))
        if b.scope == "shared" and b is not dst and st.ch.boolean(0.3, "flip read"):
            if st.ch.boolean():
                out.append(st.as_leaf(b, "i, bn - 1 - j", f"{b.name}[:, ::-1]"))
            else:
                out.append(st.as_leaf(b, "bm - 1 - i, j", f"{b.name}[::-1, :]"))
            st.features.add("shared-cross-thread-read")
    for b in st.tiles(1):
        if cx.axis.get(b.name) == "row":
            out.append(st.as_leaf(b, "i", f"{b.name}[:, None]"))
        elif cx.axis.get(b.name) == "col":
            out.append(st.as_leaf(b, "j", f"{b.name}[None, :]"))
    out.append(Ex("i", "_I", "int32", 0, cx.bm - 1, True))
    out.append(Ex("j", "_J", "int32", 0, cx.bn - 1, True))
    out += cx.scalars
    return out


def leaves_1d(st: KernelState, cx: TileCtx, axis: str) -> list[Ex]:
    out = [st.as_leaf(b, "i", b.name) for b in st.tiles(1) if cx.axis.get(b.name) == axis]
    n = cx.bm if axis == "row" else cx.bn
    out.append(Ex("i", "np.arange(%d)" % n, "int32", 0, n - 1, True))
    return out


def _index_conds(axis2: bool) -> list[tuple[str, str]]:
    conds = [("i < 2", "(_I < 2)"), ("i % 2 == 0", "(fmod(_I, 2) == 0)")]
    if axis2:
        conds += [
            ("j < 5", "(_J < 5)"),
            ("i + j > 3", "(_I + _J > 3)"),
            ("j != 1", "(_J != 1)"),
            ("j == 0", "(_J == 0)"),
        ]
    return conds


def _new_tile(
    st: KernelState, cx: TileCtx, dtype: str | None = None, scope: str | None = None
) -> Buf:
    scope = scope or st.ch.choice(["frag", "frag", "shared"], "scope")
    return st.alloc(scope, ("bm", "bn"), (cx.bm, cx.bn), dtype or pick_dtype(st))


def step_load(st: KernelState, cx: TileCtx) -> bool:
    """T.copy of the block's tile of a global input into a shared tile or fragment (zero-filled)."""
    name, sdtype = st.ch.choice(cx.inputs, "input")
    dst_dtype = sdtype if st.ch.boolean(0.6, "same dtype") else pick_dtype(st)
    if sdtype != "int32" and dst_dtype == "int32":
        dst_dtype = sdtype
    dst = _new_tile(st, cx, dst_dtype)
    form = st.ch.weighted([("elem", 6.0), ("slice_plus", 2.0), ("slice_mul", 0.4)], "copy form")
    st.features.add(f"copy-g2{dst.scope}-{form}")
    src = _region_text(cx, name, form)
    st.both(
        f"T.copy({src}, {dst.name})",
        f'{dst.name}[...] = cast(load_tile({name}, (r0, c0), (bm, bn)), "{dst_dtype}")',
    )
    st.written(dst, Ex("", "", dst_dtype, -4, 4, True))
    if st.ch.boolean(0.3, "restage"):
        other = _new_tile(st, cx, dst_dtype, "frag" if dst.scope == "shared" else "shared")
        st.both(f"T.copy({dst.name}, {other.name})", f"{other.name}[...] = {dst.name}")
        st.written(other, Ex("", "", dst_dtype, -4, 4, True))
        st.features.add(f"copy-{dst.scope}2{other.scope}")
    return True


def step_load_vec(st: KernelState, cx: TileCtx) -> bool:
    """A per-column vector (TileLang's gamma/beta) into a 1-D shared buffer or fragment."""
    ch = st.ch
    scope = ch.choice(["shared", "shared", "frag"], "vec scope")
    dtype = ch.choice(["float32", "float16", "bfloat16"], "vec dtype")
    name = f"W{len(cx.vectors) + 1}"
    cx.vectors.append((name, dtype))
    b = st.alloc(scope, ("bn",), (cx.bn,), dtype)
    cx.axis[b.name] = "col"
    whole = cx.whole_cols and ch.boolean(0.5, "whole vector")
    src = name if whole else f"{name}[{cx.c0}]"
    st.both(
        f"T.copy({src}, {b.name})",
        f'{b.name}[...] = cast(load_tile({name}, (c0,), (bn,)), "{dtype}")',
    )
    st.written(b, Ex("", "", dtype, -4, 4, True))
    st.features.add(f"copy-vec-{scope}" + ("-whole" if whole else ""))
    return True


def _region_text(cx: TileCtx, name: str, form: str) -> str:
    if form == "elem":
        return f"{name}[{cx.r0}, {cx.c0}]"
    rows = _slice(cx.r0, "bm", form)
    cols = ":" if cx.c0 == "0" and form != "elem" and cx.whole_cols else _slice(cx.c0, "bn", form)
    return f"{name}[{rows}, {cols}]"


def _slice(start: str, ext: str, form: str) -> str:
    if start == "0":
        return f"0:{ext}"
    if form == "slice_mul":  # TileLang's own spelling: A[by * bm:(by + 1) * bm, ...]
        var = start.split(" * ")[0]
        return f"{start}:({var} + 1) * {ext}"
    return f"{start}:{start} + {ext}"


def step_ew(st: KernelState, cx: TileCtx) -> bool:
    """A T.Parallel(bm, bn) nest writing one tile (maybe under a data-dependent T.If / T.Else)."""
    ch = st.ch
    existing = st.tiles(2)
    if existing and ch.boolean(0.5, "in place"):
        dst, new = ch.choice(existing, "ew dst"), False
    else:
        dst, new = _new_tile(st, cx), True
    gen = ExprGen(ch, leaves_2d(st, cx, dst))
    v1 = gen.value(dst.dtype)
    cond = gen.condition(_index_conds(True)) if ch.boolean(0.35, "ew if") else None
    with st.k.block("for i, j in T.Parallel(bm, bn):"):
        if cond is None:
            st.k(f"{dst.name}[i, j] = {v1.t}")
            st.m(f"{dst.name}[...] = _B({_store(v1, dst.dtype)})")
            st.written(dst, v1)
        else:
            st.features.add("parallel-data-if" if "_I" not in cond[1] else "parallel-index-if")
            with st.k.block(f"with T.If({cond[0]}):"):
                st.k(f"{dst.name}[i, j] = {v1.t}")
            if new or ch.boolean(0.5, "else"):
                v2 = gen.value(dst.dtype)
                with st.k.block("with T.Else():"):
                    st.k(f"{dst.name}[i, j] = {v2.t}")
                st.m(
                    f"{dst.name}[...] = _B(np.where({cond[1]}, {_store(v1, dst.dtype)}, "
                    f"{_store(v2, dst.dtype)}))"
                )
                st.written(dst, v1)
                st.written(dst, v2, keep=True)
            else:
                st.m(
                    f"{dst.name}[...] = "
                    f"_B(np.where({cond[1]}, {_store(v1, dst.dtype)}, {dst.name}))"
                )
                st.written(dst, v1, keep=True)
    st.features.add(f"parallel2d-{dst.scope}")
    return True


REDUCE_NP = {
    "sum": "{a}.sum(axis={d})",
    "max": "{a}.max(axis={d})",
    "min": "{a}.min(axis={d})",
    "absmax": "np.abs({a}).max(axis={d})",
    "abssum": "np.abs({a}).sum(axis={d})",
}
COMBINE_NP = {"sum": "{x} + {y}", "max": "np.maximum({x}, {y})", "min": "np.minimum({x}, {y})"}


def step_reduce(st: KernelState, cx: TileCtx) -> bool:
    """T.reduce_* of a 2-D fragment along either dim into a 1-D fragment (clear or accumulate)."""
    ch = st.ch
    srcs = [b for b in st.tiles(2, scope="frag")]
    if not srcs:
        return False
    src = ch.choice(srcs, "reduce src")
    dim = ch.choice([1, 1, 0], "reduce dim")
    axis = "row" if dim == 1 else "col"
    n_red = cx.bn if dim == 1 else cx.bm
    kind = ch.choice(["sum", "sum", "max", "min", "absmax", "abssum"], "reduce kind")
    dtype = src.dtype if ch.boolean(0.6) else ("int32" if src.dtype == "int32" else "float32")
    olds = [
        b for b in st.tiles(1, scope="frag") if cx.axis.get(b.name) == axis and b.dtype == dtype
    ]
    clear = True
    if olds and ch.boolean(0.4, "reuse dst"):
        dst = ch.choice(olds, "reduce dst")
        clear = kind not in COMBINE_NP or ch.boolean(0.5, "clear")
    else:
        ext = "bm" if axis == "row" else "bn"
        dst = st.alloc("frag", (ext,), (cx.bm if axis == "row" else cx.bn,), dtype)
        cx.axis[dst.name] = axis
    red = REDUCE_NP[kind].format(a=src.name, d=dim)
    mag = max(abs(src.lo), abs(src.hi))
    lo, hi = 0.0, mag
    if kind in ("sum", "abssum"):
        lo, hi = (-n_red * mag if kind == "sum" else 0.0), n_red * mag
    if kind in ("max", "min"):
        lo, hi = src.lo, src.hi
    val = Ex("", red, dtype, lo, hi, src.exact)
    call = (
        f"T.reduce_{kind}({src.name}, {dst.name}, dim={dim}"
        + ("" if clear else ", clear=False")
        + ")"
    )
    if clear:
        st.both(call, f"{dst.name}[...] = {_store(val, dtype) if dtype != 'int32' else red}")
        st.written(dst, val)
    else:
        comb = COMBINE_NP[kind].format(x=dst.name, y=red)
        st.both(call, f"{dst.name}[...] = {_store(Ex('', comb, dtype, 0, 0, True), dtype)}")
        if kind == "sum":
            val = Ex("", "", dtype, dst.lo + lo, dst.hi + hi, src.exact and dst.exact)
        st.written(dst, val, keep=kind != "sum")
        st.features.add("reduce-accumulate")
    from .expr_gen import _exact_ok

    dst.exact = (
        dst.exact
        and dtype in ("float32", "int32", "float16", "bfloat16")
        and _exact_ok(dtype, max(abs(dst.lo), abs(dst.hi)), src.fb)
    )
    st.features.add(f"reduce-{kind}-dim{dim}")
    return True


def step_rowop(st: KernelState, cx: TileCtx) -> bool:
    """`for i in T.Parallel(n): v[i] = f(...)` over 1-D fragments (per-row or per-column values)."""
    ch = st.ch
    axis = ch.choice(["row", "row", "col"], "rowop axis")
    srcs = [b for b in st.tiles(1) if cx.axis.get(b.name) == axis]
    if not srcs:
        return False
    if ch.boolean(0.5, "rowop in place"):
        dst = ch.choice(srcs, "rowop dst")
    else:
        dst = st.alloc(
            "frag",
            ("bm" if axis == "row" else "bn",),
            (cx.bm if axis == "row" else cx.bn,),
            pick_dtype(st, ["float32", "float32", "int32", "float16"]),
        )
        cx.axis[dst.name] = axis
    gen = ExprGen(ch, leaves_1d(st, cx, axis))
    v = gen.value(dst.dtype)
    ext = "bm" if axis == "row" else "bn"
    # TileLang's layer norm also stores each row's value to global memory in this loop.
    store = axis == "row" and cx.row_out and dst.dtype != "int32" and ch.boolean(0.4, "row store")
    with st.k.block(f"for i in T.Parallel({ext}):"):
        st.k(f"{dst.name}[i] = {v.t}")
        if store:
            if cx.m_exact and ch.boolean(0.5, "unguarded row store"):
                st.k(f"R[{cx.r0} + i] = {dst.name}[i]")
            else:
                with st.k.block(f"with T.If({cx.r0} + i < {cx.m_name}):"):
                    st.k(f"R[{cx.r0} + i] = {dst.name}[i]")
    st.m(f"{dst.name}[...] = np.broadcast_to({_store(v, dst.dtype)}, {dst.name}.shape)")
    st.written(dst, v)
    if store:
        cx.r_dtype = "float32"
        st.m(f'store_tile(R, (r0,), cast({dst.name}, "float32"))')
        st.features.add("parallel1d-global-store")
    st.features.add(f"parallel1d-{axis}")
    return True


def step_layernorm(st: KernelState, cx: TileCtx) -> bool:
    """TileLang's layer norm: row sums -> mean/rstd in a T.Parallel(bm) -> a 2-D nest reads them."""
    srcs = [b for b in st.tiles(2, scope="frag") if b.dtype != "int32"]
    if not srcs:
        return False
    x = st.ch.choice(srcs, "ln src")
    n = "N" if cx.whole_cols else "bn"
    s = st.alloc("frag", ("bm",), (cx.bm,), "float32", "sum")
    mean = st.alloc("frag", ("bm",), (cx.bm,), "float32", "mean")
    var = st.alloc("frag", ("bm",), (cx.bm,), "float32", "var")
    rstd = st.alloc("frag", ("bm",), (cx.bm,), "float32", "rstd")
    d = st.alloc("frag", ("bm", "bn"), (cx.bm, cx.bn), "float32", "xc")
    for b in (s, mean, var, rstd):
        cx.axis[b.name] = "row"
    st.both(f"T.reduce_sum({x.name}, {s.name}, dim=1)", f"{s.name}[...] = {x.name}.sum(axis=1)")
    # TileLang's layer norm stores the row statistics to global memory in this same loop.
    store = cx.row_out and st.ch.boolean(0.5, "store mean in row loop")
    with st.k.block("for i in T.Parallel(bm):"):
        st.k(f"{mean.name}[i] = {s.name}[i] / {n}")
        if store:
            with st.k.block(f"with T.If({cx.r0} + i < {cx.m_name}):"):
                st.k(f"R[{cx.r0} + i] = {mean.name}[i]")
    st.m(f"{mean.name}[...] = {s.name} / {n}")
    if store:
        cx.r_dtype = "float32"
        st.m(f"store_tile(R, (r0,), {mean.name})")
        st.features.add("parallel1d-global-store")
    with st.k.block("for i, j in T.Parallel(bm, bn):"):
        st.k(
            f'{d.name}[i, j] = T.cast({x.name}[i, j], "float32") - {mean.name}[i]'
            if x.dtype != "float32"
            else f"{d.name}[i, j] = {x.name}[i, j] - {mean.name}[i]"
        )
    # Zero-filled columns past N are not part of the row: mask them like a TileLang user would.
    st.m(f"{d.name}[...] = _B({x.name} - {mean.name}[:, None])")
    sq = st.alloc("frag", ("bm", "bn"), (cx.bm, cx.bn), "float32", "sq")
    with st.k.block("for i, j in T.Parallel(bm, bn):"):
        st.k(
            f"{sq.name}[i, j] = T.if_then_else({cx.c0} + j < {cx.n_name}, "
            f"{d.name}[i, j] * {d.name}[i, j], 0.0)"
        )
    st.m(f"{sq.name}[...] = np.where(c0 + _J < N, {d.name} * {d.name}, 0.0)")
    st.both(
        f"T.reduce_sum({sq.name}, {var.name}, dim=1)", f"{var.name}[...] = {sq.name}.sum(axis=1)"
    )
    with st.k.block("for i in T.Parallel(bm):"):
        st.k(f"{rstd.name}[i] = T.rsqrt({var.name}[i] / {n} + 1e-5)")
    st.m(f"{rstd.name}[...] = 1.0 / np.sqrt({var.name} / {n} + 1e-5)")
    y = st.alloc("frag", ("bm", "bn"), (cx.bm, cx.bn), "float32", "y")
    with st.k.block("for i, j in T.Parallel(bm, bn):"):
        st.k(f"{y.name}[i, j] = {d.name}[i, j] * {rstd.name}[i]")
    st.m(f"{y.name}[...] = {d.name} * {rstd.name}[:, None]")
    for b in (s, var, d, sq):
        st.written(b, Ex("", "", "float32", -1e4, 1e4, False))
    st.written(mean, Ex("", "", "float32", -8, 8, False))
    st.written(rstd, Ex("", "", "float32", 0, 1e3, False))
    st.written(y, Ex("", "", "float32", -64, 64, False))
    st.features.add("layernorm")
    return True


def store_tile_to(st: KernelState, cx: TileCtx, t: Buf, out: str, out_dtype: str) -> str:
    """Write tile `t` to the block's tile of global `out`; returns the form used."""
    ch = st.ch
    form = ch.weighted(
        [
            ("copy", 5.0),
            ("slice_plus", 1.5),
            ("slice_mul", 0.3),
            ("guarded", 2.0),
            ("unguarded", 0.5),
            ("staged", 1.5),
        ],
        "store form",
    )
    if form == "staged":
        # Through a shared tile of the output's dtype (on sm_90a its T.copy is a TMA store),
        # written from `t` by T.copy or by a T.Parallel nest at permuted indices.
        o = st.alloc("shared", ("bm", "bn"), (cx.bm, cx.bn), out_dtype, "o")
        if ch.boolean(0.4, "stage by copy"):
            st.both(f"T.copy({t.name}, {o.name})", f'{o.name}[...] = cast({t.name}, "{out_dtype}")')
            st.features.add("store-stage-copy")
        else:
            pi = ch.choice([("i", "_I"), ("bm - 1 - i", "bm - 1 - _I")], "stage rows")
            pj = ch.choice(
                [("j", "_J"), ("bn - 1 - j", "bn - 1 - _J"), ("(j + 1) % bn", "(_J + 1) % bn")],
                "stage cols",
            )
            with st.k.block("for i, j in T.Parallel(bm, bn):"):
                st.k(f"{o.name}[{pi[0]}, {pj[0]}] = {t.name}[i, j]")
            st.m(f'{o.name}[{pi[1]}, {pj[1]}] = cast({t.name}, "{out_dtype}")')
            st.features.add(
                "store-stage-parallel" + ("-perm" if (pi[0], pj[0]) != ("i", "j") else "")
            )
        dst = _region_text(cx, out, "elem")
        st.both(f"T.copy({o.name}, {dst})", f"store_tile({out}, (r0, c0), {o.name})")
    elif form == "copy" or form.startswith("slice"):
        dst = _region_text(cx, out, "elem" if form == "copy" else form)
        st.both(
            f"T.copy({t.name}, {dst})",
            f'store_tile({out}, (r0, c0), cast({t.name}, "{out_dtype}"))',
        )
    else:
        with st.k.block("for i, j in T.Parallel(bm, bn):"):
            idx = f"{cx.r0} + i, {cx.c0} + j"
            if form == "guarded":
                with st.k.block(
                    f"with T.If(T.all({cx.r0} + i < {cx.m_name}, {cx.c0} + j < {cx.n_name})):"
                ):
                    st.k(f"{out}[{idx}] = {t.name}[i, j]")
            else:
                st.k(f"{out}[{idx}] = {t.name}[i, j]")
        st.m(f'store_tile({out}, (r0, c0), cast({t.name}, "{out_dtype}"))')
    st.features.add(f"store-{t.scope}-{form}")
    return form


def tol_for(b: Buf, out_dtype: str) -> tuple[float, float]:
    if b.exact and out_dtype in ("int32", "float32", b.dtype):
        return (0.0, 0.0)
    worst = max(ulp_tol(out_dtype), ulp_tol(b.dtype))
    return worst if worst != (0.0, 0.0) else ulp_tol("float32")


STEPS = {
    "load": step_load,
    "ew": step_ew,
    "reduce": step_reduce,
    "rowop": step_rowop,
    "layernorm": step_layernorm,
}
_ = const
