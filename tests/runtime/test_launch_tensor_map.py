"""Tensor-map kernel parameters (`TensorMapArg`): a CUtensorMap of a tensor argument, 128 bytes
passed by value, built on the host and cached by (pointer, shape, strides). CPU tests run the
launcher against a fake driver and a fake encoder; the GPU test runs a real TMA copy."""

from __future__ import annotations

import ctypes
import json
import struct

import pytest
from fake_driver import FakeDriver
from tsir.runtime import driver as drv
from tsir.runtime import launch as launch_module
from tsir.runtime.dlpack import RawTensor
from tsir.runtime.host_program import (
    HostProgram,
    KernelArg,
    LaunchStep,
    ScalarParam,
    TensorMapArg,
    TensorParam,
)
from tsir.runtime.kernel import _program_from_json, _program_to_json
from tsir.runtime.launch import Launcher
from tsir.runtime.tensor_map import EncodeArgs, TensorMapCache, TensorMapError, aligned_copy

from tsir.errors import TSIRError


class FakeEncoder:
    """Stands in for cuTensorMapEncodeTiled: the 128 bytes name the encoded arguments."""

    def __init__(self) -> None:
        self.calls: list[EncodeArgs] = []

    def __call__(self, args: EncodeArgs) -> tuple[object, int]:
        self.calls.append(args)
        source = ctypes.create_string_buffer(self.expected(args), 128)
        return aligned_copy(ctypes.addressof(source))

    @staticmethod
    def expected(args: EncodeArgs) -> bytes:
        fields = (args.address, *args.global_dim, *args.global_strides, *args.box_dim)
        text = f"{args.swizzle}|{args.data_type}".encode()
        return (struct.pack(f"<{len(fields)}Q", *fields) + text).ljust(128, b"\0")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeDriver:
    driver = FakeDriver({"tile": (128, 8, 8), "two": (128, 128, 8)})
    monkeypatch.setattr(drv, "_driver", driver)
    monkeypatch.setattr(drv, "_primary", {})
    return driver


TILE = HostProgram(
    params=(TensorParam("a", "float16", ("M", 64)), TensorParam("out", "float32", ("M",))),
    steps=(
        LaunchStep(
            "tile",
            ("(M + 63) // 64", "1", "1"),
            (128, 1, 1),
            0,
            (TensorMapArg("a", (64, 64), 128), KernelArg("out", "ptr"), KernelArg("M", "int32")),
        ),
    ),
)


def _a(ptr: int, m: int = 256) -> RawTensor:
    return RawTensor(ptr, (m, 64), "float16")


def test_map_is_passed_by_value_aligned_and_encoded_once(fake: FakeDriver) -> None:
    encoder = FakeEncoder()
    launcher = Launcher(TILE, b"", tensor_maps=TensorMapCache(encode=encoder))
    out = RawTensor(0x90000, (256,), "float32")
    launcher(_a(0x10000), out)
    (first,) = fake.launches
    assert len(encoder.calls) == 1
    args = encoder.calls[0]
    # innermost dimension first, strides in bytes without the innermost, boxes reversed
    assert (args.global_dim, args.global_strides, args.box_dim) == ((64, 256), (128,), (64, 64))
    assert (args.address, args.swizzle, args.data_type) == (0x10000, "128B", "FLOAT16")
    assert first["slots"][0] == FakeEncoder.expected(args)
    assert first["entries"][0] % 64 == 0
    assert first["slots"][1:] == [0x90000, 256]

    slow = type(launcher).__call__.__globals__["_slow"]
    deferred: list[object] = []
    type(launcher).__call__.__globals__["_slow"] = lambda *a: deferred.append(a) or slow(*a)
    launcher(_a(0x10000), out)
    assert deferred == [] and len(encoder.calls) == 1  # the fast path found the map
    assert fake.launches[1]["slots"] == first["slots"]


def test_a_new_pointer_or_shape_builds_a_new_map(fake: FakeDriver) -> None:
    encoder = FakeEncoder()
    launcher = Launcher(TILE, b"", tensor_maps=TensorMapCache(encode=encoder))
    out = RawTensor(0x90000, (256,), "float32")
    for ptr, m in [(0x10000, 256), (0x20000, 256), (0x10000, 128), (0x10000, 256), (0x20000, 256)]:
        launcher(_a(ptr, m), RawTensor(0x90000, (m,), "float32"))
    assert [(c.address, c.global_dim[1]) for c in encoder.calls] == [
        (0x10000, 256),
        (0x20000, 256),
        (0x10000, 128),
    ]
    seen = [struct.unpack_from("<Q", r["slots"][0])[0] for r in fake.launches]
    assert seen == [0x10000, 0x20000, 0x10000, 0x10000, 0x20000]
    del out


def test_declared_strides_are_part_of_the_key(fake: FakeDriver) -> None:
    program = HostProgram(
        params=(TensorParam("b", "bfloat16", ("K", "N"), strides=("ldb", 1)),),
        steps=(
            LaunchStep(
                "two",
                ("1", "1", "1"),
                (128, 1, 1),
                0,
                (TensorMapArg("b", (32, 64)), TensorMapArg("b", (32, 64)), KernelArg("N", "int32")),
            ),
        ),
    )
    encoder = FakeEncoder()
    launcher = Launcher(program, b"", tensor_maps=TensorMapCache(encode=encoder))
    for ld in (128, 128, 256):
        launcher(RawTensor(0x40000, (64, 96), "bfloat16", strides=(ld, 1)))
    assert [c.global_strides for c in encoder.calls] == [(256,), (512,)]
    for record in fake.launches:  # one map, passed twice
        assert record["entries"][0] == record["entries"][1]


def test_a_tensor_tma_cannot_describe_names_the_argument_and_the_rule(fake: FakeDriver) -> None:
    program = HostProgram(
        params=(TensorParam("b", "float16", ("K", "N"), strides=("ldb", 1)),),
        steps=(LaunchStep("tile", ("1", "1", "1"), (32, 1, 1), 0, (TensorMapArg("b", (8, 8)),)),),
    )
    fake.kernels["tile"] = (128,)
    encoder = FakeEncoder()
    launcher = Launcher(program, b"", tensor_maps=TensorMapCache(encode=encoder))
    with pytest.raises(TensorMapError, match=r"argument 'b' for TMA: every stride but the inner"):
        launcher(RawTensor(0x40000, (8, 8), "float16", strides=(9, 1)))  # 18-byte rows
    with pytest.raises(TensorMapError, match=r"argument 'b' for TMA: every dimension has 1 to"):
        launcher(RawTensor(0x40000, (2**32 + 1, 8), "float16", strides=(8, 1)))
    assert fake.launches == [] and encoder.calls == []


def test_the_fast_paths_map_dict_is_bounded(
    fake: FakeDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(launch_module, "_MAX_MAPS_PER_PARAMETER", 2)
    encoder = FakeEncoder()
    launcher = Launcher(TILE, b"", tensor_maps=TensorMapCache(encode=encoder))
    for ptr in (0x10000, 0x20000, 0x30000, 0x10000):
        launcher(_a(ptr), RawTensor(0x90000, (256,), "float32"))
    assert len(launcher._map_addresses[0]) <= 2
    seen = [struct.unpack_from("<Q", r["slots"][0])[0] for r in fake.launches]
    assert seen == [0x10000, 0x20000, 0x30000, 0x10000]


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        (TensorMapArg("alpha", (8,)), "not a tensor parameter"),
        (TensorMapArg("a", (8,)), r"box \(8,\) has 1 dimensions, the tensor 2"),
        (TensorMapArg("flags", (8, 8)), "TMA cannot copy bool"),
    ],
)
def test_malformed_tensor_map_parameters_are_refused(arg: TensorMapArg, message: str) -> None:
    params = (
        TensorParam("a", "float16", (8, 8)),
        TensorParam("flags", "bool", (8, 8)),
        ScalarParam("alpha", "float32"),
    )
    with pytest.raises(TSIRError, match=message):
        HostProgram(params, (LaunchStep("k", ("1", "1", "1"), (32, 1, 1), 0, (arg,)),))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"box": (0, 8)}, "ints in 1..256"),
        ({"box": (8, 257)}, "ints in 1..256"),
        ({"box": ()}, "1 to 5 extents"),
        ({"swizzle": 16}, "swizzle 16 is not one of"),
        ({"l2_promotion": 32}, "l2_promotion 32"),
    ],
)
def test_tensor_map_arg_checks_its_fields(kwargs: dict, message: str) -> None:
    with pytest.raises(TSIRError, match=message):
        TensorMapArg(**{"tensor": "a", "box": (8, 8), **kwargs})


def test_encoded_maps_are_copied_to_a_64_byte_boundary() -> None:
    """CUtensorMap is 64-byte aligned; the binding object's storage promises no alignment."""
    data = bytes(range(128))
    for shift in range(0, 64, 8):
        source = ctypes.create_string_buffer(bytes(shift) + data)  # the map starts at `shift`
        keep, address = aligned_copy(ctypes.addressof(source) + shift)
        assert address % 64 == 0 and ctypes.string_at(address, 128) == data
        del keep


def test_tensor_map_parameters_survive_the_lowering_cache() -> None:
    """The compile cache stores host programs as JSON; a TensorMapArg comes back equal."""
    data = json.loads(json.dumps(_program_to_json(TILE)))
    assert _program_from_json(data) == TILE


# ---- on a GPU: a real TMA copy through the launcher -----------------------------------------------

TMA_COPY = r"""
#include "tsir/tma.h"

// Block (x, y) copies the 32x32 box at columns 32x, rows 32y of the map's tensor into `out`
// (row-major, leading dimension ld); TMA fills what lies outside the tensor with zeros.
extern "C" __global__ void tma_copy(const __grid_constant__ tsir::TmaDescriptor map, float* out,
                                    int ld) {
  __shared__ alignas(128) float tile[32 * 32];
  __shared__ alignas(8) unsigned long long barrier;
  const unsigned bar = tsir::shared_u32(&barrier);
  if (threadIdx.x == 0) {
    tsir::mbarrier_init(bar, 1);
    tsir::mbarrier_init_fence();
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    tsir::mbarrier_arrive_expect_tx(bar, sizeof(tile));
    tsir::tma_load_2d(tsir::shared_u32(tile), map, bar, blockIdx.x * 32, blockIdx.y * 32);
  }
  tsir::mbarrier_wait(bar, 0);
  for (int i = threadIdx.x; i < 32 * 32; i += blockDim.x) {
    out[(blockIdx.y * 32 + i / 32) * (long long)ld + blockIdx.x * 32 + i % 32] = tile[i];
  }
}
"""


@pytest.mark.gpu
def test_tma_copy_through_a_tensor_map_parameter(tsir_cache) -> None:
    """A kernel taking `const __grid_constant__ TmaDescriptor` copies a ragged tensor and a strided
    view; maps are reused for the same tensor and rebuilt for another."""
    torch = pytest.importorskip("torch")
    from tsir.runtime.nvrtc import compile_cuda

    if drv.compute_capability(0) < (9, 0):
        pytest.skip("TMA needs sm_90 or later")
    major, minor = drv.compute_capability(0)
    cubin = compile_cuda(TMA_COPY, f"sm_{major}{minor}", filename="tma_copy.cu").cubin
    program = HostProgram(
        params=(
            TensorParam("src", "float32", ("M", "N"), strides=("lds", 1)),
            TensorParam("out", "float32", ("R", "C")),
        ),
        steps=(
            LaunchStep(
                "tma_copy",
                ("C // 32", "R // 32", "1"),
                (128, 1, 1),
                0,
                (TensorMapArg("src", (32, 32)), KernelArg("out", "ptr"), KernelArg("C", "int32")),
            ),
        ),
    )
    maps = TensorMapCache()
    launcher = Launcher(program, cubin, tensor_maps=maps)
    base = torch.randn(70, 128, device="cuda:0")
    for src in (base[:, :100], base[:, :100], base, base[:, 4:100]):
        out = torch.full((96, 128), float("nan"), device="cuda:0")
        launcher(src, out)
        expected = torch.zeros_like(out)
        expected[: src.shape[0], : src.shape[1]] = src
        torch.cuda.synchronize()
        assert torch.equal(out, expected)
    assert maps.misses == 3  # base[:, :100] twice: one map
    assert all(m.address % 64 == 0 for m in maps._maps.values())
