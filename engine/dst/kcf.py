"""K-fold consistency filter (KCF): find generated images that probably do not show their intended pose.

3D-DST's generator sometimes ignores the edge map at uncommon viewpoints (a
car from below comes out from the side). KCF splits the images into K folds;
for each fold a pose classifier is trained on the other folds and scores the
held-out images by the summed cross-entropy of its three heads (azimuth,
elevation, in-plane rotation) against the pose each image was generated with.
An image the others' classifier cannot reconcile with its pose scores high;
the worst fraction is then dropped. The classifier is ResNet-50 (torchvision,
random init unless local weights are given; nothing is downloaded) or, on the
CPU or without torchvision, a small CNN. Training follows 3D-DST (SGD 0.01,
momentum 0.9, weight decay 1e-4, ×0.1 every 50 epochs); every setting is a
parameter. Deterministic for a seed on the CPU.

Pose bins (41 per angle, as 3D-DST's classifier):
- azimuth and in-plane rotation are cyclic: bins of 360/41° with bin 0 centred
  on 0°, so 359° and 1° share a bin (in-plane is read over [−180°, 180°), the
  same thing);
- elevation (degrees above the horizon, 90° − polar angle) over [−90°, 90°]:
  bins of 180/41°, clamped at the poles, the middle bin (20) centred on 0°.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..choices import KCF_BACKBONES
from ..errors import BadInput
from ..progress import CancelToken, Reporter

NUM_BINS = 41
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
ImageInput = np.ndarray | str | Path


def pose_bins(poses: np.ndarray, bins: int = NUM_BINS) -> np.ndarray:
    """N×3 degrees (azimuth, elevation, in-plane) → N×3 bin indices (see the module notes for the edges)."""
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 2 or poses.shape[1] != 3 or not np.isfinite(poses).all():
        raise BadInput(f"Poses must be N×3 finite degrees (azimuth, elevation, in-plane), got shape {poses.shape}")
    cyclic_width = 360.0 / bins
    cyclic = np.floor(np.mod(poses[:, [0, 2]] + cyclic_width / 2, 360.0) / cyclic_width).astype(np.int64) % bins
    elevation = np.floor((np.clip(poses[:, 1], -90.0, 90.0) + 90.0) / (180.0 / bins)).astype(np.int64)
    return np.stack([cyclic[:, 0], np.minimum(elevation, bins - 1), cyclic[:, 1]], axis=1)


def fold_assignment(count: int, folds: int, seed: int) -> np.ndarray:
    """Each image's fold (0 … folds − 1): a seeded shuffle dealt round-robin, so fold sizes differ by at most one."""
    if not 2 <= folds <= count:
        raise BadInput(f"K-fold filtering needs 2 ≤ folds ≤ images, got {folds} folds for {count} images")
    order = np.random.default_rng(seed).permutation(count)
    assignment = np.empty(count, np.int64)
    assignment[order] = np.arange(count) % folds
    return assignment


def select_rejected(scores: np.ndarray, fraction: float) -> np.ndarray:
    """The indices of the worst (highest-scoring) ``fraction`` of images, worst first; ties by lower index.

    The count is ``fraction × N`` rounded half up.
    """
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 1 or not np.isfinite(scores).all():
        raise BadInput("KCF scores must be a finite 1-D array")
    if not 0.0 <= fraction <= 1.0:
        raise BadInput(f"The rejected fraction must be between 0 and 1, got {fraction}")
    count = math.floor(fraction * len(scores) + 0.5)
    order = np.lexsort((np.arange(len(scores)), -scores))
    return order[:count]


def _load_rgb(image: ImageInput, size: int) -> np.ndarray:
    """An image (array or file) as size×size×3 uint8."""
    from PIL import Image

    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as opened:
                pil = opened.convert("RGB")
        except OSError as exc:
            raise BadInput(f"Cannot read image {image}: {exc}") from None
    else:
        array = np.asarray(image)
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        if array.ndim != 3 or array.shape[2] not in (3, 4):
            raise BadInput(f"Images must be H×W×3 (uint8, or float in [0, 1]), got shape {array.shape}")
        if array.dtype != np.uint8:
            array = np.round(np.clip(array.astype(np.float64), 0, 1) * 255)
        pil = Image.fromarray(array[..., :3].astype(np.uint8))
    if pil.size != (size, size):
        pil = pil.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(pil, np.uint8)


def _small_cnn(outputs: int) -> Any:
    """Four conv–norm–ReLU–pool stages and a linear layer: enough to check poses on small sets, fast on a CPU."""
    from torch import nn

    layers: list[Any] = []
    channels = 3
    for width in (16, 32, 64, 128):
        layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
        channels = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, outputs))


def _resnet50(outputs: int, weights: str, allow_pickle: bool) -> Any:
    """torchvision's ResNet-50 with one linear layer for the three heads; local backbone weights if given."""
    import torch
    from torch import nn
    from torchvision.models import resnet50

    model = resnet50(weights=None)
    if weights:
        path = Path(weights).expanduser()
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        elif allow_pickle:
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise BadInput(f"{path} is not a .safetensors file; pickled weights load only when allowed")
        model.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False)
    model.fc = nn.Linear(model.fc.in_features, outputs)
    return model


def _pick_backbone(backbone: str, device: Any) -> str:
    KCF_BACKBONES.get(backbone)  # BadInput naming the backbones there are
    try:
        import torchvision  # noqa: F401

        have_torchvision = True
    except ImportError:
        have_torchvision = False
    if backbone == "resnet50" and not have_torchvision:
        raise BadInput("The ResNet-50 backbone needs torchvision in the engine's Python (or choose the small backbone)")
    if backbone == "auto":
        return "resnet50" if have_torchvision and device.type == "cuda" else "small"
    return backbone


def kcf_scores(
    images: Sequence[ImageInput],
    poses: np.ndarray,
    folds: int = 5,
    seed: int = 0,
    backbone: str = "auto",
    epochs: int = 150,
    batch_size: int = 32,
    image_size: int = 256,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    lr_step: int = 50,
    lr_gamma: float = 0.1,
    device: str = "AUTO",
    weights: str = "",
    allow_pickle: bool = False,
    report: Reporter | None = None,
    only_folds: Sequence[int] | None = None,
) -> np.ndarray:
    """Each image's KCF score (N,): summed cross-entropy of the held-out classifier against its pose; high = suspect.

    Progress is reported once per fold and epoch; a cancel stops between batches.
    ``only_folds`` runs just those folds (a shard's share); the other images score NaN.
    """
    import torch

    from ..diffusion.loading import pick_device

    report = report or Reporter(lambda p: None, CancelToken())
    labels = pose_bins(poses)
    if len(images) != len(labels):
        raise BadInput(f"{len(images)} images but {len(labels)} poses")
    if epochs < 1 or batch_size < 2 or image_size < 8:
        raise BadInput(f"Need epochs ≥ 1, batch size ≥ 2 and image size ≥ 8 (got {epochs}, {batch_size}, {image_size})")
    assignment = fold_assignment(len(labels), folds, seed)
    compute = pick_device(device)
    kind = _pick_backbone(backbone, compute)
    pixels = torch.from_numpy(np.stack([_load_rgb(image, image_size) for image in images])).permute(0, 3, 1, 2)
    targets = torch.from_numpy(labels)
    scores = np.full(len(labels), np.nan)
    with torch.random.fork_rng(devices=[]):
        for fold in range(folds) if only_folds is None else sorted(set(only_folds)):
            held = np.flatnonzero(assignment == fold)
            train = np.flatnonzero(assignment != fold)
            torch.manual_seed(seed * 1000 + fold)
            model = _small_cnn(3 * NUM_BINS) if kind == "small" else _resnet50(3 * NUM_BINS, weights, allow_pickle)
            model = model.to(compute)
            settings = dict(
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                momentum=momentum,
                weight_decay=weight_decay,
                lr_step=lr_step,
                lr_gamma=lr_gamma,
            )
            _train(model, pixels[train], targets[train], settings, compute, report, f"Fold {fold + 1} of {folds}")
            scores[held] = _score(model, pixels[held], targets[held], batch_size, compute, report)
    return scores


def _normalise(batch: Any, device: Any) -> Any:
    import torch

    x = batch.to(device=device, dtype=torch.float32) / 255.0
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def _head_losses(model: Any, x: Any, y: Any) -> Any:
    """Per image: the three heads' cross-entropies, summed."""
    import torch.nn.functional as F

    logits = model(x).view(len(x), 3, NUM_BINS)
    return F.cross_entropy(logits.reshape(-1, NUM_BINS), y.reshape(-1), reduction="none").view(len(x), 3).sum(dim=1)


def _batches(count: int, batch_size: int, order: Any) -> list[Any]:
    """Near-equal batches of at most ``batch_size`` (never a lone image, which batch norm cannot train on)."""
    import torch

    return list(torch.tensor_split(order, max(1, min(math.ceil(count / batch_size), count // 2))))


def _train(model: Any, pixels: Any, targets: Any, s: dict[str, Any], device: Any, report: Reporter, label: str) -> None:
    import torch

    if len(pixels) < 2:
        raise BadInput("Each fold's classifier needs at least two training images: use fewer folds or more images")
    optimiser = torch.optim.SGD(model.parameters(), lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"])
    schedule = torch.optim.lr_scheduler.StepLR(optimiser, step_size=s["lr_step"], gamma=s["lr_gamma"])
    model.train()
    for epoch in range(s["epochs"]):
        order = torch.randperm(len(pixels))
        for batch in _batches(len(pixels), s["batch_size"], order):
            report.token.check()
            loss = _head_losses(model, _normalise(pixels[batch], device), targets[batch].to(device)).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        schedule.step()
        report.step(f"{label}: epoch {epoch + 1} of {s['epochs']}")


def _score(model: Any, pixels: Any, targets: Any, batch_size: int, device: Any, report: Reporter) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(pixels), batch_size):
            report.token.check()
            x = _normalise(pixels[start : start + batch_size], device)
            out.append(_head_losses(model, x, targets[start : start + batch_size].to(device)).double().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)
