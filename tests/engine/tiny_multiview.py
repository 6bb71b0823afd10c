"""Tiny random-weight multi-view models in the published layouts, built at test time.

ImageDream (``ashawkey/imagedream-ipmv-diffusers``): model_index.json, unet/
(config.json + diffusion_pytorch_model.safetensors in the original LDM names),
vae/, text_encoder/, tokenizer/, scheduler/, image_encoder/ (CLIPVisionModel)
and feature_extractor/ (CLIPImageProcessor). MVDream
(``ashawkey/mvdream-sd2.1-diffusers``): the same without the image parts and
with ``ip_dim`` 0. The sizes are small; the names, files and configs' keys are
the published ones (so are the 16 image-prompt tokens, CLIP's real tokenizer and
the text encoder's 49,408-row table). A ``unet/mv_unet.py`` is written too, as
the repos ship it, to prove it is never run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tiny_clip import published
from tiny_ldm3d import save_sd2_parts

IMAGEDREAM_MODEL = "imagedream-ipmv-diffusers"  # its published configs, in data/published/

#: The published unet/config.json with tiny sizes (and MVDream's: no image tokens; ImageDream's ip_dim is set per model).
TINY_UNET = {
    **{k: v for k, v in published(IMAGEDREAM_MODEL)["unet"].items() if k != "ip_dim"},
    "channel_mult": [1, 2],
    "context_dim": 32,
    "model_channels": 32,
    "num_head_channels": 16,
}
IMAGE_WIDTH = 48  # the tiny CLIP vision model's hidden size (the real one: 1280)
TRAP = "raise RuntimeError('the repo\\'s own mv_unet.py was executed')\n"


def build_tiny_multiview(folder: Path, image: bool = True, seed: int = 0, width: int = 32) -> Path:
    """Save a random ImageDream (``image``) or MVDream model to ``folder`` and return it. ``width`` scales the UNet."""
    from safetensors.torch import save_file
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    from engine.multiview.unet import MultiViewConfig, MultiViewUNet

    torch.manual_seed(seed)
    config = {**TINY_UNET, "model_channels": width, "ip_dim": published(IMAGEDREAM_MODEL)["unet"]["ip_dim"] if image else 0}
    unet = MultiViewUNet(MultiViewConfig.from_json(config), image_feature_dim=IMAGE_WIDTH)
    (folder / "unet").mkdir(parents=True, exist_ok=True)
    (folder / "unet" / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, folder / "unet" / "diffusion_pytorch_model.safetensors")
    (folder / "unet" / "mv_unet.py").write_text(TRAP, encoding="utf-8")
    save_sd2_parts(folder, IMAGEDREAM_MODEL, timestep_spacing="leading")
    index = {
        "_class_name": "MVDreamPipeline",
        "_diffusers_version": "0.25.0",
        "requires_safety_checker": False,
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["mv_unet", "MultiViewUNetModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    if image:
        CLIPVisionModel(
            CLIPVisionConfig(
                hidden_size=IMAGE_WIDTH, intermediate_size=64, num_attention_heads=4, num_hidden_layers=3, image_size=32, patch_size=8
            )
        ).save_pretrained(folder / "image_encoder")
        CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder / "feature_extractor")
        index.update(feature_extractor=["transformers", "CLIPImageProcessor"], image_encoder=["transformers", "CLIPVisionModel"])
    else:
        index.update(feature_extractor=[None, None], image_encoder=[None, None])
    (folder / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return folder


@torch.inference_mode()
def port_loop(model, s) -> np.ndarray:
    """A plain reference: the port's loop as its description gives it, for one object set with an image and guidance > 1.

    Every step rebuilds the batch [uncond × 5, cond × 5]: the text contexts, the
    raw image features through the resampler, the cameras and the image latent
    written into frames 4 and 9, then guidance and a DDIM step. Returns the four
    views, 4 × H × W × 3 in [0, 1].
    """
    from engine.diffusion import core
    from engine.multiview.cameras import model_cameras

    size = s.size
    unet, vae, scaling = model.unet, model.vae, model.vae.config.scaling_factor
    scheduler = core.make_scheduler("DDIM", model.scheduler_config)
    scheduler.set_timesteps(s.steps)
    latents = (
        torch.randn((5, 4, size // 8, size // 8), generator=torch.Generator("cpu").manual_seed(s.seeds[0])) * scheduler.init_noise_sigma
    )
    tokens = model.tokenizer([s.prompts[0], s.negatives[0]], padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    pos, neg = model.text_encoder(tokens.input_ids)[0].chunk(2)
    pixels = model.image_processor(images=np.round(s.image * 255).astype(np.uint8), return_tensors="pt").pixel_values
    ip = model.image_encoder(pixels, output_hidden_states=True).hidden_states[-2]
    ip_img = vae.encode(torch.from_numpy(s.image).permute(2, 0, 1)[None] * 2 - 1).latent_dist.mode() * scaling
    camera = torch.from_numpy(model_cameras(s.elevation))
    for t in scheduler.timesteps:
        x = scheduler.scale_model_input(torch.cat([latents] * 2), t)
        x[4::5] = torch.cat([torch.zeros_like(ip_img), ip_img])
        context = torch.cat([neg] * 5 + [pos] * 5)
        ip_tokens = unet.image_embed(torch.cat([torch.zeros_like(ip)] * 5 + [ip] * 5))
        timesteps = torch.tensor([t] * 10, dtype=latents.dtype)
        inputs = dict(camera=torch.cat([camera] * 2), num_frames=5)
        noise = unet(x, timesteps, torch.cat([context, ip_tokens], dim=1), return_dict=False, **inputs)[0]
        uncond, cond = noise.chunk(2)
        latents = scheduler.step(uncond + s.guidance * (cond - uncond), t, latents, return_dict=False)[0]
    decoded = vae.decode(latents[:4] / scaling, return_dict=False)[0]
    return (decoded.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
