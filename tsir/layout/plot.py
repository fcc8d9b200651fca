"""Draw a layout or fragment as an SVG grid (no dependencies beyond the standard library).

For a Fragment, each logical element is a cell coloured by its owning thread (hue: lane, lightness:
warp) and labelled `T<thread>` / `L<register>` (replica 0; the title says how many copies exist).
For a Layout, each cell shows the element's physical row-major offset, coloured by its 16-byte bank
group `(offset * bytes // 16) % 8`, which makes swizzles visible. Tiles of more than 2 dimensions
are drawn with the leading dimensions flattened into rows. Labels shrink, then disappear, as tiles
grow (up to 128 x 128 stays readable when zoomed).
"""

from __future__ import annotations

import colorsys
import html
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnsupportedError
from .fragment import Fragment
from .layout import Layout

__all__ = ["plot"]

_MARGIN = 40


def _color(hue: float, light: float) -> str:
    r, g, b = colorsys.hls_to_rgb(hue % 1.0, light, 0.65)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def _text(x: float, y: float, size: float, text: str, anchor: str = "middle") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size:.1f}" text-anchor="{anchor}">'
        f"{html.escape(text)}</text>"
    )


def _cells(layout: Layout, dtype_bits: int) -> tuple[int, int, list[tuple[str, str, str]], str]:
    """(rows, cols, [(fill, line1, line2)] row-major, title)."""
    shape = layout.const_input_shape()
    if shape is None:
        raise UnsupportedError("plot needs a layout over a constant shape")
    cols = shape[-1] if shape else 1
    rows = int(np.prod(shape[:-1], dtype=np.int64)) if len(shape) > 1 else 1
    t = layout.table()
    if isinstance(layout, Fragment):
        n = rows * cols
        # The replica is the last (fastest) input of the table: column 0 is replica 0.
        thread = t.outputs[-1].reshape(n, layout.replicate_size)[:, 0]
        local = np.zeros(n, dtype=np.int64)
        for out, extent in zip(t.outputs[:-1], layout.const_output_shape()):
            local = local * extent + out.reshape(n, layout.replicate_size)[:, 0]
        cells = [
            (
                _color((int(th) % 32) / 32.0, 0.45 + 0.3 * ((int(th) // 32) % 4) / 3.0),
                f"T{th}",
                f"L{lo}",
            )
            for th, lo in zip(thread.tolist(), local.tolist())
        ]
        title = (
            f"Fragment {tuple(shape)}: {layout.thread_extent} threads, "
            f"{layout.local_size} registers "
            f"each, replicated x{layout.replicate_size}"
        )
    else:
        offset = np.zeros(t.size, dtype=np.int64)
        for out, extent in zip(t.outputs, t.output_extents()):
            offset = offset * extent + out
        group = (offset * dtype_bits // 8 // 16) % 8
        cells = [
            (_color(g / 8.0, 0.6), str(o), "") for o, g in zip(offset.tolist(), group.tolist())
        ]
        title = (
            f"Layout {tuple(shape)} -> {t.output_extents()} "
            f"(colour: 16-byte bank group, {dtype_bits}-bit)"
        )
    return rows, cols, cells, title


def plot(
    layout: Layout, path: str | Path, *, dtype_bits: int = 16, cell: int | None = None
) -> Path:
    """Write `layout` as an SVG to `path` (returned); `dtype_bits` sizes a Layout's bank groups."""
    rows, cols, cells, title = _cells(layout, dtype_bits)
    # Cells big enough to carry their labels up to 128 x 128 (zoom in); colour only beyond.
    size = cell or max(14 if max(rows, cols) <= 128 else 6, min(36, 1152 // max(rows, cols)))
    font = size * 0.3
    width, height = 2 * _MARGIN + cols * size, 2 * _MARGIN + rows * size
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="monospace">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{_MARGIN}" y="{_MARGIN * 0.45:.1f}" font-size="12">{html.escape(title)}</text>',
    ]
    step = 1 if size >= 12 else 8  # axis labels: every index, or every 8th on big tiles
    for c in range(0, cols, step):
        out.append(_text(_MARGIN + (c + 0.5) * size, _MARGIN - 4, max(font, 6), str(c), "middle"))
    for r in range(0, rows, step):
        out.append(_text(_MARGIN - 4, _MARGIN + (r + 0.5) * size, max(font, 6), str(r), "end"))
    for k, (fill, line1, line2) in enumerate(cells):
        r, c = divmod(k, cols)
        x, y = _MARGIN + c * size, _MARGIN + r * size
        out.append(
            f'<rect class="cell" x="{x}" y="{y}" width="{size}" height="{size}" fill="{fill}" '
            f'stroke="#555" stroke-width="0.3"><title>[{r}, {c}] {line1} {line2}</title></rect>'
        )
        if size < 14:  # too small to label: the tooltip (<title>) still says it
            continue
        cx = x + size / 2
        if line2:
            out.append(_text(cx, y + size * 0.42, font, line1))
            out.append(_text(cx, y + size * 0.82, font, line2))
        else:
            out.append(_text(cx, y + size * 0.62, font, line1))
    out.append("</svg>")
    target = Path(path)
    target.write_text("\n".join(out))
    _maybe_png(target, rows, cols, cells)
    return target


def _maybe_png(target: Path, rows: int, cols: int, cells: list[tuple[str, str, str]]) -> None:
    """Also write `<name>.png` when Pillow is importable (one coloured pixel block per element)."""
    try:
        from PIL import Image  # pyright: ignore[reportMissingImports]  # optional: PIL is not a dependency of tsir
    except ImportError:
        return
    scale = max(1, 512 // max(rows, cols))
    img: Any = Image.new("RGB", (cols * scale, rows * scale), "white")
    for k, (fill, _a, _b) in enumerate(cells):
        r, c = divmod(k, cols)
        rgb = tuple(int(fill[p : p + 2], 16) for p in (1, 3, 5))
        img.paste(rgb, (c * scale, r * scale, (c + 1) * scale, (r + 1) * scale))
    img.save(target.with_suffix(".png"))
