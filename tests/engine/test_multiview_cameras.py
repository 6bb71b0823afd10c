"""The multi-view models' cameras and the views' transforms.json, against the port's closed form."""

import json
import math

import numpy as np
import pytest

from engine.errors import BadInput
from engine.multiview import cameras

# The port's get_camera(4, 0, extra_view=True), row by row (shared/reference/imagedream-checkpoint.md §4)
PORT_AT_ELEVATION_0 = [
    [1, 0, 0, 0, 0, 0, -1, -1, 0, 1, 0, 0, 0, 0, 0, 1],
    [0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1],
    [-1, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1],
    [0, 0, -1, -1, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1],
    [0] * 16,
]


def project(point, frame, camera):
    """Pixel (x right, y down) of a world point seen by one transforms.json frame (OpenGL camera axes)."""
    x, y, z = (np.linalg.inv(np.array(frame["transform_matrix"])) @ np.append(point, 1.0))[:3]
    assert z < 0, "in front of the camera"
    return np.array([camera["cx"] + camera["fl_x"] * x / -z, camera["cy"] - camera["fl_y"] * y / -z])


def test_the_model_cameras_equal_the_ports_at_elevation_0():
    got = cameras.model_cameras(0.0)
    assert got.dtype == np.float32 and got.shape == (5, 16)
    np.testing.assert_allclose(got, PORT_AT_ELEVATION_0, atol=1e-7)
    assert cameras.model_cameras(0.0, image_frame=False).shape == (4, 16)


@pytest.mark.parametrize("elevation", [-10.0, 5.0, 15.0, 30.0])
def test_the_model_cameras_follow_the_ports_closed_form(elevation):
    e = math.radians(elevation)
    for row, azimuth in zip(cameras.model_cameras(elevation), cameras.AZIMUTHS):
        a = math.radians(azimuth)
        ce, se, ca, sa = math.cos(e), math.sin(e), math.cos(a), math.sin(a)
        closed = [ca, -se * sa, ce * sa, ce * sa, sa, se * ca, -ce * ca, -ce * ca, 0, ce, se, se, 0, 0, 0, 1]
        np.testing.assert_allclose(row, closed, atol=1e-6)


def test_views_sit_at_minus_y_plus_x_plus_y_minus_x_and_positive_elevation_is_above():
    positions = [cameras.camera_to_world(a, 0.0, 2.0)[:3, 3] for a in cameras.AZIMUTHS]
    np.testing.assert_allclose(positions, [[0, -2, 0], [2, 0, 0], [0, 2, 0], [-2, 0, 0]], atol=1e-12)
    assert cameras.camera_to_world(0.0, 20.0)[2, 3] > 0


@pytest.mark.parametrize("elevation", [0.0, 12.0])
def test_each_camera_is_a_rotation_and_the_next_view_is_the_last_turned_90_degrees_about_z(elevation):
    turn = np.eye(4)
    turn[:2, :2] = [[0, -1], [1, 0]]
    poses = [cameras.camera_to_world(a, elevation, 1.5) for a in cameras.AZIMUTHS]
    for i, pose in enumerate(poses):
        np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-12)
        assert np.linalg.det(pose[:3, :3]) == pytest.approx(1.0)
        np.testing.assert_allclose(turn @ pose, poses[(i + 1) % 4], atol=1e-12)


def test_transforms_json_round_trips_the_object_centre_to_every_image_centre():
    data = json.loads(json.dumps(cameras.transforms(256, 5.0)))
    assert data["camera_model"] == "OPENCV" and (data["w"], data["h"], data["cx"], data["cy"]) == (256, 256, 128, 128)
    assert data["fl_x"] == data["fl_y"] == pytest.approx(128 / math.tan(math.radians(cameras.FOV_DEG) / 2))
    assert [f["file_path"] for f in data["frames"]] == [f"view_{i}.png" for i in range(4)]
    for frame in data["frames"]:
        np.testing.assert_allclose(project(np.zeros(3), frame, data), [128, 128], atol=1e-9)
        assert np.linalg.norm(np.array(frame["transform_matrix"])[:3, 3]) == pytest.approx(cameras.DISTANCE)


def test_a_point_above_the_centre_shows_above_the_image_centre_in_every_view():
    data = cameras.transforms(256, 0.0)
    for frame in data["frames"]:
        x, y = project(np.array([0.0, 0.0, 0.2]), frame, data)
        assert x == pytest.approx(128) and y < 128


@pytest.mark.parametrize(
    "kwargs, message",
    [({"size": 0}, "at least 1 pixel"), ({"distance": 0.0}, "distance must be greater than 0"), ({"fov_deg": 180.0}, "field of view")],
)
def test_bad_camera_settings_are_refused(kwargs, message):
    with pytest.raises(BadInput, match=message):
        cameras.transforms(**{"size": 256, "elevation_deg": 0.0, **kwargs})


def test_placed_in_a_scene_view_1_looks_from_the_front_at_the_object_and_the_scale_sets_the_distance():
    centre, half = (1.0, 2.0, 0.5), 0.3
    scale = cameras.object_scale(half)
    placed = cameras.scene_cameras(cameras.scene_placement(centre, scale), 0.0)
    front = placed[cameras.FRONT_VIEW]
    np.testing.assert_allclose(front[:3, 3], np.array(centre) + [0, -cameras.DISTANCE * scale, 0], atol=1e-9)
    np.testing.assert_allclose(front[:3, 2], [0, -1, 0], atol=1e-9)  # camera +Z points back at the viewer: it looks along +Y
    for matrix in placed:
        np.testing.assert_allclose(matrix[:3, :3] @ matrix[:3, :3].T, np.eye(3), atol=1e-9)
        to_centre = np.array(centre) - matrix[:3, 3]
        np.testing.assert_allclose(-matrix[:3, 2], to_centre / np.linalg.norm(to_centre), atol=1e-9)
    # the object's half extent fills 80% of the half frame at that distance
    frame_half = cameras.DISTANCE * scale * np.tan(np.radians(cameras.FOV_DEG) / 2)
    assert half / frame_half == pytest.approx(0.8)
