"""LDM3D inpainting of a layered world's hidden background, on tiny random LDM3D models in the published layout.

Random weights paint noise, so these tests check the mechanics: the known region kept at every step whatever the model
predicts, a VAE round trip where nothing is filled, longitude wrap, the filled depth behind its occluder, the job's
refusals and its determinism.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from test_layers import box_in_a_room, room  # noqa: E402
from test_ldm3d import load, quiet  # noqa: E402
from tiny_ldm3d import build_tiny_ldm3d  # noqa: E402

from engine.diffusion import core, loading  # noqa: E402
from engine.errors import BadInput  # noqa: E402
from engine.jobs import run_job  # noqa: E402
from engine.params import validate  # noqa: E402
from engine.progress import CancelToken  # noqa: E402
from engine.world import inpaint  # noqa: E402
from engine.world import ldm3d_pipeline as pipeline  # noqa: E402
from engine.world.layers import BEHIND, peel  # noqa: E402
from engine.world.world_sphere import WorldSphereRequest  # noqa: E402

pytestmark = pytest.mark.timeout(300)
CPU = torch.device("cpu")
H, W = 32, 64


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        4: build_tiny_ldm3d(root / "tiny-ldm3d-4c", vae_channels=4),
        6: build_tiny_ldm3d(root / "tiny-ldm3d", vae_channels=6, seed=1),
        3: build_tiny_ldm3d(root / "tiny-sd", vae_channels=3, seed=2),
    }


def panorama(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (H, W, 3)).astype(np.float32), rng.uniform(0.05, 1, (H, W)).astype(np.float32)


def hole(rows=slice(8, 20), cols=slice(20, 36)) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[rows, cols] = True
    return mask


def settings(fill: np.ndarray | None, **kw) -> pipeline.RGBDSettings:
    rgb, disparity = kw.pop("image", panorama())
    base = dict(prompts=["a room"], negatives=[""], seeds=[5], width=W, height=H, steps=4, guidance=5.0, seamless=True)
    return pipeline.RGBDSettings(**{**base, "init_rgb": rgb, "init_disparity": disparity, "fill": fill, **kw})


def round_trip(model, rgb: np.ndarray, disparity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The input through the VAE alone (encode's mode, decode), as the pipeline wraps it."""
    vae, factor = model.vae, model.folder.vae_scale_factor
    with torch.inference_mode():
        x = pipeline.pack_rgbd(rgb, disparity, model.folder.kind)
        z = pipeline.through_vae(lambda x: vae.encode(x).latent_dist.mode(), x, vae, True, 1 / factor)
        decoded = pipeline.through_vae(lambda z: vae.decode(z, return_dict=False)[0], z, vae, True, factor)
    back_rgb, back_disparity, _ = pipeline.unpack_rgbd(decoded, model.folder.kind)
    return back_rgb[0], back_disparity[0]


def recorded_steps(monkeypatch) -> list[torch.Tensor]:
    """The latents every denoising step ends with (after the known region is put back)."""
    steps: list[torch.Tensor] = []
    original = pipeline.keep_known

    def recording(*args):
        blend = original(*args)

        def recorded(latents, i):
            steps.append(blend(latents, i).clone())
            return steps[-1]

        return recorded

    monkeypatch.setattr(pipeline, "keep_known", recording)
    return steps


@pytest.mark.parametrize("kind", [4, 6])
def test_with_nothing_to_fill_the_result_is_a_vae_round_trip_of_the_input(models, kind):
    """With a hole, pixels away from it are not the round trip's: the VAE decoder's attention sees the whole image,
    which is why :func:`inpaint.paint` keeps the input's own pixels outside the hole."""
    model = load(models[kind])
    rgb, disparity = panorama()
    out = pipeline.generate(model, settings(np.zeros((H, W), bool)), quiet())
    expected_rgb, expected_disparity = round_trip(model, rgb, disparity)
    np.testing.assert_allclose(out.rgb[0], expected_rgb, atol=1e-5)
    np.testing.assert_allclose(out.disparity[0], expected_disparity, atol=1e-5 if kind == 4 else 257 / 65535)


def test_the_known_region_is_kept_at_every_step_whatever_the_model_predicts(models, monkeypatch):
    """Two runs that differ only in what the model predicts (prompt, guidance) end every step with the same latents
    outside the hole, and with the input's own latents there after the last; inside it they differ."""
    model = load(models[4])
    steps = recorded_steps(monkeypatch)
    pipeline.generate(model, settings(hole()), quiet())
    first, steps[:] = list(steps), []
    pipeline.generate(model, settings(hole(), prompts=["a forest"], guidance=9.0), quiet())
    assert len(first) == len(steps) == 4
    cells = pipeline.latent_mask(hole(), model.folder.vae_scale_factor)[0, 0]
    for a, b in zip(first, steps):
        assert torch.equal(a[..., ~cells], b[..., ~cells])
        assert not torch.equal(a[..., cells], b[..., cells])
    rgb, disparity = panorama()
    x = pipeline.pack_rgbd(rgb, disparity, model.folder.kind)
    with pipeline.wrap_longitude(model.vae), torch.inference_mode():  # a seamless panorama's encoding
        known = model.vae.encode(x).latent_dist.mode() * model.vae.config.scaling_factor
    torch.testing.assert_close(first[-1][..., ~cells], known[..., ~cells], rtol=0, atol=1e-6)


def test_rolling_the_panorama_and_its_hole_by_8_pixels_rolls_the_result(models, monkeypatch):
    model = load(models[4])
    base = pipeline.generate(model, settings(hole()), quiet())
    k = 4  # latent columns: 8 pixels at the tiny VAE's factor 2
    original = core.initial_noise
    monkeypatch.setattr(core, "initial_noise", lambda *a, **kw: torch.roll(original(*a, **kw), shifts=k, dims=-1))
    rgb, disparity = panorama()
    rolled = settings(np.roll(hole(), 8, axis=1), image=(np.roll(rgb, 8, axis=1), np.roll(disparity, 8, axis=1)))
    shifted = pipeline.generate(model, rolled, quiet())
    np.testing.assert_allclose(shifted.rgb, np.roll(base.rgb, 8, axis=2), atol=2e-4)
    np.testing.assert_allclose(shifted.disparity, np.roll(base.disparity, 8, axis=2), atol=2e-4)


def test_a_painted_background_keeps_everything_outside_its_hole_and_lies_behind_the_box(models):
    rgb, distance, box = box_in_a_room()
    model = load(models[4])
    options = inpaint.InpaintOptions(steps=3, inpaint_width=128)

    def painter(background_rgb, background_distance, to_fill):
        return inpaint.paint(model, options, "a room", background_rgb, background_distance, to_fill, True, quiet())

    geometric = peel(rgb, distance, layers=2, reach=3.0)
    painted = peel(rgb, distance, layers=2, reach=3.0, painter=painter)
    background = painted.layers[0]
    assert np.array_equal(background.rgb[~box], rgb[~box]) and np.array_equal(background.distance[~box], distance[~box])
    assert not np.array_equal(background.rgb[box], geometric.layers[0].rgb[box])
    assert np.all(background.distance[box] >= distance[box] * (1 + BEHIND) - 1e-6)
    assert 0.0 <= painted.clamped <= 1.0
    assert [layer.alpha.tolist() for layer in painted.layers[1:]] == [layer.alpha.tolist() for layer in geometric.layers[1:]]


def test_the_painted_depth_comes_back_through_the_mapping_it_went_in_with(models, monkeypatch):
    """A model that returns its input (as nothing to fill does, up to the VAE) gives back the distances it was given."""
    rgb, distance = room()
    model = load(models[4])

    def identity(_, s, report):
        return pipeline.RGBDImages(s.init_rgb[None], s.init_disparity[None], np.round(s.init_disparity[None] * 65535).astype(np.uint16))

    monkeypatch.setattr(pipeline, "generate", identity)
    options = inpaint.InpaintOptions(steps=3, inpaint_width=0)  # the panorama's own width (96 → 128: scaled there and back)
    to_fill = np.zeros(distance.shape, bool)
    to_fill[10:30, 20:60] = True
    out_rgb, out_distance = inpaint.paint(model, options, "", rgb, distance, to_fill, True, quiet())
    np.testing.assert_allclose(out_distance, distance, rtol=0.05)  # scaling there and back rounds the room's corners
    np.testing.assert_allclose(out_rgb, rgb, atol=0.05)
    assert np.array_equal(out_distance[~to_fill], distance[~to_fill]) and np.array_equal(out_rgb[~to_fill], rgb[~to_fill])


def test_the_working_size_is_the_models_and_keeps_a_flat_images_aspect():
    assert inpaint.working_size(2048, 1024, 1024, True) == (1024, 512)
    assert inpaint.working_size(700, 350, 0, True) == (640, 320)
    assert inpaint.working_size(1000, 750, 512, False) == (512, 384)


def sphere_request(models, tmp_path: Path, **kw) -> WorldSphereRequest:
    rgb, distance, _ = box_in_a_room()
    options = inpaint.InpaintOptions(**{"inpaint_model": str(models[4]), "steps": 3, "inpaint_width": 128, **kw.pop("inpaint", {})})
    base = dict(depth=distance, depth_mode="METRIC", rgb=rgb, rgb_size=(96, 48), layers=2, reach=3.0, step=1, inpaint=options)
    return WorldSphereRequest(**{**base, **kw})


def test_the_world_sphere_job_paints_behind_its_layers_the_same_way_twice(models, tmp_path):
    request = sphere_request(models, tmp_path)
    assert validate(request) == []
    events: list = []
    first = run_job("world_sphere", request, events.append, CancelToken())
    again = run_job("world_sphere", request, lambda p: None, CancelToken())
    geometric = run_job("world_sphere", sphere_request(models, tmp_path, inpaint={"inpaint_model": ""}), lambda p: None, CancelToken())
    assert len(first.layers) == 1 and first.background is not None
    assert np.array_equal(first.background, again.background) and np.array_equal(first.vertices, again.vertices)
    assert not np.array_equal(first.background, geometric.background)
    assert any("Denoising step 3 of 3" in (e.message or "") for e in events)
    assert events[-1].done == events[-1].total


@pytest.mark.parametrize(
    "change, words",
    [
        (dict(layers=1), "Inpaint Model"),
        (dict(inpaint={"inpaint_width": 100}), "Inpaint Width 100: must be 0, or 128–4096, a multiple of 128"),
        (dict(inpaint={"steps": 0}), "Steps 0: must be"),
    ],
)
def test_bad_inpainting_requests_are_refused_before_any_model_loads(models, tmp_path, monkeypatch, change, words):
    monkeypatch.setattr(loading, "load_stable_diffusion", lambda *a, **k: pytest.fail("loaded a model for a bad request"))
    with pytest.raises(BadInput, match=words):
        validate(sphere_request(models, tmp_path, **change))


def test_a_model_that_is_not_ldm3d_is_refused_in_one_line(models, tmp_path):
    request = sphere_request(models, tmp_path, inpaint={"inpaint_model": str(models[3])})
    with pytest.raises(BadInput) as refused:
        validate(request)
    assert "\n" not in str(refused.value) and "Inpaint Model" in str(refused.value)


def test_the_prompt_is_the_given_one_else_the_panoramas_own(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"prompt": "a cosy room"}))
    rgb = str(tmp_path / "rgb.png")
    assert inpaint.panorama_prompt(inpaint.InpaintOptions(), "", rgb) == "a cosy room"
    assert inpaint.panorama_prompt(inpaint.InpaintOptions(prompt="a cave"), rgb) == "a cave"
    assert inpaint.panorama_prompt(inpaint.InpaintOptions(), str(tmp_path / "elsewhere" / "rgb.png")) == ""
