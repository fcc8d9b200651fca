"""The script forms build the same IR as the builder: each kernel written three ways (builder,
classic `@T.prim_func`, TileLang's `@tilelang.jit` body) compares structurally equal."""

from tsir import T
from tsir.compat.tilelang import language as TL
from tsir.script import Tensor, build_jit, macro
from tsir.structural import assert_structural_equal

M, N, K = 256, 512, 128


def builder_elementwise():
    with T.prim_func("add") as f:
        A = T.param("A", (M, N), "float32")
        B = T.param("B", (M, N), "float32")
        C = T.param("C", (M, N), "float32")
        with T.Kernel(N // 64, M // 32, threads=128) as (bx, by):
            for i, j in T.Parallel(32, 64):
                C[by * 32 + i, bx * 64 + j] = (
                    A[by * 32 + i, bx * 64 + j] + B[by * 32 + i, bx * 64 + j]
                )
    return f.func


def test_elementwise_classic_and_jit_match_builder():
    """A closure constant, T.Parallel and element stores, in both script forms."""
    bm = 32

    @T.prim_func
    def add(
        A: Tensor((M, N), "float32"), B: Tensor((M, N), "float32"), C: Tensor((M, N), "float32")
    ):
        with T.Kernel(N // 64, M // bm, threads=128) as (bx, by):
            for i, j in T.Parallel(bm, 64):
                C[by * bm + i, bx * 64 + j] = (
                    A[by * bm + i, bx * 64 + j] + B[by * bm + i, bx * 64 + j]
                )

    classic = add

    def add(A, B, block_M, dtype=TL.float32):  # noqa: F811  (the jit form of the same kernel)
        Mc, Nc = TL.const("Mc, Nc")
        A: TL.Tensor((Mc, Nc), dtype)
        B: TL.Tensor((Mc, Nc), dtype)
        C = TL.empty((Mc, Nc), dtype)
        with TL.Kernel(Nc // 64, Mc // block_M, threads=128) as (bx, by):
            for i, j in TL.Parallel(block_M, 64):
                C[by * block_M + i, bx * 64 + j] = (
                    A[by * block_M + i, bx * 64 + j] + B[by * block_M + i, bx * 64 + j]
                )
        return C

    assert_structural_equal(classic, builder_elementwise())
    built = build_jit(add, (None, None, 32), {"Mc": M, "Nc": N})
    assert_structural_equal(built.func, builder_elementwise())
    assert built.outputs == ["C"] and built.inputs == ["A", "B"]


def builder_gemm():
    with T.prim_func("gemm") as f:
        A = T.param("A", (M, K), "float16")
        B = T.param("B", (K, N), "float16")
        C = T.param("C", (M, N), "float16")
        with T.Kernel(N // 128, M // 128, threads=128) as (bx, by):
            A_s = T.alloc_shared((128, 32), "float16")
            B_s = T.alloc_shared((32, 128), "float16")
            C_f = T.alloc_fragment((128, 128), "float32")
            T.clear(C_f)
            for k in T.Pipelined(K // 32, num_stages=3):
                T.copy(A[by * 128, k * 32], A_s)
                T.copy(B[k * 32, bx * 128], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C[by * 128, bx * 128])
    return f.func


def test_gemm_jit_form_matches_builder():
    """T.const dims bound from tensor shapes, T.Pipelined, T.gemm, `return C`."""

    def gemm(A, B, block_M, block_N, block_K, dtype=TL.float16, accum_dtype=TL.float):
        M, N, K = TL.const("M, N, K")
        A: TL.Tensor((M, K), dtype)
        B: TL.Tensor((K, N), dtype)
        C = TL.empty((M, N), dtype)
        with TL.Kernel(TL.ceildiv(N, block_N), TL.ceildiv(M, block_M), threads=128) as (bx, by):
            A_s = TL.alloc_shared((block_M, block_K), dtype)
            B_s = TL.alloc_shared((block_K, block_N), dtype)
            C_f = TL.alloc_fragment((block_M, block_N), accum_dtype)
            TL.clear(C_f)
            for k in TL.Pipelined(TL.ceildiv(K, block_K), num_stages=3):
                TL.copy(A[by * block_M, k * block_K], A_s)
                TL.copy(B[k * block_K, bx * block_N], B_s)
                TL.gemm(A_s, B_s, C_f)
            TL.copy(C_f, C[by * block_M, bx * block_N])
        return C

    import numpy as np

    a, b = np.zeros((M, K), np.float16), np.zeros((K, N), np.float16)
    built = build_jit(gemm, (a, b, 128, 128, 32), {})
    assert_structural_equal(built.func, builder_gemm())


def builder_softmax(n=1024):
    with T.prim_func("softmax") as f:
        X = T.param("X", (64, n), "float32")
        Y = T.param("Y", (64, n), "float32")
        with T.Kernel(64, threads=256) as bx:
            x = T.alloc_fragment((1, n), "float32")
            mx = T.alloc_fragment((1,), "float32")
            s = T.alloc_fragment((1,), "float32")
            T.copy(X[bx, 0], x)
            T.reduce_max(x, mx, dim=1)
            for i, j in T.Parallel(1, n):
                x[i, j] = T.exp(x[i, j] - mx[i])
            T.reduce_sum(x, s, dim=1)
            for i, j in T.Parallel(1, n):
                x[i, j] = x[i, j] / s[i]
            T.copy(x, Y[bx, 0])
    return f.func


def test_softmax_classic_matches_builder():
    """Reductions into fragments and T.Parallel nests, one row per block."""
    n = 1024

    @TL.prim_func
    def softmax(X: TL.Tensor((64, n), "float32"), Y: TL.Tensor((64, n), "float32")):
        with TL.Kernel(64, threads=256) as bx:
            x = TL.alloc_fragment((1, n), "float32")
            mx = TL.alloc_fragment((1,), "float32")
            s = TL.alloc_fragment((1,), "float32")
            TL.copy(X[bx, 0], x)
            TL.reduce_max(x, mx, dim=1)
            for i, j in TL.Parallel(1, n):
                x[i, j] = TL.exp(x[i, j] - mx[i])
            TL.reduce_sum(x, s, dim=1)
            for i, j in TL.Parallel(1, n):
                x[i, j] = x[i, j] / s[i]
            TL.copy(x, Y[bx, 0])

    assert_structural_equal(softmax, builder_softmax())


def test_layer_norm_classic_matches_builder():
    """A macro helper, augmented assignment on fragments and a slice whose stop is (bx + 1) * n."""
    n, eps = 512, 1e-5

    with T.prim_func("ln") as f:
        X = T.param("X", (32, n), "float32")
        Y = T.param("Y", (32, n), "float32")
        with T.Kernel(32, threads=128) as bx:
            x = T.alloc_fragment((1, n), "float32")
            mean = T.alloc_fragment((1,), "float32")
            var = T.alloc_fragment((1,), "float32")
            sq = T.alloc_fragment((1, n), "float32")
            T.copy(X[bx : bx + 1, :], x)
            T.reduce_sum(x, mean, dim=1)
            for i, j in T.Parallel(1, n):
                x[i, j] = x[i, j] - mean[i] / n
                sq[i, j] = x[i, j] * x[i, j]
            T.reduce_sum(sq, var, dim=1)
            for i, j in T.Parallel(1, n):
                x[i, j] = x[i, j] * T.rsqrt(var[i] / n + eps)
            T.copy(x, Y[bx : bx + 1, :])
    expected = f.func

    @macro
    def center(x, sq, mean):
        for i, j in T.Parallel(1, n):
            x[i, j] -= mean[i] / n
            sq[i, j] = x[i, j] * x[i, j]

    @T.prim_func
    def ln(X: Tensor((32, n), "float32"), Y: Tensor((32, n), "float32")):
        with T.Kernel(32, threads=128) as bx:
            x = T.alloc_fragment((1, n), "float32")
            mean = T.alloc_fragment((1,), "float32")
            var = T.alloc_fragment((1,), "float32")
            sq = T.alloc_fragment((1, n), "float32")
            T.copy(X[bx : (bx + 1) * 1, :], x)
            T.reduce_sum(x, mean, dim=1)
            center(x, sq, mean)
            T.reduce_sum(sq, var, dim=1)
            for i, j in T.Parallel(1, n):
                x[i, j] *= T.rsqrt(var[i] / n + eps)
            T.copy(x, Y[bx : (bx + 1) * 1, :])

    assert_structural_equal(ln, expected)


def test_if_elif_else_on_tx_and_on_data_match_builder():
    """`if`/`elif`/`else` on thread index and on loaded data (== and != included) become T.If/T.Else;
    an `if` on a Python constant is decided while parsing."""
    flag = True

    with T.prim_func("branches") as f:
        A = T.param("A", (128,), "float32")
        B = T.param("B", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            with T.If(tx == 0):
                B[tx] = A[tx]
            with T.Else():
                with T.If(A[tx] != 0.0):
                    B[tx] = A[tx] * 2.0
                with T.Else():
                    B[tx] = 1.0
            with T.If((tx < 64) & (A[tx] > 0.0)):
                B[tx] = B[tx] + 1.0
    expected = f.func

    @T.prim_func
    def branches(A: Tensor((128,), "float32"), B: Tensor((128,), "float32")):
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            if tx == 0:
                B[tx] = A[tx]
            elif A[tx] != 0.0:
                B[tx] = A[tx] * 2.0
            else:
                B[tx] = 1.0
            if flag:
                if tx < 64 and A[tx] > 0.0:
                    B[tx] += 1.0
            else:
                B[tx] = A[tx] / undefined_name  # noqa: F821  (never parsed into IR: flag is True)

    assert_structural_equal(branches, expected)


def test_alloc_var_and_augmented_assignment_match_builder():
    """`acc = T.alloc_var(...)`, then `acc += x` / `acc = acc * 2` store into it; `range` is T.serial."""
    with T.prim_func("acc") as f:
        A = T.param("A", (128, 16), "float32")
        B = T.param("B", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            acc = T.alloc_var("float32", init=0.0)
            for k in T.serial(16):
                acc[0] = acc[0] + A[tx, k]
            acc[0] = acc[0] * 2.0
            B[tx] = acc[0]
    expected = f.func

    @T.prim_func
    def acc(A: Tensor((128, 16), "float32"), B: Tensor((128,), "float32")):
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            acc = TL.alloc_var("float32", init=0.0)
            for k in range(16):
                acc += A[tx, k]
            acc = acc * 2.0
            B[tx] = acc

    assert_structural_equal(acc, expected)


def test_pipelined_start_stop_and_loop_kinds():
    """T.Pipelined(start, stop) with stages runs 0..stop-start and hands the body start + k."""

    with T.prim_func("loops") as f:
        A = T.param("A", (64,), "float32")
        with T.Kernel(1, threads=32):
            for k in T.Pipelined(4, num_stages=2):
                for v in T.vectorized(4):
                    A[(2 + k) * 4 + v] = 0.0
            for u in T.unroll(2):
                A[u] = 1.0
    expected = f.func

    @T.prim_func
    def loops(A: Tensor((64,), "float32")):
        with T.Kernel(1, threads=32):
            for k in TL.Pipelined(2, 6, num_stages=2):
                for v in TL.vectorized(4):
                    A[k * 4 + v] = 0.0
            for u in TL.unroll(2):
                A[u] = 1.0

    assert_structural_equal(loops, expected)
