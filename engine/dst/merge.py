"""Merging the data sets that shards of one view list wrote into the one a single run writes.

Shards share every setting, parameter and object and differ only in their
views; the merged folder gets each shard's per-view files and JSON documents
rebuilt from the union of views, byte for byte what one unsharded run writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInput
from ..imagefiles import NewFiles
from ..params import INPUT_FOLDER, OUTPUT_FOLDER, overwrite_field, param
from ..progress import Reporter
from .dataset import (
    ANNOTATIONS_JSON,
    DATASET_JSON,
    PER_SHARD_KEYS,
    DSTObject,
    coco_document,
    dataset_document,
    json_text,
    load_json,
    make_folders,
    remove_if_empty,
    view_files,
    write_text,
)


@dataclass
class DSTMergeRequest:
    shard_dirs: list[str] = param(
        [],
        "Shards",
        "The shard folders (made by edges or generate-from-edges --shard)",
        path=INPUT_FOLDER,
        cli="--shards",
        cli_required=True,
    )
    dataset_dir: str = param("", "Dataset", "The merged data set folder", path=OUTPUT_FOLDER, cli="--out", cli_required=True)
    overwrite: bool = overwrite_field("Replace a merged data set already there")


@dataclass
class DSTMergeResult:
    dataset_dir: str = ""
    views: int = 0
    annotations: int = 0
    files: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What batch.py prints of it."""
        return {"paths": {"dataset": self.dataset_dir}, "views": self.views, "annotations": self.annotations}


def merge_datasets(
    shard_dirs: Sequence[str | Path], out_dir: str | Path, overwrite: bool = False, report: Reporter | None = None
) -> DSTMergeResult:
    """Merge shard data set folders into ``out_dir`` (all or nothing; existing files kept unless ``overwrite``)."""
    folders = [Path(d) for d in shard_dirs]
    if not folders:
        raise BadInput("No shard folders to merge")
    out = Path(out_dir)
    if any(f.resolve() == out.resolve() for f in folders):
        raise BadInput(f"Merge into a new folder, not into the shard {out}")
    datasets = [load_json(f / DATASET_JSON) for f in folders]
    cocos = [load_json(f / ANNOTATIONS_JSON) for f in folders]
    totals = sorted({ds.get("total_views") for ds in datasets}, key=str)
    if len(totals) > 1:
        raise BadInput(
            f"The shards disagree on the total view count ({', '.join(map(str, totals))}): give every shard the same total_views"
        )
    common = {k: v for k, v in datasets[0].items() if k not in PER_SHARD_KEYS}
    for folder, ds, coco in zip(folders[1:], datasets[1:], cocos[1:]):
        if {k: v for k, v in ds.items() if k not in PER_SHARD_KEYS} != common:
            raise BadInput(f"{folder} was made with other settings, parameters or objects than {folders[0]}: not shards of one data set")
        if coco.get("categories") != cocos[0].get("categories") or coco.get("info") != cocos[0].get("info"):
            raise BadInput(f"{folder} has other categories than {folders[0]}: not shards of one data set")
    views: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    owner: dict[int, Path] = {}
    sources: list[tuple[Path, str]] = []
    for folder, ds, coco in zip(folders, datasets, cocos):
        for view in ds.get("views", []):
            if view["index"] in owner:
                raise BadInput(f"View {view['name']!r} (index {view['index']}) is in both {owner[view['index']]} and {folder}")
            owner[view["index"]] = folder
            views.append(view)
            sources += [(folder, rel) for rel in view_files(view["name"]).values()]
        images += coco.get("images", [])
        annotations += coco.get("annotations", [])
        generated = folder / "generated"  # ControlNet images and their sidecars, when the shard generated its own
        sources += [(folder, f"generated/{p.name}") for p in sorted(generated.iterdir()) if p.is_file()] if generated.is_dir() else []
    names = [v["name"] for v in views]
    if len(set(names)) != len(names):
        raise BadInput("Two shards hold views of the same name")
    total = common.get("total_views", len(views))
    if len(views) != total:
        missing = sorted(set(range(total)) - set(owner))[:5]
        raise BadInput(f"The shards hold {len(views)} of the {total} views (missing indices {missing}…): is a shard left out?")
    for folder, rel in sources:
        if not (folder / rel).is_file():
            raise BadInput(f"{folder / rel} is missing")
    objects = [DSTObject(**o) for o in common["objects"]]
    coco_doc = coco_document(objects, images, annotations)
    if coco_doc["categories"] != cocos[0].get("categories"):
        raise BadInput(f"{folders[0]}'s categories do not follow from its objects")
    targets = [out / rel for _, rel in sources] + [out / ANNOTATIONS_JSON, out / DATASET_JSON]
    created = make_folders(out)
    if any(rel.startswith("generated/") for _, rel in sources) and not (out / "generated").is_dir():
        (out / "generated").mkdir()
        created.append(out / "generated")
    if report is not None:
        report.total = len(sources) + 1
    try:
        with NewFiles(targets, overwrite) as files:
            for (folder, rel), target in zip(sources, targets):
                files.copy(target, folder / rel)
                if report is not None:
                    report.step(f"Copying {rel}")
            files.write(out / ANNOTATIONS_JSON, write_text(json_text(coco_doc)))
            files.write(out / DATASET_JSON, write_text(json_text(dataset_document(common, views))))
            if report is not None:
                report.step("Writing annotations")
    except BaseException:
        remove_if_empty(created)
        raise
    return DSTMergeResult(str(out), len(views), len(annotations), [str(p) for p in targets])


def merge_shards(request: DSTMergeRequest, report: Reporter) -> DSTMergeResult:
    """The merge as an engine job."""
    return merge_datasets(list(request.shard_dirs), request.dataset_dir, request.overwrite, report)
