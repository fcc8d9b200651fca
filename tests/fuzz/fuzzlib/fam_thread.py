"""Family `thread`: programs that use thread ids, shared-memory atomics and thread-dependent ifs.

Patterns TileLang users write (the gemv and histogram examples, warp-specialised producers):
- `hist`: a histogram in shared memory (initialised by T.clear, a T.Parallel, or `tx < nb`
  threads), filled with `T.atomic_add` from a T.Parallel nest, published with global atomics;
- `gemv`: TileLang's split-k gemv: 2-D threads, per-thread partial sums, shared atomics;
- `thread_if`: tile ops (copy, fill, T.Parallel, reductions) inside `with T.If(tx < k)`;
- `exchange`: per-thread stores to shared memory, read back by other threads;
- `reducer`: T.alloc_reducer / T.finalize_reducer, the result written by thread 0;
- `count`: element atomics on a global counter from a T.Parallel nest under a data condition.

Blocks have 32 to 512 threads (one to four warpgroups).
"""

from __future__ import annotations

from .choose import Chooser
from .program import ParamSpec, Program, Src

__all__ = ["gen_thread"]

# Up to four warpgroups: ThreadSync orders a hazard within one warpgroup by that warpgroup's own
# named barrier when it proves the conflicting accesses stay in it.
THREADS = [32, 64, 128, 256, 384, 512]


def _func(
    name: str,
    consts: str,
    params: list[ParamSpec],
    dims: dict[str, str],
    kernel_header: str,
    body: Src,
) -> Src:
    k = Src()
    k(consts)
    with k.block(f'with T.prim_func("{name}") as f:'):
        for line in dims.get("_pre", "").split("\n"):
            if line:
                k(line)
        for p in params:
            k(
                f'{p.name} = T.param("{p.name}", {dims[p.name]}, "{p.dtype}")'
                if p.shape
                else f'{p.name} = T.scalar("{p.name}", "{p.dtype}")'
            )
        with k.block(kernel_header):
            k.extend(body)
    k("return f.func")
    return k


def gen_hist(ch: Chooser, seed: int, feats: set[str]) -> tuple[Src, Src, list[ParamSpec], dict]:
    threads = ch.choice(THREADS, "threads")
    nb = ch.choice([4, 8, 16, 32, 64], "bins")
    bm = ch.choice([1, 2, 4, 8, 16], "bm")
    bn = ch.choice([8, 16, 32, 64], "bn")
    gy = ch.integer(1, 4, "gy")
    M = gy * bm - ch.integer(0, bm - 1, "rm")
    N = bn - ch.integer(0, bn - 1, "rn") if ch.boolean(0.5) else bn
    b = Src()
    b("tx = T.get_thread_binding()")
    b('H_s = T.alloc_shared((nb,), "int32")')
    init = ch.choice(
        ["clear", "parallel", "tx"] if nb <= threads else ["clear", "parallel"], "hist init"
    )
    feats.add(f"hist-init-{init}")
    if init == "clear":
        b("T.clear(H_s)")
    elif init == "parallel":
        with b.block("for i in T.Parallel(nb):"):
            b("H_s[i] = 0")
    else:
        with b.block("with T.If(tx < nb):"):
            b("H_s[tx] = 0")
    src = ch.choice(["frag", "shared", "global"], "hist source")
    feats.add(f"hist-src-{src}")
    idx = ch.choice(["@ % nb", "T.min(T.max(@, 0), nb - 1)"], "bin index")
    if src != "global":
        alloc = "T.alloc_fragment" if src == "frag" else "T.alloc_shared"
        b(f'x_t = {alloc}((bm, bn), "int32")')
        b("T.copy(X[bx * bm, 0], x_t)")
    with b.block("for i, j in T.Parallel(bm, bn):"):
        with b.block("with T.If(T.all(bx * bm + i < M, j < N)):"):
            load = "X[bx * bm + i, j]" if src == "global" else "x_t[i, j]"
            b(f"T.atomic_add(H_s[{idx.replace('@', load)}], 1)")
    pub = ch.choice(
        ["tile", "parallel", "tx", "copy"] if nb <= threads else ["tile", "parallel", "copy"],
        "hist publish",
    )
    feats.add(f"hist-publish-{pub}")
    if pub == "tile":
        b("T.atomic_add(H[0], H_s)")
    elif pub == "parallel":
        with b.block("for i in T.Parallel(nb):"):
            b("T.atomic_add(H[i], H_s[i])")
    elif pub == "tx":
        with b.block("with T.If(tx < nb):"):
            b("T.atomic_add(H[tx], H_s[tx])")
    else:
        b("T.copy(H_s, HB[bx, 0])")
    m = Src()
    m(f"bm, bn, nb = {bm}, {bn}, {nb}")
    m("M, N = X.shape")
    with m.block("for bx in range(-(-M // bm)):"):
        m("x = X[bx * bm:(bx + 1) * bm, :]")
        m("bins = np.mod(x, nb) if " + repr("%" in idx) + " else np.clip(x, 0, nb - 1)")
        m("h = np.bincount(bins.reshape(-1), minlength=nb)")
        m("HB[bx, :] = h" if pub == "copy" else "H[:] += h")
    params = [ParamSpec("X", "int32", (M, N), -3, nb + 3)]
    params.append(
        ParamSpec("HB", "int32", (gy, nb), output=True)
        if pub == "copy"
        else ParamSpec("H", "int32", (nb,), output=True)
    )
    dims = {"X": "(M, N)", "H": "(nb,)", "HB": "(T.ceildiv(M, bm), nb)"}
    k = _func(
        "fz_hist",
        f"bm, bn, nb = {bm}, {bn}, {nb}\nM, N = {M}, {N}",
        params,
        dims,
        f"with T.Kernel(T.ceildiv(M, bm), threads={threads}) as bx:",
        b,
    )
    feats |= {"shared-atomics", f"threads{threads}"}
    return k, m, params, {}


def gen_gemv(ch: Chooser, seed: int, feats: set[str]) -> tuple[Src, Src, list[ParamSpec], dict]:
    BN = ch.choice([2, 4, 8, 16, 32], "BLOCK_N")
    RT = ch.choice([4, 8, 16, 32], "reduce_threads")
    while BN * RT > 512:
        RT //= 2
    TK = ch.choice([1, 2, 4, 8], "TILE_K")
    BK = RT * TK
    nkb = ch.integer(1, 3, "k blocks")
    K = nkb * BK
    gN = ch.integer(1, 3, "n blocks")
    N = gN * BN - (ch.integer(0, BN - 1, "rn") if ch.boolean(0.4) else 0)
    guard = N % BN != 0
    init = ch.choice(["tk0", "parallel", "clear"], "gemv init")
    feats.add(f"gemv-init-{init}")
    b = Src()
    b("tn = T.get_thread_binding(0)")
    b("tk = T.get_thread_binding(1)")
    b('A_local = T.alloc_local((TILE_K,), "float16")')
    b('B_local = T.alloc_local((TILE_K,), "float16")')
    b('C_shared = T.alloc_shared((BLOCK_N,), "float32")')
    b('C_accum = T.alloc_local((1,), "float32")')
    if init == "tk0":
        with b.block("with T.If(tk == 0):"):
            b("C_shared[tn] = 0")
    elif init == "parallel":
        with b.block("for i in T.Parallel(BLOCK_N):"):
            b("C_shared[i] = 0")
    else:
        b("T.clear(C_shared)")
    b("T.clear(C_accum)")
    row = "T.min(bn * BLOCK_N + tn, N - 1)" if guard else "bn * BLOCK_N + tn"
    with b.block("for bk in T.serial(T.ceildiv(K, BLOCK_K)):"):
        with b.block("for k in T.serial(TILE_K):"):
            b("A_local[k] = A[bk * BLOCK_K + tk * TILE_K + k]")
            b(f"B_local[k] = B[{row}, bk * BLOCK_K + tk * TILE_K + k]")
        with b.block("for k in T.serial(TILE_K):"):
            b(
                "C_accum[0] = C_accum[0] + "
                'T.cast(A_local[k], "float32") * T.cast(B_local[k], "float32")'
            )
    b("T.atomic_add(C_shared[tn], C_accum[0])")
    if guard:
        with b.block("with T.If(bn * BLOCK_N + tn < N):"):
            b("C[bn * BLOCK_N + tn] = C_shared[tn]")
    else:
        b("C[bn * BLOCK_N + tn] = C_shared[tn]")
    params = [
        ParamSpec("A", "float16", (K,), -2, 2),
        ParamSpec("B", "float16", (N, K), -2, 2),
        ParamSpec("C", "float16", (N,), output=True),
    ]
    k = _func(
        "fz_gemv",
        f"BLOCK_N, reduce_threads, TILE_K = {BN}, {RT}, {TK}\n"
        f"BLOCK_K = reduce_threads * TILE_K\nN, K = {N}, {K}",
        params,
        {"A": "(K,)", "B": "(N, K)", "C": "(N,)"},
        "with T.Kernel(T.ceildiv(N, BLOCK_N), threads=(BLOCK_N, reduce_threads)) as bn:",
        b,
    )
    m = Src()
    m('C[:] = rnd(B @ A, "float16")')
    feats |= {"gemv", "shared-atomics", "threads-2d"}
    return k, m, params, {"C": (1e-2, 1e-2)}


def gen_thread_if(
    ch: Chooser, seed: int, feats: set[str]
) -> tuple[Src, Src, list[ParamSpec], dict]:
    """Tile ops inside `with T.If(tx < k)` / T.Else: the op is done in full by those threads."""
    threads = ch.choice([64, 128, 256, 384, 512], "threads")
    split = ch.choice([w for w in (32, 64, 128, 256, 384) if w < threads], "split")
    bm = ch.choice([1, 2, 4, 8, 16], "bm")
    bn = ch.choice([16, 32, 64], "bn")
    gy = ch.integer(1, 3, "gy")
    M = gy * bm - ch.integer(0, bm - 1, "rm")
    N = bn
    op1 = ch.choice(["copy_shared", "copy_frag", "parallel", "fill"], "op under if")
    op2 = ch.choice(["none", "copy_shared", "parallel"], "op under else")
    cond = ch.choice([f"tx < {split}", f"tx >= {split}"], "thread cond")
    feats |= {f"thread-if-{op1}", f"thread-else-{op2}", f"threads{threads}"}
    b, m = Src(), Src()
    b("tx = T.get_thread_binding()")
    b('s = T.alloc_shared((bm, bn), "float32")')
    b('t = T.alloc_shared((bm, bn), "float32")')
    b('y = T.alloc_fragment((bm, bn), "float32")')
    if op1 == "copy_frag":
        b('g = T.alloc_fragment((bm, bn), "float32")')
    m("s = load_tile(X, (bx * bm, 0), (bm, bn))")
    m("t = load_tile(X2, (bx * bm, 0), (bm, bn))")
    b("T.copy(X2[bx * bm, 0], t)")
    with b.block(f"with T.If({cond}):"):
        if op1 == "copy_shared":
            b("T.copy(X[bx * bm, 0], s)")
        elif op1 == "copy_frag":
            b("T.copy(X[bx * bm, 0], g)")
            b("T.copy(g, s)")
        elif op1 == "parallel":
            with b.block("for i, j in T.Parallel(bm, bn):"):
                b(
                    "s[i, j] = X[T.min(bx * bm + i, M - 1), j]"
                    " * T.if_then_else(bx * bm + i < M, 1.0, 0.0)"
                )
        else:
            b("T.fill(s, 2.0)")
            m("s[...] = 2.0")
    if op2 != "none":
        with b.block("with T.Else():"):
            if op2 == "copy_shared":
                b("T.copy(X2[bx * bm, 0], t)")
            else:
                with b.block("for i, j in T.Parallel(bm, bn):"):
                    b("t[i, j] = t[i, j] + 1.0")
                m("t = t + 1.0")
    with b.block("for i, j in T.Parallel(bm, bn):"):
        b("y[i, j] = s[i, j] * 2.0 + t[i, j]")
    b("T.copy(y, Y[bx * bm, 0])")
    m("store_tile(Y, (bx * bm, 0), s * 2.0 + t)")
    mm = Src()
    mm(f"bm, bn = {bm}, {bn}")
    mm("M = X.shape[0]")
    with mm.block("for bx in range(-(-M // bm)):"):
        mm.extend(m)
    params = [
        ParamSpec("X", "float32", (M, N)),
        ParamSpec("X2", "float32", (M, N)),
        ParamSpec("Y", "float32", (M, N), output=True),
    ]
    k = _func(
        "fz_thread_if",
        f"bm, bn = {bm}, {bn}\nM, N = {M}, {N}",
        params,
        {"X": "(M, N)", "X2": "(M, N)", "Y": "(M, N)"},
        f"with T.Kernel(T.ceildiv(M, bm), threads={threads}) as bx:",
        b,
    )
    return k, mm, params, {}


def gen_exchange(ch: Chooser, seed: int, feats: set[str]) -> tuple[Src, Src, list[ParamSpec], dict]:
    """Each thread stores one element to shared memory; another thread reads it back."""
    threads = ch.choice(THREADS, "threads")
    perm = ch.choice(["reverse", "rotate", "xor1", "half"], "permutation")
    explicit = ch.boolean(0.3, "explicit sync")
    dtype = ch.choice(["float32", "int32", "float16"], "dtype")
    g = ch.integer(1, 3, "blocks")
    n = g * threads - (ch.integer(0, threads - 1, "rn") if ch.boolean(0.5) else 0)
    src = {"reverse": "T - 1 - tx", "rotate": "(tx + 1) % T", "xor1": "tx ^ 1", "half": "tx // 2"}[
        perm
    ]
    np_src = {"reverse": "T - 1 - t", "rotate": "(t + 1) % T", "xor1": "t ^ 1", "half": "t // 2"}[
        perm
    ]
    b = Src()
    b("tx = T.get_thread_binding()")
    b(f'S = T.alloc_shared((T_,), "{dtype}")'.replace("T_", "Tn"))
    b("S[tx] = T.if_then_else(bx * Tn + tx < n, X[T.min(bx * Tn + tx, n - 1)], 0)")
    if explicit:
        b("T.sync_threads()")
    second = ch.boolean(0.4, "second round")
    src_k = src.replace("T ", "Tn ").replace("% T", "% Tn")
    if second:
        b('v = T.alloc_var("%s")' % dtype)
        b(f"v[0] = S[{src_k}]")
        if explicit:
            b("T.sync_threads()")
        b("S[tx] = v[0] + S[tx]")
        if explicit:
            b("T.sync_threads()")
    with b.block("with T.If(bx * Tn + tx < n):"):
        b(f"Y[bx * Tn + tx] = S[{src_k}]")
    m = Src()
    m(f"Tn = {threads}")
    m("n = X.shape[0]")
    m("t = np.arange(Tn)")
    m("T = Tn")
    with m.block("for bx in range(-(-n // Tn)):"):
        m("S = load_tile(X, (bx * Tn,), (Tn,))")
        if second:
            m(f"S = S[{np_src}] + S")
            if dtype == "float16":
                m('S = rnd(S, "float16")')
        m(f"store_tile(Y, (bx * Tn,), S[{np_src}])")
    params = [ParamSpec("X", dtype, (n,), -8, 8), ParamSpec("Y", dtype, (n,), output=True)]
    feats |= {
        f"exchange-{perm}",
        "explicit-sync" if explicit else "implicit-sync",
        f"threads{threads}",
        "alloc-var" if second else "one-round",
    }
    k = _func(
        "fz_exchange",
        f"Tn = {threads}\nn = {n}",
        params,
        {"X": "(n,)", "Y": "(n,)"},
        "with T.Kernel(T.ceildiv(n, Tn), threads=Tn) as bx:",
        b,
    )
    return k, m, params, {}


def gen_reducer(ch: Chooser, seed: int, feats: set[str]) -> tuple[Src, Src, list[ParamSpec], dict]:
    threads = ch.choice(THREADS, "threads")
    bm = ch.choice([1, 2, 4, 8], "bm")
    N = ch.choice([16, 32, 64, 128], "N")
    gy = ch.integer(1, 3, "gy")
    M = gy * bm - ch.integer(0, bm - 1, "rm")
    op = ch.choice(["sum", "max", "min"], "reducer op")
    upd = {
        "sum": "r[0] = r[0] + S[i, j]",
        "max": "r[0] = T.max(r[0], S[i, j])",
        "min": "r[0] = T.min(r[0], S[i, j])",
    }[op]
    b = Src()
    b('S = T.alloc_shared((bm, N), "float32")')
    b(f'r = T.alloc_reducer((1,), "float32", op="{op}")')
    b("T.copy(X[bx * bm, 0], S)")
    with b.block("for i, j in T.Parallel(bm, N):"):
        b(upd)
    b("T.finalize_reducer(r)")
    with b.block("with T.If(T.get_thread_binding() == 0):"):
        b("out[bx] = r[0]")
    m = Src()
    m(f"bm = {bm}")
    with m.block("for bx in range(-(-X.shape[0] // bm)):"):
        m(f"out[bx] = load_tile(X, (bx * bm, 0), (bm, X.shape[1])).{op}()")
    params = [ParamSpec("X", "float32", (M, N)), ParamSpec("out", "float32", (gy,), output=True)]
    feats |= {f"reducer-{op}", f"threads{threads}"}
    k = _func(
        "fz_reducer",
        f"bm = {bm}\nM, N = {M}, {N}",
        params,
        {"X": "(M, N)", "out": "(T.ceildiv(M, bm),)"},
        f"with T.Kernel(T.ceildiv(M, bm), threads={threads}) as bx:",
        b,
    )
    return k, m, params, {}


def gen_count(ch: Chooser, seed: int, feats: set[str]) -> tuple[Src, Src, list[ParamSpec], dict]:
    threads = ch.choice(THREADS, "threads")
    bm, bn = ch.choice([2, 4, 8, 16], "bm"), ch.choice([16, 32, 64], "bn")
    gx, gy = ch.integer(1, 2, "gx"), ch.integer(1, 2, "gy")
    M, N = gy * bm - ch.integer(0, bm - 1, "rm"), gx * bn - ch.integer(0, bn - 1, "rn")
    b = Src()
    b('x = T.alloc_fragment((bm, bn), "float32")')
    b("T.copy(X[by * bm, bx * bn], x)")
    with b.block("for i, j in T.Parallel(bm, bn):"):
        with b.block("with T.If(T.all(by * bm + i < M, bx * bn + j < N, x[i, j] > 0)):"):
            b("T.atomic_add(Cnt[0], 1)")
            b("T.atomic_add(Sum[0], x[i, j])")
    m = Src()
    m("Cnt[0] += int((X > 0).sum())")
    m("Sum[0] += X[X > 0].sum()")
    params = [
        ParamSpec("X", "float32", (M, N)),
        ParamSpec("Cnt", "int32", (1,), 0, 0, True),
        ParamSpec("Sum", "float32", (1,), 0, 0, True),
    ]
    feats |= {"atomic-global-elem", "parallel-data-if", f"threads{threads}"}
    k = _func(
        "fz_count",
        f"bm, bn = {bm}, {bn}\nM, N = {M}, {N}",
        params,
        {"X": "(M, N)", "Cnt": "(1,)", "Sum": "(1,)"},
        f"with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads={threads}) as (bx, by):",
        b,
    )
    return k, m, params, {}


PATTERNS = {
    "hist": (gen_hist, 3.0),
    "gemv": (gen_gemv, 2.0),
    "thread_if": (gen_thread_if, 2.0),
    "exchange": (gen_exchange, 2.0),
    "reducer": (gen_reducer, 1.0),
    "count": (gen_count, 1.0),
}


def gen_thread(ch: Chooser, seed: int) -> Program:
    name = ch.weighted([(n, w) for n, (_, w) in PATTERNS.items()], "thread pattern")
    feats: set[str] = {f"thread-{name}"}
    k, m, params, tol = PATTERNS[name][0](ch, seed, feats)
    return Program("thread", seed, k.text(), m.text(), params, tol, feats)
