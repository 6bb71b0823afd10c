"""The quick mesh: the visual hull of four views' silhouettes, against exact silhouettes of a sphere and a cube ray-cast per pixel."""

import numpy as np
import pytest

from engine.errors import BadInput
from engine.multiview import cameras
from engine.multiview.hull import silhouettes, visual_hull

SIZE = 128
RADIUS = 0.4  # the sphere's
HALF = 0.3  # the cube's half-size
RESOLUTION = 64
PAINT = np.array([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.1, 0.2, 0.9], [0.8, 0.7, 0.1]], np.float32)  # a flat colour per view


def rig(elevation):
    """The four views' transforms.json, their camera-to-world matrices and the intrinsics visual_hull takes."""
    t = cameras.transforms(size=SIZE, elevation_deg=elevation, distance=1.5)
    poses = np.array([frame["transform_matrix"] for frame in t["frames"]])
    return poses, dict(fl_x=t["fl_x"], fl_y=t["fl_y"], cx=t["cx"], cy=t["cy"])


def pixel_rays(pose, intrinsics):
    """SIZE×SIZE×3 unit world directions through the pixel centres of one view."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    in_camera = np.stack(
        [(cols - intrinsics["cx"]) / intrinsics["fl_x"], -(rows - intrinsics["cy"]) / intrinsics["fl_y"], -np.ones_like(cols)], axis=-1
    )
    directions = in_camera @ pose[:3, :3].T
    return directions / np.linalg.norm(directions, axis=-1, keepdims=True)


def sphere_masks(poses, intrinsics):
    masks = []
    for pose in poses:
        d, c = pixel_rays(pose, intrinsics), pose[:3, 3]
        b = d @ c
        masks.append((b * b - (c @ c - RADIUS**2) > 0) & (b < 0))
    return np.array(masks)


def cube_masks(poses, intrinsics):
    masks = []
    for pose in poses:
        d, c = pixel_rays(pose, intrinsics), pose[:3, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            a, b = (-HALF - c) / d, (HALF - c) / d
        near, far = np.minimum(a, b).max(axis=-1), np.maximum(a, b).min(axis=-1)
        masks.append((near < far) & (far > 0))
    return np.array(masks)


OBJECTS = {
    "sphere": (sphere_masks, lambda p, margin: np.linalg.norm(p, axis=-1) < RADIUS - margin),
    "cube": (cube_masks, lambda p, margin: np.abs(p).max(axis=-1) < HALF - margin),
}


def painted(masks):
    """White views with each view's object in its own flat colour."""
    views = np.ones((*masks.shape, 3), np.float32)
    for k, mask in enumerate(masks):
        views[k][mask] = PAINT[k]
    return views


def grid(n=96, half=0.6):
    """n points a side over [-half, half]³, shifted off any of the hull grid's planes so no column grazes a mesh edge."""
    axis = -half + (np.arange(n) + 0.5 + 0.1234) * (2 * half / n)
    return axis, np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)


def in_exact_hull(points, masks, poses, intrinsics):
    """Whether each point projects inside the object pixel of all four exact masks."""
    inside = np.ones(points.shape[:-1], bool)
    for mask, pose in zip(masks, poses):
        q = (points - pose[:3, 3]) @ pose[:3, :3]
        depth = -q[..., 2]
        u = intrinsics["cx"] + intrinsics["fl_x"] * q[..., 0] / depth
        v = intrinsics["cy"] - intrinsics["fl_y"] * q[..., 1] / depth
        seen = (depth > 0) & (u >= 0) & (u < SIZE) & (v >= 0) & (v < SIZE)
        col, row = np.clip(u, 0, SIZE - 1).astype(int), np.clip(v, 0, SIZE - 1).astype(int)
        inside &= seen & mask[row, col]
    return inside


def in_mesh(vertices, faces, axis):
    """Occupancy of the grid axis³ (indexed [x, y, z]) by a closed mesh: the parity of its crossings above each point along +z."""
    n, step = len(axis), axis[1] - axis[0]
    corners = vertices[faces].astype(np.float64)
    # columns a ten-thousandth of a step off in x: on x = y they would run along marching cubes' diagonal edges and count them twice
    gx, gy, gz = (corners[..., 0] - axis[0]) / step - 1e-4, (corners[..., 1] - axis[0]) / step, corners[..., 2]
    i0, i1 = np.ceil(gx.min(axis=1)).astype(int), np.floor(gx.max(axis=1)).astype(int)
    j0, j1 = np.ceil(gy.min(axis=1)).astype(int), np.floor(gy.max(axis=1)).astype(int)
    span = int(max((i1 - i0).max(), (j1 - j0).max())) + 1
    di, dj = (offsets.ravel() for offsets in np.meshgrid(np.arange(span), np.arange(span), indexing="ij"))
    face = np.repeat(np.arange(len(faces)), len(di))
    ci, cj = (i0[:, None] + di).ravel(), (j0[:, None] + dj).ravel()
    keep = (ci <= i1[face]) & (cj <= j1[face]) & (ci >= 0) & (ci < n) & (cj >= 0) & (cj < n)
    face, ci, cj = face[keep], ci[keep], cj[keep]
    (x0, x1, x2), (y0, y1, y2) = gx[face].T, gy[face].T
    den = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
    flat = den == 0  # seen edge-on from above: no crossing
    den = np.where(flat, 1.0, den)
    l0 = ((y1 - y2) * (ci - x2) + (x2 - x1) * (cj - y2)) / den
    l1 = ((y2 - y0) * (ci - x2) + (x0 - x2) * (cj - y2)) / den
    l2 = 1 - l0 - l1
    hit = ~flat & (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
    z = (l0 * gz[face, 0] + l1 * gz[face, 1] + l2 * gz[face, 2])[hit]
    counts = np.zeros((n, n, n + 1), int)
    np.add.at(counts, (ci[hit], cj[hit], np.searchsorted(axis, z)), 1)  # the crossing lies above the grid levels below that index
    above = np.cumsum(counts[..., ::-1], axis=2)[..., ::-1]
    return above[..., 1:] % 2 == 1


def signed_volume(mesh):
    corners = mesh.vertices[mesh.faces].astype(np.float64)
    return np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6


@pytest.mark.parametrize("elevation", [0.0, 20.0])
@pytest.mark.parametrize("shape", ["sphere", "cube"])
def test_the_hull_of_an_object_seen_from_four_cameras_contains_it_and_matches_the_exact_hull(shape, elevation):
    render, inside_object = OBJECTS[shape]
    poses, intrinsics = rig(elevation)
    masks = render(poses, intrinsics)
    mesh = visual_hull(painted(masks), masks, poses, **intrinsics, resolution=RESOLUTION)
    assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int32 and mesh.colours.dtype == np.float32
    assert mesh.vertices.shape[1] == 3 and mesh.faces.shape[1] == 3 and mesh.colours.shape == mesh.vertices.shape

    axis, points = grid()
    meshed = in_mesh(mesh.vertices, mesh.faces, axis)
    exact = in_exact_hull(points, masks, poses, intrinsics)
    assert not (inside_object(points, mesh.voxel_size) & ~meshed).any(), "every point a voxel inside the object is inside the mesh"
    iou = (meshed & exact).sum() / (meshed | exact).sum()
    print(f"{shape} at elevation {elevation:g}: volume IoU with the exact hull {iou:.4f}")
    assert iou >= 0.97

    # the scene is symmetric under x → -x and y → -y, so is the grid: an error in the world coordinates would show
    # and at elevation 0 under z → -z as well
    low, high = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    symmetric = 3 if elevation == 0 else 2
    np.testing.assert_allclose(low[:symmetric], -high[:symmetric], atol=1e-4)


def test_faces_turn_outward_and_enclose_the_hulls_volume():
    poses, intrinsics = rig(20.0)
    masks = sphere_masks(poses, intrinsics)
    mesh = visual_hull(painted(masks), masks, poses, **intrinsics, resolution=RESOLUTION)
    _, points = grid()
    sampled = in_exact_hull(points, masks, poses, intrinsics).sum() * (1.2 / 96) ** 3
    assert signed_volume(mesh) > 0
    assert signed_volume(mesh) == pytest.approx(sampled, rel=0.05)
    assert signed_volume(mesh) > 4 / 3 * np.pi * RADIUS**3, "a hull is larger than its object"


@pytest.mark.parametrize("elevation", [0.0, 20.0])
def test_each_vertex_takes_the_colour_of_the_view_its_normal_faces(elevation):
    poses, intrinsics = rig(elevation)
    views = painted(sphere_masks(poses, intrinsics))
    masks = silhouettes(views)  # the whole way, from the painted views
    mesh = visual_hull(views, masks, poses, **intrinsics, resolution=RESOLUTION)
    outward = mesh.vertices / np.linalg.norm(mesh.vertices, axis=1, keepdims=True)
    for k, azimuth in enumerate(cameras.AZIMUTHS):
        towards_camera = poses[k, :3, 3] / np.linalg.norm(poses[k, :3, 3])  # azimuth 90 is the camera at +X, and so on
        facing = outward @ towards_camera > np.cos(np.radians(30))
        assert facing.sum() > 50
        np.testing.assert_allclose(
            mesh.colours[facing], np.broadcast_to(PAINT[k], (facing.sum(), 3)), atol=1e-5, err_msg=f"azimuth {azimuth}"
        )
    plus_x = mesh.vertices[:, 0] > 0.95 * mesh.vertices[:, 0].max()  # the +X side: the camera at azimuth 90's colour
    np.testing.assert_allclose(mesh.colours[plus_x], np.broadcast_to(PAINT[cameras.AZIMUTHS.index(90.0)], (plus_x.sum(), 3)), atol=1e-5)


def test_silhouettes_of_rgb_views_are_what_differs_from_the_background_with_holes_filled_and_specks_dropped():
    views = np.full((2, 64, 64, 3), 255, np.uint8)
    views[0, 10:40, 12:50] = (200, 30, 30)
    views[0, 20:25, 20:25] = 255  # a white patch on the object: filled, not a tunnel through the hull
    views[0, 55, 5] = (0, 0, 0)  # a speck of noise: dropped
    views[0, 2, 2] = 252  # within the tolerance of white
    views[1, 30:34, 30:60] = (10, 10, 10)
    masks = silhouettes(views)
    assert masks.shape == (2, 64, 64) and masks.dtype == bool
    expected = np.zeros((2, 64, 64), bool)
    expected[0, 10:40, 12:50] = True
    expected[1, 30:34, 30:60] = True
    np.testing.assert_array_equal(masks, expected)

    grey = np.where(views == 255, np.uint8(128), views).astype(np.float32) / 255
    np.testing.assert_array_equal(silhouettes(grey, background=(128 / 255,) * 3), expected)


def test_silhouettes_of_rgba_views_are_their_alpha_as_given():
    views = np.zeros((1, 32, 32, 4), np.float32)  # transparent black: the colour says nothing
    views[0, 4:20, 4:20, 3] = 1.0
    views[0, 8:12, 8:12, 3] = 0.2  # a hole in alpha is a hole
    expected = np.zeros((1, 32, 32), bool)
    expected[0, 4:20, 4:20] = True
    expected[0, 8:12, 8:12] = False
    np.testing.assert_array_equal(silhouettes(views), expected)
    np.testing.assert_array_equal(silhouettes((views * 255).round().astype(np.uint8)), expected)


def test_one_view_with_bounds_carves_its_silhouettes_cone_and_the_cone_meets_the_silhouettes_edge():
    """The sphere's cone from the view at -Y, clipped by the cube at y = ±0.7 only: its side projects onto the silhouette's edge."""
    poses, intrinsics = rig(0.0)
    masks = sphere_masks(poses, intrinsics)[:1]
    mesh = visual_hull(painted(masks), masks, poses[:1], **intrinsics, resolution=RESOLUTION, bounds=0.7)
    assert signed_volume(mesh) > 0
    assert mesh.vertices[:, 1].min() == pytest.approx(-0.7, abs=mesh.voxel_size)
    assert mesh.vertices[:, 1].max() == pytest.approx(0.7, abs=mesh.voxel_size)
    side = mesh.vertices[np.abs(mesh.vertices[:, 1]) < 0.7 - 2 * mesh.voxel_size]
    q = (side - poses[0, :3, 3]) @ poses[0, :3, :3]
    u = intrinsics["cx"] + intrinsics["fl_x"] * q[:, 0] / -q[:, 2]
    v = intrinsics["cy"] - intrinsics["fl_y"] * q[:, 1] / -q[:, 2]
    assert abs(u.mean() - intrinsics["cx"]) < 0.05 and abs(v.mean() - intrinsics["cy"]) < 0.05, "centred to a twentieth of a pixel"
    radius = intrinsics["fl_x"] * np.tan(np.arcsin(RADIUS / 1.5))  # the disc the sphere's tangent rays draw, pixels
    off = np.hypot(u - intrinsics["cx"], v - intrinsics["cy"]) - radius
    assert np.abs(off).max() < 0.6 and abs(np.median(off)) < 0.15, "on the pixel staircase of the disc's edge"


def test_one_view_without_bounds_is_refused_as_unbounded():
    poses, intrinsics = rig(0.0)
    masks = sphere_masks(poses, intrinsics)[:1]
    with pytest.raises(BadInput, match="do not surround the object, so its hull has no bounds: give the hull's bounds"):
        visual_hull(painted(masks), masks, poses[:1], **intrinsics, resolution=32)


def call_with(change):
    """visual_hull's arguments for the sphere at elevation 0, with ``change`` (a dict, or a function of the arguments giving one)."""
    poses, intrinsics = rig(0.0)
    masks = sphere_masks(poses, intrinsics)
    call = dict(views=painted(masks), masks=masks, cameras=poses, **intrinsics, resolution=32)
    call.update(change(call) if callable(change) else change)
    return call


def emptied(index):
    def change(call):
        masks = call["masks"].copy()
        masks[index] = False
        return {"masks": masks}

    return change


def disjoint(call):
    """View 0 (from -Y) shows the object at its left, world -X; view 2 (from +Y) at its left, world +X: no point is in both."""
    masks = np.zeros_like(call["masks"])
    masks[:, 50:70, 5:15] = True
    return {"masks": masks}


@pytest.mark.parametrize(
    "change, message",
    [
        (emptied(2), "^View 2 shows no object: nothing to carve$"),
        (lambda call: {"masks": call["masks"][:3]}, "masks must be 4×128×128 bool"),
        (lambda call: {"masks": call["masks"].astype(np.uint8)}, "masks must be 4×128×128 bool"),
        (lambda call: {"cameras": call["cameras"][:, :3]}, "cameras must be 4 finite 4×4"),
        (lambda call: {"views": call["views"][..., :2]}, "K×H×W×3 or K×H×W×4"),
        ({"resolution": 8}, "resolution must be a whole number from 16 to 512, got 8"),
        ({"resolution": 513}, "resolution must be a whole number from 16 to 512, got 513"),
        ({"fl_x": 0.0}, "focal lengths must be positive"),
        ({"bounds": -1.0}, "bounds must be a positive half-size"),
        (disjoint, "the carve leaves nothing"),
        (lambda call: {**disjoint(call), "bounds": 0.8}, "the carve leaves nothing"),
    ],
    ids=[
        "an empty view",
        "fewer masks",
        "masks not bool",
        "3x4 cameras",
        "two channels",
        "resolution 8",
        "resolution 513",
        "zero focal length",
        "negative bounds",
        "disjoint silhouettes",
        "disjoint silhouettes in given bounds",
    ],
)
def test_bad_input_is_refused_in_one_line(change, message):
    with pytest.raises(BadInput, match=message) as refused:
        visual_hull(**call_with(change))
    assert "\n" not in str(refused.value)


def test_silhouettes_refuse_what_is_not_a_stack_of_images():
    with pytest.raises(BadInput, match="K×H×W×3 or K×H×W×4"):
        silhouettes(np.ones((64, 64, 3)))
    with pytest.raises(BadInput, match="background must be three values"):
        silhouettes(np.ones((1, 8, 8, 3)), background=(2.0, 0.0, 0.0))
