"""The K-fold consistency filter on small synthetic sets (CPU, small CNN, seconds).

A trivially learnable set stands in for generated images: each image's colour
encodes its azimuth bin, so a held-out classifier can tell when the recorded
pose disagrees with the picture.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.dst import kcf  # noqa: E402
from engine.errors import BadInput, JobCancelled  # noqa: E402
from engine.progress import CancelToken, Reporter  # noqa: E402

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("one_torch_thread")]
FAST = dict(epochs=2, batch_size=8, image_size=32, device="CPU", backbone="small")


def random_set(count: int = 20, size: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]
    poses = np.stack([rng.uniform(0, 360, count), rng.uniform(-90, 90, count), rng.uniform(-180, 180, count)], axis=1)
    return images, poses


def colour_set(corrupt: list[int], per_bin: int = 10, size: int = 16):
    """Four colours, one per azimuth bin; the ``corrupt`` images record the opposite azimuth."""
    rng = np.random.default_rng(1)
    colours = np.array([[230, 30, 30], [30, 230, 30], [30, 30, 230], [230, 230, 30]])
    images, poses = [], []
    for c, b in enumerate((0, 10, 20, 30)):
        for _ in range(per_bin):
            images.append(np.clip(colours[c] + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8))
            poses.append([b * 360 / kcf.NUM_BINS, 0.0, 0.0])
    poses = np.array(poses)
    poses[corrupt, 0] = (poses[corrupt, 0] + 180) % 360
    return images, poses


def test_pose_bins_edges():
    width = 360 / 41
    poses = np.array(
        [
            [0, 0, 0],
            [359.9, -90, -0.1],
            [width / 2 + 0.01, 90, 170],
            [360 + width, 1, -170],
            [-width, -2.3, width],
        ]
    )
    np.testing.assert_array_equal(
        kcf.pose_bins(poses),
        [[0, 20, 0], [0, 0, 0], [1, 40, 19], [1, 20, 22], [40, 19, 1]],
    )
    assert kcf.pose_bins(np.random.default_rng(0).uniform(-720, 720, (500, 3))).max() == 40
    with pytest.raises(BadInput, match="N×3"):
        kcf.pose_bins(np.zeros((3, 2)))


def test_one_score_per_image_and_the_same_on_repeat():
    images, poses = random_set()
    events = []
    a = kcf.kcf_scores(images, poses, report=Reporter(events.append, CancelToken(), 10), **FAST)
    assert a.shape == (20,) and np.isfinite(a).all() and (a > 0).all()
    np.testing.assert_array_equal(a, kcf.kcf_scores(images, poses, **FAST))
    assert not np.array_equal(a, kcf.kcf_scores(images, poses, **{**FAST, "seed": 1}))
    assert [e.message for e in events][:3] == ["Fold 1 of 5: epoch 1 of 2", "Fold 1 of 5: epoch 2 of 2", "Fold 2 of 5: epoch 1 of 2"]
    assert len(events) == 10


def test_folds_partition_the_set():
    folds = kcf.fold_assignment(23, 5, seed=3)
    assert sorted(np.bincount(folds)) == [4, 4, 5, 5, 5]
    np.testing.assert_array_equal(folds, kcf.fold_assignment(23, 5, seed=3))
    assert not np.array_equal(folds, kcf.fold_assignment(23, 5, seed=4))
    with pytest.raises(BadInput, match="2 ≤ folds ≤ images"):
        kcf.fold_assignment(3, 5, 0)


def test_each_fold_is_scored_by_a_classifier_that_never_saw_it(monkeypatch):
    images, poses = random_set(count=10)
    seen = []
    original = kcf._train
    monkeypatch.setattr(kcf, "_train", lambda model, pixels, *a: (seen.append(pixels.clone()), original(model, pixels, *a)))
    kcf.kcf_scores(images, poses, folds=5, **{**FAST, "epochs": 1})
    folds = kcf.fold_assignment(10, 5, 0)
    everything = torch.stack([torch.from_numpy(im).permute(2, 0, 1) for im in images])
    for fold, trained in enumerate(seen):
        expected = everything[torch.from_numpy(folds != fold)]
        assert torch.equal(trained, expected)


def test_the_requested_fraction_is_selected_worst_first():
    scores = np.array([0.5, 3.0, 1.0, 3.0, 0.1, 2.0, 0.2, 0.3])
    np.testing.assert_array_equal(kcf.select_rejected(scores, 0.25), [1, 3])  # tie: lower index first
    np.testing.assert_array_equal(kcf.select_rejected(scores, 0.5), [1, 3, 5, 2])
    assert len(kcf.select_rejected(scores, 0.0)) == 0 and len(kcf.select_rejected(scores, 1.0)) == 8
    assert len(kcf.select_rejected(np.zeros(10), 0.15)) == 2  # 1.5 rounds half up
    with pytest.raises(BadInput, match="between 0 and 1"):
        kcf.select_rejected(scores, 1.5)


def test_images_with_a_corrupted_pose_score_worse():
    corrupt = [0, 13, 26, 39]
    images, poses = colour_set(corrupt)
    scores = kcf.kcf_scores(images, poses, epochs=8, batch_size=8, image_size=16, device="CPU")
    clean = np.delete(scores, corrupt)
    assert scores[corrupt].mean() > 3 * clean.mean()
    assert set(kcf.select_rejected(scores, 0.1)) == set(corrupt)


def test_cancel_stops_between_batches():
    images, poses = random_set()
    token = CancelToken()
    token.cancel()
    with pytest.raises(JobCancelled):
        kcf.kcf_scores(images, poses, report=Reporter(lambda p: None, token), **FAST)


def test_images_from_files_and_bad_inputs(tmp_path):
    from PIL import Image

    images, poses = random_set(count=6, size=40)
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image).save(paths[-1])
    from_files = kcf.kcf_scores(paths, poses, folds=3, **FAST)
    np.testing.assert_array_equal(from_files, kcf.kcf_scores(images, poses, folds=3, **FAST))
    with pytest.raises(BadInput, match="6 images but 5 poses"):
        kcf.kcf_scores(images, poses[:5], **FAST)
    with pytest.raises(BadInput, match="Unknown backbone"):
        kcf.kcf_scores(images, poses, folds=3, **{**FAST, "backbone": "vit"})
    with pytest.raises(BadInput, match="Cannot read image"):
        kcf.kcf_scores([tmp_path / "missing.png"] * 6, poses, folds=3, **FAST)


def test_resnet50_backbone_when_torchvision_is_present():
    pytest.importorskip("torchvision")
    images, poses = random_set(count=6)
    scores = kcf.kcf_scores(images, poses, folds=2, **{**FAST, "epochs": 1, "backbone": "resnet50"})
    assert scores.shape == (6,) and np.isfinite(scores).all()
