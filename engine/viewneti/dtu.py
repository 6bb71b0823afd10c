"""DTU as ViewNeTI's protocol reads it: the pixelNeRF/RegNeRF split, the files, posed sets of a scan's views.

A DTU folder holds ``Rectified/scan{N}/rect_{k+1:03d}_3_r5000.png`` (1600×1200,
lighting 3; ``scan{N}_train`` is read too), ``Calibration/cal18/pos_{k+1:03d}.txt``
(camera k's 3×4 projection onto those images) and, for the evaluation, RegNeRF's
IDR masks at ``submission_data/idrmasks/scan{N}/mask/{k:03d}.png`` (or without
``mask/``). Views are 0-based; the files count from 1. A posed set of a scan
carries every calibration camera too: the original normalises DTU-12 cameras
over all of them, not over the views it trains on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInput
from ..imagefiles import read_image, unit_float
from ..samples import Writer, json_file, png, write_samples
from .cameras import DTU12
from .posed import CAMERAS, range_key

DTU_IMAGE_SIZE = (1600, 1200)  # width, height of the rectified images cal18 projects onto
VIEWS = 49
TEST_SCANS = (8, 21, 30, 31, 34, 38, 40, 41, 45, 55, 63, 82, 103, 110, 114)
TRAIN_VIEWS = (25, 22, 28, 40, 44, 48, 0, 8, 13)  # the input views are a prefix of these
EXCLUDED_VIEWS = (3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 36, 37, 38, 39)
TEST_VIEWS = tuple(v for v in range(VIEWS) if v not in TRAIN_VIEWS + EXCLUDED_VIEWS)  # 25 views
INPUT_COUNTS = (1, 3, 6, 9)


def input_views(count: int) -> tuple[int, ...]:
    """The protocol's input views for 1, 3, 6 or 9 inputs: [25], [25, 22, 28], …"""
    if count not in INPUT_COUNTS:
        raise BadInput(f"DTU's protocol takes {', '.join(map(str, INPUT_COUNTS))} input views, not {count}")
    return TRAIN_VIEWS[:count]


@dataclass(frozen=True)
class DTU:
    root: Path

    def scan_folder(self, scan: int) -> Path:
        for name in (f"scan{scan}", f"scan{scan}_train"):
            if (self.root / "Rectified" / name).is_dir():
                return self.root / "Rectified" / name
        raise BadInput(f"No images of scan {scan} in {self.root / 'Rectified'} (scan{scan} or scan{scan}_train)")

    def image(self, scan: int, view: int) -> Path:
        path = self.scan_folder(scan) / f"rect_{view + 1:03d}_3_r5000.png"
        if not path.is_file():
            raise BadInput(f"DTU scan {scan} lacks view {view}: {path} is missing")
        return path

    @property
    def calibration_dir(self) -> Path:
        return self.root / "Calibration" / "cal18"

    def camera(self, view: int) -> np.ndarray:
        """Camera ``view``'s projection matrix, flattened row-major: [12]."""
        path = self.calibration_dir / f"pos_{view + 1:03d}.txt"
        try:
            return np.loadtxt(path).reshape(12)
        except (OSError, ValueError) as exc:
            raise BadInput(f"DTU camera {view} unreadable at {path}: {exc}") from None

    def mask(self, scan: int, view: int) -> np.ndarray | None:
        """The view's object mask in [0, 1] (H×W), or None where the protocol has none (the whole image counts)."""
        folder = self.root / "submission_data" / "idrmasks" / f"scan{scan}"
        for path in (folder / "mask" / f"{view:03d}.png", folder / f"{view:03d}.png"):
            if path.is_file():
                return unit_float(read_image(path).pixels[..., 0])
        return None


def calibration_cameras(folder: Path) -> np.ndarray:
    """Every camera of a calibration folder (``pos_*.txt``, in name order) as DTU12 numbers: [N, 12]."""
    files = sorted(folder.glob("pos_*.txt"))
    if not files:
        raise BadInput(f"No DTU calibration (pos_*.txt) in {folder}")
    try:
        return np.stack([np.loadtxt(f).reshape(12) for f in files])
    except ValueError as exc:
        raise BadInput(f"A calibration file in {folder} is not a 3×4 matrix: {exc}") from None


def write_dtu_set(dtu: DTU, scan: int, views: tuple[int, ...], out: Path) -> None:
    """A posed set of a scan's views: their images and their cal18 matrices as DTU12 numbers (for 1600×1200), with every
    calibration camera as the range its DTU-12 cameras normalise over."""
    images = [read_image(dtu.image(scan, v)).pixels for v in views]
    sizes = {im.shape[:2] for im in images}
    if len(sizes) != 1:
        raise BadInput(f"DTU scan {scan}'s views have mixed sizes")
    height, width = sizes.pop()
    entries = [{"file": f"images/{v:03d}.png", "view": v, "dtu12": dtu.camera(v).tolist()} for v in views]
    files: dict[str, Writer] = {e["file"]: png(im[..., :3]) for e, im in zip(entries, images)}
    posed = {"width": width, "height": height, "scan": scan, "images": entries}
    files[CAMERAS] = json_file({**posed, range_key(DTU12): calibration_cameras(dtu.calibration_dir).tolist()})
    write_samples(out, [files], overwrite=False)
