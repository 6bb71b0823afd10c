"""The engine's stereo-video parts: camera moves, the safe radius, MP4 spatial metadata, VR180."""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from engine.errors import BadInput
from engine.imagefiles import write_png
from engine.progress import CancelToken, Reporter
from engine.world import camera_moves, parallax, spatial_media
from engine.world.stereo_video import VideoRequest, eye_size, finish_video, frame_size, output_file, projection_bounds, tagged_path

# --- camera moves ----------------------------------------------------------------


@pytest.mark.parametrize("move", camera_moves.MOVES)
@pytest.mark.parametrize("easing", camera_moves.EASINGS.ids)
def test_every_move_is_bounded_and_closes_its_loop(move, easing):
    path = camera_moves.camera_path(move, 49, 0.3, heading=0.7, easing=easing, loop=True)
    assert path.frames == 49 and path.offsets.shape == (49, 3)
    assert path.max_offset <= 0.3 + 1e-12
    np.testing.assert_allclose(path.offsets[-1], path.offsets[0], atol=1e-12)
    assert math.isclose(math.cos(path.yaw[-1]), math.cos(path.yaw[0]), abs_tol=1e-12)
    assert math.isclose(math.sin(path.yaw[-1]), math.sin(path.yaw[0]), abs_tol=1e-12)
    assert np.all(path.offsets[:, 2] == 0), "moves stay level"


def test_dolly_goes_forward_along_the_heading_and_back():
    path = camera_moves.camera_path(camera_moves.DOLLY, 21, 2.0, heading=math.pi / 2, easing=camera_moves.LINEAR)
    np.testing.assert_allclose(path.offsets[10], [0.0, 2.0, 0.0], atol=1e-12)  # halfway: at full reach, along +Y
    one_way = camera_moves.camera_path(camera_moves.DOLLY, 21, 2.0, loop=False)
    np.testing.assert_allclose(one_way.offsets[-1], [2.0, 0.0, 0.0], atol=1e-12)


def test_easing_starts_and_stops_gently():
    eased = camera_moves.camera_path(camera_moves.SWAY, 101, 1.0, easing=camera_moves.EASE_IN_OUT)
    linear = camera_moves.camera_path(camera_moves.SWAY, 101, 1.0, easing=camera_moves.LINEAR)
    first_step = lambda p: np.linalg.norm(p.offsets[1] - p.offsets[0])  # noqa: E731
    assert first_step(eased) < 0.05 * first_step(linear)


def test_look_turns_a_whole_turn_or_there_and_back():
    full = camera_moves.camera_path(camera_moves.LOOK, 9, 1.0, easing=camera_moves.LINEAR, look_degrees=360)
    np.testing.assert_allclose(np.degrees(full.yaw[[0, 4, 8]]), [0, 180, 360])
    assert full.max_offset == 0
    partial = camera_moves.camera_path(camera_moves.LOOK, 9, 1.0, easing=camera_moves.LINEAR, look_degrees=90)
    np.testing.assert_allclose(np.degrees(partial.yaw[[0, 4, 8]]), [0, 90, 0], atol=1e-12)


@pytest.mark.parametrize(
    "args, words",
    [
        (("SPIN", 10, 1.0), "unknown move"),
        (("DOLLY", 1, 1.0), "at least 2 frames"),
        (("DOLLY", 10, -1.0), "amplitude"),
        (("DOLLY", 10, float("nan")), "amplitude"),
    ],
)
def test_bad_moves(args, words):
    with pytest.raises(ValueError, match=words):
        camera_moves.camera_path(*args)
    with pytest.raises(ValueError, match="positive"):
        camera_moves.frame_count(0, 24)


def test_frame_count_counts_both_ends():
    assert camera_moves.frame_count(2.0, 24) == 49
    assert camera_moves.frame_count(1.0, 29.97) == 31


# --- safe radius ---------------------------------------------------------------


def test_a_plain_sphere_allows_a_quarter_of_its_radius():
    assert parallax.safe_radius(np.full((64, 128), 4.0)) == pytest.approx(1.0)


def test_depth_edges_shrink_the_safe_radius():
    depth = np.full((64, 128), 4.0)
    depth[20:44, 40:90] = 1.0  # a big object 1 m away in front of a 4 m wall
    band_limited = math.radians(parallax.MAX_BAND_DEG) / (1 / 1.0 - 1 / 4.0)
    assert parallax.safe_radius(depth) == pytest.approx(min(0.25, band_limited))
    depth[20:44, 40:90] = 3.5  # a shallow step: only the nearness limit applies
    assert parallax.safe_radius(depth) == pytest.approx(0.25 * 3.5)


def test_single_noisy_pixels_and_poles_do_not_decide_it():
    depth = np.full((64, 128), 4.0)
    depth[0, :] = 0.01  # a bad pole row: tiny solid angle
    depth[30, 70] = 0.05  # one outlier
    assert parallax.safe_radius(depth) == pytest.approx(1.0)


def test_bad_distance_maps():
    with pytest.raises(ValueError, match="2:1"):
        parallax.safe_radius(np.ones((10, 10)))
    with pytest.raises(ValueError, match="positive"):
        parallax.safe_radius(np.zeros((8, 16)))


# --- MP4 spatial metadata ----------------------------------------------------------


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full(kind: bytes, body: bytes) -> bytes:
    return box(kind, b"\0\0\0\0" + body)


def tiny_mp4(moov_first: bool, frames: int = 3, width: int = 64, height: int = 128) -> tuple[bytes, list[bytes]]:
    """A structurally complete MP4: one video track whose chunks (one per frame) are in ``mdat``."""
    samples = [bytes([i]) * (10 + i) for i in range(frames)]
    visual = bytes(24) + struct.pack(">HH", width, height) + bytes(50)
    avc1 = box(b"avc1", visual + box(b"avcC", b"\x01\x64\x00\x1f"))
    stsd = full(b"stsd", struct.pack(">I", 1) + avc1)
    stsz = full(b"stsz", struct.pack(">II", 0, frames) + b"".join(struct.pack(">I", len(s)) for s in samples))

    def moov_with(offsets: list[int]) -> bytes:
        stco = full(b"stco", struct.pack(">I", len(offsets)) + b"".join(struct.pack(">I", o) for o in offsets))
        stbl = box(b"stbl", stsd + stsz + stco)
        hdlr = full(b"hdlr", b"\0\0\0\0vide" + bytes(12) + b"video\0")
        trak = box(b"trak", full(b"tkhd", bytes(80)) + box(b"mdia", hdlr + box(b"minf", stbl)))
        return box(b"moov", full(b"mvhd", bytes(96)) + trak)

    ftyp = box(b"ftyp", b"isom\0\0\x02\0isomavc1")
    mdat_body = b"".join(samples)
    moov_size = len(moov_with([0] * frames))
    data_start = len(ftyp) + (moov_size if moov_first else 0) + 8
    offsets, pos = [], data_start
    for s in samples:
        offsets.append(pos)
        pos += len(s)
    moov, mdat = moov_with(offsets), box(b"mdat", mdat_body)
    return (ftyp + moov + mdat if moov_first else ftyp + mdat + moov), samples


def chunks(path: Path) -> list[bytes]:
    """Each frame's bytes, found through the file's own chunk offsets and sample sizes."""
    data = path.read_bytes()
    moov = data.index(b"moov") - 4
    stco, stsz = data.index(b"stco", moov) - 4, data.index(b"stsz", moov) - 4
    count = struct.unpack_from(">I", data, stco + 12)[0]
    offsets = struct.unpack_from(f">{count}I", data, stco + 16)
    sizes = struct.unpack_from(f">{count}I", data, stsz + 20)
    return [data[o : o + s] for o, s in zip(offsets, sizes)]


@pytest.mark.parametrize("moov_first", [False, True])
def test_injected_metadata_reads_back_and_keeps_the_media_intact(tmp_path, moov_first):
    data, samples = tiny_mp4(moov_first)
    source, target = tmp_path / "in.mp4", tmp_path / "out.mp4"
    source.write_bytes(data)
    assert chunks(source) == samples
    spatial_media.inject(source, target, spatial_media.TOP_BOTTOM, spherical=True)
    meta = spatial_media.read(target)
    assert (meta.stereo, meta.projection, meta.bounds) == ("top-bottom", "equirectangular", (0, 0, 0, 0))
    assert (meta.width, meta.height, meta.frames) == (64, 128, 3)
    assert "<GSpherical:StereoMode>top-bottom</GSpherical:StereoMode>" in meta.v1_xml
    assert chunks(target) == samples, "chunk offsets follow the media when moov grows"
    assert spatial_media.read(source).stereo == "", "the source is untouched"
    # tagging again replaces, never duplicates
    again = tmp_path / "again.mp4"
    spatial_media.inject(target, again, spatial_media.LEFT_RIGHT, spherical=False)
    meta = spatial_media.read(again)
    assert (meta.stereo, meta.projection, meta.v1_xml) == ("left-right", "", "")
    assert again.read_bytes().count(b"st3d") == 1 and chunks(again) == samples


def test_never_overwrites_unless_asked_and_refuses_non_mp4(tmp_path):
    data, _ = tiny_mp4(False)
    source, target = tmp_path / "in.mp4", tmp_path / "out.mp4"
    source.write_bytes(data)
    target.write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        spatial_media.inject(source, target, spatial_media.MONO)
    assert target.read_bytes() == b"keep me"
    spatial_media.inject(source, target, spatial_media.MONO, overwrite=True)
    assert spatial_media.read(target).stereo == "mono"
    (tmp_path / "not.mp4").write_bytes(b"\0\0\0\x10free" + bytes(8))
    with pytest.raises(spatial_media.MP4Error, match="not an MP4"):
        spatial_media.read(tmp_path / "not.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "not.mp4", "out.mp4"], "no temporary file left"


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_a_tagged_mp4_follows_the_umask_like_any_new_file(tmp_path, mask, mode):
    data, _ = tiny_mp4(False)
    (tmp_path / "in.mp4").write_bytes(data)
    old = os.umask(mask)
    try:
        spatial_media.inject(tmp_path / "in.mp4", tmp_path / "out.mp4", spatial_media.MONO)
    finally:
        os.umask(old)
    assert (tmp_path / "out.mp4").stat().st_mode & 0o777 == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]


def test_finish_video_job(tmp_path):
    data, _ = tiny_mp4(False)
    (tmp_path / "enc.mp4").write_bytes(data)
    report = Reporter(lambda p: None, CancelToken())
    result = finish_video(VideoRequest(encoded=str(tmp_path / "enc.mp4"), out_path=str(tmp_path / "v" / "out.mp4")), report)
    assert (result.frames, result.width, result.height, result.stereo) == (3, 64, 128, "top-bottom")
    with pytest.raises(BadInput, match="exists"):
        finish_video(VideoRequest(encoded=str(tmp_path / "enc.mp4"), out_path=str(tmp_path / "v" / "out.mp4")), report)
    with pytest.raises(BadInput, match="No frames"):
        finish_video(VideoRequest(out_path=str(tmp_path)), report)


# --- rig and frame sizes -----------------------------------------------------------


@pytest.mark.parametrize(
    "width, spherical, eye", [(2048, True, (2048, 1024)), (1024, False, (1024, 576)), (100, False, (100, 56)), (30, True, (30, 16))]
)
def test_an_eye_is_two_to_one_for_360_and_sixteen_by_nine_flat_with_even_sides(width, spherical, eye):
    assert eye_size(width, spherical) == eye


@pytest.mark.parametrize("layout, frame", [("TOP_BOTTOM", (64, 64)), ("SIDE_BY_SIDE", (128, 32)), ("MONO", (64, 32))])
def test_a_frame_stacks_the_eyes_as_its_layout_says(layout, frame):
    assert frame_size((64, 32), layout) == frame


def test_an_unknown_layout_is_refused_by_name():
    with pytest.raises(BadInput, match="Unknown stereo layout 'DIAGONAL'"):
        frame_size((64, 32), "DIAGONAL")


def test_a_rig_clips_near_enough_for_its_safe_radius_and_beyond_the_farthest_point():
    assert parallax.rig_clip_range(0.5, 20.0) == (0.01, 1000.0)
    assert parallax.rig_clip_range(0.02, 300.0) == pytest.approx((0.002, 3000.0))
    assert parallax.rig_clip_range(0.0, 0.0) == (0.01, 1000.0)


def test_an_old_sphere_without_a_stored_safe_radius_gets_a_fraction_of_its_nearest_distance():
    assert parallax.stored_safe_radius({"safe_radius": 0.3, "min_distance": 2.0}) == 0.3
    assert parallax.stored_safe_radius({"min_distance": 2.0}) == pytest.approx(parallax.NEAR_FRACTION * 2.0)
    assert parallax.stored_safe_radius({}) == 0.0


# --- VR180 -------------------------------------------------------------------------

QUARTER = 0x40000000


def test_vr180_eyes_are_square_with_even_sides():
    assert eye_size(2880, True, "VR180") == (2880, 2880)
    assert eye_size(31, True, "VR180") == (32, 32)
    assert frame_size(eye_size(64, True, "VR180"), "SIDE_BY_SIDE") == (128, 64)
    assert frame_size(eye_size(64, True, "VR180"), "TOP_BOTTOM") == (64, 128)
    assert eye_size(64, True, "RIG") == (64, 32), "the rig's own 360° is as before"


def test_vr180_bounds_crop_a_quarter_of_the_sphere_from_the_left_and_the_right():
    assert projection_bounds("VR180") == (0, 0, QUARTER, QUARTER)
    assert projection_bounds("RIG") == spatial_media.WHOLE_SPHERE
    assert spatial_media.crop_bounds(360, 180) == (0, 0, 0, 0)
    assert spatial_media.crop_bounds(360, 90) == (QUARTER, QUARTER, 0, 0)
    with pytest.raises(BadInput, match="Unknown video projection 'VR360'"):
        projection_bounds("VR360")


@pytest.mark.parametrize("stereo", [spatial_media.LEFT_RIGHT, spatial_media.TOP_BOTTOM])
def test_vr180_metadata_reads_back_with_its_bounds_and_no_v1_xml(tmp_path, stereo):
    data, samples = tiny_mp4(False)
    source, target = tmp_path / "in.mp4", tmp_path / "out.mp4"
    source.write_bytes(data)
    spatial_media.inject(source, target, stereo, spherical=True, bounds=projection_bounds("VR180"))
    meta = spatial_media.read(target)
    assert (meta.stereo, meta.projection, meta.bounds, meta.v1_xml) == (stereo, "equirectangular", (0, 0, QUARTER, QUARTER), "")
    assert chunks(target) == samples
    # the equi box itself: version/flags, then top, bottom, left, right
    raw = target.read_bytes()
    at = raw.index(b"equi")
    assert struct.unpack_from(">IIIII", raw, at + 4) == (0, 0, 0, QUARTER, QUARTER)
    st3d = raw.index(b"st3d")
    assert raw[st3d + 8] == {spatial_media.TOP_BOTTOM: 1, spatial_media.LEFT_RIGHT: 2}[stereo]
    # tagged again as a whole sphere: bounds back to zero, V1 back
    again = tmp_path / "again.mp4"
    spatial_media.inject(target, again, stereo)
    meta = spatial_media.read(again)
    assert meta.bounds == (0, 0, 0, 0) and "equirectangular" in meta.v1_xml and raw.count(b"equi") == 1


def test_bounds_that_crop_everything_away_are_refused(tmp_path):
    data, _ = tiny_mp4(False)
    (tmp_path / "in.mp4").write_bytes(data)
    for bounds in [(0, 0, 0x80000000, 0x80000000), (2**32, 0, 0, 0), (0, 0, -1, 0)]:
        with pytest.raises(ValueError, match="projection bounds"):
            spatial_media.inject(tmp_path / "in.mp4", tmp_path / "out.mp4", bounds=bounds)
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize(
    "name, stereo, tagged",
    [
        ("trip.mp4", spatial_media.LEFT_RIGHT, "trip_180_sbs.mp4"),
        ("trip.mp4", spatial_media.TOP_BOTTOM, "trip_180_tb.mp4"),
        ("trip.mp4", spatial_media.MONO, "trip_180.mp4"),
        ("trip_180_sbs.mp4", spatial_media.LEFT_RIGHT, "trip_180_sbs.mp4"),
        ("Trip_180_LR.mp4", spatial_media.LEFT_RIGHT, "Trip_180_LR.mp4"),
        ("trip-180.mp4", spatial_media.TOP_BOTTOM, "trip-180_tb.mp4"),
        ("trip_sbs.mp4", spatial_media.LEFT_RIGHT, "trip_sbs_180.mp4"),
        ("still.png", spatial_media.LEFT_RIGHT, "still_180_sbs.png"),
    ],
)
def test_vr180_file_names_carry_the_tags_players_read_once(name, stereo, tagged):
    assert tagged_path(Path("/out") / name, "VR180", stereo) == Path("/out") / tagged
    assert tagged_path(Path("/out") / name, "RIG", stereo) == Path("/out") / name, "360° names are left alone"


@pytest.mark.parametrize("name", ["trip_360.mp4", "trip_180_tb.mp4", "trip_RL.mp4"])
def test_a_name_whose_tags_say_otherwise_is_refused(name):
    with pytest.raises(BadInput, match="rename it"):
        tagged_path(Path(name), "VR180", spatial_media.LEFT_RIGHT)


def test_the_output_file_gets_its_suffix_then_its_tags():
    assert output_file(Path("/v/folder"), ".mp4", "VR180", spatial_media.LEFT_RIGHT) == Path("/v/folder/stereo_180_sbs.mp4")
    assert output_file(Path("/v/clip.mov"), ".mp4", "VR180", spatial_media.TOP_BOTTOM) == Path("/v/clip_180_tb.mp4")
    assert output_file(Path("/v/clip.mp4"), ".mp4", "RIG", spatial_media.TOP_BOTTOM) == Path("/v/clip.mp4")


def test_finish_video_tags_a_vr180_mp4_and_places_a_still(tmp_path):
    data, _ = tiny_mp4(False, width=128, height=64)
    (tmp_path / "enc.mp4").write_bytes(data)
    report = Reporter(lambda p: None, CancelToken())
    request = VideoRequest(
        encoded=str(tmp_path / "enc.mp4"), out_path=str(tmp_path / "v_180_sbs.mp4"), stereo=spatial_media.LEFT_RIGHT, projection="VR180"
    )
    result = finish_video(request, report)
    assert (result.stereo, result.projection, result.bounds) == ("left-right", "equirectangular", (0, 0, QUARTER, QUARTER))
    image = tmp_path / "scratch" / "frame_0001.png"
    image.parent.mkdir()
    write_png(image, np.full((64, 128, 3), 7, np.uint8))
    clean = image.read_bytes()
    image.write_bytes(
        clean[:33] + len(b"Date\x00now").to_bytes(4, "big") + b"tEXtDate\x00now" + bytes(4) + clean[33:]
    )  # a stamp after IHDR
    still = VideoRequest(
        out_path=str(tmp_path / "s_180_sbs.png"),
        stereo=spatial_media.LEFT_RIGHT,
        projection="VR180",
        image=str(image),
        width=128,
        height=64,
    )
    result = finish_video(still, report)
    assert (result.path, result.frames, result.width, result.height, result.bounds[2]) == (still.out_path, 1, 128, 64, QUARTER)
    assert Path(still.out_path).read_bytes() == clean, "placed without Blender's stamp"
    with pytest.raises(BadInput, match="already holds"):
        finish_video(still, report)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc.mp4", "s_180_sbs.png", "scratch", "v_180_sbs.mp4"]


def test_a_vr180_sequence_describes_its_half_sphere(tmp_path):
    (tmp_path / "frame_0001.png").write_bytes(b"1")
    report = Reporter(lambda p: None, CancelToken())
    finish_video(VideoRequest(out_path=str(tmp_path), stereo=spatial_media.LEFT_RIGHT, projection="VR180", width=128, height=64), report)
    described = json.loads((tmp_path / "stereo.json").read_text())
    assert (described["projection"], described["bounds"], described["stereo"]) == (
        "equirectangular",
        [0, 0, QUARTER, QUARTER],
        "left-right",
    )
    assert described["path"] == ".", "no absolute path: the same frames give the same bytes wherever they lie"


def views_of(path):
    return np.column_stack([np.cos(path.yaw), np.sin(path.yaw), np.zeros(path.frames)])


@pytest.mark.parametrize(
    "move, kwargs, words",
    [
        (camera_moves.DOLLY, {}, ""),
        (camera_moves.SWAY, {}, ""),
        (camera_moves.LOOK, {"look_degrees": 60}, ""),
        (camera_moves.ORBIT, {}, "behind its centre"),
        (camera_moves.FIGURE8, {}, "behind its centre"),
        (camera_moves.LOOK, {"look_degrees": 360}, "turns 180°"),
        (camera_moves.LOOK, {"look_degrees": 100}, "turns 100°"),
    ],
)
def test_vr180_moves_must_stay_in_the_front_hemisphere(move, kwargs, words):
    path = camera_moves.camera_path(move, 25, 0.5, easing=camera_moves.LINEAR, **kwargs)
    frames = list(range(1, 26))
    problem = camera_moves.front_hemisphere_problem(path.offsets, views_of(path), np.zeros(3), frames)
    assert (words in problem and bool(problem) == bool(words)) if words else problem == ""


def test_the_front_is_where_the_camera_first_looks():
    path = camera_moves.camera_path(camera_moves.DOLLY, 9, 0.5, heading=2.0)
    views = np.tile([math.cos(2.0), math.sin(2.0), 0.0], (9, 1))
    assert camera_moves.front_hemisphere_problem(path.offsets, views, np.zeros(3), list(range(9))) == ""
    assert "behind" in camera_moves.front_hemisphere_problem(-path.offsets, views, np.zeros(3), list(range(9)))
