"""ViewNeTI's training augmentations: reproducible from the generator, in range, the original's near-black rotation fill,
off when asked, and a resized crop drawn as torchvision's (compared with its algorithm written plainly, over 10,000 draws)."""

import math
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.viewneti.augment import CROP_RATIO, CROP_TRIES, LIGHT, NONE, RECIPES, ROTATION_FILL, STRONG, augment, crop_box, rotate  # noqa: E402

DRAWS = 10_000
HEIGHT, WIDTH = 384, 512  # the original's training images (its dtu_preprocess_key 1)


def images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, 3, 48, 64, generator=g)


def test_the_same_generator_state_gives_the_same_augmentation_and_another_gives_another():
    a = augment(images(), STRONG, torch.Generator().manual_seed(5))
    b = augment(images(), STRONG, torch.Generator().manual_seed(5))
    c = augment(images(), STRONG, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (3, 3, 48, 64) and a.min() >= 0 and a.max() <= 1


def test_none_leaves_the_images_alone_and_light_changes_them_little():
    ramp = torch.linspace(0, 1, 64)
    x = torch.stack([ramp.expand(48, 64), ramp.flip(0).expand(48, 64), torch.full((48, 64), 0.5)])[None].repeat(3, 1, 1, 1)
    assert augment(x, NONE, torch.Generator()) is x
    light = augment(x, LIGHT, torch.Generator().manual_seed(1))
    assert 0 < (light - x).abs().mean() < 0.2


def test_a_rotation_fills_the_corners_it_uncovers_near_black_as_fill_1_on_the_originals_8_bit_images():
    white = torch.ones(3, 48, 64)
    turned = rotate(white, 10.0, torch.Generator().manual_seed(1))  # about 5°
    corners = torch.stack([turned[:, 0, 0], turned[:, 0, -1], turned[:, -1, 0], turned[:, -1, -1]])
    assert ROTATION_FILL == 1 / 255 and (corners == ROTATION_FILL).any(), "a corner comes from outside the image"
    assert ((turned == 1) | torch.isclose(turned, torch.tensor(ROTATION_FILL))).all(), "nearest pixels: no blend of the two"
    assert (turned[:, 16:32, 24:40] == 1).all(), "the middle stays"


def torchvision_boxes(height: int, width: int, scale: tuple[float, float], rng: random.Random) -> list[tuple[int, int, int, int]]:
    """``RandomResizedCrop.get_params`` as torchvision writes it, with Python's random: the reference distribution."""
    boxes = []
    for _ in range(DRAWS):
        for _ in range(CROP_TRIES):
            area = height * width * rng.uniform(*scale)
            ratio = math.exp(rng.uniform(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
            w, h = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
            if 0 < w <= width and 0 < h <= height:
                boxes.append((rng.randint(0, height - h), rng.randint(0, width - w), h, w))
                break
        else:  # a 4:3 image is within the ratios: the whole image
            boxes.append((0, 0, height, width))
    return boxes


def features(boxes: list[tuple[int, int, int, int]]) -> dict[str, np.ndarray]:
    """Per box: whether it is the whole image, its stretch (aspect change when resized back), its area share, where it sits."""
    top, left, h, w = np.asarray(boxes, np.float64).T
    shrunk = w < WIDTH
    return {
        "whole": (h == HEIGHT) & (w == WIDTH),
        "stretch": np.maximum(w / h / (WIDTH / HEIGHT), h / w * (WIDTH / HEIGHT)),
        "area": h * w / (HEIGHT * WIDTH),
        "placement": left[shrunk] / (WIDTH - w[shrunk]),
    }


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov–Smirnov statistic: the largest gap between the empirical distribution functions."""
    points = np.concatenate([a, b])
    gap = np.searchsorted(np.sort(a), points, side="right") / len(a) - np.searchsorted(np.sort(b), points, side="right") / len(b)
    return float(np.abs(gap).max())


@pytest.mark.parametrize("recipe", [LIGHT, STRONG])
def test_the_resized_crop_draws_as_torchvisions_over_10000_draws_within_sampling_error(recipe):
    scale = RECIPES[recipe].crop_scale
    g = torch.Generator().manual_seed(7)
    ours = features([crop_box(HEIGHT, WIDTH, scale, g) for _ in range(DRAWS)])
    theirs = features(torchvision_boxes(HEIGHT, WIDTH, scale, random.Random(7)))
    p = (ours["whole"].mean() + theirs["whole"].mean()) / 2
    assert abs(ours["whole"].mean() - theirs["whole"].mean()) < 4 * math.sqrt(p * (1 - p) * 2 / DRAWS)
    for name in ("stretch", "area", "placement"):  # two-sample KS at the 0.1% level (ties only make it stricter)
        n, m = len(ours[name]), len(theirs[name])
        assert ks_statistic(ours[name], theirs[name]) < 1.95 * math.sqrt((n + m) / (n * m)), name
    if recipe == LIGHT:  # the original's pre-training: mostly the whole image, never stretched by more than about 5%
        assert ours["whole"].mean() > 0.7 and ours["stretch"].max() < 1.06
    else:
        assert 0.15 < ours["whole"].mean() < 0.25 and 0.2 < (ours["stretch"] > 1.15).mean() < 0.35


def test_a_box_always_fits_and_an_image_outside_the_ratios_falls_back_to_its_centre():
    g = torch.Generator().manual_seed(0)
    for height, width in [(48, 64), (64, 48), (30, 200), (200, 30)]:
        for _ in range(200):
            top, left, h, w = crop_box(height, width, (0.7, 1.3), g)
            assert h > 0 and w > 0 and top >= 0 and left >= 0 and top + h <= height and left + w <= width
    assert crop_box(30, 200, (5.0, 6.0), g) == (0, 80, 30, 40)  # nothing fits: the centre, cut to 4:3
    assert crop_box(200, 30, (5.0, 6.0), g) == (80, 0, 40, 30)  # … or 3:4
