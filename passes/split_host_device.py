"""SplitHostDevice: each `KernelLaunch` becomes a `DeviceKernel` and a host-side `KernelCall`.

Requires: fully lowered kernels (shared memory planned).
Guarantees: a `Module` whose host function holds only host statements and `KernelCall`s; each
kernel's parameters are the tensor parameters it touches (in the function's order) and the
T.alloc_global buffers it touches (host-level global Allocates), then the dynamic dimensions and
scalar parameters it reads (in order of first declaration), then one handle parameter per distinct
TMA tensor map its body made (`tma_descriptor(...)`, in order of first use): the host binds each
to its `tma_descriptor` call in a LetStmt around the launch (the host program encodes the map),
the kernel takes it as a `__grid_constant__` parameter.
"""

from __future__ import annotations

from tsir.buffer import Buffer
from tsir.dtype import DataType
from tsir.expr import Call, PrimExpr, Var
from tsir.function import DeviceKernel, Module, PrimFunc
from tsir.stmt import Allocate, KernelCall, KernelLaunch, LetStmt, Stmt
from tsir.structural import structural_equal
from tsir.visitor import Mutator, collect, walk

from .infra import PassContext, register_pass

__all__ = ["SplitHostDevice", "host_scalars"]


def host_scalars(func: PrimFunc) -> list[Var]:
    """Dynamic dimensions (in order of appearance in parameter shapes), then scalar parameters."""
    out: dict[Var, None] = dict.fromkeys(func.dynamic_vars())  # identity-keyed: no `==` on Vars
    out.update((p, None) for p in func.params if isinstance(p, Var))
    return list(out)


class _Split(Mutator):
    def __init__(self, func: PrimFunc):
        super().__init__()
        self.func = func
        self.kernels: list[DeviceKernel] = []
        self.workspaces = [
            a.buffer for a in collect(func.body, Allocate) if a.buffer.scope == "global"
        ]

    def visit_KernelLaunch(self, k: KernelLaunch) -> Stmt:
        maps = _TensorMaps()
        k = k.replace(body=maps.visit(k.body))
        used_buffers: set[Buffer] = set()
        used_vars: set[Var] = set()
        for n in walk(k.body):
            if isinstance(n, Buffer):
                used_buffers.add(n)
            elif isinstance(n, Var):
                used_vars.add(n)
        # Scratch global memory the host allocates (T.alloc_global) travels like a parameter.
        bufs = [b for b in (*self.func.buffer_params, *self.workspaces) if b in used_buffers]
        scalars = [v for v in host_scalars(self.func) if v in used_vars]
        params = (*bufs, *scalars, *(v for v, _ in maps.maps))
        self.kernels.append(
            DeviceKernel(
                k.name,
                params,
                k.grid,
                k.threads,
                k.block_vars,
                k.thread_vars,
                k.body,
                k.dyn_shared_bytes,
            )
        )
        call: Stmt = KernelCall(k.name, k.grid, k.threads, k.dyn_shared_bytes, params)
        for v, value in reversed(maps.maps):
            call = LetStmt(v, value, call)
        return call


class _TensorMaps(Mutator):
    """Each distinct `tma_descriptor(...)` of a kernel body becomes a handle Var."""

    def __init__(self) -> None:
        super().__init__()
        self.maps: list[tuple[Var, Call]] = []

    def visit_Call(self, c: Call) -> PrimExpr:
        if c.op != "tma_descriptor":
            return self.generic_visit(c)
        for v, value in self.maps:
            if structural_equal(value, c):
                return v
        name = next((b.name for b in walk(c) if isinstance(b, Buffer)), "t")
        v = Var(f"{name}_tmap", DataType("handle"))
        self.maps.append((v, c))
        return v


@register_pass("SplitHostDevice")
def SplitHostDevice(func: PrimFunc, ctx: PassContext) -> Module:
    """Outline kernels into DeviceKernels; the host function keeps KernelCall calls."""
    s = _Split(func)
    host = s.visit(func)
    return Module(host, tuple(s.kernels))
