"""``render_edge_maps`` with the real ``bpy``: annotation truth, edge maps, COCO, the user's scene untouched, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import bpy
import cv2
import numpy as np
import pytest
from blender_helpers import add_box, cad_scene, snapshot
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from support import build_tiny, models_here

from engine.cameras import pose_from_extrinsics
from engine.dst.edges import edge_fscore
from engine.dst.merge import merge_datasets

pytestmark = pytest.mark.timeout(240)
SIZE = 96


def render(tmp_path, name="ds", **kwargs):
    options = dict(dataset_dir=str(tmp_path / name), views_per_object=3, resolution=SIZE, samples=4, seed=3)
    options.update(kwargs)
    assert bpy.ops.diffusion3d.render_edge_maps(**options) == {"FINISHED"}
    return tmp_path / name


def png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def silhouette_recall(mask: np.ndarray, edges: np.ndarray) -> float:
    """Fraction of the mask's boundary pixels with an edge pixel within 2 px."""
    silhouette = mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    near_edge = cv2.dilate(edges.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    return float((near_edge & silhouette).sum() / silhouette.sum())


def test_annotations_and_edges_are_true_to_the_renders(tmp_path):
    cad_scene()
    before = snapshot()
    folder = render(tmp_path, edge_method="CANNY", inplane_max=math.radians(20.0))
    geometric = render(tmp_path, name="geometric", edge_method="GEOMETRIC", inplane_max=math.radians(20.0))
    after = snapshot()
    after["images"].discard("Render Result")  # Blender's own render buffer, as after F12
    assert after == before, "the render scene, copies, camera and light are gone"
    coco = COCO(str(folder / "annotations.json"))
    assert len(coco.getImgIds()) == 6 and len(coco.getAnnIds()) == 6
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {"chair", "Car"}
    for ann in coco.loadAnns(coco.getAnnIds()):
        image = coco.loadImgs(ann["image_id"])[0]
        name = Path(image["file_name"]).name
        mask = png(folder / "masks" / name) > 127
        assert np.array_equal(coco.annToMask(ann).astype(bool), mask), "the RLE decodes to the saved mask"
        assert coco_mask.area(ann["segmentation"]) == mask.sum() == ann["area"]
        # the box corners, projected with the saved K and R, t, enclose the mask and fit it closely
        k, r, t = (np.array(ann[key]) for key in ("K", "R", "t"))
        corners = np.array(ann["corners_2d"], np.float32)
        cam = np.array(ann["keypoints_3d"][:8]) @ r.T + t
        projected = (cam @ k.T)[:, :2] / (cam @ k.T)[:, 2:]
        np.testing.assert_allclose(projected, corners, atol=1e-3)
        hull = cv2.convexHull(corners)
        rows, cols = np.nonzero(mask)
        inside = [cv2.pointPolygonTest(hull, (float(c) + 0.5, float(rr) + 0.5), True) for rr, c in zip(rows[::7], cols[::7])]
        assert min(inside) >= -0.75, "every mask pixel centre lies inside the corners' hull"
        hx0, hy0 = corners.min(axis=0)
        hx1, hy1 = corners.max(axis=0)
        x, y, w, h = ann["bbox"]
        assert max(x - hx0, y - hy0, hx1 - (x + w), hy1 - (y + h)) < 0.35 * SIZE  # the hull is a box's, not far larger
        # the pose recomputed from R, t is the one saved
        azimuth, elevation, theta, distance = pose_from_extrinsics(r, t)
        assert (azimuth - ann["azimuth"] + 180) % 360 - 180 == pytest.approx(0, abs=1e-4)
        assert elevation == pytest.approx(ann["elevation"], abs=1e-4) and distance == pytest.approx(ann["distance"], abs=1e-6)
        assert theta == pytest.approx(ann["theta"], abs=1e-4)
        # edges: exact ones cover the whole silhouette; Canny's lie on the silhouette and creases, and cover
        # the silhouette wherever the object is lit (seen from below, its unlit underside meets the black background)
        canny, exact = png(folder / "edges" / name) > 127, png(geometric / "edges" / name) > 127
        assert canny.any() and exact.any()
        assert silhouette_recall(mask, exact) >= 0.98
        precision, _, _ = edge_fscore(canny, exact, tolerance_px=2)
        assert precision >= 0.9
        if ann["elevation"] > 10:
            assert silhouette_recall(mask, canny) >= 0.95


def test_class_tags_keypoints_and_the_record(tmp_path):
    chair, _ = cad_scene()
    folder = render(tmp_path)
    data = json.loads((folder / "annotations.json").read_text())
    chair_cat = next(c for c in data["categories"] if c["name"] == "chair")
    assert chair_cat["keypoints"][-1] == "kp_top"
    chair_anns = [a for a in data["annotations"] if a["category_id"] == chair_cat["id"]]
    assert all(len(a["keypoints"]) == 3 * 9 for a in chair_anns)
    top = np.array(chair_anns[0]["keypoints_3d"][8])
    assert top[2] == pytest.approx(0.5) and abs(top[0]) < 1e-6  # the top face centre of the normalized chair
    record = json.loads((folder / "dataset.json").read_text())
    assert record["parameters"]["seed"] == 3 and record["parameters"]["samples"] == 4
    assert {o["name"]: o["tags"] for o in record["objects"]}["Chair"] == ["wooden", "tall"]
    again = render(tmp_path, name="again")
    assert (again / "annotations.json").read_text() == (folder / "annotations.json").read_text(), "seeded: reproducible"
    explicit = render(tmp_path, name="explicit", viewpoints="0 90 0 2.5; 90 45 10 3")
    views = json.loads((explicit / "annotations.json").read_text())["images"]
    assert len(views) == 4


def test_two_shards_merge_to_the_unsharded_set(tmp_path):
    cad_scene()
    whole = render(tmp_path, name="whole", edge_method="GEOMETRIC")
    parts = [render(tmp_path, name=f"part{i}", edge_method="GEOMETRIC", shard=f"{i}/2") for i in (1, 2)]
    assert [len(json.loads((p / "annotations.json").read_text())["images"]) for p in parts] == [3, 3]
    merge_datasets(parts, tmp_path / "merged")
    for name in ("annotations.json", "dataset.json"):
        assert (tmp_path / "merged" / name).read_text() == (whole / name).read_text()


def test_bad_input_leaves_nothing(tmp_path):
    before = snapshot()
    with pytest.raises(RuntimeError, match="Nothing selected"):
        bpy.ops.diffusion3d.render_edge_maps(dataset_dir=str(tmp_path / "a"))
    lamp = bpy.data.objects.new("Lamp", bpy.data.lights.new("Lamp", "POINT"))
    bpy.context.scene.collection.objects.link(lamp)
    lamp.select_set(True)
    with pytest.raises(RuntimeError, match="Only mesh objects.*Lamp"):
        bpy.ops.diffusion3d.render_edge_maps(dataset_dir=str(tmp_path / "a"))
    lamp.select_set(False)
    mesh = bpy.data.meshes.new("Points")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [])
    points = bpy.data.objects.new("Points", mesh)
    bpy.context.scene.collection.objects.link(points)
    points.select_set(True)
    with pytest.raises(RuntimeError, match="no faces"):
        bpy.ops.diffusion3d.render_edge_maps(dataset_dir=str(tmp_path / "a"))
    points.select_set(False)
    add_box("Box", (0, 0, 0), (1, 1, 1)).select_set(True)
    with pytest.raises(RuntimeError, match="Views 0: must be 1–100000"):
        bpy.ops.diffusion3d.render_edge_maps(dataset_dir=str(tmp_path / "a"), views_per_object=0)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RuntimeError, match="Dataset .*: cannot be made: .* is a file"):
        bpy.ops.diffusion3d.render_edge_maps(dataset_dir=str(blocker / "ds"))
    with pytest.raises(RuntimeError, match="[Ss]hard"):
        bpy.ops.diffusion3d.render_edge_maps(dataset_dir=str(tmp_path / "a"), shard="3/2")
    assert not (tmp_path / "a").exists()
    assert {k: v - {"Lamp", "Points", "Box"} for k, v in snapshot().items()} == before


@pytest.mark.slow
def test_both_engine_modes_give_the_same_data_set(tmp_path, prefs):
    """Annotation and ControlNet generation through the worker process equal the in-process run."""
    if not models_here():
        pytest.skip("in-process model jobs need torch in Blender's Python")
    cad_scene()
    sd, cn = (
        build_tiny("tiny_controlnet:build_tiny_sd", tmp_path / "sd"),
        build_tiny("tiny_controlnet:build_tiny_controlnet", tmp_path / "cn"),
    )
    made = {}
    for mode in ("IN_PROCESS", "SUBPROCESS"):
        prefs.engine_mode, prefs.device = mode, "CPU"
        folder = render(tmp_path, name=mode, edge_method="GEOMETRIC", views_per_object=2, resolution=32)
        assert bpy.ops.diffusion3d.generate_from_edges(dataset_dir=str(folder), base_model=str(sd), controlnet=str(cn), steps=2) == {
            "FINISHED"
        }
        made[mode] = folder
    for rel in ("annotations.json", "dataset.json", "generated/Car_0001_0.png"):
        assert (made["IN_PROCESS"] / rel).read_bytes() == (made["SUBPROCESS"] / rel).read_bytes()
