"""What each tiny model keeps of its published model, checked against the published configs (``data/published/``).

No published checkpoint can be downloaded here, so every model path is proven
on tiny random-weight models; that holds only where the tiny model keeps the
structural facts the code depends on. Each family below states them: config
keys equal to the published ones, per component, and what follows from them
(CLIP's real tokenizer with its special ids, as long as the text encoder's
table; SD 2.x's 16 cross-attention layers; LDM3D-sr's class-label noise level;
ImageDream's 16 image tokens). Widths and depths are tiny, and so are the block
plans but for SD 2.x's (ViewNeTI counts its layers): the SD 1.5, SDXL, LDM3D,
LDM3D-sr and ImageDream UNets have two levels, and the SD 1.5, SDXL and LDM3D
VAEs downscale ×2 (the others ×8, as published).

The published sizes are built as well, on the meta device (no weights
allocated): their parameter totals are those of the published weights, and the
published configs pass our loaders' checks as the right kind of model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from tiny_clip import VOCAB_SIZE, published  # noqa: E402
from tiny_controlnet import SD, SDXL, build_tiny_sd  # noqa: E402
from tiny_ldm3d import LDM3D, LDM3D_SR, build_tiny_ldm3d, build_tiny_ldm3d_sr  # noqa: E402
from tiny_multiview import IMAGEDREAM_MODEL, build_tiny_multiview  # noqa: E402
from tiny_viewneti import SD2, build_tiny_sd2  # noqa: E402

from engine.diffusion import sources  # noqa: E402
from engine.multiview.model import IMAGEDREAM, MVDREAM, inspect_multiview  # noqa: E402
from engine.viewneti import attention  # noqa: E402
from engine.viewneti.train import check_base  # noqa: E402

pytestmark = pytest.mark.timeout(300)
CLIP_TEXT = ("vocab_size", "hidden_act", "max_position_embeddings")  # what the LDM3D fact sheets state of their text encoders
TEXT = (*CLIP_TEXT, "layer_norm_eps", "bos_token_id", "eos_token_id", "pad_token_id")
RGBD_VAE = ("in_channels", "out_channels", "latent_channels", "scaling_factor")
SCHEDULE = ("beta_start", "beta_end", "beta_schedule", "num_train_timesteps", "prediction_type")
CLIP_IDS = {"<|startoftext|>": 49406, "<|endoftext|>": 49407, "!": 0}  # CLIP's special ids, and SD 2.x's pad


@dataclass(frozen=True)
class Family:
    """A tiny model and the facts of its published model it keeps."""

    name: str
    published: str  # data/published/<published>.json
    build: Callable[[Path], Path]
    keeps: tuple[tuple[str, tuple[str, ...]], ...]  # (component, config keys equal to the published config's)
    text: tuple[tuple[str, str], ...] = (("tokenizer", "text_encoder"),)  # (tokenizer, its text encoder)


FAMILIES = (
    Family(
        "sd-1.5",
        SD,
        lambda f: build_tiny_sd(f),
        (("unet", ("in_channels", "out_channels")), ("vae", RGBD_VAE), ("text_encoder", TEXT)),
    ),
    Family(
        "sdxl",
        SDXL,
        lambda f: build_tiny_sd(f, xl=True),
        (("unet", ("addition_embed_type", "in_channels", "out_channels")), ("text_encoder", TEXT), ("text_encoder_2", TEXT)),
        (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2")),
    ),
    Family(
        "sd-2.1",
        SD2,
        build_tiny_sd2,
        (
            ("unet", ("down_block_types", "up_block_types", "layers_per_block", "use_linear_projection", "in_channels", "out_channels")),
            ("vae", (*RGBD_VAE, "down_block_types", "up_block_types")),
            ("text_encoder", TEXT),
            ("scheduler", SCHEDULE),
        ),
    ),
    Family(
        "ldm3d-4c",
        LDM3D,
        lambda f: build_tiny_ldm3d(f, vae_channels=4),
        (("unet", ("in_channels", "out_channels")), ("vae", RGBD_VAE), ("text_encoder", CLIP_TEXT)),
    ),
    Family(
        "ldm3d-sr",
        LDM3D_SR,
        build_tiny_ldm3d_sr,
        (
            ("unet", ("in_channels", "out_channels")),
            ("vae", RGBD_VAE),
            ("text_encoder", CLIP_TEXT),
            ("model_index", ("_class_name", "max_noise_level", "low_res_scheduler", "scheduler")),
        ),
    ),
    Family(
        "imagedream",
        IMAGEDREAM_MODEL,
        lambda f: build_tiny_multiview(f, image=True),
        (
            ("unet", ("_class_name", "attention_resolutions", "camera_dim", "in_channels", "ip_dim", "num_res_blocks", "out_channels")),
            ("vae", (*RGBD_VAE, "down_block_types", "up_block_types")),
            ("text_encoder", TEXT),
            ("scheduler", tuple(k for k in published(IMAGEDREAM_MODEL)["scheduler"])),
        ),
    ),
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {f.name: f.build(root / f.name) for f in FAMILIES}


def config_of(folder: Path, component: str) -> dict[str, Any]:
    """A component's config as the folder holds it (``model_index`` is the pipeline's own)."""
    if component == "model_index":
        path = folder / "model_index.json"
    else:
        path = folder / component / ("scheduler_config.json" if component == "scheduler" else "config.json")
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_each_tiny_model_keeps_the_published_configs_structural_facts(tiny, family):
    facts = published(family.published)
    for component, keys in family.keeps:
        ours = config_of(tiny[family.name], component)
        differ = {k: (ours.get(k), facts[component][k]) for k in keys if ours.get(k) != facts[component][k]}
        assert not differ, f"{family.name} {component}: (tiny, published) {differ}"


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_each_tiny_model_reads_text_with_clips_real_tokenizer_as_long_as_its_text_encoders_table(tiny, family):
    from safetensors import safe_open
    from transformers import CLIPTokenizer

    for tokenizer_part, encoder_part in family.text:
        tokenizer = CLIPTokenizer.from_pretrained(tiny[family.name] / tokenizer_part)
        facts = published(family.published)[tokenizer_part]
        with safe_open(str(tiny[family.name] / encoder_part / "model.safetensors"), "pt") as weights:
            rows = next(weights.get_slice(k).get_shape()[0] for k in weights.keys() if k.endswith("token_embedding.weight"))
        assert len(tokenizer) == rows == config_of(tiny[family.name], encoder_part)["vocab_size"] == VOCAB_SIZE
        assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (CLIP_IDS["<|startoftext|>"], CLIP_IDS["<|endoftext|>"])
        assert (tokenizer.pad_token, tokenizer.pad_token_id) == (facts["pad_token"], CLIP_IDS[facts["pad_token"]])
        assert tokenizer.model_max_length == facts["model_max_length"] == 77


def test_the_tiny_sd_2_1_has_sd_2s_16_cross_attention_layers_in_viewnetis_order(tiny):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny["sd-2.1"] / "unet")
    assert len(attention.install(unet)) == 16


def test_the_tiny_ldm3d_sr_reads_the_noise_level_as_a_class_label_up_to_the_published_maximum(tiny):
    unet, index = config_of(tiny["ldm3d-sr"], "unet"), config_of(tiny["ldm3d-sr"], "model_index")
    assert unet["num_class_embeds"] > index["max_noise_level"] == published(LDM3D_SR)["model_index"]["max_noise_level"] == 350


def test_the_tiny_imagedream_appends_the_published_16_image_tokens_after_the_text(tiny):
    from safetensors import safe_open

    with safe_open(str(tiny["imagedream"] / "unet" / "diffusion_pytorch_model.safetensors"), "pt") as weights:
        queries = weights.get_slice("image_embed.latents").get_shape()
    assert queries[1] == published(IMAGEDREAM_MODEL)["unet"]["ip_dim"] == 16


def test_the_tiny_six_channel_ldm3d_keeps_ldm3ds_packed_depth_vae(tmp_path):
    vae = config_of(build_tiny_ldm3d(tmp_path / "ldm3d", vae_channels=6), "vae")
    assert vae["in_channels"] == vae["out_channels"] == published(LDM3D)["rgbd6_vae_channels"] == 6


# The published sizes, on the meta device ------------------------------------------------------------------------------


def full_size(component: str, *models: str, **changes: Any) -> Any:
    """A component built on the meta device from the published configs of ``models`` (each overlaying the one before, as
    LDM3D's facts overlay SD 1.5's) and ``changes``; SD's diffusers and transformers classes."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    config = {k: v for m in models for k, v in published(m)[component].items() if not k.startswith("_") and k != "architectures"}
    with torch.device("meta"):
        if component == "text_encoder":
            return CLIPTextModel(CLIPTextConfig(**config, **changes))
        return (UNet2DConditionModel if component == "unet" else AutoencoderKL)(**{**config, **changes})


def parameters(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("model", [SD, SD2])
def test_published_stable_diffusion_builds_at_full_size_with_its_weights_parameter_totals(model):
    for component, total in published(model)["parameters"].items():
        assert parameters(full_size(component, model)) == total, component
    rows = full_size("text_encoder", model).get_input_embeddings().weight.shape[0]
    assert rows == VOCAB_SIZE, "the real tokenizer's length"


def test_published_sd_2_1_at_full_size_has_the_16_cross_attention_layers_viewneti_reads():
    assert len(attention.install(full_size("unet", SD2))) == 16


def test_published_ldm3d_at_full_size_is_sd_1_x_with_a_vae_that_differs_only_in_its_first_and_last_convolutions():
    assert parameters(full_size("unet", SD, LDM3D)) == published(SD)["parameters"]["unet"]
    sd = {k: v.shape for k, v in full_size("vae", SD).state_dict().items()}
    for channels in (4, published(LDM3D)["rgbd6_vae_channels"]):
        rgbd = {k: v.shape for k, v in full_size("vae", SD, LDM3D, in_channels=channels, out_channels=channels).state_dict().items()}
        assert list(rgbd) == list(sd), "SD's VAE, weight by weight"
        assert {k for k in sd if rgbd[k] != sd[k]} == {"encoder.conv_in.weight", "decoder.conv_out.weight", "decoder.conv_out.bias"}


def test_published_ldm3d_sr_at_full_size_is_the_size_of_its_published_unet():
    """An SD 1.x UNet reading 8 channels with a class embedding (SD ×4 upscaler's 1000 classes): 3.44 GB in fp32, as published."""
    unet = full_size("unet", SD, LDM3D_SR, num_class_embeds=1000)
    assert round(4 * parameters(unet) / 1e9, 2) == 3.44


NO_TENSORS = (2).to_bytes(8, "little") + b"{}"  # a whole safetensors file: its header's length, an empty header


def published_folder(root: Path, model: str, base: str, **layers: dict[str, Any]) -> Path:
    """A folder with the published configs (``base``'s, overlaid by ``model``'s facts) and weight files holding no
    tensors: what our loaders' checks read before any weights load."""
    folder = root / model
    facts, under = published(model), published(base)
    for component in ("unet", "vae", "text_encoder"):
        (folder / component).mkdir(parents=True)
        config = {**under[component], **facts.get(component, {}), **layers.get(component, {})}
        (folder / component / "config.json").write_text(json.dumps(config), encoding="utf-8")
        (folder / component / f"{sources.SAFE_WEIGHTS[component]}.safetensors").write_bytes(NO_TENSORS)
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(facts.get("scheduler", {})), encoding="utf-8")
    (folder / "tokenizer").mkdir()
    (folder / "tokenizer" / "vocab.json").write_text("{}")
    (folder / "tokenizer" / "merges.txt").touch()
    (folder / "model_index.json").write_text(json.dumps(facts.get("model_index", {})), encoding="utf-8")
    return folder


def test_the_published_configs_pass_our_loaders_checks_as_the_right_kind_of_model(tmp_path):
    sd15 = sources.inspect_stable_diffusion(published_folder(tmp_path, SD, SD))
    sd21 = sources.inspect_stable_diffusion(published_folder(tmp_path, SD2, SD2))
    assert (sd15.kind, sd15.vae_scale_factor, sd15.native_size) == (sources.SD, 8, 512)
    assert (sd21.kind, sd21.vae_scale_factor, sd21.native_size) == (sources.SD, 8, 768)
    check_base(sd21)  # ViewNeTI's base: v-prediction, one CLIP text encoder
    four = sources.inspect_ldm3d(published_folder(tmp_path, LDM3D, SD))
    six = sources.inspect_ldm3d(published_folder(tmp_path / "6", LDM3D, SD, vae={"in_channels": 6, "out_channels": 6}))
    upscaler = sources.inspect_ldm3d_sr(published_folder(tmp_path, LDM3D_SR, SD, unet={"num_class_embeds": 1000}))
    assert (four.kind, six.kind, upscaler.kind) == (sources.RGBD4, sources.RGBD6, sources.RGBD_SR)
    assert four.vae_scale_factor == upscaler.vae_scale_factor == 8


def test_the_published_imagedream_and_mvdream_configs_pass_the_multiview_loaders_checks(tmp_path):
    imagedream = published_folder(tmp_path, IMAGEDREAM_MODEL, IMAGEDREAM_MODEL)
    for part in ("image_encoder", "feature_extractor"):
        (imagedream / part).mkdir()
    (imagedream / "image_encoder" / "config.json").write_text(json.dumps(published(IMAGEDREAM_MODEL)["image_encoder"]))
    (imagedream / "image_encoder" / "model.safetensors").write_bytes(NO_TENSORS)
    (imagedream / "feature_extractor" / "preprocessor_config.json").write_text("{}")
    assert inspect_multiview(imagedream).kind == IMAGEDREAM
    mvdream = published_folder(tmp_path / "mv", IMAGEDREAM_MODEL, IMAGEDREAM_MODEL, unet={"ip_dim": 0})
    assert inspect_multiview(mvdream).kind == MVDREAM
