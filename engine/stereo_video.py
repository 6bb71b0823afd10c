"""The engine's part of a stereo video: tag Blender's MP4 with spatial metadata and put it in place.

An image sequence has no container to carry the layout, so it gets a
``stereo.json`` beside its frames instead.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from . import spatial_media
from .choices import STEREO_LAYOUTS
from .errors import BadInput
from .imagefiles import NewFiles
from .progress import Reporter

SIDECAR = "stereo.json"
FRAME_PREFIX = "frame_"


def eye_size(width: int, spherical: bool) -> tuple[int, int]:
    """One eye's image: 2:1 for 360°, 16:9 for flat (both even, as H.264 needs)."""
    height = width // 2 if spherical else int(round(width * 9 / 16))
    return width, height + height % 2


def frame_size(eye: tuple[int, int], layout: str) -> tuple[int, int]:
    """A whole frame of ``layout`` (a ``choices.STEREO_LAYOUTS`` id): the eyes stacked, side by side, or one."""
    across, down = STEREO_LAYOUTS.get(layout).eyes
    return eye[0] * across, eye[1] * down


def frame_files(folder: Path) -> list[Path]:
    """A sequence's frames (``frame_NNNN.png``/``.exr``), in order; none when the folder is missing."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{FRAME_PREFIX}*") if p.suffix.lower() in (".png", ".exr"))


@dataclass
class VideoRequest:
    encoded: str  # the MP4 Blender's FFmpeg wrote (in a scratch folder); "" for an image sequence
    out_path: str  # the .mp4, or the sequence's folder
    stereo: str = spatial_media.TOP_BOTTOM  # mono, top-bottom or left-right
    spherical: bool = True  # 360° equirectangular
    overwrite: bool = False
    fps: float = 24.0
    width: int = 0  # of a whole frame (both eyes), for a sequence's description
    height: int = 0


@dataclass
class VideoResult:
    path: str
    size_bytes: int
    width: int
    height: int
    frames: int
    stereo: str
    projection: str  # "equirectangular", or "" for flat


def finish_video(request: VideoRequest, report: Reporter) -> VideoResult:
    report.total = 2
    result = _tag_mp4(request) if request.encoded else _describe_sequence(request)
    report.step("Spatial metadata added")
    report.step("Done")
    return result


def _tag_mp4(request: VideoRequest) -> VideoResult:
    source, target = Path(request.encoded), Path(request.out_path)
    if not source.is_file():
        raise BadInput(f"No encoded video at {source}")
    if target.exists() and not request.overwrite:
        raise BadInput(f"{target} exists; allow overwriting to replace it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        spatial_media.inject(source, target, request.stereo, request.spherical, request.overwrite)
    except spatial_media.MP4Error as exc:
        raise BadInput(f"Cannot add spatial metadata to {source}: {exc}") from None
    except FileExistsError as exc:
        raise BadInput(str(exc)) from None
    except OSError as exc:
        raise BadInput(f"Cannot write {target}: {exc.strerror or exc}") from None
    meta = spatial_media.read(target)
    return VideoResult(str(target), target.stat().st_size, meta.width, meta.height, meta.frames, meta.stereo, meta.projection)


def _describe_sequence(request: VideoRequest) -> VideoResult:
    folder = Path(request.out_path)
    frames = [p.name for p in frame_files(folder)]
    if not frames:
        raise BadInput(f"No frames in {folder}")
    projection = spatial_media.EQUIRECTANGULAR if request.spherical else ""
    result = VideoResult(
        str(folder),
        sum((folder / f).stat().st_size for f in frames),
        request.width,
        request.height,
        len(frames),
        request.stereo,
        projection,
    )
    description = {**asdict(result), "fps": request.fps, "frame_files": frames}
    with NewFiles([folder / SIDECAR], request.overwrite) as files:
        files.write(folder / SIDECAR, lambda p: p.write_text(json.dumps(description, indent=1), encoding="utf-8"))
    return result
