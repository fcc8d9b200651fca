"""PlanSharedMemory: every shared buffer of a kernel becomes a slice of one dynamic allocation.

Requires: ThreadSync done (it reasons about distinct buffers).
Guarantees: each shared `Allocate` is replaced by a `DeclBuffer` at a 16-byte aligned (or the buffer's
own alignment) offset into the kernel's pool `buf_dyn_shmem`, and `KernelLaunch.dyn_shared_bytes` is
the pool size (plus 1 KiB of slack when a buffer needs 1024-byte alignment: the code generator
aligns the pool's base), checked against the target's per-block limit.
"""

from __future__ import annotations

from tsir.buffer import Buffer, make_buffer
from tsir.errors import UnsupportedError
from tsir.expr import BufferLoad, PrimExpr, const_value
from tsir.function import PrimFunc
from tsir.stmt import Allocate, BufferStore, DeclBuffer, KernelLaunch, Stmt
from tsir.visitor import Mutator, collect

from .infra import PassContext, register_pass
from .lower_shared_layout import async_proxy_buffers

__all__ = ["PlanSharedMemory", "POOL_NAME", "REALIGN", "needs_realignment"]

POOL_NAME = "buf_dyn_shmem"
SHARED_SCOPES = ("shared", "shared.dyn")


REALIGN = 1024


def needs_realignment(allocs: list[Allocate] | list[Buffer]) -> bool:
    """Does the pool hold a buffer that must sit on a 1024-byte boundary?"""
    return any((a.buffer if isinstance(a, Allocate) else a).align >= REALIGN for a in allocs)


def buffer_bytes(b: Buffer) -> int:
    n = b.dtype.bytes
    for d in b.shape:
        c = const_value(d)
        if c is None:
            raise UnsupportedError(
                f"shared buffer `{b.name}` has a symbolic shape", where="PlanSharedMemory"
            )
        n *= c
    return n


class _Rewrite(Mutator):
    def __init__(self, pool: Buffer, offsets: dict[Buffer, int]):
        super().__init__()
        self.pool = pool
        self.offsets = offsets

    def visit_Allocate(self, s: Allocate) -> Stmt:
        body = self.visit(s.body)
        if s.buffer in self.offsets:
            return DeclBuffer(s.buffer, self.pool, self.offsets[s.buffer], body)
        return s.replace(body=body) if body is not s.body else s


class _Realign(Mutator):
    """Each buffer of `new` replaced by its realigned copy."""

    def __init__(self, new: dict[Buffer, Buffer]):
        super().__init__()
        self.new = new

    def visit_Allocate(self, s: Allocate) -> Stmt:
        body = self.visit(s.body)
        return Allocate(self.new.get(s.buffer, s.buffer), body)

    def visit_BufferLoad(self, e: BufferLoad) -> PrimExpr:
        e = self.generic_visit(e)  # type: ignore[assignment]
        return e.replace(buffer=self.new[e.buffer]) if e.buffer in self.new else e

    def visit_BufferStore(self, s: BufferStore) -> Stmt:
        s = self.generic_visit(s)  # type: ignore[assignment]
        return s.replace(buffer=self.new[s.buffer]) if s.buffer in self.new else s


class _Kernels(Mutator):
    def __init__(self, ctx: PassContext):
        super().__init__()
        self.ctx = ctx

    def visit_KernelLaunch(self, k: KernelLaunch) -> Stmt:
        allocs = [a for a in collect(k.body, Allocate) if a.buffer.scope in SHARED_SCOPES]
        if not allocs:
            return k
        # TMA writes shared memory at 128-byte aligned addresses, whatever the tile's layout: a
        # row-major destination (no swizzle gave it an alignment) is aligned like the pool.
        low = {
            b: b.replace(align=REALIGN)
            for b in async_proxy_buffers(k.body)
            if b.scope in SHARED_SCOPES and b.align < 128
        }
        if low:
            k = k.replace(body=_Realign(low).visit(k.body))
            allocs = [a for a in collect(k.body, Allocate) if a.buffer.scope in SHARED_SCOPES]
        offsets: dict[Buffer, int] = {}
        total = 0
        for a in allocs:
            align = max(16, a.buffer.align)
            total = (total + align - 1) // align * align
            offsets[a.buffer] = total
            total += buffer_bytes(a.buffer)
        limit = getattr(self.ctx.target, "max_shared_memory_per_block", None)
        if limit is not None and total > limit:
            sizes = ", ".join(f"{a.buffer.name}: {buffer_bytes(a.buffer)} B" for a in allocs)
            raise UnsupportedError(
                f"kernel `{k.name}` needs {total} bytes of shared memory ({sizes}); "
                f"{self.ctx.target} allows {limit} per block",
                where="PlanSharedMemory",
            )
        pool = make_buffer(POOL_NAME, (total,), "uint8", "shared.dyn", align=1024)
        body = _Rewrite(pool, offsets).visit(k.body)
        # Tiles whose swizzle the hardware computes from absolute addresses (TMA, wgmma) need the
        # pool itself on a 1024-byte boundary: the kernel aligns its base within 1 KiB of slack
        # (codegen), which CUDA's guarantee of 16 bytes for dynamic shared memory does not give.
        size = total + (REALIGN if needs_realignment(allocs) else 0)
        return k.replace(body=Allocate(pool, body), dyn_shared_bytes=size)


@register_pass("PlanSharedMemory")
def PlanSharedMemory(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Place all shared buffers of each kernel in one dynamic shared-memory pool."""
    return _Kernels(ctx).visit(func)
