"""Layered worlds, the engine's part: foreground regions found at depth edges, peeled into layers, the background filled."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import BadInput
from engine.world.layers import BEHIND, band_width, fill, foreground, grow, peel, regions
from engine.world.synthetic import box_room

H, W = 48, 96


def room() -> tuple[np.ndarray, np.ndarray]:
    """A box room's ray distances seen from 1.6 m above its floor (continuous at its corners), and smooth colours."""
    return box_room(W, H)


def box_in_a_room(rows=slice(14, 22), cols=slice(30, 44), near: float = 1.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rgb, distance = room()
    box = np.zeros((H, W), bool)
    box[rows, cols] = True
    distance[box] = near
    rgb[box] = (0.9, 0.1, 0.1)
    return rgb, distance, box


def test_a_room_is_one_region_and_has_no_foreground():
    _, distance = room()
    assert regions(distance, 0.15).max() == 0
    found = foreground(distance, 0.15, 16, 20)
    mask, count = found.mask, found.regions
    assert count == 0 and not mask.any()
    layering = peel(*room(), layers=2)
    assert len(layering.layers) == 1 and layering.regions == 0


def test_a_box_in_a_room_is_found_exactly_and_one_across_the_seam_is_one_region():
    rgb, distance, box = box_in_a_room()
    found = foreground(distance, 0.15, 16, 20)
    mask, count = found.mask, found.regions
    assert count == 1 and np.array_equal(mask, box)
    seam = np.zeros((H, W), bool)
    seam[30:36, W - 4 :] = seam[30:36, :5] = True
    distance[seam] = 1.0
    found = foreground(distance, 0.15, 16, 20)
    mask, count = found.mask, found.regions
    assert count == 2 and np.array_equal(mask, box | seam)
    assert foreground(distance, 0.15, 60, 20).regions == 1, "a region under the minimum size stays in the background"


def test_the_filled_background_lies_behind_the_box_and_continues_the_walls_around_it():
    """Filled under the box only: around it the background keeps its own pixels, which the box's border fades onto."""
    rgb, distance, box = box_in_a_room()
    layering = peel(rgb, distance, layers=2, dilation=2, reach=3.0)
    background, front = layering.layers
    hole = grow(box, 2)
    assert np.all(background.distance[box] >= distance[box] * (1 + BEHIND) - 1e-6)
    _, wall = room()
    around = wall[grow(hole, 1)]  # the wall where the box stands, and around it
    assert around.min() - 1e-5 <= background.distance[box].min() and background.distance[box].max() <= around.max() + 1e-5
    assert np.array_equal(background.distance[~box], distance[~box]) and np.array_equal(background.rgb[~box], rgb[~box])
    assert np.all(background.alpha == 1) and layering.clamped == 0.0
    assert np.all(front.alpha[box] == 1) and np.all(front.alpha[~hole] == 0)
    assert np.all(front.distance[hole] == 1.2) and np.all(front.distance[~hole] == 0), "the border on the box's surface"
    assert {round(float(a), 3) for a in front.alpha[hole & ~box]} == {round(2 / 3, 3), round(1 / 3, 3)}


def test_a_background_that_would_lie_within_the_margin_behind_its_occluder_is_pushed_back_and_reported():
    distance = np.full((H, W), 2.05, np.float32)  # a round room just behind a box: an edge at a 2% threshold
    box = np.zeros((H, W), bool)
    box[14:26, 34:44] = True
    distance[box] = 2.0
    layering = peel(np.full((H, W, 3), 0.5, np.float32), distance, layers=2, threshold=0.02, dilation=0, reach=50.0)
    background = layering.layers[0]
    assert np.array_equal(layering.layers[1].alpha == 1, box)
    np.testing.assert_allclose(background.distance[box], 2.0 * (1 + BEHIND), rtol=1e-6)
    assert layering.clamped == 1.0, "every filled pixel was pushed back, and it says so"


def test_rolling_the_panorama_rolls_its_layers():
    rgb, distance, _ = box_in_a_room(cols=slice(88, 96))
    shift = 37
    a = peel(rgb, distance, layers=2, reach=3.0)
    b = peel(np.roll(rgb, shift, axis=1), np.roll(distance, shift, axis=1), layers=2, reach=3.0)
    for one, other in zip(a.layers, b.layers):
        for name in ("rgb", "distance", "alpha"):
            np.testing.assert_allclose(np.roll(getattr(one, name), shift, axis=1), getattr(other, name), atol=1e-6)


def test_three_layers_put_a_box_before_a_box_in_front_of_it_and_carry_the_farther_box_on_under_the_nearer():
    rgb, distance, far_box = box_in_a_room(rows=slice(18, 30), cols=slice(30, 50), near=1.5)  # in front of the wall only
    near_box = np.zeros((H, W), bool)
    near_box[21:27, 36:44] = True
    distance[near_box] = 1.0
    layering = peel(rgb, distance, layers=3, dilation=0, reach=3.0)
    background, farther, nearer = layering.layers
    assert np.array_equal(nearer.alpha == 1, near_box) and np.array_equal(farther.alpha == 1, far_box)
    assert np.all(farther.distance[far_box] == 1.5), "the farther box carried on under the nearer one"
    assert np.all(background.distance[far_box] >= 1.5 * (1 + BEHIND) - 1e-6) and layering.regions == 2
    two = peel(rgb, distance, layers=2, dilation=0, reach=3.0)
    assert len(two.layers) == 2 and np.array_equal(two.layers[1].alpha == 1, far_box), "fewer layers: the nearer join the farthest"


def test_a_short_reach_takes_only_a_band_inside_the_edge():
    _, distance, box = box_in_a_room(rows=slice(10, 30), cols=slice(20, 60))
    band = band_width(distance, 0.15, 0.5)
    found = foreground(distance, 0.15, 16, band)
    mask, count = found.mask, found.regions
    inner = box.copy()
    inner[10 : 10 + band] = inner[30 - band : 30] = False
    inner[:, 20 : 20 + band] = inner[:, 60 - band : 60] = False
    assert 1 <= band < 10 and count == 1 and np.array_equal(mask, box & ~inner)


def test_a_flat_image_does_not_wrap():
    rgb, distance, box = box_in_a_room(cols=slice(90, 96))
    assert foreground(distance, 0.15, 16, 20, wrap=False).regions == 1
    filled = fill(rgb, distance, box, wrap=False)[1]
    assert np.all(filled[box] == filled[box].clip(distance[~box].min(), distance[~box].max()))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"layers": 0}, "Layers must be at least 1"),
        ({"distance": np.zeros((H, W), np.float32)}, "every distance finite and above 0"),
        ({"distance": np.ones((H, W + 2), np.float32)}, "differ in size"),
    ],
)
def test_bad_layering_requests_are_refused_in_one_line(change, words):
    rgb, distance = room()
    with pytest.raises(BadInput, match=words):
        peel(**{"rgb": rgb, "distance": distance, **change})


def test_a_foreground_over_half_the_panorama_is_refused():
    rgb, distance = room()
    for start in (0, 24, 48, 72):  # four boxes, each smaller than the room around them, together 69% of the panorama
        distance[4:44, start : start + 20] = 1.0
    with pytest.raises(BadInput, match=r"would cover 69% of the panorama \(at most 50%\)"):
        peel(rgb, distance, layers=2, reach=1.0)  # a walk radius that sees behind the whole of each box


def test_the_world_sphere_job_builds_the_background_whole_and_each_layer_cut_where_its_alpha_ends():
    from engine.jobs import run_job
    from engine.progress import CancelToken
    from engine.world.world_sphere import WorldSphereRequest

    rgb, distance, box = box_in_a_room()
    request = WorldSphereRequest(depth=distance, depth_mode="METRIC", rgb_size=(W, H), rgb=rgb, layers=2, step=1, min_region=16, border=2)
    notes = []
    result = run_job("world_sphere", request, notes.append, CancelToken())
    assert len(result.face_starts) == (H + 1) * W and result.dropped_faces == 0, "the background is whole"
    hole = grow(box, 2)
    assert np.array_equal(result.background[~hole], rgb[~hole]) and result.clamped == 0.0
    (layer,) = result.layers
    corners = hole & np.roll(hole, -1, axis=1)
    expected_quads = int((corners[:-1] & corners[1:]).sum())
    assert len(layer.mesh.face_starts) == expected_quads and np.all(np.diff(layer.mesh.face_starts) == 4)
    np.testing.assert_allclose(np.linalg.norm(layer.mesh.vertices, axis=1), 1.2, rtol=1e-5)
    assert len(layer.mesh.vertices) == int(hole.sum()) and layer.mesh.corner_verts.max() == len(layer.mesh.vertices) - 1
    assert np.array_equal(layer.rgba[..., :3], rgb) and np.all(layer.rgba[box, 3] == 1) and np.all(layer.rgba[~hole, 3] == 0)
    flat = run_job(
        "world_sphere",
        WorldSphereRequest(depth=room()[1], depth_mode="METRIC", rgb_size=(W, H), rgb=room()[0], layers=2),
        notes.append,
        CancelToken(),
    )
    assert flat.layers == [] and flat.background is None and any("one sphere" in (n.message or "") for n in notes)


def test_a_layered_worlds_splats_are_every_layers_and_seen_from_the_centre_reproduce_the_panorama(tmp_path):
    from plyfile import PlyData
    from test_splats import psnr, render_equirect

    from engine.imagefiles import write_png
    from engine.jobs import run_job
    from engine.progress import CancelToken
    from engine.world.splats import SplatRequest

    rgb, distance, box = box_in_a_room()
    codes = np.round(rgb * 255).astype(np.uint8)
    write_png(tmp_path / "rgb.png", codes)
    np.save(tmp_path / "depth.npy", distance)
    common = dict(rgb_path=str(tmp_path / "rgb.png"), depth_path=str(tmp_path / "depth.npy"), min_region=16, border=2)
    run_job("rgbd_splats", SplatRequest(**common, out_path=str(tmp_path / "one.ply")), lambda p: None, CancelToken())
    run_job("rgbd_splats", SplatRequest(**common, out_path=str(tmp_path / "two.ply"), layers=2), lambda p: None, CancelToken())
    single, layered = (PlyData.read(str(tmp_path / name))["vertex"].data for name in ("one.ply", "two.ply"))
    assert len(single) == H * W and len(layered) == H * W + int(grow(box, 2).sum())
    behind = layered[: H * W]  # the background's first: the box's pixels there now lie behind it
    box_rows = np.flatnonzero(box.ravel())
    depth_behind = np.linalg.norm(np.stack([behind[k][box_rows] for k in "xyz"], axis=1), axis=1)
    assert np.all(depth_behind >= 1.2 * 1.05 - 1e-5)
    assert psnr(render_equirect(layered, W, H), codes / 255.0) >= 30
