"""Seconds for an RGBD panorama capture of the demo room, and how it scales.

Run from the repo root with the venv that has the ``bpy`` module::

    .venv/bin/python bench/bench_capture.py                 # full sweep (minutes on a small CPU)
    .venv/bin/python bench/bench_capture.py --quick         # smoke run, tiny sizes only
    .venv/bin/python bench/bench_capture.py --widths 1024 --sample-counts 32   # one point

Builds ``operators.demo.scene.build_demo_room`` in an empty scene and times
``bpy.ops.diffusion3d.capture_panorama(output_dir=<temp>, width=W, samples=S,
origin='LOCATION', location=EYE, overwrite=True)`` (Cycles render, saves, engine
encode of rgb.png / depth.exr / depth16.png / meta.json, images loaded back):
``seconds`` per point; ``render_seconds`` is Cycles' share (render_pre →
render_post handlers), the rest is file writing and encoding.

Points: every width in ``--widths`` at ``--fixed-samples`` samples, and every
count in ``--sample-counts`` at ``--fixed-width``; duplicates run once. Defaults:
widths 256, 512, 1024 at 32 samples; samples 8, 32, 128 at width 512. One
untimed tiny capture first absorbs Cycles' one-time start-up (reported as
``warmup_s``). The headline ``rgbd_1024x512_32spp_s`` is the 1024-wide,
32-sample point when it was run. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

QUICK_WIDTHS, QUICK_SAMPLES, QUICK_FIXED_WIDTH, QUICK_FIXED_SAMPLES = [32, 64], [1, 4], 32, 2


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.replace(",", " ").split()]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", type=int_list, default=[256, 512, 1024], help="widths at --fixed-samples (default 256,512,1024)")
    p.add_argument("--sample-counts", type=int_list, default=[8, 32, 128], help="samples at --fixed-width (default 8,32,128)")
    p.add_argument("--fixed-samples", type=int, default=32, help="samples for the width sweep (default 32)")
    p.add_argument("--fixed-width", type=int, default=512, help="width for the samples sweep (default 512)")
    p.add_argument("--repeats", type=int, default=1, help="captures per point; seconds is their median (default 1)")
    p.add_argument("--no-denoise", action="store_true", help="capture with denoise off (the operator's default is on)")
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed tiny first capture")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: widths {QUICK_WIDTHS} at {QUICK_FIXED_SAMPLES} samples, samples {QUICK_SAMPLES} at width {QUICK_FIXED_WIDTH}",
    )
    args = p.parse_args()
    if args.quick:
        args.widths, args.sample_counts = QUICK_WIDTHS, QUICK_SAMPLES
        args.fixed_width, args.fixed_samples = QUICK_FIXED_WIDTH, QUICK_FIXED_SAMPLES
    return args


def points(args: argparse.Namespace) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for pair in [(w, args.fixed_samples) for w in args.widths] + [(args.fixed_width, s) for s in args.sample_counts]:
        if pair not in out:
            out.append(pair)
    for width, samples in out:
        if width < 16 or width % 2 or samples < 1:
            raise SystemExit(f"Bad point {width} wide / {samples} samples: widths are even and ≥ 16, samples ≥ 1")
    return out


def main() -> None:
    args = parse_args()
    todo = points(args)
    bpy = _common.load_addon()
    from diffusion3d.operators.demo.scene import EYE, build_demo_room

    scene = bpy.context.scene
    build_demo_room(scene)
    tmp = Path(tempfile.mkdtemp(prefix="d3d-bench-capture-"))

    # Cycles' own share: render_pre → render_post (the rest is saving, encoding, loading back).
    marks: dict = {}

    def render_pre(*_args) -> None:
        marks["pre"] = time.perf_counter()

    def render_post(*_args) -> None:
        marks["post"] = time.perf_counter()

    bpy.app.handlers.render_pre.append(render_pre)
    bpy.app.handlers.render_post.append(render_post)

    def capture(width: int, samples: int) -> tuple[float, float]:
        out_dir = tmp / f"{width}x{width // 2}-{samples}spp"
        marks.clear()
        start = time.perf_counter()
        result = bpy.ops.diffusion3d.capture_panorama(
            output_dir=str(out_dir),
            width=width,
            samples=samples,
            denoise=not args.no_denoise,
            origin="LOCATION",
            location=EYE,
            overwrite=True,
        )
        elapsed = time.perf_counter() - start
        if result != {"FINISHED"}:
            raise RuntimeError(f"capture_panorama {width}×{width // 2} at {samples} samples returned {result}")
        missing = [n for n in ("rgb.png", "depth.exr", "depth16.png", "meta.json") if not (out_dir / n).is_file()]
        if missing:
            raise RuntimeError(f"capture_panorama left out {missing} in {out_dir}")
        for image in list(bpy.data.images):  # the operator loads rgb/depth back; keep memory flat
            if image.type != "RENDER_RESULT":
                bpy.data.images.remove(image)
        shutil.rmtree(out_dir, ignore_errors=True)
        render = marks["post"] - marks["pre"] if {"pre", "post"} <= set(marks) else float("nan")
        return elapsed, render

    try:
        warmup_s = None if args.no_warmup else capture(16, 1)[0]
        rows = []
        for width, samples in todo:
            runs = [capture(width, samples) for _ in range(args.repeats)]
            times = [total for total, _ in runs]
            rows.append(
                {
                    "width": width,
                    "height": width // 2,
                    "samples": samples,
                    "seconds": statistics.median(times),
                    "render_seconds": statistics.median(render for _, render in runs),
                    "all_seconds": times,
                    "megapixel_samples_per_s": width * (width // 2) * samples / statistics.median(times) / 1e6,
                }
            )
            print(f"[bench_capture] {width}x{width // 2} {samples} spp: {statistics.median(times):.2f} s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    headline = next((r["seconds"] for r in rows if r["width"] == 1024 and r["samples"] == 32), None)
    cycles = scene.cycles
    result = {
        "benchmark": "capture",
        "scene": "demo room (operators.demo.scene.build_demo_room), captured from EYE",
        "eye": list(EYE),
        "rgbd_1024x512_32spp_s": headline,
        "results": rows,
        "width_sweep_samples": args.fixed_samples,
        "samples_sweep_width": args.fixed_width,
        "warmup_s": warmup_s,
        "denoise": not args.no_denoise,
        "cycles": {
            "device": getattr(cycles, "device", ""),
            "threads_mode": scene.render.threads_mode,
            "threads": scene.render.threads,
        },
        "machine": _common.machine_info(bpy),
        "options": vars(args),
        "command": _common.command_line(),
    }
    _common.finish_bpy(result)


if __name__ == "__main__":
    _common.run_main(main, "capture")
