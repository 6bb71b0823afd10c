"""A tiny random-weight Stable Diffusion 2.x in its published diffusers layout (v-prediction), ViewNeTI's base.

Like ``stabilityai/stable-diffusion-2-1``: model_index.json, unet/ (three cross-attention down blocks, so 16
cross-attention layers, linear projections), vae/, text_encoder/ (CLIP), tokenizer/, scheduler/ (v-prediction).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tiny_ldm3d import save_sd2_parts


def add_words(folder: Path, words: list[str]) -> None:
    """Make each word one token of the tiny BPE tokenizer: its merges, left to right, and the pieces in the vocabulary."""
    from transformers import CLIPTokenizer

    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    merges = (folder / "merges.txt").read_text(encoding="utf-8").rstrip("\n").split("\n")
    for word in words:
        pieces = [*word[:-1], word[-1] + "</w>"]
        token = pieces[0]
        for piece in pieces[1:]:
            merges.append(f"{token} {piece}")
            token += piece
            vocab.setdefault(token, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("\n".join(merges) + "\n", encoding="utf-8")
    for stale in ("tokenizer.json",):
        (folder / stale).unlink(missing_ok=True)
    CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77).save_pretrained(folder)


def build_tiny_sd2(folder: Path, seed: int = 0) -> Path:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    UNet2DConditionModel(
        block_out_channels=(32, 32, 32, 32),
        layers_per_block=2,
        sample_size=32,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=32,
        attention_head_dim=8,
        use_linear_projection=True,
    ).save_pretrained(folder / "unet")
    save_sd2_parts(folder, hidden_act="gelu", prediction_type="v_prediction")
    add_words(folder / "tokenizer", ["view", "object"])  # single tokens, as in SD 2.x's vocabulary: ViewNeTI's reference words
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
