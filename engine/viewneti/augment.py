"""The original's training augmentations, in torch alone (torchvision is not among the engine's requirements).

``LIGHT`` (its key 5, for pre-training): colour jitter 0.04 with p 0.75, Gaussian
blur (5 px, σ 0.1–0.2) with p 0.25, a resized crop of 95–105% of the area.
``STRONG`` (its key 7, for one scene or one image): the same jitter, blur with
p 0.2, a rotation of up to ±10° (p 0.75) and a resized crop of 70–130% of the
area. The rotation is torchvision's ``RandomRotation(10, fill=1)`` on the
original's 8-bit images: nearest pixels, the corners it uncovers filled with
code 1 of 255 (near black). The crop draws as torchvision's
``RandomResizedCrop`` does: up to 10 tries of an area and an aspect ratio
(log-uniform in 3/4–4/3) until the box fits in the image; if none fits, the
whole image (for a 4:3 image; else its centre cut to the nearest ratio in
range); the box is resized back to the image's size (bilinear, antialiased).
For the original's 4:3 training images that keeps the whole image unstretched
most of the time under LIGHT. Every draw comes from the caller's generator, so
a seeded run is reproducible and resumes exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..choices import AUGMENTATIONS

AUTO, STRONG, LIGHT, NONE = AUGMENTATIONS.ids  # AUTO is the training mode's: the job picks


@dataclass(frozen=True)
class Recipe:
    jitter: float = 0.04
    jitter_p: float = 0.75
    blur_p: float = 0.25
    rotate_deg: float = 0.0
    rotate_p: float = 0.0
    crop_scale: tuple[float, float] = (0.95, 1.05)


RECIPES = {LIGHT: Recipe(), STRONG: Recipe(blur_p=0.2, rotate_deg=10.0, rotate_p=0.75, crop_scale=(0.7, 1.3))}
CROP_RATIO = (3 / 4, 4 / 3)  # torchvision's default range of the crop's aspect ratio
CROP_TRIES = 10
ROTATION_FILL = 1 / 255  # fill=1 on an 8-bit image
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _uniform(low: float, high: float, g: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=g))


def _chance(p: float, g: torch.Generator) -> bool:
    return float(torch.rand((), generator=g)) < p


def _jitter(image: torch.Tensor, amount: float, g: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation and hue, each by up to ``amount``."""
    image = image * _uniform(1 - amount, 1 + amount, g)
    grey = (image * _YIQ[0, :, None, None].to(image)).sum(0, keepdim=True)
    image = (image - grey.mean()) * _uniform(1 - amount, 1 + amount, g) + grey.mean()
    grey = (image * _YIQ[0, :, None, None].to(image)).sum(0, keepdim=True)
    image = (image - grey) * _uniform(1 - amount, 1 + amount, g) + grey
    angle = 2 * math.pi * _uniform(-amount, amount, g)  # hue: a turn of the chroma plane (YIQ)
    c, s = math.cos(angle), math.sin(angle)
    turn = torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    matrix = (torch.linalg.inv(_YIQ) @ turn @ _YIQ).to(image)
    return torch.einsum("ij,jhw->ihw", matrix, image).clamp(0, 1)


def _blur(image: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    sigma = _uniform(0.1, 0.2, g)
    x = torch.arange(5, dtype=image.dtype, device=image.device) - 2
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    padded = F.pad(image[None], (2, 2, 2, 2), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, 5).repeat(3, 1, 1, 1), groups=3)
    return F.conv2d(rows, kernel.view(1, 1, 5, 1).repeat(3, 1, 1, 1), groups=3)[0]


def rotate(image: torch.Tensor, degrees: float, g: torch.Generator) -> torch.Tensor:
    """The image turned by up to ±``degrees`` about its centre (nearest pixels), uncovered corners filled near black."""
    angle = math.radians(_uniform(-degrees, degrees, g))
    _, h, w = image.shape
    c, s = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[c, -s * h / w, 0.0], [s * w / h, c, 0.0]], dtype=image.dtype, device=image.device)[None]
    grid = F.affine_grid(theta, [1, 3, h, w], align_corners=False)
    turned = F.grid_sample(image[None] - ROTATION_FILL, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0]
    return turned + ROTATION_FILL  # sampled less the fill, so what comes from outside is the fill


def crop_box(height: int, width: int, scale: tuple[float, float], g: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, box height, box width) of a resized crop, drawn as torchvision's ``RandomResizedCrop``."""
    log_low, log_high = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    for _ in range(CROP_TRIES):
        area = height * width * _uniform(*scale, g)
        ratio = math.exp(_uniform(log_low, log_high, g))
        w, h = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (), generator=g))
            return top, int(torch.randint(0, width - w + 1, (), generator=g)), h, w
    shape = width / height  # no box fitted: the whole image, or its centre at the nearest ratio in range
    h, w = height, width
    if shape < CROP_RATIO[0]:
        h = int(round(width / CROP_RATIO[0]))
    elif shape > CROP_RATIO[1]:
        w = int(round(height * CROP_RATIO[1]))
    return (height - h) // 2, (width - w) // 2, h, w


def _crop(image: torch.Tensor, scale: tuple[float, float], g: torch.Generator) -> torch.Tensor:
    _, height, width = image.shape
    top, left, h, w = crop_box(height, width, scale, g)
    patch = image[:, top : top + h, left : left + w]
    return F.interpolate(patch[None], size=(height, width), mode="bilinear", align_corners=False, antialias=True)[0]


def augment(images: torch.Tensor, recipe: str, g: torch.Generator) -> torch.Tensor:
    """Images [B, 3, H, W] in [0, 1], each augmented by its own draws; ``NONE`` returns them as they are."""
    if recipe == NONE:
        return images
    r = RECIPES[recipe]
    out = []
    for image in images:
        if _chance(r.jitter_p, g):
            image = _jitter(image, r.jitter, g)
        if _chance(r.blur_p, g):
            image = _blur(image, g)
        if r.rotate_deg and _chance(r.rotate_p, g):
            image = rotate(image, r.rotate_deg, g)
        out.append(_crop(image, r.crop_scale, g).clamp(0, 1))
    return torch.stack(out)
