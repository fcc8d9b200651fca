"""Family `tile`: element-wise, copy, reduction, layer-norm and cumsum kernels over a 2-D tensor.

Two shapes of grid, as TileLang users write them:
- `grid2d`: a 2-D grid of (bm, bn) tiles, ragged at both edges, M and/or N dynamic;
- `rows`: a 1-D grid of blk_m rows, one block spanning every column (layer norm, softmax).
"""

from __future__ import annotations

from .choose import Chooser
from .expr_gen import Ex, ExprGen, _exact_ok
from .kernel_state import Buf, KernelState
from .numerics import accumulation_tol, ulp_tol
from .program import ParamSpec, Program, Src
from .tile_steps import (
    FLOAT_DTYPES,
    TileCtx,
    pick_dtype,
    step_ew,
    step_layernorm,
    step_load,
    step_load_vec,
    step_reduce,
    step_rowop,
    store_tile_to,
    tol_for,
)

__all__ = ["gen_tile"]

# Up to four warpgroups (384 and 512 threads: ThreadSync's per-warpgroup barriers, the TMA store
# split among warpgroups).
THREADS = [32, 64, 128, 128, 256, 384, 512]


def step_copy_tile(st: KernelState, cx: TileCtx) -> bool:
    srcs = st.tiles(2)
    if not srcs:
        return False
    a = st.ch.choice(srcs, "copy src")
    dtype = a.dtype if st.ch.boolean(0.5) else pick_dtype(st)
    if dtype == "int32" and a.dtype != "int32" and not a.exact:
        dtype = "float32"
    scope = "shared" if a.scope == "frag" else st.ch.choice(["frag", "shared"], "copy dst scope")
    b = st.alloc(scope, ("bm", "bn"), (cx.bm, cx.bn), dtype)
    st.both(f"T.copy({a.name}, {b.name})", f'{b.name}[...] = cast({a.name}, "{dtype}")')
    mag = max(abs(a.lo), abs(a.hi))
    st.written(b, Ex("", "", dtype, a.lo, a.hi, a.exact and _exact_ok(dtype, mag, a.fb), a.fb))
    st.features.add(f"copy-{a.scope}2{scope}")
    return True


def step_fill(st: KernelState, cx: TileCtx) -> bool:
    ch = st.ch
    olds = st.tiles(2)
    b = (
        ch.choice(olds, "fill dst")
        if olds and ch.boolean(0.3)
        else st.alloc(
            ch.choice(["frag", "shared"], "fill scope"),
            ("bm", "bn"),
            (cx.bm, cx.bn),
            pick_dtype(st),
        )
    )
    v = ch.choice([0, 1, 3, -2], "fill value")
    if v == 0 and ch.boolean():
        st.both(f"T.clear({b.name})", f"{b.name}[...] = 0")
    else:
        lit = str(v) if b.dtype == "int32" else f"{float(v)}"
        st.both(f"T.fill({b.name}, {lit})", f"{b.name}[...] = {v}")
    st.written(b, Ex("", "", b.dtype, v, v, True))
    st.features.add(f"fill-{b.scope}")
    return True


def step_cumsum(st: KernelState, cx: TileCtx) -> bool:
    ch = st.ch
    srcs = [b for b in st.tiles(2, scope="shared")]
    if not srcs:
        return False
    s = ch.choice(srcs, "cumsum src")
    dim = ch.choice([0, 1], "cumsum dim")
    n = cx.bm if dim == 0 else cx.bn
    if s.dtype in ("float16", "bfloat16") and not (
        s.exact and _exact_ok(s.dtype, n * max(abs(s.lo), abs(s.hi)), s.fb)
    ):
        return False  # a half-precision scan rounds in an order the API leaves open
    st.features.add(f"cumsum-{s.dtype}")
    rev = ch.boolean(0.3, "reverse")
    dst = (
        s
        if ch.boolean(0.5, "in place")
        else st.alloc("shared", ("bm", "bn"), (cx.bm, cx.bn), s.dtype)
    )
    args = (
        f"{s.name}"
        + ("" if dst is s else f", {dst.name}")
        + f", dim={dim}"
        + (", reverse=True" if rev else "")
    )
    body = f"np.cumsum({s.name}, axis={dim})"
    if rev:
        body = f"np.flip(np.cumsum(np.flip({s.name}, {dim}), axis={dim}), {dim})"
    st.both(
        f"T.cumsum({args})",
        f"{dst.name}[...] = {body}"
        if s.dtype == "int32"
        else f'{dst.name}[...] = rnd({body}, "{s.dtype}")',
    )
    mag = n * max(abs(s.lo), abs(s.hi))
    st.written(dst, Ex("", "", s.dtype, -mag, mag, s.exact and _exact_ok(s.dtype, mag, s.fb), s.fb))
    st.features.add(f"cumsum-dim{dim}" + ("-rev" if rev else ""))
    return True


def step_uniform_if(st: KernelState, cx: TileCtx, two_d: bool) -> bool:
    """A block-uniform `with T.If(...)` (block index, data in global memory, tile fullness)."""
    if not st.tiles(2):
        return False
    ch = st.ch
    bvar = cx.r0.split(" * ")[0]
    conds = [
        (f"{bvar} == 0", f"{bvar} == 0"),
        ("X[0, 0] > 0", "X[0, 0] > 0"),
        (f"{cx.r0} + bm <= M", "r0 + bm <= M"),
    ]
    if two_d:
        conds.append(("bx > 0", "bx > 0"))
    kc, mc = ch.choice(conds, "uniform cond")
    st.features.add("uniform-if")
    with st.blocks(f"with T.If({kc}):", f"if {mc}:"):
        _ew_in_place(st, cx)
    if ch.boolean(0.4, "uniform else"):
        with st.blocks("with T.Else():", "else:"):
            _ew_in_place(st, cx)
    return True


def _ew_in_place(st: KernelState, cx: TileCtx) -> None:
    dst = st.ch.choice(st.tiles(2), "uniform dst")
    gen = ExprGen(
        st.ch,
        [st.as_leaf(b, "i, j", b.name) for b in st.tiles(2)]
        + [Ex("i", "_I", "int32", 0, cx.bm - 1, True)],
    )
    v = gen.value(dst.dtype)
    with st.k.block("for i, j in T.Parallel(bm, bn):"):
        st.k(f"{dst.name}[i, j] = {v.t}")
    st.m(f"{dst.name}[...] = _B({v.n if dst.dtype == 'int32' else f'rnd({v.n}, {dst.dtype!r})'})")
    st.written(dst, v, keep=True)


def gen_tile(ch: Chooser, seed: int) -> Program:
    whole = ch.boolean(0.45, "whole rows")
    threads = ch.choice(THREADS, "threads")
    ragged = ch.boolean(0.7, "ragged")
    if whole:
        bm = ch.weighted([(1, 2.0), (2, 2.0), (4, 1.0), (8, 1.0), (3, 0.2)], "blk_m")
        n_total = ch.choice([8, 16, 24, 32, 40, 64, 100, 128, 256], "N")
        bn, gx = n_total, 1
    else:
        bm = ch.weighted(
            [
                (1, 1.0),
                (2, 1.0),
                (4, 1.0),
                (8, 1.0),
                (16, 1.0),
                (32, 1.0),
                (64, 1.0),
                (3, 0.2),
                (6, 0.2),
                (12, 0.2),
                (24, 0.3),
                (48, 0.3),
            ],
            "bm",
        )
        bn = ch.choice([8, 16, 32, 64, 128, 24, 48, 96], "bn")
        while bm * bn > 4096:
            bm //= 2
        gx = ch.integer(1, 2, "gx")
        n_total = gx * bn - (ch.integer(0, bn - 1, "rn") if ragged else 0)
    gy = ch.integer(1, max(1, 4 // gx), "gy")
    m_total = gy * bm - (ch.integer(0, bm - 1, "rm") if ragged else 0)
    dyn_m = ch.boolean(0.5, "dyn M")
    dyn_n = not whole and ch.boolean(0.3, "dyn N")
    r0, c0 = ("bx * bm", "0") if whole else ("by * bm", "bx * bn")
    cx = TileCtx(bm, bn, r0, c0)
    cx.row_out = gx == 1
    cx.m_exact = m_total % bm == 0
    st = KernelState(ch, Src(), Src())
    scalar = None
    if ch.boolean(0.2, "scalar parameter"):
        sdt = ch.choice(["float32", "int32"], "scalar dtype")
        sval = ch.choice([2, -3, 5], "scalar value")
        scalar = ParamSpec("alpha", sdt, (), sval, sval)
        cx.scalars.append(Ex("alpha", "alpha", sdt, sval, sval, True))
        st.features.add(f"scalar-{sdt}")
    dx = ch.choice(["float32", "float32", "float16", "bfloat16", "int32"], "X dtype")
    cx.inputs.append(("X", dx))
    if ch.boolean(0.3, "second input"):
        cx.inputs.append(("X2", ch.choice(["float32", "float16", "int32"], "X2 dtype")))
    step_load(st, cx)
    weights = [
        ("load", 0.5),
        ("vec", 0.6),
        ("ew", 3.0),
        ("reduce", 2.0),
        ("rowop", 1.5),
        ("layernorm", 1.5 if whole else 0.4),
        ("cumsum", 0.7),
        ("uniform_if", 0.7),
        ("copy", 0.5),
        ("fill", 0.3),
    ]
    table = {
        "load": step_load,
        "vec": step_load_vec,
        "ew": step_ew,
        "reduce": step_reduce,
        "rowop": step_rowop,
        "layernorm": step_layernorm,
        "cumsum": step_cumsum,
        "copy": step_copy_tile,
        "fill": step_fill,
        "uniform_if": lambda s, c: step_uniform_if(s, c, not whole),
    }
    for _ in range(ch.integer(1, 5, "steps")):
        table[ch.weighted(weights, "step")](st, cx)
    params = [ParamSpec("X", dx, (m_total, n_total))]
    if len(cx.inputs) > 1:
        params.append(ParamSpec("X2", cx.inputs[1][1], (m_total, n_total)))
    for name, vdtype in cx.vectors:
        params.append(ParamSpec(name, vdtype, (n_total,)))
    if scalar is not None:
        params.append(scalar)
    tol: dict[str, tuple[float, float]] = {}
    # The result: one 2-D tile to Y (an exact one when Y is int32).
    tiles = st.tiles(2)
    t = ch.choice(tiles, "stored tile")
    dy = pick_dtype(st, FLOAT_DTYPES + (["int32"] if t.exact else []))
    store_tile_to(st, cx, t, "Y", dy)
    params.append(ParamSpec("Y", dy, (m_total, n_total), output=True))
    tol["Y"] = tol_for(t, dy)
    rows = [
        b
        for b in st.tiles(1)
        if cx.axis.get(b.name) == "row" and (cx.r_dtype is None or b.dtype != "int32")
    ]
    if rows and gx == 1 and ch.boolean(0.6, "store rows"):
        r = ch.choice(rows, "row vec")
        dr = "float32" if r.dtype != "int32" else "int32"
        st.both(f"T.copy({r.name}, R[{r0}])", f'store_tile(R, (r0,), cast({r.name}, "{dr}"))')
        cx.r_dtype = dr
        tol["R"] = tol_for(r, dr)
        st.features.add("store-rowvec")
    if cx.r_dtype is not None:
        params.append(ParamSpec("R", cx.r_dtype, (m_total,), output=True))
        tol.setdefault("R", ulp_tol("float32"))
    cols = [b for b in st.tiles(1) if cx.axis.get(b.name) == "col"]
    if cols and ch.boolean(0.7, "atomic cols"):
        c = ch.choice(cols, "col vec")
        if ch.boolean(0.6, "tile atomic"):
            st.both(f"T.atomic_add(Cs[{c0}], {c.name})", f"atomic_tile(Cs, (c0,), {c.name})")
            st.features.add("atomic-global-tile")
        else:
            with st.k.block("for j in T.Parallel(bn):"):
                with st.k.block(f"with T.If({c0} + j < N):"):
                    st.k(f"T.atomic_add(Cs[{c0} + j], {c.name}[j])")
            st.m(f"atomic_tile(Cs, (c0,), {c.name})")
            st.features.add("atomic-global-elem")
        params.append(ParamSpec("Cs", c.dtype, (n_total,), output=True))
        # Each element sums up to bm rows (a reduction in the fragment's dtype) and one atomic
        # add per row block: gy * bm roundings in the output's dtype, in any order.
        tol["Cs"] = (
            (0.0, 0.0)
            if c.exact and c.dtype in ("float32", "int32")
            else max(accumulation_tol(c.dtype, gy * bm), ulp_tol("float32"))
        )
        st.features.add(f"atomic-{c.dtype}")
    kernel, model = Src(), Src()
    kernel(f"bm, bn = {bm}, {bn}")
    with kernel.block('with T.prim_func("fz_tile") as f:'):
        kernel('M = T.dynamic("M")' if dyn_m else f"M = {m_total}")
        kernel('N = T.dynamic("N")' if dyn_n else f"N = {n_total}")
        for p in params:
            if not p.shape:
                kernel(f'{p.name} = T.scalar("{p.name}", "{p.dtype}")')
                continue
            dims = "(M, N)" if len(p.shape) == 2 else ("(M,)" if p.name == "R" else "(N,)")
            kernel(f'{p.name} = T.param("{p.name}", {dims}, "{p.dtype}")')
        if whole:
            header = f"with T.Kernel(T.ceildiv(M, bm), threads={threads}) as bx:"
        else:
            header = (
                f"with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads={threads}) as (bx, by):"
            )
        with kernel.block(header):
            kernel.extend(st.k)
    kernel("return f.func")
    model(f"bm, bn = {bm}, {bn}")
    model("M, N = X.shape")
    model('_I, _J = np.meshgrid(np.arange(bm), np.arange(bn), indexing="ij")')
    model("_B = lambda v: np.broadcast_to(v, (bm, bn))")
    if whole:
        with model.block("for bx in range(-(-M // bm)):"):
            model("r0, c0 = bx * bm, 0")
            model.extend(st.m)
    else:
        with model.block("for by in range(-(-M // bm)):"):
            with model.block("for bx in range(-(-N // bn)):"):
                model("r0, c0 = by * bm, bx * bn")
                model.extend(st.m)
    st.features |= {f"threads{threads}", f"bm{bm}", "whole-rows" if whole else "grid2d"}
    if dyn_m:
        st.features.add("dynamic-M")
    if dyn_n:
        st.features.add("dynamic-N")
    if ragged:
        st.features.add("ragged")
    return Program("tile", seed, kernel.text(), model.text(), params, tol, st.features)


_ = Buf
