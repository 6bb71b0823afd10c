import json
from collections import Counter

import numpy as np
import pytest

from engine.diffusion.sources import RGBD4
from engine.errors import BadInput
from engine.imagefiles import write_png
from engine.progress import CancelToken, Reporter
from engine.world import equirect
from engine.world.depth import encode_inverse_depth
from engine.world.world_sphere import WorldSphereRequest, build_world_sphere, sphere_from_depth


def faces(mesh):
    ends = np.append(mesh.face_starts[1:], len(mesh.corner_verts))
    return [mesh.corner_verts[s:e] for s, e in zip(mesh.face_starts, ends)]


def face_uvs(mesh):
    ends = np.append(mesh.face_starts[1:], len(mesh.corner_verts))
    return [mesh.corner_uvs[s:e] for s, e in zip(mesh.face_starts, ends)]


@pytest.fixture
def smooth_depth():
    h, w = 32, 64
    u = equirect.pixel_centres(w)[None, :]
    v = equirect.pixel_centres(h)[:, None]
    return (3.0 + np.sin(2 * np.pi * u) * 0.5 + np.cos(np.pi * v) * 0.3).astype(np.float32)


def test_vertices_sit_at_the_distance_along_each_pixel_ray(smooth_depth):
    mesh = build_world_sphere(smooth_depth)
    h, w = smooth_depth.shape
    assert mesh.vertices.shape == (h * w + 2, 3)
    grid = mesh.vertices[:-2].reshape(h, w, 3)
    np.testing.assert_allclose(np.linalg.norm(grid, axis=-1), smooth_depth, rtol=1e-6)
    rays = equirect.ray_directions(equirect.pixel_centres(w)[None, :], equirect.pixel_centres(h)[:, None])
    np.testing.assert_allclose(grid / smooth_depth[..., None], rays, atol=1e-6)
    top, bottom = mesh.vertices[-2], mesh.vertices[-1]
    np.testing.assert_allclose(top, [0, 0, np.median(smooth_depth[0])], rtol=1e-6)
    np.testing.assert_allclose(bottom, [0, 0, -np.median(smooth_depth[-1])], rtol=1e-6)


def test_mesh_is_closed_seam_and_poles_included(smooth_depth):
    mesh = build_world_sphere(smooth_depth)
    edges = Counter()
    for face in faces(mesh):
        for a, b in zip(face, np.roll(face, -1)):
            edges[tuple(sorted((int(a), int(b))))] += 1
    assert set(edges.values()) == {2}, "every edge is shared by exactly two faces: no crack at the seam or poles"
    h, w = smooth_depth.shape
    assert len(mesh.face_starts) == (h - 1) * w + 2 * w


@pytest.mark.parametrize("discontinuity", [0.0, 0.3])
def test_edges_are_each_face_side_once(smooth_depth, discontinuity):
    d = smooth_depth.copy()
    d[:, 10:20] *= 2  # some faces are cut when discontinuity > 0
    mesh = build_world_sphere(d, discontinuity=discontinuity)
    ends = np.append(mesh.face_starts[1:], len(mesh.corner_verts))
    following = np.arange(len(mesh.corner_verts)) + 1
    following[ends - 1] = mesh.face_starts
    sides = np.sort(np.stack([mesh.corner_verts, mesh.corner_verts[following]], axis=1), axis=1)
    np.testing.assert_array_equal(np.sort(mesh.edge_verts[mesh.corner_edges], axis=1), sides)
    unique_sides = {tuple(s) for s in sides.tolist()}
    assert len(unique_sides) == len(mesh.edge_verts), "every edge once, none unused"
    assert (mesh.dropped_faces > 0) == (discontinuity > 0)


def test_uvs_follow_pixels_and_never_smear_across_the_seam(smooth_depth):
    mesh = build_world_sphere(smooth_depth)
    h, w = smooth_depth.shape
    for uv in face_uvs(mesh):
        assert np.ptp(uv[:, 0]) <= 1.0 / w + 1e-6  # a face spans one column, also at the seam
        assert np.ptp(uv[:, 1]) <= 1.0 / h + 1e-6
    # Each corner's UV samples the pixel its vertex was built from.
    grid_corner = mesh.corner_verts < h * w
    verts = mesh.corner_verts[grid_corner]
    row, col = verts // w, verts % w
    uv = mesh.corner_uvs[grid_corner]
    np.testing.assert_allclose(np.mod(uv[:, 0], 1.0), (col + 0.5) / w, atol=1e-6)
    np.testing.assert_allclose(uv[:, 1], 1.0 - (row + 0.5) / h, atol=1e-6)
    assert mesh.corner_uvs[:, 0].max() > 1.0  # the seam faces continue past u = 1 (texture repeats)


def test_normals_face_the_centre(smooth_depth):
    mesh = build_world_sphere(smooth_depth)
    for face in faces(mesh)[::37]:
        p = mesh.vertices[face].astype(np.float64)
        normal = np.cross(p[1] - p[0], p[2] - p[0])
        assert np.dot(normal, p.mean(axis=0)) < 0


def test_grid_step_samples_every_nth_pixel(smooth_depth):
    mesh = build_world_sphere(smooth_depth, step=4)
    assert mesh.grid_shape == (8, 16)
    assert mesh.vertices.shape == (8 * 16 + 2, 3)


@pytest.mark.parametrize("step", [0, -1, 17, 10_000])
def test_bad_grid_steps_are_refused(smooth_depth, step):
    with pytest.raises(BadInput, match="step"):
        build_world_sphere(smooth_depth, step=step)


def test_discontinuity_threshold_cuts_faces_across_depth_jumps():
    d = np.full((16, 32), 2.0, np.float32)
    d[:, 8:16] = 6.0  # a near/far wall boundary at columns 7|8 and 15|16
    whole = build_world_sphere(d)
    assert whole.dropped_faces == 0
    cut = build_world_sphere(d, discontinuity=0.5)
    # Two vertical seams of quads (15 rows each), and at each pole the 9 fan triangles
    # touching a far column (the pole sits at the median, near, distance).
    assert cut.dropped_faces == 2 * 15 + 2 * 9
    assert len(cut.face_starts) == len(whole.face_starts) - cut.dropped_faces
    assert build_world_sphere(d, discontinuity=5.0).dropped_faces == 0
    with pytest.raises(BadInput, match="≥ 0"):
        build_world_sphere(d, discontinuity=-1)


def sphere(depth_path, mode="AUTO", **options):
    """The world_sphere job on a depth file (a 64×32 panorama)."""
    request = WorldSphereRequest(depth_path=str(depth_path), rgb_size=(64, 32), depth_mode=mode, **options)
    return sphere_from_depth(request, Reporter(lambda p: None, CancelToken()))


def sample(folder, meta, **files):
    """A sample's folder: its depth files and meta.json, as a job writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps(meta))
    if "npy" in files:
        np.save(folder / "depth.npy", files["npy"])
    if "png" in files:
        write_png(folder / "depth16.png", files["png"])
    return folder


def test_auto_reads_a_generated_depth_npy_as_the_relative_disparity_its_meta_json_says_and_without_one_as_distances(tmp_path):
    disparity = np.linspace(0.2, 0.9, 64 * 32, dtype=np.float32).reshape(32, 64)
    ldm3d = sample(tmp_path / "pano", {"kind": RGBD4, "projection": "equirectangular"}, npy=disparity)
    relative = sphere(ldm3d / "depth.npy", radius=5.0, strength=1.0)
    assert relative.depth_mode == "RELATIVE" and "as its meta.json says" in relative.depth_kind
    assert (relative.min_distance, relative.max_distance) == pytest.approx((5 * (1 + 0.5 - 0.9), 5 * (1 + 0.5 - 0.2)), rel=1e-5)
    base = sample(tmp_path / "big", {"kind": RGBD4, "upscale": {"scale": 2}}) / "base"  # an upscaled sample keeps its base here
    base.mkdir()
    np.save(base / "depth.npy", disparity)
    assert sphere(base / "depth.npy").depth_mode == "RELATIVE"
    for alone in (tmp_path / "loose", tmp_path / "other"):
        alone.mkdir()
        np.save(alone / "depth.npy", disparity)
    (tmp_path / "other" / "meta.json").write_text(json.dumps({"note": "a meta.json no job of ours wrote"}))
    assert sphere(tmp_path / "loose" / "depth.npy").depth_mode == sphere(tmp_path / "other" / "depth.npy").depth_mode == "METRIC"
    assert sphere(ldm3d / "depth.npy", mode="METRIC").depth_mode == "METRIC", "a chosen mode goes by the file type"


def test_auto_reads_a_captures_16_bit_inverse_depth_as_its_distances_with_the_captures_near_and_far(tmp_path):
    distance = np.linspace(1.5, 12.0, 64 * 32, dtype=np.float32).reshape(32, 64)
    codes = encode_inverse_depth(distance, 1.5, 12.0)
    capture = sample(tmp_path / "capture", {"depth_exr": "distances", "near": 1.5, "far": 12.0, "origin": [0, 0, 1]}, png=codes)
    read = sphere(capture / "depth16.png")
    assert read.depth_mode == "METRIC" and "a capture's inverse depth" in read.depth_kind
    assert (read.min_distance, read.max_distance) == pytest.approx((1.5, 12.0), rel=1e-3)
    assert sphere(capture / "depth16.png", mode="RELATIVE").depth_mode == "RELATIVE", "as chosen: the codes as disparity"
