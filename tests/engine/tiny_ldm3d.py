"""Tiny random-weight LDM3D models in the published diffusers layout, built at test time.

The folder holds what ``Intel/ldm3d`` / ``ldm3d-4c`` / ``ldm3d-pano`` hold
(model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/), with
safetensors weights, so the product's own loader reads it like the real thing.
Sizes follow the reference's tiny configuration; ``width`` scales the channel
counts for the mid-size benchmark model. Text goes through CLIP's real tokenizer
and a text encoder with its 49,408-row table (:mod:`tiny_clip`); which facts of
the published configs each tiny model keeps is stated and checked in
``test_fixture_invariants.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tiny_clip import clip_text_config, write_clip_tokenizer

LDM3D, LDM3D_SR = "ldm3d-4c", "ldm3d-sr"  # their published configs, in data/published/


def save_sd2_parts(folder: Path, model: str, vae_channels: int = 3, **scheduler: object) -> None:
    """The parts an SD 2.x-style model shares, tiny: a 4-block (×8) VAE (RGB, or RGB + depth with ``vae_channels`` 4), a 3-layer
    CLIP text encoder with the published ``model``'s vocabulary, special ids and activation, its real tokenizer, and a DDIM
    schedule with SD's betas (``scheduler`` adds settings such as ``prediction_type``)."""
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import CLIPTextModel

    AutoencoderKL(
        in_channels=vae_channels,
        out_channels=vae_channels,
        block_out_channels=[32, 32, 32, 32],
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        layers_per_block=1,
        latent_channels=4,
        sample_size=64,
    ).save_pretrained(folder / "vae")
    CLIPTextModel(
        clip_text_config(model, hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=3)
    ).save_pretrained(folder / "text_encoder")
    write_clip_tokenizer(folder / "tokenizer", model)
    DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        **scheduler,
    ).save_pretrained(folder / "scheduler")


def build_tiny_ldm3d(
    folder: Path, vae_channels: int = 4, seed: int = 0, width: int = 32, safetensors: bool = True, vae_blocks: int = 2
) -> Path:
    """Save a random LDM3D-shaped model to ``folder`` and return it."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(width, 2 * width),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )
    vae = AutoencoderKL(
        block_out_channels=[width * 2**i for i in range(vae_blocks)],
        in_channels=vae_channels,
        out_channels=vae_channels,
        down_block_types=["DownEncoderBlock2D"] * vae_blocks,
        up_block_types=["UpDecoderBlock2D"] * vae_blocks,
        latent_channels=4,
    )
    text_encoder = CLIPTextModel(clip_text_config(LDM3D, hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=5))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False)
    folder.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(folder / "unet", safe_serialization=safetensors)
    vae.save_pretrained(folder / "vae", safe_serialization=safetensors)
    text_encoder.save_pretrained(folder / "text_encoder", safe_serialization=safetensors)
    scheduler.save_pretrained(folder / "scheduler")
    write_clip_tokenizer(folder / "tokenizer", LDM3D)
    index = {
        "_class_name": "StableDiffusionLDM3DPipeline",
        "_diffusers_version": "0.21.0",
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    return folder


def diffusers_ldm3d_pipeline(model) -> object:
    """diffusers' own (deprecated) LDM3D pipeline on a loaded model's modules: the reference to compare with."""
    from diffusers import DDIMScheduler, StableDiffusionLDM3DPipeline

    pipe = StableDiffusionLDM3DPipeline(
        vae=model.vae,
        text_encoder=model.text_encoder,
        tokenizer=model.tokenizer,
        unet=model.unet,
        scheduler=DDIMScheduler.from_config(model.scheduler_config),
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_tiny_dpt(folder: Path, seed: int = 0) -> Path:
    """A random DPT depth estimator in the transformers layout of Intel/dpt-large (config, safetensors, preprocessor)."""
    from transformers import DPTConfig, DPTForDepthEstimation

    torch.manual_seed(seed)
    config = DPTConfig(
        image_size=32,
        patch_size=16,
        hidden_size=32,
        num_hidden_layers=4,
        backbone_out_indices=[0, 1, 2, 3],
        num_attention_heads=4,
        intermediate_size=37,
        neck_hidden_sizes=[16, 16, 32, 32],
        fusion_hidden_size=16,
    )
    DPTForDepthEstimation(config).eval().save_pretrained(folder)
    preprocessor = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3, "size": {"height": 32, "width": 32}, "keep_aspect_ratio": False}
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor), encoding="utf-8")
    return folder


def build_tiny_ldm3d_sr(folder: Path, seed: int = 0, width: int = 32) -> Path:
    """Save a random model in Intel/ldm3d-sr's published layout: a 4-channel RGBD VAE (×8), a UNet reading 8 channels (noisy and
    low-res latents) with the noise level as its class, DDIM plus the unused low-res DDPM schedule, and max_noise_level 350."""
    from diffusers import DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    UNet2DConditionModel(
        block_out_channels=(width, 2 * width),
        layers_per_block=1,
        sample_size=32,
        in_channels=8,
        out_channels=4,
        num_class_embeds=1000,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
    ).save_pretrained(folder / "unet")
    save_sd2_parts(folder, LDM3D_SR, vae_channels=4)
    DDPMScheduler(beta_schedule="scaled_linear").save_pretrained(folder / "low_res_scheduler")
    index = {
        "_class_name": "StableDiffusionUpscaleLDM3DPipeline",
        "_diffusers_version": "0.9.0.dev0",
        "low_res_scheduler": ["diffusers", "DDPMScheduler"],
        "max_noise_level": 350,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    return folder
