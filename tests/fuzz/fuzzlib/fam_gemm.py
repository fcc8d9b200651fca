"""Family `gemm`: T.gemm over K tiles, as TileLang users write matmuls.

Choices: fp16/bf16 operands, every transpose combination, a plain `T.serial` loop or
`T.Pipelined(num_stages=0..4)`, one gemm without a loop, operands staged by `T.copy`, by a
`T.Parallel` nest, through a fragment, or copied then rewritten in place; `clear_accum`; ragged
M, N and K; an epilogue by copy, by a `T.Parallel` nest (relu, scale, cast), through shared memory,
or a row reduction of the accumulator (`policy="full_row"`); tiles up to 128x96 on 32 to 512
threads (every count whose warps tile the accumulator).
"""

from __future__ import annotations

from .choose import Chooser
from .program import ParamSpec, Program, Src

__all__ = ["gen_gemm"]


def _operand(
    k: Src,
    m: Src,
    ch: Chooser,
    name: str,
    trans: bool,
    rows: str,
    kdim: str,
    feats: set[str],
    dtype: str,
) -> None:
    """Stage the (rows x bk) operand `name` (global) into `{name}_s` for K tile `ko`.

    Without transpose the tile is (rows, bk) of a (ROWS, K) tensor; with it, (bk, rows) of
    (K, ROWS).
    """
    row0 = "by * bm" if rows == "bm" else "cn"
    tile = f"({kdim}, {rows})" if trans else f"({rows}, {kdim})"
    starts = f"(ko * bk, {row0})" if trans else f"({row0}, ko * bk)"
    g_start = f"{name}[ko * bk, {row0}]" if trans else f"{name}[{row0}, ko * bk]"
    how = ch.weighted(
        [("copy", 5.0), ("parallel", 1.5), ("frag", 1.0), ("rewrite", 1.0)], f"stage {name}"
    )
    feats.add(f"gemm-stage-{how}")
    sh = f"{name}_s"
    np_tile = f"load_tile({name}, {starts}, {tile})"
    if how == "copy":
        k(f"T.copy({g_start}, {sh})")
        m(f"{sh} = {np_tile}")
    elif how == "parallel":
        a, b = ("kk", "i") if trans else ("i", "kk")
        ext = f"{kdim}, {rows}" if trans else f"{rows}, {kdim}"
        gi = f"ko * bk + kk, {row0} + i" if trans else f"{row0} + i, ko * bk + kk"
        bound = f"ko * bk + kk < K, {row0} + i < {'M' if rows == 'bm' else 'N'}"
        with k.block(f"for {a}, {b} in T.Parallel({ext}):"):
            with k.block(f"with T.If(T.all({bound})):"):
                k(f"{sh}[{a}, {b}] = {name}[{gi}]")
            with k.block("with T.Else():"):
                k(f"{sh}[{a}, {b}] = 0")
        m(f"{sh} = {np_tile}")
    elif how == "frag":
        k(f"T.copy({g_start}, {name}_f)")
        with k.block(f"for i, kk in T.Parallel({tile[1:-1]}):"):
            k(f"{sh}[i, kk] = {name}_f[i, kk] * 2")
        m(f'{sh} = rnd({np_tile} * 2, "{dtype}")')
    else:
        k(f"T.copy({g_start}, {sh})")
        with k.block(f"for i, kk in T.Parallel({tile[1:-1]}):"):
            k(f"{sh}[i, kk] = {sh}[i, kk] - 1")
        m(f'{sh} = rnd({np_tile} - 1, "{dtype}")')


def gen_gemm(ch: Chooser, seed: int) -> Program:
    feats: set[str] = set()
    dtype = ch.choice(["float16", "bfloat16"], "dtype")
    ta, tb = ch.boolean(0.4, "transpose_A"), ch.boolean(0.4, "transpose_B")
    # 128 and 96 let 384 and 512 threads (3 and 4 warpgroups) tile the accumulator.
    bm = ch.weighted([(16, 1.0), (32, 1.0), (64, 1.0), (128, 0.5)], "bm")
    bn = ch.weighted([(16, 1.0), (32, 1.0), (64, 1.0), (96, 0.5)], "bn")
    bk = ch.choice([16, 32], "bk")
    gx = ch.integer(1, 2, "gx")
    gy = ch.integer(1, 2, "gy")
    nk = ch.integer(1, 4, "nk")
    ragged = ch.boolean(0.5, "ragged")
    M = gy * bm - (ch.integer(0, bm - 1, "rm") if ragged else 0)
    N = gx * bn - (ch.integer(0, bn - 1, "rn") if ragged else 0)
    K = nk * bk - (ch.integer(0, bk - 1, "rk") if ragged and ch.boolean(0.5) else 0)
    loop = ch.weighted(
        [("serial", 2.0), ("pipelined", 4.0), ("none", 0.7 if nk == 1 else 0.0)], "loop"
    )
    stages = ch.integer(0, 4, "num_stages") if loop == "pipelined" else 0
    clear_mode = ch.weighted([("clear", 5.0), ("fill_zero", 1.0), ("clear_accum", 1.0)], "clear")
    epi = ch.weighted(
        [("copy", 4.0), ("parallel", 2.0), ("shared", 1.5), ("rowreduce", 1.0)], "epilogue"
    )
    out_dtype = (
        ch.choice(["float32", "float16", "bfloat16"], "C dtype")
        if epi != "rowreduce"
        else "float32"
    )
    if epi == "rowreduce" and bm % 16:
        epi = "copy"
    policy = (
        "full_row"
        if epi == "rowreduce"
        else ch.weighted([("square", 5.0), ("full_row", 1.0)], "policy")
    )
    threads = ch.choice(_thread_options(bm, bn, policy), "threads")
    dyn_m, dyn_k = ch.boolean(0.3, "dynamic M"), ch.boolean(0.3, "dynamic K")
    outer = ch.boolean(0.2, "two column tiles per block")
    k, m = Src(), Src()
    a_shape = "(bk, bm)" if ta else "(bm, bk)"
    b_shape = "(bn, bk)" if tb else "(bk, bn)"
    k(f'A_s = T.alloc_shared({a_shape}, "{dtype}")')
    k(f'B_s = T.alloc_shared({b_shape}, "{dtype}")')
    k.lines.append("#FRAGS#")
    k('C_f = T.alloc_fragment((bm, bn), "float32")')
    if clear_mode == "clear":
        k("T.clear(C_f)")
    elif clear_mode == "fill_zero":
        k("T.fill(C_f, 0.0)")
    m("C_f = np.zeros((bm, bn))")
    opts = ", transpose_A=True" * ta + ", transpose_B=True" * tb
    opts += ", clear_accum=True" * (clear_mode == "clear_accum") + (
        f', policy="{policy}"' if policy != "square" else ""
    )
    header = {
        "serial": "for ko in T.serial(T.ceildiv(K, bk)):",
        "pipelined": f"for ko in T.Pipelined(T.ceildiv(K, bk), num_stages={stages}):",
        "none": None,
    }[loop]
    a_eff = "A_s.T" if ta else "A_s"
    b_eff = "B_s.T" if tb else "B_s"
    acc = (
        f"C_f = {a_eff} @ {b_eff}"
        if clear_mode == "clear_accum"
        else f"C_f = C_f + {a_eff} @ {b_eff}"
    )

    explicit = ch.boolean(0.3, "explicit sync")
    if explicit:
        feats.add("gemm-explicit-sync")

    def body(kk: Src, mm: Src) -> None:
        _operand(kk, mm, ch, "A", ta, "bm", "bk", feats, dtype)
        _operand(kk, mm, ch, "B", not tb, "bn", "bk", feats, dtype)
        if explicit:
            kk("T.sync_threads()")
        kk(f"T.gemm(A_s, B_s, C_f{opts})")
        if explicit:
            kk("T.sync_threads()")
        mm(acc)

    if header is None:
        k("ko = 0")
        m("ko = 0")
        body(k, m)
    else:
        with k.block(header):
            with m.block("for ko in range(-(-K // bk)):"):
                body(k, m)
    chain = gx == 1 and epi != "rowreduce" and ch.boolean(0.25, "second gemm")
    if chain:
        # Flash-attention style: the accumulator goes to shared memory as the next gemm's A.
        k(f'P_s = T.alloc_shared((bm, bn), "{dtype}")')
        k(f'V_s = T.alloc_shared((bn, bn), "{dtype}")')
        k('D_f = T.alloc_fragment((bm, bn), "float32")')
        how = ch.choice(["copy", "parallel"], "P staging")
        if how == "copy":
            k("T.copy(C_f, P_s)")
        else:
            with k.block("for i, j in T.Parallel(bm, bn):"):
                k("P_s[i, j] = C_f[i, j]")
        k("T.copy(V[0, 0], V_s)")
        if explicit:
            k("T.sync_threads()")
        k("T.gemm(P_s, V_s, D_f, clear_accum=True)")
        k("T.copy(D_f, D[by * bm, 0])")
        m(f'store_tile(D, (r0, 0), rnd(C_f, "{dtype}") @ load_tile(V, (0, 0), (bn, bn)))')
        feats.add(f"gemm-chain-{how}")
    _epilogue(k, m, ch, epi, out_dtype, feats)
    frags = [
        f'{n}_f = T.alloc_fragment({shp}, "{dtype}")'
        for n, shp in (("A", a_shape), ("B", b_shape))
        if f"{n}_f)" in k.text()
    ]
    at = k.lines.index("#FRAGS#")
    k.lines[at : at + 1] = frags
    feats |= {
        f"gemm-{dtype}",
        f"gemm-ta{int(ta)}-tb{int(tb)}",
        f"gemm-loop-{loop}",
        f"threads{threads}",
        f"gemm-epi-{epi}",
        f"gemm-{clear_mode}",
        f"gemm-policy-{policy}",
    }
    if loop == "pipelined":
        feats.add(f"gemm-stages{stages}")
    if ragged:
        feats.add("ragged")
    params = [
        ParamSpec("A", dtype, (K, M) if ta else (M, K), -2, 2),
        ParamSpec("B", dtype, (N, K) if tb else (K, N), -2, 2),
        ParamSpec("C", out_dtype, (M, N), output=True),
    ]
    if epi == "rowreduce":
        params.append(ParamSpec("R", "float32", (M,), output=True))
    if chain:
        params.append(ParamSpec("V", dtype, (N, bn), -2, 2))
        params.append(ParamSpec("D", "float32", (M, bn), output=True))
    if outer:
        # Two column tiles per block, one after the other: the whole body runs twice.
        body_k, body_m = k, m
        k, m = Src(), Src()
        with k.block("for nb in T.serial(2):"):
            k("cn = (bx * 2 + nb) * bn")
            k.extend(body_k)
        with m.block("for nb in range(2):"):
            m("cn = (bx * 2 + nb) * bn")
            m.extend(body_m)
        feats.add("gemm-outer-loop")
    else:
        k.lines.insert(0, "cn = bx * bn")
        m.lines.insert(0, "cn = bx * bn")
    gxs = "T.ceildiv(N, 2 * bn)" if outer else "T.ceildiv(N, bn)"
    if dyn_m:
        feats.add("dynamic-M")
    if dyn_k:
        feats.add("dynamic-K")
    kernel, model = Src(), Src()
    kernel(f"bm, bn, bk = {bm}, {bn}, {bk}")
    with kernel.block('with T.prim_func("fz_gemm") as f:'):
        kernel(f"N = {N}")
        kernel('M = T.dynamic("M")' if dyn_m else f"M = {M}")
        kernel('K = T.dynamic("K")' if dyn_k else f"K = {K}")
        for p in params:
            dims = {
                "A": "(K, M)" if ta else "(M, K)",
                "B": "(N, K)" if tb else "(K, N)",
                "C": "(M, N)",
                "R": "(M,)",
                "V": "(N, bn)",
                "D": "(M, bn)",
            }[p.name]
            kernel(f'{p.name} = T.param("{p.name}", {dims}, "{p.dtype}")')
        with kernel.block(
            f"with T.Kernel({gxs}, T.ceildiv(M, bm), threads={threads}) as (bx, by):"
        ):
            kernel.extend(k)
    kernel("return f.func")
    model(f"bm, bn, bk = {bm}, {bn}, {bk}")
    model(f"M, N, K = {M}, {N}, {K}")
    with model.block("for by in range(-(-M // bm)):"):
        with model.block(f"for bx in range(-(-N // {'(2 * bn)' if outer else 'bn'})):"):
            model("r0 = by * bm")
            model.extend(m)
    exact_out = out_dtype == "float32" or epi == "rowreduce"
    tol = {"C": (0.0, 0.0) if exact_out else (1e-2, 1e-2)}
    if epi == "rowreduce":
        tol["R"] = (0.0, 0.0)
    if chain:
        tol["D"] = (0.0, 0.0) if dtype == "float16" else (3e-2, 3e-2)
    return Program("gemm", seed, kernel.text(), model.text(), params, tol, feats)


def _thread_options(bm: int, bn: int, policy: str) -> list[int]:
    """Thread counts whose warps tile the accumulator in 16x16 pieces (the documented limit); a
    tile past 64x64 takes two warpgroups or more where it can (with fewer, each thread runs many
    mma steps, slow in the interpreter and no new case for the compiler)."""
    out = []
    for threads in (32, 64, 128, 256, 384, 512):
        warps = threads // 32
        if policy == "full_row":
            ok = bm % (16 * warps) == 0 and bn % 16 == 0
        else:
            ok = any(
                warps % wm == 0 and bm % (16 * wm) == 0 and bn % (16 * (warps // wm)) == 0
                for wm in range(1, warps + 1)
            )
        if ok:
            out.append(threads)
    if bm * bn > 64 * 64:
        out = [t for t in out if t >= 256] or out
    return out


def _epilogue(k: Src, m: Src, ch: Chooser, epi: str, out_dtype: str, feats: set[str]) -> None:
    if epi == "copy":
        k("T.copy(C_f, C[by * bm, cn])")
    elif epi == "parallel":
        op = ch.choice(["relu", "scale", "shift"], "epilogue op")
        expr = {
            "relu": "T.max(C_f[i, j], 0.0)",
            "scale": "C_f[i, j] * 0.5",
            "shift": "C_f[i, j] - 1.0",
        }[op]
        npx = {"relu": "np.maximum(C_f, 0.0)", "scale": "C_f * 0.5", "shift": "C_f - 1.0"}[op]
        with k.block("for i, j in T.Parallel(bm, bn):"):
            k(f"C_f[i, j] = {expr}")
        m(f"C_f = {npx}")
        k("T.copy(C_f, C[by * bm, cn])")
        feats.add(f"gemm-epi-{op}")
    elif epi == "shared":
        k(f'C_s = T.alloc_shared((bm, bn), "{out_dtype}")')
        k("T.copy(C_f, C_s)")
        k("T.copy(C_s, C[by * bm, cn])")
    else:
        k('R_f = T.alloc_fragment((bm,), "float32")')
        kind = ch.choice(["sum", "max"], "row reduce")
        k(f"T.reduce_{kind}(C_f, R_f, dim=1)")
        k("T.copy(C_f, C[by * bm, cn])")
        k("T.copy(R_f, R[by * bm])")
        m(f"store_tile(R, (r0,), C_f.{kind}(axis=1))")
        feats.add(f"gemm-rowreduce-{kind}")
    m(f'store_tile(C, (r0, cn), cast(C_f, "{out_dtype}"))')
