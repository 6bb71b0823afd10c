"""The view mapper's camera numbers: a Blender-style camera → DTU's 3×4 projection or spherical numbers, normalised by stored
ranges (a coordinate training never varied is constant), and the default training views that vary every coordinate."""

import math

import numpy as np
import pytest

from engine.cameras import camera_to_world
from engine.choices import TRAINING_LAYOUTS
from engine.errors import BadInput
from engine.viewneti.cameras import DTU12, SPHERICAL, CameraRanges, at_size, projection_numbers, spherical_numbers
from engine.viewneti.posed import ORBIT, STAGGERED, training_poses


def pinhole(c2w, point, fx, fy, cx, cy):
    """Pixel (u, v) of a world point through an OpenGL-axes camera (v grows downward)."""
    q = np.linalg.inv(c2w) @ np.append(point, 1.0)
    return cx + fx * q[0] / -q[2], cy - fy * q[1] / -q[2]


def test_the_projection_numbers_project_world_points_to_the_pixels_the_camera_sees():
    c2w = camera_to_world(37.0, 21.0, 3.2)
    c2w[:3, 3] += [0.4, -0.2, 1.1]
    fx, fy, cx, cy = 600.0, 610.0, 320.0, 240.0
    p = projection_numbers(c2w, fx, fy, cx, cy).reshape(3, 4)
    for point in np.random.default_rng(0).uniform(-0.5, 0.5, (20, 3)):
        x = p @ np.append(point, 1.0)
        assert x[2] > 0, "in front of the camera: positive depth, as OpenCV's"
        np.testing.assert_allclose(x[:2] / x[2], pinhole(c2w, point, fx, fy, cx, cy), atol=1e-9)


def test_spherical_numbers_read_back_the_orbit_a_camera_was_placed_on():
    for azimuth, elevation, distance in [(0, 0, 1.5), (90, 20, 2.0), (225, -10, 4.0), (359, 60, 0.7)]:
        numbers = spherical_numbers(camera_to_world(azimuth, elevation, distance))
        a = math.radians(azimuth)
        np.testing.assert_allclose(numbers, [math.cos(a), math.sin(a), elevation, distance], atol=1e-9)
    moved = camera_to_world(90, 0, 2.0)
    moved[:3, 3] += [1.0, 2.0, 3.0]
    np.testing.assert_allclose(spherical_numbers(moved, (1.0, 2.0, 3.0))[2:], [0.0, 2.0], atol=1e-9)
    with pytest.raises(BadInput, match="sits on its target"):
        spherical_numbers(np.eye(4))


def test_ranges_come_from_the_training_cameras_and_say_how_far_outside_a_new_one_is():
    train = np.array([spherical_numbers(camera_to_world(a, e, 2.0 + e / 100)) for a in range(0, 360, 45) for e in (0, 10, 20)])
    ranges = CameraRanges.fit(SPHERICAL, train)
    assert ranges.low[:2] == [-1.0, -1.0] and ranges.high[2] == pytest.approx(20.0)
    normalised = ranges.normalise(train)
    assert normalised.min() >= -1 - 1e-9 and normalised.max() <= 1 + 1e-9
    assert ranges.outside(train[0]) == 0.0
    assert ranges.outside(spherical_numbers(camera_to_world(0, 40, 2.2))) == pytest.approx(2.0)  # 40° is two ranges above 0–20°
    assert CameraRanges(**{"kind": ranges.kind, "low": ranges.low, "high": ranges.high}) == ranges  # what the checkpoint's JSON holds
    dtu = CameraRanges.fit(DTU12, np.stack([projection_numbers(camera_to_world(a, 10, 2), 500, 500, 256, 192) for a in (0, 30)]))
    assert len(dtu.low) == 12
    with pytest.raises(BadInput, match="SPHERICAL cameras have 4 numbers"):
        CameraRanges.fit(SPHERICAL, np.zeros((3, 12)))


def test_resizing_the_images_rescales_the_projection_numbers_as_resized_intrinsics_and_leaves_spherical_ones():
    pose = camera_to_world(40, 20, 3.0)
    small = projection_numbers(pose, 60.0, 60.0, 32.0, 24.0)  # a 64×48 image
    large = projection_numbers(pose, 120.0, 90.0, 64.0, 36.0)  # the same camera for a 128×72 image
    np.testing.assert_allclose(at_size(small[None], DTU12, (64, 48), (128, 72))[0], large, rtol=1e-12)
    sphere = spherical_numbers(pose)[None]
    np.testing.assert_array_equal(at_size(sphere, SPHERICAL, (64, 48), (128, 72)), sphere)


def test_a_coordinate_the_training_cameras_never_varied_is_constant_reads_as_0_and_is_named_not_measured():
    train = np.array([spherical_numbers(camera_to_world(a, 15, 2.0)) for a in range(0, 360, 15)])  # one elevation and distance
    assert np.ptp(train[:, 2:], axis=0).max() > 0, "float rounding alone makes them differ"
    ranges = CameraRanges.fit(SPHERICAL, train)
    assert ranges.constant_names() == ["elevation", "distance"] and ranges.low[2:] == ranges.high[2:]
    above = spherical_numbers(camera_to_world(0, 20, 2.0))  # 5° above the orbit: once 5.6 × 10¹⁵ normalised units outside
    np.testing.assert_allclose(ranges.normalise(above), [1.0, 0.0, 0.0, 0.0], atol=1e-12)
    assert ranges.outside(above) == 0.0 and ranges.warnings(train) == []
    assert ranges.warnings(above) == ["The view mapper saw one elevation only (15) in training: a camera at another is read as at that one"]
    saved = CameraRanges(SPHERICAL, [-1.0, -1.0, 15.0, 2.0], [1.0, 1.0, 15.0 + 1e-14, 2.0 + 4e-16])  # a checkpoint from before
    assert saved.constant_names() == ["elevation", "distance"] and np.abs(saved.normalise(above)).max() <= 1
    dtu = CameraRanges.fit(DTU12, np.stack([projection_numbers(camera_to_world(a, 15, 2.0), 500, 500, 256, 192) for a in (0, 90)]))
    assert "projection entry (3, 4)" in dtu.constant_names(), "the depth of the orbit's centre is the same from every azimuth"


def test_the_default_training_layout_staggers_elevation_and_distance_so_the_view_mapper_learns_both():
    assert TRAINING_LAYOUTS.default == STAGGERED
    target = (1.0, -2.0, 0.5)
    poses = training_poses(STAGGERED, 24, 15.0, 2.0, 0, target)
    numbers = np.stack([spherical_numbers(p, target) for p in poses])
    azimuths = np.round(np.degrees(np.arctan2(numbers[:, 1], numbers[:, 0])), 6) % 360
    np.testing.assert_allclose(np.sort(azimuths), np.arange(0, 360, 15), atol=1e-9)
    pairs = {(round(e, 6), round(d, 6)) for e, d in numbers[:, 2:]}
    assert pairs == {(e, d) for e in (0.0, 15.0, 30.0) for d in (2.0, 2.3, 2.6)}, "every pair, at several azimuths"
    assert CameraRanges.fit(SPHERICAL, numbers).constant_names() == []
    few = np.stack([spherical_numbers(p) for p in training_poses(STAGGERED, 2, 15.0, 2.0, 0, (0.0, 0.0, 0.0))])
    assert CameraRanges.fit(SPHERICAL, few).constant_names() == [], "any two views already vary both"
    dtu = np.stack([projection_numbers(p, 400, 400, 256, 192) for p in poses])
    assert CameraRanges.fit(DTU12, dtu).constant_names() == []
    steep = training_poses(STAGGERED, 3, 80.0, 2.0, 0, (0.0, 0.0, 0.0))
    np.testing.assert_allclose([spherical_numbers(p)[2] for p in steep], [65.0, 80.0, 89.0], atol=1e-9)  # never over the top
    orbit = np.stack([spherical_numbers(p) for p in training_poses(ORBIT, 8, 15.0, 2.0, 0, (0.0, 0.0, 0.0))])
    assert CameraRanges.fit(SPHERICAL, orbit).constant_names() == ["elevation", "distance"], "the plain orbit, for comparison"
