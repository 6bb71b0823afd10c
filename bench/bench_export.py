"""World exports: seconds and file size per format and panorama size, splats per grid step (issue 26).

Run from the repo root with the engine's Python (numpy; no Blender needed for splats)::

    .venv-engine/bin/python bench/bench_export.py [--widths 1024 4096] [--steps 1 2 4] [--repeats 3]

So far the 3D Gaussian splat ``.ply`` (engine job ``rgbd_splats``): for each panorama width and grid step, the
Gaussians computed from a synthetic RGBD panorama (a box room seen from 1.6 m, smooth colours; seeded) and written,
each timed over ``--repeats`` runs (the file removed between runs), with the splat count and the file's size.
GLB/glTF and USD join once their exporter lands. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

sys.path.insert(0, str(_common.REPO_ROOT))
from engine.world import equirect
from engine.world.splats import gaussians_from_rgbd, write_splat_ply


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", type=int, nargs="+", default=[1024, 4096], help="panorama widths; height = width / 2")
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4], help="grid steps (1 = a Gaussian per pixel)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (default 3)")
    return p.parse_args()


def room(width: int) -> tuple[np.ndarray, np.ndarray]:
    """A box room's ray distances from 1.6 m above its floor, and smooth colours, as an equirectangular panorama."""
    height = width // 2
    rays = equirect.ray_directions(((np.arange(width) + 0.5) / width)[None, :], ((np.arange(height) + 0.5) / height)[:, None])
    eye, low, high = np.array([0.0, 0.0, 1.6]), np.array([-4.0, -3.0, 0.0]), np.array([4.0, 3.0, 3.0])
    with np.errstate(divide="ignore"):
        walls = np.where(rays > 0, (high - eye) / rays, (low - eye) / rays)
    distance = np.min(np.where(np.isfinite(walls) & (walls > 0), walls, np.inf), axis=-1)
    rgb = 0.5 + 0.4 * np.stack([np.sin(3 * rays[..., 0]), np.cos(2 * rays[..., 1]), rays[..., 2]], axis=-1)
    return rgb.astype(np.float32), distance.astype(np.float32)


def main() -> None:
    args = parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        target = Path(folder) / "splats.ply"
        for width in args.widths:
            rgb, distance = room(width)
            for step in args.steps:
                compute, write = [], []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    gaussians = gaussians_from_rgbd(rgb, distance, step=step)
                    middle = time.perf_counter()
                    write_splat_ply(target, gaussians, overwrite=True)
                    compute.append(middle - start)
                    write.append(time.perf_counter() - middle)
                size = target.stat().st_size
                target.unlink()
                runs.append(
                    {
                        "format": "SPLAT_PLY",
                        "width": width,
                        "height": width // 2,
                        "step": step,
                        "splats": int(gaussians.size),
                        "bytes": size,
                        "compute": _common.summary(compute),
                        "write": _common.summary(write),
                    }
                )
                del gaussians
    _common.emit({"benchmark": "export", "runs": runs, "machine": _common.machine_info(), "command": _common.command_line()})


if __name__ == "__main__":
    _common.run_main(main, "export")
