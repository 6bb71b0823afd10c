"""The image metrics of ViewNeTI's evaluation, computed as the original's DTU protocol does.

Images are H×W×3 floats in [0, 1]; a mask is H×W (object = True; the protocol
thresholds its masks at > 0.01, and a view without a mask file counts whole).
PSNR comes from the squared error summed over the mask, divided by the mask's
pixel count times the channels; SSIM is scikit-image's on the masked images
(channels first, data range 1), as the original calls it. LPIPS (VGG, on the
masked images scaled to [−1, 1]) is computed where the ``lpips`` package and the
VGG-16 weights are already on this machine; nothing is downloaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import BadInput

EVAL_SIZE = (400, 300)  # width, height: predictions and ground truth are compared at this size


def _checked(prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b = np.asarray(prediction, np.float64), np.asarray(truth, np.float64)
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
        raise BadInput(f"Compared images must both be H×W×3, got {a.shape} and {b.shape}")
    m = np.ones(a.shape[:2], bool) if mask is None else np.asarray(mask) > 0.01
    if m.shape != a.shape[:2]:
        raise BadInput(f"The mask is {m.shape[1]}×{m.shape[0]}, the images {a.shape[1]}×{a.shape[0]}")
    return a, b, m


def masked_psnr(prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    a, b, m = _checked(prediction, truth, mask)
    if not m.any():
        raise BadInput("The mask is empty: nothing to compare")
    mse = float(((a - b) ** 2 * m[..., None]).sum() / (m.sum() * 3))
    return math.inf if mse == 0 else -10 * math.log10(mse)


def masked_ssim(prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    from skimage.metrics import structural_similarity

    a, b, m = _checked(prediction, truth, mask)
    keep = m[None].astype(np.float64)
    return float(structural_similarity(a.transpose(2, 0, 1) * keep, b.transpose(2, 0, 1) * keep, channel_axis=0, data_range=1.0))


VGG16_FILE = "vgg16-397923af.pth"  # torchvision's VGG-16 weights, which lpips's VGG network starts from


def lpips_scorer() -> tuple[Callable[[np.ndarray, np.ndarray, np.ndarray | None], float] | None, str]:
    """LPIPS (VGG) if it can run offline here, with a note saying which, or why not."""
    try:
        import lpips  # type: ignore[import-not-found]
        import torch
    except ImportError:
        return None, "not computed: the lpips package is not installed"
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE
    if not cached.is_file():
        return None, f"not computed: the VGG-16 weights are not in the torch cache ({cached})"
    network = lpips.LPIPS(net="vgg", verbose=False).eval()

    def score(prediction: np.ndarray, truth: np.ndarray, mask: np.ndarray | None) -> float:
        a, b, m = _checked(prediction, truth, mask)
        keep = m[..., None]
        tensors = [torch.from_numpy((x * keep * 2 - 1).transpose(2, 0, 1)[None]).float() for x in (a, b)]
        with torch.no_grad():
            return float(network(*tensors).item())

    return score, "VGG"
