"""Download the wheels the GPU machine lacks into .whl/ (it has no network and no package index).

The GPU machine runs CPython 3.12 with torch, numpy, cupy, cuda-bindings and NVRTC installed. This
fetches, for CPython 3.12 manylinux x86_64, what tsir and its GPU tests need beyond that, keeps one
version per project in .whl/, checks that every requirement of those wheels is covered, and prints
their sizes (the working tree that travels to the GPU machine is capped at 64 MiB).

Usage: python3 .ci/device_wheels.py [--dest .whl] [--max-mb 48] [--z3 '<5']
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
)
# Requirements of the wheels below that the GPU machine already has, or that are not needed there.
# nvshmem4py's: the GPU machines have nvidia-nvshmem-cu13 3.4.5, cuda-bindings, cuda.core and
# cuda.pathfinder; Cython is declared but not imported by nvshmem.core/bindings at run time.
ASSUMED_PRESENT = {
    "numpy",
    "importlib_resources",
    "nvidia_nvshmem_cu13",
    "cuda_python",
    "cuda_core",
    "cuda_pathfinder",
    "cython",
}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    if match is None:
        raise ValueError(f"cannot read a project name from {requirement!r}")
    return normalize(match.group(0))


def pyproject_specs() -> dict[str, str]:
    """Requirement strings of pyproject.toml (dependencies and the test extra), by project."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = {}
    for req in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        specs[requirement_name(req)] = req
    return specs


def wanted(z3_upper: str) -> list[str]:
    specs = pyproject_specs()
    z3 = specs["z3_solver"] + (f",{z3_upper}" if z3_upper else "")
    return [
        specs["apache_tvm_ffi"],
        "typing-extensions>=4.13",  # apache-tvm-ffi needs >=4.13; torch only pins >=4.10
        z3,
        specs["hypothesis"],
        "sortedcontainers>=2.1,<3",  # hypothesis
        specs["filecheck"],
        "nvshmem4py-cu13==0.4.1",  # NVSHMEM's host side (T.nvshmem.*, dist backend="nvshmem"); ~5 MB
    ]


def download(requirements: list[str], staging: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
    ]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    command += ["-d", str(staging), *requirements]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def project_of(wheel: Path) -> str:
    return normalize(wheel.name.split("-")[0])


def replace_into(staging: Path, dest: Path) -> None:
    """Move the new wheels into dest, removing every other version of the same projects."""
    for wheel in sorted(staging.glob("*.whl")):
        for old in dest.glob("*.whl"):
            if project_of(old) == project_of(wheel) and old.name != wheel.name:
                print(f"removing older {old.name}")
                old.unlink()
        shutil.move(str(wheel), dest / wheel.name)


def requirements_of(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode()
    return [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith("Requires-Dist:")
    ]


def applies_on_312(requirement: str) -> bool:
    if ";" not in requirement:
        return True
    marker = requirement.split(";", 1)[1]
    if "extra ==" in marker:
        return False
    try:
        from pip._vendor.packaging.markers import Marker
    except ImportError:  # no way to evaluate: treat it as needed
        return True
    env = {
        "python_version": "3.12",
        "python_full_version": "3.12.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "os_name": "posix",
        "extra": "",
    }
    return bool(Marker(marker).evaluate(env))


def check_closure(dest: Path) -> list[str]:
    have = {project_of(w) for w in dest.glob("*.whl")}
    missing = []
    for wheel in sorted(dest.glob("*.whl")):
        for requirement in requirements_of(wheel):
            name = requirement_name(requirement)
            if applies_on_312(requirement) and name not in have and name not in ASSUMED_PRESENT:
                missing.append(f"{wheel.name} needs {requirement}")
    return missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", default=str(ROOT / ".whl"))
    parser.add_argument("--max-mb", type=float, default=48.0)
    parser.add_argument(
        "--z3",
        default="<5",
        help="extra bound on z3-solver ('' for none); z3 5.x wheels are 33-39 MB, 4.16 is 32 MB",
    )
    args = parser.parse_args()
    dest = Path(args.dest)
    staging = dest / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        download(wanted(args.z3), staging)
        replace_into(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    wheels = sorted(dest.glob("*.whl"))
    total = sum(w.stat().st_size for w in wheels)
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 1e6:8.2f} MB  {wheel.name}")
    print(f"{total / 1e6:8.2f} MB  total in {dest} ({len(wheels)} wheels)")
    problems = check_closure(dest)
    for problem in problems:
        print("missing dependency:", problem, file=sys.stderr)
    if total > args.max_mb * 1e6:
        print(f"error: {total / 1e6:.1f} MB exceeds --max-mb {args.max_mb}", file=sys.stderr)
        return 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
