"""The engine's part of an export: a world sphere made coarser for a target face count, the format, the splats."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_splats import smooth_panorama

from engine.errors import BadInput
from engine.imagefiles import write_png
from engine.jobs import run_job
from engine.params import validate
from engine.progress import CancelToken
from engine.world.export import ExportRequest, SphereGrid, coarser, format_of, grid_faces
from engine.world.splats import READING, SplatRequest
from engine.world.world_sphere import WorldSphereRequest, build_world_sphere


def stepped_distance(width: int = 64, height: int = 32) -> np.ndarray:
    """A smooth room with a box in it: a depth jump for the cuts."""
    _, distance = smooth_panorama(width, height)
    distance[10:16, 20:30] = 1.5
    return distance


def grid_of(mesh, discontinuity: float = 0.0) -> SphereGrid:
    return SphereGrid(mesh.vertices, *mesh.grid_shape, discontinuity=discontinuity)


@pytest.mark.parametrize("step", [2, 3, 5])
@pytest.mark.parametrize("discontinuity", [0.0, 0.3])
def test_a_coarser_world_sphere_is_the_sphere_built_at_that_grid_step_its_cuts_made_again(step, discontinuity):
    distance = stepped_distance()
    full = build_world_sphere(distance, 1, discontinuity)
    target = grid_faces(32 // step, 64 // step)
    mesh, chosen = coarser(grid_of(full, discontinuity), target)
    direct = build_world_sphere(distance, step, discontinuity)
    assert chosen == step and len(mesh.face_starts) == len(direct.face_starts) <= target
    assert mesh.dropped_faces == direct.dropped_faces and (discontinuity == 0) == (mesh.dropped_faces == 0)
    np.testing.assert_allclose(mesh.vertices, direct.vertices, atol=2e-5)
    np.testing.assert_allclose(mesh.corner_uvs, direct.corner_uvs, atol=1e-6)
    for name in ("face_starts", "corner_verts", "edge_verts", "corner_edges"):
        assert np.array_equal(getattr(mesh, name), getattr(direct, name)), name


def test_the_smallest_step_that_meets_the_target_is_chosen():
    full = build_world_sphere(stepped_distance(), 1)
    assert len(full.face_starts) == grid_faces(32, 64) == 33 * 64
    _, step = coarser(grid_of(full), grid_faces(16, 32))
    assert step == 2
    _, step = coarser(grid_of(full), grid_faces(16, 32) - 1)
    assert step == 3


def test_a_target_below_the_fewest_faces_a_sphere_keeps_and_an_edited_mesh_are_refused():
    full = build_world_sphere(stepped_distance(), 1)
    with pytest.raises(BadInput, match=r"keeps at least 12 faces \(64×32 grid\)"):
        coarser(grid_of(full), 10)
    edited = dataclasses.replace(grid_of(full), vertices=full.vertices[:-5])
    with pytest.raises(BadInput, match="mesh was edited"):
        coarser(edited, 500)


@pytest.mark.parametrize(
    ("path", "chosen", "expected"),
    [
        ("w.glb", "AUTO", "GLB"),
        ("w.GLTF", "AUTO", "GLTF"),
        ("w.usdz", "AUTO", "USDZ"),
        ("w.usdc", "USDC", "USDC"),
        ("w.ply", "AUTO", "SPLAT_PLY"),
    ],
)
def test_the_format_is_the_one_chosen_or_the_extensions(path, chosen, expected):
    assert format_of(path, chosen) == expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"filepath": "w.obj"}, r"File 'w\.obj': its extension names no format: end it in \.glb, \.gltf, \.usdz, \.usdc, \.ply"),
        ({"filepath": "w.glb", "format": "USDZ"}, r"a USDZ \(\.usdz\) file ends in \.usdz"),
        ({"filepath": "missing/w.glb"}, r"no such folder .*missing \(make it first\)"),
        ({"format": "OBJ"}, "Format 'OBJ': choose from AUTO, GLB, GLTF, USDZ, USDC, SPLAT_PLY"),
        ({"target_faces": -1}, "Target Faces -1: must be 0–2147483647"),
        ({"filepath": "w.ply", "target_faces": 1000}, "splats have no faces"),
        ({"splat_step": 0}, "Splat Step 0: must be 1–64"),
    ],
)
def test_bad_export_requests_are_refused_in_one_line(tmp_path, monkeypatch, change, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadInput, match=message):
        validate(ExportRequest(**{"filepath": "w.glb", **change}))


def test_splats_exported_from_a_world_are_the_splats_job_of_its_panoramas(tmp_path):
    rgb, distance = smooth_panorama()
    write_png(tmp_path / "rgb.png", np.round(rgb * 255).astype(np.uint8))
    np.save(tmp_path / "depth.npy", distance.astype(np.float32))
    reading = {name: getattr(WorldSphereRequest(), name) for name in READING}
    sources = SplatRequest(rgb_path=str(tmp_path / "rgb.png"), depth_path=str(tmp_path / "depth.npy"), out_path="unused.ply", **reading)
    exported = ExportRequest(filepath=str(tmp_path / "world.ply"), splat_step=2, splats=sources)
    result = run_job("export_world", exported, lambda p: None, CancelToken())
    direct = dataclasses.replace(sources, out_path=str(tmp_path / "direct.ply"), step=2)
    run_job("rgbd_splats", direct, lambda p: None, CancelToken())
    assert result.splat_count == 32 * 16 and result.path == exported.filepath
    assert (tmp_path / "world.ply").read_bytes() == (tmp_path / "direct.ply").read_bytes()
    with pytest.raises(BadInput, match="already exists"):
        run_job("export_world", exported, lambda p: None, CancelToken())
    with pytest.raises(BadInput, match="RGB and depth panoramas"):
        run_job("export_world", dataclasses.replace(exported, splats=None, overwrite=True), lambda p: None, CancelToken())


def test_a_mesh_export_gets_the_coarser_sphere_only_when_a_target_asks_for_one(tmp_path):
    full = build_world_sphere(stepped_distance(), 1)
    request = ExportRequest(filepath=str(tmp_path / "w.glb"), grid=grid_of(full))
    assert run_job("export_world", request, lambda p: None, CancelToken()).mesh is None
    result = run_job("export_world", dataclasses.replace(request, target_faces=500), lambda p: None, CancelToken())
    assert result.grid_step == 3 and len(result.mesh.face_starts) == grid_faces(10, 21) <= 500
