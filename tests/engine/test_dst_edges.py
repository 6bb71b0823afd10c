"""Edge maps: Canny pixel for pixel as cv2.Canny (test-only reference), geometric edges, F-score."""

import itertools

import cv2
import numpy as np
import pytest
from dst_scene import render_view

from engine.cameras import blender_camera_matrix, camera_location, extrinsics, intrinsics, project
from engine.dst.edges import canny, canny_input, edge_fscore, geometric_edges
from engine.dst.normalize import box_corners
from engine.errors import BadInput
from engine.viewpoints import Viewpoint

BOX = (np.array([-0.5, -0.3, -0.2]), np.array([0.5, 0.3, 0.2]))
CHAIR = [
    ((-0.5, -0.5, -0.1), (0.5, 0.5, 0.05), (0.7, 0.5, 0.3)),
    ((-0.5, 0.35, 0.05), (0.5, 0.5, 0.7), (0.3, 0.5, 0.7)),
    ((-0.45, -0.45, -0.6), (-0.35, -0.35, -0.1), (0.5, 0.5, 0.5)),
]


def canny_images():
    rng = np.random.default_rng(1)
    yield rng.integers(0, 256, (96, 128), dtype=np.uint8)
    noise = rng.integers(0, 256, (160, 200), dtype=np.uint8)
    yield np.clip(cv2.GaussianBlur(noise, (0, 0), 2).astype(np.int32) * 4 - 400, 0, 255).astype(np.uint8)
    shapes = np.zeros((160, 200), np.uint8)
    cv2.circle(shapes, (100, 80), 50, 200, -1)
    cv2.rectangle(shapes, (10, 20), (70, 140), 90, -1)
    cv2.line(shapes, (0, 159), (199, 0), 255, 3)
    yield shapes
    yield np.clip(shapes + rng.normal(0, 20, shapes.shape), 0, 255).astype(np.uint8)
    yield cv2.GaussianBlur(rng.integers(0, 256, (120, 150, 3), dtype=np.uint8), (0, 0), 1.5)
    rgba, _, _, _ = render_view(CHAIR, blender_camera_matrix(Viewpoint(-60, 60, 0, 2.6)), 160, 128, samples=3)
    yield canny_input(rgba)
    yield cv2.cvtColor(canny_input(rgba), cv2.COLOR_BGR2GRAY)


def test_canny_equals_cv2_canny():
    agree = total = 0
    for image in canny_images():
        for low, high, aperture, l2 in [
            (100, 200, 3, False),
            (40, 120, 3, False),
            (30.5, 90.7, 3, True),
            (200, 100, 3, False),
            (300, 900, 5, False),
        ]:
            ref = cv2.Canny(image, low, high, apertureSize=aperture, L2gradient=l2)
            ours = canny(image, low, high, aperture, l2)
            agree += int((ours == ref).sum())
            total += ref.size
            assert ours.dtype == np.uint8 and set(np.unique(ours)) <= {0, 255}
            assert np.array_equal(ours, ref), (image.shape, low, high, aperture, l2)
    assert agree == total  # 100 % pixel agreement


def test_canny_refuses_what_it_cannot_do():
    with pytest.raises(BadInput):
        canny(np.zeros((8, 8), np.float32))
    with pytest.raises(BadInput):
        canny(np.zeros((8, 8), np.uint8), aperture=7)


def test_canny_input_composites_over_black_as_bgr():
    rgba = np.array([[[10, 20, 30, 255], [200, 100, 50, 0], [200, 100, 50, 128]]], np.uint8)
    out = canny_input(rgba)
    assert out.tolist() == [[[30, 20, 10], [0, 0, 0], [25, 50, 100]]]
    assert canny_input(rgba, background=255)[0, 1].tolist() == [255, 255, 255]


def inner_boundary(mask):
    pad = np.pad(mask, 1, mode="edge")
    inside = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    return mask & ~inside


def test_flat_face_gives_its_silhouette_only():
    alpha = np.zeros((40, 50), np.float32)
    alpha[5:30, 10:45] = 1
    alpha[20:35, 20:25] = 1
    depth = np.where(alpha > 0, 3.0, 1e10).astype(np.float32)
    normals = np.zeros((40, 50, 3), np.float32)
    normals[alpha > 0] = [0, 0, 1]
    edges = geometric_edges(depth, normals, alpha)
    assert np.array_equal(edges > 0, inner_boundary(alpha > 0))
    assert edges.dtype == np.uint8 and set(np.unique(edges)) == {0, 255}


def test_occluding_contour_is_drawn_on_the_nearer_surface():
    alpha = np.ones((30, 30), np.float32)  # the object fills the frame: no silhouette
    depth = np.full((30, 30), 4.0, np.float32)
    depth[10:20, 5:15] = 2.0  # a nearer part
    depth[25:, :] = 4.05  # a slope-like step below the 3 % threshold: not an edge
    normals = np.zeros((30, 30, 3), np.float32)
    normals[..., 2] = 1
    edges = geometric_edges(depth, normals, alpha) > 0
    near = np.zeros((30, 30), bool)
    near[10:20, 5:15] = True
    assert np.array_equal(edges, inner_boundary(near))


@pytest.mark.parametrize("angle", [45.0, 60.0, 68.0])
def test_a_slanted_plane_with_jittered_depth_samples_has_no_edges(angle):
    h, w = 48, 64
    k = intrinsics(35, 32, w, h)
    # Camera at the origin looking down +z (R = I); the plane's normal is `angle` off the view axis,
    # tilted vertically, so across the ±19° of the image the rays meet it up to 87° off its normal.
    a = np.radians(angle)
    normal = np.array([0.0, np.sin(a), -np.cos(a)])
    rng = np.random.default_rng(0)
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    ju, jv = rng.uniform(-0.75, 0.75, (2, h, w))  # Cycles' one depth sample lands anywhere in the filter
    rays = np.stack([(cols + ju - k[0, 2]) / k[0, 0], (rows + jv - k[1, 2]) / k[1, 1], np.ones((h, w))], axis=-1)
    depth = -3.0 / (rays @ normal)  # the plane n·X = −3
    assert (depth > 0).all()
    normals = np.broadcast_to(normal, (h, w, 3))
    assert not geometric_edges(depth, normals, np.ones((h, w)), k=k, r=np.eye(3)).any()
    if angle == 68.0:  # without the camera the plane's own depth steps pass for contours
        assert geometric_edges(depth, normals, np.ones((h, w))).any()


@pytest.mark.parametrize("blend", [0, 1, 2])
def test_a_crease_is_one_pixel_wide_even_with_blended_normals(blend):
    h, w, col = 20, 30, 14
    a, b = np.array([0, 0, 1.0]), np.array([1.0, 0, 0])  # 90°
    normals = np.empty((h, w, 3))
    normals[:, :col] = a
    normals[:, col:] = b
    for i in range(blend):  # anti-aliasing spreads the crease over blend pixels
        f = (i + 1) / (blend + 1)
        normals[:, col + i] = (1 - f) * a + f * b
    edges = geometric_edges(np.full((h, w), 3.0), normals, np.ones((h, w))) > 0
    cols = np.flatnonzero(edges.any(axis=0))
    assert len(cols) == 1 and edges[:, cols[0]].all() and col - 1 <= cols[0] <= col + blend
    gentle = np.where(np.arange(w)[None, :, None] < col, a, np.array([np.sin(0.35), 0, np.cos(0.35)])) * np.ones((h, 1, 1))  # 20°
    assert not geometric_edges(np.full((h, w), 3.0), gentle, np.ones((h, w))).any()


def segment_distance(points, p0, p1):
    d = p1 - p0
    s = np.clip(((points - p0) @ d) / max(d @ d, 1e-12), 0, 1)
    return np.linalg.norm(points - (p0 + s[:, None] * d), axis=1)


@pytest.mark.parametrize("view", [Viewpoint(30, 60, 0, 2.2), Viewpoint(200, 110, 25, 2.0), Viewpoint(300, 45, -10, 2.4)])
def test_box_edges_are_its_projected_visible_edges(view):
    width, height = 128, 112
    m = blender_camera_matrix(view)
    rgba, alpha, depth, normals = render_view([(*BOX, (0.6, 0.6, 0.6))], m, width, height, samples=3)
    k, (r, t) = intrinsics(35, 32, width, height), extrinsics(m)
    edges = geometric_edges(depth, normals, alpha, k=k, r=r) > 0
    corners = box_corners(*BOX)
    uv, _ = project(corners, k, r, t)
    eye = camera_location(view)
    centre = (BOX[0] + BOX[1]) / 2
    segments = []
    for i, j in itertools.combinations(range(8), 2):
        if bin(i ^ j).count("1") != 1:
            continue  # not a box edge
        axis = 3 - (i ^ j).bit_length()  # the axis along which corners i and j differ (bit 4: x)
        mid = (corners[i] + corners[j]) / 2
        faces = [k for k in range(3) if k != axis]  # the two faces meeting at this edge
        facing = [np.sign(mid[k] - centre[k]) * (eye[k] - mid[k]) > 0 for k in faces]
        if any(facing):
            segments.append((uv[i], uv[j]))
    pix = np.argwhere(edges)[:, ::-1] + 0.5
    to_lines = np.min([segment_distance(pix, p0, p1) for p0, p1 in segments], axis=0)
    assert to_lines.max() <= 1.5  # precision: every edge pixel lies on a visible box edge
    samples = np.concatenate([p0 + np.linspace(0.02, 0.98, 40)[:, None] * (p1 - p0) for p0, p1 in segments])
    nearest = np.min(np.linalg.norm(samples[:, None] - pix[None], axis=2), axis=1)
    assert nearest.max() <= 1.5  # recall: every visible box edge is drawn
    blocks = edges[:-1, :-1] & edges[1:, :-1] & edges[:-1, 1:] & edges[1:, 1:]
    block_centres = np.argwhere(blocks)[:, ::-1] + 1.0
    to_corner = np.linalg.norm(block_centres[:, None] - uv[None], axis=2).min(axis=1)
    assert np.all(to_corner <= 6)  # thin lines: a full 2×2 block only where lines meet at a corner


def test_edge_fscore():
    ref = np.zeros((40, 40), np.uint8)
    ref[20, 5:35] = 255
    assert edge_fscore(ref, ref) == (1.0, 1.0, 1.0)
    assert edge_fscore(np.roll(ref, 2, axis=0), ref, tolerance_px=2) == (1.0, 1.0, 1.0)
    assert edge_fscore(np.roll(ref, 3, axis=0), ref, tolerance_px=2) == (0.0, 0.0, 0.0)
    half = ref.copy()
    half[20, 20:] = 0
    p, r, f = edge_fscore(half, ref, tolerance_px=1)
    assert p == 1.0 and r == pytest.approx(16 / 30) and f == pytest.approx(2 * r / (1 + r))
    diagonal = np.zeros((40, 40), bool)
    diagonal[21, 35] = True  # √2 from the line's end (20, 34): inside 2, outside 1
    assert edge_fscore(diagonal, ref, 2)[0] == 1.0 and edge_fscore(diagonal, ref, 1)[0] == 0.0
    empty = np.zeros_like(ref)
    assert edge_fscore(empty, empty) == (1.0, 1.0, 1.0) and edge_fscore(empty, ref) == (1.0, 0.0, 0.0)
    with pytest.raises(BadInput):
        edge_fscore(ref, ref[:10])
