"""Generate the Python fast path of a `Launcher`, once per host program.

The generated `_run(self, *args, stream=None)` (installed as `__call__`) does, with no loops and
no lookups by parameter name: import each tensor through DLPack (`tvm_ffi.from_dlpack`), check
device / dtype / rank / fixed dims / symbol consistency / strides / alignment with cheap conservative
tests, check scalar types and ranges, write every kernel parameter of every step into this thread's
packed parameter buffer with one `struct.pack_into` (which also range-checks each value against its C
type), then launch each step with `cuLaunchKernel(..., kernelParams=<int address of a void*[]>, ...)`.
Any doubt (a test fails, an attribute is missing, a value does not pack) raises `_Defer` and hands
the call to `_slow`, the authoritative binder (binder.py), which raises the precise error or accepts
and launches. The fast path may reject valid calls; it must never accept one the binder rejects.

The dtype test reads the argument's own `.dtype` (torch.float32, numpy.dtype('float16'), ...) and
looks it up in a per-parameter set of dtype objects that the binder has already seen valid for that
parameter: tvm-ffi's `Tensor.dtype` builds a string through an FFI call (~0.5 us), the framework's
attribute costs ~50 ns. The first call with each dtype object goes through the binder.

`_tail(dev_id, st, bufs, <grid names>)` is the launch half on its own, for `_slow`.

Names in the generated source: argument i is `a{i}`; tensor i's tvm-ffi tensor and data pointer
are `t{i}` and `p{i}`; dynamic symbol `M` is `s_M`; names starting with `_` come from the namespace
the Launcher provides (see `NAMESPACE`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from tsir.errors import TSIRError

from .host_program import (
    ARG_CTYPES,
    COPY_NAMES,
    GRID_LIMITS,
    SCALAR_DTYPES,
    HostProgram,
    ScalarParam,
    TensorParam,
)

__all__ = ["NAMESPACE", "Generated", "generate"]

# What the generated code expects to find in its globals (provided by launch.py).
NAMESPACE = [
    "_Defer",
    "_fd",
    "_slow",
    "_tls",
    "_new_bufs",
    "_pack",
    "_sfns",
    "_stream_fn",
    "_norm_stream",
    "_cstreams",
    "_new_cstream",
    "_devs",
    "_load",
    "_ctx_get",
    "_switch",
    "_restore",
    "_launch",
    "_launch_err",
    "_grid_err",
    "_heap",
    "_cp_fence",
    "_cp_copy",
    "_cp_join",
    "_cp_ranks",
]


@dataclass(frozen=True, slots=True)
class Generated:
    source: str
    pack_format: str  # struct format of every step's parameter slots, in order
    pack_names: tuple[str, ...]  # the binding name written into each slot
    slots: tuple[int, ...]  # number of parameter slots of each step
    grid_names: tuple[str, ...]  # binding names `_tail` takes after (dev_id, st, bufs)
    dtype_sets: tuple[str, ...]  # names of the per-tensor "dtype objects seen valid" sets: _dt{i}


class _Rename(ast.NodeTransformer):
    def __init__(self, local: dict[str, str]) -> None:
        self.local = local

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.local:
            return ast.copy_location(ast.Name(self.local[node.id], ast.Load()), node)
        return node


def _grid_code(expr: str, local: dict[str, str]) -> tuple[str, int | None]:
    """The grid expression over local names, and its value when it is a constant."""
    tree = _Rename(local).visit(ast.parse(expr.strip(), mode="eval"))
    code = ast.unparse(tree)
    try:
        value = eval(
            compile(tree, "<grid>", "eval"), {"__builtins__": {"min": min, "max": max}}, {}
        )
    except NameError:
        return code, None
    return code, int(value)


def generate(program: HostProgram) -> Generated:
    params = program.params
    local: dict[str, str] = {}
    for i, p in enumerate(params):
        local[p.name] = f"p{i}" if isinstance(p, TensorParam) else f"a{i}"
    for sym in sorted(program.symbols()):
        local[sym] = f"s_{sym}"
    tensors = [(i, p) for i, p in enumerate(params) if isinstance(p, TensorParam)]
    n = len(params)
    pre = f"({', '.join(f't{i}' for i, _ in tensors)}{',' if len(tensors) == 1 else ''})"
    slow = f"return _slow(args, {pre}, stream)"
    defer = (
        "raise _Defer"  # inside the try below: a `return _slow(...)` there would run twice on error
    )

    lines = ["def _run(self, *args, stream=None):"]
    w = lines.append
    if not tensors:
        w("    return _slow(args, None, stream)")
    else:
        w(f"    if len(args) != {n}:")
        w("        return _slow(args, None, stream)")
        w(f"    {', '.join(f'a{i}' for i in range(n))}{',' if n == 1 else ''} = args")
        w(f"    {' = '.join(f't{i}' for i, _ in tensors)} = None")
        w("    try:")
        for i, _ in tensors:
            w(f"        t{i} = _fd(a{i})")
        w("    except Exception:")
        w(f"        {slow}")
        w("    try:")
        bound: set[str] = set()
        for j, (i, p) in enumerate(tensors):
            conds = []
            if j == 0:
                w(f"        dev = t{i}.__dlpack_device__()")
                conds.append("dev[0] != 2")
            else:
                conds.append(f"t{i}.__dlpack_device__() != dev")
            conds += [f"a{i}.dtype not in _dt{i}", f"t{i}.ndim != {len(p.shape)}"]
            if p.strides is None:
                conds.append(f"not t{i}.is_contiguous()")
            for k, d in enumerate(p.shape):
                if isinstance(d, int):
                    conds.append(f"t{i}.size({k}) != {d}")
                elif d in bound:
                    conds.append(f"t{i}.size({k}) != s_{d}")
                else:
                    w(f"        s_{d} = t{i}.size({k})")
                    bound.add(d)
            if p.strides is not None:
                w(f"        st{i} = t{i}.strides")
                for k, s in enumerate(p.strides):
                    if isinstance(s, int):
                        conds.append(f"st{i}[{k}] != {s}")
                    elif s in bound:
                        conds.append(f"st{i}[{k}] != s_{s}")
                    else:
                        w(f"        s_{s} = st{i}[{k}]")
                        conds.append(f"s_{s} < 0")
                        bound.add(s)
            w(f"        p{i} = t{i}.data_ptr()")
            if p.symmetric:
                conds.append(_symmetric_cond(i, p))
            if p.align > 1:
                conds.append(f"p{i} & {p.align - 1}")
            w(f"        if {' or '.join(conds)}:")
            w(f"            {defer}")
        for i, p in enumerate(params):
            if isinstance(p, ScalarParam):
                kind, lo, hi = SCALAR_DTYPES[p.dtype]
                if kind == "int":
                    cond = f"type(a{i}) is not int or not {lo} <= a{i} <= {hi}"
                elif kind == "bool":
                    cond = f"type(a{i}) is not bool"
                else:
                    cond = f"type(a{i}) is not float and type(a{i}) is not int"
                w(f"        if {cond}:")
                w(f"            {defer}")
    pack_names = tuple(a.name for step in program.steps for a in step.args)
    pack_format = "<" + "".join(ARG_CTYPES[a.ctype] for step in program.steps for a in step.args)
    if tensors:
        w("        try:")
        w("            bufs = _tls.bufs")
        w("        except AttributeError:")
        w("            bufs = _new_bufs()")
        if pack_names:
            w(f"        _pack(bufs[0], 0, {', '.join(local[nm] for nm in pack_names)})")
        w("    except Exception:")
        w(f"        {slow}")
        first = tensors[0][0]
        w("    if stream is None:")
        w(f"        sf = _sfns.get(type(a{first}))")
        w("        if sf is None:")
        w(f"            sf = _stream_fn(type(a{first}))")
        w("        st = sf(dev[1])")
        w("    elif type(stream) is int and stream >= 0:")
        w("        st = stream")
        w("    else:")
        w("        st = _norm_stream(stream)")
        _emit_tail(program, local, lines, "dev[1]")

    grid_names = sorted(
        {name for step in program.steps for g in step.grid for name in _names(g)}
        | _copy_names(program)
    )
    w("")
    w(f"def _tail(dev_id, st, bufs{''.join(', ' + local[nm] for nm in grid_names)}):")
    _emit_tail(program, local, lines, "dev_id")
    return Generated(
        source="\n".join(lines) + "\n",
        pack_format=pack_format,
        pack_names=pack_names,
        slots=tuple(len(step.args) for step in program.steps),
        grid_names=tuple(grid_names),
        dtype_sets=tuple(f"_dt{i}" for i, _ in tensors),
    )


def _symmetric_cond(i: int, p: TensorParam) -> str:
    """True when tensor i may lie outside the symmetric heap `_heap` = [start, end): the binder
    then decides (and names the argument)."""
    if p.strides is not None:
        return "True"  # strided symmetric tensors always take the binder's exact check
    size = " * ".join(str(d) if isinstance(d, int) else f"s_{d}" for d in p.shape) or "1"
    return f"not _heap[0] <= p{i} <= _heap[1] - {size} * {ITEMSIZE[p.dtype]}"


# Bytes per element of each tensor dtype (tsir spelling).
ITEMSIZE = {
    "bool": 1,
    "int8": 1,
    "uint8": 1,
    "float8_e4m3": 1,
    "float8_e5m2": 1,
    "int16": 2,
    "uint16": 2,
    "float16": 2,
    "bfloat16": 2,
    "int32": 4,
    "uint32": 4,
    "float32": 4,
    "int64": 8,
    "uint64": 8,
    "float64": 8,
}


def _names(expr: str) -> set[str]:
    return {
        node.id
        for node in ast.walk(ast.parse(expr.strip(), mode="eval"))
        if isinstance(node, ast.Name) and node.id not in ("min", "max")
    }


def _numel(p: TensorParam) -> str:
    return " * ".join(str(d) if isinstance(d, int) else d for d in p.shape) or "1"


def _copy_names(program: HostProgram) -> set[str]:
    """The binding names the copy steps read (tensor pointers, symbols, scalars): `_tail` takes them."""
    tensors = {p.name: p for p in program.params if isinstance(p, TensorParam)}
    out: set[str] = set()
    for c in program.copies:
        for t in (c.src, c.dst, c.flag):
            if t is not None:
                out.add(t)
                out |= _names(_numel(tensors[t]))
        for e in c.exprs():
            out |= _names(e)
    return out - set(COPY_NAMES)


def _emit_copies(
    program: HostProgram, local: dict[str, str], lines: list[str], dev: str, before: int
) -> None:
    """The copy steps placed before launch `before` (see tsir.runtime.cpengine)."""
    group = [(j, c) for j, c in enumerate(program.copies) if c.before == before]
    if not group:
        return
    tensors = {p.name: p for p in program.params if isinstance(p, TensorParam)}
    w = lines.append

    def code(expr: str) -> str:
        return _grid_code(expr, local)[0]

    def operand(name: str, offset: str) -> str:
        return f"({local[name]}, {code(offset)}, {code(_numel(tensors[name]))})"

    w(f"        _cp_fence({dev}, cs)")
    for j, c in group:
        src_pe = "None" if c.src_pe is None else code(c.src_pe)
        dst_pe = "None" if c.dst_pe is None else code(c.dst_pe)
        flag = "None" if c.flag is None else operand(c.flag, c.flag_offset)
        w(
            f"        _cp_copy({dev}, {j}, {operand(c.src, c.src_offset)}, {src_pe}, "
            f"{operand(c.dst, c.dst_offset)}, {dst_pe}, {code(c.count)}, {flag}, "
            f"{code(c.flag_value)})"
        )


def _emit_tail(program: HostProgram, local: dict[str, str], lines: list[str], dev: str) -> None:
    w = lines.append
    if program.copies:
        local = {**local, "__rank": "_rk", "__num_ranks": "_nr"}
    w("    cs = _cstreams.get(st)")
    w("    if cs is None:")
    w("        cs = _new_cstream(st)")
    w(f"    ds = _devs.get({dev})")
    w("    if ds is None:")
    w(f"        ds = _load({dev})")
    w("    prev = None")
    w("    if _ctx_get()[1] != ds[0]:")
    w("        prev = _switch(ds[0])")
    w("    try:")
    body_start = len(lines)
    if program.copies and any(
        n in COPY_NAMES for c in program.copies for e in c.exprs() for n in _names(e)
    ):
        w("        _rk, _nr = _cp_ranks()")
    for k, step in enumerate(program.steps):
        _emit_copies(program, local, lines, dev, k)
        dims: list[str] = []
        dynamic: list[tuple[int, str]] = []
        empty = False
        for d, expr in enumerate(step.grid):
            code, const = _grid_code(expr, local)
            if const is None:
                w(f"        g{k}{'xyz'[d]} = {code}")
                dims.append(f"g{k}{'xyz'[d]}")
                dynamic.append((d, f"g{k}{'xyz'[d]}"))
            elif const < 0 or const > GRID_LIMITS[d]:
                raise TSIRError(
                    f"malformed host program: kernel {step.kernel!r} grid {'xyz'[d]} = {expr!r} is the "
                    f"constant {const}, outside [0, {GRID_LIMITS[d]}]",
                    where="HostProgram",
                )
            else:
                empty = empty or const == 0
                dims.append(str(const))
        if empty:
            w(
                f"        pass  # step {k} ({step.kernel}): a constant grid extent is 0, never launched"
            )
            continue
        grid = ", ".join(dims)
        bx, by, bz = step.block
        params = f"bufs[{k + 1}]"
        launch = (
            f"r = _launch(ds[{k + 1}], {grid}, {bx}, {by}, {bz}, {step.dyn_smem}, cs, {params}, 0)"
        )
        ind = "        "
        if dynamic:
            w(f"        if {' and '.join(f'{v} > 0' for _, v in dynamic)}:")
            over = " or ".join(f"{v} > {GRID_LIMITS[d]}" for d, v in dynamic)
            w(f"            if {over}:")
            w(f"                _grid_err({k}, ({grid}))")
            ind = "            "
        w(f"{ind}{launch}")
        w(f"{ind}if r[0]:")
        w(f"{ind}    _launch_err({k}, r[0], ({grid}), st)")
        if dynamic:
            w(f"        elif {' or '.join(f'{v} < 0' for _, v in dynamic)}:")
            w(f"            _grid_err({k}, ({grid}))")
    if program.copies:
        _emit_copies(program, local, lines, dev, len(program.steps))
        w(f"        _cp_join({dev}, cs)")
    if len(lines) == body_start:
        w("        pass")
    w("    finally:")
    w("        if prev is not None:")
    w("            _restore(prev)")
