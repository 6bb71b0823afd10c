"""The K-fold consistency filter as a job: score every generated image, move the worst to ``rejected/``.

Scores are kept for every image (``kcf.json`` and each image entry's
``kcf_score``); rejected images are moved, never deleted, and leave
``annotations.json`` (their entries go to ``rejected/annotations.json``).
With ``shard = "I/N"`` a machine trains only its share of the folds and saves
``kcf/scores-I-of-N.json`` (or into ``scores_dir``); a run without a shard that
finds every shard's scores uses them instead of training, then selects and
moves, as :func:`join_scores` does with score files from anywhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..choices import KCF_BACKBONES
from ..diffusion.sources import ModelAccess
from ..errors import BadInput
from ..imagefiles import NewFiles
from ..params import FACTOR, INPUT_FILE, OUTPUT_FOLDER, PIXELS, Note, nested, param, refuse, seed_field
from ..progress import Reporter
from ..shards import format_shard, parse_shard
from .dataset import ANNOTATIONS_JSON, json_text, load_json, write_text
from .generate import GENERATED_ID, check_shard, dataset_field, link_generated, shard_field, sidecar_images
from .kcf import kcf_scores, select_rejected

REJECTED, SCORES_JSON, SHARD_SCORES = "rejected", "kcf.json", "kcf"


@dataclass
class Chain:
    """``batch.py dst``: whether its chain ends with the filter."""

    filter: bool = param(True, "Filter", "End with the K-fold consistency filter (--no-filter: stop after generating)")


@dataclass
class KCFRequest:
    dataset_dir: str = dataset_field()
    fraction: float = param(
        0.1, "Drop", "The worst share of the generated images to move to rejected/", unit=FACTOR, min=0.0, max=1.0, prop="fraction"
    )
    folds: int = param(5, "Folds", "Models trained, each scoring the images it did not see", min=2, max=100)
    seed: int = seed_field("Same seed and settings give the same folds and scores")
    backbone: str = param("auto", "Backbone", "The pose classifier", choices=KCF_BACKBONES)
    epochs: int = param(150, "Epochs", "Training epochs per fold (3D-DST: 150)", min=1, max=10000, soft=(1, 300))
    batch_size: int = param(32, "Batch Size", "Images per training step (3D-DST: 32)", min=1, max=4096)
    image_size: int = param(256, "Image Size", "The classifier's input size (3D-DST: 256)", unit=PIXELS, min=8, max=2048, soft=(32, 512))
    weights: str = param("", "Weights", "Local ResNet-50 weights (.safetensors) to start from; empty: random", path=INPUT_FILE)
    access: ModelAccess = nested(ModelAccess)  # its device, and whether pickled weights may load
    shard: str = shard_field()
    scores_dir: str = param(
        "", "Scores Into", "With a shard: write its scores here instead of the data set's kcf/", path=OUTPUT_FOLDER, cli="--out", ui=False
    )

    def check(self) -> list[Note]:
        check_shard(self.shard)
        if self.scores_dir and not self.shard:
            refuse("scores_dir", "only a shard writes its scores elsewhere (give {shard} I/N)")
        return []


@dataclass
class KCFResult:
    dataset_dir: str = ""
    scored: int = 0
    rejected: list[str] = field(default_factory=list)
    scores_path: str = ""
    complete: bool = True  # False for a shard: its scores wait for the others

    def summary(self) -> dict[str, Any]:
        """What batch.py prints of it: a shard's scores, or the images the filter moved out."""
        if not self.complete:
            return {"paths": {"dataset": self.dataset_dir, "scores": self.scores_path}, "scored": self.scored}
        return {"paths": {"dataset": self.dataset_dir}, "rejected": sorted(Path(p).name for p in self.rejected)}


def _generated(root: Path) -> tuple[dict[str, Any], list[dict[str, Any]], np.ndarray]:
    """The data set's COCO, its generated images (on disk, with annotations) and their poses."""
    coco = link_generated(root)
    annotated = {a["image_id"]: a for a in coco["annotations"]}
    images = [i for i in coco["images"] if i["id"] >= GENERATED_ID and i["id"] in annotated]
    if len(images) < 2:
        raise BadInput(f"{root} has {len(images)} generated images with annotations: generate from the edge maps first")
    poses = np.array([[annotated[i["id"]][k] for k in ("azimuth", "elevation", "theta")] for i in images], np.float64)
    return coco, images, poses


def filter_dataset(r: KCFRequest, report: Reporter) -> KCFResult:
    _check_fraction(r.fraction)  # before the folds train (a caller that skipped the request's validation)
    root = Path(r.dataset_dir)
    load_json(root / ANNOTATIONS_JSON)
    coco, images, poses = _generated(root)
    if len(images) < r.folds:
        raise BadInput(f"{len(images)} generated images cannot be split into {r.folds} folds")
    ids = [i["id"] for i in images]
    options = dict(
        folds=r.folds,
        seed=r.seed,
        backbone=r.backbone,
        epochs=r.epochs,
        batch_size=r.batch_size,
        image_size=r.image_size,
        device=r.access.device,
        weights=r.weights,
        allow_pickle=r.access.allow_pickle,
        report=report,
    )
    files = [str(root / i["file_name"]) for i in images]
    if r.shard:
        index, count = parse_shard(r.shard)
        scores = kcf_scores(files, poses, only_folds=[f for f in range(r.folds) if f % count == index], **options)  # type: ignore[arg-type]
        path = scores_path(root, r.shard, r.scores_dir)
        path.parent.mkdir(exist_ok=True)
        record = {"ids": ids, "scores": [None if np.isnan(s) else float(s) for s in scores], "request": _settings(r)}
        with NewFiles([path], overwrite=True) as out:
            out.write(path, write_text(json_text(record)))
        return KCFResult(str(root), int(np.isfinite(scores).sum()), [], str(path), complete=False)
    settings = _settings(r)
    paths = sorted((root / SHARD_SCORES).glob("scores-*.json"))
    scores = _shard_scores(paths, ids, settings) if paths else kcf_scores(files, poses, **options)  # type: ignore[arg-type]
    return _apply(root, coco, images, scores, settings, r.fraction)


def scores_path(root: Path, shard: str, scores_dir: str = "") -> Path:
    """Where shard ``I/N`` writes its scores: ``kcf/scores-I-of-N.json`` in the data set, or in ``scores_dir``."""
    index, count = parse_shard(shard)
    return Path(scores_dir or root / SHARD_SCORES) / f"scores-{format_shard(index, count).replace('/', '-of-')}.json"


def join_scores(dataset_dir: str | Path, paths: list[Path], fraction: float) -> KCFResult:
    """Shards' score files (written anywhere, with the same settings) → the filter applied as one unsharded run would."""
    root = Path(dataset_dir)
    _check_fraction(fraction)
    if not paths:
        raise BadInput("No shard scores to join")
    first = _read_scores(paths[0])
    _undo_moves(root, set(first.get("ids", [])))
    coco, images, _ = _generated(root)
    scores = _shard_scores(paths, [i["id"] for i in images], first["request"])
    return _apply(root, coco, images, scores, first["request"], fraction)


def _undo_moves(root: Path, scored: set[int]) -> None:
    """Put back the images a join cut short had moved to rejected/: the shards scored them where they were, so the join runs again."""
    for image_id, _, item in sidecar_images(root):
        place, moved = root / item["file_name"], root / REJECTED / Path(item["file_name"]).name
        if image_id in scored and not place.exists() and moved.is_file():
            os.replace(moved, place)


def _check_fraction(fraction: float) -> None:
    if not 0 <= fraction <= 1:
        raise BadInput(f"The rejected fraction must be between 0 and 1, got {fraction}")


def _settings(r: KCFRequest) -> dict[str, Any]:
    return {k: getattr(r, k) for k in ("folds", "seed", "backbone", "epochs", "batch_size", "image_size", "weights")}


def _read_scores(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise BadInput(f"Cannot read the shard scores {path}: {exc}") from None


def _shard_scores(paths: list[Path], ids: list[int], settings: dict[str, Any]) -> np.ndarray:
    """Every image's score from the shards' files, if together they cover every image with these settings."""
    combined: dict[int, float] = {}
    for path in paths:
        record = _read_scores(path)
        if record["ids"] != ids or record["request"] != settings:
            raise BadInput(f"{path} was scored with other images or settings: remove it or run those shards again")
        combined.update({i: s for i, s in zip(record["ids"], record["scores"]) if s is not None})
    if set(combined) != set(ids):
        where = ", ".join(sorted({str(p.parent) for p in paths}))
        raise BadInput(f"The shards' scores in {where} cover {len(combined)} of {len(ids)} images: run the missing shards")
    return np.array([combined[i] for i in ids])


def _apply(
    root: Path, coco: dict[str, Any], images: list[dict[str, Any]], scores: np.ndarray, settings: dict[str, Any], fraction: float
) -> KCFResult:
    """Record every score, then move the worst ``fraction`` of the images and their entries out."""
    ids = [i["id"] for i in images]
    rejected = [images[i] for i in select_rejected(scores, fraction)]
    score_of = dict(zip(ids, (float(s) for s in scores)))
    dropped = {i["id"] for i in rejected}
    for image in coco["images"]:
        if image["id"] in score_of:
            image["kcf_score"] = score_of[image["id"]]
    kept = {
        **coco,
        "images": [i for i in coco["images"] if i["id"] not in dropped],
        "annotations": [a for a in coco["annotations"] if a["image_id"] not in dropped],
    }
    gone = {
        **coco,
        "images": [i for i in coco["images"] if i["id"] in dropped],
        "annotations": [a for a in coco["annotations"] if a["image_id"] in dropped],
    }
    record = {
        "request": settings,
        "fraction": fraction,
        "scores": {str(i): s for i, s in score_of.items()},
        "rejected": sorted(dropped),
    }
    (root / REJECTED).mkdir(exist_ok=True)
    moves = []
    for image in rejected:
        source = root / image["file_name"]
        target = root / REJECTED / Path(image["file_name"]).name
        if target.exists():
            raise BadInput(f"{target} exists already; move it away before filtering again")
        moves.append((source, target))
    targets = [root / ANNOTATIONS_JSON, root / SCORES_JSON, root / REJECTED / ANNOTATIONS_JSON]
    with NewFiles(targets, overwrite=True) as files:
        files.write(targets[0], write_text(json_text(kept)))
        files.write(targets[1], write_text(json_text(record)))
        files.write(targets[2], write_text(json_text(_merged_rejections(targets[2], gone))))
        for source, target in moves:
            os.replace(source, target)
    return KCFResult(str(root), len(ids), [str(t) for _, t in moves], str(root / SCORES_JSON))


def _merged_rejections(path: Path, new: dict[str, Any]) -> dict[str, Any]:
    """Earlier rounds' rejections stay listed beside this round's."""
    if not path.is_file():
        return new
    old = json.loads(path.read_text(encoding="utf-8"))
    seen = {i["id"] for i in new["images"]}
    return {
        **new,
        "images": new["images"] + [i for i in old["images"] if i["id"] not in seen],
        "annotations": new["annotations"] + [a for a in old["annotations"] if a["image_id"] not in seen],
    }
