"""The logic of the device code, checked on the CPU.

* `tsir::copy_group` (distributed.h) compiled as host C++ with g++: for many sizes, alignments and
  group sizes, every thread of the group runs in turn and the copy must write exactly the bytes
  asked for, leaving its neighbours alone (any size and alignment, no dropped tail).
* The barrier_blocks protocol, modelled step for step in Python with threads as blocks of several
  ranks and random delays: no block leaves an epoch before every block of every rank arrived, over
  many reuses without a reset and with different grid sizes on one buffer.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from tsir.runtime.nvrtc import tsir_include_dir

SHIM = r"""
#include <cstdio>
#include <cstring>
#include <cstdlib>
#define __device__
#define __forceinline__ inline
#define __noinline__ inline
#define __constant__
struct uint2 { unsigned x, y; };
struct uint4 { unsigned x, y, z, w; };
struct tsir_dim3 { unsigned x, y, z; };
static tsir_dim3 threadIdx, blockIdx, blockDim, gridDim;
inline long long clock64() { return 0; }
inline void __syncthreads() {}
inline void __trap() { abort(); }
"""

DRIVER = r"""
#include "tsir/distributed.h"
int main() {
  static unsigned char src[1 << 16], dst[(1 << 16) + 64];
  for (unsigned i = 0; i < sizeof(src); ++i) src[i] = (unsigned char)(i * 131 + 7);
  const unsigned long long sizes[] = {0, 1, 2, 3, 7, 15, 16, 17, 31, 33, 100, 255, 256, 257,
                                      1000, 4095, 4096, 4097, 12345, 40000};
  const unsigned groups[] = {1, 3, 32, 128};
  long checks = 0;
  for (unsigned long long n : sizes)
    for (int so = 0; so < 16; ++so)
      for (int dof = 0; dof < 16; dof += (so % 3 == 0 ? 1 : 5))
        for (unsigned g : groups) {
          memset(dst, 0xEE, sizeof(dst));
          unsigned char* d = dst + 32 + dof;
          for (unsigned idx = 0; idx < g; ++idx) tsir::copy_group(d, src + so, n, idx, g);
          if (memcmp(d, src + so, n) != 0) { printf("FAIL data n=%llu so=%d do=%d g=%u\n", n, so, dof, g); return 1; }
          for (int k = 0; k < 32 + dof; ++k)
            if (dst[k] != 0xEE) { printf("FAIL before n=%llu so=%d do=%d g=%u\n", n, so, dof, g); return 1; }
          for (int k = 0; k < 32; ++k)
            if (d[n + k] != 0xEE) { printf("FAIL after n=%llu so=%d do=%d g=%u\n", n, so, dof, g); return 1; }
          ++checks;
        }
  printf("OK %ld\n", checks);
  return 0;
}
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to build the host model")
def test_copy_group_copies_exactly_the_requested_bytes(tmp_path: Path) -> None:
    (tmp_path / "shim.h").write_text(SHIM)
    (tmp_path / "main.cpp").write_text(DRIVER)
    exe = tmp_path / "copy_model"
    build = subprocess.run(
        [
            "g++",
            "-std=c++17",
            "-O1",
            "-w",
            "-include",
            str(tmp_path / "shim.h"),
            f"-I{tsir_include_dir()}",
            str(tmp_path / "main.cpp"),
            "-o",
            str(exe),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("OK"), run.stdout


class Ranks:
    """The memory of the model: bar[r][j] as Python ints, atomics under one lock. Counters start
    just before they wrap (epoch 4094 of 4096, peer counts 2^32 - 2) so the run crosses both."""

    START = 4094

    def __init__(self, world: int):
        self.world = world
        self.bar = [
            [(self.START << 20) if j == r else (1 << 32) - 2 for j in range(world)]
            for r in range(world)
        ]
        self.lock = threading.Lock()

    def atom_add(self, r: int, j: int, v: int) -> int:
        with self.lock:
            old = self.bar[r][j]
            self.bar[r][j] = (old + v) & 0xFFFFFFFF
            return old

    def load(self, r: int, j: int) -> int:
        with self.lock:
            return self.bar[r][j]


def barrier_model(mem: Ranks, me: int, blocks: int, rng: random.Random) -> None:
    """tsir::barrier_blocks, thread 0 of one block of rank `me` (distributed.h), step for step."""
    old = mem.atom_add(me, me, 1)
    epoch = old >> 20
    if rng.random() < 0.3:
        time.sleep(rng.random() * 1e-4)
    if (old & 0xFFFFF) == blocks - 1:
        for j in range(mem.world):
            if j != me:
                mem.atom_add(j, me, 1)  # red.release.sys on peer j's slot [me]
        for j in range(mem.world):
            if j != me:
                while ((mem.load(me, j) - (epoch + 1)) & 0xFFF) >= 0x800:
                    time.sleep(0)
        mem.atom_add(me, me, (1 << 20) - blocks)
    else:
        while (mem.load(me, me) >> 20) == epoch:
            time.sleep(0)


@pytest.mark.parametrize("world", [2, 3])
def test_barrier_protocol_model(world: int) -> None:
    mem = Ranks(world)
    grids = [3, 1, 4, 2]  # each launch another grid size on the same buffer
    per_launch = 3  # barriers per launch
    steps = len(grids) * per_launch
    arrived = [[0] * steps for _ in range(world)]
    errors: list[str] = []
    lock = threading.Lock()

    def block(me: int, b: int, launch: int, blocks: int) -> None:
        rng = random.Random(hash((me, b, launch)))
        for i in range(per_launch):
            step = launch * per_launch + i
            with lock:
                arrived[me][step] += 1
            barrier_model(mem, me, blocks, rng)
            with lock:  # after the barrier, every block of every rank has arrived here
                late = [r for r in range(world) if arrived[r][step] != blocks]
                if late:
                    errors.append(f"rank {me} block {b} left step {step} before ranks {late}")

    for launch, blocks in enumerate(grids):
        threads = [
            threading.Thread(target=block, args=(r, b, launch, blocks), daemon=True)
            for r in range(world)
            for b in range(blocks)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
            assert not t.is_alive(), "the barrier model deadlocked"
        assert not errors, errors[:3]
    for r in range(world):
        assert mem.bar[r][r] & 0xFFFFF == 0  # quiescent: no arrival counted
        assert mem.bar[r][r] >> 20 == (Ranks.START + steps) % 4096  # the epoch wrapped
        assert all(mem.bar[r][j] == steps - 2 for j in range(world) if j != r)  # so did the counts
