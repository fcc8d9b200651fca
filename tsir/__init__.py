"""tsir: a tile-level GPU compiler in Python (TileLang's model plus TileScale's distributed ops)."""

from . import knobs
from .buffer import Buffer, BufferRegion, Range
from .builder import lang as T
from .dtype import DataType, dtype
from .errors import (
    ArithError,
    BuildError,
    CompileError,
    DTypeError,
    InternalError,
    LaunchError,
    LayoutConflictError,
    TSIRError,
    UnsupportedError,
    VerifyError,
)
from .expr import *  # noqa: F403
from .function import DeviceKernel, Module, PrimFunc
from .node import Node
from .stmt import *  # noqa: F403
from .structural import assert_structural_equal, structural_equal, structural_hash
from .target import Target

__version__ = "0.1.0"

# In a source checkout passes/, codegen/ and runtime/ sit beside tsir/ (pyproject maps them into the
# tsir namespace when installed); let `tsir.passes` etc. resolve there too, so PYTHONPATH=. works.
import os as _os

_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "passes", "__init__.py")) and _root not in __path__:
    __path__.append(_root)
del _os, _root


def compile(func, target=None):  # noqa: A001
    """Lower, generate CUDA C++ and compile with NVRTC; returns a callable `tsir.runtime.Kernel`.

    `target`: an architecture ("sm_90a"), a `tsir.Target`, "cuda" (the present GPU), or None: the
    `tsir.knobs.target` knob (TSIR_TARGET, default "cuda"), as for `tsir.lower`."""
    # The runtime and the pipeline sit above the IR package: loaded on first use (DESIGN, "The
    # pipeline"), so `import tsir` stays light and never imports a pass.
    from .runtime.kernel import compile as _compile

    return _compile(func, _default_target(target))


def lower(func, target=None):
    """The IR after every pass of the default pipeline (`.stages`, `.module`); `target` as for
    `tsir.compile` (None: the `tsir.knobs.target` knob, TSIR_TARGET, default "cuda")."""
    from .passes import lower as _lower  # the pipeline sits above the IR package (see compile)

    return _lower(func, _default_target(target))


def _default_target(target):
    return knobs.target if target is None else target


from . import interpret  # noqa: E402, F401  (a callable module: tsir.interpret(func, *args))

# Imported eagerly: a lazy `def verify` here would be replaced by the submodule `tsir.verify` the
# first time anything imports it (the import system sets the package attribute to the module).
from .verify import verify  # noqa: E402, F401
