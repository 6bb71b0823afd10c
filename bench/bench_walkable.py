"""Walkable worlds measured against the truth: the single world sphere and the layered world, seen from off the capture
point, against Cycles renders of the real room from the same points (issue 25).

Run from the repo root with the venv that has the ``bpy`` module::

    .venv/bin/python bench/bench_walkable.py [--width 512] [--samples 16] [--offsets 0.25 0.5 1.0] [--layers 2]
        [--edge-threshold T] [--border PX] [--min-region PX] [--reach M] [--inpaint-model Intel/ldm3d-pano --models-dir DIR --steps 50]

1. The demo room (``operators/demo/scene.py``) captured from its eye point (``capture_panorama``: rgb.png, depth.exr).
2. The truth: the same capture from each viewpoint ``offset`` metres from the eye along ±X, ±Y and ±Z.
3. The single sphere (``build_world_sphere``, grid step 1, no cuts), the layered world (``layers=--layers``, the
   geometric fill) and, given ``--inpaint-model`` (a GPU run), the layered world painted by that LDM3D model, built
   from the eye's capture (seconds to build), each seen from every viewpoint (an emission-only equirectangular render,
   as the demo's previews), compared with the truth:

   - ``psnr_db``: over all pixels;
   - ``stretched``: the share of pixels showing a stretched face, one whose longest edge spans more than
     :data:`STRETCH` × the grid's cell at its distance (the curtains between foreground and wall), rendered as a
     face attribute; ``holes``: the share where no surface is seen.

Reported per offset: the mean over the six directions. Goal (issue 25): at 0.5 m, stretched faces and holes under 1%
of the pixels and a PSNR above the single sphere's. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

STRETCH = 4.0  # a face longer than this many grid cells at its distance is a curtain
DIRECTIONS = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))
ATTRIBUTE = "diffusion3d_stretched"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, default=512, help="capture and render width (default 512)")
    p.add_argument("--samples", type=int, default=16, help="Cycles samples of the captures (default 16)")
    p.add_argument("--offsets", type=float, nargs="+", default=[0.25, 0.5, 1.0], help="metres off the capture point")
    p.add_argument("--layers", type=int, default=2, help="layers of the layered world (default 2)")
    p.add_argument("--edge-threshold", type=float, default=None, help="the layers' edge threshold (default: the declared one)")
    p.add_argument("--border", type=int, default=None, help="the layers' fading border in pixels (default: the declared one)")
    p.add_argument("--min-region", type=int, default=None, help="the layers' smallest region in pixels (default: the declared one)")
    p.add_argument("--reach", type=float, default=None, help="the layers' walk radius in metres (default: the declared one)")
    p.add_argument("--inpaint-model", default="", help="also a layered world painted by this LDM3D model (a GPU run)")
    p.add_argument("--models-dir", default="", help="where --inpaint-model is looked for")
    p.add_argument("--steps", type=int, default=50, help="the inpainting's denoising steps (default 50)")
    return p.parse_args()


def read_png(path: Path) -> np.ndarray:
    from engine.imagefiles import read_image, unit_float

    return unit_float(read_image(path).pixels)[..., :3].astype(np.float64)


def mark_stretched(obj, cols: int) -> None:
    """A face attribute: 1 where the face's longest edge spans more than STRETCH grid cells at its nearest corner's distance."""
    mesh = obj.data
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    co = co.reshape(-1, 3).astype(np.float64)
    corners = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("vertex_index", corners)
    starts = np.empty(len(mesh.polygons), np.int32)
    mesh.polygons.foreach_get("loop_start", starts)
    nxt = np.roll(np.arange(len(corners)), -1)
    ends = np.append(starts[1:], len(corners)) - 1
    nxt[ends] = starts  # each face's last corner goes back to its first
    edge = np.linalg.norm(co[corners[nxt]] - co[corners], axis=1)
    longest = np.maximum.reduceat(edge, starts)
    nearest = np.minimum.reduceat(np.linalg.norm(co[corners], axis=1), starts)
    stretched = longest > STRETCH * nearest * (2 * np.pi / cols)
    attribute = mesh.attributes.get(ATTRIBUTE) or mesh.attributes.new(ATTRIBUTE, "FLOAT", "FACE")
    attribute.data.foreach_set("value", stretched.astype(np.float32))


def with_attribute_shown(objects, run):
    """``run()`` with every object showing its stretched-face attribute as emission (white: stretched), then put back."""
    import bpy

    material = bpy.data.materials.new("Bench Stretched")
    tree = material.node_tree if material.node_tree is not None else None
    if tree is None:
        material.use_nodes = True
        tree = material.node_tree
    tree.nodes.clear()
    attribute, emission, output = (tree.nodes.new(t) for t in ("ShaderNodeAttribute", "ShaderNodeEmission", "ShaderNodeOutputMaterial"))
    attribute.attribute_name = ATTRIBUTE
    tree.links.new(attribute.outputs["Fac"], emission.inputs["Color"])
    tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    saved = [(o, list(o.data.materials)) for o in objects]
    try:
        for o, materials in saved:
            for i in range(len(materials)):
                o.data.materials[i] = material
        return run()
    finally:
        for o, materials in saved:
            for i, m in enumerate(materials):
                o.data.materials[i] = m
        bpy.data.materials.remove(material)


def views(scene, objects, points, folder: Path, width: int, name: str) -> list[dict[str, np.ndarray]]:
    """Each point's render of ``objects`` (the others hidden): its colours, and its stretched-face and coverage masks."""
    from diffusion3d.operators.demo import previews  # type: ignore[import-not-found]

    hidden = [o for o in scene.objects if o not in objects and not o.hide_render]
    for o in hidden:
        o.hide_render = True
    scene.render.film_transparent = True
    out = []
    try:
        for k, point in enumerate(points):
            colour = previews.render_equirect(scene, point, folder / f"{name}_{k}.png", width)
            seen = read_rgba(colour)
            stretched = with_attribute_shown(objects, lambda: previews.render_equirect(scene, point, folder / f"{name}_{k}_s.png", width))  # noqa: B023
            out.append({"rgb": seen[..., :3], "alpha": seen[..., 3], "stretched": read_rgba(stretched)[..., 0]})
    finally:
        for o in hidden:
            o.hide_render = False
        scene.render.film_transparent = False
    return out


def read_rgba(path: Path) -> np.ndarray:
    from engine.imagefiles import read_image, unit_float

    pixels = unit_float(read_image(path).pixels).astype(np.float64)
    return pixels if pixels.shape[2] == 4 else np.dstack([pixels, np.ones(pixels.shape[:2])])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(1.0 / mse)


def main() -> None:
    args = parse_args()
    import bpy

    sys.path.insert(0, str(_common.REPO_ROOT))
    import batch

    batch.load_addon()
    from diffusion3d.operators.demo import scene as demo_scene  # type: ignore[import-not-found]

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    room = demo_scene.build_demo_room(scene)
    eye = np.array(demo_scene.EYE)
    points = [tuple(eye + offset * np.array(d)) for offset in args.offsets for d in DIRECTIONS]
    results: dict[str, object] = {
        "width": args.width,
        "samples": args.samples,
        "layers": args.layers,
        "edge_threshold": args.edge_threshold,
        "border": args.border,
        "min_region": args.min_region,
        "reach": args.reach,
        "inpaint_model": args.inpaint_model,
        "stretch_cells": STRETCH,
    }
    with tempfile.TemporaryDirectory(prefix="bench-walkable-") as tmp:
        folder = Path(tmp)

        def capture(point, name: str) -> Path:
            options = dict(output_dir=str(folder / name), width=args.width, samples=args.samples, origin="LOCATION", location=point)
            bpy.ops.diffusion3d.capture_panorama(**options)
            return folder / name

        source = capture(tuple(eye), "eye")
        start = time.perf_counter()
        truths = [read_png(capture(p, f"truth_{k}") / "rgb.png") for k, p in enumerate(points)]
        results["truth_render_s"] = round(time.perf_counter() - start, 2)
        bpy.context.view_layer.layer_collection.children[room.name].exclude = True  # the worlds replace the room
        inputs = dict(rgb_path=str(source / "rgb.png"), depth_path=str(source / "depth.exr"), grid_step=1)
        chosen = {"edge_threshold": args.edge_threshold, "border": args.border, "min_region": args.min_region, "reach": args.reach}
        layering = dict(layers=args.layers, **{name: value for name, value in chosen.items() if value is not None})
        built_as = {"single": dict(layers=1), "layered": layering}
        if args.inpaint_model:
            from diffusion3d.operators.machinery import session  # type: ignore[import-not-found]

            session.preferences().models_dir = args.models_dir  # the model runs in this Python (it needs torch)
            built_as["inpainted"] = dict(layering, inpaint_model=args.inpaint_model, steps=args.steps)
        worlds = {}
        for name, options in built_as.items():
            start = time.perf_counter()
            bpy.ops.diffusion3d.build_world_sphere(**inputs, **options, name=f"Bench {name}")
            built = time.perf_counter() - start
            world = bpy.context.view_layer.objects.active
            objects = [world, *world.children]
            for o in objects:
                mark_stretched(o, world["diffusion3d_world"]["grid"][1])
            seen = views(scene, objects, points, folder, args.width, name)
            for o in objects:
                o.hide_render = True
            per_offset = {}
            for i, offset in enumerate(args.offsets):
                chosen = range(i * len(DIRECTIONS), (i + 1) * len(DIRECTIONS))
                per_offset[str(offset)] = {
                    "psnr_db": round(statistics.mean(psnr(seen[k]["rgb"], truths[k]) for k in chosen), 2),
                    "stretched": round(statistics.mean(float(np.mean(seen[k]["stretched"] > 0.5)) for k in chosen), 4),
                    "holes": round(statistics.mean(float(np.mean(seen[k]["alpha"] < 0.5)) for k in chosen), 4),
                }
            worlds[name] = {"build_s": round(built, 3), "layers": len(world.children) + 1, "by_offset_m": per_offset}
        results["worlds"] = worlds
    _common.emit({"benchmark": "walkable", **results, "machine": _common.machine_info(bpy), "command": _common.command_line()})


if __name__ == "__main__":
    _common.run_main(main, "walkable")
