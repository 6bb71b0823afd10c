"""The engine's part of a stereo video: tag Blender's MP4 with spatial metadata and put it in place.

An image sequence has no container to carry the layout, so it gets a
``stereo.json`` beside its frames instead. A still (one stereo image) is put in
place as it is, its name tagged like a video's.

VR180 (:data:`choices.VIDEO_PROJECTIONS`) renders the front half sphere: square
eyes, ``equi`` bounds cropping a quarter of the longitude from each side, and
the file-name tags players go by (``_180_sbs``, ``_180_tb``).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..choices import STEREO_LAYOUTS, VIDEO_FORMATS, VIDEO_LAYOUTS, VIDEO_PROJECTIONS, VIDEO_QUALITIES, VIDEO_RESOLUTIONS
from ..errors import BadInput
from ..imagefiles import NewFiles, copy_render
from ..params import PIXELS, Note, overwrite_field, param, refuse, writable
from ..progress import Reporter
from . import spatial_media

SIDECAR = "stereo.json"
FRAME_PREFIX = "frame_"


#: The tokens players read in a file name for each stereo mode (the first is what we add), and ones that contradict a half sphere.
_LAYOUT_TAGS = {spatial_media.LEFT_RIGHT: ("sbs", "lr"), spatial_media.TOP_BOTTOM: ("tb", "ou"), spatial_media.MONO: ()}
_OTHER_TAGS = frozenset({"rl", "bt", "360"})


def eye_size(width: int, spherical: bool, projection: str = VIDEO_PROJECTIONS.default) -> tuple[int, int]:
    """One eye's image: 2:1 for 360°, 16:9 for flat, as wide as tall for VR180 (sides even, as H.264 needs)."""
    longitude, latitude = VIDEO_PROJECTIONS.get(projection).field_of_view
    if longitude:
        width += width % 2
        height = int(round(width * latitude / longitude))
    else:
        height = width // 2 if spherical else int(round(width * 9 / 16))
    return width, height + height % 2


def projection_bounds(projection: str) -> spatial_media.Bounds:
    """The ``equi`` bounds of ``projection``: the whole sphere for the rig's own 360°, a quarter off each side for VR180."""
    longitude, latitude = VIDEO_PROJECTIONS.get(projection).field_of_view
    return spatial_media.crop_bounds(longitude, latitude) if longitude else spatial_media.WHOLE_SPHERE


def output_file(chosen: Path, suffix: str, projection: str, stereo: str) -> Path:
    """The file a video or still goes to: ``chosen`` given ``suffix`` (a folder: ``stereo`` + suffix in it), tagged for VR players."""
    if chosen.suffix.lower() != suffix:
        chosen = chosen.with_suffix(suffix) if chosen.suffix else chosen / f"stereo{suffix}"
    return tagged_path(chosen, projection, stereo)


def tagged_path(path: Path, projection: str, stereo: str) -> Path:
    """``path`` with the tags VR players read for a cropped sphere (``clip.mp4`` → ``clip_180_sbs.mp4``); the rig's own: as it is.

    Tags the name already carries are not repeated (``clip_180_LR.mp4`` stays); a name whose tags say
    otherwise (``clip_360.mp4``, ``clip_180_tb.mp4`` for side-by-side) is refused, as players would believe it.
    """
    longitude, _ = VIDEO_PROJECTIONS.get(projection).field_of_view
    if not longitude:
        return path
    tokens = set(re.split(r"[^0-9a-z]+", path.stem.lower()))
    sphere, layout = f"{longitude:g}", _LAYOUT_TAGS[stereo]
    clash = sorted(tokens & ((_OTHER_TAGS | {t for tags in _LAYOUT_TAGS.values() for t in tags}) - set(layout) - {sphere}))
    if clash:
        raise BadInput(
            f"{path.name} is tagged {', '.join(clash)}, but this is a {sphere}° {stereo} video: rename it or leave the tags to us"
        )
    missing = [] if sphere in tokens else [sphere]
    if layout and not tokens & set(layout):
        missing.append(layout[0])
    return path.with_name(path.stem + "".join(f"_{t}" for t in missing) + path.suffix)


def frame_size(eye: tuple[int, int], layout: str) -> tuple[int, int]:
    """A whole frame of ``layout`` (a ``choices.STEREO_LAYOUTS`` id): the eyes stacked, side by side, or one."""
    across, down = STEREO_LAYOUTS.get(layout).eyes
    return eye[0] * across, eye[1] * down


def frame_files(folder: Path) -> list[Path]:
    """A sequence's frames (``frame_NNNN.png``/``.exr``), in order; none when the folder is missing."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{FRAME_PREFIX}*") if p.suffix.lower() in (".png", ".exr"))


def parse_resolution(text: str) -> dict[str, Any]:
    """``--resolution``: a preset's name, or one eye's width in pixels (the Custom resolution)."""
    presets = [r for r in VIDEO_RESOLUTIONS if r.eye_width]
    for preset in presets:
        if text == preset.cli:
            return {"resolution": preset.id}
    if text.isdigit():
        return {"resolution": next(r.id for r in VIDEO_RESOLUTIONS if not r.eye_width), "eye_width": int(text)}
    raise BadInput(f"--resolution takes {', '.join(r.cli for r in presets)} or an eye width in pixels, not {text!r}")


@dataclass
class VideoRequest:
    filepath: str = param(
        "",
        "Output",
        "The .mp4 file (a still's image), or the folder for an image sequence; empty: a new file under the default output folder",
        cli="--out",
        cli_required=True,
    )
    file_format: str = param(VIDEO_FORMATS.default, "Format", "A video, or an image sequence", choices=VIDEO_FORMATS, cli="--format")
    projection: str = param(VIDEO_PROJECTIONS.default, "Projection", "How much of the sphere each eye shows", choices=VIDEO_PROJECTIONS)
    stereo_layout: str = param("AUTO", "Layout", "How the eyes share a frame", choices=VIDEO_LAYOUTS, cli="--layout")
    resolution: str = param(
        VIDEO_RESOLUTIONS.default,
        "Resolution",
        "A preset (or an eye width in pixels on the command line)",
        choices=VIDEO_RESOLUTIONS,
        cli_parse=parse_resolution,
        cli_fields=("resolution", "eye_width"),
    )
    eye_width: int = param(
        1024,
        "Eye Width",
        "Custom: the width of one eye's image",
        unit=PIXELS,
        min=16,
        max=8192,
        soft=(256, 4096),
        cli=None,
        why="8K per eye is what VR players decode",
    )
    quality: str = param(VIDEO_QUALITIES.default, "Quality", "Render settings", choices=VIDEO_QUALITIES)
    still: bool = param(False, "Still", "One stereo image of the current frame instead of a video (PNG; EXR when that format is chosen)")
    keep_frames: bool = param(False, "Keep Frames", "MP4: keep the frames folder after encoding")
    rig: str = param("", "Rig", "The stereo rig; empty: the active one, or the scene camera's", blender=True)
    overwrite: bool = overwrite_field("Replace an existing video or frames")
    # Filled by the operator after its renders:
    out_path: str = ""  # the .mp4 (or still), tagged for VR players, or the sequence's folder
    encoded: str = ""  # the MP4 Blender's FFmpeg wrote (in a scratch folder); "" for an image sequence
    stereo: str = spatial_media.TOP_BOTTOM  # mono, top-bottom or left-right
    spherical: bool = True  # equirectangular (else flat)
    image: str = ""  # a still: the rendered stereo image (in a scratch folder) to put at out_path
    fps: float = 24.0
    width: int = 0  # of a whole frame (both eyes), for a sequence's description
    height: int = 0

    @property
    def layout(self) -> str:
        """The stereo layout (a ``STEREO_LAYOUTS`` id): the chosen one, or the projection's."""
        return VIDEO_PROJECTIONS[self.projection].layout if self.stereo_layout == "AUTO" else self.stereo_layout

    def target(self) -> Path:
        """The file a video or still goes to (named for VR players); a sequence's folder."""
        chosen = Path(self.filepath)
        if self.file_format == "MP4" or self.still:
            suffix = ".mp4" if not self.still else ".exr" if self.file_format == "EXR" else ".png"
            return output_file(chosen, suffix, self.projection, STEREO_LAYOUTS[self.layout].spatial_media)
        return chosen.parent if chosen.suffix.lower() in (".png", ".exr") else chosen

    def check(self) -> list[Note]:
        if self.filepath:
            try:
                target = self.target()
            except BadInput as exc:
                refuse("filepath", str(exc))
            writable("filepath", target if self.file_format != "MP4" and not self.still else target.parent)
        return []


@dataclass
class VideoResult:
    path: str
    size_bytes: int
    width: int
    height: int
    frames: int
    stereo: str
    projection: str  # "equirectangular", or "" for flat
    bounds: spatial_media.Bounds = spatial_media.WHOLE_SPHERE  # equirectangular: what each eye crops of the sphere


def finish_video(request: VideoRequest, report: Reporter) -> VideoResult:
    report.total = 2
    if request.image:
        result = _place_image(request)
    else:
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
        bounds = projection_bounds(request.projection)
        spatial_media.inject(source, target, request.stereo, request.spherical, request.overwrite, bounds)
    except spatial_media.MP4Error as exc:
        raise BadInput(f"Cannot add spatial metadata to {source}: {exc}") from None
    except FileExistsError as exc:
        raise BadInput(str(exc)) from None
    except OSError as exc:
        raise BadInput(f"Cannot write {target}: {exc.strerror or exc}") from None
    meta = spatial_media.read(target)
    return VideoResult(str(target), target.stat().st_size, meta.width, meta.height, meta.frames, meta.stereo, meta.projection, meta.bounds)


def _place_image(request: VideoRequest) -> VideoResult:
    """A still: the rendered image moved to its place (never replacing a file unless allowed)."""
    source, target = Path(request.image), Path(request.out_path)
    if not source.is_file():
        raise BadInput(f"No rendered image at {source}")
    with NewFiles([target], request.overwrite) as files:
        files.write(target, lambda p: copy_render(source, p))  # without Blender's per-run metadata
    return VideoResult(str(target), target.stat().st_size, request.width, request.height, 1, request.stereo, *_projection(request))


def _projection(request: VideoRequest) -> tuple[str, spatial_media.Bounds]:
    if not request.spherical:
        return "", spatial_media.WHOLE_SPHERE
    return spatial_media.EQUIRECTANGULAR, projection_bounds(request.projection)


def _describe_sequence(request: VideoRequest) -> VideoResult:
    folder = Path(request.out_path)
    frames = [p.name for p in frame_files(folder)]
    if not frames:
        raise BadInput(f"No frames in {folder}")
    result = VideoResult(
        str(folder),
        sum((folder / f).stat().st_size for f in frames),
        request.width,
        request.height,
        len(frames),
        request.stereo,
        *_projection(request),
    )
    description = {**asdict(result), "path": ".", "fps": request.fps, "frame_files": frames}  # the folder it lies in, wherever that is
    with NewFiles([folder / SIDECAR], request.overwrite) as files:
        files.write(folder / SIDECAR, lambda p: p.write_text(json.dumps(description, indent=1), encoding="utf-8"))
    return result
