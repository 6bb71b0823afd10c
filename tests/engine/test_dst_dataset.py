"""The annotate_views job end to end on ray-cast renders: COCO files, poses, visibility, shards, bad input."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from dst_scene import render_view, write_render
from pycocotools.coco import COCO

from engine import protocol
from engine.cameras import blender_camera_matrix, camera_location, extrinsics, pose_from_extrinsics
from engine.dst.dataset import DSTAnnotateRequest, DSTObject, DSTView, annotate_views
from engine.dst.merge import merge_datasets
from engine.dst.normalize import CORNER_NAMES, box_corners, normalization, normalize_points
from engine.errors import BadInput, JobCancelled
from engine.imagefiles import read_exr, read_png
from engine.progress import CancelToken, Reporter
from engine.shards import format_shard, parse_shard, shard_indices
from engine.viewpoints import POLAR_HIGH, ViewDistribution, Viewpoint, sample_viewpoints

W, H = 64, 48
BOX = (np.array([-0.5, -0.3, -0.2]), np.array([0.5, 0.3, 0.2]))
RAW_CHAIR = [  # not normalized: the test normalizes it as the operator will
    ((-0.4, -0.4, -0.1), (0.4, 0.4, 0.0)),
    ((-0.4, 0.3, 0.0), (0.4, 0.4, 0.6)),
    ((-0.4, -0.4, -0.5), (-0.3, -0.3, -0.1)),
]
OBJECTS = [
    DSTObject("car-a", "car", ["red"], ["kp_front", "kp_roof", "kp_behind"]),
    DSTObject("chair-a", "chair", ["wooden", "modern"], []),
    DSTObject("car-b", "car", [], ["kp_front", "kp_mirror"]),
]


def chair():
    lo = np.min([b[0] for b in RAW_CHAIR], axis=0)
    hi = np.max([b[1] for b in RAW_CHAIR], axis=0)
    scale, offset = normalization(lo, hi)
    boxes = [(normalize_points(a, scale, offset), normalize_points(b, scale, offset), (0.6, 0.4, 0.2)) for a, b in RAW_CHAIR]
    return boxes, normalize_points(lo, scale, offset), normalize_points(hi, scale, offset)


def object_geometry(index):
    if index == 1:
        return chair()
    return [(*BOX, (0.8, 0.1, 0.1) if index == 0 else (0.1, 0.3, 0.8))], *BOX


def make_views(render_dir, count=7, seed=3):
    viewpoints = sample_viewpoints(count, ViewDistribution(distance=2.2, polar=POLAR_HIGH), seed)
    views = []
    for i, vp in enumerate(viewpoints):
        obj = i % 3
        boxes, lo, hi = object_geometry(obj)
        m = blender_camera_matrix(vp)
        name = f"view_{i:03d}"
        write_render(render_dir, name, *render_view(boxes, m, W, H))
        keypoints = {}
        if obj == 0:
            keypoints = {"kp_front": [0.5, 0.0, 0.0], "kp_roof": [0.0, 0.0, 0.2], "kp_behind": (2 * camera_location(vp)).tolist()}
        elif obj == 2:
            keypoints = {"kp_front": [0.5, 0.0, 0.0]}
        views.append(DSTView(name, obj, vp.azimuth, vp.polar, vp.inplane, vp.distance, 35.0, 32.0, m, box_corners(lo, hi), keypoints, i))
    return views


class Events:
    def __init__(self, cancel_after=None):
        self.events, self.token, self.cancel_after = [], CancelToken(), cancel_after

    def __call__(self, progress):
        self.events.append(progress)
        if self.cancel_after is not None and len(self.events) >= self.cancel_after:
            self.token.cancel()

    def reporter(self):
        return Reporter(self, self.token)


def request(render_dir, dataset_dir, views, **kw):
    kw.setdefault("parameters", {"seed": 3, "sampler": ViewDistribution(distance=2.2, polar=POLAR_HIGH).as_dict()})
    return DSTAnnotateRequest(render_dir=str(render_dir), dataset_dir=str(dataset_dir), objects=list(OBJECTS), views=views, **kw)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("dst")
    views = make_views(root / "renders")
    events = Events()
    result = annotate_views(request(root / "renders", root / "data", views, edge_method="BOTH"), events.reporter())
    return root, views, result, events


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_writes_the_dataset_folder(scene):
    root, views, result, events = scene
    data = root / "data"
    names = [v.name for v in views]
    assert sorted(tree(data)) == sorted(
        ["annotations.json", "dataset.json"]
        + [f"{d}/{n}{e}" for n in names for d, e in (("images", ".png"), ("edges", ".png"), ("masks", ".png"), ("depth", ".exr"))]
    )
    assert (result.views, result.images, result.annotations, result.empty_views) == (7, 7, 7, [])
    assert [e.done for e in events.events] == list(range(1, 8)) and all(e.total == 7 for e in events.events)
    assert (data / "images" / "view_000.png").read_bytes() == (root / "renders" / "view_000.png").read_bytes()
    assert not list(data.rglob("*.part*"))


def test_annotations_load_with_pycocotools_and_masks_match(scene):
    root, views, _, _ = scene
    data = root / "data"
    coco = COCO(str(data / "annotations.json"))
    assert sorted(coco.getImgIds()) == [v.index + 1 for v in views]
    cats = {c["name"]: c for c in coco.loadCats(coco.getCatIds())}
    assert cats["car"]["keypoints"] == list(CORNER_NAMES) + ["kp_front", "kp_roof", "kp_behind", "kp_mirror"]
    assert cats["chair"]["keypoints"] == list(CORNER_NAMES) and cats["car"]["skeleton"] == []
    for ann in coco.loadAnns(coco.getAnnIds()):
        img = coco.loadImgs(ann["image_id"])[0]
        mask = read_png(data / img["mask_file"])[..., 0] > 0
        assert np.array_equal(coco.annToMask(ann) > 0, mask)
        rgba = read_png(data / img["file_name"])
        assert np.array_equal(mask, rgba[..., 3] > 127)  # binary alpha in these renders
        ys, xs = np.nonzero(mask)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert ann["area"] == mask.sum() and ann["iscrowd"] == 0 and (img["width"], img["height"]) == (W, H)
        assert len(ann["keypoints"]) == 3 * len(coco.loadCats(ann["category_id"])[0]["keypoints"])
        assert ann["num_keypoints"] == sum(1 for v in ann["keypoints"][2::3] if v > 0)
        edges = read_png(data / img["edge_file"])[..., 0]
        assert set(np.unique(edges)) <= {0, 255} and edges[mask].any()
        depth = read_exr(data / img["depth_file"])["Y"]
        assert (depth[~mask] == 0).all() and (depth[mask] > 1).all() and (depth[mask] < 3.5).all()


def test_saved_pose_is_the_pose_of_r_and_t(scene):
    root, views, _, _ = scene
    doc = json.loads((root / "data" / "annotations.json").read_text())
    by_id = {v.index + 1: v for v in views}
    for ann in doc["annotations"]:
        view = by_id[ann["id"]]
        az, el, ip, d = pose_from_extrinsics(np.array(ann["R"]), np.array(ann["t"]))
        assert abs((az - ann["azimuth"] + 180) % 360 - 180) < 1e-6 and abs(el - ann["elevation"]) < 1e-6
        assert abs(ip - ann["theta"]) < 1e-6 and abs(d - ann["distance"]) < 1e-9
        assert ann["elevation"] == 90 - view.polar and ann["K"] == [[70.0, 0, 32.0], [0, 70.0, 24.0], [0, 0, 1]]
        r, t = extrinsics(view.camera_matrix)
        assert np.allclose(ann["R"], r) and np.allclose(ann["t"], t)


def test_keypoint_visibility(scene):
    root, views, _, _ = scene
    doc = json.loads((root / "data" / "annotations.json").read_text())
    by_id = {v.index + 1: v for v in views}
    for ann in doc["annotations"]:
        view = by_id[ann["id"]]
        kps = np.array(ann["keypoints"], float).reshape(-1, 3)
        eye = camera_location(Viewpoint(view.azimuth, view.polar, view.inplane, view.distance))
        assert (kps[:, 0] < W).all() and (kps[:, 1] < H).all()
        assert np.allclose(kps[:8, :2], np.array(ann["corners_2d"])) or (kps[:8, 2] == 0).any()
        if view.object_index == 1:
            continue  # not convex: checked only for the boxes below
        lo, hi = BOX
        centre = (lo + hi) / 2
        for corner, v in zip(box_corners(lo, hi), kps[:8, 2]):
            facing = any(np.sign(corner[k] - centre[k]) * (eye[k] - corner[k]) > 0 for k in range(3))
            assert v == (2 if facing else 1)  # a box corner is hidden exactly when all its faces look away
        front, roof, behind, mirror = kps[8:]
        assert front[2] == (2 if eye[0] > 0.5 else 1)  # on the +X face: seen when the camera is in front of it
        assert mirror.tolist() == [0, 0, 0] and ann["keypoints_3d"][8 + 3] is None  # not given
        if view.object_index == 0:
            assert roof[2] == (2 if eye[2] > 0.2 else 1)  # on the top face (also seen almost edge-on in one view)
            assert behind.tolist() == [0, 0, 0]  # behind the camera
            assert ann["keypoints_3d"][8] == [0.5, 0, 0]
        else:
            assert roof.tolist() == [0, 0, 0] and behind.tolist() == [0, 0, 0]


def test_dataset_json_records_everything(scene):
    root, views, _, _ = scene
    doc = json.loads((root / "data" / "dataset.json").read_text())
    assert doc["parameters"]["seed"] == 3 and doc["parameters"]["sampler"]["polar"]["mean"] == 60
    assert doc["settings"]["edge_method"] == "BOTH" and doc["settings"]["canny"]["low"] == 100
    assert [o["name"] for o in doc["objects"]] == ["car-a", "chair-a", "car-b"] and doc["objects"][1]["tags"] == ["wooden", "modern"]
    assert [v["index"] for v in doc["views"]] == [v.index for v in views] and doc["total_views"] == 7
    assert np.allclose(doc["views"][2]["camera_matrix"], views[2].camera_matrix) and "shard" not in doc


def test_shards_merge_into_exactly_the_unsharded_dataset(scene, tmp_path):
    root, views, _, _ = scene
    shard_dirs = []
    for i in range(2):
        index, count = parse_shard(f"{i + 1}/2")
        part = [views[j] for j in shard_indices(len(views), index, count)]
        out = tmp_path / f"shard{i}"
        annotate_views(
            request(root / "renders", out, part, edge_method="BOTH", total_views=len(views), shard=format_shard(index, count)),
            Events().reporter(),
        )
        shard_dirs.append(out)
    assert json.loads((shard_dirs[1] / "dataset.json").read_text())["shard"] == "2/2"
    result = merge_datasets(shard_dirs[::-1], tmp_path / "merged")
    assert result.views == 7 and result.annotations == 7
    assert tree(tmp_path / "merged") == tree(root / "data")  # byte for byte
    with pytest.raises(BadInput, match="already holds"):
        merge_datasets(shard_dirs, tmp_path / "merged")
    with pytest.raises(BadInput, match="4 of the 7 views"):
        merge_datasets(shard_dirs[:1], tmp_path / "half")
    with pytest.raises(BadInput, match="in both"):
        merge_datasets([shard_dirs[0], shard_dirs[0], shard_dirs[1]], tmp_path / "twice")
    other = tmp_path / "other"
    annotate_views(
        request(root / "renders", other, [views[j] for j in (1, 3, 5)], total_views=7, shard="2/2", edge_method="CANNY"),
        Events().reporter(),
    )
    with pytest.raises(BadInput, match="other settings"):
        merge_datasets([shard_dirs[0], other], tmp_path / "mixed")
    assert not (tmp_path / "half").exists() and not (tmp_path / "mixed").exists()


def test_shard_indices():
    assert shard_indices(10, 0, 3) == [0, 3, 6, 9] and shard_indices(10, 2, 3) == [2, 5, 8]
    assert sorted(sum((shard_indices(10, i, 4) for i in range(4)), [])) == list(range(10))
    assert parse_shard("1/4") == (0, 4) and parse_shard(" 4/4 ") == (3, 4) and format_shard(3, 4) == "4/4"
    for bad in ("0/4", "5/4", "1/0", "a/b", "3", "1/2/3"):
        with pytest.raises(BadInput, match="I/N|between 1 and N"):
            parse_shard(bad)
    with pytest.raises(BadInput):
        shard_indices(10, 3, 3)


def test_views_and_objects_sent_through_the_worker_format_arrive_as_dataclasses(scene, tmp_path):
    root, views, _, _ = scene
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    line = protocol.dumps({"type": "run", "request": protocol.encode(request(root / "renders", tmp_path / "d", views[:2]), scratch)})
    received = protocol.decode_as(DSTAnnotateRequest, protocol.loads(line)["request"], scratch)
    assert all(isinstance(o, DSTObject) for o in received.objects) and all(isinstance(v, DSTView) for v in received.views)
    assert isinstance(received.views[0].camera_matrix, np.ndarray)
    result = annotate_views(received, Events().reporter())
    direct = annotate_views(request(root / "renders", tmp_path / "e", views[:2]), Events().reporter())
    assert result.annotations == direct.annotations == 2
    assert (tmp_path / "d" / "annotations.json").read_text() == (tmp_path / "e" / "annotations.json").read_text()


def test_existing_files_are_kept_unless_overwrite(scene, tmp_path):
    root, views, _, _ = scene
    annotate_views(request(root / "renders", tmp_path / "d", views[:2]), Events().reporter())
    before = tree(tmp_path / "d")
    with pytest.raises(BadInput, match="already holds"):
        annotate_views(request(root / "renders", tmp_path / "d", views[:2], edge_method="GEOMETRIC"), Events().reporter())
    assert tree(tmp_path / "d") == before
    annotate_views(request(root / "renders", tmp_path / "d", views[:2], edge_method="GEOMETRIC", overwrite=True), Events().reporter())
    after = tree(tmp_path / "d")
    assert after["images/view_000.png"] == before["images/view_000.png"] and after["edges/view_000.png"] != before["edges/view_000.png"]


def test_cancel_between_views_writes_nothing(scene, tmp_path):
    root, views, _, _ = scene
    events = Events(cancel_after=2)
    with pytest.raises(JobCancelled):
        annotate_views(request(root / "renders", tmp_path / "d", views), events.reporter())
    assert len(events.events) == 2 and not (tmp_path / "d").exists()


def test_an_empty_view_is_kept_without_an_annotation(scene, tmp_path):
    root, views, _, _ = scene
    renders = tmp_path / "r"
    for v in views[:2]:
        for ext in (".png", ".exr"):
            (renders / f"{v.name}{ext}").parent.mkdir(exist_ok=True)
            (renders / f"{v.name}{ext}").write_bytes((root / "renders" / f"{v.name}{ext}").read_bytes())
    away = dataclasses.replace(views[2], name="away")
    write_render(renders, "away", *render_view([], away.camera_matrix, W, H))
    result = annotate_views(request(renders, tmp_path / "d", views[:2] + [away]), Events().reporter())
    assert result.empty_views == ["away"] and result.annotations == 2 and "empty mask" in result.warnings[0]
    doc = json.loads((tmp_path / "d" / "annotations.json").read_text())
    assert [i["id"] for i in doc["images"]] == [1, 2, 3] and [a["id"] for a in doc["annotations"]] == [1, 2]
    assert json.loads((tmp_path / "d" / "dataset.json").read_text())["empty_views"] == ["away"]
    with pytest.raises(BadInput, match="None of the 1 views"):
        annotate_views(request(renders, tmp_path / "e", [dataclasses.replace(away, index=0)]), Events().reporter())
    assert not (tmp_path / "e").exists()


def bad(views, **changes):
    return [dataclasses.replace(views[0], **changes)] + views[1:2]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda v: [], "No views"),
        (lambda v: bad(v, name="a/b"), "file name"),
        (lambda v: bad(v, name=v[1].name), "Two views"),
        (lambda v: bad(v, index=v[1].index), "global index"),
        (lambda v: bad(v, object_index=5), "object index"),
        (lambda v: bad(v, azimuth=v[0].azimuth + 5), "camera matrix is not"),
        (lambda v: bad(v, polar=190.0), "Polar"),
        (lambda v: bad(v, corners=np.zeros((4, 3))), "8×3"),
        (lambda v: bad(v, camera_matrix=np.eye(3)), "4×4"),
        (lambda v: bad(v, keypoints={"kp_wing": [0, 0, 0]}), "kp_wing"),
        (lambda v: bad(v, lens_mm=0.0), "lens"),
        (lambda v: bad(v, name="no_such_render"), "missing"),
    ],
)
def test_bad_views_are_refused_before_anything_is_written(scene, tmp_path, mutate, message):
    root, views, _, _ = scene
    with pytest.raises(BadInput, match=message):
        annotate_views(request(root / "renders", tmp_path / "d", mutate(views)), Events().reporter())
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"edge_method": "SOBEL"}, "Unknown edge method .SOBEL."),
        ({"crease_deg": 0.0}, "Crease"),
        ({"objects": []}, "No objects"),
        ({"parameters": {"x": object()}}, "JSON"),
        ({"shard": "3/2"}, "between 1 and N"),
        ({"total_views": 1}, "indices run up to"),
    ],
)
def test_bad_requests_are_refused(scene, tmp_path, changes, message):
    root, views, _, _ = scene
    req = dataclasses.replace(request(root / "renders", tmp_path / "d", views[:2]), **changes)
    with pytest.raises(BadInput, match=message):
        annotate_views(req, Events().reporter())


def test_mismatched_render_sizes_are_refused(scene, tmp_path):
    root, views, _, _ = scene
    renders = tmp_path / "r"
    write_render(renders, views[0].name, *render_view([(*BOX, (1, 0, 0))], views[0].camera_matrix, W, H))
    write_render(renders, "small", *render_view([(*BOX, (1, 0, 0))], views[0].camera_matrix, 32, 24))
    (renders / f"{views[0].name}.exr").write_bytes((renders / "small.exr").read_bytes())
    with pytest.raises(BadInput, match="64×48 but view_000.exr is 32×24"):
        annotate_views(request(renders, tmp_path / "d", views[:1]), Events().reporter())
    assert not (tmp_path / "d").exists()


def test_the_dst_engine_needs_only_numpy():
    import subprocess
    import sys

    modules = ["dst.annotate", "cameras", "dst.canny", "dst.dataset", "dst.edges", "dst.masks", "dst.merge", "dst.normalize"]
    modules += ["dst.renders", "shards", "viewpoints"]
    code = (
        "import sys; " + "; ".join(f"import engine.{m}" for m in modules) + "; "
        "print(sorted(m for m in ('cv2', 'scipy', 'torch', 'pycocotools', 'bpy', 'PIL') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_visibility_rule():
    from engine.dst.annotate import visibility

    depth = np.zeros((4, 6))
    hit = np.zeros((4, 6), bool)
    depth[1:3, 1:4], hit[1:3, 1:4] = 2.0, True
    uv = np.array([[1.5, 1.5], [2.9, 2.2], [3.2, 2.9], [4.5, 1.5], [6.0, 1.0], [-0.1, 1.0], [1.5, 1.5], [np.nan, np.nan]])
    z = np.array([1.0, 2.05, 2.2, 9.0, 1.0, 1.0, 2.1, -1.0])
    assert visibility(uv, z, depth, hit, 0.1).tolist() == [2, 2, 1, 2, 0, 0, 2, 0]
    tol = np.full((4, 6), 0.1)
    tol[2, 3] = 0.5  # a slanted surface there
    assert visibility(uv, z, depth, hit, tol).tolist() == [2, 2, 2, 2, 0, 0, 2, 0]
