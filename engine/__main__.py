"""Command line: ``python -m engine {info,depth-info,worker}`` from the add-on folder."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from . import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine",
        description="Diffusion 3D engine: RGBD panoramas, world spheres and diffusion jobs, without Blender.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="report this Python's packages and devices as JSON")
    info.add_argument("--no-torch", action="store_true", help="skip importing torch (fast)")
    depth = commands.add_parser("depth-info", help="how a depth panorama file reads: size, storage, the mode Auto chooses, range")
    depth.add_argument("path", help="EXR (any compression), .npy, HDR, TIFF, PNG, JPEG, …")
    worker = commands.add_parser("worker", help="serve jobs over stdin/stdout (started by the add-on)")
    worker.add_argument("--scratch", required=True, help="private folder for array files")
    args = parser.parse_args(argv)

    if args.command == "worker":
        from .worker import main as serve

        return serve(args.scratch)
    if args.command == "depth-info":
        return _depth_info(args.path)
    from .info import InfoRequest, engine_info
    from .progress import CancelToken, Reporter

    result = engine_info(InfoRequest(import_torch=not args.no_torch), Reporter(lambda p: None, CancelToken()))
    print(json.dumps(dataclasses.asdict(result), indent=2))
    return 0


def _depth_info(path: str) -> int:
    from .errors import EngineError
    from .world.depth import read_depth_file

    try:
        stored = read_depth_file(path)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    values = stored.values
    height, width = values.shape
    summary = {"path": path, "width": width, "height": height, "stored": stored.kind, "auto_mode": stored.mode}
    summary.update(min=float(values.min()), max=float(values.max()))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
