"""LDM3D-sr's windowed denoising: its cost over one pass, and (on a GPU) seconds for a 4096×2048 RGBD upscale.

Run from the repo root (no bpy needed)::

    .venv/bin/python bench/bench_upscale.py [--repeats 5]
    .venv/bin/python bench/bench_upscale.py --full-size      # on a CUDA GPU

CPU part (always): a random UNet in LDM3D-sr's layout (8 channels in: noisy
and low-res latents; the noise level as class) at a quarter of SD 1.x's
widths (16 norm groups), built in memory. One guided denoising step at a 2:1 size where both
paths fit in memory: the single pass over the whole latent (convolutions
wrapped) against overlapping windows that wrap around the seam, one window
per UNet call and all windows in one call. Target: windowed ≤ 1.3× the single
pass. ``pixel_ratio`` is the area the windows cover over the image's (their
overlap); attention in a window is cheaper than over the whole image, so the
time ratio can be lower than the area ratio.

GPU part (``--full-size``, CUDA only): SD 1.x's full UNet sizes in LDM3D-sr's
layout with random weights in bf16: one guided step over 4096×2048 (512×256
latents) in 1024 px windows with 256 px overlap, extrapolated to 50 steps,
plus the VAE decode in float32 tiles; peak memory. Target ≤ 30 s on an
H100-class GPU. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, command_line, emit, machine_info, run_main

sys.path.insert(0, str(REPO_ROOT))

import torch

from engine.world.upscale_pipeline import WindowedUNet, plan_windows


def sr_unet(scale: float, device: torch.device, dtype: torch.dtype) -> Any:
    """A UNet in LDM3D-sr's layout (SD 1.x-shaped) at ``scale`` × SD 1.x's widths, random weights."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(
            block_out_channels=tuple(int(c * scale) for c in (320, 640, 1280, 1280)),
            norm_num_groups=32 if scale == 1 else 16,
            in_channels=8,
            out_channels=4,
            num_class_embeds=1000,
            cross_attention_dim=768,
            attention_head_dim=8,
        ).to(dtype)
    return unet.eval().requires_grad_(False)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_time(unet: Any, grid: tuple[int, int], window: int, overlap: int, batch: int, repeats: int) -> tuple[float, int]:
    """Median seconds of one guided UNet evaluation over ``grid`` latents in windows (one window covering all: the single pass)."""
    device, dtype = unet.device, unet.dtype
    windows = plan_windows(grid, window, overlap, wrap=True)
    condition = torch.randn(1, 4, *grid, device=device, dtype=dtype)
    windowed = WindowedUNet(unet, condition, 20, windows, overlap, batch)
    latents = torch.randn(2, 4, *grid, device=device, dtype=dtype)
    text = torch.randn(2, 77, 768, device=device, dtype=dtype)
    t = torch.tensor(500, device=device)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            sync(device)
            start = time.perf_counter()
            windowed(latents, t, encoder_hidden_states=text)
            sync(device)
            if i:  # the first call warms up
                times.append(time.perf_counter() - start)
    return statistics.median(times), len(windows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--full-size", action="store_true", help="SD 1.x's full UNet sizes over 4096×2048 on a CUDA GPU")
    args = parser.parse_args()
    result: dict[str, Any] = {"benchmark": "upscale", "command": command_line(), "machine": machine_info(), "torch": torch.__version__}
    torch.set_num_threads(max(1, torch.get_num_threads()))
    unet = sr_unet(0.25, torch.device("cpu"), torch.float32)
    grid, window, overlap = (48, 96), 48, 8  # latents of a 768×384 panorama; windows of 384 px sharing 64 px
    single, _ = step_time(unet, grid, max(grid), 0, 1, args.repeats)
    one_by_one, count = step_time(unet, grid, window, overlap, 1, args.repeats)
    batched, _ = step_time(unet, grid, window, overlap, count, args.repeats)
    windows = plan_windows(grid, window, overlap, wrap=True)
    pixel_ratio = len(windows) * windows.height * windows.width / (grid[0] * grid[1])
    best = min(one_by_one, batched)
    result["cpu_quarter_width"] = {
        "latents": f"{grid[1]}x{grid[0]}",
        "window_latents": window,
        "overlap_latents": overlap,
        "windows": count,
        "pixel_ratio": round(pixel_ratio, 3),
        "single_pass_s": round(single, 4),
        "windowed_one_per_call_s": round(one_by_one, 4),
        "windowed_batched_s": round(batched, 4),
        "ratio_windowed_over_single": round(best / single, 3),
        "meets_target_1_3": best / single <= 1.3,
    }
    if args.full_size:
        result["full_size_gpu"] = full_size(args.repeats) if torch.cuda.is_available() else "skipped: no CUDA GPU here"
    emit(result)


def full_size(repeats: int) -> dict[str, Any]:
    from diffusers import AutoencoderKL

    gpu = torch.device("cuda")
    torch.cuda.reset_peak_memory_stats(gpu)
    unet = sr_unet(1.0, gpu, torch.bfloat16)
    grid = (256, 512)  # 4096×2048
    per_step = {}
    for batch in (1, 6):
        seconds, count = step_time(unet, grid, 128, 32, batch, repeats)
        per_step[f"windows_per_call_{batch}"] = round(seconds, 3)
    best = min(per_step.values())
    vae = (
        AutoencoderKL(
            in_channels=4,
            out_channels=4,
            block_out_channels=[128, 256, 512, 512],
            down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4,
            layers_per_block=2,
            latent_channels=4,
        )
        .to(gpu)
        .eval()
    )
    vae.enable_tiling()
    with torch.inference_mode():
        latents = torch.randn(1, 4, *grid, device=gpu)
        sync(gpu)
        start = time.perf_counter()
        vae.decode(latents)
        sync(gpu)
        decode = time.perf_counter() - start
    total = 50 * best + decode
    return {
        "gpu": torch.cuda.get_device_name(gpu),
        "windows": count,
        "guided_step_s": per_step,
        "vae_decode_tiled_fp32_s": round(decode, 2),
        "seconds_4096x2048_50_steps": round(total, 1),
        "meets_target_30_s": total <= 30,
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(gpu) / 2**30, 2),
    }


if __name__ == "__main__":
    run_main(main, "upscale")
