"""ViewNeTI's training augmentations: reproducible from the generator, in range, white fill, and off when asked."""

import pytest

torch = pytest.importorskip("torch")

from engine.viewneti.augment import LIGHT, NONE, STRONG, augment  # noqa: E402


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


def test_a_white_image_stays_white_through_rotations_and_crops_but_for_the_colour_jitter():
    white = torch.ones(4, 3, 32, 32)
    out = augment(white, STRONG, torch.Generator().manual_seed(2))
    assert out.min() > 0.9, "rotations fill with white; only the ±4% jitter darkens it"
