"""3D-DST camera conventions: where the camera is, where it looks, which way is up, K, R, t."""

import math

import numpy as np
import pytest
from dst_scene import render_view

from engine.cameras import blender_camera_matrix, camera_location, extrinsics, intrinsics, pose_from_extrinsics, project
from engine.dst.masks import bbox_from_mask, mask_from_alpha
from engine.dst.normalize import CORNER_NAMES, box_corners, keypoint_centres, normalization, normalize_points, to_world
from engine.errors import BadInput
from engine.viewpoints import Viewpoint

K512 = intrinsics(35.0, 32.0, 512, 512)


def test_intrinsics_match_blenders_35mm_on_a_32mm_sensor():
    assert np.array_equal(K512, [[560.0, 0, 256], [0, 560.0, 256], [0, 0, 1]])
    # AUTO: the sensor width spans the larger side, landscape or portrait
    assert intrinsics(35, 32, 640, 480)[0, 0] == 700.0 and intrinsics(35, 32, 480, 640)[0, 0] == 700.0
    assert intrinsics(35, 32, 480, 640, "HORIZONTAL")[0, 0] == 525.0
    assert intrinsics(35, 32, 640, 480, "VERTICAL", sensor_height_mm=24)[0, 0] == 700.0
    assert np.array_equal(intrinsics(35, 32, 640, 480)[:2, 2], [320.0, 240.0])
    with pytest.raises(BadInput):
        intrinsics(35, 32, 64, 64, "DIAGONAL")


@pytest.mark.parametrize(
    "view, where",
    [
        (Viewpoint(0, 90, 0, 2), (2, 0, 0)),
        (Viewpoint(90, 90, 0, 3), (0, 3, 0)),
        (Viewpoint(180, 90, 0, 1), (-1, 0, 0)),
        (Viewpoint(45, 0, 0, 2), (0, 0, 2)),
        (Viewpoint(0, 180, 0, 2), (0, 0, -2)),
        (
            Viewpoint(30, 60, 10, 2),
            (2 * math.sin(math.pi / 3) * math.cos(math.pi / 6), 2 * math.sin(math.pi / 3) * math.sin(math.pi / 6), 1.0),
        ),
    ],
)
def test_camera_sits_at_the_spherical_position_and_looks_at_the_origin(view, where):
    m = blender_camera_matrix(view)
    assert np.allclose(m[:3, 3], where, atol=1e-12) and np.allclose(camera_location(view), where, atol=1e-12)
    rot = m[:3, :3]
    assert np.allclose(rot.T @ rot, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(rot), 1.0)
    assert np.allclose(-rot[:, 2], -m[:3, 3] / view.distance, atol=1e-12)  # local −Z points at the origin
    assert np.array_equal(m[3], [0, 0, 0, 1])
    r, t = extrinsics(m)
    uv, z = project(np.zeros((1, 3)), K512, r, t)
    assert np.allclose(uv, [[256, 256]], atol=1e-9) and np.isclose(z[0], view.distance)


@pytest.mark.parametrize("azimuth, polar", [(0, 90), (37, 20), (200, 130), (310, 89)])
def test_world_up_is_image_up_and_right_is_minus_sin_cos(azimuth, polar):
    m = blender_camera_matrix(Viewpoint(azimuth, polar, 0, 2.5))
    a = math.radians(azimuth)
    assert np.allclose(m[:3, 0], [-math.sin(a), math.cos(a), 0], atol=1e-12)
    assert m[2, 1] > 0  # local +Y (image up) leans toward world +Z
    r, t = extrinsics(m)
    uv, _ = project(np.array([[0, 0, 0.1], [-0.1 * math.sin(a), 0.1 * math.cos(a), 0]]), K512, r, t)
    assert uv[0, 1] < 256 and np.isclose(uv[0, 0], 256)  # +Z above the centre
    assert uv[1, 0] > 256 and np.isclose(uv[1, 1], 256, atol=1e-9)  # the right vector: right of the centre


def test_straight_down_keeps_the_azimuths_right_vector():
    m = blender_camera_matrix(Viewpoint(30, 0, 0, 2))
    a = math.radians(30)
    assert np.allclose(m[:3, 0], [-math.sin(a), math.cos(a), 0]) and np.allclose(m[:3, 2], [0, 0, 1])
    near = blender_camera_matrix(Viewpoint(30, 1e-7, 0, 2))
    assert np.allclose(m, near, atol=1e-8)  # the limit from the given azimuth


@pytest.mark.parametrize("psi", [90.0, 30.0, -45.0, 180.0])
def test_positive_inplane_turns_the_image_counter_clockwise(psi):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.4, 0.4, (20, 3))
    view0 = Viewpoint(40, 70, 0, 3)
    uv0, z0 = project(pts, K512, *extrinsics(blender_camera_matrix(view0)))
    uv1, z1 = project(pts, K512, *extrinsics(blender_camera_matrix(Viewpoint(40, 70, psi, 3))))
    c, s = math.cos(math.radians(psi)), math.sin(math.radians(psi))
    dx, dy = (uv0 - 256).T  # y down: counter-clockwise on screen is (x, y) → (x c + y s, −x s + y c)
    assert np.allclose(uv1 - 256, np.stack([dx * c + dy * s, -dx * s + dy * c], axis=1), atol=1e-9)
    assert np.allclose(z0, z1)
    if psi == 90:  # a point right of the centre moves up
        right, _ = project(np.array([[0.0, 0.1, 0.0]]), K512, *extrinsics(blender_camera_matrix(Viewpoint(0, 90, 90, 2))))
        assert np.isclose(right[0, 0], 256) and right[0, 1] < 256


def test_extrinsics_are_opencv_axes_of_the_blender_matrix():
    m = blender_camera_matrix(Viewpoint(123, 67, 21, 2.7))
    r, t = extrinsics(m)
    assert np.allclose(r, np.diag([1, -1, -1]) @ m[:3, :3].T) and np.allclose(t, -r @ m[:3, 3])
    cam = r @ m[:3, 3] + t
    assert np.allclose(cam, 0, atol=1e-12)
    assert np.allclose(r @ (m[:3, 3] - 2.7 * m[:3, 2]) + t, [0, 0, 2.7])  # in front: +z
    scaled = m.copy()
    scaled[:3, :3] *= 2
    with pytest.raises(BadInput):
        extrinsics(scaled)


def test_pose_round_trips_through_r_and_t():
    rng = np.random.default_rng(3)
    for _ in range(200):
        view = Viewpoint(rng.uniform(0, 360), rng.uniform(0.5, 179.5), rng.uniform(-179, 179), rng.uniform(0.5, 9))
        az, el, ip, d = pose_from_extrinsics(*extrinsics(blender_camera_matrix(view)))
        assert abs((az - view.azimuth + 180) % 360 - 180) < 1e-9
        assert abs(el - view.elevation) < 1e-9 and abs(ip - view.inplane) < 1e-9 and abs(d - view.distance) < 1e-12
    for polar in (0.0, 180.0):  # at the poles the pose is ambiguous; it must still give the same camera
        m = blender_camera_matrix(Viewpoint(30, polar, 20, 2))
        azimuth, elevation, inplane, distance = pose_from_extrinsics(*extrinsics(m))
        back = Viewpoint(azimuth, 90.0 - elevation, inplane, distance)
        assert back.inplane == 0.0 and np.allclose(blender_camera_matrix(back), m, atol=1e-12)


def test_project_marks_points_behind_the_camera():
    r, t = extrinsics(blender_camera_matrix(Viewpoint(0, 90, 0, 2)))
    uv, z = project(np.array([[4.0, 0, 0], [0, 0, 0]]), K512, r, t)
    assert z[0] < 0 and np.isnan(uv[0]).all() and np.isfinite(uv[1]).all()


def test_normalization_centres_and_scales_the_bbox():
    lo, hi = np.array([1.0, -2.0, 0.5]), np.array([3.0, 2.0, 1.5])
    scale, offset = normalization(lo, hi)
    assert scale == 0.25 and np.array_equal(offset, [-2.0, 0.0, -1.0])
    corners = normalize_points(box_corners(lo, hi), scale, offset)
    assert np.allclose(corners.min(0), [-0.25, -0.5, -0.125]) and np.allclose(corners.max(0), [0.25, 0.5, 0.125])
    assert len(CORNER_NAMES) == 8 and CORNER_NAMES[0] == "bbox_000" and CORNER_NAMES[5] == "bbox_101"
    assert np.array_equal(box_corners(lo, hi)[5], [hi[0], lo[1], hi[2]])
    with pytest.raises(BadInput):
        normalization(lo, lo)


@pytest.mark.parametrize("view", [Viewpoint(30, 60, 0, 2.2), Viewpoint(250, 100, 35, 2.0), Viewpoint(90, 10, -70, 2.5)])
def test_projected_box_corners_enclose_the_rendered_mask(view):
    lo, hi = np.array([-0.5, -0.3, -0.2]), np.array([0.5, 0.3, 0.2])
    m = blender_camera_matrix(view)
    rgba, alpha, _, _ = render_view([(lo, hi, (0.8, 0.2, 0.2))], m, 96, 80)
    x, y, w, h = bbox_from_mask(mask_from_alpha(alpha))
    uv, _ = project(box_corners(lo, hi), intrinsics(35, 32, 96, 80), *extrinsics(m))
    (u0, v0), (u1, v1) = uv.min(0), uv.max(0)
    # pixels whose centres fall in the box's outline: their squares stick out by at most ½ px
    assert u0 - 0.5 <= x <= u0 + 1 and v0 - 0.5 <= y <= v0 + 1
    assert u1 - 1 <= x + w <= u1 + 0.5 and v1 - 1 <= y + h <= v1 + 0.5


def test_keypoint_centres_are_weighted_means_and_groups_without_weight_have_none():
    points = np.array([[0.0, 0, 0], [2, 0, 0], [0, 4, 0], [9, 9, 9]])
    weights = np.array([[1.0, 0, 0], [1, 0.5, 0], [0, 0.5, 0], [0, 0, -1]])  # a negative weight counts as none
    centres = keypoint_centres(points, weights, ["kp_a", "kp_b", "kp_empty"])
    assert set(centres) == {"kp_a", "kp_b"}
    np.testing.assert_allclose(centres["kp_a"], [1, 0, 0])
    np.testing.assert_allclose(centres["kp_b"], [1, 2, 0])
    with pytest.raises(BadInput, match="2 keypoint names for 3 weight columns"):
        keypoint_centres(points, weights, ["kp_a", "kp_b"])


def test_points_go_to_the_world_through_the_object_matrix():
    matrix = np.eye(4)
    matrix[:3, :3] = [[0, -2, 0], [2, 0, 0], [0, 0, 2]]  # 90° about z, scale 2
    matrix[:3, 3] = [1, 2, 3]
    np.testing.assert_allclose(to_world([[1.0, 0, 0], [0, 1, 0]], matrix), [[1, 4, 3], [-1, 2, 3]])
