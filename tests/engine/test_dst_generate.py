"""3D-DST generation and filtering as jobs: tiny random SD 1.5 + ControlNet in their published layouts, through the product's loader."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pycocotools.coco import COCO  # noqa: E402
from test_dst_dataset import make_views, request  # noqa: E402
from tiny_clip import embedding_lookups, read_clip_words  # noqa: E402
from tiny_controlnet import build_tiny_controlnet, build_tiny_sd  # noqa: E402

from engine.diffusion.sources import ModelAccess  # noqa: E402
from engine.dst.dataset import annotate_views  # noqa: E402
from engine.dst.filter import KCFRequest, filter_dataset, join_scores  # noqa: E402
from engine.dst.generate import GENERATED_ID, EdgeGenerationRequest, generate_from_edges, join_generated  # noqa: E402
from engine.dst.merge import merge_datasets  # noqa: E402
from engine.errors import BadInput  # noqa: E402
from engine.jobs import run_job  # noqa: E402
from engine.progress import CancelToken, Reporter  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = ModelAccess(device="CPU")


def quiet() -> Reporter:
    return Reporter(lambda p: None, CancelToken())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("dstgen")
    views = make_views(root / "renders", count=6)
    annotate_views(request(root / "renders", root / "data", views, edge_method="GEOMETRIC"), quiet())
    return root, build_tiny_sd(root / "sd"), build_tiny_controlnet(root / "cn")


def gen(world, folder: Path, **kw) -> EdgeGenerationRequest:
    root, sd, cn = world
    kw.setdefault("images_per_view", 2)
    return EdgeGenerationRequest(str(folder), base_model=str(sd), controlnet=str(cn), steps=2, seed=11, access=CPU, **kw)


def copy_of(world, name: str) -> Path:
    root = world[0]
    target = root / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(root / "data", target)
    return target


def test_generated_images_share_their_views_annotations(world):
    data = copy_of(world, "one")
    with embedding_lookups() as lookups:
        result = generate_from_edges(gen(world, data), quiet())
    assert (result.views, result.images) == (6, 12)
    assert read_clip_words(lookups, "image", "quality", "detailed"), "the prompts went through CLIP's real tokenizer and table"
    coco = COCO(str(data / "annotations.json"))
    generated = [i for i in coco.loadImgs(coco.getImgIds()) if i["id"] >= GENERATED_ID]
    assert len(generated) == 12
    for image in generated:
        (ann,) = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        (source,) = coco.loadAnns(coco.getAnnIds(imgIds=image["generated_from"]))
        for key in ("azimuth", "elevation", "theta", "distance", "K", "R", "t", "bbox", "keypoints", "segmentation"):
            assert ann[key] == source[key]
        pixels = np.asarray(__import__("cv2").imread(str(data / image["file_name"])))
        assert pixels.shape == (48, 64, 3)
        assert "An image of" in image["prompt"] and "best quality, extremely detailed" in image["prompt"]
    sidecar = json.loads((data / "generated" / "view_000.json").read_text())
    assert [i["seed"] for i in sidecar["images"]] == [11, 12] and sidecar["eta"] == 1.0 and sidecar["guidance"] == 9.0
    # reproducible, and never overwritten unless asked
    with pytest.raises(BadInput, match="already holds"):
        generate_from_edges(gen(world, data), quiet())
    before = (data / "generated" / "view_003_1.png").read_bytes()
    generate_from_edges(gen(world, data, overwrite=True), quiet())
    assert (data / "generated" / "view_003_1.png").read_bytes() == before


def test_two_shards_give_the_unsharded_result(world):
    whole = copy_of(world, "whole")
    generate_from_edges(gen(world, whole, images_per_view=1), quiet())
    shared = copy_of(world, "shared")  # N machines on one shared data set folder
    for shard in ("1/2", "2/2"):
        generate_from_edges(gen(world, shared, images_per_view=1, shard=shard), quiet())
    assert (shared / "annotations.json").read_text() == (whole / "annotations.json").read_text()
    assert (shared / "generated" / "view_005_0.png").read_bytes() == (whole / "generated" / "view_005_0.png").read_bytes()


def test_shard_folders_with_generated_images_merge(world, tmp_path):
    root, sd, cn = world
    views = make_views(tmp_path / "renders", count=4)
    parts = []
    for shard in ("1/2", "2/2"):
        folder = tmp_path / f"part{shard[0]}"
        annotate_views(
            request(
                tmp_path / "renders",
                folder,
                [v for v in views if v.index % 2 == int(shard[0]) - 1],
                edge_method="GEOMETRIC",
                total_views=4,
                shard=shard,
            ),
            quiet(),
        )
        generate_from_edges(gen(world, folder, images_per_view=1), quiet())
        parts.append(folder)
    whole = tmp_path / "whole"
    annotate_views(request(tmp_path / "renders", whole, views, edge_method="GEOMETRIC"), quiet())
    generate_from_edges(gen(world, whole, images_per_view=1), quiet())
    merge_datasets(parts, tmp_path / "merged")
    assert (tmp_path / "merged" / "annotations.json").read_text() == (whole / "annotations.json").read_text()
    assert (tmp_path / "merged" / "generated" / "view_003_0.png").read_bytes() == (whole / "generated" / "view_003_0.png").read_bytes()


def test_bad_generation_input(world):
    root, sd, _ = world
    data = copy_of(world, "bad")
    xl_net = build_tiny_controlnet(root / "cn-xl", xl=True)
    with pytest.raises(BadInput, match="trained for this base"):
        generate_from_edges(EdgeGenerationRequest(str(data), base_model=str(sd), controlnet=str(xl_net), access=CPU), quiet())
    with pytest.raises(BadInput, match="not a 3D-DST data set"):
        generate_from_edges(gen(world, root / "renders"), quiet())
    with pytest.raises(BadInput, match="Images per View 0: must be 1–999"):
        run_job("generate_from_edges", gen(world, data, images_per_view=0), lambda p: None, CancelToken())
    assert not (data / "generated").exists()


def kcf(folder: Path, **kw) -> KCFRequest:
    return KCFRequest(str(folder), fraction=0.25, folds=3, epochs=1, batch_size=4, image_size=16, backbone="small", access=CPU, **kw)


def test_kcf_scores_every_image_and_moves_the_worst(world):
    data = copy_of(world, "kcf")
    generate_from_edges(gen(world, data), quiet())
    result = filter_dataset(kcf(data), quiet())
    scores = json.loads((data / "kcf.json").read_text())["scores"]
    assert result.scored == len(scores) == 12 and all(np.isfinite(list(scores.values())))
    assert len(result.rejected) == 3 and all(Path(p).is_file() and Path(p).parent.name == "rejected" for p in result.rejected)
    kept = json.loads((data / "annotations.json").read_text())
    rejected = json.loads((data / "rejected" / "annotations.json").read_text())
    assert len([i for i in kept["images"] if i["id"] >= GENERATED_ID]) == 9 and len(rejected["images"]) == 3
    worst = sorted(scores.values(), reverse=True)[:3]
    assert sorted(i["kcf_score"] for i in rejected["images"]) == sorted(worst)
    # shards: each trains its folds; the joining run reads their scores and rejects the same images
    sharded = copy_of(world, "kcf-shards")
    generate_from_edges(gen(world, sharded), quiet())
    for shard in ("1/2", "2/2"):
        assert not filter_dataset(kcf(sharded, shard=shard), quiet()).complete
    joined = filter_dataset(kcf(sharded), quiet())
    assert sorted(Path(p).name for p in joined.rejected) == sorted(Path(p).name for p in result.rejected)
    with pytest.raises(BadInput, match="between 0 and 1"):
        filter_dataset(KCFRequest(str(data), fraction=1.5), quiet())


def test_shards_generating_into_their_own_folders_join_into_the_unsharded_result(world, tmp_path):
    whole = copy_of(world, "into-whole")
    generate_from_edges(gen(world, whole), quiet())
    data = copy_of(world, "into")
    before = (data / "annotations.json").read_bytes()
    parts = [tmp_path / "part1", tmp_path / "part2"]
    for shard, part in zip(("1/2", "2/2"), parts):
        generate_from_edges(gen(world, data, shard=shard, out_dir=str(part)), quiet())
    assert not (data / "generated").exists() and (data / "annotations.json").read_bytes() == before, "the data set waits for the join"
    written = join_generated(parts, data)
    assert len(written) == 12 and tree(data) == tree(whole)
    assert join_generated(parts, data) == written and tree(data) == tree(whole), "a join cut short can run again"
    (parts[1] / "view_001_0.png").write_bytes((parts[0] / "view_000_0.png").read_bytes())
    with pytest.raises(BadInput, match="already holds view_001_0.png"):
        join_generated(parts, data)
    shutil.copy(parts[0] / "view_000.json", parts[1])
    with pytest.raises(BadInput, match="both hold view_000.json"):
        join_generated(parts, data)
    with pytest.raises(BadInput, match="already holds"):  # refused before any model work
        generate_from_edges(gen(world, data, shard="1/2", out_dir=str(parts[0])), quiet())


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_kcf_shard_scores_written_elsewhere_join_into_the_unsharded_filter(world, tmp_path):
    whole = copy_of(world, "scores-whole")
    generate_from_edges(gen(world, whole), quiet())
    data = copy_of(world, "scores")
    generate_from_edges(gen(world, data), quiet())
    filter_dataset(kcf(whole), quiet())
    before = tree(data)
    paths = []
    for shard in ("1/2", "2/2"):
        result = filter_dataset(kcf(data, shard=shard, scores_dir=str(tmp_path / shard[0])), quiet())
        paths.append(Path(result.scores_path))
    assert [p.parent for p in paths] == [tmp_path / "1", tmp_path / "2"] and tree(data) == before, "the data set waits for the join"
    with pytest.raises(BadInput, match="cover 8 of 12 images"):
        join_scores(data, paths[:1], 0.25)
    with pytest.raises(BadInput, match="between 0 and 1"):
        join_scores(data, paths, 2.0)
    cut_short = copy_of(world, "scores-cut-short")  # a join killed while moving: one image already in rejected/
    shutil.copytree(data / "generated", cut_short / "generated")
    (cut_short / "rejected").mkdir()
    worst = json.loads((whole / "kcf.json").read_text())["rejected"][0]
    (worst_file,) = [
        i["file_name"] for i in json.loads((whole / "rejected" / "annotations.json").read_text())["images"] if i["id"] == worst
    ]
    os.replace(cut_short / worst_file, cut_short / "rejected" / Path(worst_file).name)
    joined = join_scores(data, paths, 0.25)
    assert len(joined.rejected) == 3 and tree(data) == tree(whole), "the same bytes as one unsharded run"
    join_scores(cut_short, paths, 0.25)
    assert tree(cut_short) == tree(whole), "a join cut short runs again"
    join_scores(data, paths, 0.25)
    assert tree(data) == tree(whole), "and a join that finished, whose driver died before recording it, too"
