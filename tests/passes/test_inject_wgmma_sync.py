"""InjectWgmmaSync: wgmma fences, commits and waits placed for the whole kernel, waits where the
results or the operand tiles are needed, a ring loop's consecutive batches overlapping
(Before/Expected, CONVENTIONS 16). The meaning at every stage of real programs is checked against
the interpreter in tests/hopper/test_gemm_tile_program.py."""

from __future__ import annotations

from tsir.passes import PassContext, get

import tsir
from tsir import T

SM90 = PassContext(tsir.Target.parse("sm_90a"))
SS = "wgmma_ss<tsir::kWgmmaF16, 64, 0, 0>"


def run(func: tsir.PrimFunc) -> tsir.PrimFunc:
    return get("InjectWgmmaSync")(func, SM90)


def wg(fn: str, *args: object) -> None:
    T.evaluate(T.call_intrin("int32", f"tsir.wgmma.{fn}", *args))


def mb(fn: str, *args: object) -> None:
    T.evaluate(T.call_intrin("int32", f"tsir.mbarrier.{fn}", *args))


def u32(load: object) -> object:
    return T.call_intrin(
        "uint32", "tsir.mbarrier.shared_u32", T.call_intrin("handle", "address_of", load)
    )


def addr(load: object) -> object:
    return T.call_intrin("handle", "address_of", load)


def desc(load: object) -> object:
    return T.call_intrin("uint64", "tsir.wgmma.wgmma_desc", u32(load), 16, 512, 2)


def issue(acc: object, A_s: object, B_s: object) -> None:
    wg(SS, addr(acc[0]), desc(A_s[0, 0]), desc(B_s[0, 0]), 1)  # type: ignore[index]


def pin(acc: object) -> None:
    wg("wgmma_fence_operands<32>", addr(acc[0]))  # type: ignore[index]


def lowered_gemm(acc: object, A_s: object, B_s: object) -> None:
    """A gemm as its lowering leaves it: complete on its own."""
    with T.attr("tile_op", "tl.Gemm"):
        pin(acc)
        wg("wgmma_fence")
        issue(acc, A_s, B_s)
        wg("wgmma_commit")
        wg("wgmma_wait<0>")
        pin(acc)


def serial_gemm(synced: bool) -> tsir.PrimFunc:
    with T.prim_func("f") as f:
        A = T.param("A", (64, 64), "float16")
        C = T.param("C", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            A_s = T.alloc_shared((64, 32), "float16")
            B_s = T.alloc_shared((64, 32), "float16")
            acc = T.alloc_local((32,), "float32")
            for i in T.serial(32):
                acc[i] = 0.0
            for k in T.serial(2):
                if synced:
                    wg("wgmma_wait<0>")
                    pin(acc)
                with T.attr("tile_op", "tl.Copy"):
                    A_s[tx // 2, tx % 2] = A[tx // 2, k * 32 + tx % 2]
                if synced:
                    pin(acc)
                    wg("wgmma_fence")
                    with T.attr("tile_op", "tl.Gemm"):
                        issue(acc, A_s, B_s)
                    wg("wgmma_commit")
                else:
                    lowered_gemm(acc, A_s, B_s)
            if synced:
                wg("wgmma_wait<0>")
                pin(acc)
            C[tx] = acc[0]
    return f.func


def test_the_wait_moves_to_the_next_write_of_an_operand_and_the_first_read_of_the_result() -> None:
    """The gemm keeps its fence and commit; its wait goes where the next iteration's copy
    overwrites its operand tile (nothing pending on the first iteration: a no-op) and, after the
    loop, before the accumulator is read."""
    tsir.assert_structural_equal(run(serial_gemm(False)), serial_gemm(True))


def ring_gemm(synced: bool) -> tsir.PrimFunc:
    with T.prim_func("f") as f:
        C = T.param("C", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            full = T.alloc_buffer((2,), "uint64", scope="shared", align=8)
            empty = T.alloc_buffer((2,), "uint64", scope="shared", align=8)
            A_s = T.alloc_buffer((2, 64, 32), "float16", scope="shared", align=1024)
            B_s = T.alloc_buffer((2, 64, 32), "float16", scope="shared", align=1024)
            acc = T.alloc_local((32,), "float32")

            def produce(j: object) -> None:
                with T.If(tx == 0):
                    mb("mbarrier_wait", u32(empty[j % 2]), (j // 2 + 1) % 2)  # type: ignore[operator]

            def release(j: object) -> None:
                stage = tsir.FloorMod(j, T.int32(2)) if isinstance(j, tsir.IntImm) else j % 2  # type: ignore[operator]
                with T.attr("ring_release", j):
                    with T.If(tx % 32 == 0):
                        mb("mbarrier_arrive", u32(empty[stage]))

            def gemm(k: object) -> None:
                if synced:
                    pin(acc)
                    wg("wgmma_fence")
                    with T.attr("tile_op", "tl.Gemm"):
                        wg(SS, addr(acc[0]), desc(A_s[k % 2, 0, 0]), desc(B_s[k % 2, 0, 0]), 1)  # type: ignore[operator]
                    wg("wgmma_commit")
                else:
                    with T.attr("tile_op", "tl.Gemm"):
                        pin(acc)
                        wg("wgmma_fence")
                        wg(SS, addr(acc[0]), desc(A_s[k % 2, 0, 0]), desc(B_s[k % 2, 0, 0]), 1)  # type: ignore[operator]
                        wg("wgmma_commit")
                        wg("wgmma_wait<0>")
                        pin(acc)

            with T.attr("pipeline_buffers", (A_s, B_s)):
                with T.attr("mbarrier_ring", (full, empty, 2, True)):
                    for k in T.serial(8):
                        if not synced:
                            with T.If(k < 7):
                                with T.attr("ring_produce", k + 1):
                                    produce(k + 1)
                        mb("mbarrier_wait", u32(full[k % 2]), k // 2 % 2)
                        gemm(k)
                        if synced:
                            wg("wgmma_wait<1>")
                            pin(acc)
                            with T.If(k > 0):
                                release(k - 1)
                            with T.If(k < 7):
                                with T.attr("ring_produce", k + 1):
                                    produce(k + 1)
                        else:
                            release(k)
                    if synced:
                        wg("wgmma_wait<0>")
                        pin(acc)
                        release(T.int32(7))  # k := 7, not yet simplified
            C[tx] = acc[0]
    return f.func


def _strip_ring_markers(func: tsir.PrimFunc) -> tsir.PrimFunc:
    from tsir.stmt import AttrStmt
    from tsir.visitor import Mutator

    class Strip(Mutator):
        def visit_AttrStmt(self, s: AttrStmt):  # type: ignore[no-untyped-def]
            if s.key in ("mbarrier_ring", "ring_produce", "ring_release"):
                return self.visit(s.body)
            return self.generic_visit(s)

    return Strip().visit(func)  # type: ignore[no-any-return]


def test_a_ring_loop_releases_each_stage_one_iteration_later() -> None:
    """Two batches in flight: iteration k issues its batch, waits until one group is pending
    (k - 1's retires), releases stage k - 1, and only then refills it (the producer waits for that
    release, so it moves after it); the last stage is released after the loop. The ring's markers
    are dropped."""
    tsir.assert_structural_equal(run(ring_gemm(False)), _strip_ring_markers(ring_gemm(True)))


def test_a_hand_synchronized_kernel_is_left_as_written() -> None:
    f = serial_gemm(True)
    tsir.assert_structural_equal(run(f), f)


def explicit_sync(synced: bool) -> tsir.PrimFunc:
    """A gemm followed by the program's own barrier, then the next iteration's copy."""
    with T.prim_func("f") as f:
        A = T.param("A", (64, 64), "float16")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            A_s = T.alloc_shared((64, 32), "float16")
            B_s = T.alloc_shared((64, 32), "float16")
            acc = T.alloc_local((32,), "float32")
            for k in T.serial(2):
                with T.attr("tile_op", "tl.Copy"):
                    A_s[tx // 2, tx % 2] = A[tx // 2, k * 32 + tx % 2]
                if synced:
                    pin(acc)
                    wg("wgmma_fence")
                    with T.attr("tile_op", "tl.Gemm"):
                        issue(acc, A_s, B_s)
                    wg("wgmma_commit")
                    wg("wgmma_wait<0>")
                    pin(acc)
                else:
                    lowered_gemm(acc, A_s, B_s)
                T.sync_threads()
    return f.func


def test_a_group_whose_tile_others_rewrite_retires_before_a_barrier() -> None:
    """Found by the fuzzer: a warpgroup's wait orders only its own reads, so a group reading a tile
    that other threads overwrite after the program's barrier retires before that barrier (and
    nothing is pending at the next copy)."""
    tsir.assert_structural_equal(run(explicit_sync(False)), explicit_sync(True))


def test_register_a_operands_are_pinned_as_32_bit_words() -> None:
    """wgmma_rs reads its A registers until the group retires, so they are pinned with the
    accumulator; 16 fp16 values are 8 registers (`wgmma_fence_operands_u32<8>`), never an fp32
    view of 16 (which would reach past the array)."""
    rs = "wgmma_rs<tsir::kWgmmaF16, 64, 1>"
    with T.prim_func("f") as f:
        C = T.param("C", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            B_s = T.alloc_shared((64, 64), "float16")
            a = T.alloc_local((16,), "float16")
            acc = T.alloc_local((32,), "float32")
            for i in T.serial(16):
                a[i] = T.float16(1.0)
            with T.attr("tile_op", "tl.Gemm"):
                wg(rs, addr(acc[0]), addr(a[0]), desc(B_s[0, 0]), 0)
                wg(rs, addr(acc[0]), addr(a[8]), desc(B_s[16, 0]), 1)
            C[tx] = acc[0]
    text = str(run(f.func))
    pin_a = '"tsir.wgmma.wgmma_fence_operands_u32<8>", T.call_intrin("handle", "address_of", a[0])'
    assert text.count(pin_a) == 2
    assert "wgmma_fence_operands<16>" not in text
    assert text.index("wgmma_wait<0>") < text.index("C[tx] = acc[0]")


def softmax_beside_pv(synced: bool, rescale_first: bool, uniform: bool = True) -> tsir.PrimFunc:
    """S = A B (group 1), then O = A B (group 2), then an `if` that reads S and rescales O:
    FlashAttention's softmax of S(j+1) beside P(j) V(j). `uniform`: the `if` tests the block's
    index; else a register value, which the threads of the warpgroup may see differently."""
    with T.prim_func("f") as f:
        C = T.param("C", (256,), "float32")
        with T.Kernel(2, threads=128) as bx:
            tx = T.get_thread_binding(0)
            A_s = T.alloc_shared((64, 32), "float16")
            B_s = T.alloc_shared((64, 32), "float16")
            s_acc = T.alloc_local((32,), "float32")
            o_acc = T.alloc_local((32,), "float32")
            x = T.alloc_local((1,), "float32")
            inside = uniform and not rescale_first

            def gemm(acc: object) -> None:
                if synced:
                    pin(acc)
                    wg("wgmma_fence")
                    with T.attr("tile_op", "tl.Gemm"):
                        issue(acc, A_s, B_s)
                    wg("wgmma_commit")
                else:
                    lowered_gemm(acc, A_s, B_s)

            def wait(keep: int, *accs: object) -> None:
                if synced:
                    wg(f"wgmma_wait<{keep}>")
                    for acc in accs:
                        pin(acc)

            gemm(s_acc)
            x[0] = T.cast(tx, "float32")
            gemm(o_acc)
            if not inside:
                wait(0, o_acc, s_acc)
            with T.If(bx == 0 if uniform else x[0] > 3.0):
                if rescale_first:
                    o_acc[0] = o_acc[0] * 2.0
                    x[0] = s_acc[0]
                else:
                    if inside:
                        wait(1, s_acc)
                    x[0] = s_acc[0]
                    if inside:
                        wait(0, o_acc)
                    o_acc[0] = o_acc[0] * 2.0
            if inside:
                wait(0, o_acc, s_acc)
            C[bx * 128 + tx] = o_acc[0] + x[0]
    return f.func


def test_a_uniform_if_waits_inside_when_its_first_statement_needs_less() -> None:
    """The `if` reads S first and O later: S's group retires inside it (`wait<1>`, O's group still
    in flight), O's at the rescale; the path that skips the `if` retires both before C's store."""
    tsir.assert_structural_equal(
        run(softmax_beside_pv(False, False)), softmax_beside_pv(True, False)
    )


def test_an_if_that_needs_everything_first_or_diverges_waits_before_it() -> None:
    """The `if` rescales O first (waiting inside would gain nothing), or its threads may take it
    differently (`wgmma_wait` is `.sync.aligned`): one wait before it."""
    tsir.assert_structural_equal(run(softmax_beside_pv(False, True)), softmax_beside_pv(True, True))
    tsir.assert_structural_equal(
        run(softmax_beside_pv(False, False, uniform=False)),
        softmax_beside_pv(True, False, uniform=False),
    )
