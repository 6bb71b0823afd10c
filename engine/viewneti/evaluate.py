"""ViewNeTI's evaluation: views rendered for held-out cameras, compared with their ground truth.

Both protocols fit, render and compare (masked PSNR and SSIM as :mod:`.metrics`,
LPIPS where its weights are present locally):

* :func:`dtu_protocol`, the original's: per scan, the input views (1: [25];
  3: [25, 22, 28]) fit a new object mapper with a pre-trained DTU-12 view
  mapper kept frozen (its single/sparse-view runs, mode 5). All 34 evaluated
  views (the 9 training-split views and the 25 test views) are rendered from
  their cal18 matrices at 768×576; predictions and ground truth go to 400×300
  (bicubic), masks too, thresholded at > 0.01. Averages are given over the 25
  test views (``validate.py``'s split) and over all 34 (``summarize_dtu.py`` as
  written, input views included).
* :func:`held_out_protocol`, for objects rendered in Blender: chosen views of a
  posed set are the inputs (with a view mapper: a single-view fit; without: a
  scene run on them), every other view is held out and rendered from its camera
  at the set's size; the mask is the render's alpha (a set on a solid
  background counts whole).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..diffusion import sources
from ..errors import BadInput
from ..imagefiles import flatten_alpha, read_image, resample
from ..progress import Reporter
from ..samples import Writer, json_file, png, write_samples
from . import checkpoint
from .cameras import DTU12, SPHERICAL
from .dtu import DTU, TEST_VIEWS, TRAIN_VIEWS, input_views, write_dtu_set
from .metrics import EVAL_SIZE, lpips_scorer, masked_psnr, masked_ssim
from .posed import CAMERAS
from .render import RenderViewRequest, Views, render_view
from .train import SCENE, SINGLE_VIEW, TrainRequest, train_viewneti

EVALUATED_VIEWS = TRAIN_VIEWS + TEST_VIEWS  # the 34 views predicted per scan


@dataclass
class EvalSettings:
    model: str  # the SD 2.x base
    out_dir: str  # per scan (or set): the inputs' posed set, the fitted checkpoint, the rendered views
    view_mapper: str = ""  # a pre-trained checkpoint: the inputs fit a new object mapper with it frozen
    fit_steps: int = 3000
    train_width: int = 512  # the training size of a scene run (a single-view fit takes the view mapper's)
    train_height: int = 384
    width: int = 768  # the rendered views (the held-out protocol renders at the set's size)
    height: int = 576
    eval_size: tuple[int, int] = EVAL_SIZE
    steps: int = 30
    guidance: float = 7.5
    scheduler: str = "DPMPP_2M"
    seed: int = 0
    access: sources.ModelAccess = field(default_factory=sources.ModelAccess)


Scores = dict[str, float | None]


def dtu_protocol(root: Path, scans: list[int], inputs: int, s: EvalSettings, report: Reporter) -> dict[str, Any]:
    dtu, views = DTU(root), input_views(inputs)
    if not s.view_mapper or checkpoint.read(Path(s.view_mapper)).cameras.kind != DTU12:
        raise BadInput("DTU's protocol fits with a pre-trained DTU-12 view mapper: give one (pre-trained on DTU, or imported)")
    score, lpips_note = lpips_scorer()
    out = Path(s.out_dir)
    per_scan = {}
    share = (s.fit_steps + 2) + (2 + len(EVALUATED_VIEWS) * (s.steps + 3))
    report.total = share * len(scans)
    for i, scan in enumerate(scans):
        folder = out / f"scan{scan}"
        write_dtu_set(dtu, scan, views, folder / "inputs")
        height, width = read_image(dtu.image(scan, views[0])).pixels.shape[:2]
        fitted = _fit(s, [folder / "inputs"], folder / "checkpoint", report.part(i * share, s.fit_steps + 2, f"Scan {scan}, fit: "))
        numbers = [dtu.camera(v).tolist() for v in EVALUATED_VIEWS]
        names = [f"{v:03d}.png" for v in EVALUATED_VIEWS]
        part = report.part(i * share + s.fit_steps + 2, share - s.fit_steps - 2, f"Scan {scan}, views: ")
        paths = _render(s, fitted, numbers, [width, height], names, folder / "views", s.width, s.height, part)
        scores = {
            v: compare(
                _rgb(read_image(path).pixels)[0], _rgb(read_image(dtu.image(scan, v)).pixels)[0], dtu.mask(scan, v), s.eval_size, score
            )
            for v, path in zip(EVALUATED_VIEWS, paths)
        }
        per_scan[scan] = {"views": scores, "test": mean(scores[v] for v in TEST_VIEWS), "all": mean(scores.values())}
    return {
        "protocol": "dtu",
        "inputs": list(views),
        "scans": per_scan,
        "test": mean(r["test"] for r in per_scan.values()),
        "all": mean(r["all"] for r in per_scan.values()),
        "lpips": lpips_note,
    }


def held_out_protocol(posed_dir: Path, inputs: list[int], s: EvalSettings, report: Reporter) -> dict[str, Any]:
    try:
        posed = json.loads((posed_dir / CAMERAS).read_text(encoding="utf-8"))
        entries = posed["images"]
    except (OSError, ValueError, KeyError) as exc:
        raise BadInput(f"{posed_dir} is not a posed image set: {exc}") from None
    if not inputs or any(not 0 <= i < len(entries) for i in inputs) or len(set(inputs)) == len(entries):
        raise BadInput(f"Choose input views among 0–{len(entries) - 1}, leaving at least one held out")
    held = [i for i in range(len(entries)) if i not in inputs]
    kind = checkpoint.read(Path(s.view_mapper)).cameras.kind if s.view_mapper else SPHERICAL
    score, lpips_note = lpips_scorer()
    out = Path(s.out_dir)
    width, height = int(posed["width"]), int(posed["height"])
    if width % 8 or height % 8:
        raise BadInput(f"The set's views are {width}×{height}: the held-out views render at that size, which must be multiples of 8")
    subset: dict[str, Writer] = {entries[i]["file"]: _copy(posed_dir / entries[i]["file"]) for i in inputs}
    subset[CAMERAS] = json_file({**posed, "images": [entries[i] for i in inputs]})
    write_samples(out / "inputs", [subset], overwrite=False)
    report.total = (s.fit_steps + 2) + (2 + len(held) * (s.steps + 3))
    fitted = _fit(s, [out / "inputs"], out / "checkpoint", report.part(0, s.fit_steps + 2, "Fit: "))
    numbers = [entries[i][kind.lower()] for i in held]
    names = [Path(entries[i]["file"]).name for i in held]
    paths = _render(
        s,
        fitted,
        numbers,
        [width, height],
        names,
        out / "views",
        width,
        height,
        report.part(s.fit_steps + 2, report.total - s.fit_steps - 2, "Views: "),
    )
    scores = {}
    for i, path in zip(held, paths):
        truth, alpha = _rgb(read_image(posed_dir / entries[i]["file"]).pixels)
        scores[i] = compare(_rgb(read_image(path).pixels)[0], truth, alpha, (width, height), score)
    return {
        "protocol": "held-out",
        "set": str(posed_dir),
        "inputs": inputs,
        "held_out": held,
        "views": scores,
        "mean": mean(scores.values()),
        "lpips": lpips_note,
    }


def compare(
    prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray | None, size: tuple[int, int], lpips: Callable[..., float] | None
) -> Scores:
    """Both images (and the mask) at ``size`` (bicubic), then the masked metrics."""
    a, b = resized(prediction, size), resized(truth, size)
    m = None if mask is None else resized(mask[..., None], size)[..., 0] > 0.01
    return {"psnr": masked_psnr(a, b, m), "ssim": masked_ssim(a, b, m), "lpips": None if lpips is None else lpips(a, b, m)}


def mean(scores: Any) -> Scores:
    """The average of each metric over views (None where a metric was not computed)."""
    rows = list(scores)
    return {k: None if rows[0][k] is None else statistics.fmean(r[k] for r in rows) for k in rows[0]}


def resized(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Float pixels in [0, 1] resized to ``size`` (width, height) with bicubic filtering (Pillow's, per channel)."""
    if pixels.shape[1::-1] == tuple(size):
        return pixels.astype(np.float64)
    return np.clip(resample(pixels, size[0], size[1], "BICUBIC"), 0, 1).astype(np.float64)


def _rgb(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Stored pixels as RGB in [0, 1] on white where transparent (as training reads them), and the alpha (None if opaque)."""
    return flatten_alpha(pixels, dtype=np.float64)


def _copy(source: Path) -> Writer:
    return png(read_image(source).pixels)


def _fit(s: EvalSettings, data: list[Path], out: Path, report: Reporter) -> str:
    mode = SINGLE_VIEW if s.view_mapper else SCENE
    request = TrainRequest(
        [str(d) for d in data],
        s.model,
        str(out),
        mode=mode,
        view_mapper=s.view_mapper,
        steps=s.fit_steps,
        save_every=s.fit_steps,
        width=s.train_width,
        height=s.train_height,
        seed=s.seed,
        access=s.access,
    )
    return train_viewneti(request, report).checkpoint


def _render(
    s: EvalSettings,
    fitted: str,
    numbers: list[Any],
    size: list[int],
    names: list[str],
    out: Path,
    width: int,
    height: int,
    report: Reporter,
) -> list[str]:
    views = Views(
        numbers=numbers,
        numbers_size=size,
        names=names,
        width=width,
        height=height,
        steps=s.steps,
        guidance=s.guidance,
        scheduler=s.scheduler,
        seed=s.seed,
    )
    return render_view(RenderViewRequest(checkpoint=fitted, model=s.model, out_dir=str(out), views=views, access=s.access), report).paths
