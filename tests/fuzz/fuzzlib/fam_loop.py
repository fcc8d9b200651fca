"""Family `loop`: row kernels that stream their columns through a loop (no gemm), as in
TileLang's split-k rms_norm: a first loop accumulates f(x) per element into a fragment, a row
reduction and a T.Parallel(blk_m) turn that into per-row values, and a second loop (often in
reverse column order) rewrites each chunk with them and stores it.

Loops are `T.serial`, `T.unroll` or `T.Pipelined(num_stages=0..4)`; chunks are staged in shared
memory or fragments, N may be ragged (the last chunk is zero-filled) and M dynamic; each output
chunk is stored from its fragment or through one shared tile rewritten per step (a TMA store on
sm_90a); blocks have 32 to 512 threads.
"""

from __future__ import annotations

from .choose import Chooser
from .expr_gen import Ex, ExprGen
from .program import ParamSpec, Program, Src

__all__ = ["gen_loop"]


def _loop(ch: Chooser, label: str, feats: set[str]) -> str:
    kind = ch.weighted([("serial", 2.0), ("pipelined", 3.0), ("unroll", 0.5)], label)
    if kind == "pipelined":
        ns = ch.integer(0, 4, label + " stages")
        feats.add(f"loop-pipelined{ns}")
        return f"T.Pipelined(nk, num_stages={ns})"
    feats.add(f"loop-{kind}")
    return "T.serial(nk)" if kind == "serial" else "T.unroll(nk)"


def gen_loop(ch: Chooser, seed: int) -> Program:
    feats: set[str] = set()
    blk_m = ch.choice([1, 2, 4, 8], "blk_m")
    bk = ch.choice([8, 16, 32, 64], "bk")
    nk = ch.integer(1, 4, "nk")
    N = nk * bk - (ch.integer(0, bk - 1, "rn") if ch.boolean(0.5, "ragged N") else 0)
    gm = ch.integer(1, 3, "row blocks")
    M = gm * blk_m - (ch.integer(0, blk_m - 1, "rm") if ch.boolean(0.5) else 0)
    threads = ch.choice([32, 64, 128, 256, 384, 512], "threads")
    dx = ch.choice(["float32", "float16", "bfloat16"], "X dtype")
    stage1 = ch.choice(["shared", "shared", "frag"], "stage 1")
    stage2 = ch.choice(["shared", "frag"], "stage 2")
    reverse = ch.boolean(0.5, "reverse second loop")
    dyn = ch.boolean(0.5, "dynamic M")
    dyn_n = ch.boolean(0.3, "dynamic N")
    reuse = stage1 == stage2 and ch.boolean(0.3, "second loop reuses x1")
    online = ch.boolean(0.3, "row max inside loop 1")
    peek = stage1 == "shared" and ch.boolean(0.25, "read x1 after loop 1")
    k, m = Src(), Src()
    alloc = {"shared": "T.alloc_shared", "frag": "T.alloc_fragment"}
    k(f'x1 = {alloc[stage1]}((blk_m, bk), "{dx}")')
    if not reuse:
        k(f'x2 = {alloc[stage2]}((blk_m, bk), "{dx}")')
    k('acc = T.alloc_fragment((blk_m, bk), "float32")')
    k('r = T.alloc_fragment((blk_m,), "float32")')
    k('y = T.alloc_fragment((blk_m, bk), "float32")')
    k("T.clear(acc)")
    m("acc = np.zeros((blk_m, bk))")
    if online:
        # flash attention's running maximum: reduce each chunk into `mx` without clearing it
        k('mx = T.alloc_fragment((blk_m,), "float32")')
        k('T.fill(mx, -T.infinity("float32"))')
        m("mx = np.full((blk_m,), -np.inf)")
        feats.add("loop-online-max")
    x1 = Ex(
        "x1[i, j]" if dx == "float32" else 'T.cast(x1[i, j], "float32")',
        "x1",
        "float32",
        -4,
        4,
        True,
    )
    leaves = [x1, x1, Ex("j", "_J", "int32", 0, bk - 1, True)]
    if ch.boolean(0.4, "ko as a value"):
        leaves.append(Ex("ko", "ko", "int32", 0, 3, True))
        feats.add("loop-var-in-body")
    f = ExprGen(ch, leaves).value("float32")
    with k.block(f"for ko in {_loop(ch, 'loop 1', feats)}:"):
        with m.block("for ko in range(nk):"):
            k("T.copy(X[bx * blk_m, ko * bk], x1)")
            m(f'x1 = cast(load_tile(X, (r0, ko * bk), (blk_m, bk)), "{dx}")')
            with k.block("for i, j in T.Parallel(blk_m, bk):"):
                k(f"acc[i, j] = acc[i, j] + {f.t}")
            m(f'acc = rnd(acc + _B({f.n}), "float32")')
            if online:
                k("T.reduce_max(acc, mx, dim=1, clear=False)")
                m("mx = np.maximum(mx, acc.max(axis=1))")
    if peek:
        # the staged tile after the loop holds the last chunk
        k("T.copy(x1, L[bx * blk_m, 0])")
        m("store_tile(L, (r0, 0), x1)")
        feats.add("loop-read-stage-after")
    kind = ch.choice(["sum", "max"], "row reduce")
    k(f"T.reduce_{kind}(acc, r, dim=1)")
    m(f"r = acc.{kind}(axis=1)")
    if online:
        k(
            "T.reduce_sum(acc, r, dim=1, clear=False)"
            if kind == "max"
            else "T.reduce_max(acc, r, dim=1, clear=False)"
        )
        m("r = r + acc.sum(axis=1)" if kind == "max" else "r = np.maximum(r, acc.max(axis=1))")
        with k.block("for i in T.Parallel(blk_m):"):
            k("r[i] = r[i] - mx[i]")
        m("r = r - mx")
    g = ExprGen(ch, [Ex("r[i]", "r", "float32", -1e3, 1e3, False)]).value("float32")
    with k.block("for i in T.Parallel(blk_m):"):
        k(f"r[i] = {g.t}")
    m(f'r = rnd(np.broadcast_to({g.n}, (blk_m,)), "float32")')
    col = "(nk - 1 - ko) * bk" if reverse else "ko * bk"
    x2n = "x1" if reuse else "x2"
    x2 = Ex(
        f"{x2n}[i, j]" if dx == "float32" else f'T.cast({x2n}[i, j], "float32")',
        "x2",
        "float32",
        -4,
        4,
        True,
    )
    h = ExprGen(ch, [x2, x2, Ex("r[i]", "r[:, None]", "float32", -1e3, 1e3, False)]).value(
        "float32"
    )
    out_stage = ch.weighted([("frag", 3.0), ("shared", 1.0), ("shared_perm", 1.0)], "output")
    feats.add(f"loop-out-{out_stage}")
    if out_stage != "frag":
        k('o = T.alloc_shared((blk_m, bk), "float32")')
    with k.block(f"for ko in {_loop(ch, 'loop 2', feats)}:"):
        with m.block("for ko in range(nk):"):
            k(f"T.copy(X[bx * blk_m, {col}], {x2n})")
            m(f'x2 = cast(load_tile(X, (r0, {col}), (blk_m, bk)), "{dx}")')
            with k.block("for i, j in T.Parallel(blk_m, bk):"):
                k(f"y[i, j] = {h.t} + r[i]")
            m(f'y = rnd(_B({h.n}) + r[:, None], "float32")')
            if out_stage == "frag":
                k(f"T.copy(y, Y[bx * blk_m, {col}])")
                m(f"store_tile(Y, (r0, {col}), y)")
            else:
                # Each chunk through one shared tile, rewritten per step (a TMA store on sm_90a).
                if out_stage == "shared":
                    k("T.copy(y, o)")
                    m("o = y")
                else:
                    with k.block("for i, j in T.Parallel(blk_m, bk):"):
                        k("o[blk_m - 1 - i, bk - 1 - j] = y[i, j]")
                    m("o = y[::-1, ::-1]")
                k(f"T.copy(o, Y[bx * blk_m, {col}])")
                m(f"store_tile(Y, (r0, {col}), o)")
    kernel, model = Src(), Src()
    kernel(f"blk_m, bk = {blk_m}, {bk}")
    with kernel.block('with T.prim_func("fz_loop") as f:'):
        kernel('M = T.dynamic("M")' if dyn else f"M = {M}")
        kernel('N = T.dynamic("N")' if dyn_n else f"N = {N}")
        kernel("nk = T.ceildiv(N, bk)")
        kernel(f'X = T.param("X", (M, N), "{dx}")')
        kernel('Y = T.param("Y", (M, N), "float32")')
        if peek:
            kernel(f'L = T.param("L", (M, bk), "{dx}")')
        with kernel.block(f"with T.Kernel(T.ceildiv(M, blk_m), threads={threads}) as bx:"):
            kernel.extend(k)
    kernel("return f.func")
    model(f"blk_m, bk = {blk_m}, {bk}")
    model("M, N = X.shape")
    model("nk = -(-N // bk)")
    model('_I, _J = np.meshgrid(np.arange(blk_m), np.arange(bk), indexing="ij")')
    model("_B = lambda v: np.broadcast_to(v, (blk_m, bk))")
    with model.block("for bx in range(-(-M // blk_m)):"):
        model("r0 = bx * blk_m")
        model.extend(m)
    feats |= {
        f"blk_m{blk_m}",
        f"threads{threads}",
        f"loop-stage1-{stage1}",
        f"loop-stage2-{stage2}",
        f"loop-{dx}",
        f"loop-reduce-{kind}",
    }
    if N % bk:
        feats.add("ragged")
    if dyn:
        feats.add("dynamic-M")
    if dyn_n:
        feats.add("dynamic-N")
    if reuse:
        feats.add("loop-reuse-stage")
    params = [ParamSpec("X", dx, (M, N)), ParamSpec("Y", "float32", (M, N), output=True)]
    if peek:
        params.append(ParamSpec("L", dx, (M, bk), output=True))
    exact = f.exact and g.exact and h.exact
    tol = {"Y": (0.0, 0.0) if exact else (1e-3, 1e-3)}
    if peek:
        tol["L"] = (0.0, 0.0)
    return Program("loop", seed, kernel.text(), model.text(), params, tol, feats)
