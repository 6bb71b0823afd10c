"""The input image as the multi-view models want it: the object centred on white in a square of the model's size.

``auto``: an image with alpha is cut to its object, which is recentred so its
box fills :data:`FILL` of the square, then composited on white. An image
without alpha whose border is one uniform colour uses that colour as the
background. Anything else is refused with a suggestion. ``none``: composite an
RGBA image on white and resize only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..choices import IMAGE_PREPARATIONS
from ..errors import BadInput
from ..imagefiles import resize

FILL = 0.8  # the object's box fills this much of the square (as ImageDream's and LGM's examples do)
MIN_SIDE = 64
BORDER_TOLERANCE = 8 / 255  # a border colour may vary this much and still count as one background colour
ALPHA_THRESHOLD = 0.5  # object pixels: alpha above this


@dataclass
class Prepared:
    rgb: np.ndarray  # size × size × 3 float32 in [0, 1], object on white
    mask: np.ndarray  # size × size bool: the object (where it is known)
    how: str  # what was done, for meta.json


def prepare(pixels: np.ndarray, size: int = 256, preparation: str = "AUTO") -> Prepared:
    """``pixels``: H×W×3 or H×W×4, uint8/uint16 or float in [0, 1] (straight, not premultiplied alpha)."""
    IMAGE_PREPARATIONS.get(preparation)
    image = _as_float(pixels)
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise BadInput(f"The image is {width}×{height}; it needs at least {MIN_SIDE} pixels on each side")
    if preparation == "NONE":
        alpha = image[..., 3] if image.shape[2] == 4 else np.ones((height, width), np.float32)
        rgb = _on_white(image[..., :3], alpha)
        square = resize(rgb, size, size)
        mask = resize(alpha[..., None], size, size)[..., 0] > ALPHA_THRESHOLD
        return Prepared(np.clip(square, 0, 1), mask, "none: on white, resized")
    if image.shape[2] == 4:
        alpha, how = image[..., 3], "auto: cut out by alpha"
    else:
        alpha, how = _alpha_from_border(image), "auto: cut out by the uniform border colour"
    return _centred(image[..., :3], alpha, size, how)


def _as_float(pixels: np.ndarray) -> np.ndarray:
    image = np.asarray(pixels)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise BadInput(f"Expected an RGB or RGBA image (H×W×3 or H×W×4), got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535
    image = image.astype(np.float32)
    if not np.isfinite(image).all():
        raise BadInput("The image has NaN or infinite values")
    return np.clip(image, 0, 1)


def _alpha_from_border(rgb: np.ndarray) -> np.ndarray:
    """Alpha from a uniform border colour: 1 where a pixel differs from it, else 0."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    colour = np.median(border, axis=0)
    if np.abs(border - colour).max() > BORDER_TOLERANCE:
        raise BadInput(
            "The image has no transparency and no uniform background to cut the object from: use an image with alpha (a PNG with transparency)"
        )
    return (np.abs(rgb - colour).max(axis=2) > BORDER_TOLERANCE).astype(np.float32)


def _on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return rgb * alpha[..., None] + (1 - alpha[..., None])


def _centred(rgb: np.ndarray, alpha: np.ndarray, size: int, how: str) -> Prepared:
    """Crop to the object's box, put it in a white square whose side it fills to FILL, resize to ``size``."""
    rows, cols = np.nonzero(alpha > ALPHA_THRESHOLD)
    if len(rows) == 0:
        raise BadInput("The image has no object: it is all transparent (or all background)")
    if len(rows) == alpha.size:
        raise BadInput("The image is all object, with no background around it: use an image with transparency")
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    box_h, box_w = bottom - top, right - left
    side = int(np.ceil(max(box_h, box_w) / FILL))
    canvas = np.ones((side, side, 3), np.float32)
    canvas_alpha = np.zeros((side, side), np.float32)
    y, x = (side - box_h) // 2, (side - box_w) // 2
    crop_alpha = alpha[top:bottom, left:right]
    canvas[y : y + box_h, x : x + box_w] = _on_white(rgb[top:bottom, left:right], crop_alpha)
    canvas_alpha[y : y + box_h, x : x + box_w] = crop_alpha
    square = np.clip(resize(canvas, size, size), 0, 1)
    mask = resize(canvas_alpha[..., None], size, size)[..., 0] > ALPHA_THRESHOLD
    return Prepared(square, mask, how)
