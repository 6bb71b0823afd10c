"""A tiny random-weight Stable Diffusion 2.x in its published diffusers layout (v-prediction), ViewNeTI's base.

Like ``stabilityai/stable-diffusion-2-1``: model_index.json, unet/ (three cross-attention down blocks, so 16
cross-attention layers, linear projections), vae/, text_encoder/ (CLIP, with the full 49,408-row table), tokenizer/
(CLIP's real one, 49,408 tokens: so ViewNeTI's placeholders get ids past the table, as on the real model), scheduler/
(v-prediction).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tiny_clip import published
from tiny_ldm3d import save_sd2_parts

SD2 = "stable-diffusion-2-1"  # its published configs, in data/published/


def build_tiny_sd2(folder: Path, seed: int = 0) -> Path:
    from diffusers import UNet2DConditionModel

    plan = ("down_block_types", "up_block_types", "layers_per_block", "use_linear_projection", "in_channels", "out_channels")
    unet = published(SD2)["unet"]
    torch.manual_seed(seed)
    UNet2DConditionModel(
        **{k: unet[k] for k in plan},  # SD 2.x's block plan: 16 cross-attention layers
        block_out_channels=(32, 32, 32, 32),
        sample_size=32,
        cross_attention_dim=32,
        attention_head_dim=8,
    ).save_pretrained(folder / "unet")
    save_sd2_parts(folder, SD2, prediction_type=published(SD2)["scheduler"]["prediction_type"])
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.8.0",
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
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
