"""`T.nvshmem.*`: NVSHMEM's device API, called as NVSHMEM names it.

Operands follow NVSHMEM: `dst`/`src`/`sig` are a buffer (its first element) or one element (its
address), sizes are in **bytes**, `pe` is a rank. Remote sides must be NVSHMEM symmetric memory
(`tsir.runtime.dist.empty(..., backend="nvshmem")`); declare those parameters with the default
`scope="global"` (tsir's "symmetric" scope means tsir's own CUDA-IPC heap, which the launcher checks
pointers against; NVSHMEM's heap is NVSHMEM's to check, as in NVSHMEM itself). `scope` picks the
thread, warp or block variant (`nvshmemx_putmem_nbi_block`, ...): with warp or block every thread of
it calls with the same arguments. Signals are uint64 (`sig_op` "set" or "add"; `cmp` one of
eq ne gt le lt ge). Each call is a `Call` of op `"nvshmem.<C function>"`; codegen prints the
function and includes NVSHMEM's headers (runtime/nvshmem.py has the NVRTC side).
"""

from __future__ import annotations

from typing import Any

from ..dtype import DataType, int32
from ..errors import BuildError, DTypeError
from ..expr import Call, IntImm, PrimExpr, cast, convert
from ..stmt import Evaluate
from ..tileop.distributed import address_of
from .dist_checks import element, in_kernel, peer_rank

__all__ = ["nvshmem", "NvshmemBuilder", "SIGNAL_OPS", "CMP"]

SIGNAL_OPS = {"set": 9, "add": 10}  # NVSHMEM_SIGNAL_SET / _ADD
CMP = {"eq": 0, "ne": 1, "gt": 2, "le": 3, "lt": 4, "ge": 5}  # NVSHMEM_CMP_*
_SCOPE_SUFFIX = {"thread": "", "warp": "_warp", "block": "_block"}
# tsir dtype -> NVSHMEM's TYPENAME in nvshmem_<TYPENAME>_p/_g
_TYPENAMES = {
    "float32": "float",
    "float64": "double",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
}
_I64 = DataType("int64")
uint64 = DataType("uint64")


def _fn(base: str, scope: str, what: str) -> str:
    if scope not in _SCOPE_SUFFIX:
        raise BuildError(f"T.nvshmem.{what}: scope must be thread, warp or block, got {scope!r}")
    # Thread-scope RMA is nvshmem_*; warp/block variants are NVSHMEM's extensions, nvshmemx_*.
    return f"nvshmem_{base}" if scope == "thread" else f"nvshmemx_{base}{_SCOPE_SUFFIX[scope]}"


def _int(value: Any, what: str, dtype: DataType) -> PrimExpr:
    if isinstance(value, bool) or not isinstance(value, (int, PrimExpr)):
        raise BuildError(f"{what} must be an integer, got {value!r}")
    e = convert(value)
    if not e.dtype.is_int or e.dtype.lanes != 1:
        raise DTypeError(f"{what} `{e}` must be an integer, got {e.dtype}")
    return e if e.dtype == dtype else cast(dtype, e)


def _pe(value: Any, what: str) -> PrimExpr:
    pe = peer_rank(value, f"T.nvshmem.{what} pe")
    if pe is None:
        raise BuildError(f"T.nvshmem.{what}: pe is required (a rank)")
    return pe


def _addr(x: Any, what: str, remote: bool) -> PrimExpr:
    load = element(x, f"T.nvshmem.{what}")
    if load.buffer.scope not in ("global", "symmetric") and remote:
        raise BuildError(
            f"T.nvshmem.{what}: `{load.buffer.name}` is in {load.buffer.scope} memory; the remote "
            f"side of an NVSHMEM transfer is NVSHMEM symmetric (global) memory"
        )
    return address_of(load)


def _signal(sig: Any, what: str) -> PrimExpr:
    load = element(sig, f"T.nvshmem.{what} sig")
    if load.buffer.dtype != uint64:
        raise DTypeError(
            f"T.nvshmem.{what}: signal `{load.buffer.name}` must be uint64, got {load.buffer.dtype}"
        )
    return address_of(load)


def _emit(name: str, args: tuple[PrimExpr, ...], what: str) -> None:
    b = in_kernel(f"T.nvshmem.{what}")
    b.frame.emit(Evaluate(Call(int32, f"nvshmem.{name}", args)))


class NvshmemBuilder:
    """The `T.nvshmem` namespace (one instance, `nvshmem`)."""

    SIGNAL_SET = "set"
    SIGNAL_ADD = "add"

    def my_pe(self) -> PrimExpr:
        in_kernel("T.nvshmem.my_pe")
        return Call(int32, "nvshmem.nvshmem_my_pe", ())

    def n_pes(self) -> PrimExpr:
        in_kernel("T.nvshmem.n_pes")
        return Call(int32, "nvshmem.nvshmem_n_pes", ())

    def _rma(
        self, base: str, dst: Any, src: Any, nbytes: Any, pe: Any, scope: str, put: bool
    ) -> None:
        what = f"{base}({scope})"
        args = (
            _addr(dst, f"{base} dst", remote=put),
            _addr(src, f"{base} src", remote=not put),
            _int(nbytes, f"T.nvshmem.{base} nbytes", _I64),
            _pe(pe, base),
        )
        _emit(_fn(base, scope, what), args, base)

    def putmem(self, dst: Any, src: Any, nbytes: Any, pe: Any, scope: str = "thread") -> None:
        self._rma("putmem", dst, src, nbytes, pe, scope, put=True)

    def putmem_nbi(self, dst: Any, src: Any, nbytes: Any, pe: Any, scope: str = "thread") -> None:
        self._rma("putmem_nbi", dst, src, nbytes, pe, scope, put=True)

    def getmem(self, dst: Any, src: Any, nbytes: Any, pe: Any, scope: str = "thread") -> None:
        self._rma("getmem", dst, src, nbytes, pe, scope, put=False)

    def getmem_nbi(self, dst: Any, src: Any, nbytes: Any, pe: Any, scope: str = "thread") -> None:
        self._rma("getmem_nbi", dst, src, nbytes, pe, scope, put=False)

    def _put_signal(
        self,
        base: str,
        dst: Any,
        src: Any,
        nbytes: Any,
        sig: Any,
        signal: Any,
        sig_op: str,
        pe: Any,
        scope: str,
    ) -> None:
        if sig_op not in SIGNAL_OPS:
            raise BuildError(f"T.nvshmem.{base}: sig_op must be 'set' or 'add', got {sig_op!r}")
        args = (
            _addr(dst, f"{base} dst", remote=True),
            _addr(src, f"{base} src", remote=False),
            _int(nbytes, f"T.nvshmem.{base} nbytes", _I64),
            _signal(sig, base),
            _int(signal, f"T.nvshmem.{base} signal", uint64),
            IntImm(SIGNAL_OPS[sig_op], int32),
            _pe(pe, base),
        )
        _emit(_fn(base, scope, base), args, base)

    def putmem_signal(
        self,
        dst: Any,
        src: Any,
        nbytes: Any,
        sig: Any,
        signal: Any,
        sig_op: str,
        pe: Any,
        scope: str = "block",
    ) -> None:
        self._put_signal("putmem_signal", dst, src, nbytes, sig, signal, sig_op, pe, scope)

    def putmem_signal_nbi(
        self,
        dst: Any,
        src: Any,
        nbytes: Any,
        sig: Any,
        signal: Any,
        sig_op: str,
        pe: Any,
        scope: str = "block",
    ) -> None:
        self._put_signal("putmem_signal_nbi", dst, src, nbytes, sig, signal, sig_op, pe, scope)

    def signal_op(self, sig: Any, signal: Any, sig_op: str, pe: Any) -> None:
        if sig_op not in SIGNAL_OPS:
            raise BuildError(f"T.nvshmem.signal_op: sig_op must be 'set' or 'add', got {sig_op!r}")
        args = (
            _signal(sig, "signal_op"),
            _int(signal, "T.nvshmem.signal_op signal", uint64),
            IntImm(SIGNAL_OPS[sig_op], int32),
            _pe(pe, "signal_op"),
        )
        _emit("nvshmemx_signal_op", args, "signal_op")

    def signal_wait_until(self, sig: Any, cmp: str, value: Any) -> None:
        """Every calling thread waits until the local signal `sig` compares `cmp` to `value`."""
        if cmp not in CMP:
            raise BuildError(f"T.nvshmem.signal_wait_until: cmp must be one of {', '.join(CMP)}")
        args = (
            _signal(sig, "signal_wait_until"),
            IntImm(CMP[cmp], int32),
            _int(value, "T.nvshmem.signal_wait_until value", uint64),
        )
        _emit("nvshmem_signal_wait_until", args, "signal_wait_until")

    def p(self, dst: Any, value: Any, pe: Any) -> None:
        """One element `value` stored to `dst` on `pe` (nvshmem_<type>_p)."""
        load = element(dst, "T.nvshmem.p dst")
        t = _TYPENAMES.get(load.buffer.dtype.name)
        if t is None:
            raise DTypeError(f"T.nvshmem.p: no NVSHMEM typed put for {load.buffer.dtype}")
        v = convert(value, load.buffer.dtype)
        v = v if v.dtype == load.buffer.dtype else cast(load.buffer.dtype, v)
        _emit(f"nvshmem_{t}_p", (address_of(load), v, _pe(pe, "p")), "p")

    def g(self, src: Any, pe: Any) -> PrimExpr:
        """One element of `src` on `pe` (nvshmem_<type>_g), as an expression."""
        in_kernel("T.nvshmem.g")
        load = element(src, "T.nvshmem.g src")
        t = _TYPENAMES.get(load.buffer.dtype.name)
        if t is None:
            raise DTypeError(f"T.nvshmem.g: no NVSHMEM typed get for {load.buffer.dtype}")
        return Call(load.buffer.dtype, f"nvshmem.nvshmem_{t}_g", (address_of(load), _pe(pe, "g")))

    def quiet(self) -> None:
        _emit("nvshmem_quiet", (), "quiet")

    def fence(self) -> None:
        """NVSHMEM's ordering fence between puts to one PE (not a memory fence)."""
        _emit("nvshmem_fence", (), "fence")

    def barrier_all(self, scope: str = "thread") -> None:
        _emit(_fn("barrier_all", scope, "barrier_all"), (), "barrier_all")

    def sync_all(self, scope: str = "thread") -> None:
        _emit(_fn("sync_all", scope, "sync_all"), (), "sync_all")


nvshmem = NvshmemBuilder()
