"""A tiny numpy ray caster standing in for Cycles in the 3D-DST tests.

Axis-aligned boxes, rays through pixel centres of the engine's camera model;
it gives the passes the Blender operator would write (straight-alpha RGBA,
planar depth with 1e10 on misses, world normals with 0 on misses, alpha) and
writes them in the render-file contract (``{name}.png`` + multilayer ``{name}.exr``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.cameras import extrinsics, intrinsics
from engine.imagefiles import write_exr, write_png

MISS = 1e10
LIGHT = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])


def ray_cast(boxes, k, r, t, width, height, samples=1):
    """Passes of boxes [(lo, hi, rgb)] seen by camera (K, R, t); ``samples``² sub-pixel rays averaged.

    Depth is the centre ray's (Cycles keeps one sample's; ``samples`` is odd); alpha,
    colour and normals are averages, as Cycles' are.
    """
    assert samples % 2 == 1
    centre = -r.T @ t
    offsets = (np.arange(samples) + 0.5) / samples
    alpha = np.zeros((height, width))
    colour = np.zeros((height, width, 3))
    normals = np.zeros((height, width, 3))
    depth = None
    for oy in offsets:
        for ox in offsets:
            cols, rows = np.meshgrid(np.arange(width) + ox, np.arange(height) + oy)
            d_cam = np.stack([(cols - k[0, 2]) / k[0, 0], (rows - k[1, 2]) / k[1, 1], np.ones_like(cols)], axis=-1)
            d_world = d_cam @ r  # = (R^T d)^T: z_cam of the ray parameter s is s
            best = np.full((height, width), np.inf)
            normal = np.zeros((height, width, 3))
            rgb = np.zeros((height, width, 3))
            for lo, hi, box_rgb in boxes:
                with np.errstate(divide="ignore", invalid="ignore"):
                    t1 = (np.asarray(lo) - centre) / d_world
                    t2 = (np.asarray(hi) - centre) / d_world
                near = np.minimum(t1, t2)
                far = np.maximum(t1, t2)
                near = np.where(np.isnan(near), -np.inf, near)
                far = np.where(np.isnan(far), np.inf, far)
                entry, axis = near.max(axis=-1), near.argmax(axis=-1)
                hit = (entry <= far.min(axis=-1)) & (entry > 0) & (entry < best)
                best = np.where(hit, entry, best)
                n = np.zeros((height, width, 3))
                sign = -np.sign(np.take_along_axis(d_world, axis[..., None], axis=-1)[..., 0])
                np.put_along_axis(n, axis[..., None], sign[..., None], axis=-1)
                normal = np.where(hit[..., None], n, normal)
                shade = 0.35 + 0.65 * np.clip(n @ LIGHT, 0, 1)
                rgb = np.where(hit[..., None], np.asarray(box_rgb) * shade[..., None], rgb)
            hit = np.isfinite(best)
            if ox == oy == 0.5:
                depth = np.where(hit, best, MISS)
            alpha += hit
            colour += rgb
            normals += normal
    n = samples * samples
    alpha /= n
    straight = np.where(alpha[..., None] > 0, colour / n / np.maximum(alpha[..., None], 1e-9), 0)
    rgba = np.concatenate([straight, alpha[..., None]], axis=-1)
    return (
        np.round(np.clip(rgba, 0, 1) * 255).astype(np.uint8),
        alpha.astype(np.float32),
        depth.astype(np.float32),
        (normals / n).astype(np.float32),
    )


def render_view(boxes, camera_matrix, width, height, lens=35.0, sensor=32.0, samples=1):
    k = intrinsics(lens, sensor, width, height)
    r, t = extrinsics(camera_matrix)
    return ray_cast(boxes, k, r, t, width, height, samples)


def write_render(folder: Path, name: str, rgba, alpha, depth, normals, layer="ViewLayer") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_png(folder / f"{name}.png", rgba)
    channels = {f"{layer}.Combined.{c}": rgba[..., i].astype(np.float32) / 255 for i, c in enumerate("RGB")}
    channels[f"{layer}.Combined.A"] = alpha
    channels[f"{layer}.Depth.Z"] = depth
    for i, c in enumerate("XYZ"):
        channels[f"{layer}.Normal.{c}"] = normals[..., i]
    write_exr(folder / f"{name}.exr", channels)
