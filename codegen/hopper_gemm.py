"""A hand-specialized, warp-specialized Hopper GEMM as CUDA C++ text over tsir's headers
(mbarrier.h, tma.h, wgmma.h): the kernel tsir's compiler is to emit from a `T.gemm` tile program
on sm_90a (docs/hopper_design.md). Phase 1 of issue 11: generated here from a `GemmConfig`,
compiled by NVRTC, checked in SASS (tests/hopper) and on the GPU (benchmarks/hopper_gemm.py).

    C[M, N] = A[M, K] @ B            (f16/bf16: B is K x N row-major; fp8: B is N x K row-major,
                                      C = A @ B^T * scale_a * scale_b, as torch._scaled_mm)

Structure (one CTA, `1 + consumers` warpgroups):
- warpgroup 0 is the producer: it gives registers back (setmaxnreg.dec) and one thread walks the
  CTA's tiles, waiting on `empty[s]` and issuing the TMA loads of stage s, which complete on
  `full[s]` (expect_tx of the stage's bytes);
- warpgroups 1.. are consumers (setmaxnreg.inc), each owning `block_m / consumers` rows of the
  tile: wait on `full[s]`, issue the k-block's wgmma batch, commit, and `wgmma.wait_group 1` so the
  next k-block's loads and math overlap the current one; the k-block before is then released by
  one arrival per warp on `empty[s]`;
- the epilogue converts the accumulator fragment (wgmma_layouts.make_wgmma_c_fragment) and stores
  it with bounds checks (ragged M and N);
- tiles are visited in L2-friendly groups of `group_m` tile rows; with a persistent launch (grid =
  number of SMs) each CTA loops over tiles and the producer runs ahead into the next tile while
  the consumers finish the current one.

Every shared-memory offset and descriptor field comes from tsir.layout.wgmma_layouts, whose tests
check them against the PTX ISA's canonical layouts and TMA's swizzle.
"""

from __future__ import annotations

from dataclasses import dataclass

from tsir.errors import UnsupportedError
from tsir.layout.swizzle import SwizzleMode
from tsir.layout.wgmma_layouts import (
    choose_wgmma_swizzle,
    descriptor,
    instruction_k,
    tma_boxes,
    valid_wgmma_n,
)

__all__ = ["GemmConfig", "generate", "KERNEL_NAME"]

KERNEL_NAME = "tsir_hopper_gemm"
_KIND = {
    ("float16", "float16"): "tsir::kWgmmaF16",
    ("bfloat16", "bfloat16"): "tsir::kWgmmaBF16",
    ("float8_e4m3", "float8_e4m3"): "tsir::kWgmmaE4M3E4M3",
    ("float8_e4m3", "float8_e5m2"): "tsir::kWgmmaE4M3E5M2",
    ("float8_e5m2", "float8_e4m3"): "tsir::kWgmmaE5M2E4M3",
    ("float8_e5m2", "float8_e5m2"): "tsir::kWgmmaE5M2E5M2",
}
_PACK = {"float16": "tsir::pack_half2", "bfloat16": "tsir::pack_bfloat162"}
_SMEM_LIMIT = 227 * 1024


@dataclass(frozen=True, slots=True)
class GemmConfig:
    """One kernel variant. `persistent` only changes the launch (grid = min(tiles, SMs))."""

    a_dtype: str = "float16"
    b_dtype: str = "float16"
    out_dtype: str = "float16"
    block_m: int = 128
    block_n: int = 256
    block_k: int = 64
    stages: int = 4
    consumers: int = 2
    group_m: int = 8
    persistent: bool = True
    tma_store: bool = False
    """Epilogue through shared memory and TMA stores: each consumer warpgroup writes its converted
    rows into a 128B-swizzled staging tile (bank-conflict free), and one of its threads stores
    them with `cp.async.bulk.tensor` (TMA clips ragged edges) and moves on to the next tile; the
    staging tile is rewritten only after that store has read it (wait_group.read)."""
    cluster_m: int = 1
    """CTAs per cluster along M (1 or 2). With 2, the pair computes vertically adjacent tiles and
    shares B: each CTA loads half of B's boxes and multicasts them to both (TMA .multicast), so
    L2 serves B once per pair; a stage is refilled once both CTAs' consumers released it."""
    mbarrier_timeout_cycles: int = 0
    """Non-zero: a wait that sees no progress for this many cycles traps (a failure, not a hang)."""

    @property
    def fp8(self) -> bool:
        return self.a_dtype.startswith("float8")

    @property
    def esize(self) -> int:
        return 1 if self.fp8 else 2

    @property
    def b_k_major(self) -> bool:
        """fp8 B is stored N x K (K-major, wgmma has no fp8 transpose); f16/bf16 B is K x N."""
        return self.fp8

    @property
    def threads(self) -> int:
        return 128 * (1 + self.consumers)

    @property
    def wg_m(self) -> int:
        return self.block_m // self.consumers

    @property
    def a_shape(self) -> tuple[int, int]:
        return (self.block_m, self.block_k)

    @property
    def b_shape(self) -> tuple[int, int]:
        return (self.block_n, self.block_k) if self.b_k_major else (self.block_k, self.block_n)

    @property
    def a_bytes(self) -> int:
        return self.block_m * self.block_k * self.esize

    @property
    def b_bytes(self) -> int:
        return self.block_n * self.block_k * self.esize

    @property
    def stage_bytes(self) -> int:
        return self.a_bytes + self.b_bytes

    @property
    def smem_bytes(self) -> int:
        """Dynamic shared memory: the stages, the barriers, and 1 KiB to align the base."""
        return 1024 + self.stages * self.stage_bytes + 16 * self.stages + self.c_bytes

    @property
    def c_bytes(self) -> int:
        """The TMA-store epilogue's staging tile (block_m x block_n of out_dtype)."""
        return self.block_m * self.block_n * 2 if self.tma_store else 0

    @property
    def registers(self) -> tuple[int, int]:
        """(producer, consumer) registers per thread after setmaxnreg."""
        producer = 40
        per = (65536 - 128 * producer) // (128 * self.consumers) // 8 * 8
        return producer, min(per, 240)

    @property
    def name(self) -> str:
        kind = {"float16": "f16", "bfloat16": "bf16"}.get(self.a_dtype, "fp8")
        return (
            f"{kind}_{self.block_m}x{self.block_n}x{self.block_k}_s{self.stages}"
            f"_c{self.consumers}{'_p' if self.persistent else ''}"
            f"{f'_cm{self.cluster_m}' if self.cluster_m > 1 else ''}"
            f"{'_tmastore' if self.tma_store else ''}"
        )

    def check(self) -> None:
        """UnsupportedError naming the first constraint the variant breaks."""
        if (self.a_dtype, self.b_dtype) not in _KIND:
            raise UnsupportedError(f"no wgmma for {self.a_dtype} x {self.b_dtype}")
        if self.out_dtype not in _PACK:
            raise UnsupportedError(f"the epilogue writes float16 or bfloat16, not {self.out_dtype}")
        if self.block_m % (64 * self.consumers):
            raise UnsupportedError(
                f"block_m {self.block_m} must give each of the {self.consumers} consumer "
                "warpgroups a multiple of 64 rows"
            )
        if not valid_wgmma_n(self.block_n):
            raise UnsupportedError(f"block_n {self.block_n}: one wgmma takes N = 8..256, step 8")
        acc = self.wg_m // 64 * self.block_n // 2
        if acc > self.registers[1] - 40:
            raise UnsupportedError(
                f"{acc} accumulator registers per thread do not fit the consumer budget of "
                f"{self.registers[1]} (setmaxnreg); use smaller tiles or more consumers"
            )
        for what, shape in (("A", self.a_shape), ("B", self.b_shape)):
            if choose_wgmma_swizzle(shape, self.a_dtype) is not SwizzleMode.B128:
                raise UnsupportedError(f"the {what} tile {shape} does not take the 128B swizzle")
            if shape[0] > 256:
                raise UnsupportedError(f"the {what} tile has {shape[0]} rows; a TMA box has <= 256")
        if self.cluster_m not in (1, 2):
            raise UnsupportedError(f"cluster_m {self.cluster_m}: 1 or 2 CTAs per cluster")
        if self.smem_bytes > _SMEM_LIMIT:
            raise UnsupportedError(
                f"{self.stages} stages need {self.smem_bytes} bytes of shared memory; sm_90 "
                f"allows {_SMEM_LIMIT}"
            )


def _descriptor_table(cfg: GemmConfig) -> tuple[list[list[int]], list[int], tuple[int, ...]]:
    """Start offsets (bytes, from the stage's A / B base) of A per (m64 tile of consumer 0,
    k step), of B per k step, and (A lbo, A sbo, B lbo, B sbo)."""
    mode = SwizzleMode.B128
    kstep = instruction_k(cfg.a_dtype)
    a_starts: list[list[int]] = []
    a_desc = b_desc = None
    for mt in range(cfg.wg_m // 64):
        row: list[int] = []
        for kk in range(cfg.block_k // kstep):
            d = descriptor(cfg.a_shape, cfg.a_dtype, mode, k_major=True, mn0=mt * 64, k0=kk * kstep)
            row.append(d.start)
            a_desc = d
        a_starts.append(row)
    b_starts: list[int] = []
    for kk in range(cfg.block_k // kstep):
        d = descriptor(cfg.b_shape, cfg.b_dtype, mode, k_major=cfg.b_k_major, mn0=0, k0=kk * kstep)
        b_starts.append(d.start)
        b_desc = d
    assert a_desc is not None and b_desc is not None, "a config has an m64 tile and a k step"
    return a_starts, b_starts, (a_desc.lbo, a_desc.sbo, b_desc.lbo, b_desc.sbo)


def _loads(cfg: GemmConfig) -> list[str]:
    """The producer's TMA issues for one stage (`sa`, `sb`: the stage's shared addresses)."""
    mode = SwizzleMode.B128
    out = []
    for box in tma_boxes(cfg.a_shape, cfg.a_dtype, mode):
        out.append(
            f"tsir::tma_load_2d(sa + {box.smem_offset}u, tma_a, bar, kb * BK + {box.col0}, tm * BM);"
        )
    for i, box in enumerate(tma_boxes(cfg.b_shape, cfg.b_dtype, mode)):
        if cfg.b_k_major:  # B stored N x K: inner coordinate K, outer N
            coords = f"kb * BK + {box.col0}, tn * BN"
        else:  # B stored K x N: inner coordinate N, outer K
            coords = f"tn * BN + {box.col0}, kb * BK"
        if cfg.cluster_m == 1:
            out.append(f"tsir::tma_load_2d(sb + {box.smem_offset}u, tma_b, bar, {coords});")
        else:  # box i comes from the cluster's CTA i % CM, into every CTA of the cluster
            out.append(
                f"if (rank == {i % cfg.cluster_m}u) tsir::tma_load_2d_multicast(sb + "
                f"{box.smem_offset}u, tma_b, bar, {coords}, CLUSTER_MASK);"
            )
    return out


# The epilogues (C++ text; PACK: the fp32 pair -> 16-bit pair conversion).
_DIRECT_EPILOGUE = """\
      // Epilogue: d_r of m64 tile mt sits at row 16 * warp + lane / 4 + 8 * (r % 4 / 2), column
      // 8 * (r / 4) + 2 * (lane % 4) + r % 2 (wgmma_layouts.make_wgmma_c_fragment).
      const int row0 = tm * BM + c * WG_M + warp * 16 + lane / 4;
      const int col0 = tn * BN + 2 * (lane % 4);
      // Interior tiles (all but the last tile row and column) store without bounds checks.
      const bool interior = (tm + 1) * BM <= M && (tn + 1) * BN <= N;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int row = row0 + mt * 64 + 8 * h;
          unsigned short* out = C + (long long)row * ldc + col0;
          if (interior) {
#pragma unroll
            for (int j = 0; j < BN / 8; ++j) {
              *reinterpret_cast<unsigned*>(out + 8 * j) = PACK(
                  acc[mt][4 * j + 2 * h] * scale, acc[mt][4 * j + 2 * h + 1] * scale);
            }
          } else if (row < M) {
#pragma unroll
            for (int j = 0; j < BN / 8; ++j) {
              const int col = col0 + 8 * j;
              const unsigned packed = PACK(
                  acc[mt][4 * j + 2 * h] * scale, acc[mt][4 * j + 2 * h + 1] * scale);
              if (col + 1 < N) {
                *reinterpret_cast<unsigned*>(out + 8 * j) = packed;
              } else if (col < N) {
                out[8 * j] = (unsigned short)(packed & 0xFFFFu);
              }
            }
          }
        }
      }
"""

_TMA_STORE_EPILOGUE = """\
      // Epilogue through the staging tile: warpgroup c's rows [c * WG_M, (c + 1) * WG_M) as
      // BN / 64 panels of WG_M x 64 elements, each a TMA box in the 128B swizzle (16-byte chunk q
      // of row r at chunk q ^ (r % 8): a warp's 8 rows hit 8 different chunks, no bank conflict).
      // d_r of m64 tile mt sits at row 16 * warp + lane / 4 + 8 * (r % 4 / 2), column
      // 8 * (r / 4) + 2 * (lane % 4) + r % 2 (wgmma_layouts.make_wgmma_c_fragment).
      const unsigned slab = cbuf + c * (WG_M * BN * 2u);
      if (threadIdx.x % 128 == 0) tsir::tma_store_wait_read<0>();  // the last tile's store read it
      tsir::named_barrier_sync(1 + c, 128);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int r = mt * 64 + warp * 16 + lane / 4 + 8 * h;
#pragma unroll
          for (int j = 0; j < BN / 8; ++j) {
            const unsigned addr = slab + (j / 8) * (WG_M * 128u) + r * 128u +
                                  ((j % 8) ^ (r % 8)) * 16u + 4u * (lane % 4);
            const unsigned packed = PACK(acc[mt][4 * j + 2 * h] * scale,
                                         acc[mt][4 * j + 2 * h + 1] * scale);
            asm volatile("st.shared.b32 [%0], %1;\\n" ::"r"(addr), "r"(packed) : "memory");
          }
        }
      }
      tsir::fence_proxy_async_shared();  // the generic writes, visible to the TMA store
      tsir::named_barrier_sync(1 + c, 128);
      if (threadIdx.x % 128 == 0) {
#pragma unroll
        for (int p = 0; p < BN / 64; ++p) {
          tsir::tma_store_2d(tma_c, slab + p * (WG_M * 128u), tn * BN + p * 64, tm * BM + c * WG_M);
        }
        tsir::tma_store_commit();
      }
"""


def generate(cfg: GemmConfig) -> str:
    """The CUDA C++ translation unit of `cfg` (one extern "C" kernel, KERNEL_NAME)."""
    cfg.check()
    a_starts, b_starts, (a_lbo, a_sbo, b_lbo, b_sbo) = _descriptor_table(cfg)
    mt_count = cfg.wg_m // 64
    k_steps = cfg.block_k // instruction_k(cfg.a_dtype)
    producer_regs, consumer_regs = cfg.registers
    kind = _KIND[(cfg.a_dtype, cfg.b_dtype)]
    trans_b = 0 if cfg.b_k_major else 1
    mma = "\n        ".join(
        f"tsir::wgmma_ss<{kind}, BN, 0, {trans_b}>(acc[{mt}], da + {a_starts[mt][kk] >> 4}u, "
        f"db + {b_starts[kk] >> 4}u, {'(kb > 0) ? 1 : 0' if kk == 0 else '1'});"
        for kk in range(k_steps)
        for mt in range(mt_count)
    )
    loads = "\n        ".join(_loads(cfg))
    scale = (
        "const float scale = scale_a[0] * scale_b[0];" if cfg.fp8 else "const float scale = 1.0f;"
    )
    cm = cfg.cluster_m
    release = (
        "tsir::mbarrier_arrive(empty0 + 8u * prev);"
        if cm == 1
        else "for (unsigned r = 0; r < CM; ++r) tsir::mbarrier_arrive_cluster(empty0 + 8u * prev, r);"
    )
    cluster_attr = f" __cluster_dims__({cm}, 1, 1)" if cm > 1 else ""
    pack = _PACK[cfg.out_dtype]
    epilogue = _TMA_STORE_EPILOGUE if cfg.tma_store else _DIRECT_EPILOGUE
    epilogue = epilogue.replace("PACK", pack)
    tma_c_param = (
        "\n              const __grid_constant__ tsir::TmaDescriptor tma_c,"
        if cfg.tma_store
        else ""
    )
    lines = f"""\
// tsir Hopper GEMM, variant {cfg.name}: generated by tsir/codegen/hopper_gemm.py.
#define TSIR_MBARRIER_TIMEOUT_CYCLES {cfg.mbarrier_timeout_cycles}
#include "tsir/cluster.h"
#include "tsir/wgmma.h"

namespace {{
// (enumerators: NVRTC would emit namespace-scope constexpr variables as unused globals)
enum : int {{ BM = {cfg.block_m}, BN = {cfg.block_n}, BK = {cfg.block_k} }};
enum : int {{ STAGES = {cfg.stages}, CONSUMERS = {cfg.consumers}, GROUP_M = {max(1, cfg.group_m // cm)} }};
enum : int {{ WG_M = BM / CONSUMERS, MT = {mt_count}, CM = {cm} }};
enum : unsigned short {{ CLUSTER_MASK = {(1 << cm) - 1} }};
enum : unsigned {{ A_BYTES = {cfg.a_bytes}u, STAGE_BYTES = {cfg.stage_bytes}u, C_BYTES = {cfg.c_bytes}u }};

// Tile `t` -> (tile row, tile column): column-major inside groups of GROUP_M tile rows, so the
// CTAs running at once share a few B panels and A panels in L2.
__device__ __forceinline__ void tile_coords(int t, int tiles_m, int tiles_n, int& tm, int& tn) {{
  const int per_group = GROUP_M * tiles_n;
  const int group = t / per_group;
  const int first = group * GROUP_M;
  const int rows = min(tiles_m - first, GROUP_M);
  const int r = t - group * per_group;
  tm = first + r % rows;
  tn = r / rows;
}}
}}  // namespace

extern "C" __global__ void __launch_bounds__({cfg.threads}, 1){cluster_attr}
{KERNEL_NAME}(const __grid_constant__ tsir::TmaDescriptor tma_a,
              const __grid_constant__ tsir::TmaDescriptor tma_b,{tma_c_param}
              unsigned short* __restrict__ C, int M, int N, int K, int ldc,
              const float* __restrict__ scale_a, const float* __restrict__ scale_b) {{
  extern __shared__ unsigned char smem_raw[];
  // Swizzle patterns repeat from 1024-byte boundaries (descriptor base offset 0).
  const unsigned smem = (tsir::shared_u32(smem_raw) + 1023u) & ~1023u;
  const unsigned cbuf = smem + STAGES * STAGE_BYTES;  // the TMA-store staging tile, if any
  const unsigned full0 = cbuf + C_BYTES;
  const unsigned empty0 = full0 + 8u * STAGES;
  const int tiles_m = (M + BM - 1) / BM, tiles_n = (N + BN - 1) / BN;
  // Cluster tile rows: CM vertically adjacent tiles, one per CTA of the cluster (rank).
  const int tiles_mc = (tiles_m + CM - 1) / CM;
  const int num_tiles = tiles_mc * tiles_n, k_blocks = (K + BK - 1) / BK;
  const int wg = threadIdx.x / 128;
  const unsigned rank = CM > 1 ? tsir::cluster_ctarank() : 0u;

  if (threadIdx.x == 0) {{
    for (int s = 0; s < STAGES; ++s) {{
      tsir::mbarrier_init(full0 + 8u * s, 1);                // the producer's expect_tx arrival
      // one arrival per consumer warp of each CTA in the cluster
      tsir::mbarrier_init(empty0 + 8u * s, CONSUMERS * 4 * CM);
    }}
    tsir::mbarrier_init_fence();
  }}
  if (CM > 1) {{
    tsir::cluster_sync();  // the peers' barriers exist before any multicast or remote arrival
  }} else {{
    __syncthreads();
  }}

  if (wg == 0) {{
    // Producer warpgroup.
    tsir::setmaxnreg_dec<{producer_regs}>();
    if (threadIdx.x == 0) {{
      tsir::tma_prefetch_descriptor(tma_a);
      tsir::tma_prefetch_descriptor(tma_b);
      tsir::RingState<STAGES> ring{{0, 0u}};
      for (int t = blockIdx.x / CM; t < num_tiles; t += gridDim.x / CM) {{
        int tm, tn;
        tile_coords(t, tiles_mc, tiles_n, tm, tn);
        tm = tm * CM + rank;
        for (int kb = 0; kb < k_blocks; ++kb) {{
          const unsigned bar = full0 + 8u * ring.stage;
          tsir::mbarrier_wait(empty0 + 8u * ring.stage, ring.phase ^ 1u);
          tsir::mbarrier_arrive_expect_tx(bar, STAGE_BYTES);
          const unsigned sa = smem + ring.stage * STAGE_BYTES, sb = sa + A_BYTES;
        {loads}
          ring.advance();
        }}
      }}
    }}
  }} else {{
    // Consumer warpgroups: rows [(wg - 1) * WG_M, wg * WG_M) of each tile.
    tsir::setmaxnreg_inc<{consumer_regs}>();
    const int c = wg - 1;
    const int warp = threadIdx.x / 32 % 4, lane = threadIdx.x % 32;
    const unsigned long long desc_a0 =
        tsir::wgmma_desc(smem + c * WG_M * 128u, {a_lbo}u, {a_sbo}u, tsir::kSwizzle128B);
    const unsigned long long desc_b0 =
        tsir::wgmma_desc(smem + A_BYTES, {b_lbo}u, {b_sbo}u, tsir::kSwizzle128B);
    {scale}
    tsir::RingState<STAGES> ring{{0, 0u}};
    float acc[MT][BN / 2];
    for (int t = blockIdx.x / CM; t < num_tiles; t += gridDim.x / CM) {{
      int tm, tn;
      tile_coords(t, tiles_mc, tiles_n, tm, tn);
      tm = tm * CM + rank;
      int prev = 0;
      for (int kb = 0; kb < k_blocks; ++kb) {{
        tsir::mbarrier_wait(full0 + 8u * ring.stage, ring.phase);
        const unsigned stage_off = (ring.stage * STAGE_BYTES) >> 4;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) tsir::wgmma_fence_operands(acc[mt]);
        tsir::wgmma_fence();
        // Descriptor starts (>> 4) from tsir.layout.wgmma_layouts.descriptor, per (k step, m64 tile).
        const unsigned long long da = desc_a0 + stage_off, db = desc_b0 + stage_off;
        {mma}
        tsir::wgmma_commit();
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) tsir::wgmma_fence_operands(acc[mt]);
        // The k-block before this one is done: its stage may be refilled.
        tsir::wgmma_wait<1>();
        if (kb > 0 && lane == 0) {{
          {release}
        }}
        prev = ring.stage;
        ring.advance();
      }}
      tsir::wgmma_wait<0>();
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) tsir::wgmma_fence_operands(acc[mt]);
      if (k_blocks > 0 && lane == 0) {{
        {release}
      }}

{epilogue}    }}
    if ({int(cfg.tma_store)} && threadIdx.x % 128 == 0) tsir::tma_store_wait<0>();
  }}
{"  tsir::cluster_sync();  // no CTA leaves while a peer may still multicast or arrive into it" if cm > 1 else ""}
}}
"""
    return lines
