"""Tiny random-weight Stable Diffusion, SDXL and ControlNet folders in their published diffusers layouts.

The base folders hold what ``stable-diffusion-v1-5/stable-diffusion-v1-5`` and
``stabilityai/stable-diffusion-xl-base-1.0`` hold (model_index.json, unet/,
vae/, text_encoder/[_2], tokenizer/[_2], scheduler/), the ControlNet folders
what ``lllyasviel/control_v11p_sd15_canny`` and
``diffusers/controlnet-canny-sdxl-1.0`` hold (config.json and
diffusion_pytorch_model.safetensors), so the product's own loader reads them
like the real thing. A fresh ControlNet's output convolutions are zero, which
would hide whether the control image is used at all; here they are random.
Text goes through CLIP's real tokenizers and text encoders with its 49,408-row
tables (:mod:`tiny_clip`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tiny_clip import clip_text_config, write_clip_tokenizer

SD, SDXL = "stable-diffusion-v1-5", "stable-diffusion-xl-base-1.0"  # their published configs, in data/published/

#: The published scheduler configs (SD 1.5: PNDM; SDXL: Euler), written as the repos hold them.
_SCHEDULER = dict(
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    num_train_timesteps=1000,
    set_alpha_to_one=False,
    skip_prk_steps=True,
    steps_offset=1,
    trained_betas=None,
)


def _text_config(model: str, part: str = "text_encoder"):
    """The published text encoder's vocabulary, special ids and activation, 32 wide (SDXL's pooled projection too)."""
    return clip_text_config(
        model, part, hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=5, projection_dim=32
    )


def _vae(seed: int):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
    )


def _unet(xl: bool):
    from diffusers import UNet2DConditionModel

    common = dict(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    )
    if not xl:
        return UNet2DConditionModel(**common, cross_attention_dim=32)
    return UNet2DConditionModel(
        **common,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,  # 6 size ids × 8 + the 32-wide pooled text embedding
        cross_attention_dim=64,  # both encoders' 32-wide hidden states side by side
    )


def build_tiny_sd(folder: Path, xl: bool = False, seed: int = 0, safetensors: bool = True) -> Path:
    """Save a random SD 1.5-shaped (or SDXL-shaped) pipeline to ``folder`` and return it."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    model = SDXL if xl else SD
    unet = _unet(xl)
    text_encoder = CLIPTextModel(_text_config(model))
    folder.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(folder / "unet", safe_serialization=safetensors)
    _vae(seed + 100).save_pretrained(folder / "vae", safe_serialization=safetensors)
    text_encoder.save_pretrained(folder / "text_encoder", safe_serialization=safetensors)
    write_clip_tokenizer(folder / "tokenizer", model)
    index = {
        "_diffusers_version": "0.19.0",
        "scheduler": ["diffusers", "EulerDiscreteScheduler" if xl else "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    if xl:
        CLIPTextModelWithProjection(_text_config(model, "text_encoder_2")).save_pretrained(
            folder / "text_encoder_2", safe_serialization=safetensors
        )
        write_clip_tokenizer(folder / "tokenizer_2", model, "tokenizer_2")
        scheduler = {"_class_name": "EulerDiscreteScheduler", **_SCHEDULER, "timestep_spacing": "leading", "prediction_type": "epsilon"}
        index.update(
            _class_name="StableDiffusionXLPipeline",
            force_zeros_for_empty_prompt=True,
            text_encoder_2=["transformers", "CLIPTextModelWithProjection"],
            tokenizer_2=["transformers", "CLIPTokenizer"],
        )
    else:
        scheduler = {"_class_name": "PNDMScheduler", **_SCHEDULER}
        index.update(
            _class_name="StableDiffusionPipeline",
            requires_safety_checker=True,
            safety_checker=["stable_diffusion", "StableDiffusionSafetyChecker"],
            feature_extractor=["transformers", "CLIPImageProcessor"],
        )
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler, indent=2), encoding="utf-8")
    (folder / "model_index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    return folder


def build_tiny_controlnet(folder: Path, xl: bool = False, seed: int = 0, safetensors: bool = True) -> Path:
    """A random ControlNet for the tiny base of the same kind (its encoder copied from a fresh UNet, as training starts)."""
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    net = ControlNetModel.from_unet(_unet(xl), conditioning_embedding_out_channels=(16, 32))  # ÷2: the tiny VAE's factor
    zero_initialised = [*net.controlnet_down_blocks, net.controlnet_mid_block, net.controlnet_cond_embedding.conv_out]
    with torch.no_grad():
        for module in zero_initialised:
            for p in module.parameters():
                p.normal_(0.0, 0.3)
    net.save_pretrained(folder, safe_serialization=safetensors)
    return folder


def build_tiny_vae(folder: Path, seed: int = 7) -> Path:
    """A separate VAE folder (like madebyollin/sdxl-vae-fp16-fix) for the tiny bases."""
    _vae(seed).save_pretrained(folder)
    return folder


def diffusers_controlnet_pipeline(model) -> object:
    """diffusers' own ControlNet pipeline (SD or SDXL) on a loaded model's modules: the reference to compare with."""
    from diffusers import DDIMScheduler, StableDiffusionControlNetPipeline, StableDiffusionXLControlNetPipeline

    scheduler = DDIMScheduler.from_config(model.scheduler_config)
    if len(model.text_encoders) == 2:
        pipe = StableDiffusionXLControlNetPipeline(
            vae=model.vae,
            text_encoder=model.text_encoders[0],
            text_encoder_2=model.text_encoders[1],
            tokenizer=model.tokenizers[0],
            tokenizer_2=model.tokenizers[1],
            unet=model.unet,
            controlnet=model.controlnet,
            scheduler=scheduler,
            add_watermarker=False,
        )
    else:
        pipe = StableDiffusionControlNetPipeline(
            vae=model.vae,
            text_encoder=model.text_encoders[0],
            tokenizer=model.tokenizers[0],
            unet=model.unet,
            controlnet=model.controlnet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            image_encoder=None,
            requires_safety_checker=False,
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def diffusers_sd_pipeline(model) -> object:
    """diffusers' plain text-to-image pipeline on the same base: what control strength 0 must equal."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=model.vae,
        text_encoder=model.text_encoders[0],
        tokenizer=model.tokenizers[0],
        unet=model.unet,
        scheduler=DDIMScheduler.from_config(model.scheduler_config),
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_tiny_causal_lm(folder: Path, seed: int = 0) -> Path:
    """A random GPT-2-shaped language model with a byte-level tokenizer, in the transformers layout (safetensors)."""
    from tokenizers import pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab["<|endoftext|>"] = len(vocab)
    GPT2Tokenizer(vocab=vocab, merges=[]).save_pretrained(folder)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(vocab), n_positions=128, n_embd=32, n_layer=2, n_head=2, bos_token_id=len(vocab) - 1, eos_token_id=len(vocab) - 1
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder
