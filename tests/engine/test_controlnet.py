"""ControlNet text → image (3D-DST's generator) on tiny random-weight models in the published layouts.

Random weights give noise, so these tests check equivalences and invariants:
the same numbers as diffusers' own ControlNet pipelines (SD and SDXL), the
edge map reaching the model, control strength 0 being the base model alone,
reproducibility per seed, refusals before any weights load, and cancel.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from tiny_controlnet import (  # noqa: E402
    build_tiny_causal_lm,
    build_tiny_controlnet,
    build_tiny_sd,
    build_tiny_vae,
    diffusers_controlnet_pipeline,
    diffusers_sd_pipeline,
)
from tiny_ldm3d import build_tiny_ldm3d  # noqa: E402

from engine.diffusion import loading, sources  # noqa: E402
from engine.dst import controlnet, prompts  # noqa: E402
from engine.errors import BadInput, JobCancelled  # noqa: E402
from engine.progress import CancelToken, Reporter  # noqa: E402

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("one_torch_thread")]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("controlnet-models")
    return {
        "sd": build_tiny_sd(root / "sd15"),
        "cn": build_tiny_controlnet(root / "control_v11p_sd15_canny"),
        "sdxl": build_tiny_sd(root / "sdxl", xl=True, seed=1),
        "cnxl": build_tiny_controlnet(root / "controlnet-canny-sdxl", xl=True, seed=1),
        "root": root,
    }


def load(models, xl: bool = False, **kw):
    base = sources.inspect_stable_diffusion(models["sdxl" if xl else "sd"])
    net = sources.inspect_component(models["cnxl" if xl else "cn"], "", "ControlNetModel")
    return loading.load_controlnet_pipeline(base, net, CPU, torch.float32, **kw)


def edges(height: int = 64, width: int = 64, shift: int = 0) -> np.ndarray:
    """A Canny-like edge map: a few one-pixel 0/255 lines."""
    e = np.zeros((height, width), np.uint8)
    e[8 + shift : height - 8, 12] = 255
    e[8 + shift, 12 : width - 10] = 255
    e[height // 3 : height - 12, width - 20 - shift] = 255
    return e


def settings(**kw) -> controlnet.ControlSettings:
    seeds = kw.pop("seeds", [7, 8])
    base = dict(
        prompts=["an image of a car"] * len(seeds),
        negatives=[prompts.NEGATIVE_PROMPT] * len(seeds),
        seeds=seeds,
        control=edges(),
        width=64,
        height=64,
        steps=3,
    )
    return controlnet.ControlSettings(**{**base, **kw})


def quiet() -> Reporter:
    return Reporter(lambda p: None, CancelToken(), 1)


def reference(model, s: controlnet.ControlSettings, **kw) -> np.ndarray:
    from PIL import Image

    pipe = diffusers_controlnet_pipeline(model)
    image = Image.fromarray(np.repeat(np.asarray(s.control)[..., None], 3, axis=2))
    out = pipe(
        list(s.prompts),
        image=image,
        width=s.width,
        height=s.height,
        num_inference_steps=s.steps,
        guidance_scale=s.guidance,
        eta=s.eta,
        controlnet_conditioning_scale=s.control_scale,
        guess_mode=s.guess_mode,
        generator=[torch.Generator("cpu").manual_seed(seed) for seed in s.seeds],
        output_type="np",
        **kw,
    )
    return out.images


@pytest.mark.parametrize("xl", [False, True], ids=["sd15", "sdxl"])
@pytest.mark.parametrize("size", [(64, 64), (40, 48)], ids=["same-size", "resized"])
def test_equals_diffusers_controlnet_pipeline(models, xl, size):
    """3D-DST's sampling (DDIM, eta 1 with per-sample generators, guidance 9) gives diffusers' numbers exactly."""
    model = load(models, xl)
    s = settings(control=edges(*size))
    ours = controlnet.generate(model, s, quiet())
    ref = reference(model, s, negative_prompt=list(s.negatives))
    assert ours.shape == ref.shape == (2, 64, 64, 3) and ours.dtype == np.float32
    print(f"max abs diff vs diffusers ({'SDXL' if xl else 'SD 1.5'}, {size}): {np.abs(ours - ref).max()}")
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_sdxl_empty_negative_is_zero_embeddings_as_in_diffusers(models):
    model = load(models, xl=True)
    s = settings(negatives=["", ""], seeds=[3, 4])
    np.testing.assert_allclose(controlnet.generate(model, s, quiet()), reference(model, s), atol=1e-6)


def test_guess_mode_equals_diffusers(models):
    model = load(models)
    s = settings(guess_mode=True, control_scale=0.8)
    np.testing.assert_allclose(controlnet.generate(model, s, quiet()), reference(model, s, negative_prompt=list(s.negatives)), atol=1e-6)


def test_the_edge_map_reaches_the_model_and_strength_zero_is_the_base_alone(models):
    model = load(models)
    a = controlnet.generate(model, settings(control=edges()), quiet())
    b = controlnet.generate(model, settings(control=edges(shift=10)), quiet())
    assert np.abs(a - b).max() > 1e-2  # another outline, another image, same seeds (float noise is ~1e-6)

    off_a = controlnet.generate(model, settings(control=edges(), control_scale=0.0), quiet())
    off_b = controlnet.generate(model, settings(control=edges(shift=10), control_scale=0.0), quiet())
    np.testing.assert_array_equal(off_a, off_b)  # strength 0: the edge map no longer matters at all
    s = settings()
    plain = diffusers_sd_pipeline(model)(
        list(s.prompts),
        negative_prompt=list(s.negatives),
        width=64,
        height=64,
        num_inference_steps=s.steps,
        guidance_scale=s.guidance,
        eta=s.eta,
        generator=[torch.Generator("cpu").manual_seed(seed) for seed in s.seeds],
        output_type="np",
    ).images
    np.testing.assert_allclose(off_a, plain, atol=1e-6)  # ... and the result is plain text-to-image with the base


def test_same_seeds_repeat_and_each_sample_stands_alone(models):
    model = load(models)
    a = controlnet.generate(model, settings(seeds=[5, 6]), quiet())
    np.testing.assert_array_equal(a, controlnet.generate(model, settings(seeds=[5, 6]), quiet()))
    assert not np.allclose(a[0], a[1])
    alone = controlnet.generate(model, settings(seeds=[6]), quiet())  # sample 2 of a batch is seed 6 on its own
    np.testing.assert_allclose(alone[0], a[1], atol=1e-5)


def test_three_channel_and_float_edge_maps_are_the_same_control(models):
    e = edges()
    grey = controlnet.control_tensor(e, 64, 64)
    assert grey.shape == (1, 3, 64, 64) and set(np.unique(grey.numpy())) == {0.0, 1.0}
    torch.testing.assert_close(controlnet.control_tensor(np.repeat(e[..., None], 3, axis=2), 64, 64), grey)
    torch.testing.assert_close(controlnet.control_tensor(e.astype(np.float32) / 255, 64, 64), grey)
    with pytest.raises(BadInput, match="H×W or H×W×3"):
        controlnet.control_tensor(np.zeros((2, 8, 8, 3), np.uint8), 8, 8)


def test_sdxl_with_a_separate_vae(models):
    vae = build_tiny_vae(models["root"] / "sdxl-vae-fp16-fix")
    plain = controlnet.generate(load(models, xl=True), settings(seeds=[1]), quiet())
    model = load(models, xl=True, vae=sources.inspect_component(vae, "", "AutoencoderKL"))
    assert model.vae.config.block_out_channels == [32, 64]
    swapped = controlnet.generate(model, settings(seeds=[1]), quiet())
    assert swapped.shape == (1, 64, 64, 3) and np.isfinite(swapped).all() and not np.allclose(plain, swapped)
    ldm3d_vae = build_tiny_ldm3d(models["root"] / "ldm3d", vae_channels=4) / "vae"
    with pytest.raises(BadInput, match="does not fit"):
        load(models, xl=True, vae=sources.inspect_component(ldm3d_vae, "", "AutoencoderKL"))


def _no_weights(monkeypatch):
    import diffusers
    import transformers

    for cls in (diffusers.UNet2DConditionModel, diffusers.ControlNetModel, diffusers.AutoencoderKL, transformers.CLIPTextModel):
        monkeypatch.setattr(cls, "from_pretrained", classmethod(lambda *a, **k: pytest.fail("weights loaded")))


@pytest.mark.parametrize("base, net", [("sdxl", "cn"), ("sd", "cnxl")])
def test_a_controlnet_for_another_base_is_refused_before_weights_load(models, monkeypatch, base, net):
    loading.release()
    _no_weights(monkeypatch)
    folder = sources.inspect_stable_diffusion(models[base])
    control = sources.inspect_component(models[net], "canny", "ControlNetModel")
    with pytest.raises(BadInput, match="ControlNet canny was made for .* choose a ControlNet trained for this base"):
        loading.load_controlnet_pipeline(folder, control, CPU, torch.float32)


def test_real_config_families_are_named(models):
    base = sources.inspect_stable_diffusion(models["sd"])
    base.unet_config = {**base.unet_config, "cross_attention_dim": 768}
    control = sources.inspect_component(models["cnxl"], "xl", "ControlNetModel")
    control.config = {**control.config, "cross_attention_dim": 2048}
    with pytest.raises(BadInput, match="made for SDXL, but .* is Stable Diffusion 1.x"):
        sources.check_controlnet_base(base, control)


def test_pickled_weights_load_only_when_allowed(models, tmp_path):
    pickled = build_tiny_controlnet(tmp_path / "pickled", safetensors=False)
    with pytest.raises(BadInput, match="only pickled weights"):
        sources.inspect_component(pickled, "", "ControlNetModel")
    allowed = sources.inspect_component(pickled, "", "ControlNetModel", allow_pickle=True)
    assert allowed.safetensors is False
    base = build_tiny_sd(tmp_path / "sd-pickled", safetensors=False)
    with pytest.raises(BadInput, match="unet/ has only pickled weights"):
        sources.inspect_stable_diffusion(base)
    model = loading.load_controlnet_pipeline(sources.inspect_stable_diffusion(base, allow_pickle=True), allowed, CPU, torch.float32)
    assert controlnet.generate(model, settings(seeds=[1], steps=1), quiet()).shape == (1, 64, 64, 3)


def test_layouts_are_checked_with_readable_errors(models, tmp_path):
    with pytest.raises(BadInput, match="is a 'UNet2DConditionModel' model, not a ControlNetModel"):
        sources.inspect_component(models["sd"] / "unet", "", "ControlNetModel")
    with pytest.raises(BadInput, match="RGBD model"):
        sources.inspect_stable_diffusion(build_tiny_ldm3d(tmp_path / "ldm3d"))
    xl = tmp_path / "xl"
    shutil.copytree(models["sdxl"], xl)
    shutil.rmtree(xl / "tokenizer_2")
    with pytest.raises(BadInput, match=r"tokenizer_2/tokenizer.json \(or tokenizer_2/vocab.json and merges.txt\) missing"):
        sources.inspect_stable_diffusion(xl)
    assert sources.inspect_stable_diffusion(models["sdxl"]).kind == sources.SDXL
    assert sources.inspect_stable_diffusion(models["sd"]).kind == sources.SD


def test_repo_ids_resolve_from_the_hub_cache_offline(models, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--lllyasviel--control_v11p_sd15_canny"
    shutil.copytree(models["cn"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    path = sources.locate("lllyasviel/control_v11p_sd15_canny", cache_dir=str(tmp_path / "hub"), patterns=sources.COMPONENT_PATTERNS)
    assert sources.inspect_component(path, "lllyasviel/control_v11p_sd15_canny", "ControlNetModel").revision == commit
    with pytest.raises(BadInput, match="not in the Hugging Face cache"):
        sources.locate("diffusers/controlnet-canny-sdxl-1.0", cache_dir=str(tmp_path / "hub"), patterns=sources.COMPONENT_PATTERNS)


def test_cancel_stops_between_steps(models):
    token = CancelToken()
    seen = []

    def emit(p):
        seen.append(p.message)
        if p.message.startswith("Denoising step 1 "):
            token.cancel()

    with pytest.raises(JobCancelled):
        controlnet.generate(load(models), settings(steps=5), Reporter(emit, token, 10))
    assert seen[-1] == "Denoising step 1 of 5"


def test_release_drops_the_pipeline(models):
    from engine import runtime

    load(models)
    assert isinstance(loading.loaded(), loading.ControlNetPipelineModel)
    runtime.release_memory()
    assert loading.loaded() is None


# Prompts ------------------------------------------------------------------------------------------


def test_template_expansion_is_seeded_and_reproducible():
    tags = ["vintage", "red", "convertible", "chrome"]
    a = [prompts.expand_prompt("car", tags, seed) for seed in range(8)]
    assert a == [prompts.expand_prompt("car", tags, seed) for seed in range(8)]
    assert len(set(a)) > 4 and all(p.startswith("An image of car, ") and p.endswith(prompts.ADDED_PROMPT) for p in a)
    assert prompts.expand_prompt("car", [], 1, style=["watercolour"]).endswith("watercolour, best quality, extremely detailed")


def test_a_local_language_model_expands_reproducibly(tmp_path):
    lm = prompts.LocalLanguageModel(str(build_tiny_causal_lm(tmp_path / "lm")), max_new_tokens=12)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = prompts.expand_prompt("car", ["red"], 5, expander=lm)
    assert torch.equal(state, torch.get_rng_state())  # the global random state is untouched
    assert a == prompts.expand_prompt("car", ["red"], 5, expander=lm)
    assert a.startswith("An image of car, red") and a.endswith(prompts.ADDED_PROMPT)
    with pytest.raises(BadInput, match="no config.json"):
        prompts.LocalLanguageModel(str(tmp_path))
