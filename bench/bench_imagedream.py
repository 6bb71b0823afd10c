"""The product's ImageDream pipeline against a plain reference loop, and (on a GPU) four full-size views' seconds.

Run from the repo root (no bpy needed)::

    .venv/bin/python bench/bench_imagedream.py [--repeats 6] [--steps 10]
    .venv/bin/python bench/bench_imagedream.py --full-size      # on a CUDA GPU

CPU part (always): random-weight ImageDream models in the published layout,
built into a temporary folder and loaded through the product's loader.
``overhead``: for a tiny and a mid-size model, the same object image, prompt,
seed and DDIM steps through ``engine.diffusion.multiview.generate`` and
through ``port_loop`` (tests/engine/tiny_multiview.py: the port's loop written
plainly, rebuilding its batch and the image tokens every step); runs
alternate (and alternate who goes first), medians compared.
``ratio_product_over_reference`` ≤ 1.0 is the target; the views are compared
too (``max_abs_difference``).

GPU part (``--full-size``, CUDA only): full-size random weights of every
published component (our multi-view UNet from the published config, 942 M
parameters; SD 2.1's VAE and CLIP text encoder; CLIP ViT-H/14 image encoder),
built on the device: seconds for four 256² views at 50 DDIM steps, fp16 and
bf16, eager and ``torch.compile``d UNet, and peak GPU memory. ``--device cpu
--steps 1 --dtypes fp32 --no-compile`` runs the same path as a smoke test.
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from tiny_multiview import build_tiny_multiview, port_loop

from engine.diffusion import loading
from engine.multiview import pipeline as multiview
from engine.multiview.model import IMAGEDREAM, MultiViewFolder, MultiViewModel, inspect_multiview, load_multiview
from engine.progress import CancelToken, Reporter

PROMPT = "a wooden toy car"
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def quiet() -> Reporter:
    return Reporter(lambda p: None, CancelToken(), 1)


def object_image(size: int) -> np.ndarray:
    rgb = np.ones((size, size, 3), np.float32)
    rgb[size // 4 : 3 * size // 4, size // 3 : 2 * size // 3] = [0.7, 0.4, 0.2]
    return rgb


def settings(size: int, steps: int) -> multiview.ViewSettings:
    return multiview.ViewSettings([PROMPT], [""], [0], size=size, steps=steps, guidance=5.0, image=object_image(size))


def overhead(folder: Path, size: int, steps: int, repeats: int) -> dict[str, Any]:
    loading.release()
    model = load_multiview(inspect_multiview(folder), torch.device("cpu"), torch.float32)
    s = settings(size, steps)

    def ours() -> np.ndarray:
        return multiview.generate(model, s, quiet()).views[0]

    def reference() -> np.ndarray:
        return port_loop(model, s)

    max_diff = float(np.abs(ours() - reference()).max())  # also the warm-up
    times: dict[str, list[float]] = {"product": [], "reference": []}
    order = [("product", ours), ("reference", reference)]
    for round_ in range(repeats):
        for name, run in order if round_ % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    product, plain = statistics.median(times["product"]), statistics.median(times["reference"])
    params = sum(p.numel() for m in (model.unet, model.vae, model.text_encoder, model.image_encoder) for p in m.parameters())
    return {
        "size": f"{size}x{size}",
        "steps": steps,
        "parameters": params,
        "product_median_s": round(product, 4),
        "reference_median_s": round(plain, 4),
        "ratio_product_over_reference": round(product / plain, 3),
        "ratio_of_minimums": round(min(times["product"]) / min(times["reference"]), 3),
        "max_abs_difference": max_diff,
        "times_s": {k: [round(t, 4) for t in v] for k, v in times.items()},
    }


def full_size_model(device: torch.device, dtype: torch.dtype) -> MultiViewModel:
    """Every component at its published size with random weights, built on ``device`` (no files: 3.9 GB in fp16)."""
    from diffusers import AutoencoderKL
    from tiny_clip import clip_text_config, published, write_clip_tokenizer
    from tiny_multiview import IMAGEDREAM_MODEL
    from transformers import CLIPImageProcessorPil, CLIPTextModel, CLIPTokenizer, CLIPVisionConfig, CLIPVisionModel

    from engine.multiview.unet import MultiViewConfig, MultiViewUNet

    config = MultiViewConfig(ip_dim=16)  # its defaults are the published unet/config.json's sizes
    torch.manual_seed(0)
    with torch.device(device):
        unet = MultiViewUNet(config).to(dtype)
        vae = AutoencoderKL(
            block_out_channels=[128, 256, 512, 512],
            down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4,
            layers_per_block=2,
            sample_size=256,
        ).to(dtype)
        sizes = ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers", "projection_dim")
        published_text = published(IMAGEDREAM_MODEL)["text_encoder"]
        text = CLIPTextModel(clip_text_config(IMAGEDREAM_MODEL, **{k: published_text[k] for k in sizes})).to(dtype)
        image = CLIPVisionModel(
            CLIPVisionConfig(
                hidden_size=1280, intermediate_size=5120, num_attention_heads=16, num_hidden_layers=32, patch_size=14, image_size=224
            )
        ).to(dtype)
    tokens = Path(tempfile.mkdtemp(prefix="d3d-bench-tokenizer-"))
    write_clip_tokenizer(tokens, IMAGEDREAM_MODEL)
    schedule = {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "prediction_type": "epsilon",
        "clip_sample": False,
        "set_alpha_to_one": False,
        "steps_offset": 1,
        "timestep_spacing": "leading",
    }
    folder = MultiViewFolder(
        Path("full-size"),
        "full-size random",
        IMAGEDREAM,
        "random",
        {},
        dataclasses.asdict(config),
        {"block_out_channels": [128, 256, 512, 512]},
    )
    modules = [m.eval().requires_grad_(False) for m in (unet, vae, text, image)]
    return MultiViewModel(
        folder,
        CLIPTokenizer.from_pretrained(tokens),
        modules[2],
        modules[0],
        modules[1],
        modules[3],
        CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}),
        schedule,
        device,
        dtype,
    )


def full_size(device: torch.device, dtype_names: list[str], steps: int, compile_too: bool) -> dict[str, Any]:
    cuda = device.type == "cuda"
    results: dict[str, Any] = {"device": torch.cuda.get_device_name(device) if cuda else "cpu", "steps": steps, "size": "256x256"}
    s = settings(256, steps)
    for name in dtype_names:
        loading.release()
        model = full_size_model(device, DTYPES[name])
        results["parameters"] = sum(
            p.numel() for m in (model.unet, model.vae, model.text_encoder, model.image_encoder) for p in m.parameters()
        )
        eager = model.unet
        for compiled in [False, True] if compile_too else [False]:
            model.unet = torch.compile(eager) if compiled else eager
            multiview.generate(model, s, quiet())  # warm-up (compiles)
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            views = multiview.generate(model, s, quiet()).views
            if cuda:
                torch.cuda.synchronize()
            key = f"{name}{'_compiled' if compiled else '_eager'}"
            results[key] = {"seconds_for_four_views": round(time.perf_counter() - start, 3), "finite": bool(np.isfinite(views).all())}
            if cuda:
                results[key]["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        del model, eager
    timed = [v["seconds_for_four_views"] for k, v in results.items() if isinstance(v, dict) and k != "fp32_eager"]
    if cuda and steps == 50 and timed:
        results["meets_target_1s"] = min(timed) <= 1.0
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--steps", type=int, default=10, help="CPU part's steps; the full-size part uses --full-steps")
    parser.add_argument("--full-size", action="store_true", help="also the full-size figures (CUDA unless --device says otherwise)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--full-steps", type=int, default=50)
    parser.add_argument("--dtypes", default="fp16,bf16")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--skip-cpu", action="store_true", help="only the full-size part")
    args = parser.parse_args()
    result: dict[str, Any] = {"benchmark": "imagedream", "command": command_line(), "machine": machine_info(), "torch": torch.__version__}
    with tempfile.TemporaryDirectory(prefix="d3d-bench-imagedream-") as tmp:
        if not args.skip_cpu:
            tiny = build_tiny_multiview(Path(tmp) / "tiny")
            mid = build_tiny_multiview(Path(tmp) / "mid", width=96)
            result["overhead"] = {"tiny": overhead(tiny, 64, args.steps, args.repeats), "mid": overhead(mid, 128, args.steps, args.repeats)}
            result["meets_target"] = all(v["ratio_product_over_reference"] <= 1.0 for v in result["overhead"].values())
        if args.full_size:
            device = torch.device(args.device)
            if device.type == "cuda" and not torch.cuda.is_available():
                result["full_size"] = "skipped: no CUDA GPU here"
            else:
                result["full_size"] = full_size(device, args.dtypes.split(","), args.full_steps, not args.no_compile)
    emit(result)


if __name__ == "__main__":
    run_main(main, "imagedream")
