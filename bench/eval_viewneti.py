"""ViewNeTI's evaluation: novel views for held-out cameras against their ground truth. The last stdout line is one JSON object.

Two protocols (``engine/viewneti/evaluate.py``), no bpy needed::

    # the original's DTU protocol: 1 or 3 input views per test scan, a pre-trained DTU-12 view mapper frozen
    .venv/bin/python bench/eval_viewneti.py dtu --root data/dtu --view-mapper out/pretrained --inputs 1 --out out/eval-dtu
    # objects rendered in Blender (batch.py viewneti-data): views 0 and 6 in, the rest held out
    .venv/bin/python bench/eval_viewneti.py held-out --set out/toy-views --inputs 0 6 --view-mapper out/pretrained --out out/eval-toy

Both print masked PSNR and SSIM per view and averaged (DTU: over the 25 test
views and over all 34, as the original's two scripts), and LPIPS (VGG) where
the ``lpips`` package and the VGG-16 weights are on this machine. On tiny
random models (the tests) the numbers mean nothing; on SD 2.1 with a
pre-trained view mapper they are the figures to publish.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, command_line, emit, machine_info, run_main

sys.path.insert(0, str(REPO_ROOT))

from engine.choices import DEVICES, PRECISIONS, SCHEDULERS
from engine.diffusion.sources import ModelAccess
from engine.progress import CancelToken, Progress, Reporter
from engine.viewneti import dtu
from engine.viewneti.evaluate import EvalSettings, dtu_protocol, held_out_protocol


def settings(args: argparse.Namespace) -> EvalSettings:
    return EvalSettings(
        model=args.model,
        out_dir=str(Path(args.out).resolve()),
        view_mapper=str(Path(args.view_mapper).resolve()) if args.view_mapper else "",
        fit_steps=args.fit_steps,
        train_width=args.train_size[0],
        train_height=args.train_size[1],
        width=args.size[0],
        height=args.size[1],
        eval_size=(args.eval_size[0], args.eval_size[1]),
        steps=args.steps,
        guidance=args.guidance,
        scheduler=SCHEDULERS.from_cli(args.scheduler),
        seed=args.seed,
        access=ModelAccess(
            models_dir=args.models_dir or "", device=DEVICES.from_cli(args.device), precision=PRECISIONS.from_cli(args.precision)
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="protocol", required=True)
    d = sub.add_parser("dtu", help="the original's DTU protocol")
    d.add_argument("--root", required=True, help="DTU: Rectified/, Calibration/cal18/, submission_data/idrmasks/")
    d.add_argument("--scans", type=int, nargs="+", default=list(dtu.TEST_SCANS))
    d.add_argument("--inputs", type=int, choices=dtu.INPUT_COUNTS, default=1)
    h = sub.add_parser("held-out", help="hold out views of a posed set rendered in Blender")
    h.add_argument("--set", required=True, help="a posed set (batch.py viewneti-data)")
    h.add_argument("--inputs", type=int, nargs="+", required=True, help="the input views (0-based); the rest are held out")
    for p in (d, h):
        p.add_argument("--model", default="stabilityai/stable-diffusion-2-1")
        p.add_argument("--models-dir", help="a local models folder (else the Hugging Face cache; nothing is downloaded)")
        p.add_argument("--view-mapper", required=p is d, help="a pre-trained checkpoint (held-out without one: a scene run on the inputs)")
        p.add_argument("--fit-steps", type=int, default=3000)
        p.add_argument("--train-size", type=int, nargs=2, default=(512, 384), metavar=("W", "H"), help="a scene run's training size")
        p.add_argument("--size", type=int, nargs=2, default=(768, 576), metavar=("W", "H"), help="DTU: the rendered views' size")
        p.add_argument("--eval-size", type=int, nargs=2, default=(400, 300), metavar=("W", "H"), help="DTU: the size compared at")
        p.add_argument("--steps", type=int, default=30)
        p.add_argument("--guidance", type=float, default=7.5)
        p.add_argument("--scheduler", choices=SCHEDULERS.cli_names, default="dpmpp-2m")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default="auto", choices=DEVICES.cli_names)
        p.add_argument("--precision", default="auto", choices=PRECISIONS.cli_names)
        p.add_argument("--out", required=True)
    args = parser.parse_args()

    def show(p: Progress) -> None:
        print(f"[eval_viewneti] {p.done}/{p.total} {p.message}", file=sys.stderr, flush=True)

    report = Reporter(show, CancelToken())
    started = time.perf_counter()
    s = settings(args)
    if args.protocol == "dtu":
        scores: dict[str, Any] = dtu_protocol(Path(args.root), args.scans, args.inputs, s, report)
    else:
        scores = held_out_protocol(Path(args.set), args.inputs, s, report)
    seconds = round(time.perf_counter() - started, 1)
    emit({"benchmark": "eval_viewneti", "command": command_line(), "machine": machine_info(), **scores, "seconds": seconds})


if __name__ == "__main__":
    run_main(main, "eval_viewneti")
