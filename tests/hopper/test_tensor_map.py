"""Tensor-map validation (each TMA rule has its message), the driver argument conversion, and the
cache; the real encode runs on a GPU."""

from __future__ import annotations

import dataclasses

import pytest
from tsir.runtime.tensor_map import (
    TensorMapCache,
    TensorMapError,
    TensorMapSpec,
    check_tensor_map,
    encode_args,
)

from tsir.errors import TSIRError
from tsir.layout import SwizzleMode

GOOD = TensorMapSpec(
    dtype="float16",
    address=0x7F0000001000,
    shape=(4096, 8192),
    strides=(8192, 1),
    box=(128, 64),
    swizzle=SwizzleMode.B128,
)


def bad(**changes: object) -> TensorMapSpec:
    return dataclasses.replace(GOOD, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "spec,message",
    [
        (bad(address=GOOD.address + 8), r"16-byte aligned; it is 0x7f0000001008 \(8 bytes past"),
        (bad(shape=(4096, 4097), strides=(4097, 1)), r"multiple of 16 bytes .*8194 bytes"),
        (bad(strides=(8192, 2)), r"innermost dimension must be contiguous"),
        (bad(box=(512, 64)), r"1 to 256 elements; box dimension 0 is 512"),
        (bad(box=(128, 4)), r"inner extent must be a multiple of 16 bytes; it is 4 x 2 = 8"),
        (bad(box=(128, 128)), r"128-byte swizzle the box's inner extent may be at most 128"),
        (bad(box=(64, 64), swizzle=SwizzleMode.B64), r"at most 64 bytes; it is 128 bytes"),
        (bad(box=(64, 32), swizzle=SwizzleMode.B32), r"at most 32 bytes; it is 64 bytes"),
        (bad(shape=(1,) * 6, strides=(8,) * 5 + (1,), box=(1,) * 6), r"1 to 5 dimensions"),
        (bad(dtype="bool"), r"integer and floating-point elements; got bool"),
        (bad(shape=(0, 8192)), r"1 to 2\*\*32 elements; dimension 0 has 0"),
        (bad(box=(128,)), r"one entry per dimension"),
        (bad(l2_promotion=32), r"L2 promotion"),
        (bad(dtype="int32", strides=(8192, 1), box=(128, 32), oob_nan=True), r"NaN .* int32"),
    ],
)
def test_each_rule_has_its_message(spec: TensorMapSpec, message: str) -> None:
    with pytest.raises(TensorMapError, match=message) as info:
        check_tensor_map(spec, "B")
    assert isinstance(info.value, TSIRError)
    assert "cannot describe B for TMA" in str(info.value)


def test_a_good_spec_passes_and_converts_innermost_first() -> None:
    check_tensor_map(GOOD)
    args = encode_args(GOOD)
    assert args.global_dim == (8192, 4096)
    assert args.global_strides == (16384,)
    assert args.box_dim == (64, 128)
    assert args.data_type == "FLOAT16" and args.swizzle == "128B"
    assert args.l2_promotion == "L2_128B" and args.oob_fill == "NONE"
    fp8 = encode_args(bad(dtype="float8_e4m3", box=(256, 128), strides=(8192, 1)))
    assert fp8.data_type == "UINT8" and fp8.global_strides == (8192,)
    three = encode_args(
        bad(
            shape=(4, 64, 256),
            strides=(64 * 256, 256, 1),
            box=(1, 64, 64),
            swizzle=SwizzleMode.NONE,
        )
    )
    assert three.global_strides == (512, 64 * 256 * 2) and three.swizzle == "NONE"


def test_cache_hits_per_spec_and_device_and_checks_before_encoding() -> None:
    calls: list[object] = []

    def fake(args: object) -> tuple[object, int]:
        calls.append(args)
        return object(), 0x1000 * len(calls)

    cache = TensorMapCache(capacity=2, encode=fake)
    a = cache.get(GOOD)
    assert cache.get(GOOD) is a and cache.hits == 1 and len(calls) == 1
    assert cache.get(GOOD, device=1) is not a  # same pointer on another device
    other = bad(address=GOOD.address + 4096)
    cache.get(other)
    assert len(calls) == 3
    cache.get(GOOD)  # evicted (capacity 2): encoded again
    assert len(calls) == 4 and cache.misses == 4
    with pytest.raises(TensorMapError):
        cache.get(bad(address=1))
    assert len(calls) == 4  # a bad spec never reaches the driver


@pytest.mark.gpu
def test_encode_on_the_device() -> None:
    torch = pytest.importorskip("torch")
    from tsir.runtime.tensor_map import tensor_map

    x = torch.empty((256, 512), dtype=torch.float16, device="cuda")
    m = tensor_map(x, (128, 64), SwizzleMode.B128, cache=TensorMapCache())
    assert len(m.to_bytes()) == 128 and m.to_bytes() != bytes(128)
    with pytest.raises(TensorMapError, match="16-byte aligned"):
        tensor_map(x.view(-1)[1 : 1 + 255 * 511].view(255, 511), (64, 64), cache=TensorMapCache())
