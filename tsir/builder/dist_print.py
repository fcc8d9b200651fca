"""Builder forms of the distributed tile ops and builtins for the printer, so that printed IR reads
(and rebuilds) as the `T.*` calls that made it."""

from __future__ import annotations

from typing import Any

from ..expr import PrimExpr
from ..tileop.distributed import BarrierBlocksOp, GetOp, LdOp, PutOp, StOp, WaitOp


def _register_printers() -> None:
    from .. import printer_stmt
    from ..printer_expr import CALL_SUGAR
    from ..printer_stmt import register_tile_op_printer

    CALL_SUGAR["tsir.distributed.rank"] = "T.get_rank"
    CALL_SUGAR["tsir.distributed.num_ranks"] = "T.get_num_ranks"
    for scope in ("cta", "gpu", "sys"):
        printer_stmt._SYNC_CALLS[f"tsir.sync.fence_{scope}"] = f"T.fence_{scope}()"

    def peer(p: Any, name: str, pe: PrimExpr | None) -> str:
        return "" if pe is None else f", {name}={p(pe)}"

    @register_tile_op_printer(PutOp)
    def _put(p: Any, op: PutOp) -> str:
        return f"T.put_{op.scope}({p(op.src)}, {p(op.dst)}, {p(op.size)}{peer(p, 'dst_pe', op.pe)})"

    @register_tile_op_printer(GetOp)
    def _get(p: Any, op: GetOp) -> str:
        return f"T.get_{op.scope}({p(op.src)}, {p(op.dst)}, {p(op.size)}{peer(p, 'src_pe', op.pe)})"

    def order(op: Any) -> str:
        text = f', sem="{op.sem}"' if op.sem != "weak" else ""
        if op.sem not in ("weak", "volatile"):
            text = f', scope="{op.scope}"' + text
        return text + (", na=True" if op.na else "")

    @register_tile_op_printer(StOp)
    def _st(p: Any, op: StOp) -> str:
        value = p(op.value, op.dst.buffer.dtype)
        return f"T.st({p(op.dst)}, {value}{order(op)}{peer(p, 'dst_pe', op.pe)})"

    @register_tile_op_printer(LdOp)
    def _ld(p: Any, op: LdOp) -> str:
        nc = ", nc=True" if op.nc else ""
        return f"T.ld({p(op.src)}, {p(op.value)}{order(op)}{nc}{peer(p, 'src_pe', op.pe)})"

    @register_tile_op_printer(WaitOp)
    def _wait(p: Any, op: WaitOp) -> str:
        default = "sys" if op.pe is not None or op.flag.buffer.scope == "symmetric" else "gpu"
        text = f"T.wait_{op.relation}({p(op.flag)}, {p(op.value, op.flag.buffer.dtype)}"
        text += peer(p, "peer", op.pe)
        text += f", timeout_cycles={op.timeout_cycles}" if op.timeout_cycles else ""
        return text + (f', scope="{op.scope}"' if op.scope != default else "") + ")"

    @register_tile_op_printer(BarrierBlocksOp)
    def _barrier(p: Any, op: BarrierBlocksOp) -> str:
        name = "barrier_blocks" if op.fence else "sync_blocks"
        timeout = f", timeout_cycles={op.timeout_cycles}" if op.timeout_cycles else ""
        return f"T.{name}({p(op.barrier)}{timeout})"


_register_printers()
