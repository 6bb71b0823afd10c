"""The 3D-DST render-file contract against real Cycles: camera, K, planar depth, normals, the job."""

import json
from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_helpers import add_box, set_image_format
from dst_scene import ray_cast
from mathutils import Matrix

from engine.cameras import blender_camera_matrix, extrinsics, intrinsics, project
from engine.dst.dataset import DSTAnnotateRequest, DSTObject, DSTView, annotate_views
from engine.dst.masks import bbox_from_mask, mask_from_alpha
from engine.dst.normalize import box_corners
from engine.dst.renders import read_view_render
from engine.progress import CancelToken, Reporter
from engine.viewpoints import Viewpoint

pytestmark = pytest.mark.timeout(300)

LO, HI = np.array([-0.5, -0.3, -0.2]), np.array([0.5, 0.3, 0.2])
VIEW = Viewpoint(azimuth=35.0, polar=62.0, inplane=12.0, distance=2.2)
SIZE = 64
#: Blender's EXR compressions: what compositors write too (PIZ, DWAA) must read as well as the plain ones.
CODECS = ("NONE", "ZIP", "PIZ", "DWAA")


def render(folder: Path, name: str, view: Viewpoint, codec: str) -> np.ndarray:
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 4
    scene.cycles.use_denoising = False
    scene.render.resolution_x = scene.render.resolution_y = SIZE
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    layer = scene.view_layers[0]
    layer.use_pass_z = layer.use_pass_normal = True
    camera = bpy.data.objects.new("DSTCamera", bpy.data.cameras.new("DSTCamera"))
    camera.data.lens, camera.data.sensor_width, camera.data.sensor_fit = 35.0, 32.0, "AUTO"
    scene.collection.objects.link(camera)
    scene.camera = camera
    m = blender_camera_matrix(view)
    camera.matrix_world = Matrix(m.tolist())
    bpy.ops.render.render()
    result = bpy.data.images["Render Result"]
    settings = scene.render.image_settings
    set_image_format(settings, "OPEN_EXR_MULTILAYER")  # one part per pass in Blender 5, one part in 4.5
    settings.color_depth, settings.exr_codec = "32", codec
    result.save_render(str(folder / f"{name}.exr"), scene=scene)
    set_image_format(settings, "PNG")
    settings.color_mode, settings.color_depth = "RGBA", "8"
    result.save_render(str(folder / f"{name}.png"), scene=scene)
    return np.array(camera.matrix_world)


@pytest.fixture
def rendered(tmp_path):
    add_box("Object", tuple(LO), tuple(HI))
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (0.6, 0.2, 0.9)
    bpy.context.scene.collection.objects.link(sun)
    matrices = {codec: render(tmp_path, f"view_{codec.lower()}", VIEW, codec) for codec in CODECS}
    return tmp_path, matrices


def test_cycles_passes_match_the_engine_camera_model(rendered):
    folder, matrices = rendered
    m = matrices["ZIP"]
    assert np.allclose(m, blender_camera_matrix(VIEW), atol=1e-6)  # Blender keeps the matrix as given
    k, (r, t) = intrinsics(35, 32, SIZE, SIZE), extrinsics(m)
    _, ref_alpha, ref_depth, ref_normals = ray_cast([(LO, HI, (1, 1, 1))], k, r, t, SIZE, SIZE)
    for name in (f"view_{codec.lower()}" for codec in CODECS):
        passes = read_view_render(folder, name)
        mask, ref = mask_from_alpha(passes.alpha), ref_alpha > 0.5
        assert passes.rgba.shape == (SIZE, SIZE, 4)
        assert np.abs(passes.rgba[..., 3] / 255 - passes.alpha).max() <= 0.5 / 255 + 1e-6  # the PNG's alpha, 8-bit
        pad = np.pad(ref, 1, mode="edge")
        boundary = ref != (pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:] & ref)
        boundary |= ~ref & (pad[:-2, 1:-1] | pad[2:, 1:-1] | pad[1:-1, :-2] | pad[1:-1, 2:])
        assert not ((mask != ref) & ~boundary).any()  # pixel centres: Blender's K and R, t are ours
        inner = ref & ~boundary
        rel = np.abs(passes.depth[inner] - ref_depth[inner]) / ref_depth[inner]
        assert np.median(rel) < 2e-3 and rel.max() < 0.03  # planar depth (ray length would be off by up to 1/cos)
        assert (passes.depth[passes.alpha == 0] > 1e9).all() and (passes.alpha[~ref & ~boundary] < 0.5).all()
        npad = np.pad(ref_normals, ((1, 1), (1, 1), (0, 0)), mode="edge")
        flat = inner & np.all(
            [(npad[a : a + SIZE, b : b + SIZE] == ref_normals).all(axis=2) for a, b in ((0, 1), (2, 1), (1, 0), (1, 2))], axis=0
        )
        n = passes.normals[flat] / np.linalg.norm(passes.normals[flat], axis=1, keepdims=True)
        assert flat.sum() > 300 and (np.sum(n * ref_normals[flat], axis=1) > 0.999).all()  # world-space normals (off creases)
        lossy = 1e-4 if name.endswith("dwaa") else 0.0  # DWAA is lossy even on float channels
        assert (np.abs(passes.normals[passes.alpha == 0]) <= lossy).all()
        uv, _ = project(box_corners(LO, HI), k, r, t)
        x, y, w, h = bbox_from_mask(mask)
        assert np.allclose([x, y, x + w, y + h], [*uv.min(0), *uv.max(0)], atol=1.0)


def test_annotate_views_reads_blender_files(rendered, tmp_path):
    folder, matrices = rendered
    views = [
        DSTView(name, 0, VIEW.azimuth, VIEW.polar, VIEW.inplane, VIEW.distance, 35.0, 32.0, matrices[codec], box_corners(LO, HI), {}, i)
        for i, (name, codec) in enumerate((f"view_{codec.lower()}", codec) for codec in CODECS)
    ]
    request = DSTAnnotateRequest(
        render_dir=str(folder), dataset_dir=str(tmp_path / "data"), objects=[DSTObject("box", "box")], views=views, edge_method="BOTH"
    )
    result = annotate_views(request, Reporter(lambda _p: None, CancelToken()))
    assert result.annotations == len(CODECS) and not result.warnings
    doc = json.loads((tmp_path / "data" / "annotations.json").read_text())
    first, *others = doc["annotations"]
    assert all(first["segmentation"] == other["segmentation"] for other in others) and first["area"] > 100
    assert sorted(first["corners_visibility"]) == [1, 2, 2, 2, 2, 2, 2, 2]  # the far corner is hidden
