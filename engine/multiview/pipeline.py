"""Multi-view diffusion on the shared denoising core: one object image (ImageDream) or a prompt (MVDream) → four views.

Reads top to bottom: encode the prompt, and the image as CLIP features (through
the UNet's resampler into extra context tokens) and as a VAE latent → draw the
latents, one (frames, 4, h, w) draw per object set → denoise, every step
seeing the four views' cameras and, in each object's last frame, the image
latent → decode the four views. Frames of an object are consecutive; with
guidance the batch is [unconditional × frames, conditional × frames], and the
unconditional half gets zero image features and a zero image latent, as the
published port (``ashawkey/mvdream_diffusers``) runs it, so the same seed on
the CPU gives the same initial latents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..diffusion import core
from ..diffusion.loading import on_device
from ..progress import Reporter
from .cameras import model_cameras
from .model import MultiViewModel

VIEWS = 4


@dataclass
class ViewSettings:
    prompts: Sequence[str]  # one per object set
    negatives: Sequence[str]
    seeds: Sequence[int]  # one per object set
    size: int = 256
    steps: int = 50
    guidance: float = 5.0
    scheduler: str = "DDIM"
    elevation: float = 0.0
    image: np.ndarray | None = None  # ImageDream: the prepared input, size × size × 3 float in [0, 1]


@dataclass
class ViewImages:
    views: np.ndarray  # sets × 4 × size × size × 3 float32 in [0, 1], azimuths 0, 90, 180, 270
    unet_calls: int = 0
    timesteps: list[int] = field(default_factory=list)


def image_features(model: MultiViewModel, rgb: np.ndarray) -> torch.Tensor:
    """CLIP ViT's penultimate hidden states of the image [1, 257, width], prepared as the model folder's processor says."""
    pixels = model.image_processor(images=np.round(rgb * 255).astype(np.uint8), return_tensors="pt").pixel_values
    with on_device(model, model.image_encoder):
        out = model.image_encoder(pixels.to(model.device, model.image_encoder.dtype), output_hidden_states=True)
    return out.hidden_states[-2]  # type: ignore[no-any-return]


def image_latent(model: MultiViewModel, rgb: np.ndarray) -> torch.Tensor:
    """The image's VAE latent [1, 4, h, w]: the posterior's mean (the port samples it unseeded; the mean is reproducible)."""
    pixels = torch.from_numpy(np.ascontiguousarray(rgb, np.float32)).permute(2, 0, 1)[None] * 2 - 1
    with on_device(model, model.vae):
        latent = model.vae.encode(pixels.to(model.device, model.vae.dtype)).latent_dist.mode()
    return latent * model.vae.config.scaling_factor  # type: ignore[no-any-return]


def views_preview(latents: torch.Tensor) -> np.ndarray:
    """The first object's four views side by side, from their latents."""
    return core.latent_preview(torch.cat(list(latents[:VIEWS]), dim=-1)[None])


@torch.inference_mode()
def generate(model: MultiViewModel, s: ViewSettings, report: Reporter) -> ViewImages:
    device, unet, vae = model.device, model.unet, model.vae
    sets, frames = len(s.seeds), VIEWS + (s.image is not None)
    factor = model.folder.vae_scale_factor
    latent_side = s.size // factor

    # 1. Encode the prompt, and the image: CLIP features → context tokens, pixels → the image frame's latent
    with on_device(model, model.text_encoder):
        cond = core.encode_prompts(model.tokenizer, model.text_encoder, s.prompts, s.negatives, s.guidance, device)
    halves = 2 if cond.guided else 1
    context = cond.embeds.repeat_interleave(frames, dim=0)  # [uncond × frames per set…, cond × frames per set…]
    inputs: dict[str, object] = {"num_frames": frames}
    if s.image is not None:
        features = image_features(model, s.image)
        with on_device(model, unet):
            tokens = unet.image_tokens(torch.cat([torch.zeros_like(features), features]) if cond.guided else features)
        context = torch.cat([context, tokens.repeat_interleave(sets * frames, dim=0).to(context.dtype)], dim=1)
        latent = image_latent(model, s.image).expand(sets, -1, -1, -1)
        inputs["image_latent"] = torch.cat([torch.zeros_like(latent), latent]) if cond.guided else latent
    cameras = torch.from_numpy(model_cameras(s.elevation, image_frame=s.image is not None))
    inputs["camera"] = cameras.repeat(sets * halves, 1).to(device)
    report.step("Prompt and image encoded")

    # 2. Latents: one draw of (frames, 4, h, w) per object set, from its seed
    scheduler = core.make_scheduler(s.scheduler, model.scheduler_config)
    scheduler.set_timesteps(s.steps, device=device)
    gens = core.generators(s.seeds)
    channels = unet.config.in_channels
    noise = core.initial_noise((sets, frames * channels, latent_side, latent_side), gens, model.dtype, device)
    latents = noise.reshape(sets * frames, channels, latent_side, latent_side) * scheduler.init_noise_sigma
    report.step("Latents ready")

    # 3. Denoise: the cameras, frame count and image latent go with every UNet call
    with on_device(model, unet):
        latents = core.denoise(
            unet,
            scheduler,
            latents,
            core.Conditioning(context, s.guidance),
            scheduler.timesteps,
            report,
            gens,
            step_inputs=lambda _x, _t: inputs,
            preview=views_preview,
        )

    # 4. Decode the four views of every set (the image frame is not an output)
    views = latents.reshape(sets, frames, channels, latent_side, latent_side)[:, :VIEWS].reshape(-1, channels, latent_side, latent_side)
    with on_device(model, vae):
        decoded = vae.decode(views / vae.config.scaling_factor, return_dict=False)[0]
    pixels = core.to_pixels(decoded)
    report.step("Decoded")
    timesteps = [int(t) for t in scheduler.timesteps]
    return ViewImages(pixels.reshape(sets, VIEWS, s.size, s.size, 3), unet_calls=len(timesteps), timesteps=timesteps)
