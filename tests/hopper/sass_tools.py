"""Disassemble a cubin with cuobjdump (the `nvidia-cuda-cuobjdump` wheel of the test extra, or a
CUDA toolkit's) and count SASS opcodes."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

_OPCODE = re.compile(
    r"^\s*/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_x]+)*)"
)


def cuobjdump() -> Path:
    """cuobjdump from the nvidia wheel (pip install 'tsir[test]') or from PATH / CUDA_HOME."""
    spec = importlib.util.find_spec("nvidia")
    for root in list(spec.submodule_search_locations or []) if spec else []:
        for candidate in sorted(Path(root).glob("cu*/bin/cuobjdump")):
            return candidate
    found = shutil.which("cuobjdump") or (
        "/usr/local/cuda/bin/cuobjdump" if Path("/usr/local/cuda/bin/cuobjdump").exists() else None
    )
    if found is None:
        raise RuntimeError(
            "cuobjdump not found: install the test extra (pip install -e '.[test]', which brings "
            "nvidia-cuda-cuobjdump) or a CUDA toolkit"
        )
    return Path(found)


def sass(cubin: bytes, tmp: Path) -> str:
    path = tmp / "kernel.cubin"
    path.write_bytes(cubin)
    done = subprocess.run(
        [str(cuobjdump()), "-sass", str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or "does not contain device code" in done.stdout + done.stderr:
        raise RuntimeError(f"cuobjdump failed: {done.stdout}{done.stderr}")
    return done.stdout


def opcodes(text: str) -> Counter[str]:
    """Opcode (with modifiers, e.g. HGMMA.64x256x16.F32) -> count."""
    out: Counter[str] = Counter()
    for line in text.splitlines():
        m = _OPCODE.match(line)
        if m:
            out[m.group(1)] += 1
    return out


def count(ops: Counter[str], prefix: str) -> int:
    return sum(n for op, n in ops.items() if op == prefix or op.startswith(prefix + "."))
