"""Extra round-trip time of the subprocess engine transport over the in-process one.

Run from the repo root (no bpy needed)::

    .venv/bin/python bench/bench_transport.py [--repeats 30] [--width 1024]

Times ``client.run("echo", EchoRequest(arrays={"rgb": ..., "depth": ...}))`` —
the arrays go to the engine and come back — for a W×(W/2) panorama result:
depth float32 H×W, and rgb either uint8 H×W×3 or float32 H×W×3 (two payload
cases). Each transport gets one untimed warm-up call per case (the worker starts
during the first one), then ``--repeats`` timed calls; in-process and subprocess
calls alternate so drift on a shared machine hits both alike. The worker runs
with this interpreter (``make_client("SUBPROCESS", python=sys.executable)``).

``extra_roundtrip_median_ms`` = subprocess median − in-process median for the
uint8 case (the product's RGB); ``cases.*`` has both. Target ≤ 30 ms. The last
stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

sys.path.insert(0, str(_common.REPO_ROOT))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=30, help="timed round trips per transport and case (default 30)")
    p.add_argument("--width", type=int, default=1024, help="panorama width; height = width / 2 (default 1024)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def ms(times: list[float]) -> dict[str, float]:
    return {
        "median_ms": statistics.median(times) * 1e3,
        "min_ms": min(times) * 1e3,
        "max_ms": max(times) * 1e3,
        "mean_ms": statistics.fmean(times) * 1e3,
    }


def main() -> None:
    args = parse_args()
    from engine.client import make_client
    from engine.echo import EchoRequest

    height, width = args.width // 2, args.width
    rng = np.random.default_rng(args.seed)
    depth = rng.uniform(0.5, 20.0, size=(height, width)).astype(np.float32)
    rgb_u8 = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    payloads = {
        "uint8_rgb": {"rgb": rgb_u8, "depth": depth},
        "float32_rgb": {"rgb": rgb_u8.astype(np.float32) / 255.0, "depth": depth},
    }

    clients = {"in_process": make_client("IN_PROCESS"), "subprocess": make_client("SUBPROCESS", python=sys.executable)}
    cases: dict = {}
    worker_start_s = None
    try:
        for case, arrays in payloads.items():
            request = EchoRequest(arrays=arrays)
            warm: dict = {}
            for name, client in clients.items():  # warm-up; also checks the arrays come back intact
                start = time.perf_counter()
                result = client.run("echo", request)
                warm[name] = time.perf_counter() - start
                for key, value in arrays.items():
                    back = result.arrays[key]
                    if back.dtype != value.dtype or back.shape != value.shape or not np.array_equal(back, value):
                        raise RuntimeError(f"{name}: echo changed {key} ({back.dtype} {back.shape})")
            if worker_start_s is None:
                worker_start_s = warm["subprocess"]
            times: dict = {name: [] for name in clients}
            for i in range(args.repeats):
                order = list(clients) if i % 2 == 0 else list(reversed(clients))
                for name in order:
                    start = time.perf_counter()
                    clients[name].run("echo", request)
                    times[name].append(time.perf_counter() - start)
            summary = {name: {**ms(t), "warmup_ms": warm[name] * 1e3} for name, t in times.items()}
            cases[case] = {
                "payload_bytes": int(sum(a.nbytes for a in arrays.values())),
                "arrays": {k: {"shape": list(a.shape), "dtype": str(a.dtype)} for k, a in arrays.items()},
                **summary,
                "extra_roundtrip_median_ms": summary["subprocess"]["median_ms"] - summary["in_process"]["median_ms"],
            }
    finally:
        for client in clients.values():
            client.release()

    extra = cases["uint8_rgb"]["extra_roundtrip_median_ms"]
    result = {
        "benchmark": "transport",
        "panorama": {"width": width, "height": height},
        "repeats": args.repeats,
        "extra_roundtrip_median_ms": extra,
        "extra_roundtrip_median_ms_float32_rgb": cases["float32_rgb"]["extra_roundtrip_median_ms"],
        "in_process_median_ms": cases["uint8_rgb"]["in_process"]["median_ms"],
        "subprocess_median_ms": cases["uint8_rgb"]["subprocess"]["median_ms"],
        "worker_start_and_first_call_ms": worker_start_s * 1e3 if worker_start_s is not None else None,
        "cases": cases,
        "target": {"extra_roundtrip_median_ms_max": 30.0},
        "meets_target": extra <= 30.0,
        "machine": _common.machine_info(),
        "options": vars(args),
        "command": _common.command_line(),
    }
    _common.emit(result)


if __name__ == "__main__":
    _common.run_main(main, "transport")
