"""Views per second for 3D-DST edge maps + annotations: exact geometric edges vs the 3D-DST recipe, and their agreement.

Run from the repo root with the venv that has the ``bpy`` module::

    .venv/bin/python bench/bench_dst_edges.py                 # 3 objects × 8 views at 512 px
    .venv/bin/python bench/bench_dst_edges.py --quick         # smoke run

Three CAD-like meshes (Suzanne, a torus, a bevelled box) are turned into data
sets by ``render_edge_maps`` twice with the same seed, so both see the same
views: ``GEOMETRIC`` (1 sample, edges from the depth and normal passes and the
silhouette) and ``CANNY`` (3D-DST's recipe: 32 samples, denoised, Canny
100/200 on the render). Each time is the whole operator: rendering, the
engine's edges, masks and COCO annotations, and writing the data set. The
agreement is the F-score at 2 px of the Canny maps against the geometric ones
(and the reverse view: precision = Canny edges near an exact edge, recall =
exact edges Canny found). The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "dst_edges"


def build_objects(bpy: Any) -> None:
    bpy.ops.mesh.primitive_monkey_add(location=(0, 0, 0))
    bpy.context.object.name = "Suzanne"
    bpy.ops.mesh.primitive_torus_add(location=(4, 0, 0), major_radius=1.0, minor_radius=0.3)
    bpy.context.object.name = "Ring"
    bpy.ops.mesh.primitive_cube_add(location=(8, 0, 0))
    box = bpy.context.object
    box.name = "Crate"
    bevel = box.modifiers.new("Bevel", "BEVEL")
    bevel.width, bevel.segments = 0.1, 3
    for obj in bpy.context.scene.objects:
        obj.select_set(True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--views", type=int, default=8, help="views per object (default 8)")
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.views, args.resolution = 2, 64
    bpy = _common.load_addon()
    from diffusion3d.engine.dst.edges import edge_fscore  # type: ignore[import-not-found]

    build_objects(bpy)
    out = Path(tempfile.mkdtemp(prefix="d3d-bench-dst-"))
    seconds: dict[str, float] = {}
    for method in ("GEOMETRIC", "CANNY"):
        start = time.perf_counter()
        bpy.ops.diffusion3d.render_edge_maps(
            dataset_dir=str(out / method), views_per_object=args.views, resolution=args.resolution, edge_method=method, seed=1
        )
        seconds[method] = time.perf_counter() - start
    import cv2

    names = [Path(i["file_name"]).name for i in json.loads((out / "CANNY" / "annotations.json").read_text())["images"]]
    scores = []
    for name in names:
        canny = cv2.imread(str(out / "CANNY" / "edges" / name), cv2.IMREAD_GRAYSCALE) > 127
        exact = cv2.imread(str(out / "GEOMETRIC" / "edges" / name), cv2.IMREAD_GRAYSCALE) > 127
        scores.append(edge_fscore(canny, exact, tolerance_px=2))
    precision, recall, fscore = (float(np.mean([s[i] for s in scores])) for i in range(3))
    views = len(names)
    speedup = seconds["CANNY"] / seconds["GEOMETRIC"]
    _common.finish_bpy(
        {
            "benchmark": NAME,
            "views": views,
            "resolution": args.resolution,
            "geometric": {"seconds": seconds["GEOMETRIC"], "views_per_s": views / seconds["GEOMETRIC"]},
            "dst_recipe_canny": {"seconds": seconds["CANNY"], "views_per_s": views / seconds["CANNY"], "samples": 32, "denoise": True},
            "speedup_geometric_vs_recipe": speedup,
            "agreement_at_2px": {"f_score": fscore, "precision_canny_on_exact": precision, "recall_of_exact_by_canny": recall},
            "meets_target": {"speedup_ge_10": speedup >= 10},
            "machine": _common.machine_info(bpy),
            "command": _common.command_line(),
        }
    )


if __name__ == "__main__":
    _common.run_main(main, NAME)
