"""`python -m tsir.runtime.launch -n N script.py [args...]`: run a script once per GPU.

Each process gets torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
MASTER_ADDR, MASTER_PORT on a free local port) and TSIR_DIST_STORE, a fresh directory that
`tsir.runtime.dist.init()` uses as its store when torch is absent. NVLink multicast stays off
(NCCL_NVLS_ENABLE=0, NVSHMEM_DISABLE_NVLS=1, TORCH_SYMM_MEM_DISABLE_MULTICAST=1) unless set.
Output lines are prefixed with the rank. When a process fails, the others are stopped (SIGTERM,
then SIGKILL) and the launcher exits with the failing code; `--timeout` stops everything after
that many seconds (exit code 124). `-m module` runs a module instead of a script.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO

__all__ = ["main", "launch"]

MULTICAST_OFF = {
    "NCCL_NVLS_ENABLE": "0",
    "NVSHMEM_DISABLE_NVLS": "1",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pump(stream: IO[bytes], prefix: str, out: IO[str]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        out.write(prefix + line if prefix else line)
        out.flush()


def _stop(procs: list[subprocess.Popen[bytes]], grace: float = 5.0) -> None:
    """SIGTERM every running process group we started, then SIGKILL what is left after `grace`."""
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def launch(
    command: list[str],
    nprocs: int,
    timeout: float | None = None,
    prefix: bool = True,
    env: dict[str, str] | None = None,
) -> int:
    """Run `command` (argv after the interpreter) in `nprocs` processes; returns 0, or the exit
    code of the first rank that failed (124 on timeout)."""
    store_dir = tempfile.mkdtemp(prefix="tsir-dist-")
    base = dict(os.environ if env is None else env)
    for k, v in MULTICAST_OFF.items():
        base.setdefault(k, v)
    base.update(
        WORLD_SIZE=str(nprocs),
        LOCAL_WORLD_SIZE=str(nprocs),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
        TSIR_DIST_STORE=store_dir,
        PYTHONUNBUFFERED="1",
    )
    procs: list[subprocess.Popen[bytes]] = []
    pumps: list[threading.Thread] = []
    code = 0
    try:
        for r in range(nprocs):
            e = dict(base, RANK=str(r), LOCAL_RANK=str(r))
            p = subprocess.Popen(
                [sys.executable, *command],
                env=e,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopping it stops its children too
            )
            procs.append(p)
            t = threading.Thread(
                target=_pump,
                args=(p.stdout, f"[rank {r}] " if prefix else "", sys.stdout),
                daemon=True,
            )
            t.start()
            pumps.append(t)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            codes = [p.poll() for p in procs]
            failed = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                r, code = failed[0]
                sys.stdout.write(
                    f"[launch] rank {r} exited with code {code}; stopping the other ranks\n"
                )
                break
            if all(c == 0 for c in codes):
                break
            if deadline is not None and time.monotonic() > deadline:
                running = [r for r, c in enumerate(codes) if c is None]
                sys.stdout.write(
                    f"[launch] timed out after {timeout:.0f} s; ranks {running} still running: "
                    f"stopping them\n"
                )
                code = 124
                break
            time.sleep(0.05)
    except KeyboardInterrupt:
        code = 130
    finally:
        _stop(procs)
        for t in pumps:
            t.join(timeout=2.0)
        sys.stdout.flush()
        _remove_tree(store_dir)
    return code


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tsir.runtime.launch",
        description="Run a script in N processes, one per GPU (torchrun's environment variables).",
    )
    ap.add_argument(
        "-n",
        "--nproc",
        "--nproc-per-node",
        dest="n",
        type=int,
        default=None,
        help="number of processes (default: every visible GPU)",
    )
    ap.add_argument(
        "--timeout", type=float, default=None, help="stop every rank after this many seconds"
    )
    ap.add_argument(
        "--no-prefix", action="store_true", help="do not prefix output lines with the rank"
    )
    ap.add_argument("-m", dest="module", default=None, help="run a module (like python -m)")
    ap.add_argument("script", nargs="?", help="the script to run")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script")
    ns = ap.parse_args(argv)
    if ns.module is None and ns.script is None:
        ap.error("give a script, or -m module")
    n = ns.n
    if n is None:
        from ..driver import device_count

        n = device_count()
    if n < 1:
        ap.error(f"-n must be >= 1, got {n}")
    if ns.module is not None:
        command = ["-m", ns.module, *([ns.script] if ns.script else []), *ns.args]
    else:
        command = [ns.script, *ns.args]
    return launch(command, n, ns.timeout, prefix=not ns.no_prefix)


if __name__ == "__main__":
    raise SystemExit(main())
