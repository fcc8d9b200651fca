"""CUDA C++ code generation: one translation unit per Module, readable and NVRTC-clean.

A dispatch table maps node types to printing methods (built once); target facts (type names,
constants, math functions) come from `ctypes_table`. Integer floor division prints as C division
when the analyzer proves both operands non-negative, else through tsir's header.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tsir.passes.plan_shared_memory import REALIGN, needs_realignment

from tsir.arith import Analyzer
from tsir.buffer import Buffer
from tsir.dtype import DataType, int32
from tsir.errors import UnsupportedError
from tsir.expr import (
    EQ,
    GE,
    GT,
    LE,
    LT,
    NE,
    Add,
    And,
    Broadcast,
    BufferLoad,
    Call,
    Cast,
    Div,
    FloatImm,
    FloorDiv,
    FloorMod,
    IntImm,
    Let,
    Max,
    Min,
    Mul,
    Not,
    Or,
    PrimExpr,
    Ramp,
    Select,
    StringImm,
    Sub,
    Var,
    const_value,
)
from tsir.function import DeviceKernel, Module
from tsir.grid_swizzle import panel_coords, swizzle_of
from tsir.stmt import (
    Allocate,
    AttrStmt,
    BufferStore,
    DeclBuffer,
    Evaluate,
    For,
    ForKind,
    IfThenElse,
    LetStmt,
    SeqStmt,
    Stmt,
)
from tsir.visitor import collect, walk

from .ctypes_table import HEADER_OF, c_float_literal, c_type, math_function, vector_word

__all__ = ["generate_cuda", "KernelPrinter"]

_BINARY = {Add: ("+", 12), Sub: ("-", 12), Mul: ("*", 13), Div: ("/", 13)}
_CMP = {EQ: ("==", 9), NE: ("!=", 9), LT: ("<", 10), LE: ("<=", 10), GT: (">", 10), GE: (">=", 10)}
_BITWISE = {
    "bitwise_and": ("&", 8),
    "bitwise_or": ("|", 6),
    "bitwise_xor": ("^", 7),
    "shift_left": ("<<", 11),
    "shift_right": (">>", 11),
}
_RESERVED = {
    "int",
    "float",
    "double",
    "char",
    "short",
    "long",
    "unsigned",
    "signed",
    "void",
    "bool",
    "if",
    "else",
    "for",
    "while",
    "do",
    "return",
    "const",
    "static",
    "struct",
    "class",
    "union",
    "auto",
    "switch",
    "case",
    "default",
    "break",
    "continue",
    "goto",
    "new",
    "delete",
    "this",
    "half",
    "template",
    "typename",
    "namespace",
    "true",
    "false",
    "threadIdx",
    "blockIdx",
    "blockDim",
    "gridDim",
    "warpSize",
    "register",
    "volatile",
    "inline",
    "operator",
    "private",
    "public",
}
PRIMARY = 16

# Device-header functions and the positions of their pointer arguments they only read.
_READ_ONLY_ARGS: dict[str, tuple[int, ...]] = {
    "tsir.async_copy.cp_async_16": (1,),
}

# Device-header parameters that are references to register arrays (`float (&d)[N / 2]`): in the IR
# the address of the first element; printed as that array. Function -> {argument position:
# (element type, length from the call's template arguments)}.
_ARRAY_REF_ARGS: dict[str, dict[int, tuple[str, Callable[[list[str]], int]]]] = {
    "tsir.wgmma.wgmma_ss": {0: ("float", lambda t: int(t[1]) // 2)},
    "tsir.wgmma.wgmma_rs": {
        0: ("float", lambda t: int(t[1]) // 2),
        1: ("const unsigned", lambda t: 4),
    },
    "tsir.wgmma.wgmma_fence_operands": {0: ("float", lambda t: int(t[0]))},
    "tsir.wgmma.wgmma_fence_operands_u32": {0: ("unsigned", lambda t: int(t[0]))},
}


def _template_args(op: str) -> tuple[str, list[str]]:
    """("tsir.h.fn", ["A", "B"]) of "tsir.h.fn<A, B>"."""
    base, _, rest = op.partition("<")
    return base, [a.strip() for a in rest.rstrip(">").split(",")] if rest else []


class KernelPrinter:
    """Prints one DeviceKernel."""

    def __init__(self, kernel: DeviceKernel, includes: set[str]):
        self.kernel = kernel
        self.includes = includes
        self.lines: list[str] = []
        self.level = 0
        self.names: dict[Any, str] = {}
        self.taken: set[str] = set()
        self.analyzer = Analyzer()
        self.expr_table: dict[type, Callable[[Any], tuple[str, int]]] = {
            Var: self.e_var,
            IntImm: self.e_int,
            FloatImm: self.e_float,
            StringImm: self.e_string,
            Add: self.e_binary,
            Sub: self.e_binary,
            Mul: self.e_binary,
            Div: self.e_binary,
            FloorDiv: self.e_floordiv,
            FloorMod: self.e_floormod,
            Min: self.e_minmax,
            Max: self.e_minmax,
            EQ: self.e_cmp,
            NE: self.e_cmp,
            LT: self.e_cmp,
            LE: self.e_cmp,
            GT: self.e_cmp,
            GE: self.e_cmp,
            And: self.e_logic,
            Or: self.e_logic,
            Not: self.e_not,
            Select: self.e_select,
            Cast: self.e_cast,
            BufferLoad: self.e_load,
            Call: self.e_call,
            Let: self.e_let,
            Ramp: self.e_vector,
            Broadcast: self.e_vector,
        }
        self.stmt_table: dict[type, Callable[[Any], None]] = {
            SeqStmt: self.s_seq,
            For: self.s_for,
            IfThenElse: self.s_if,
            LetStmt: self.s_let,
            BufferStore: self.s_store,
            Evaluate: self.s_evaluate,
            Allocate: self.s_allocate,
            DeclBuffer: self.s_decl,
            AttrStmt: self.s_attr,
        }

    # -- names -----------------------------------------------------------------------------------
    def name(self, obj: Var | Buffer) -> str:
        n = self.names.get(obj)
        if n is None:
            base = obj.name if obj.name.isidentifier() else "v"
            if base in _RESERVED or base.startswith("__"):
                base = f"{base}_"
            n, k = base, 0
            while n in self.taken:
                k += 1
                n = f"{base}_{k}"
            self.taken.add(n)
            self.names[obj] = n
        return n

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.level + line)

    # -- kernel ----------------------------------------------------------------------------------
    def print_kernel(self) -> str:
        k = self.kernel
        for b in k.params:
            if isinstance(b, Buffer):
                self._note_type(b.dtype)
        written = {s.buffer for s in collect(k.body, BufferStore)}
        # A device-header function given `&buf[i]` may write through it, unless it is known to
        # only read that argument.
        for call in collect(k.body, Call):
            read_only = _READ_ONLY_ARGS.get(call.op, ())
            for pos, arg in enumerate(call.args):
                if pos in read_only:
                    continue
                if (
                    isinstance(arg, Call)
                    and arg.op == "address_of"
                    and isinstance(arg.args[0], BufferLoad)
                ):
                    written.add(arg.args[0].buffer)
        # A write through a view (T.view) writes its base.
        views = collect(k.body, DeclBuffer)
        grew = True
        while grew:
            grew = False
            for d in views:
                if d.buffer in written and d.base not in written:
                    written.add(d.base)
                    grew = True
        self._read_only = {
            p
            for p in k.params
            if isinstance(p, Buffer) and p.scope != "symmetric" and p not in written
        }
        params = []
        for p in k.params:
            if isinstance(p, Buffer) and p.scope == "symmetric":
                # Peer GPUs read and write symmetric memory while the kernel runs: it is neither
                # read-only nor unaliased (const/__restrict__ would allow stale non-coherent loads).
                params.append(f"{c_type(p.dtype)}* {self.name(p)}")
            elif isinstance(p, Buffer):
                const = "" if p in written else "const "
                params.append(f"{const}{c_type(p.dtype)}* __restrict__ {self.name(p)}")
            elif p.dtype.is_handle:
                # A TMA tensor map (SplitHostDevice): 128 bytes by value, in constant memory.
                self.includes.add("tsir/tma.h")
                params.append(f"const __grid_constant__ tsir::TmaDescriptor {self.name(p)}")
            else:
                params.append(f"{c_type(p.dtype)} {self.name(p)}")
        for v, n in zip(k.block_vars, k.grid):
            self.analyzer.bind(v, IntImm(0, v.dtype), n)
        for v, n in zip(k.thread_vars, k.threads):
            self.analyzer.bind(v, IntImm(0, v.dtype), IntImm(n, v.dtype))
        threads = 1
        for t in k.threads:
            threads *= t
        self.level = 1
        used = set(collect(k.body, Var))
        swizzle = swizzle_of(collect(k.body, AttrStmt))
        if swizzle is not None and len(k.block_vars) == 2:
            # Blocks run in T.use_swizzle's panels: a permutation of the grid, so the block
            # indices keep the ranges the passes reasoned with.
            lin = Var("blk_lin", int32)
            self.analyzer.bind(lin, IntImm(0, int32), k.grid[0] * k.grid[1])
            self.emit(f"const int {self.name(lin)} = blockIdx.y * gridDim.x + blockIdx.x;")
            coords = panel_coords(lin, k.grid[0], k.grid[1], *swizzle)
            for v, value in zip(k.block_vars, coords):
                self.emit(f"const int {self.name(v)} = {self.expr(value)};")
            used -= set(k.block_vars)
        for v, axis in zip(k.block_vars, "xyz"):
            if v in used:
                self.emit(f"const int {self.name(v)} = blockIdx.{axis};")
        for v, axis in zip(k.thread_vars, "xyz"):
            if v in used:
                self.emit(f"const int {self.name(v)} = threadIdx.{axis};")
        self.stmt(k.body)
        # setmaxnreg takes effect only under a register cap at entry: one block per SM.
        reconfig = any(c.op.startswith("tsir.mbarrier.setmaxnreg") for c in collect(k.body, Call))
        bounds = f"{threads}, 1" if reconfig else f"{threads}"
        head = f'extern "C" __global__ void __launch_bounds__({bounds}) {k.name}('
        sig = head + ", ".join(params) + ") {"
        if len(sig) > 100:
            indent = " " * 4
            sig = head + "\n" + ",\n".join(indent + p for p in params) + ") {"
        return "\n".join([sig, *self.lines, "}"])

    def _note_type(self, dt: DataType) -> None:
        h = HEADER_OF.get(dt.name)
        if h:
            self.includes.add(h)

    # -- statements ------------------------------------------------------------------------------
    def stmt(self, s: Stmt) -> None:
        fn = self.stmt_table.get(type(s))
        if fn is None:
            raise UnsupportedError(
                f"the CUDA code generator cannot print {type(s).__name__} statements"
            )
        fn(s)

    def s_seq(self, s: SeqStmt) -> None:
        for x in s.stmts:
            self.stmt(x)

    def s_for(self, s: For) -> None:
        if s.kind not in (ForKind.SERIAL, ForKind.UNROLLED, ForKind.PIPELINED):
            raise UnsupportedError(
                f"loop `{s.loop_var.name}` of kind {s.kind.value} reached code generation"
            )
        self.analyzer.bind(s.loop_var, s.min, s.extent, override=True)
        v = self.name(s.loop_var)
        t = c_type(s.loop_var.dtype)
        end = self.expr(s.min + s.extent if const_value(s.min) != 0 else s.extent)
        if s.kind is ForKind.UNROLLED:
            self.emit("#pragma unroll")
        self.emit(f"for ({t} {v} = {self.expr(s.min)}; {v} < {end}; ++{v}) {{")
        self.level += 1
        self.stmt(s.body)
        self.level -= 1
        self.emit("}")

    def s_if(self, s: IfThenElse) -> None:
        self.emit(f"if ({self.expr(s.cond)}) {{")
        self.level += 1
        with self.analyzer.assume(s.cond):
            self.stmt(s.then_case)
        self.level -= 1
        if s.else_case is not None:
            self.emit("} else {")
            self.level += 1
            with self.analyzer.assume(Not(s.cond)):
                self.stmt(s.else_case)
            self.level -= 1
        self.emit("}")

    def s_let(self, s: LetStmt) -> None:
        self.analyzer.bind(s.var, s.value, override=True)
        self.emit(f"const {c_type(s.var.dtype)} {self.name(s.var)} = {self.expr(s.value)};")
        self.stmt(s.body)

    def s_attr(self, s: AttrStmt) -> None:
        self.stmt(s.body)

    def s_evaluate(self, s: Evaluate) -> None:
        self.emit(f"{self.expr(s.value)};")

    def s_allocate(self, s: Allocate) -> None:
        b = s.buffer
        if b.scope == "shared.dyn" and b.dtype.name == "uint8" and b.align >= 16:
            # The kernel's dynamic shared-memory pool (PlanSharedMemory); its size is a launch argument.
            decls = [d.buffer for d in collect(s.body, DeclBuffer) if d.base is b]
            if needs_realignment(decls):
                # Swizzled TMA/wgmma tiles: the base on a 1024-byte boundary (PlanSharedMemory
                # added the slack); dynamic shared memory is only guaranteed 16 bytes.
                self.includes.add("tsir/mbarrier.h")
                raw = f"{self.name(b)}_raw"
                self.emit(f"extern __shared__ __align__({b.align}) unsigned char {raw}[];")
                pad = f"((0u - tsir::shared_u32({raw})) & {REALIGN - 1}u)"
                self.emit(f"unsigned char* {self.name(b)} = {raw} + {pad};")
            else:
                self.emit(f"extern __shared__ __align__({b.align}) unsigned char {self.name(b)}[];")
            self.stmt(s.body)
            return
        if b.scope not in ("local", "local.var", "local.fragment"):
            raise UnsupportedError(
                f"`{b.name}` ({b.scope}) must be placed by PlanSharedMemory before codegen"
            )
        self._note_type(b.dtype)
        n = 1
        for d in b.shape:
            c = const_value(d)
            if c is None:
                raise UnsupportedError(f"local buffer `{b.name}` needs a constant size")
            n *= c
        # Vector moves reinterpret register arrays as 2..16-byte words: align them for that.
        nbytes = n * b.dtype.bytes
        width = 16
        while width > 1 and nbytes % width:
            width //= 2
        align = f"alignas({width}) " if n > 1 and width > b.dtype.bytes else ""
        if n == 1 and b.scope == "local.var":
            self.emit(f"{c_type(b.dtype)} {self.name(b)}[1];")
        else:
            self.emit(f"{align}{c_type(b.dtype)} {self.name(b)}[{n}];")
        self.stmt(s.body)

    def s_decl(self, s: DeclBuffer) -> None:
        b = s.buffer
        self._note_type(b.dtype)
        t = c_type(b.dtype)
        if s.base in getattr(self, "_read_only", ()):  # a view of a `const` parameter
            t = f"const {t}"
            self._read_only.add(b)
        self.emit(
            f"{t}* {self.name(b)} = reinterpret_cast<{t}*>({self.name(s.base)} + {s.byte_offset});"
        )
        self.stmt(s.body)

    def s_store(self, s: BufferStore) -> None:
        lanes = s.indices[-1].dtype.lanes if s.indices else 1
        if lanes == 1:
            self.emit(
                f"{self.name(s.buffer)}[{self.expr(self.flat_index(s.buffer, s.indices))}] = {self.expr(s.value)};"
            )
            return
        word = vector_word(lanes * s.buffer.dtype.bytes)
        dst = f"*reinterpret_cast<{word}*>({self.address(s.buffer, s.indices)})"
        if isinstance(s.value, BufferLoad):
            src = (
                f"*reinterpret_cast<const {word}*>({self.address(s.value.buffer, s.value.indices)})"
            )
        elif (
            isinstance(s.value, Broadcast)
            and const_value(s.value.value) == 0
            or (
                isinstance(s.value, Broadcast)
                and isinstance(s.value.value, FloatImm)
                and s.value.value.value == 0.0
            )
        ):
            src = {"uint4": "make_uint4(0u, 0u, 0u, 0u)", "uint2": "make_uint2(0u, 0u)"}.get(
                word, f"({word})0"
            )
        else:
            raise UnsupportedError(
                f"vector store of {type(s.value).__name__} into `{s.buffer.name}`"
            )
        self.emit(f"{dst} = {src};")

    # -- memory ------------------------------------------------------------------------------------
    def flat_index(self, b: Buffer, indices: tuple[PrimExpr, ...]) -> PrimExpr:
        if len(indices) == 1:
            return indices[0]
        flat: PrimExpr | None = None
        for idx, stride in zip(indices, b.row_major_strides()):
            term = idx * stride
            flat = term if flat is None else flat + term
        assert flat is not None
        return flat

    def address(self, b: Buffer, indices: tuple[PrimExpr, ...]) -> str:
        last = indices[-1]
        base = last.base if isinstance(last, Ramp) else last
        flat = self.flat_index(b, (*indices[:-1], base))
        if const_value(flat) == 0:
            return self.name(b)
        return f"{self.name(b)} + {self.wrap(flat, 12)}"

    # -- expressions -------------------------------------------------------------------------------
    def expr(self, e: PrimExpr) -> str:
        return self.ex(e)[0]

    def ex(self, e: PrimExpr) -> tuple[str, int]:
        fn = self.expr_table.get(type(e))
        if fn is None:
            raise UnsupportedError(
                f"the CUDA code generator cannot print {type(e).__name__} expressions"
            )
        return fn(e)

    def wrap(self, e: PrimExpr, prec: int) -> str:
        text, p = self.ex(e)
        return f"({text})" if p < prec else text

    def e_var(self, e: Var) -> tuple[str, int]:
        return self.name(e), PRIMARY

    def e_int(self, e: IntImm) -> tuple[str, int]:
        dt = e.dtype
        if dt.is_bool:
            return ("true" if e.value else "false"), PRIMARY
        suffix = {"int64": "LL", "uint32": "u", "uint64": "ull"}.get(dt.name, "")
        if dt.name in ("int8", "int16", "uint8", "uint16"):
            return f"({c_type(dt)}){e.value}", 15
        if e.value < 0:
            if dt.name == "int32" and e.value == -(1 << 31):
                return "(-2147483647 - 1)", PRIMARY
            if dt.name == "int64" and e.value == -(1 << 63):
                return "(-9223372036854775807LL - 1)", PRIMARY
            return f"{e.value}{suffix}", 15
        return f"{e.value}{suffix}", PRIMARY

    def e_float(self, e: FloatImm) -> tuple[str, int]:
        self._note_type(e.dtype)
        text = c_float_literal(e.value, e.dtype)
        return text, 15 if text.startswith("-") else PRIMARY

    def e_string(self, e: StringImm) -> tuple[str, int]:
        return '"' + e.value.replace("\\", "\\\\").replace('"', '\\"') + '"', PRIMARY

    def e_binary(self, e: Any) -> tuple[str, int]:
        op, p = _BINARY[type(e)]
        return f"{self.wrap(e.a, p)} {op} {self.wrap(e.b, p + 1)}", p

    def nonneg(self, e: PrimExpr) -> bool:
        if e.dtype.is_unsigned:
            return True
        try:
            return self.analyzer.const_int_bound(e).min_value >= 0
        except Exception:  # noqa: BLE001 - an analyzer that cannot bound means "unknown"
            return False

    def e_floordiv(self, e: FloorDiv) -> tuple[str, int]:
        if self.nonneg(e.a) and self.nonneg(e.b):
            return f"{self.wrap(e.a, 13)} / {self.wrap(e.b, 14)}", 13
        self.includes.add("tsir/common.h")
        return f"tsir::floordiv({self.expr(e.a)}, {self.expr(e.b)})", PRIMARY

    def e_floormod(self, e: FloorMod) -> tuple[str, int]:
        if self.nonneg(e.a) and self.nonneg(e.b):
            return f"{self.wrap(e.a, 13)} % {self.wrap(e.b, 14)}", 13
        self.includes.add("tsir/common.h")
        return f"tsir::floormod({self.expr(e.a)}, {self.expr(e.b)})", PRIMARY

    def e_minmax(self, e: Any) -> tuple[str, int]:
        name = "min" if isinstance(e, Min) else "max"
        if e.dtype.is_float:
            fn = math_function(name, e.dtype) or name
        else:
            fn = name
        return f"{fn}({self.expr(e.a)}, {self.expr(e.b)})", PRIMARY

    def e_cmp(self, e: Any) -> tuple[str, int]:
        op, p = _CMP[type(e)]
        return f"{self.wrap(e.a, p + 1)} {op} {self.wrap(e.b, p + 1)}", p

    def e_logic(self, e: Any) -> tuple[str, int]:
        op, p = ("&&", 5) if isinstance(e, And) else ("||", 4)
        return f"{self.wrap(e.a, p)} {op} {self.wrap(e.b, p + 1)}", p

    def e_not(self, e: Not) -> tuple[str, int]:
        return f"!{self.wrap(e.a, 15)}", 15

    def e_select(self, e: Select) -> tuple[str, int]:
        # C's ?: evaluates only the chosen side, so guarded loads stay safe.
        return (
            f"{self.wrap(e.cond, 4)} ? {self.wrap(e.true_value, 4)} : {self.wrap(e.false_value, 3)}",
            3,
        )

    def e_cast(self, e: Cast) -> tuple[str, int]:
        self._note_type(e.dtype)
        src, dst = e.value.dtype, e.dtype
        if (
            src.name in ("float16", "bfloat16")
            and dst.is_int
            or dst.name in ("float16", "bfloat16")
            and src.is_int
        ):
            # Half types convert through float: their integer constructors are not all present.
            return f"static_cast<{c_type(dst)}>(static_cast<float>({self.expr(e.value)}))", PRIMARY
        return f"static_cast<{c_type(dst)}>({self.expr(e.value)})", PRIMARY

    def e_load(self, e: BufferLoad) -> tuple[str, int]:
        if e.dtype.lanes != 1:
            raise UnsupportedError(f"a vector load of `{e.buffer.name}` outside a vector move")
        return f"{self.name(e.buffer)}[{self.expr(self.flat_index(e.buffer, e.indices))}]", PRIMARY

    def e_call(self, e: Call) -> tuple[str, int]:
        op = e.op
        if op == "sync_threads":
            return "__syncthreads()", PRIMARY
        if op == "sync_warp":
            return "__syncwarp()", PRIMARY
        if op == "thread_fence":
            return "__threadfence()", PRIMARY
        if op in _BITWISE:
            sym, p = _BITWISE[op]
            return f"{self.wrap(e.args[0], p)} {sym} {self.wrap(e.args[1], p + 1)}", p
        if op == "bitwise_not":
            return f"~{self.wrap(e.args[0], 15)}", 15
        if op == "address_of":
            (load,) = e.args
            if not isinstance(load, BufferLoad):
                raise UnsupportedError("address_of takes one buffer element")
            return f"&{self.wrap(load, PRIMARY)}", 15
        args = [self.expr(a) for a in e.args]
        base, targs = _template_args(op)
        for pos, (elem, length) in _ARRAY_REF_ARGS.get(base, {}).items():
            if pos < len(args):
                args[pos] = f"*reinterpret_cast<{elem}(*)[{length(targs)}]>({args[pos]})"
        if op.startswith("tsir."):
            # A device-header function: "tsir.<header>.<function>" includes "tsir/<header>.h" and
            # calls tsir::<function> (which may carry template arguments).
            header, _, fn = op[len("tsir.") :].partition(".")
            if not fn:
                raise UnsupportedError(f"call {op!r}: expected tsir.<header>.<function>")
            self.includes.add(f"tsir/{header}.h")
            return f"tsir::{fn}({', '.join(args)})", PRIMARY
        if op.startswith("nvshmem."):
            # NVSHMEM's device API (T.nvshmem.*): "nvshmem.<function>" calls <function> as NVSHMEM
            # names it; tsir/nvshmem.h includes nvshmem.h / nvshmemx.h (runtime/nvshmem.py).
            self.includes.add("tsir/nvshmem.h")
            return f"{op[len('nvshmem.') :]}({', '.join(args)})", PRIMARY
        if op == "atomic_add":
            return f"atomicAdd({args[0]}, {args[1]})", PRIMARY
        if op == "abs":
            if e.dtype.is_float:
                fn = math_function("abs_float", e.dtype)
            else:
                fn = "llabs" if e.dtype.bits == 64 else "abs"
            return f"{fn}({args[0]})", PRIMARY
        if op.startswith("extern:"):
            return f"{op[len('extern:') :]}({', '.join(args)})", PRIMARY
        if op in ("isnan", "isinf", "reinterpret"):
            return self._bits_call(e, args[0]), PRIMARY
        fn = math_function(op, e.dtype)
        if fn is None:
            # fp8 and the few half ops CUDA lacks: compute in float, convert back.
            inner = ", ".join(f"static_cast<float>({a})" for a in args)
            f32 = math_function(op, DataType("float32"))
            return f"static_cast<{c_type(e.dtype)}>({f32}({inner}))", PRIMARY
        return f"{fn}({', '.join(args)})", PRIMARY

    def _bits_call(self, e: Call, arg: str) -> str:
        """T.isnan / T.isinf (through the half types' own tests, or float32 for fp8) and
        T.reinterpret (`tsir::bit_cast`, tsir/math.h)."""
        self.includes.add("tsir/math.h")
        src = e.args[0].dtype
        if e.op == "reinterpret":
            self._note_type(e.dtype)
            return f"tsir::bit_cast<{c_type(e.dtype)}>({arg})"
        if src.name in ("float16", "bfloat16"):
            test = "__hisnan" if e.op == "isnan" else "__hisinf"
            return f"({test}({arg}) != 0)"
        if src.name in ("float32", "float64"):
            return f"tsir::{'is_nan' if e.op == 'isnan' else 'is_inf'}({arg})"
        if src.is_float:  # fp8: test the value widened to float32
            return f"tsir::{'is_nan' if e.op == 'isnan' else 'is_inf'}(static_cast<float>({arg}))"
        return "false"

    def e_let(self, e: Let) -> tuple[str, int]:
        raise UnsupportedError("Let expressions must be lowered to LetStmt before code generation")

    def e_vector(self, e: Any) -> tuple[str, int]:
        raise UnsupportedError(f"a vector {type(e).__name__} outside a vector memory move")


def generate_cuda(module: Module) -> str:
    """The CUDA C++ source of every kernel of a module, with only the headers it needs."""
    includes: set[str] = set()
    bodies = [KernelPrinter(k, includes).print_kernel() for k in module.kernels]
    head = [f"#include <{h}>" for h in sorted(includes) if not h.startswith("tsir/")]
    head += [f'#include "{h}"' for h in sorted(includes) if h.startswith("tsir/")]
    parts = ["// Generated by tsir.", *head, ""] if head else ["// Generated by tsir.", ""]
    # T.import_source: the program's own CUDA, after the includes and before the kernels.
    sources = module.host.attr("tsir.import_source", ())
    imported = "".join(f"// T.import_source\n{src.rstrip()}\n\n" for src in sources)
    return "\n".join(parts) + "\n" + imported + "\n\n".join(bodies) + "\n"


_ = walk
