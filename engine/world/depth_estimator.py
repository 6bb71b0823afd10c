"""Depth for img2img when only an RGB image is given: DPT, the estimator LDM3D learned its depth from.

LDM3D's depth channel is DPT-Large's relative inverse depth, normalised to
[0, 1] (near = 1), so the same estimator gives an init depth in the model's own
terms. The model loads from a local folder or the Hugging Face cache
(``Intel/dpt-large`` by default), safetensors unless pickled weights are allowed. Like
DPT's own processor, the image is resized to the model's square input and the
prediction back to the image's size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..diffusion import sources
from ..diffusion.loading import from_pretrained


def _preprocessing(folder: Path, image_size: int) -> tuple[int, list[float], list[float]]:
    config_path = folder / "preprocessor_config.json"
    config = sources.read_json(config_path) if config_path.is_file() else {}
    size = config.get("size", image_size)
    side = int(size.get("height", image_size) if isinstance(size, dict) else size)
    return side, list(config.get("image_mean", [0.5] * 3)), list(config.get("image_std", [0.5] * 3))


@torch.inference_mode()
def estimate_disparity(rgb: np.ndarray, folder: Path, name: str, allow_pickle: bool, device: torch.device) -> np.ndarray:
    """H×W×3 RGB in [0, 1] → H×W relative inverse depth in [0, 1], near = 1."""
    from transformers import DPTForDepthEstimation

    safe = sources.inspect_transformers_model(folder, name, "dpt", allow_pickle)
    model = from_pretrained(DPTForDepthEstimation.from_pretrained, folder, name, use_safetensors=safe).to(device).eval()
    side, mean, std = _preprocessing(folder, model.config.image_size)
    height, width = rgb.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(rgb, np.float32)).permute(2, 0, 1)[None].to(device)
    x = F.interpolate(x, size=(side, side), mode="bicubic", align_corners=False)
    x = (x - torch.tensor(mean, device=device).view(1, 3, 1, 1)) / torch.tensor(std, device=device).view(1, 3, 1, 1)
    predicted = model(pixel_values=x).predicted_depth[:, None]
    predicted = F.interpolate(predicted, size=(height, width), mode="bicubic", align_corners=False)[0, 0].float()
    low, high = predicted.min(), predicted.max()
    disparity = (predicted - low) / (high - low) if high > low else torch.zeros_like(predicted)
    return disparity.cpu().numpy().astype(np.float32)
