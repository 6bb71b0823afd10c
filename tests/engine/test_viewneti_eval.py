"""ViewNeTI's evaluation end to end on tiny models: the DTU protocol on a DTU-shaped folder and the held-out protocol on a posed set.

The numbers mean nothing on random weights; what is checked is that every view
is fitted, rendered and scored as the protocols say.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("skimage")

from tiny_viewneti import build_tiny_sd2  # noqa: E402

from engine.cameras import camera_to_world  # noqa: E402
from engine.diffusion.sources import ModelAccess  # noqa: E402
from engine.errors import BadInput  # noqa: E402
from engine.imagefiles import write_png  # noqa: E402
from engine.jobs import run_job  # noqa: E402
from engine.progress import CancelToken, Reporter  # noqa: E402
from engine.viewneti import checkpoint, dtu  # noqa: E402
from engine.viewneti.cameras import DTU12, at_size, projection_numbers, spherical_numbers  # noqa: E402
from engine.viewneti.evaluate import EvalSettings, compare, dtu_protocol, held_out_protocol  # noqa: E402
from engine.viewneti.train import TrainRequest  # noqa: E402

pytestmark = pytest.mark.timeout(600)
REPO = Path(__file__).resolve().parents[2]
SMALL = ["--fit-steps", "1", "--train-size", "128", "64", "--size", "128", "64", "--eval-size", "64", "48", "--steps", "1"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_sd2(tmp_path_factory.mktemp("models") / "tiny-sd2")


def fake_dtu(root: Path, scans=(8, 21, 30), size=(128, 96)) -> Path:
    """A DTU-shaped folder: 49 views per scan of a square that moves with the camera, cal18 matrices, masks for some views."""
    width, height = size
    cal = root / "Calibration" / "cal18"
    cal.mkdir(parents=True)
    for k in range(dtu.VIEWS):
        pose = camera_to_world(360 * k / dtu.VIEWS, 20 + 10 * (k % 3), 2.0)
        np.savetxt(cal / f"pos_{k + 1:03d}.txt", projection_numbers(pose, 100.0, 100.0, width / 2, height / 2).reshape(3, 4))
    for scan in scans:
        folder = root / "Rectified" / (f"scan{scan}_train" if scan == 21 else f"scan{scan}")
        folder.mkdir(parents=True)
        for k in range(dtu.VIEWS):
            pixels = np.full((height, width, 3), 230, np.uint8)
            left = 10 + (k * 2) % (width - 40)
            pixels[30:70, left : left + 30] = [40 + scan, 90, 200]
            write_png(folder / f"rect_{k + 1:03d}_3_r5000.png", pixels)
        masks = root / "submission_data" / "idrmasks" / f"scan{scan}" / "mask"
        masks.mkdir(parents=True)
        for k in (25, 1, 2):  # the other views have no mask: they count whole
            mask = np.zeros((height, width, 3), np.uint8)
            mask[20:80, 5:120] = 255
            write_png(masks / f"{k:03d}.png", mask)
    return root


PRETRAINING_VIEWS = tuple(range(0, 49, 5))


@pytest.fixture(scope="module")
def pretrained(base, tmp_path_factory) -> tuple[Path, Path]:
    """A DTU-shaped folder, and one step of DTU-12 pre-training over two of its scans' posed sets (the checkpoint)."""
    root = tmp_path_factory.mktemp("dtu")
    data, out = fake_dtu(root / "dtu"), root / "pre"
    sets = []
    for scan in (21, 30):
        dtu.write_dtu_set(dtu.DTU(data), scan, PRETRAINING_VIEWS, root / f"set{scan}")
        sets.append(str(root / f"set{scan}"))
    request = TrainRequest(sets, str(base), str(out), mode="PRETRAIN", parameterisation="DTU12", steps=1, batch=1, accumulation=1,
                           width=128, height=64, access=ModelAccess(device="CPU"))  # fmt: skip
    run_job("train_viewneti", request, lambda p: None, CancelToken())
    return data, out


def run_eval(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "eval_viewneti.py"), *args, "--device", "cpu"], capture_output=True, text=True, timeout=540
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_protocol_splits_are_the_originals():
    assert len(dtu.TEST_VIEWS) == 25 and len(dtu.TRAIN_VIEWS + dtu.TEST_VIEWS) == 34
    assert dtu.input_views(1) == (25,) and dtu.input_views(3) == (25, 22, 28)
    assert not set(dtu.TEST_VIEWS) & set(dtu.EXCLUDED_VIEWS + dtu.TRAIN_VIEWS)
    with pytest.raises(BadInput, match="1, 3, 6, 9 input views, not 2"):
        dtu.input_views(2)


def test_dtu_pre_training_normalises_over_every_calibration_camera_as_the_original_not_its_training_views(pretrained):
    data, pre = pretrained
    info = checkpoint.load(pre)[0]
    cameras = dtu.DTU(data)
    every = at_size(dtu.calibration_cameras(cameras.calibration_dir), DTU12, (128, 96), (128, 64))  # the sets' images → training size
    trained = at_size(np.stack([cameras.camera(v) for v in PRETRAINING_VIEWS]), DTU12, (128, 96), (128, 64))
    np.testing.assert_allclose(info.cameras.low, every.min(axis=0))
    np.testing.assert_allclose(info.cameras.high, every.max(axis=0))
    assert not np.allclose(trained.min(axis=0), every.min(axis=0)), "the training views alone span less"
    posed = json.loads((pre.parent / "set21" / "cameras.json").read_text())
    assert posed["range_dtu12"] == dtu.calibration_cameras(cameras.calibration_dir).tolist(), "each DTU set carries them"


def test_the_dtu_protocol_fits_each_scan_and_scores_all_34_views_with_its_masks(base, pretrained, tmp_path):
    root, pre = pretrained
    result = run_eval("dtu", "--root", str(root), "--scans", "8", "--inputs", "3", "--view-mapper", str(pre),
                      "--model", str(base), *SMALL, "--out", str(tmp_path / "eval"))  # fmt: skip
    scan = result["scans"]["8"]
    assert result["protocol"] == "dtu" and result["inputs"] == [25, 22, 28] and len(scan["views"]) == 34
    assert all(math.isfinite(v["psnr"]) and -1 <= v["ssim"] <= 1 for v in scan["views"].values())
    test = [scan["views"][str(v)]["psnr"] for v in dtu.TEST_VIEWS]
    assert scan["test"]["psnr"] == pytest.approx(np.mean(test)) and result["test"]["psnr"] == pytest.approx(scan["test"]["psnr"])
    assert result["lpips"].startswith("not computed") or result["lpips"] == "VGG"
    folder = tmp_path / "eval" / "scan8"
    assert sorted(p.name for p in (folder / "inputs" / "images").iterdir()) == ["022.png", "025.png", "028.png"]
    assert len(list((folder / "views").glob("*.png"))) == 34 and (folder / "checkpoint" / "viewneti.json").is_file()


def held_out_set(folder: Path, views: int = 6) -> Path:
    """A posed set as Blender writes it: RGBA renders (transparent background) with both camera parameterisations."""
    (folder / "images").mkdir(parents=True)
    entries = []
    for i in range(views):
        pixels = np.zeros((64, 128, 4), np.uint8)
        pixels[16:48, 20 + 12 * i : 52 + 12 * i] = [200, 60, 40, 255]
        write_png(folder / "images" / f"{i:03d}.png", pixels)
        pose = camera_to_world(360 * i / views, 15, 2.0)
        numbers = {"spherical": spherical_numbers(pose).tolist(), "dtu12": projection_numbers(pose, 80, 80, 64, 32).tolist()}
        entries.append({"file": f"images/{i:03d}.png", "camera_to_world": pose.tolist(), **numbers})
    (folder / "cameras.json").write_text(json.dumps({"width": 128, "height": 64, "target": [0, 0, 0], "images": entries}))
    return folder


def test_the_held_out_protocol_fits_the_inputs_and_scores_every_other_view_inside_its_alpha(base, tmp_path):
    posed = held_out_set(tmp_path / "set")
    result = run_eval("held-out", "--set", str(posed), "--inputs", "0", "3", "--model", str(base), *SMALL, "--out", str(tmp_path / "eval"))
    assert result["held_out"] == [1, 2, 4, 5] and set(result["views"]) == {"1", "2", "4", "5"}
    assert all(math.isfinite(v["psnr"]) for v in result["views"].values()) and math.isfinite(result["mean"]["psnr"])
    assert json.loads((tmp_path / "eval" / "checkpoint" / "viewneti.json").read_text())["mode"] == "SCENE"


def test_the_scores_are_taken_inside_the_mask_at_the_evaluation_size():
    truth = np.full((96, 128, 3), 0.5)
    prediction = truth.copy()
    prediction[:, :20] = 1.0  # wrong only outside the mask
    mask = np.zeros((96, 128))
    mask[:, 40:] = 1.0
    inside = compare(prediction, truth, mask, (64, 48), None)
    assert inside["psnr"] == math.inf and inside["lpips"] is None
    assert math.isfinite(compare(prediction, truth, None, (64, 48), None)["psnr"]), "without a mask the whole image counts"


def test_a_protocol_without_its_inputs_is_refused_in_one_line(base, tmp_path):
    settings = EvalSettings(str(base), str(tmp_path / "eval"), access=ModelAccess(device="CPU"))
    report = Reporter(lambda p: None, CancelToken())
    with pytest.raises(BadInput, match="pre-trained DTU-12 view mapper"):
        dtu_protocol(tmp_path, [8], 1, settings, report)
    posed = held_out_set(tmp_path / "set", views=3)
    with pytest.raises(BadInput, match="leaving at least one held out"):
        held_out_protocol(posed, [0, 1, 2], settings, report)
    assert not (tmp_path / "eval").exists()
