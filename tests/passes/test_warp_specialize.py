"""WarpSpecialize: a kernel around an mbarrier ring becomes a producer warpgroup (the ring's copies,
free-running) and consumer warpgroups (everything else, on threads shifted by 128), with
setmaxnreg rebalancing registers (Before/Expected, CONVENTIONS 16). The split kernels' meaning is
checked against the interpreter in tests/hopper/test_gemm_tile_program.py."""

from __future__ import annotations

from tsir.passes import PassContext, get

import tsir
from tsir import T

SM90 = PassContext(tsir.Target.parse("sm_90a"))


def mb(fn: str, *args: object) -> None:
    T.evaluate(T.call_intrin("int32", f"tsir.mbarrier.{fn}", *args))


def u32(load: object) -> object:
    return T.call_intrin(
        "uint32", "tsir.mbarrier.shared_u32", T.call_intrin("handle", "address_of", load)
    )


def ring_kernel(split: bool, threads: int = 128, touch: str = "") -> tsir.PrimFunc:
    """A ring of 2 stages over 4 iterations, as the pipeliner and LowerTileOp leave it (`split`:
    as WarpSpecialize should leave it). `touch`: "before"/"after" reads the ring's tile `A_s`
    before/after the ring, "source" reads its copies' source `A` before it."""
    with T.prim_func("f") as f:
        A = T.param("A", (64, 256), "float16")
        C = T.param("C", (threads,), "float32")
        with T.Kernel(1, threads=threads + 128 if split else threads):
            tx = T.get_thread_binding(0)
            full = T.alloc_buffer((2,), "uint64", scope="shared", align=8)
            empty = T.alloc_buffer((2,), "uint64", scope="shared", align=8)
            A_s = T.alloc_buffer((2, 64, 64), "float16", scope="shared", align=1024)
            acc = T.alloc_local((32,), "float32")

            def produce(j: object) -> None:
                with T.If(tx == 0):
                    mb("mbarrier_wait", u32(empty[j % 2]), (j // 2 + 1) % 2)  # type: ignore[operator]
                    mb("mbarrier_arrive_expect_tx", u32(full[j % 2]), 8192)  # type: ignore[operator]
                with T.attr("tile_op", "tl.Copy"):
                    with T.If(tx == 0):
                        tmap = T.call_intrin(
                            "handle",
                            "tma_descriptor",
                            T.call_intrin("handle", "address_of", A[0, 0]),
                            64,
                            64,
                            128,
                        )
                        T.evaluate(
                            T.call_intrin(
                                "int32",
                                "tsir.tma.tma_load_2d",
                                u32(A_s[j % 2, 0, 0]),
                                tmap,  # type: ignore[operator]
                                u32(full[j % 2]),
                                j * 64,
                                0,  # type: ignore[operator]
                            )
                        )

            def init() -> None:
                with T.If(tx == 0):
                    for s in T.unroll(2):
                        mb("mbarrier_init", u32(full[s]), 1)
                        mb("mbarrier_init", u32(empty[s]), threads // 32)
                    mb("mbarrier_init_fence")
                T.sync_threads()

            def consume(t: object) -> None:
                for i in T.serial(32):
                    acc[i] = 0.0
                if touch == "before":
                    acc[1] = T.cast(A_s[0, t // 2, 1], "float32")  # type: ignore[operator]
                if touch == "source":
                    acc[1] = T.cast(A[t // 2, 1], "float32")  # type: ignore[operator]
                with T.attr("pipeline_buffers", (A_s,)):
                    with T.attr("mbarrier_ring", (full, empty, 2, True)):
                        if not split:
                            init()
                            with T.attr("ring_produce", 0):
                                produce(0)
                        for k in T.serial(4):
                            if not split:
                                with T.If(k < 3):
                                    with T.attr("ring_produce", k + 1):
                                        produce(k + 1)
                            mb("mbarrier_wait", u32(full[k % 2]), k // 2 % 2)
                            acc[0] = acc[0] + T.cast(A_s[k % 2, t // 2, 0], "float32")  # type: ignore[operator]
                            with T.attr("ring_release", k):
                                T.sync_warp()
                                with T.If(t % 32 == 0):  # type: ignore[operator]
                                    mb("mbarrier_arrive", u32(empty[k % 2]))
                if touch == "after":
                    acc[1] = T.cast(A_s[1, t // 2, 1], "float32")  # type: ignore[operator]
                C[t] = acc[0] + acc[1]

            if not split:
                consume(tx)
            else:
                init()
                with T.If(tx < 128):
                    with T.attr("thread_range", (0, 128, 2)):
                        mb("setmaxnreg_dec<40>")
                        with T.If(tx == 0):
                            for k_p in T.serial(-1, 3):
                                with T.attr("ring_produce", k_p + 1):
                                    produce(k_p + 1)
                with T.Else():
                    with T.attr("thread_range", (128, threads + 128, 1)):
                        mb(f"setmaxnreg_inc<{240 if threads == 128 else 232}>")
                        consume(tx - 128)
    return f.func


def test_the_ring_splits_into_a_producer_and_consumers() -> None:
    """The barriers are initialised before the split; warpgroup 0 gives registers back and one of
    its threads issues every iteration's copies (iterations -1..2 of the loop's `produce(k + 1)`:
    the prologue's and the loop's), bounded only by the ring's barriers; the original threads,
    now 128.., take registers and run the rest without the produce steps, their thread index
    shifted."""
    out = get("WarpSpecialize")(ring_kernel(False), SM90)
    tsir.assert_structural_equal(out, ring_kernel(True))


def test_two_consumer_warpgroups_share_the_registers_the_producer_gives_back() -> None:
    out = get("WarpSpecialize")(ring_kernel(False, threads=256), SM90)
    tsir.assert_structural_equal(out, ring_kernel(True, threads=256))


def test_no_split_without_setmaxnreg_and_the_report_says_why() -> None:
    ctx = PassContext(tsir.Target.parse("sm_90"))
    f = ring_kernel(False)
    out = get("WarpSpecialize")(f, ctx)
    tsir.assert_structural_equal(out, f)
    assert [d.message for d in ctx.report] == [
        "kernel `f_kernel` is not warp-specialized: sm_90 has no setmaxnreg (sm_90a)"
    ]


def test_warp_specialization_can_be_turned_off() -> None:
    from tsir.stmt import AttrStmt
    from tsir.visitor import Mutator

    class Off(Mutator):
        def visit_AttrStmt(self, s: AttrStmt):  # type: ignore[no-untyped-def]
            s = self.generic_visit(s)
            return s.replace(value=(*s.value[:3], False)) if s.key == "mbarrier_ring" else s

    f = Off().visit(ring_kernel(False))
    ctx = PassContext(tsir.Target.parse("sm_90a"))
    tsir.assert_structural_equal(get("WarpSpecialize")(f, ctx), f)
    assert "warp specialization is turned off" in str(ctx.report[0])


def test_a_persistent_ring_continues_its_position_not_its_coordinates() -> None:
    """In a persistent kernel the ring's stage (`% stages`) and round (`// stages`) of iteration k
    of tile i are those of iteration i * n + k; the tile's own uses of k (coordinates) stay."""
    from tsir.passes.warp_specialize import _RingShift

    from tsir.expr import Var

    k, i = Var("k"), Var("i")
    shift = _RingShift(k, i * 4, 3)
    stage, parity, coord = (k + 2) % 3, ((k + 2) // 3 + 1) % 2, k * 64 + (k % 2)
    tsir.assert_structural_equal(shift.visit(stage), (k + i * 4 + 2) % 3)
    tsir.assert_structural_equal(shift.visit(parity), ((k + i * 4 + 2) // 3 + 1) % 2)
    tsir.assert_structural_equal(shift.visit(coord), coord)


def test_a_persistent_kernel_loops_over_its_tiles_in_both_warpgroups() -> None:
    """T.Kernel(persistent=True): min(tiles, 132) blocks; each warpgroup binds (bx, by) per tile
    (its own copies for the producer) inside a loop over the block's tiles."""
    from tsir.stmt import AttrStmt, For, KernelLaunch, LetStmt
    from tsir.visitor import Mutator, collect

    class Persistent(Mutator):
        def visit_KernelLaunch(self, k: KernelLaunch):  # type: ignore[no-untyped-def]
            return k.replace(grid=(T.int32(300),), body=AttrStmt("persistent", True, k.body))

    out = get("WarpSpecialize")(Persistent().visit(ring_kernel(False)), SM90)
    (kernel,) = collect(out, KernelLaunch)
    assert kernel.grid[0].value == 132 and [v.name for v in kernel.block_vars] == ["pid"]
    tiles = [f for f in collect(kernel.body, For) if f.loop_var.name in ("tile", "tile_p")]
    assert sorted(f.loop_var.name for f in tiles) == ["tile", "tile_p"]
    assert sorted(l.var.name for l in collect(kernel.body, LetStmt)) == ["bx", "bx_p"]
    assert not [a for a in collect(kernel.body, AttrStmt) if a.key == "persistent"]


def _persistent(f: tsir.PrimFunc) -> tsir.PrimFunc:
    from tsir.stmt import AttrStmt, KernelLaunch
    from tsir.visitor import Mutator

    class Persistent(Mutator):
        def visit_KernelLaunch(self, k: KernelLaunch):  # type: ignore[no-untyped-def]
            return k.replace(grid=(T.int32(300),), body=AttrStmt("persistent", True, k.body))

    return Persistent().visit(f)


def test_a_ring_tile_used_before_the_ring_keeps_the_kernel_unsplit() -> None:
    """The producer starts filling the ring at once: a tile the consumers still use before the
    pipelined loop (a staging buffer reused by an earlier loop) would be overwritten under them,
    with no barrier between (fuzz seeds 7000369, 7001068). The kernel stays as it is."""
    ctx = PassContext(tsir.Target.parse("sm_90a"))
    f = ring_kernel(False, touch="before")
    tsir.assert_structural_equal(get("WarpSpecialize")(f, ctx), f)
    assert [d.message for d in ctx.report] == [
        (
            "kernel `f_kernel` is not warp-specialized: `A_s`, which the ring's copies use, is "
            "also accessed before the pipelined loop: the producer warpgroup would fill it while "
            "the consumers still use it"
        )
    ]


def test_reading_the_copies_source_or_the_tile_after_the_ring_still_splits() -> None:
    """Reading the global source before the ring races with nothing, nor does reading a tile after
    the ring (every copy has landed: the consumers waited for each)."""
    from tsir.stmt import AttrStmt
    from tsir.visitor import collect

    for touch in ("source", "after"):
        ctx = PassContext(tsir.Target.parse("sm_90a"))
        out = get("WarpSpecialize")(ring_kernel(False, touch=touch), ctx)
        assert not ctx.report, touch
        assert [a.value[:2] for a in collect(out, AttrStmt) if a.key == "thread_range"] == [
            (0, 128),
            (128, 256),
        ]


def test_a_persistent_kernel_reading_a_ring_tile_after_the_ring_stays_unsplit() -> None:
    """Persistent, the producer fills the next tile's stages while the consumers finish this
    tile: a tile read after the loop could already hold the next tile's data."""
    ctx = PassContext(tsir.Target.parse("sm_90a"))
    f = _persistent(ring_kernel(False, touch="after"))
    out = get("WarpSpecialize")(f, ctx)
    assert "`A_s`, which the ring's copies use, is also accessed outside the pipelined loop" in (
        ctx.report[0].message
    )
    assert "thread_range" not in str(out)
