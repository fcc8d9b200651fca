"""Layouts and fragments: where each element of a tile lives (a shared-memory slot, or a thread and
a register), the mma.sync operand/accumulator fragments, and bank-conflict-free shared swizzles.

- `Layout`, `Fragment`: the IR nodes and their algebra (forward, inverse, repeat, replicate, ...);
- `prove_fragment_contains`, `equivalent`: what layout inference asks of two layouts;
- `gemm_layouts`: `make_mma_{a,b,c}_fragment`, `WarpPartition`, `ldmatrix_a/b`;
- `swizzle`: `make_swizzled_layout` and the 128/64/32-byte swizzles, padding, `SwizzleMode`;
- `plot`: an SVG picture of a layout or fragment.
"""

from .analysis import equivalent, prove_fragment_contains
from .fragment import Fragment, fragment_of, require_fragment
from .gemm_layouts import (
    LdmatrixAccess,
    WarpPartition,
    ldmatrix_a,
    ldmatrix_b,
    make_mma_a_fragment,
    make_mma_b_fragment,
    make_mma_c_fragment,
)
from .layout import Layout, placeholders
from .plot import plot
from .swizzle import (
    SwizzleMode,
    detect_swizzle,
    make_full_bank_swizzle_layout,
    make_half_bank_swizzle_layout,
    make_padded_layout,
    make_quarter_bank_swizzle_layout,
    make_swizzle_layout,
    make_swizzled_layout,
    narrower_swizzle,
    swizzle_error,
)

__all__ = [
    "Layout",
    "Fragment",
    "fragment_of",
    "require_fragment",
    "placeholders",
    "prove_fragment_contains",
    "equivalent",
    "WarpPartition",
    "LdmatrixAccess",
    "ldmatrix_a",
    "ldmatrix_b",
    "make_mma_a_fragment",
    "make_mma_b_fragment",
    "make_mma_c_fragment",
    "SwizzleMode",
    "make_swizzle_layout",
    "make_full_bank_swizzle_layout",
    "make_half_bank_swizzle_layout",
    "make_quarter_bank_swizzle_layout",
    "make_padded_layout",
    "make_swizzled_layout",
    "detect_swizzle",
    "narrower_swizzle",
    "swizzle_error",
    "plot",
]
