"""The world-sphere operator: what it builds, in both engine modes, and every bad input."""

import stat
from pathlib import Path

import bpy
import cv2
import numpy as np
import pytest
from blender_helpers import snapshot

from engine.imagefiles import write_exr, write_png
from engine.world import equirect

pytestmark = pytest.mark.timeout(120)

H, W = 32, 64


def write_pair(folder: Path, depth: np.ndarray, rgb_shape=(H, W)) -> tuple[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    rgb = np.zeros((*rgb_shape, 3), np.uint8)
    rgb[..., 0] = np.linspace(0, 255, rgb_shape[1]).astype(np.uint8)
    write_png(folder / "rgb.png", rgb)
    if depth.dtype == np.uint16:
        write_png(folder / "depth.png", depth)
        return str(folder / "rgb.png"), str(folder / "depth.png")
    np.save(folder / "depth.npy", depth)
    write_exr(folder / "depth.exr", {"Y": depth.astype(np.float32)})
    return str(folder / "rgb.png"), str(folder / "depth.exr")


def smooth_depth(h=H, w=W):
    u = equirect.pixel_centres(w)[None, :]
    v = equirect.pixel_centres(h)[:, None]
    return (3.0 + 0.5 * np.sin(2 * np.pi * u) + 0.3 * np.cos(np.pi * v)).astype(np.float32)


def vertices(obj):
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def test_builds_a_textured_sphere_with_the_engine_geometry(tmp_path):
    rgb, depth = write_pair(tmp_path, smooth_depth())
    assert bpy.ops.diffusion3d.build_world_sphere(rgb_path=rgb, depth_path=depth, grid_step=1) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    mesh = obj.data
    assert len(mesh.vertices) == H * W + 2 and len(mesh.polygons) == (H - 1) * W + 2 * W
    assert len(mesh.edges) == 2 * H * W + W and not mesh.validate(), "the engine's edges make a valid mesh"
    np.testing.assert_allclose(np.linalg.norm(vertices(obj)[:-2], axis=1).reshape(H, W), smooth_depth(), rtol=1e-5)
    assert mesh.uv_layers.active is not None and len(mesh.uv_layers.active.uv) == len(mesh.loops)
    nodes = mesh.materials[0].node_tree.nodes
    texture = next(n for n in nodes if n.type == "TEX_IMAGE")
    assert texture.image.filepath.endswith("rgb.png") and texture.extension == "REPEAT"
    assert any(n.type == "EMISSION" for n in nodes)
    assert obj["diffusion3d_world"]["min_distance"] == pytest.approx(float(smooth_depth().min()))
    assert "depth.exr" not in {Path(img.filepath).name for img in bpy.data.images}  # depth was read, not kept


def test_npy_depth_and_loaded_images_are_accepted(tmp_path):
    rgb, _ = write_pair(tmp_path, smooth_depth())
    image = bpy.data.images.load(rgb)
    assert bpy.ops.diffusion3d.build_world_sphere(rgb_image=image.name, depth_path=str(tmp_path / "depth.npy"), grid_step=2) == {"FINISHED"}
    assert len(bpy.context.view_layer.objects.active.data.vertices) == (H // 2) * (W // 2) + 2


def test_relative_offset_mode_follows_the_paper_rule(tmp_path):
    disparity = np.full((H, W), 32768, np.uint16)
    disparity[:, : W // 2] = 65535  # left half near, right half mid
    rgb, depth = write_pair(tmp_path, disparity)
    bpy.ops.diffusion3d.build_world_sphere(
        rgb_path=rgb, depth_path=depth, depth_mode="RELATIVE", relative_mapping="OFFSET", radius=4.0, strength=1.0, grid_step=1
    )
    r = np.linalg.norm(vertices(bpy.context.view_layer.objects.active)[:-2], axis=1).reshape(H, W)
    np.testing.assert_allclose(r[:, W // 2 :], 4.0, rtol=1e-3)  # 0.5 stays at the radius
    np.testing.assert_allclose(r[:, : W // 2], 2.0, rtol=1e-3)  # 1.0 comes nearer


def test_subprocess_mode_builds_the_same_sphere(tmp_path, prefs):
    rgb, depth = write_pair(tmp_path, smooth_depth())
    bpy.ops.diffusion3d.build_world_sphere(rgb_path=rgb, depth_path=depth, grid_step=1, name="InProcess")
    prefs.engine_mode = "SUBPROCESS"
    prefs.python_path = ""  # Blender's own Python
    assert bpy.ops.diffusion3d.build_world_sphere(rgb_path=rgb, depth_path=depth, grid_step=1, name="Worker") == {"FINISHED"}
    np.testing.assert_array_equal(vertices(bpy.data.objects["InProcess"]), vertices(bpy.data.objects["Worker"]))


def test_auto_reads_a_jpeg_with_an_8_bit_depth_as_relative_and_says_so(tmp_path, capsys):
    """The usual export of panorama generators: a JPEG and an 8-bit depth, near = bright."""
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 1] = 200
    cv2.imwrite(str(tmp_path / "pano.jpg"), rgb)
    disparity = np.full((H, W), 128, np.uint8)
    disparity[:, : W // 2] = 255
    cv2.imwrite(str(tmp_path / "depth8.png"), disparity)
    capsys.readouterr()
    assert bpy.ops.diffusion3d.build_world_sphere(
        rgb_path=str(tmp_path / "pano.jpg"), depth_path=str(tmp_path / "depth8.png"), grid_step=1
    ) == {"FINISHED"}
    assert "depth 8-bit PNG read as Relative (Auto)" in capsys.readouterr().out
    obj = bpy.context.view_layer.objects.active
    assert obj["diffusion3d_world"]["depth_mode"] == "RELATIVE"
    r = np.linalg.norm(vertices(obj)[:-2], axis=1).reshape(H, W)
    np.testing.assert_allclose(r[:, : W // 2], 5.0 * (1 + (0.5 - 1.0)), rtol=1e-4)  # the paper's rule, default radius 5
    np.testing.assert_allclose(r[:, W // 2 :], 5.0 * (1 + (0.5 - 128 / 255)), rtol=1e-4)


@pytest.mark.parametrize("codec", ["PIZ", "DWAA", "ZIP"])
def test_a_depth_exr_blender_wrote_with_any_compression_builds_the_sphere_in_both_engine_modes(tmp_path, prefs, codec):
    """What compositors write (PIZ, DWAA) reads as well in Blender's process as in the worker."""
    rgb, _ = write_pair(tmp_path, smooth_depth())
    scene = bpy.context.scene
    image = bpy.data.images.new("depth", W, H, float_buffer=True)
    image.pixels.foreach_set(np.repeat(smooth_depth()[::-1].reshape(-1, 1), 4, axis=1).ravel())
    settings = scene.render.image_settings
    settings.file_format, settings.color_depth, settings.exr_codec = "OPEN_EXR", "32", codec
    path = str(tmp_path / f"depth_{codec}.exr")
    image.save_render(path, scene=scene)
    bpy.data.images.remove(image)
    made = []
    for mode in ("IN_PROCESS", "SUBPROCESS"):
        prefs.engine_mode, prefs.python_path = mode, ""  # the worker runs Blender's own Python, with its OpenImageIO
        assert bpy.ops.diffusion3d.build_world_sphere(rgb_path=rgb, depth_path=path, grid_step=1, name=mode) == {"FINISHED"}
        made.append(vertices(bpy.data.objects[mode]))
    np.testing.assert_array_equal(made[0], made[1])
    radii = np.linalg.norm(made[0][:-2], axis=1).reshape(H, W)
    np.testing.assert_allclose(radii, smooth_depth(), rtol=1e-5 if codec != "DWAA" else 5e-3)  # DWAA is lossy
    assert bpy.data.objects["IN_PROCESS"]["diffusion3d_world"]["depth_mode"] == "METRIC"


def test_a_sphere_from_other_files_goes_to_the_origin_or_the_3d_cursor_and_the_rig_follows(tmp_path):
    rgb, depth = write_pair(tmp_path, smooth_depth())
    bpy.context.scene.cursor.location = (1.0, -2.0, 0.5)
    assert bpy.ops.diffusion3d.build_world_sphere(rgb_path=rgb, depth_path=depth, name="At Origin") == {"FINISHED"}
    assert tuple(bpy.data.objects["At Origin"].location) == (0, 0, 0)
    assert bpy.ops.diffusion3d.build_world_sphere(rgb_path=rgb, depth_path=depth, place="CURSOR", name="At Cursor") == {"FINISHED"}
    assert tuple(bpy.data.objects["At Cursor"].location) == pytest.approx((1.0, -2.0, 0.5))
    assert bpy.ops.diffusion3d.add_stereo_rig(sphere="At Cursor") == {"FINISHED"}
    rig = bpy.context.view_layer.objects.active
    assert tuple(rig.location) == pytest.approx((1.0, -2.0, 0.5)) and rig["diffusion3d_rig"]["sphere"] == "At Cursor"


def test_uses_the_last_capture_when_no_files_are_given(tmp_path):
    rgb, depth = write_pair(tmp_path, smooth_depth())
    (tmp_path / "meta.json").write_text("{}")
    bpy.context.scene.diffusion3d.last_capture = str(tmp_path)
    assert bpy.ops.diffusion3d.build_world_sphere(grid_step=4) == {"FINISHED"}


def garbage(path: Path) -> str:
    path.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    return str(path)


BAD_DEPTHS = {
    "nan": (np.nan, "NaN"),
    "inf": (np.inf, "infinite"),
    "negative": (-2.0, "zero or negative"),
}


@pytest.mark.parametrize("case", sorted(BAD_DEPTHS))
def test_bad_depth_values(tmp_path, case):
    value, words = BAD_DEPTHS[case]
    d = smooth_depth()
    d[3, 5] = value
    rgb, _ = write_pair(tmp_path, d)
    before = snapshot()
    with pytest.raises(RuntimeError, match=words):
        bpy.ops.diffusion3d.build_world_sphere(rgb_path=rgb, depth_path=str(tmp_path / "depth.npy"))
    assert snapshot() == before


def test_all_zero_depth(tmp_path):
    rgb, depth = write_pair(tmp_path, np.zeros((H, W), np.float32))
    before = snapshot()
    with pytest.raises(RuntimeError, match="all zero"):
        bpy.ops.diffusion3d.build_world_sphere(rgb_path=rgb, depth_path=depth)
    assert snapshot() == before


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda t: dict(rgb_path=str(t / "missing.png"), depth_path=str(t / "depth.exr")), "not found"),
        (lambda t: dict(rgb_path=str(t / "rgb.png"), depth_path=str(t / "missing.exr")), "Depth .*missing.exr': no such file"),
        (lambda t: dict(rgb_path=garbage(t / "bad.png"), depth_path=str(t / "depth.exr")), "Could not read"),
        (lambda t: dict(rgb_path=str(t / "rgb.png"), depth_path=garbage(t / "bad.exr")), "Could not read"),
        (lambda t: dict(rgb_image="No Such Image", depth_path=str(t / "depth.exr")), "No image named"),
        (lambda t: dict(rgb_path="", depth_path=""), "Choose the RGB"),
        (lambda t: dict(rgb_path=str(t / "rgb.png"), depth_path=str(t / "depth.exr"), grid_step=0), "Grid Step 0: must be 1–64"),
        (lambda t: dict(rgb_path=str(t / "rgb.png"), depth_path=str(t / "depth.exr"), grid_step=100000), "Grid Step 100000: must be 1–64"),
        (lambda t: dict(rgb_path=str(t / "rgb.png"), depth_path=str(t / "depth.exr"), discontinuity=-1), "Cut Jumps -1: must be 0–"),
        (lambda t: dict(rgb_path=str(t / "rgb.png"), depth_path=str(t / "depth.exr"), depth_mode="RELATIVE"), "METRIC"),
    ],
)
def test_bad_files_and_settings(tmp_path, make, words):
    write_pair(tmp_path, smooth_depth())
    kwargs = make(tmp_path)
    before = snapshot()
    with pytest.raises(RuntimeError, match=words):
        bpy.ops.diffusion3d.build_world_sphere(**kwargs)
    assert snapshot() == before, "nothing half-built, no orphan image or mesh"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(relative_mapping="OFFSET", strength=3.0), "Strength 3: must be ≥ 0 and < 2"),
        (dict(relative_mapping="INVERSE", near=5.0, far=1.0), "Far 1: must be farther than Near \\(5\\)"),
    ],
)
def test_bad_relative_settings(tmp_path, kwargs, words):
    rgb, depth = write_pair(tmp_path, np.full((H, W), 40000, np.uint16))
    before = snapshot()
    with pytest.raises(RuntimeError, match=words):
        bpy.ops.diffusion3d.build_world_sphere(rgb_path=rgb, depth_path=depth, depth_mode="RELATIVE", **kwargs)
    assert snapshot() == before


def test_rgb_and_depth_of_different_sizes(tmp_path):
    rgb, depth = write_pair(tmp_path, smooth_depth(), rgb_shape=(16, 32))
    before = snapshot()
    with pytest.raises(RuntimeError, match="same size"):
        bpy.ops.diffusion3d.build_world_sphere(rgb_path=rgb, depth_path=depth)
    assert snapshot() == before


def test_panorama_not_two_to_one(tmp_path):
    rgb, depth = write_pair(tmp_path, smooth_depth(H, H), rgb_shape=(H, H))
    with pytest.raises(RuntimeError, match="2:1"):
        bpy.ops.diffusion3d.build_world_sphere(rgb_path=rgb, depth_path=depth)


def test_eight_bit_depth_in_metric_mode_explains_itself(tmp_path):
    rgb, _ = write_pair(tmp_path, smooth_depth())
    write_png(tmp_path / "d8.png", np.full((H, W), 128, np.uint8))
    with pytest.raises(RuntimeError, match="Relative"):
        bpy.ops.diffusion3d.build_world_sphere(rgb_path=rgb, depth_path=str(tmp_path / "d8.png"), depth_mode="METRIC")


def test_bad_interpreter_path(tmp_path, prefs):
    rgb, depth = write_pair(tmp_path, smooth_depth())
    prefs.engine_mode = "SUBPROCESS"
    prefs.python_path = str(tmp_path / "nope" / "python")
    before = snapshot()
    with pytest.raises(RuntimeError, match="not found or not executable"):
        bpy.ops.diffusion3d.build_world_sphere(rgb_path=rgb, depth_path=depth)
    assert snapshot() == before


def test_worker_that_dies_at_start(tmp_path, prefs):
    rgb, depth = write_pair(tmp_path, smooth_depth())
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\necho 'Fatal Python error: boom' >&2\nkill -9 $$\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    prefs.engine_mode = "SUBPROCESS"
    prefs.python_path = str(script)
    before = snapshot()
    with pytest.raises(RuntimeError, match="did not start.*SIGKILL"):
        bpy.ops.diffusion3d.build_world_sphere(rgb_path=rgb, depth_path=depth)
    assert snapshot() == before
