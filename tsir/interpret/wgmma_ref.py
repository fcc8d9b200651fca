"""wgmma's ISA tables, for the interpreter: descriptor fields, the canonical shared-memory layouts
and the register fragments (PTX ISA, "Asynchronous Warpgroup Level Matrix Multiply-Accumulate":
"Matrix Descriptor Format", "Shared Memory Matrix Layout", "Register Fragments").

Written independently of `tsir.layout.wgmma_layouts` (the compiler's side), mirroring the
transcription in tests/hopper/ptx_wgmma_reference.py, so that a descriptor or swizzle the
compiler gets wrong reads the wrong elements here, as on the GPU. Canonical layouts, in bytes,
for an operand element (mn, k) with T = 16 / element size elements per 16-byte chunk:

- K-major, swizzled (S = 32/64/128 bytes): `start + (mn // 8) * SBO + (mn % 8) * S + k * esize`
  (LBO unused; one instruction's K stays inside an S-byte row);
- K-major, interleaved (no swizzle): `start + (mn // 8) * SBO + (k // T) * LBO + (mn % 8) * 16
  + (k % T) * esize`;
- MN-major (16-bit types), swizzled: `start + (mn // (S / esize)) * LBO + (k // 8) * SBO
  + (k % 8) * S + (mn % (S / esize)) * esize`;
- MN-major, interleaved: `start + (mn // T) * SBO + (k // 8) * LBO + (k % 8) * 16
  + (mn % T) * esize` (the ISA's ((T,1,m),(8,k)) : ((1,T,SBO),(1T,LBO)));

then the swizzle on the absolute address: bits [4, 4 + b) XOR bits [7, 7 + b), b = log2(S / 16).
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

__all__ = [
    "KINDS",
    "Descriptor",
    "a_fragment",
    "d_fragment",
    "decode",
    "instruction_k",
    "operand_addresses",
    "parse_kind",
]

_F16, _BF16 = np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)
_E4M3, _E5M2 = np.dtype(ml_dtypes.float8_e4m3fn), np.dtype(ml_dtypes.float8_e5m2)

# WgmmaKind (wgmma.h) -> (A type, B type).
KINDS: dict[int, tuple[np.dtype, np.dtype]] = {
    0: (_F16, _F16),
    1: (_BF16, _BF16),
    2: (_E4M3, _E4M3),
    3: (_E4M3, _E5M2),
    4: (_E5M2, _E4M3),
    5: (_E5M2, _E5M2),
}
_KIND_NAMES = {
    "kWgmmaF16": 0,
    "kWgmmaBF16": 1,
    "kWgmmaE4M3E4M3": 2,
    "kWgmmaE4M3E5M2": 3,
    "kWgmmaE5M2E4M3": 4,
    "kWgmmaE5M2E5M2": 5,
}


def parse_kind(text: str) -> int | None:
    """A KIND template argument (`tsir::kWgmmaF16`, `kWgmmaF16` or `0`) -> 0..5, else None."""
    t = text.strip().removeprefix("tsir::")
    if t in _KIND_NAMES:
        return _KIND_NAMES[t]
    if t.isdigit() and int(t) in KINDS:
        return int(t)
    return None


def instruction_k(kind: int) -> int:
    return 16 if kind <= 1 else 32


_SWIZZLE_BYTES = {0: 0, 1: 128, 2: 64, 3: 32}
_RESERVED = (0x3 << 14) | (0x3 << 30) | (0x7 << 46) | (0x3FF << 52)


@dataclass(frozen=True, slots=True)
class Descriptor:
    start: int  # byte address (shared window)
    lbo: int  # bytes
    sbo: int  # bytes
    base_offset: int
    swizzle: int  # bytes: 0, 32, 64, 128
    reserved: int  # reserved bits that are set (must be 0)


def decode(desc: int) -> Descriptor:
    d = int(desc) & ((1 << 64) - 1)
    return Descriptor(
        start=(d & 0x3FFF) << 4,
        lbo=((d >> 16) & 0x3FFF) << 4,
        sbo=((d >> 32) & 0x3FFF) << 4,
        base_offset=(d >> 49) & 0x7,
        swizzle=_SWIZZLE_BYTES[(d >> 62) & 0x3],
        reserved=d & _RESERVED,
    )


def _swizzle(addr: np.ndarray, swizzle: int) -> np.ndarray:
    if swizzle == 0:
        return addr
    return addr ^ (((addr >> 7) % (swizzle // 16)) << 4)


def operand_addresses(d: Descriptor, rows: int, k: int, esize: int, k_major: bool) -> np.ndarray:
    """Shared address of the first byte of each operand element (mn, k): shape (rows, k)."""
    mn = np.arange(rows, dtype=np.int64)[:, None]
    kk = np.arange(k, dtype=np.int64)[None, :]
    per_chunk = 16 // esize
    if d.swizzle == 0:
        if k_major:
            lin = (mn // 8) * d.sbo + (kk // per_chunk) * d.lbo + (mn % 8) * 16
            return d.start + lin + (kk % per_chunk) * esize
        lin = (mn // per_chunk) * d.sbo + (kk // 8) * d.lbo + (kk % 8) * 16
        return d.start + lin + (mn % per_chunk) * esize
    if k_major:
        lin = d.start + (mn // 8) * d.sbo + (mn % 8) * d.swizzle + kk * esize
    else:
        span = d.swizzle // esize
        lin = d.start + (mn // span) * d.lbo + (kk // 8) * d.sbo + (kk % 8) * d.swizzle
        lin = lin + (mn % span) * esize
    return _swizzle(lin, d.swizzle)


def _ids() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tid = np.arange(128)
    warp, lane = tid // 32, tid % 32
    return warp, lane >> 2, lane % 4


def d_fragment(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of accumulator register i of thread tid: arrays of shape (128, n / 2)."""
    warp, g, t = _ids()
    i = np.arange(n // 2)[None, :]
    row = 16 * warp[:, None] + g[:, None] + 8 * ((i % 4) >= 2)
    col = 8 * (i // 4) + 2 * t[:, None] + (i & 1)
    return row, col


def a_fragment(esize: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of A element i (in register-byte order) of thread tid, A from registers:
    (128, 8) for 16-bit types (m64 x k16), (128, 16) for 8-bit ones (m64 x k32)."""
    warp, g, t = _ids()
    if esize == 2:
        i = np.arange(8)[None, :]
        row = 16 * warp[:, None] + g[:, None] + 8 * np.isin(i, (2, 3, 6, 7))
        col = 2 * t[:, None] + (i & 1) + 8 * (i >= 4)
        return row, col
    i = np.arange(16)[None, :]
    row = 16 * warp[:, None] + g[:, None] + 8 * (((i >= 4) & (i < 8)) | (i >= 12))
    col = 4 * t[:, None] + (i & 3) + 16 * (i >= 8)
    return row, col
