"""Our multi-view UNet: the published checkpoints' exact keys and shapes, strict loading, and the joint attention's symmetry.

The full-size key list (tests/engine/data/imagedream-unet-keys.txt) is the
ImageDream port's state dict, name and shape per line, as enumerated in the
project's fact sheet (its safetensors header reproduces the published file
size to the byte). The UNet is built on the meta device to compare it, so no
3.7 GB of weights are allocated.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from safetensors.torch import load_file, save_file  # noqa: E402
from tiny_clip import published  # noqa: E402
from tiny_multiview import IMAGEDREAM_MODEL, TINY_UNET, build_tiny_multiview  # noqa: E402

from engine.errors import BadInput  # noqa: E402
from engine.multiview.cameras import model_cameras  # noqa: E402
from engine.multiview.model import IMAGEDREAM, MVDREAM, inspect_multiview, load_multiview, load_unet  # noqa: E402
from engine.multiview.unet import MultiViewConfig, MultiViewUNet  # noqa: E402

pytestmark = pytest.mark.timeout(300)
KEYS = Path(__file__).parent / "data" / "imagedream-unet-keys.txt"
PUBLISHED = published(IMAGEDREAM_MODEL)["unet"]  # ashawkey/imagedream-ipmv-diffusers' (MVDream's is the same without ip_dim)


def full_size(config: dict) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        unet = MultiViewUNet(MultiViewConfig.from_json(config))
    return {k: tuple(v.shape) for k, v in unet.state_dict().items()}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {IMAGEDREAM: build_tiny_multiview(root / "imagedream", image=True), MVDREAM: build_tiny_multiview(root / "mvdream", image=False)}


def test_our_unet_has_exactly_the_published_imagedream_keys_and_shapes():
    published = {}
    for line in KEYS.read_text().splitlines():
        name, shape = line.split(" ", 1)
        published[name] = tuple(json.loads(shape))
    ours = full_size(PUBLISHED)
    assert list(ours) == list(published), "the same names, in the published order"
    assert ours == published
    assert sum(int(np.prod(s)) for s in ours.values()) == 941_672_900


def test_without_the_image_prompt_it_is_stable_diffusion_2_1s_unet_plus_the_camera_mlp():
    ours = full_size({k: v for k, v in PUBLISHED.items() if k != "ip_dim"})
    assert not any(k.startswith("image_embed.") or "_ip." in k for k in ours)
    camera = sum(int(np.prod(s)) for k, s in ours.items() if k.startswith("camera_embed."))
    assert len(ours) == 686 + 4 and sum(int(np.prod(s)) for s in ours.values()) - camera == 865_910_724


def test_both_tiny_checkpoints_load_strictly_through_our_loader_without_running_the_repos_code(models):
    for kind, folder in models.items():
        checked = inspect_multiview(folder, kind)
        assert checked.kind == kind and checked.takes_image == (kind == IMAGEDREAM)
        model = load_multiview(checked, torch.device("cpu"), torch.float32)
        published = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
        loaded = model.unet.state_dict()
        assert set(loaded) == set(published)
        assert all(torch.equal(loaded[k], published[k]) for k in published)
        assert (model.image_encoder is None) == (kind == MVDREAM)


def test_a_missing_or_misshapen_key_is_refused_with_its_name(models, tmp_path):
    for change, expected in [
        (lambda w: w.pop("out.2.bias"), r"missing: out\.2\.bias"),
        (lambda w: w.update({"time_embed.0.bias": torch.zeros(3)}), r"misshapen: time_embed\.0\.bias \(3,\) \(expected \(128,\)\)"),
        (lambda w: w.update({"extra.weight": torch.zeros(1)}), r"unexpected: extra\.weight"),
    ]:
        folder = tmp_path / "broken"
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(models[IMAGEDREAM], folder)
        weights = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
        change(weights)
        save_file(weights, folder / "unet" / "diffusion_pytorch_model.safetensors")
        with pytest.raises(BadInput, match=expected):
            load_unet(inspect_multiview(folder), torch.float32)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"use_linear_in_transformer": True}, "does not know: use_linear_in_transformer"),
        ({"use_scale_shift_norm": True}, "does not implement: use_scale_shift_norm=True"),
        ({"model_channels": 40}, "multiples of 32"),
        ({"_class_name": "UNet2DConditionModel"}, "a Stable Diffusion UNet, not a multi-view one"),
    ],
)
def test_a_unet_config_we_cannot_honour_is_refused_before_any_weights_load(models, tmp_path, change, message):
    folder = tmp_path / "model"
    shutil.copytree(models[MVDREAM], folder)
    config = {**TINY_UNET, **change}
    (folder / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(BadInput, match=message):
        inspect_multiview(folder)


def test_an_imagedream_model_without_its_image_encoder_and_pickled_weights_are_refused(models, tmp_path):
    folder = tmp_path / "no-encoder"
    shutil.copytree(models[IMAGEDREAM], folder)
    shutil.rmtree(folder / "image_encoder")
    with pytest.raises(BadInput, match="ImageDream model .* has no image_encoder"):
        inspect_multiview(folder)
    pickled = tmp_path / "pickled"
    shutil.copytree(models[MVDREAM], pickled)
    weights = pickled / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), pickled / "unet" / "diffusion_pytorch_model.bin")
    weights.unlink()
    with pytest.raises(BadInput, match="pickled"):
        inspect_multiview(pickled)
    allowed = inspect_multiview(pickled, allow_pickle=True)
    assert not allowed.safetensors["unet"] and load_unet(allowed, torch.float32) is not None


def test_rolling_the_four_views_with_their_cameras_rolls_the_outputs(models):
    """Joint attention sees the frames as a set: only the cameras tell them apart."""
    model = load_multiview(inspect_multiview(models[IMAGEDREAM]), torch.device("cpu"), torch.float32)
    unet, g = model.unet, torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, 8, 8, generator=g)
    tokens = unet.image_tokens(torch.randn(1, 17, 48, generator=g))
    context = torch.cat([torch.randn(1, 77, 32, generator=g), tokens], dim=1).expand(5, -1, -1)
    camera = torch.from_numpy(model_cameras(10.0))
    image = torch.randn(1, 4, 8, 8, generator=g)
    order = [1, 2, 3, 0, 4]  # the image frame stays last
    with torch.inference_mode():
        out = unet(x, 500, context, return_dict=False, camera=camera, num_frames=5, image_latent=image)[0]
        rolled = unet(x[order], 500, context, return_dict=False, camera=camera[order], num_frames=5, image_latent=image)[0]
    torch.testing.assert_close(rolled, out[order], atol=1e-5, rtol=1e-4)
    with torch.inference_mode():  # and the cameras matter: the same frames under other cameras give other outputs
        moved = unet(x[order], 500, context, return_dict=False, camera=camera, num_frames=5, image_latent=image)[0]
    assert not torch.allclose(moved, out[order], atol=1e-3)
