"""3D-DST's generation side: each view's edge map → ControlNet images that share the view's 3D annotation.

Each view's images land in ``generated/{view}_{k}.png`` with a sidecar
``generated/{view}.json`` (seeds, prompts, models), written per view so a
cancelled or failed run keeps what it finished. ``annotations.json`` is then
rebuilt from the renders plus every sidecar, so shards that generate on the
same data set, or in shard folders merged later, give one consistent file.
Image ids are deterministic: renders are ``index + 1``; the k-th generated
image of view ``index`` is ``GENERATED_ID + index · PER_VIEW_IDS + k``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..diffusion.sources import ModelAccess
from ..errors import BadInput
from ..imagefiles import NewFiles, read_png, write_png
from ..params import (
    INPUT_FOLDER,
    OUTPUT_FOLDER,
    Inspect,
    Note,
    guidance_field,
    model_field,
    negative_prompt_field,
    nested,
    overwrite_field,
    param,
    refuse,
    seed_field,
    steps_field,
)
from ..progress import Reporter
from ..shards import parse_shard
from .dataset import ANNOTATIONS_JSON, DATASET_JSON, json_text, load_json, view_files, write_text

GENERATED = "generated"
GENERATED_ID, PER_VIEW_IDS = 10**9, 1000  # generated image ids, clear of the renders'
SD15, SD15_CANNY = "stable-diffusion-v1-5/stable-diffusion-v1-5", "lllyasviel/control_v11p_sd15_canny"


def dataset_field(help: str = "A data set folder made by edges (Render Edge Maps)") -> Any:
    return param("", "Dataset", help, path=INPUT_FOLDER, cli="--dataset", cli_required=True)


def shard_field() -> Any:
    return param("", "Shard", "I/N: only this machine's share (1-based I); empty: all", cli="--shard")


def check_shard(shard: str) -> None:
    try:
        parse_shard(shard) if shard else None
    except BadInput as exc:
        refuse("shard", str(exc))


@dataclass
class EdgeGenerationRequest:
    dataset_dir: str = dataset_field()
    base_model: str = model_field(SD15, "Base Model", "Stable Diffusion 1.5 (or SDXL)")
    controlnet: str = model_field(SD15_CANNY, "ControlNet", "A canny ControlNet for that base (SDXL: diffusers/controlnet-canny-sdxl-1.0)")
    vae: str = param("", "VAE", "Another VAE (SDXL's fp16 fix); empty: the base's own", model=True)
    images_per_view: int = param(1, "Images per View", "ControlNet images made from each edge map", min=1, max=PER_VIEW_IDS - 1)
    seed: int = seed_field("Same seed and settings give the same images")
    steps: int = steps_field(20, "DDIM steps (3D-DST: 20)")
    guidance: float = guidance_field(9.0, "Classifier-free guidance (3D-DST: 9)")
    eta: float = param(1.0, "Eta", "DDIM's fresh noise per step (3D-DST: 1)", min=0.0, max=1.0)
    control_strength: float = param(1.0, "Control Strength", "How strongly the edges steer (3D-DST: 1)", min=0.0, max=2.0)
    style: str = param("", "Style", "Comma-separated words added to every prompt")
    negative_prompt: str = negative_prompt_field("What the images should not show; empty: 3D-DST's negative prompt")
    prompt_model: str = param(
        "",
        "Prompt Model",
        "A local text-generation model folder that varies the prompts; empty: a template from the tags",
        path=INPUT_FOLDER,
    )
    shard: str = shard_field()
    out_dir: str = param(
        "",
        "Into",
        "Write the images here instead of the data set's generated/ (a shard's share, joined later)",
        path=OUTPUT_FOLDER,
        cli="--out",
        ui=False,
    )
    overwrite: bool = overwrite_field("Replace generated images already there")
    access: ModelAccess = nested(ModelAccess)
    cpu_offload: bool = param(False, "CPU Offload", "Keep parts of the model on the CPU until used (GPU memory)")

    def check(self) -> list[Note]:
        check_shard(self.shard)
        return []

    def models(self) -> list[tuple[str, str, Inspect]]:
        from ..diffusion import sources

        needed: list[tuple[str, str, Inspect]] = [
            ("base_model", self.base_model, sources.sampled(sources.inspect_stable_diffusion, self.steps)),
            ("controlnet", self.controlnet, lambda path, name, pickle: sources.inspect_component(path, name, "ControlNetModel", pickle)),
        ]
        if self.vae:
            needed.append(("vae", self.vae, lambda path, name, pickle: sources.inspect_component(path, name, "AutoencoderKL", pickle)))
        return needed


@dataclass
class EdgeGenerationResult:
    dataset_dir: str = ""
    views: int = 0
    images: int = 0
    seconds: float = 0.0
    files: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What batch.py prints of it."""
        return {"paths": {"dataset": self.dataset_dir}, "generated_images": self.images}


def _planned_views(r: EdgeGenerationRequest, dataset: dict[str, Any]) -> list[dict[str, Any]]:
    views = [v for v in dataset.get("views", []) if not v.get("empty")]
    if r.shard:
        index, count = parse_shard(r.shard)
        views = [v for v in views if v["index"] % count == index]
    if not views:
        raise BadInput(f"No views with an object to generate from in {r.dataset_dir}" + (f" (shard {r.shard})" if r.shard else ""))
    return sorted(views, key=lambda v: v["index"])


def generate_from_edges(r: EdgeGenerationRequest, report: Reporter) -> EdgeGenerationResult:
    from ..diffusion import loading, sources
    from . import controlnet, prompts

    started = time.perf_counter()
    root = Path(r.dataset_dir)
    dataset = load_json(root / DATASET_JSON)
    load_json(root / ANNOTATIONS_JSON)
    views = _planned_views(r, dataset)
    objects = dataset["objects"]
    for view in views:
        if not (root / view_files(view["name"])["edges"]).is_file():
            raise BadInput(f"The edge map of view {view['name']!r} is missing in {root}")
    out = Path(r.out_dir) if r.out_dir else root / GENERATED
    targets = [out / f"{v['name']}_{k}.png" for v in views for k in range(r.images_per_view)]
    NewFiles(targets, r.overwrite)  # refuses existing images now, before any model work

    access = r.access
    base_path = access.locate(r.base_model, report, sources.SD_DOWNLOAD_PATTERNS)
    base = sources.inspect_stable_diffusion(base_path, r.base_model, access.allow_pickle)
    net_path = access.locate(r.controlnet, report, sources.COMPONENT_PATTERNS)
    net = sources.inspect_component(net_path, r.controlnet, "ControlNetModel", access.allow_pickle)
    sources.check_controlnet_base(base, net)
    vae = None
    if r.vae:
        vae_path = access.locate(r.vae, report, sources.COMPONENT_PATTERNS)
        vae = sources.inspect_component(vae_path, r.vae, "AutoencoderKL", access.allow_pickle)
        sources.check_vae_override(base, vae)
    expander = prompts.LocalLanguageModel(r.prompt_model, access.allow_pickle) if r.prompt_model else None

    report.total = 1 + len(views) * (r.steps + 3)
    device = loading.pick_device(access.device)
    model = loading.load_controlnet_pipeline(
        base, net, device, loading.pick_dtype(access.precision, device), r.cpu_offload and device.type != "cpu", vae
    )
    report.step(f"Loaded {base.name} with {net.name}")
    style = [w.strip() for w in r.style.split(",") if w.strip()]
    negative = r.negative_prompt or prompts.NEGATIVE_PROMPT
    models = {
        "base": r.base_model,
        "base_revision": base.revision,
        "controlnet": r.controlnet,
        "controlnet_revision": net.revision,
        "vae": r.vae,
    }
    settings = {
        "steps": r.steps,
        "guidance": r.guidance,
        "eta": r.eta,
        "control_strength": r.control_strength,
        "scheduler": "DDIM",
        "negative_prompt": negative,
    }
    written: list[str] = []
    try:
        for view in views:
            obj = objects[view["object_index"]]
            seeds = [r.seed + view["index"] * r.images_per_view + k for k in range(r.images_per_view)]
            texts = [prompts.expand_prompt(obj["class_name"], obj["tags"], s, expander, style) for s in seeds]
            edges = read_png(root / view_files(view["name"])["edges"])
            images = controlnet.generate(
                model,
                controlnet.ControlSettings(
                    texts,
                    [negative] * len(seeds),
                    seeds,
                    edges[..., 0],
                    steps=r.steps,
                    guidance=r.guidance,
                    eta=r.eta,
                    control_scale=r.control_strength,
                ),
                report,
            )
            written += _write_view(out, view, images, seeds, texts, {**models, **settings, "prompt_model": r.prompt_model}, r.overwrite)
    finally:
        if not r.out_dir:
            link_generated(root)  # annotations.json lists exactly the images on disk, even after a cancel
    return EdgeGenerationResult(str(root), len(views), len(written), time.perf_counter() - started, written)


def _write_view(
    out: Path, view: dict[str, Any], images: np.ndarray, seeds: list[int], texts: list[str], record: dict[str, Any], overwrite: bool
) -> list[str]:
    """One view's images and sidecar, all or nothing."""
    out.mkdir(exist_ok=True)
    names = [f"{view['name']}_{k}.png" for k in range(len(seeds))]
    sidecar = {
        "view": view["name"],
        "index": view["index"],
        "images": [{"file_name": f"{GENERATED}/{n}", "seed": s, "prompt": t} for n, s, t in zip(names, seeds, texts)],
        **record,
    }
    with NewFiles([out / n for n in names] + [out / f"{view['name']}.json"], overwrite) as files:
        for name, image in zip(names, images):
            files.write(out / name, _png_writer(np.round(image * 255).astype(np.uint8)))
        files.write(out / f"{view['name']}.json", write_text(json_text(sidecar)))
    return [str(out / n) for n in names]


def _png_writer(pixels: np.ndarray) -> Callable[[Path], object]:
    return lambda path: write_png(path, pixels)


def join_generated(folders: list[Path], root: Path, overwrite: bool = False) -> list[str]:
    """Shards' generated images and sidecars (``out_dir``) → the data set's generated/, all or nothing, then relinked.

    A file already there with the same bytes is kept (a join that was cut short), another one is refused unless ``overwrite``.
    """
    load_json(root / DATASET_JSON)
    sources: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            if path.name in sources:
                raise BadInput(f"{sources[path.name]} and {path} both hold {path.name}: the shards overlap, nothing was joined")
            sources[path.name] = path
    out = root / GENERATED
    fresh = {n: p for n, p in sources.items() if not (out / n).is_file() or (out / n).read_bytes() != p.read_bytes()}
    created = not out.is_dir()
    out.mkdir(exist_ok=True)
    try:
        with NewFiles([out / n for n in fresh], overwrite) as files:
            for name, path in fresh.items():
                files.copy(out / name, path)
    except BaseException:
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
    link_generated(root)
    return [str(out / n) for n in sources if n.endswith(".png")]


def sidecar_images(root: Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Every image the sidecars in generated/ list, on disk or not: (its image id, its view's index, its sidecar entry)."""
    for sidecar_path in sorted((root / GENERATED).glob("*.json")):
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
        for k, item in enumerate(sidecar["images"]):
            yield GENERATED_ID + sidecar["index"] * PER_VIEW_IDS + k, sidecar["index"], item


def link_generated(root: Path) -> dict[str, Any]:
    """Rebuild ``annotations.json``: the renders' entries, then one per generated image on disk, sharing its view's annotation."""
    coco = load_json(root / ANNOTATIONS_JSON)
    images = [i for i in coco["images"] if i["id"] < GENERATED_ID]
    annotations = [a for a in coco["annotations"] if a["image_id"] < GENERATED_ID]
    by_image = {a["image_id"]: a for a in annotations}
    render_of = {i["id"]: i for i in images}
    for image_id, view_index, item in sidecar_images(root):
        if not (root / item["file_name"]).is_file():
            continue  # moved to rejected/ by the filter, or removed by hand
        render_id = view_index + 1
        images.append(
            {
                **render_of[render_id],
                "id": image_id,
                "file_name": item["file_name"],
                "generated_from": render_id,
                "seed": item["seed"],
                "prompt": item["prompt"],
            }
        )
        if render_id in by_image:
            annotations.append({**by_image[render_id], "id": image_id, "image_id": image_id})
    coco["images"] = sorted(images, key=lambda i: i["id"])
    coco["annotations"] = sorted(annotations, key=lambda a: a["id"])
    with NewFiles([root / ANNOTATIONS_JSON], overwrite=True) as files:
        files.write(root / ANNOTATIONS_JSON, write_text(json_text(coco)))
    return coco
