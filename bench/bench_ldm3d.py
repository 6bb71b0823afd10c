"""The product's LDM3D pipeline against diffusers' own, and UNet calls per scheduler.

Run from the repo root (no bpy needed)::

    .venv/bin/python bench/bench_ldm3d.py [--repeats 3] [--steps 10]
    .venv/bin/python bench/bench_ldm3d.py --full-size      # on a CUDA GPU: seconds per 1024×512 panorama

CPU part (always): random-weight LDM3D-4c models in the published layout, built
into a temporary folder and loaded through the product's loader.

* ``overhead``: for a tiny and a mid-size model, the same prompt, seed, DDIM
  steps and size through ``engine.diffusion.ldm3d.generate`` and through
  ``StableDiffusionLDM3DPipeline`` (output_type "np") on the same modules;
  runs alternate (and alternate who goes first), medians compared.
  ``ratio_product_over_diffusers`` ≤ 1.0 is the target (the product adds no
  overhead); ``ratio_of_minimums`` is less sensitive to other work on a shared
  machine. The outputs are compared too (``max_abs_rgb_difference``).
* ``unet_evaluations``: UNet forward calls (counted with a hook) and batch
  entries evaluated (×2 with classifier-free guidance) per panorama for each
  scheduler at its recommended step count.

GPU part (``--full-size``, CUDA only): a full-size SD-1.x-shaped random model
(UNet 320/640/1280/1280, CLIP ViT-L text encoder, 4-channel VAE) at 1024×512:
seconds per panorama for 50 DDIM and 20 DPM-Solver++ steps, fp32 and fp16,
with and without ``torch.compile``, and the peak GPU memory of each.
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, command_line, emit, machine_info, run_main

sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests" / "engine"))

import numpy as np
import torch
from tiny_clip import clip_text_config, published, write_clip_tokenizer
from tiny_ldm3d import LDM3D, build_tiny_ldm3d, diffusers_ldm3d_pipeline

from engine.choices import SCHEDULERS
from engine.diffusion import loading, sources
from engine.progress import CancelToken, Reporter
from engine.world import ldm3d_pipeline as ldm3d

PROMPT = "panoramic view of a cosy living room"


def quiet() -> Reporter:
    return Reporter(lambda p: None, CancelToken(), 1)


def settings(width: int, height: int, steps: int, scheduler: str = "DDIM") -> ldm3d.RGBDSettings:
    return ldm3d.RGBDSettings([PROMPT], [""], [0], width, height, steps=steps, guidance=7.0, scheduler=scheduler)


def overhead(folder: Path, width: int, height: int, steps: int, repeats: int) -> dict[str, Any]:
    model = loading.load_stable_diffusion(sources.inspect_ldm3d(folder), torch.device("cpu"), torch.float32)
    pipe = diffusers_ldm3d_pipeline(model)
    s = settings(width, height, steps)

    def ours() -> np.ndarray:
        return ldm3d.generate(model, s, quiet()).rgb

    def theirs() -> np.ndarray:
        out = pipe(
            PROMPT,
            width=width,
            height=height,
            num_inference_steps=steps,
            guidance_scale=7.0,
            generator=torch.Generator("cpu").manual_seed(0),
            output_type="np",
        )
        return out.rgb

    max_diff = float(np.abs(ours() - theirs()).max())  # also the warm-up
    times: dict[str, list[float]] = {"product": [], "diffusers": []}
    order = [("product", ours), ("diffusers", theirs)]
    for round_ in range(repeats):
        for name, run in order if round_ % 2 == 0 else order[::-1]:  # alternate who goes first
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    product, reference = statistics.median(times["product"]), statistics.median(times["diffusers"])
    params = sum(p.numel() for m in (model.unet, model.vae, model.text_encoder) for p in m.parameters())
    return {
        "size": f"{width}x{height}",
        "steps": steps,
        "parameters": params,
        "product_median_s": round(product, 4),
        "diffusers_median_s": round(reference, 4),
        "ratio_product_over_diffusers": round(product / reference, 3),
        "ratio_of_minimums": round(min(times["product"]) / min(times["diffusers"]), 3),
        "max_abs_rgb_difference": max_diff,
        "times_s": {k: [round(t, 4) for t in v] for k, v in times.items()},
    }


def unet_evaluations(folder: Path) -> dict[str, Any]:
    model = loading.load_stable_diffusion(sources.inspect_ldm3d(folder), torch.device("cpu"), torch.float32)
    calls: list[int] = []
    hook = model.unet.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    figures = {}
    try:
        for name, steps in ((s.id, s.steps) for s in SCHEDULERS):
            calls.clear()
            ldm3d.generate(model, settings(64, 32, steps, name), quiet())
            figures[name] = {"steps": steps, "unet_calls": len(calls), "batch_entries_evaluated": sum(calls)}
    finally:
        hook.remove()
    return figures


def build_full_size(folder: Path) -> Path:
    """A random SD-1.x-shaped LDM3D-4c model (≈1.07 B parameters), saved in the published layout."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    UNet2DConditionModel(cross_attention_dim=768, sample_size=64).save_pretrained(folder / "unet")
    AutoencoderKL(
        in_channels=4,
        out_channels=4,
        latent_channels=4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=512,
    ).save_pretrained(folder / "vae")
    sizes = published("stable-diffusion-v1-5")["text_encoder"]  # LDM3D's is SD 1.x's CLIP ViT-L/14
    kept = ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers", "projection_dim")
    CLIPTextModel(clip_text_config(LDM3D, **{k: sizes[k] for k in kept})).save_pretrained(folder / "text_encoder")
    DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False
    ).save_pretrained(folder / "scheduler")
    write_clip_tokenizer(folder / "tokenizer", LDM3D)
    return folder


def full_size(folder: Path) -> dict[str, Any]:
    device = torch.device("cuda")
    results: dict[str, Any] = {"gpu": torch.cuda.get_device_name(device)}
    for dtype_name, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        loading.release()
        model = loading.load_stable_diffusion(sources.inspect_ldm3d(folder), device, dtype)
        eager_unet = model.unet
        for compiled in (False, True):
            model.unet = torch.compile(eager_unet) if compiled else eager_unet
            for scheduler, steps in (("DDIM", 50), ("DPMPP_2M", 20)):
                s = settings(1024, 512, steps, scheduler)
                ldm3d.generate(model, s, quiet())  # warm-up (compiles)
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
                ldm3d.generate(model, s, quiet())
                torch.cuda.synchronize()
                key = f"{scheduler}_{steps}_{dtype_name}{'_compiled' if compiled else ''}"
                results[key] = {
                    "seconds_per_panorama": round(time.perf_counter() - start, 3),
                    "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                }
        model.unet = eager_unet
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--full-size", action="store_true", help="also the full-size GPU figures (needs CUDA)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    result: dict[str, Any] = {"benchmark": "ldm3d", "command": command_line(), "machine": machine_info(), "torch": torch.__version__}
    with tempfile.TemporaryDirectory(prefix="d3d-bench-ldm3d-") as tmp:
        tiny = build_tiny_ldm3d(Path(tmp) / "tiny", vae_channels=4)
        mid = build_tiny_ldm3d(Path(tmp) / "mid", vae_channels=4, width=128, vae_blocks=3)
        result["overhead"] = {
            "tiny": overhead(tiny, 128, 64, args.steps, args.repeats),
            "mid": overhead(mid, 256, 128, args.steps, args.repeats),
        }
        result["meets_target"] = all(v["ratio_product_over_diffusers"] <= 1.0 for v in result["overhead"].values())
        result["unet_evaluations"] = unet_evaluations(tiny)
        if args.full_size:
            if torch.cuda.is_available():
                result["full_size_gpu"] = full_size(build_full_size(Path(tmp) / "full"))
            else:
                result["full_size_gpu"] = "skipped: no CUDA GPU here"
    emit(result)


if __name__ == "__main__":
    run_main(main, "ldm3d")
