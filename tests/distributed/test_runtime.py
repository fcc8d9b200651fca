"""tsir.runtime.dist in one process on CPU, against a fake driver and a fake IPC backend: the group
of one, symmetric tensors, the symmetric-argument check at call time (slow and fast path), and the
rank table written into each module when it is loaded, with no user call."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
import tsir.runtime.dist as dist
from fakes import FakeDriver, FakeIpc
from tsir.runtime import binder
from tsir.runtime import driver as drv
from tsir.runtime.dist import table
from tsir.runtime.dlpack import RawTensor
from tsir.runtime.host_program import HostProgram, KernelArg, LaunchStep, TensorParam
from tsir.runtime.launch import Launcher

import tsir
from tsir import T
from tsir.errors import LaunchError, TSIRError


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDriver]:
    f = FakeDriver()
    monkeypatch.setattr(drv, "_driver", f)
    monkeypatch.setattr(drv, "_primary", {})
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TSIR_DIST_STORE"):
        monkeypatch.delenv(var, raising=False)
    yield f
    dist.finalize()
    table._modules.clear()


def shift_program() -> tuple[tsir.Kernel, HostProgram]:
    with T.prim_func("shift") as f:
        src = T.param("src", (256,), "float32", scope="symmetric")
        dst = T.param("dst", (256,), "float32", scope="symmetric")
        with T.Kernel(1, threads=128):
            T.put_block(src, dst, 256, dst_pe=(T.get_rank() + 1) % T.get_num_ranks())
    kernel = tsir.compile(f.func, target="sm_90a")
    return kernel, kernel.program


def test_symmetric_parameters_reach_the_host_program() -> None:
    _, program = shift_program()
    assert [p.symmetric for p in program.params] == [True, True]
    assert (
        program.signature("shift")
        == "shift(src: symmetric float32[256], dst: symmetric float32[256])"
    )


def test_single_rank_group_and_tensors(fake: FakeDriver) -> None:
    g = dist.init(heap_bytes=1 << 20, _ipc=FakeIpc())
    assert (g.rank, g.world_size, g.device) == (0, 1, 0)
    assert dist.init() is g  # idempotent
    x = dist.zeros((4, 8), "float32")
    y = dist.empty(5, "bfloat16")
    assert isinstance(x, RawTensor) and x.shape == (4, 8) and x.device == (2, 0)
    h = dist.heap()
    assert x.ptr == h.local_base and y.ptr == h.local_base + 256
    assert dist.is_symmetric(x) and dist.is_symmetric(y)
    assert not dist.is_symmetric(RawTensor(h.local_base + (1 << 20), (1,), "float32"))
    assert dist.peer(x, 0).ptr == x.ptr and len(dist.peers(x)) == 1
    with pytest.raises(TSIRError, match="not in this rank's symmetric heap"):
        dist.peer(RawTensor(0x1000, (1,), "float32"), 0)
    assert [h.local_base, h.local_base + (1 << 20)] == binder.SYMMETRIC_HEAP
    with dist.scope():
        dist.empty((1000,), "int8")
    assert dist.empty((1,), "int8").ptr == h.local_base + 512  # the scope's allocation was freed
    with pytest.raises(TSIRError, match="unsupported dtype"):
        dist.empty((1,), "complex64")
    assert dist.empty((2,), "float32", g).shape == (2,)  # DESIGN's dist.empty(shape, dtype, group)
    with pytest.raises(TSIRError, match="`group` is not the group"):
        dist.zeros((2,), "float32", object())
    dist.finalize()
    assert binder.SYMMETRIC_HEAP == [0, 0] and not dist.is_initialized()
    with pytest.raises(TSIRError, match="call tsir.runtime.dist.init"):
        dist.current_group()


def test_symmetric_argument_check_at_call_time(fake: FakeDriver) -> None:
    kernel, _ = shift_program()
    outside = RawTensor(0x10000, (256,), "float32")
    with pytest.raises(
        LaunchError,
        match="argument 'src' must be a symmetric tensor, but this process has no symmetric heap",
    ):
        kernel(outside, outside)
    dist.init(heap_bytes=1 << 20, _ipc=FakeIpc())
    a, b = dist.empty((256,), "float32"), dist.empty((256,), "float32")
    kernel(a, b)  # slow path first (binds dtypes), then ...
    kernel(a, b)  # ... the generated fast path
    assert len(fake.launches) == 2
    with pytest.raises(
        LaunchError,
        match=r"argument 'dst' must be a symmetric tensor .* are not inside this rank's symmetric heap",
    ):
        kernel(a, outside)
    # a tensor that starts inside the heap but runs past its end
    h = dist.heap()
    tail = RawTensor(h.local_base + (1 << 20) - 512, (256,), "float32")
    with pytest.raises(LaunchError, match="1024 bytes at"):
        kernel(a, tail)
    assert len(fake.launches) == 2


def test_rank_table_is_written_when_the_module_loads(fake: FakeDriver) -> None:
    kernel, _ = shift_program()
    assert b"tsir_rank_table" in kernel.cubin
    dist.init(heap_bytes=1 << 20, _ipc=FakeIpc())
    a, b = dist.empty((256,), "float32"), dist.empty((256,), "float32")
    kernel(a, b)
    ((address, data),) = fake.copies
    rank, n, heap_bytes, base0 = struct.unpack_from("<iiQQ", data)
    assert (rank, n, heap_bytes, base0) == (0, 1, 1 << 20, dist.heap().local_base)
    assert len(data) == table.TABLE_BYTES and table.loaded_modules() == 1
    kernel(a, b)
    assert len(fake.copies) == 1  # once per module load
    # a group formed again refills every loaded module
    dist.finalize()
    dist.init(heap_bytes=1 << 21, _ipc=FakeIpc())
    assert len(fake.copies) == 2 and struct.unpack_from("<iiQ", fake.copies[1][1])[2] == 1 << 21
    kernel._launcher.close()
    assert table.loaded_modules() == 0


def test_module_with_a_table_needs_a_group(fake: FakeDriver) -> None:
    program = HostProgram(
        (TensorParam("x", "float32", (4,)),),
        (LaunchStep("k", ("1", "1", "1"), (32, 1, 1), 0, (KernelArg("x", "ptr"),)),),
    )
    launcher = Launcher(program, b"....tsir_rank_table....")
    with pytest.raises(
        LaunchError, match=r"has no group: call tsir.runtime.dist.init\(\) before launching it"
    ):
        launcher(RawTensor(0x1000, (4,), "float32"))
    assert fake.unloaded  # the half-initialized module was unloaded
    plain = Launcher(program, b"a cubin without the symbol")
    plain(RawTensor(0x1000, (4,), "float32"))
    assert fake.copies == []


def test_a_table_of_the_wrong_size_is_refused(fake: FakeDriver) -> None:
    fake.table_bytes = 100
    dist.init(heap_bytes=1 << 20, _ipc=FakeIpc())
    program = HostProgram(
        (TensorParam("x", "float32", (4,)),),
        (LaunchStep("k", ("1", "1", "1"), (32, 1, 1), 0, (KernelArg("x", "ptr"),)),),
    )
    with pytest.raises(LaunchError, match="is 100 bytes, but tsir.runtime.dist expects 528"):
        Launcher(program, b"tsir_rank_table")(RawTensor(0x1000, (4,), "float32"))


def test_init_argument_errors(fake: FakeDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TSIRError, match="pass both rank and world_size"):
        dist.init(rank=0)
    with pytest.raises(TSIRError, match=r"rank 3 is not in \[0, 2\)"):
        dist.init(3, 2, store=dist.LocalStore())
    with pytest.raises(TSIRError, match="has no way to reach its peers"):
        dist.init(0, 2)
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(TSIRError, match="RANK is set but WORLD_SIZE is not"):
        dist.init()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(TSIRError, match="RANK='x' is not an integer"):
        dist.init()


def test_pack_rejects_bad_tables() -> None:
    with pytest.raises(ValueError):
        table.pack(table.RankTable(0, 65, 0, tuple(range(65))))
    with pytest.raises(ValueError):
        table.pack(table.RankTable(0, 2, 0, (1,)))
