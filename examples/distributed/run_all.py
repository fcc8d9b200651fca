"""Run every distributed example in one process group and print one PASS/FAIL line per example.

    python -m tsir.runtime.launch -n 2 --timeout 300 examples/distributed/run_all.py [names...]

Exits non-zero when any example fails (the launcher then stops the other ranks). With
`--json PATH`, rank 0 also writes {name: {"ok": bool, "seconds": float, "error": str}}.
"""

from __future__ import annotations

import json
import sys
import time
import traceback

import barrier_stress
import collectives
import put_get
import ring_shift
import tsir.runtime.dist as dist
from common import setup

EXAMPLES = {
    "put_get": put_get.run,
    "ring_shift": ring_shift.run,
    "collectives": collectives.run,
    "barrier_stress": barrier_stress.run,
}


def main(argv: list[str]) -> int:
    json_path = None
    if "--json" in argv:
        i = argv.index("--json")
        json_path = argv[i + 1]
        argv = argv[:i] + argv[i + 2 :]
    names = argv or list(EXAMPLES)
    group = setup()
    results = {}
    for name in names:
        t0 = time.perf_counter()
        try:
            EXAMPLES[name](group)
            results[name] = {"ok": True, "seconds": time.perf_counter() - t0, "error": ""}
            print(
                f"PASS {name} w={group.world_size} ({time.perf_counter() - t0:.2f} s)", flush=True
            )
        except Exception as e:  # noqa: BLE001  (reported, then the rank exits non-zero)
            results[name] = {
                "ok": False,
                "seconds": time.perf_counter() - t0,
                "error": f"{type(e).__name__}: {e}",
            }
            print(f"FAIL {name} w={group.world_size}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc()
            break  # a failed rank's peers may be waiting on it: stop here
    if json_path and group.rank == 0:
        with open(json_path, "w") as f:
            json.dump({"world_size": group.world_size, "results": results}, f, indent=1)
    ok = all(r["ok"] for r in results.values()) and len(results) == len(names)
    if ok:
        dist.finalize()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
