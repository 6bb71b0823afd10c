"""ViewNeTI's evaluation metrics: masked PSNR and SSIM as the original's DTU protocol computes them."""

import math

import numpy as np
import pytest

from engine.errors import BadInput
from engine.viewneti.metrics import masked_psnr, masked_ssim


def test_psnr_counts_only_the_masked_pixels():
    truth = np.full((30, 40, 3), 0.5)
    prediction = truth.copy()
    prediction[:, :20] += 0.1  # wrong on the left half only
    mask = np.zeros((30, 40))
    mask[:, 20:] = 1.0
    assert masked_psnr(prediction, truth, mask) == math.inf, "the error lies outside the mask"
    assert masked_psnr(prediction, truth) == pytest.approx(-10 * math.log10(0.01 / 2))
    mask[:, :] = 1.0
    assert masked_psnr(prediction, truth, mask) == pytest.approx(-10 * math.log10(0.005))


def test_ssim_is_one_for_equal_images_and_lower_for_noisy_ones():
    pytest.importorskip("skimage")
    rng = np.random.default_rng(0)
    truth = rng.random((48, 64, 3))
    assert masked_ssim(truth, truth) == pytest.approx(1.0)
    noisy = np.clip(truth + rng.normal(0, 0.2, truth.shape), 0, 1)
    assert masked_ssim(noisy, truth) < 0.9


def test_mismatched_sizes_and_empty_masks_are_refused():
    a = np.zeros((10, 10, 3))
    with pytest.raises(BadInput, match="both be H×W×3"):
        masked_psnr(a, np.zeros((10, 12, 3)))
    with pytest.raises(BadInput, match="empty"):
        masked_psnr(a, a, np.zeros((10, 10)))
