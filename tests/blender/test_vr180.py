"""VR180: the rig's 360° camera narrowed to the front half sphere, with the real ``bpy`` and tiny Cycles renders."""

from __future__ import annotations

import math

import bpy
import cv2
import numpy as np
import pytest
from blender_helpers import animated_rig, decode, emissive_box, render_settings, snapshot
from mathutils import Matrix

import batch
from engine.world import spatial_media
from engine.world.stereo_video import VideoRequest

pytestmark = pytest.mark.timeout(180)

QUARTER = 0x40000000
#: The marker colours (RGB) by their longitude, degrees to the left of where the camera looks.
MARKERS = {80: (1, 0, 0), -80: (0, 1, 0), 100: (0, 0, 1), -100: (1, 1, 0)}


def camera_state(camera):
    data = camera.data
    names = ("type", "panorama_type", "longitude_min", "longitude_max", "latitude_min", "latitude_max")
    return tuple(getattr(data, n) for n in names) + (data.stereo.use_spherical_stereo, data.stereo.use_pole_merge)


def files_under(folder):
    return {p for p in folder.rglob("*")}


@pytest.mark.parametrize(
    "layout, tag, stereo, size", [(None, "_180_sbs", "left-right", (64, 32)), ("TOP_BOTTOM", "_180_tb", "top-bottom", (32, 64))]
)
def test_a_vr180_mp4_has_square_eyes_half_sphere_boxes_and_a_tagged_name(tmp_path, layout, tag, stereo, size):
    scene = animated_rig(tmp_path)
    scene.frame_end = 3
    camera = scene.camera
    camera.data.stereo.use_pole_merge = False  # the rig's choice, put back after
    before, camera_before = render_settings(), camera_state(camera)
    options = {} if layout is None else {"stereo_layout": layout}
    out = tmp_path / "out" / "trip.mp4"
    assert bpy.ops.diffusion3d.render_stereo_video(filepath=str(out), projection="VR180", resolution="CUSTOM", eye_width=32, **options) == {
        "FINISHED"
    }
    written = out.with_name(f"trip{tag}.mp4")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [written.name], "the name carries the players' tags; no frames left"
    meta = spatial_media.read(written)
    assert (meta.stereo, meta.projection, meta.bounds, meta.frames) == (stereo, "equirectangular", (0, 0, QUARTER, QUARTER), 3)
    assert (meta.width, meta.height, meta.v1_xml) == (*size, ""), "32×32 eyes; V2 only (V1 cannot say half a sphere)"
    assert decode(written)[0].shape[:2] == size[::-1]
    assert render_settings() == before and camera_state(camera) == camera_before, "the rig's 360° camera is back as it was"


def marker_scene(tmp_path):
    """A 360° rig at the origin with no world; emissive markers 5 m away at ±80° and ±100° from its view."""
    scene = bpy.context.scene
    scene.cursor.location = (0.0, 0.0, 0.0)
    assert bpy.ops.diffusion3d.add_stereo_rig(place="CURSOR", interocular=0.02) == {"FINISHED"}
    camera = scene.camera
    bpy.context.view_layer.update()
    view = -np.array(camera.matrix_world.col[2].xyz)
    assert abs(view[2]) < 1e-6, "the rig looks level"
    for degrees, colour in MARKERS.items():
        turn = np.array(Matrix.Rotation(math.radians(degrees), 3, "Z")) @ view  # to the left of the view for positive angles
        emissive_box(f"marker {degrees}", tuple(5.0 * turn), 0.4, colour)
    return scene


def marker_columns(image):
    """Each marker's mean column in ``image`` (RGB), or None where it is not in the frame."""
    found = {}
    for degrees, colour in MARKERS.items():
        want = np.array(colour) * 255
        mask = np.abs(image.astype(np.int32) - want).max(axis=-1) < 60
        found[degrees] = float(np.nonzero(mask)[1].mean()) if mask.sum() >= 2 else None
    return found


def test_a_vr180_still_shows_markers_at_80_degrees_and_not_at_100(tmp_path):
    scene = marker_scene(tmp_path)
    before, blocks = render_settings(), snapshot()
    assert bpy.ops.diffusion3d.render_stereo_video(
        filepath=str(tmp_path / "still.png"), projection="VR180", still=True, resolution="CUSTOM", eye_width=64
    ) == {"FINISHED"}
    image = cv2.imread(str(tmp_path / "still_180_sbs.png"))[..., ::-1]
    assert image.shape[:2] == (64, 128), "two square eyes side by side"
    for eye in (image[:, :64], image[:, 64:]):  # left eye on the left
        columns = marker_columns(eye)
        assert columns[100] is None and columns[-100] is None, "beyond 90° is outside the half sphere"
        # 90° − 80° = 10° in from the edge: 64 px over 180° puts it 3.6 px from the left (its left) or the right
        assert columns[80] == pytest.approx(64 * 10 / 180, abs=2.5) and columns[-80] == pytest.approx(64 - 64 * 10 / 180, abs=2.5)
    assert render_settings() == before and scene.camera.data.longitude_min == pytest.approx(-math.pi)
    blocks_after = snapshot()
    blocks_after["images"].discard("Render Result")
    assert blocks_after == blocks
    assert sorted(p.name for p in tmp_path.iterdir()) == ["still_180_sbs.png"], "no scratch left beside it"
    # the rig's own 360° sees all four: the markers are there to be found
    assert bpy.ops.diffusion3d.render_stereo_video(filepath=str(tmp_path / "full.png"), still=True, resolution="CUSTOM", eye_width=128) == {
        "FINISHED"
    }
    full = cv2.imread(str(tmp_path / "full.png"))[..., ::-1]
    assert full.shape[:2] == (128, 128) and None not in marker_columns(full[:64]).values()


@pytest.mark.parametrize("still", [False, True])
def test_vr180_with_a_flat_rig_is_refused_and_changes_nothing(tmp_path, still):
    scene = animated_rig(tmp_path, mode="FLAT")
    before, blocks, files, frame = render_settings(), snapshot(), files_under(tmp_path), scene.frame_current
    with pytest.raises(RuntimeError, match=r"^Error: VR180 needs a 360° rig: Stereo Rig is a flat \(perspective\) stereo pair\n?$"):
        bpy.ops.diffusion3d.render_stereo_video(filepath=str(tmp_path / "out" / "v.mp4"), projection="VR180", still=still)
    assert (render_settings(), snapshot(), files_under(tmp_path), scene.frame_current) == (before, blocks, files, frame)


@pytest.mark.parametrize("move, words", [("ORBIT", "goes .* behind its centre"), ("LOOK", "turns 180° from where it first looks")])
def test_vr180_refuses_a_move_that_leaves_the_front_hemisphere(tmp_path, move, words):
    scene = animated_rig(tmp_path)
    assert bpy.ops.diffusion3d.animate_rig(move=move, seconds=0.5) == {"FINISHED"}
    scene.frame_set(4)
    before, files = render_settings(), files_under(tmp_path)
    with pytest.raises(RuntimeError, match=f"VR180 shows only the front half: Stereo Rig {words}"):
        bpy.ops.diffusion3d.render_stereo_video(filepath=str(tmp_path / "v.mp4"), projection="VR180")
    assert render_settings() == before and files_under(tmp_path) == files and scene.frame_current == 4
    # the same move as a 360° video is fine, and a still of one frame has no move to check
    assert bpy.ops.diffusion3d.render_stereo_video(
        filepath=str(tmp_path / "s.png"), projection="VR180", still=True, eye_width=16, resolution="CUSTOM"
    ) == {"FINISHED"}


def test_the_layout_follows_the_projection_unless_one_is_chosen(addon):
    st = bpy.context.scene.diffusion3d.stereo
    assert (st.projection, st.stereo_layout) == ("RIG", "AUTO")
    assert VideoRequest(projection="RIG").layout == "TOP_BOTTOM"
    assert VideoRequest(projection="VR180").layout == "SIDE_BY_SIDE"
    assert VideoRequest(projection="VR180", stereo_layout="MONO").layout == "MONO", "a chosen mono stays"


def test_batch_stereo_video_projection_vr180(tmp_path, capsys):
    summary = batch.execute(
        ["batch.py", "stereo-video", "--projection", "vr180", "--seconds", "0.1", "--resolution", "32", "--out", str(tmp_path / "walk.mp4")]
    )
    written = tmp_path / "walk_180_sbs.mp4"
    assert summary["paths"] == {"video": str(written)} and (summary["projection"], summary["layout"], summary["frames"]) == (
        "vr180",
        "side-by-side",
        3,
    )
    meta = spatial_media.read(written)
    assert (meta.stereo, meta.bounds, meta.width, meta.height) == ("left-right", (0, 0, QUARTER, QUARTER), 64, 32)
    still = batch.execute(
        [
            "batch.py",
            "stereo-video",
            "--projection",
            "vr180",
            "--layout",
            "top-bottom",
            "--still",
            "--resolution",
            "32",
            "--out",
            str(tmp_path / "walk.png"),
        ]
    )
    assert still["paths"] == {"image": str(tmp_path / "walk_180_tb.png")}
    assert cv2.imread(str(tmp_path / "walk_180_tb.png")).shape[:2] == (64, 32)
