"""CPU tests of the runtime's pure pieces: the argument binder, host-program validation, stream
normalization and the RawTensor DLPack producer. Every LaunchError message is matched, including the
name of the argument it blames."""

from __future__ import annotations

import re

import numpy as np
import pytest
from tsir.runtime.binder import bind_arguments, check_scalar
from tsir.runtime.dlpack import RawTensor, TensorInfo, from_dlpack, normalize_stream, tensor_info
from tsir.runtime.launch import HostProgram, KernelArg, LaunchStep, ScalarParam, TensorParam

from tsir.errors import LaunchError, TSIRError


def info(shape, dtype="float32", strides=None, device=(2, 0), ptr=0x10000):
    if strides is None:
        strides, acc = [], 1
        for d in reversed(shape):
            strides.insert(0, acc)
            acc *= d
    return TensorInfo(tuple(shape), tuple(strides), dtype, device, ptr)


def program(*params, args=None, grid=("1", "1", "1")):
    if args is None:
        args = tuple(
            KernelArg(p.name, "ptr") if isinstance(p, TensorParam) else KernelArg(p.name, p.dtype)
            for p in params
        )
    return HostProgram(params=tuple(params), steps=(LaunchStep("k", grid, (128, 1, 1), 0, args),))


MK = program(TensorParam("A", "float32", ("M", "K")), TensorParam("B", "float32", ("K", 64)))


def raises(fn, pattern):
    with pytest.raises(LaunchError, match=pattern) as e:
        fn()
    return str(e.value)


# ---- binder: success ------------------------------------------------------------------------------


def test_bind_returns_device_symbols_and_pointers():
    b = bind_arguments(MK, [info((128, 32), ptr=0x1000), info((32, 64), ptr=0x2000)])
    assert b.device == (2, 0)
    assert b.values == {"A": 0x1000, "B": 0x2000, "M": 128, "K": 32}


def test_size_one_dims_may_have_any_stride():
    p = program(TensorParam("x", "float32", (1, "N")))
    b = bind_arguments(p, [info((1, 8), strides=(12345, 1))])
    assert b.values["N"] == 8


def test_empty_tensor_is_compact_and_unaligned_start_is_fine():
    p = program(TensorParam("x", "float32", ("N", 4)))
    b = bind_arguments(p, [info((0, 4), strides=(1, 7), ptr=0x1004)])
    assert b.values["N"] == 0


def test_declared_strides_bind_symbols():
    p = program(
        TensorParam("A", "float16", ("M", "K"), strides=("lda", 1)),
        args=(KernelArg("A", "ptr"), KernelArg("lda", "int64")),
    )
    b = bind_arguments(p, [info((4, 8), "float16", strides=(16, 1))])
    assert b.values["lda"] == 16


def test_float8_dlpack_name_is_accepted():
    p = program(TensorParam("x", "float8_e4m3", (16,)))
    bind_arguments(p, [info((16,), "float8_e4m3fn")])


# ---- binder: each error names its argument --------------------------------------------------------


def test_count_lists_signature():
    msg = raises(lambda: bind_arguments(MK, [info((1, 1))]), "takes 2 arguments, got 1")
    assert "kernel(A: float32[M, K], B: float32[K, 64])" in msg


def test_cpu_tensor():
    msg = raises(
        lambda: bind_arguments(MK, [info((2, 2), device=(1, 0)), info((2, 64))]),
        "expected a CUDA tensor, got cpu",
    )
    assert "argument 'A'" in msg and ".cuda()" in msg


def test_other_device_names_both():
    raises(
        lambda: bind_arguments(MK, [info((2, 2)), info((2, 64), device=(2, 1))]),
        re.escape("argument 'B' is on cuda:1 but argument 'A' is on cuda:0"),
    )


def test_dtype():
    raises(
        lambda: bind_arguments(MK, [info((2, 2), "float16"), info((2, 64))]),
        "argument 'A': expected dtype float32, got float16",
    )
    p = program(TensorParam("x", "float8_e5m2", (16,)))
    raises(
        lambda: bind_arguments(p, [info((16,), "float8_e4m3fn")]),
        "expected dtype float8_e5m2, got float8_e4m3$",
    )


def test_ndim():
    raises(
        lambda: bind_arguments(MK, [info((2, 2, 2)), info((2, 64))]),
        re.escape("argument 'A': expected 2 dimensions (shape [M, K]), got 3 (shape [2, 2, 2])"),
    )


def test_fixed_dim():
    raises(
        lambda: bind_arguments(MK, [info((2, 3)), info((3, 32))]),
        re.escape(
            "argument 'B': dimension 1 must be 64, got 32 (expected shape [K, 64], got [3, 32])"
        ),
    )


def test_symbol_mismatch_names_both_arguments():
    raises(
        lambda: bind_arguments(MK, [info((2, 3)), info((5, 64))]),
        re.escape(
            "argument 'B': dimension 0 is K, which argument 'A' dimension 1 set to 3, but here it is 5"
        ),
    )


def test_non_compact_strides():
    raises(
        lambda: bind_arguments(MK, [info((4, 8), strides=(1, 4)), info((8, 64))]),
        re.escape(
            "argument 'A': expected a compact row-major tensor (strides [8, 1]), got strides [1, 4]; pass A.contiguous()"
        ),
    )


def test_declared_stride_mismatch_and_negative_symbol():
    p = program(TensorParam("A", "float32", ("M", 8), strides=(8, 1)))
    raises(
        lambda: bind_arguments(p, [info((4, 8), strides=(16, 1))]),
        "argument 'A': stride 0 must be 8, got 16",
    )
    q = program(
        TensorParam("A", "float32", ("M", 8), strides=("ld", 1)),
        args=(KernelArg("A", "ptr"), KernelArg("ld", "int32")),
    )
    raises(
        lambda: bind_arguments(q, [info((4, 8), strides=(-8, 1))]),
        "argument 'A': stride 0 is the symbol ld, which must be >= 0, got -8",
    )


def test_misaligned_pointer():
    msg = raises(
        lambda: bind_arguments(MK, [info((2, 3), ptr=0x1004), info((3, 64))]),
        re.escape(
            "argument 'A': data pointer 0x1004 is not aligned to 16 bytes (it is 4 bytes past"
        ),
    )
    assert ".contiguous()" in msg and "freshly allocated" in msg
    p = program(TensorParam("x", "float32", (4,), align=4))
    bind_arguments(p, [info((4,), ptr=0x1004)])


def test_symbol_too_large_for_int32_kernel_argument():
    p = program(
        TensorParam("x", "int8", ("n",)), args=(KernelArg("x", "ptr"), KernelArg("n", "int32"))
    )
    raises(
        lambda: bind_arguments(p, [info((2**31,), "int8")]),
        re.escape(
            "n = 2147483648 (from argument 'x' dimension 0) does not fit the int32 parameter 'n' of kernel 'k'"
        ),
    )


def test_tensor_param_given_a_scalar():
    raises(
        lambda: bind_arguments(MK, [3, info((2, 64))]), "argument 'A': expected a tensor, got int"
    )


# ---- scalars --------------------------------------------------------------------------------------


def test_scalar_ints():
    assert check_scalar("n", "int32", 7) == 7
    assert check_scalar("n", "int64", np.int64(-3)) == -3
    raises(
        lambda: check_scalar("n", "int32", 2**31),
        re.escape("argument 'n': 2147483648 does not fit int32 (range [-2147483648, 2147483647])"),
    )
    raises(lambda: check_scalar("n", "uint32", -1), "argument 'n': -1 does not fit uint32")
    raises(
        lambda: check_scalar("n", "int32", 1.5),
        re.escape("argument 'n': expected an integer (int32), got float 1.5"),
    )
    raises(
        lambda: check_scalar("n", "int32", True),
        re.escape("argument 'n': expected an integer (int32), got bool True"),
    )


def test_scalar_floats_and_bools():
    assert check_scalar("x", "float32", 2) == 2.0
    assert check_scalar("x", "float64", np.float32(0.5)) == 0.5
    assert check_scalar("x", "float32", float("inf")) == float("inf")
    raises(lambda: check_scalar("x", "float32", 1e39), "argument 'x': 1e\\+39 overflows float32")
    raises(
        lambda: check_scalar("x", "float64", "1.0"),
        re.escape("argument 'x': expected a number (float64), got str '1.0'"),
    )
    assert check_scalar("f", "bool", np.bool_(True)) is True
    assert check_scalar("f", "bool", 0) is False
    raises(lambda: check_scalar("f", "bool", 2), "argument 'f': expected a bool, got int 2")
    raises(lambda: check_scalar("x", "float32", np.bool_(True)), "argument 'x': expected a number")
    raises(lambda: check_scalar("x", "float64", 10**400), "argument 'x': 1000.* overflows float64")


# ---- host program validation (compiler bugs are caught when the program is built) -----------------


@pytest.mark.parametrize(
    "grid, pattern",
    [
        (("__import__('os')", "1", "1"), "calls something other than min/max"),
        (("M.real", "1", "1"), "uses Attribute"),
        (("M / 2", "1", "1"), "uses Div"),
        (("1.5", "1", "1"), "non-integer literal"),
        (("Q + 1", "1", "1"), re.escape("reads ['Q'], which are not symbols or integer scalars")),
        (("alpha", "1", "1"), re.escape("reads ['alpha']")),
        (("(M", "1", "1"), "does not parse"),
    ],
)
def test_grid_expressions_are_validated(grid, pattern):
    with pytest.raises(TSIRError, match=pattern):
        HostProgram(
            params=(TensorParam("A", "float32", ("M",)), ScalarParam("alpha", "float32")),
            steps=(LaunchStep("k", grid, (32, 1, 1), 0, (KernelArg("A", "ptr"),)),),
        )


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: TensorParam("A", "float128", (4,)), "dtype 'float128'"),
        (lambda: TensorParam("A", "float32", (-1,)), "not a symbol or a valid int"),
        (lambda: TensorParam("A", "float32", ("M",), strides=(1, 1)), "1 dims but 2 strides"),
        (lambda: TensorParam("A", "float32", (4,), align=12), "not a power of two"),
        (lambda: TensorParam("A", "float32", ("2M",)), "not a Python identifier"),
        (lambda: ScalarParam("s", "float16"), "scalar 's' has dtype 'float16'"),
        (lambda: KernelArg("s", "char*"), "ctype 'char\\*'"),
        (lambda: LaunchStep("k", ("1", "1", "1"), (64, 32, 1), 0, ()), "exceeds CUDA's limits"),
        (
            lambda: program(TensorParam("A", "float32", (4,)), args=(KernelArg("B", "ptr"),)),
            "'B' is not a tensor",
        ),
        (lambda: program(TensorParam("A", "float32", ("A",))), "share a name with a parameter"),
    ],
)
def test_malformed_programs(make, pattern):
    with pytest.raises(TSIRError, match=pattern):
        make()


def test_signature_text():
    p = program(
        TensorParam("A", "bfloat16", ("M", 8), strides=("ld", 1)), ScalarParam("eps", "float32")
    )
    assert p.signature("norm") == "norm(A: bfloat16[M, 8] strides=(ld, 1), eps: float32)"


# ---- streams --------------------------------------------------------------------------------------


class _CudaStreamProto:
    def __cuda_stream__(self):
        return (0, 0xBEEF)


class _TorchLike:
    cuda_stream = 0x1234


class _CupyLike:
    ptr = 0x5678


def test_normalize_stream():
    assert normalize_stream(0) == 0
    assert normalize_stream(0xABC) == 0xABC
    assert normalize_stream(_CudaStreamProto()) == 0xBEEF
    assert normalize_stream(_TorchLike()) == 0x1234
    assert normalize_stream(_CupyLike()) == 0x5678
    raises(lambda: normalize_stream(-1), "argument 'stream': a stream handle must be >= 0, got -1")
    raises(
        lambda: normalize_stream("s"),
        "argument 'stream': expected None, an int handle, or a stream object",
    )
    raises(lambda: normalize_stream(True), "argument 'stream': expected None")

    class Bad:
        def __cuda_stream__(self):
            return 5

    raises(
        lambda: normalize_stream(Bad()),
        re.escape("argument 'stream': Bad.__cuda_stream__() returned 5"),
    )


def test_cuda_bindings_stream_object():
    from cuda.bindings import driver

    assert normalize_stream(driver.CUstream(0x77)) == 0x77


# ---- RawTensor: the DLPack producer ---------------------------------------------------------------


def test_raw_tensor_round_trips_through_tvm_ffi_and_numpy():
    a = np.arange(12, dtype=np.float32)
    r = RawTensor(a.ctypes.data, (3, 4), "float32", device=(1, 0), owner=a)
    got = tensor_info(from_dlpack()(r))
    assert got == TensorInfo((3, 4), (4, 1), "float32", (1, 0), a.ctypes.data)
    np.testing.assert_array_equal(np.from_dlpack(r), a.reshape(3, 4))


def test_raw_tensor_strides_and_float8():
    r = RawTensor(0x1000, (3, 4), "float8_e4m3", device=(2, 1), strides=(1, 3))
    got = tensor_info(from_dlpack()(r))
    assert got == TensorInfo((3, 4), (1, 3), "float8_e4m3fn", (2, 1), 0x1000)


def test_a_workspace_the_kernels_take_is_not_an_argument_to_bind():
    """Found on the GPU: the slow launch path bound arguments before allocating T.alloc_global
    scratch, and the binder looked the scratch up among the arguments (KeyError)."""
    from tsir.runtime.host_program import WorkspaceParam

    x = TensorParam("X", "float32", ("n",))
    step = LaunchStep(
        "k",
        ("1", "1", "1"),
        (64, 1, 1),
        0,
        (KernelArg("X", "ptr"), KernelArg("part", "ptr"), KernelArg("n", "int32")),
    )
    p = HostProgram(
        params=(x,), steps=(step,), workspaces=(WorkspaceParam("part", "float32", ("n",)),)
    )
    b = bind_arguments(p, [info((77,), ptr=0x1000)])
    assert b.values == {"X": 0x1000, "n": 77}
