"""Family `async`: programs in which the async proxy meets ordinary accesses.

On sm_90a a T.copy of a whole shared tile into a tensor parameter is a TMA store (the async
proxy reads the tile; with several warpgroups each one's first thread stores a slab), and a
global->shared T.copy in a T.Pipelined loop is a TMA load. Around them these programs put the
generic-proxy accesses TileLang users write:

- `store`: a tile written (T.copy from global or from a fragment, a T.Parallel nest with permuted
  indices, a range of threads, a T.view, shared atomics, T.cumsum), maybe updated in place and
  read by a reduction, then stored; afterwards rewritten and stored again (into another tensor,
  or the same one: two stores into one tensor), overwritten by ordinary stores, or read back;
- `reduce`: T.reduce_* of the tile into shared or fragment rows/columns, the tile and the
  reduction both stored;
- `pipeline`: a T.Pipelined loop whose TMA loads feed TMA stores, through the loaded stage,
  another tile or a fragment, maybe loading and storing one tensor;
- `rewrite`: one tile rewritten and stored once per step of a loop over several tiles;
- `inplace`: each block loads its tile of Y, updates it and stores it back.

Tiles and thread counts (32 to 512: one to four warpgroups) are chosen so that the stored rows
or 128-byte column spans sometimes divide among the warpgroups (a split store) and sometimes
do not; M and N are ragged. Values are small integers, exact in every dtype, so every output is
compared exactly.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from .choose import Chooser
from .program import ParamSpec, Program, Src

__all__ = ["gen_async"]

THREADS = [(32, 0.3), (64, 0.5), (128, 1.0), (256, 1.5), (384, 1.5), (512, 1.5)]
DTYPES = ["float32", "float32", "float16", "bfloat16", "int32"]
ATOMIC_DTYPES = ("float32", "int32")

# Element-wise maps of a tile value `{v}`: (builder, numpy). Values stay small integers.
VALUE_MAPS = [
    ("{v}", "{v}"),
    ("{v} * 2 + 1", "{v} * 2 + 1"),
    ("{v} - 3", "{v} - 3"),
    ("-{v}", "-{v}"),
]

# Bijections of an index `{x}` in [0, {n}) for T.Parallel writes: (builder, numpy, needs even n).
PERMS = [
    ("{x}", "{x}", False),
    ("{n} - 1 - {x}", "{n} - 1 - {x}", False),
    ("({x} + {c}) % {n}", "({x} + {c}) % {n}", False),
    ("{x} ^ 1", "{x} ^ 1", True),
    ("{x} % 2 * ({n} // 2) + {x} // 2", "{x} % 2 * ({n} // 2) + {x} // 2", True),
]

# Many-to-one maps of an index for shared atomics: (builder, numpy).
GATHERS = [
    ("{x}", "{x}"),
    ("{x} // 2", "{x} // 2"),
    ("{x} % 4", "{x} % 4"),
    ("{n} - 1 - {x}", "{n} - 1 - {x}"),
    ("0", "0 * {x}"),
]


@dataclass
class _Cx:
    """What a program's writer knows: sizes, the two texts, and where the block's tile starts."""

    ch: Chooser
    bm: int
    bn: int
    dtype: str
    threads: int
    decl: Src = field(default_factory=Src)
    """allocations (and the thread index), hoisted to the top of the kernel body"""
    k: Src = field(default_factory=Src)
    m: Src = field(default_factory=Src)
    feats: set[str] = field(default_factory=set)
    r0: str = "by * bm"
    c0: str = "bx * bn"
    n: int = 0

    def fresh(self, stem: str) -> str:
        self.n += 1
        return f"{stem}{self.n}"

    def shared(self, shape: str = "(bm, bn)", dtype: str | None = None, stem: str = "s") -> str:
        name = self.fresh(stem)
        self.decl(f'{name} = T.alloc_shared({shape}, "{dtype or self.dtype}")')
        return name

    def frag(self, shape: str = "(bm, bn)", dtype: str | None = None, stem: str = "f") -> str:
        name = self.fresh(stem)
        self.decl(f'{name} = T.alloc_fragment({shape}, "{dtype or self.dtype}")')
        return name

    def value_map(self, label: str) -> tuple[str, str]:
        return self.ch.choice(VALUE_MAPS, label)

    def load(self, src: str = "X") -> str:
        """numpy text of the block's (zero-filled) tile of global `src`."""
        return f"load_tile({src}, (r0, c0), (bm, bn))"


def _perm(ch: Chooser, x: str, n: str, nval: int, label: str) -> tuple[str, str]:
    opts = [p for p in PERMS if not p[2] or nval % 2 == 0]
    kt, mt, _ = ch.choice(opts, label)
    c = ch.choice([1, 8, nval // 2], label + " shift")
    return (
        kt.format(x=x, n=n, c=c),
        mt.format(x="np.arange(%d)" % nval, n=nval, c=c),
    )


# -- writing a shared tile -----------------------------------------------------------------------


def write_tile(cx: _Cx, s: str, src: str = "X") -> None:
    """Write the whole of shared tile `s` from the block's tile of global `src`, in one of the
    ways users write a tile."""
    ch = cx.ch
    ways = [
        ("copy_global", 2.0),
        ("copy_frag", 2.0),
        ("parallel_perm", 3.0),
        ("parallel_global", 1.5),
        ("thread_rows", 1.0 if cx.bm * cx.bn <= 2048 else 0.0),
        ("atomic", 2.0 if cx.dtype in ATOMIC_DTYPES else 0.0),
        ("view", 1.0 if cx.bn % 2 == 0 else 0.0),
        ("cumsum", 0.7 if cx.dtype in ATOMIC_DTYPES else 0.0),
    ]
    how = ch.weighted(ways, "write")
    cx.feats.add(f"async-write-{how}")
    k, m, r0, c0 = cx.k, cx.m, cx.r0, cx.c0
    if how == "copy_global":
        k(f"T.copy({src}[{r0}, {c0}], {s})")
        m(f"{s} = {cx.load(src)}")
    elif how == "copy_frag":
        f = cx.frag()
        kt, mt = cx.value_map("frag map")
        k(f"T.copy({src}[{r0}, {c0}], {f})")
        with k.block("for i, j in T.Parallel(bm, bn):"):
            k(f"{f}[i, j] = {kt.format(v=f'{f}[i, j]')}")
        k(f"T.copy({f}, {s})")
        m(f"{s} = {mt.format(v=cx.load(src))}")
    elif how == "parallel_perm":
        f = cx.frag()
        k(f"T.copy({src}[{r0}, {c0}], {f})")
        pi, npi = _perm(ch, "i", "bm", cx.bm, "row perm")
        pj, npj = _perm(ch, "j", "bn", cx.bn, "col perm")
        kt, mt = cx.value_map("perm map")
        with k.block("for i, j in T.Parallel(bm, bn):"):
            k(f"{s}[{pi}, {pj}] = {kt.format(v=f'{f}[i, j]')}")
        m(f"{s} = np.zeros((bm, bn))")
        m(f"{s}[np.ix_({npi}, {npj})] = {mt.format(v=cx.load(src))}")
        cx.feats.add("async-perm" if (pi, pj) != ("i", "j") else "async-identity")
    elif how == "parallel_global":
        # The nest may run over (bn, bm): the threads then hold the tile by columns.
        swap = ch.boolean(0.4, "column-major nest")
        kt, mt = cx.value_map("global map")
        nest = "for j, i in T.Parallel(bn, bm):" if swap else "for i, j in T.Parallel(bm, bn):"
        with k.block(nest):
            with k.block(f"with T.If(T.all({r0} + i < M, {c0} + j < N)):"):
                k(f"{s}[i, j] = {kt.format(v=f'{src}[{r0} + i, {c0} + j]')}")
            with k.block("with T.Else():"):
                k(f"{s}[i, j] = 0")
        m(f"{s} = np.where(_V, {mt.format(v=cx.load(src))}, 0)")
        cx.feats.add("async-colmajor-nest" if swap else "async-rowmajor-nest")
    elif how == "thread_rows":
        # Every `step`-th thread writes one row, element by element: the writers are spread
        # over the warpgroups.
        step = max(1, cx.threads // cx.bm)
        kt, mt = cx.value_map("thread map")
        if "tx = T.get_thread_binding()" not in cx.decl.lines:
            cx.decl("tx = T.get_thread_binding()")
        if cx.threads >= cx.bm:
            row = "tx" if step == 1 else f"tx // {step}"
            cond = f"tx < {cx.bm}" if step == 1 else f"T.all(tx % {step} == 0, tx // {step} < bm)"
            rows = contextlib.nullcontext()
        else:  # fewer threads than rows: each thread takes every `threads`-th row
            row = f"r * {cx.threads} + tx"
            cond = f"{row} < bm"
            rows = k.block(f"for r in T.serial({-(-cx.bm // cx.threads)}):")
        with rows, k.block(f"with T.If({cond}):"), k.block("for j in T.serial(bn):"):
            load = (
                f"T.if_then_else(T.all({r0} + {row} < M, {c0} + j < N), "
                f"{src}[T.min({r0} + {row}, M - 1), T.min({c0} + j, N - 1)], 0)"
            )
            k(f"{s}[{row}, j] = {kt.format(v=load)}")
        m(f"{s} = {mt.format(v=cx.load(src))}")
        cx.feats.add(f"async-thread-step{min(step, 8)}")
    elif how == "atomic":
        f = cx.frag()
        k(f"T.copy({src}[{r0}, {c0}], {f})")
        init = ch.choice([0, 1], "atomic init")
        k(f"T.clear({s})" if init == 0 else f"T.fill({s}, {_lit(1, cx.dtype)})")
        m(f"{s} = np.full((bm, bn), {init})")
        if ch.boolean(0.3, "tile atomic"):
            k(f"T.atomic_add({s}, {f})")
            m(f"{s} = {s} + {cx.load(src)}")
            cx.feats.add("async-atomic-tile")
        else:
            ai, aj = ch.choice(GATHERS, "atomic rows"), ch.choice(GATHERS, "atomic cols")
            with k.block("for i, j in T.Parallel(bm, bn):"):
                k(
                    f"T.atomic_add({s}[{ai[0].format(x='i', n='bm')}, "
                    f"{aj[0].format(x='j', n='bn')}], {f}[i, j])"
                )
            m(
                f"np.add.at({s}, ({ai[1].format(x='_I', n=cx.bm)}, "
                f"{aj[1].format(x='_J', n=cx.bn)}), {cx.load(src)})"
            )
            cx.feats.add("async-atomic-elem")
    elif how == "view":
        k(f"T.copy({src}[{r0}, {c0}], {s})")
        m(f"{s} = {cx.load(src)}")
        flat = ch.boolean(0.4, "flat view")
        v = cx.fresh("v")
        kt, mt = cx.value_map("view map")
        if flat:
            k(f"{v} = T.view({s}, (bm * bn,))")
            with k.block("for i in T.Parallel(bm * bn):"):
                k(f"{v}[i] = {kt.format(v=f'{v}[i]')} + {_cast('i % 3', cx.dtype)}")
            m(f"{s} = ({mt.format(v=s)}).reshape(-1) + np.arange(bm * bn) % 3")
        else:
            k(f"{v} = T.view({s}, (bm * 2, bn // 2))")
            with k.block("for i, j in T.Parallel(bm * 2, bn // 2):"):
                k(f"{v}[i, j] = {kt.format(v=f'{v}[i, j]')} + {_cast('i % 3', cx.dtype)}")
            m(f"{s} = ({mt.format(v=s)}).reshape(bm * 2, bn // 2)")
            m(f"{s} = {s} + (np.arange(bm * 2) % 3)[:, None]")
        m(f"{s} = {s}.reshape(bm, bn)")
        cx.feats.add("async-view-flat" if flat else "async-view-2d")
    else:  # cumsum
        k(f"T.copy({src}[{r0}, {c0}], {s})")
        dim = ch.choice([0, 1], "cumsum dim")
        k(f"T.cumsum({s}, dim={dim})")
        m(f"{s} = np.cumsum({cx.load(src)}, axis={dim})")
        cx.feats.add(f"async-cumsum-dim{dim}")


def _lit(v: int, dtype: str) -> str:
    return str(v) if dtype == "int32" else f"{float(v)}"


def _cast(expr: str, dtype: str) -> str:
    return expr if dtype == "int32" else f'T.cast({expr}, "{dtype}")'


def update_tile(cx: _Cx, s: str) -> None:
    """An in-place update of the tile (maybe under a block-uniform T.If)."""
    kt, mt = cx.value_map("update map")
    if (kt, mt) == VALUE_MAPS[0]:
        kt, mt = VALUE_MAPS[2]
    guard = cx.ch.boolean(0.3, "uniform update")
    bvar = cx.r0.split(" * ")[0]
    if guard:
        with cx.k.block(f"with T.If({bvar} % 2 == 0):"):
            with cx.k.block("for i, j in T.Parallel(bm, bn):"):
                cx.k(f"{s}[i, j] = {kt.format(v=f'{s}[i, j]')}")
        cx.m(f"{s} = ({mt.format(v=s)}) if {bvar} % 2 == 0 else {s}")
    else:
        with cx.k.block("for i, j in T.Parallel(bm, bn):"):
            cx.k(f"{s}[i, j] = {kt.format(v=f'{s}[i, j]')}")
        cx.m(f"{s} = {mt.format(v=s)}")
    cx.feats.add("async-update" + ("-uniform-if" if guard else ""))


def global_barrier(cx: _Cx) -> None:
    """Before a tile op that accesses global elements an earlier tile op of the block accessed
    (other threads may have): mostly the user's `T.sync_threads()`. Without it the tile level
    still orders the two ops, but ThreadSync plans shared memory only (feature
    `async-global-no-sync`; see classify.py)."""
    if cx.ch.boolean(0.75, "user barrier"):
        cx.k("T.sync_threads()")
        cx.feats.add("async-global-sync")
    else:
        cx.feats.add("async-global-no-sync")


def store(cx: _Cx, s: str, dst: str, r0: str | None = None) -> None:
    """T.copy of the whole tile `s` to the block's tile of `dst` (a TMA store on sm_90a)."""
    cx.k(f"T.copy({s}, {dst}[{r0 or cx.r0}, {cx.c0}])")
    cx.m(f"store_tile({dst}, (r0, c0), {s})")


# -- scenarios -----------------------------------------------------------------------------------


@dataclass
class _Out:
    """The tensors a scenario uses besides X and Y: name -> (dtype, shape text, shape)."""

    extra: dict[str, tuple[str, str, tuple[int, ...]]] = field(default_factory=dict)


def sc_store(cx: _Cx, out: _Out, M: int, N: int, gx: int, gy: int) -> None:
    ch = cx.ch
    s = cx.shared()
    write_tile(cx, s)
    if ch.boolean(0.4, "update"):
        update_tile(cx, s)
    if ch.boolean(0.3, "reduce before store"):
        _reduce(cx, out, s, M, N, gx, gy, shared_dst=False)
    store(cx, s, "Y")
    after = ch.weighted(
        [
            ("none", 1.5),
            ("other", 1.0),
            ("twice_new", 1.0),
            ("twice_rewrite", 1.0),
            ("twice_halves", 0.7 if cx.bn % 2 == 0 else 0.0),
            ("generic_after", 0.8),
            ("generic_before", 0.8),
            ("readback", 1.0),
        ],
        "after store",
    )
    cx.feats.add(f"async-after-{after}")
    if after == "other":
        # The tile is rewritten (the store must have read it first) and stored elsewhere.
        write_tile(cx, s, "X")
        update_tile(cx, s)
        store(cx, s, "Y2")
        out.extra["Y2"] = (cx.dtype, "(M, N)", (M, N))
    elif after == "twice_new":
        t = cx.shared()
        write_tile(cx, t)
        global_barrier(cx)
        store(cx, t, "Y")
    elif after == "twice_rewrite":
        update_tile(cx, s)
        global_barrier(cx)
        store(cx, s, "Y")
    elif after == "twice_halves":
        # Two half tiles into the two halves of the block's tile (and of the first store).
        a = cx.shared("(bm, bn // 2)", stem="h")
        b = cx.shared("(bm, bn // 2)", stem="h")
        for h, off in ((a, "0"), (b, "bn // 2")):
            kt, mt = cx.value_map("half map")
            with cx.k.block("for i, j in T.Parallel(bm, bn // 2):"):
                cx.k(f"{h}[i, j] = {kt.format(v=f'{s}[i, j + {off}]')}")
            cx.m(f"{h} = {mt.format(v=f'{s}[:, {off}:{off} + bn // 2]')}")
        global_barrier(cx)
        cx.k(f"T.copy({a}, Y[{cx.r0}, {cx.c0}])")
        cx.k(f"T.copy({b}, Y[{cx.r0}, {cx.c0} + bn // 2])")
        cx.m(f"store_tile(Y, (r0, c0), {a})")
        cx.m(f"store_tile(Y, (r0, c0 + bn // 2), {b})")
    elif after == "generic_after":
        # Ordinary stores of the same elements after the TMA store: theirs must land last.
        global_barrier(cx)
        kt, mt = cx.value_map("generic map")
        with cx.k.block("for i, j in T.Parallel(bm, bn):"):
            with cx.k.block(f"with T.If(T.all({cx.r0} + i < M, {cx.c0} + j < N, i % 2 == 0)):"):
                cx.k(f"Y[{cx.r0} + i, {cx.c0} + j] = {kt.format(v=f'{s}[i, j]')} + 1")
        cx.m(
            f"store_tile(Y, (r0, c0), np.where(_I % 2 == 0, {mt.format(v=s)} + 1, "
            f"load_tile(Y, (r0, c0), (bm, bn))))"
        )
    elif after == "generic_before":
        # Ordinary stores into the tile of Y before the TMA store: the TMA store must land last.
        cx.k.lines, body = [], cx.k.lines
        cx.m.lines, mbody = [], cx.m.lines
        with cx.k.block("for i, j in T.Parallel(bm, bn):"):
            with cx.k.block(f"with T.If(T.all({cx.r0} + i < M, {cx.c0} + j < N)):"):
                cx.k(f"Y[{cx.r0} + i, {cx.c0} + j] = {_cast('i - j', cx.dtype)}")
        global_barrier(cx)
        cx.m("store_tile(Y, (r0, c0), _I - _J)")
        cx.k.lines += body
        cx.m.lines += mbody
    elif after == "readback":
        # The kernel reads back what its TMA store wrote (its own tile of Y).
        g = cx.frag()
        global_barrier(cx)
        cx.k(f"T.copy(Y[{cx.r0}, {cx.c0}], {g})")
        kt, mt = cx.value_map("readback map")
        with cx.k.block("for i, j in T.Parallel(bm, bn):"):
            cx.k(f"{g}[i, j] = {kt.format(v=f'{g}[i, j]')}")
        cx.k(f"T.copy({g}, Z[{cx.r0}, {cx.c0}])")
        cx.m(f"store_tile(Z, (r0, c0), {mt.format(v='load_tile(Y, (r0, c0), (bm, bn))')})")
        out.extra["Z"] = (cx.dtype, "(M, N)", (M, N))


def _reduce(cx: _Cx, out: _Out, s: str, M: int, N: int, gx: int, gy: int, shared_dst: bool) -> None:
    """A reduction of tile `s` along either dim, its result stored to R (rows) or C (columns)."""
    ch = cx.ch
    dim = ch.choice([1, 1, 0], "reduce dim")
    kind = ch.choice(["sum", "max", "min", "absmax"], "reduce kind")
    rdt = cx.dtype if kind != "sum" or cx.dtype == "int32" else "float32"
    if kind == "absmax" and cx.dtype == "int32":
        kind = "max"
    ext = "bm" if dim == 1 else "bn"
    r = cx.shared(f"({ext},)", rdt, "r") if shared_dst else cx.frag(f"({ext},)", rdt, "r")
    npred = {
        "sum": "{a}.sum(axis={d})",
        "max": "{a}.max(axis={d})",
        "min": "{a}.min(axis={d})",
        "absmax": "np.abs({a}).max(axis={d})",
    }[kind].format(a=s, d=dim)
    clear = ch.boolean(0.7, "reduce clear") or kind == "absmax"
    if not clear:
        cx.k(f"T.fill({r}, {_lit(2, rdt)})")
    cx.k(f"T.reduce_{kind}({s}, {r}, dim={dim}" + ("" if clear else ", clear=False") + ")")
    comb = {"sum": "2 + {x}", "max": "np.maximum(2, {x})", "min": "np.minimum(2, {x})"}
    cx.m(f"{r} = " + (npred if clear else comb[kind].format(x=npred)))
    if dim == 1:
        cx.k(f"T.copy({r}, R[bx, {cx.r0}])")
        cx.m(f"store_tile(R, (bx, r0), {r}[None, :])")
        out.extra["R"] = (rdt, "(T.ceildiv(N, bn), M)", (gx, M))
    else:
        cx.k(f"T.copy({r}, C[{cx.r0.split(' * ')[0]}, {cx.c0}])")
        cx.m(f"store_tile(C, ({cx.r0.split(' * ')[0]}, c0), {r}[None, :])")
        out.extra["C"] = (rdt, "(T.ceildiv(M, bm), N)", (gy, N))
    cx.feats.add(f"async-reduce-{kind}-dim{dim}-{'shared' if shared_dst else 'frag'}")
    if not clear:
        cx.feats.add("async-reduce-accumulate")


def sc_reduce(cx: _Cx, out: _Out, M: int, N: int, gx: int, gy: int) -> None:
    s = cx.shared()
    write_tile(cx, s)
    if cx.ch.boolean(0.5, "store first"):
        store(cx, s, "Y")
        _reduce(cx, out, s, M, N, gx, gy, shared_dst=cx.ch.boolean(0.7, "shared dst"))
    else:
        _reduce(cx, out, s, M, N, gx, gy, shared_dst=cx.ch.boolean(0.7, "shared dst"))
        store(cx, s, "Y")
        cx.feats.add("async-reduce-then-store")


def sc_inplace(cx: _Cx, out: _Out, M: int, N: int, gx: int, gy: int) -> None:
    s = cx.shared()
    write_tile(cx, s, "Y")
    update_tile(cx, s)
    store(cx, s, "Y")
    if cx.ch.boolean(0.4, "read back"):
        g = cx.frag()
        global_barrier(cx)
        cx.k(f"T.copy(Y[{cx.r0}, {cx.c0}], {g})")
        cx.k(f"T.copy({g}, Z[{cx.r0}, {cx.c0}])")
        cx.m("store_tile(Z, (r0, c0), load_tile(Y, (r0, c0), (bm, bn)))")
        out.extra["Z"] = (cx.dtype, "(M, N)", (M, N))
        cx.feats.add("async-inplace-readback")


def sc_pipeline(cx: _Cx, out: _Out, M: int, N: int, loop: str) -> None:
    """Each block walks the row tiles of its column tile: a TMA load into a stage (sm_90a), then
    a store of the stage, of another tile written from it, or of a fragment."""
    ch = cx.ch
    src = "Y" if ch.boolean(0.25, "load and store Y") else "X"
    t = cx.shared(stem="t")
    via = ch.weighted([("stage", 2.5), ("update", 1.0), ("other", 2.0), ("frag", 1.0)], "via")
    o = cx.shared(stem="o") if via == "other" else ""
    f = cx.frag() if via == "frag" else ""
    acc = cx.frag(dtype="float32", stem="acc") if ch.boolean(0.3, "accumulate") else ""
    if acc:
        cx.k(f"T.clear({acc})")
        cx.m(f"{acc} = np.zeros((bm, bn))")
    cx.feats |= {f"async-pipe-{via}", f"async-pipe-src-{src}"}
    kb, mb = cx.k.block(f"for k in {loop}:"), cx.m.block("for k in range(-(-M // bm)):")
    with kb, mb:
        cx.m("r0 = k * bm")
        cx.k(f"T.copy({src}[k * bm, {cx.c0}], {t})")
        cx.m(f"{t} = {cx.load(src)}")
        if acc:
            with cx.k.block("for i, j in T.Parallel(bm, bn):"):
                cx.k(f'{acc}[i, j] = {acc}[i, j] + T.cast({t}[i, j], "float32")')
            cx.m(f"{acc} = {acc} + {t}")
        if via == "update":
            update_tile(cx, t)
        if via in ("stage", "update"):
            store(cx, t, "Y")
        elif via == "other":
            pi, npi = _perm(ch, "i", "bm", cx.bm, "row perm")
            pj, npj = _perm(ch, "j", "bn", cx.bn, "col perm")
            kt, mt = cx.value_map("pipe map")
            with cx.k.block("for i, j in T.Parallel(bm, bn):"):
                cx.k(f"{o}[{pi}, {pj}] = {kt.format(v=f'{t}[i, j]')}")
            cx.m(f"{o} = np.zeros((bm, bn))")
            cx.m(f"{o}[np.ix_({npi}, {npj})] = {mt.format(v=t)}")
            store(cx, o, "Y")
        else:
            kt, mt = cx.value_map("pipe frag map")
            cx.k(f"T.copy({t}, {f})")
            with cx.k.block("for i, j in T.Parallel(bm, bn):"):
                cx.k(f"{f}[i, j] = {kt.format(v=f'{f}[i, j]')}")
            cx.k(f"T.copy({f}, Y[k * bm, {cx.c0}])")
            cx.m(f"store_tile(Y, (r0, c0), {mt.format(v=t)})")
    if acc:
        # The sum of the column tile's row tiles, stored through shared memory after the loop.
        p = cx.shared(dtype="float32", stem="p")
        cx.k(f"T.copy({acc}, {p})")
        cx.k(f"T.copy({p}, S[0, {cx.c0}])")
        cx.m(f"store_tile(S, (0, c0), {acc})")
        out.extra["S"] = ("float32", "(bm, N)", (cx.bm, N))
        cx.feats.add("async-pipe-accumulate")


def sc_rewrite(cx: _Cx, out: _Out, M: int, N: int, loop: str) -> None:
    """One tile rewritten and stored per row tile; maybe read after the loop (the last tile)."""
    s = cx.shared()
    kb, mb = cx.k.block(f"for k in {loop}:"), cx.m.block("for k in range(-(-M // bm)):")
    with kb, mb:
        cx.m("r0 = k * bm")
        cx.m("_V = (r0 + _I < M) & (c0 + _J < N)")
        write_tile(cx, s)
        if cx.ch.boolean(0.3, "update in loop"):
            update_tile(cx, s)
        store(cx, s, "Y")
    if cx.ch.boolean(0.4, "read after loop"):
        g = cx.frag()
        cx.k(f"T.copy({s}, {g})")
        cx.k(f"T.copy({g}, L[0, {cx.c0}])")
        cx.m(f"store_tile(L, (0, c0), {s})")
        out.extra["L"] = (cx.dtype, "(bm, N)", (cx.bm, N))
        cx.feats.add("async-rewrite-read-after")


# -- the program ---------------------------------------------------------------------------------


def _sizes(ch: Chooser, dtype: str, threads: int) -> tuple[int, int]:
    """A tile of at most 4096 elements; rows in multiples of 8 per warpgroup are likelier."""
    groups = max(1, threads // 128)
    rows = [8, 16, 24, 32, 48, 64, 8 * groups, 16 * groups]
    bm = ch.choice(rows, "bm")
    cols = [16, 32, 64, 96, 128] + ([192] if dtype in ("float16", "bfloat16") else [])
    bn = ch.choice(cols, "bn")
    while bm * bn > 4096:
        bm //= 2
    return bm, bn


def gen_async(ch: Chooser, seed: int) -> Program:
    threads = ch.weighted(THREADS, "threads")
    dtype = ch.choice(DTYPES, "dtype")
    bm, bn = _sizes(ch, dtype, threads)
    scenario = ch.weighted(
        [("store", 3.0), ("reduce", 1.5), ("pipeline", 2.0), ("rewrite", 1.5), ("inplace", 1.0)],
        "scenario",
    )
    walk = scenario in ("pipeline", "rewrite")
    ragged = ch.boolean(0.6, "ragged")
    gx = ch.integer(1, 2, "gx")
    gy = ch.integer(1, 3 if walk else 2, "gy")
    M = gy * bm - (ch.integer(0, bm - 1, "rm") if ragged else 0)
    # A tensor map needs rows of a multiple of 16 bytes: most ragged N keep that (TMA then clips
    # at the edge), the others take the element-wise fallback.
    step = 16 // (2 if dtype in ("float16", "bfloat16") else 4)
    if ragged and ch.boolean(0.8, "16-byte rows"):
        N = gx * bn - step * ch.integer(0, (bn - 1) // step, "rn")
    else:
        N = gx * bn - (ch.integer(0, bn - 1, "rn") if ragged else 0)
    dyn_m = ch.boolean(0.3, "dynamic M")
    cx = _Cx(ch, bm, bn, dtype, threads)
    out = _Out()
    cx.feats |= {
        f"async-{scenario}",
        f"threads{threads}",
        f"async-{dtype}",
        f"async-bm{bm}",
        f"async-bn{bn}",
    }
    if ragged:
        cx.feats.add("ragged")
    if walk:
        cx.r0 = "k * bm"
        kind = ch.weighted([("serial", 1.0), ("unroll", 0.3), ("pipelined", 2.0)], "loop")
        if kind == "pipelined":
            ns = ch.weighted([(0, 0.5), (1, 0.5), (2, 2.0), (3, 1.5)], "num_stages")
            ws = "" if ch.boolean(0.6, "warp specialize") else ", warp_specialize=False"
            loop = f"T.Pipelined(T.ceildiv(M, bm), num_stages={ns}{ws})"
            cx.feats.add(f"async-loop-pipelined{ns}" + ("-nows" if ws else ""))
        else:
            loop = f"T.{kind}(T.ceildiv(M, bm))"
            cx.feats.add(f"async-loop-{kind}")
        (sc_pipeline if scenario == "pipeline" else sc_rewrite)(cx, out, M, N, loop)
    else:
        {"store": sc_store, "reduce": sc_reduce, "inplace": sc_inplace}[scenario](
            cx, out, M, N, gx, gy
        )
    params = [ParamSpec("X", dtype, (M, N)), ParamSpec("Y", dtype, (M, N), output=True)]
    for name, (dt, _, shape) in out.extra.items():
        params.append(ParamSpec(name, dt, shape, output=True))
    kernel = Src()
    kernel(f"bm, bn = {bm}, {bn}")
    with kernel.block('with T.prim_func("fz_async") as f:'):
        kernel('M = T.dynamic("M")' if dyn_m else f"M = {M}")
        kernel(f"N = {N}")
        kernel(f'X = T.param("X", (M, N), "{dtype}")')
        kernel(f'Y = T.param("Y", (M, N), "{dtype}")')
        for name, (dt, dims, _) in out.extra.items():
            kernel(f'{name} = T.param("{name}", {dims}, "{dt}")')
        if walk:
            header = f"with T.Kernel(T.ceildiv(N, bn), threads={threads}) as bx:"
        else:
            header = (
                f"with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads={threads}) as (bx, by):"
            )
        with kernel.block(header):
            kernel.extend(cx.decl)
            kernel.extend(cx.k)
    kernel("return f.func")
    model = Src()
    model(f"bm, bn = {bm}, {bn}")
    model("M, N = X.shape")
    model('_I, _J = np.meshgrid(np.arange(bm), np.arange(bn), indexing="ij")')
    if walk:
        with model.block("for bx in range(-(-N // bn)):"):
            model("c0 = bx * bn")
            model.extend(cx.m)
    else:
        with model.block("for by in range(-(-M // bm)):"):
            with model.block("for bx in range(-(-N // bn)):"):
                model("r0, c0 = by * bm, bx * bn")
                model("_V = (r0 + _I < M) & (c0 + _J < N)")
                model.extend(cx.m)
    return Program("async", seed, kernel.text(), model.text(), params, {}, cx.feats)
