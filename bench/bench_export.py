"""World exports: seconds and file size per format and panorama size, splats per grid step (issue 26).

Run from the repo root; with a Python that has ``bpy`` (Blender 4.5's environment) the mesh formats are measured too::

    .venv/bin/python bench/bench_export.py [--widths 1024 4096] [--steps 1 2 4] [--repeats 3] [--sphere-step 2]

- **Splats** (engine job ``rgbd_splats``, numpy only): for each panorama width and grid step, the Gaussians computed
  from a synthetic RGBD panorama (a box room seen from 1.6 m, smooth colours) and written, each timed over
  ``--repeats`` runs, with the splat count and the file's size.
- **GLB, glTF, USDZ, USDC** (``bpy.ops.diffusion3d.export_world``, Blender's exporters): the world sphere of the same
  panorama (grid step ``--sphere-step``, the operator's default 2), exported whole and with Target Faces 100,000;
  seconds (the whole operator: request, engine job, exporter, files moved into place) and bytes of every file written.

The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

sys.path.insert(0, str(_common.REPO_ROOT))
from engine.world.splats import gaussians_from_rgbd, write_splat_ply
from engine.world.synthetic import box_room


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", type=int, nargs="+", default=[1024, 4096], help="panorama widths; height = width / 2")
    p.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4], help="grid steps (1 = a Gaussian per pixel)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (default 3)")
    p.add_argument("--sphere-step", type=int, default=2, help="the world sphere's grid step for the mesh formats (default 2)")
    return p.parse_args()


def mesh_formats(args: argparse.Namespace, folder: Path) -> list[dict[str, object]]:
    """Each mesh format of each width's world sphere, whole and at 100,000 faces, through the add-on's operator."""
    import bpy

    sys.path.insert(0, str(_common.REPO_ROOT))
    import batch
    from engine.imagefiles import write_png

    batch.load_addon()
    runs: list[dict[str, object]] = []
    for width in args.widths:
        rgb, distance = box_room(width)
        write_png(folder / "rgb.png", np.round(rgb.clip(0, 1) * 255).astype(np.uint8))
        np.save(folder / "depth.npy", distance)
        bpy.ops.wm.read_homefile(use_empty=True)
        bpy.ops.diffusion3d.build_world_sphere(
            rgb_path=str(folder / "rgb.png"), depth_path=str(folder / "depth.npy"), grid_step=args.sphere_step
        )
        faces = len(bpy.context.view_layer.objects.active.data.polygons)
        for file_format in ("GLB", "GLTF", "USDZ", "USDC"):
            for target in (0, *([100_000] if faces > 100_000 else [])):
                out = folder / "out"
                seconds = []
                for _ in range(args.repeats):
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir()
                    start = time.perf_counter()
                    bpy.ops.diffusion3d.export_world(filepath=str(out / f"world.{file_format.lower()}"), target_faces=target)
                    seconds.append(time.perf_counter() - start)
                size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
                runs.append({"format": file_format, "width": width, "height": width // 2, "sphere_step": args.sphere_step,
                             "faces": faces, "target_faces": target, "bytes": size, "seconds": _common.summary(seconds)})  # fmt: skip
    return runs


def main() -> None:
    args = parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        target = Path(folder) / "splats.ply"
        for width in args.widths:
            rgb, distance = box_room(width)
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
        if importlib.util.find_spec("bpy") is not None:
            runs += mesh_formats(args, Path(folder))
    _common.emit({"benchmark": "export", "runs": runs, "machine": _common.machine_info(), "command": _common.command_line()})


if __name__ == "__main__":
    _common.run_main(main, "export")
