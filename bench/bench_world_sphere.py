"""World-sphere build inside Blender: the operator end to end, its parts, and a from_pydata baseline.

Run from the repo root with the venv that has the ``bpy`` module::

    .venv/bin/python bench/bench_world_sphere.py [--repeats 7] [--width 1024] [--grid-step 1]

Synthetic inputs (seeded): a box-room ray-distance field seen from 1.6 m above
the floor, with smooth periodic ripples and a few nearer "furniture" bumps,
saved as ``depth.exr`` (metric distances), plus a 2:1 RGB PNG. Timed, each
over ``--repeats`` runs after ``--warmup`` untimed ones, with everything the run
created removed in between so memory does not grow:

* ``operator``: ``bpy.ops.diffusion3d.build_world_sphere`` end to end (image
  loading, depth read-back, engine job, mesh, material, object);
* ``engine_build``: ``engine.world_sphere.build_world_sphere`` alone;
* ``mesh_from_arrays``: ``operators.machinery.blender_data.mesh_from_arrays`` alone;
* ``from_pydata``: the same mesh (same vertices, faces, corner order, UVs) the
  classic way, ``mesh.from_pydata(vertices.tolist(), [], faces)`` with ``faces``
  prebuilt as Python lists, then a UV layer filled per loop with
  ``foreach_set``; ``from_pydata_prebuilt`` also has the vertex list prebuilt,
  ``from_pydata_from_numpy`` also builds the face lists from the engine's
  arrays inside the timing (the like-for-like comparison with
  ``mesh_from_arrays``). ``speedup_vs_from_pydata`` = median(from_pydata) /
  median(operator), as specified; the other ``speedup_*`` use the variants.
  ``shade_flat=False`` so the mesh matches the operator's (smooth, no
  ``sharp_face`` attribute); that is also the cheaper setting.

The last stdout line is one JSON object. Targets: operator ≤ 0.3 s median and
``speedup_vs_from_pydata`` ≥ 4.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

EYE = np.array([0.0, 0.0, 1.6])
ROOM_MIN = np.array([-4.0, -3.0, 0.0])
ROOM_MAX = np.array([4.0, 3.0, 3.0])


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (default 7)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before each measurement (default 1)")
    p.add_argument("--width", type=int, default=1024, help="panorama width; height = width / 2 (default 1024)")
    p.add_argument("--grid-step", type=int, default=1, help="operator grid_step (default 1 = full grid)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic scene (default 0)")
    p.add_argument("--skip-from-pydata", action="store_true", help="skip the slow from_pydata baseline")
    return p.parse_args()


def synthetic_panorama(width: int, seed: int, ray_directions) -> tuple[np.ndarray, np.ndarray]:
    """(distance H×W float32 metres, rgb H×W×3 uint8): a box room with smooth detail."""
    height = width // 2
    rng = np.random.default_rng(seed)
    u = (np.arange(width) + 0.5) / width
    v = (np.arange(height) + 0.5) / height
    rays = ray_directions(u[None, :], v[:, None])  # H×W×3, float64
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = np.where(rays > 0, ROOM_MAX - EYE, ROOM_MIN - EYE)
        t = np.where(np.abs(rays) > 1e-12, bound / rays, np.inf)
    dist = t.min(axis=-1)
    wall_axis = t.argmin(axis=-1)

    # Smooth ripples, periodic in longitude so the seam stays continuous.
    uu, vv = np.meshgrid(u, v)
    ripple = np.zeros_like(dist)
    for _ in range(6):
        k, m = rng.integers(1, 7), rng.integers(1, 5)
        ripple += (
            rng.uniform(0.005, 0.02)
            * np.sin(2 * np.pi * k * uu + rng.uniform(0, 2 * np.pi))
            * np.cos(np.pi * m * vv + rng.uniform(0, 2 * np.pi))
        )
    dist *= 1.0 + ripple
    # A few nearer smooth bumps ("furniture"), in direction space.
    for _ in range(8):
        centre = rng.normal(size=3)
        centre[2] = -abs(centre[2]) * 0.5  # mostly at or below eye level
        centre /= np.linalg.norm(centre)
        width_rad = rng.uniform(0.15, 0.4)
        near = rng.uniform(1.0, 2.5)
        weight = np.exp((rays @ centre - 1.0) / (width_rad**2))
        dist = dist * (1 - weight) + np.minimum(dist, near) * weight
    dist = dist.astype(np.float32)

    # Colour: a tint per wall axis, shaded by distance, with a soft grid pattern.
    tints = np.array([[200, 180, 150], [120, 150, 125], [225, 225, 215]], dtype=np.float64)
    shade = np.clip(1.2 - dist / 8.0, 0.3, 1.0)[..., None]
    pattern = 0.85 + 0.15 * (np.sin(40 * uu) * np.sin(40 * vv))[..., None]
    rgb = np.clip(tints[wall_axis] * shade * pattern + rng.normal(0, 3, size=(height, width, 3)), 0, 255)
    return dist, rgb.astype(np.uint8)


def clear_blend_data(bpy) -> None:
    """Remove everything the runs create: objects, meshes, materials, images."""
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    for collection in (bpy.data.meshes, bpy.data.materials, bpy.data.images):
        for block in list(collection):
            collection.remove(block)
    gc.collect()


def round_robin(cases: dict, cleanup, repeats: int, warmup: int) -> tuple[dict, dict]:
    """Run every case once per round (``warmup`` untimed rounds, then ``repeats`` timed ones).

    Interleaving keeps slow drift on a shared machine from favouring one case.
    ``cleanup`` runs after each call, outside the timing. Returns (timed, warm-up)
    seconds per case name.
    """
    timed: dict = {name: [] for name in cases}
    warm: dict = {name: [] for name in cases}
    for round_no in range(warmup + repeats):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            elapsed = time.perf_counter() - start
            cleanup()
            (warm if round_no < warmup else timed)[name].append(elapsed)
    return timed, warm


def mesh_arrays(mesh) -> dict[str, np.ndarray]:
    """Read a mesh back: positions, corner vertices, face starts and sizes, UVs."""

    def get(collection, field, count, dtype, width=1):
        out = np.empty(count * width, dtype=dtype)
        collection.foreach_get(field, out)
        return out.reshape(count, width) if width > 1 else out

    return {
        "co": get(mesh.vertices, "co", len(mesh.vertices), np.float32, 3),
        "corner_verts": get(mesh.loops, "vertex_index", len(mesh.loops), np.int32),
        "loop_start": get(mesh.polygons, "loop_start", len(mesh.polygons), np.int32),
        "loop_total": get(mesh.polygons, "loop_total", len(mesh.polygons), np.int32),
        "uv": get(mesh.uv_layers[0].data, "uv", len(mesh.loops), np.float32, 2) if mesh.uv_layers else np.empty((0, 2)),
    }


def same_mesh(a, b) -> bool:
    ra, rb = mesh_arrays(a), mesh_arrays(b)
    return all(ra[k].shape == rb[k].shape and np.array_equal(ra[k], rb[k]) for k in ra)


def main() -> None:
    args = parse_args()
    if args.width % 2 or args.width < 16:
        raise SystemExit("--width must be an even number ≥ 16")
    bpy = _common.load_addon()
    from diffusion3d.engine.imagefiles import write_exr, write_png
    from diffusion3d.engine.world.equirect import ray_directions
    from diffusion3d.engine.world.world_sphere import build_world_sphere
    from diffusion3d.operators.machinery.blender_data import mesh_from_arrays

    tmp = Path(tempfile.mkdtemp(prefix="d3d-bench-sphere-"))
    try:
        dist, rgb = synthetic_panorama(args.width, args.seed, ray_directions)
        rgb_path, depth_path = tmp / "rgb.png", tmp / "depth.exr"
        write_png(rgb_path, rgb)
        write_exr(depth_path, {"Y": dist})
        sphere = build_world_sphere(dist, args.grid_step)
        arrays = (sphere.vertices, sphere.face_starts, sphere.corner_verts, sphere.corner_uvs, sphere.edge_verts, sphere.corner_edges)

        def run_operator() -> None:  # (a) end to end
            result = bpy.ops.diffusion3d.build_world_sphere(
                rgb_path=str(rgb_path), depth_path=str(depth_path), depth_mode="METRIC", grid_step=args.grid_step
            )
            if result != {"FINISHED"}:
                raise RuntimeError(f"build_world_sphere returned {result}")

        def face_lists() -> list[list[int]]:
            bounds = np.append(sphere.face_starts, sphere.corner_verts.size).tolist()
            corners = sphere.corner_verts.tolist()
            return [corners[s:e] for s, e in zip(bounds[:-1], bounds[1:])]

        t0 = time.perf_counter()
        faces = face_lists()
        faces_to_lists_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        vertex_list = sphere.vertices.tolist()
        vertices_to_list_s = time.perf_counter() - t0
        uv_flat = np.ascontiguousarray(sphere.corner_uvs, dtype=np.float32).ravel()

        def classic(vertices, face_list=None) -> bpy.types.Mesh:  # (c) the from_pydata way
            mesh = bpy.data.meshes.new("bench from_pydata")
            face_list = faces if face_list is None else face_list()
            mesh.from_pydata(vertices() if callable(vertices) else vertices, [], face_list, shade_flat=False)
            uv_layer = mesh.uv_layers.new(name="UVMap")
            uv_layer.data.foreach_set("uv", uv_flat)
            return mesh

        cases = {
            "operator": run_operator,
            "engine_build_world_sphere": lambda: build_world_sphere(dist, args.grid_step),  # (b) parts
            "mesh_from_arrays": lambda: mesh_from_arrays("bench bulk", *arrays),
        }
        if not args.skip_from_pydata:
            cases["from_pydata"] = lambda: classic(sphere.vertices.tolist)
            cases["from_pydata_prebuilt"] = lambda: classic(vertex_list)
            cases["from_pydata_from_numpy"] = lambda: classic(sphere.vertices.tolist, face_lists)
        clear_blend_data(bpy)
        timed, warm = round_robin(cases, lambda: clear_blend_data(bpy), args.repeats, args.warmup)

        # Checks, after the timing: every path makes the same mesh from the same inputs.
        run_operator()
        op_obj = next(o for o in bpy.context.scene.objects if "diffusion3d_world" in o)
        op_info = op_obj["diffusion3d_world"]
        bulk_mesh = mesh_from_arrays("bench bulk reference", *arrays)
        checks = {
            "operator_grid_rows_cols": list(op_info["grid"]),
            "operator_counts": {
                "vertices": len(op_obj.data.vertices),
                "faces": len(op_obj.data.polygons),
                "corners": len(op_obj.data.loops),
            },
            # The depth went EXR → Blender image → engine: the distances must come back unchanged.
            "operator_depth_roundtrip": bool(
                np.isclose(op_info["min_distance"], float(dist.min()), rtol=1e-6)
                and np.isclose(op_info["max_distance"], float(dist.max()), rtol=1e-6)
            ),
            "operator_same_as_mesh_from_arrays": same_mesh(op_obj.data, bulk_mesh),
        }
        if not args.skip_from_pydata:
            checks["from_pydata_same_as_mesh_from_arrays"] = same_mesh(classic(vertex_list), bulk_mesh)
        clear_blend_data(bpy)

        what = {
            "operator": "bpy.ops.diffusion3d.build_world_sphere end to end",
            "engine_build_world_sphere": "engine build_world_sphere(distance, step) alone",
            "mesh_from_arrays": "operators.machinery.blender_data.mesh_from_arrays alone",
            "from_pydata": "vertices.tolist() + from_pydata(faces prebuilt as lists) + UV foreach_set",
            "from_pydata_prebuilt": "from_pydata(vertex and face lists prebuilt) + UV foreach_set",
            "from_pydata_from_numpy": "face lists + vertices.tolist() from the engine's arrays + from_pydata + UV foreach_set",
        }
        med = {name: _common.statistics.median(times) for name, times in timed.items()}
        result = {
            "benchmark": "world_sphere",
            "panorama": {"width": args.width, "height": args.width // 2, "grid_step": args.grid_step},
            "mesh": {
                "vertices": int(len(sphere.vertices)),
                "faces": int(len(sphere.face_starts)),
                "corners": int(len(sphere.corner_verts)),
            },
            "input_distance_m": {"min": float(dist.min()), "median": float(np.median(dist)), "max": float(dist.max())},
            "repeats": args.repeats,
            "warmup_rounds": args.warmup,
            **{name: {**_common.summary(timed[name]), "warmup_s": warm[name], "timed": what[name]} for name in cases},
            "faces_to_python_lists_s": faces_to_lists_s,
            "vertices_tolist_s": vertices_to_list_s,
            "checks": checks,
            "targets": {"operator_median_s_max": 0.3, "speedup_vs_from_pydata_min": 4.0},
            "meets_targets": {"operator_median": med["operator"] <= 0.3},
        }
        if not args.skip_from_pydata:
            result["speedup_vs_from_pydata"] = med["from_pydata"] / med["operator"]
            result["speedup_vs_from_pydata_prebuilt"] = med["from_pydata_prebuilt"] / med["operator"]
            result["speedup_vs_from_pydata_from_numpy"] = med["from_pydata_from_numpy"] / med["operator"]
            result["mesh_from_arrays_speedup_vs_from_pydata"] = med["from_pydata"] / med["mesh_from_arrays"]
            result["mesh_from_arrays_speedup_vs_from_pydata_from_numpy"] = med["from_pydata_from_numpy"] / med["mesh_from_arrays"]
            result["meets_targets"]["speedup"] = result["speedup_vs_from_pydata"] >= 4.0
        result.update(machine=_common.machine_info(bpy), options=vars(args), command=_common.command_line())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _common.finish_bpy(result)


if __name__ == "__main__":
    _common.run_main(main, "world_sphere")
