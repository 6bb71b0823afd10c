"""Image files in and out of the engine, through OpenImageIO.

OpenImageIO reads what users bring (OpenEXR with any compression, single- or
multi-part; PNG at 8 or 16 bits; JPEG, TIFF, HDR, …) and writes what the
product exchanges. Blender bundles it in its own Python, and ``pip install
OpenImageIO`` gives it to any other Python. Pixels keep their stored values:
no colour conversion, and alpha stays unassociated (straight), as PNG stores
it. Writers go through :class:`NewFiles`, so an existing file is never
half-overwritten.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from . import interrupts
from .errors import BadInput, EngineError

#: Compression of the EXR files the engine writes: lossless, and what Blender writes by default.
EXR_COMPRESSION = "zip"
#: Pixel types read as they are stored; every other one (half, float, double, …) is read as float32.
_INTEGER_TYPES = ("uint8", "uint16")


class NewFiles:
    """Write a job's set of files all or nothing, never overwriting unless allowed.

    Each file is written into a staging folder beside its target
    (``.NAME.staging-XXXXXXXX``, one per target folder), created as a normal
    file, so it ends up with the permissions the umask gives (0644 by default),
    not a temporary file's private ones. Only when every write succeeded are
    they moved into place, the files they replace moved aside first; if a move
    fails, those already moved are put back, so the folders hold what they held
    before. Obstacles are refused naming them: a folder where a file should go
    (always), an existing file (unless ``overwrite``), a parent that is a file.
    Nothing is made on disk until the first :meth:`write`, so constructing one
    alone checks the targets before any work.
    """

    def __init__(self, targets: list[Path], overwrite: bool = False) -> None:
        self._overwrite = overwrite
        self._check(targets)
        self._staging: dict[Path, Path] = {}  # target folder → its staging folder
        self._staged: list[tuple[Path, Path]] = []  # (written file, target)

    def _check(self, targets: list[Path]) -> None:
        for target in targets:
            obstacle = _obstacle(target)
            if obstacle:
                raise BadInput(obstacle)
        existing = [p for p in targets if p.exists() or p.is_symlink()]
        if existing and not self._overwrite:
            names = ", ".join(p.name for p in existing)
            raise BadInput(f"{existing[0].parent} already holds {names} (enable overwrite to replace)")

    def write(self, path: Path, write: Callable[[Path], object]) -> None:
        """Write ``path``'s new content with ``write(file)``: ``file`` has the target's name, in the staging folder."""
        staged = self._staging_for(path) / path.name  # the target's name: image writers choose the format by its extension
        os.close(os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies, as to any new file
        self._staged.append((staged, path))
        write(staged)

    def copy(self, path: Path, source: Path) -> None:
        self.write(path, lambda tmp: shutil.copyfile(source, tmp))

    def _staging_for(self, path: Path) -> Path:
        folder = path.parent
        if folder not in self._staging:
            for _ in range(100):
                staging = folder / f".{path.name}.staging-{secrets.token_hex(4)}"
                try:
                    staging.mkdir(0o777)  # the umask applies: a normal folder
                except FileExistsError:
                    continue
                self._staging[folder] = interrupts.remove_on_stop(staging)  # a signal that stops the process removes it too
                break
            else:
                raise EngineError(f"Cannot make a staging folder in {folder}")
        return self._staging[folder]

    def commit(self) -> None:
        """Move every written file into place, or none: a failure puts back what was there and raises one line naming the obstacle."""
        placed: list[tuple[Path, Path | None, bool]] = []  # (target, its previous file moved aside, whether the new one is in place)
        target = Path()
        try:
            self._check([target for _, target in self._staged])  # anything that appeared while the files were written
            with interrupts.uninterrupted():  # a signal's stop waits for the moves: never half a set, nor a previous file lost
                for staged, target in self._staged:
                    previous = None
                    if target.exists() or target.is_symlink():
                        previous = staged.with_name(f"{staged.name}.previous")
                        os.replace(target, previous)
                    placed.append((target, previous, False))
                    os.replace(staged, target)
                    placed[-1] = (target, previous, True)
        except BaseException as exc:
            self._roll_back(placed)
            self.discard()
            if isinstance(exc, OSError):
                raise BadInput(_move_failure(exc, target)) from None
            raise
        self._staged.clear()
        self._remove_staging()

    def _roll_back(self, placed: list[tuple[Path, Path | None, bool]]) -> None:
        for target, previous, in_place in reversed(placed):
            if in_place:
                target.unlink(missing_ok=True)
            if previous is not None:
                os.replace(previous, target)

    def discard(self) -> None:
        self._staged.clear()
        self._remove_staging()

    def _remove_staging(self) -> None:
        for staging in self._staging.values():
            shutil.rmtree(staging, ignore_errors=True)
            interrupts.forget(staging)
        self._staging.clear()

    def __enter__(self) -> NewFiles:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def _obstacle(target: Path) -> str:
    """What stands where ``target`` should be written (a folder in its place, a file in its folder's), or ""."""
    if target.is_dir() and not target.is_symlink():
        return f"{target} is a folder"
    for folder in target.parents:
        if folder.exists():
            return "" if folder.is_dir() else f"{folder} is a file, not a folder"
    return ""


def _move_failure(exc: OSError, target: Path) -> str:
    """One line for a file that could not be moved into place, naming the obstacle."""
    return _obstacle(target) or f"Cannot move {target.name} into place in {target.parent}: {exc.strerror or exc}"


def recorded_path(path: str | Path, folder: str | Path) -> str:
    """How a file written into ``folder`` names another file: relative to ``folder``, so the same request gives the same bytes on any machine."""
    try:
        return Path(os.path.relpath(Path(path).resolve(), Path(folder).resolve())).as_posix()
    except ValueError:  # Windows: another drive
        return Path(path).resolve().as_posix()


def check_writable(folder: Path) -> None:
    """Refuse, before any work, an output folder that is a file or cannot be made or written."""
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"Output folder {folder} is a file")
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise BadInput(f"Cannot write into {folder}: {existing} is not a writable folder")


#: PNG chunks that say when, where and how a file was made rather than what it shows (Blender's render times, the .blend's path).
_PNG_PER_RUN_CHUNKS = (b"tEXt", b"zTXt", b"iTXt", b"tIME")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def copy_png(source: str | Path, target: str | Path) -> None:
    """Copy a PNG without its text and time chunks, so the same pixels give the same bytes on any machine and under any load.

    Cycles stamps each render's times (and the .blend's absolute path) into the PNGs Blender saves; the image data is kept as is.
    """
    data = Path(source).read_bytes()
    if not data.startswith(_PNG_SIGNATURE):
        raise BadInput(f"{source} is not a PNG file")
    kept, at = [_PNG_SIGNATURE], len(_PNG_SIGNATURE)
    while at + 8 <= len(data):
        length, kind = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8]
        end = at + 12 + length
        if end > len(data):
            raise BadInput(f"{source} is a truncated PNG file")
        if kind not in _PNG_PER_RUN_CHUNKS:
            kept.append(data[at:end])
        at = end
    Path(target).write_bytes(b"".join(kept))


#: What Blender stamps into the files it renders (render settings' "Metadata"), and the OpenEXR writer's own time stamp.
_STAMP_FIELDS = frozenset(
    ("Date", "Time", "RenderTime", "File", "Frame", "FrameRange", "Camera", "Lens", "Scene", "Marker", "Memory", "PeakMemory")
    + ("Hostname", "Note", "Strip", "StripFrame", "DateTime", "capDate")
)


def copy_exr(source: str | Path, target: str | Path) -> None:
    """Copy an OpenEXR file (every part, its pixels as stored) without the metadata that says when, where and how it was made.

    Blender stamps the date, the render time, the .blend's path and the render engine's own figures (Cycles'
    ``cycles.ViewLayer.render_time``, …) into each EXR it saves; they are dropped, so the same pixels give the same bytes.
    """
    oiio = _oiio()
    image = _open(source)
    parts: list[tuple[Any, Any]] = []
    try:
        if image.format_name() != "openexr":
            raise BadInput(f"{source} is not an OpenEXR file")
        while image.seek_subimage(len(parts), 0):
            spec = oiio.ImageSpec(image.spec())
            names = [attribute.name for attribute in spec.extra_attribs]  # first: erasing changes the list
            for name in names:
                if name in _STAMP_FIELDS or "." in name and not name.startswith(("oiio:", "openexr:")):
                    spec.erase_attribute(name)
            spec.attribute("DateTime", "")  # an empty one keeps OpenEXR's writer from stamping the time (capDate)
            pixels = image.read_image(len(parts), 0, 0, spec.nchannels, oiio.UNKNOWN)  # as stored: half stays half
            if pixels is None:
                raise BadInput(f"Could not read image {source}: {image.geterror().strip() or 'damaged pixel data'}")
            parts.append((spec, pixels))
    finally:
        image.close()
    out = oiio.ImageOutput.create("openexr")
    if out is None:
        raise EngineError(f"Cannot write {target}: {oiio.geterror().strip()}")
    try:
        for index, (spec, pixels) in enumerate(parts):
            opened = out.open(str(target), [s for s, _ in parts]) if index == 0 else out.open(str(target), spec, "AppendSubimage")
            if not (opened and out.write_image(pixels)):
                raise EngineError(f"Cannot write {target}: {out.geterror().strip() or 'write failed'}")
    finally:
        out.close()


def copy_render(source: str | Path, target: str | Path) -> None:
    """Copy a file Blender rendered (PNG or OpenEXR) without its per-run metadata: the same pixels give the same bytes on any machine."""
    with open(source, "rb") as f:
        head = f.read(8)
    if head.startswith(_PNG_SIGNATURE):
        copy_png(source, target)
    elif head.startswith(b"\x76\x2f\x31\x01"):
        copy_exr(source, target)
    else:
        raise BadInput(f"{source} is neither a PNG nor an OpenEXR file")


def strip_run_metadata(path: Path) -> None:
    """Rewrite a file Blender rendered without its per-run metadata (:func:`copy_render`), whole: it is replaced only once rewritten."""
    with NewFiles([path], overwrite=True) as files:
        files.write(path, lambda staged: copy_render(path, staged))


def _oiio() -> Any:
    try:
        import OpenImageIO
    except ImportError:
        OpenImageIO = _blenders_oiio()
    return OpenImageIO


def _blenders_oiio() -> Any:
    """The OpenImageIO that Blender as a Python module (``pip install bpy``) bundles, found beside it without importing bpy
    (importing bpy puts it on the path, which ``python -m engine`` in the same environment never does)."""
    bpy = importlib.util.find_spec("bpy")
    for folder in bpy.submodule_search_locations or [] if bpy is not None else []:
        for init in sorted(Path(folder).glob("*/python/lib/python3*/site-packages/OpenImageIO/__init__.py")):
            spec = importlib.util.spec_from_file_location("OpenImageIO", init, submodule_search_locations=[str(init.parent)])
            if spec is not None and spec.loader is not None:
                module = sys.modules["OpenImageIO"] = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
    raise EngineError(
        "OpenImageIO is not installed in this Python: `pip install OpenImageIO` "
        "(Blender bundles it; the engine's own Python needs it for image files)"
    )


class Image(NamedTuple):
    """Pixels as stored: H×W×C uint8, uint16 or float32 (half and double become float32)."""

    pixels: np.ndarray
    channels: tuple[str, ...]
    format: str  # OpenImageIO's name for the file format: "png", "openexr", "jpeg", "tiff", "hdr", …


def _open(path: str | os.PathLike[str]) -> Any:
    oiio = _oiio()
    if not Path(path).is_file():
        raise BadInput(f"Image file not found: {path}")
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)  # keep colour under alpha as stored, never premultiplied
    image = oiio.ImageInput.open(str(path), config)
    if image is None:
        reason = oiio.geterror().strip().splitlines()
        raise BadInput(f"Could not read image {path}: {reason[-1] if reason else 'unsupported or damaged file'}")
    return image


def _read(image: Any, path: str | os.PathLike[str], dtype: Any) -> np.ndarray:
    spec = image.spec()
    pixels = image.read_image(image.current_subimage(), 0, 0, spec.nchannels, dtype)
    if pixels is None:
        raise BadInput(f"Could not read image {path}: {image.geterror().strip() or 'damaged pixel data'}")
    return np.asarray(pixels).reshape(spec.height, spec.width, spec.nchannels)


def check_image(path: str | os.PathLike[str]) -> None:
    """Refuse, in one line, a file no image reader opens (its header only: cheap), before another reader says more."""
    _open(path).close()


def read_image(path: str | os.PathLike[str]) -> Image:
    """The first image in ``path``: 8/16-bit integer pixels as uint8/uint16, anything else as float32."""
    image = _open(path)
    try:
        stored = str(image.spec().format)
        dtype = stored if stored in _INTEGER_TYPES else "float"
        return Image(_read(image, path, dtype), tuple(image.spec().channelnames), image.format_name())
    finally:
        image.close()


def read_exr(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every channel of an EXR (every part of a multi-part file) as float32 H×W arrays, by name.

    Blender 5 writes one part per render pass, 4.5 one part with them all; the
    channel names (``ViewLayer.Depth.Z``) are the same either way. A name that
    repeats in another part (a stereo file's second view) is kept under
    ``<part name>/<channel>``.
    """
    image = _open(path)
    try:
        if image.format_name() != "openexr":
            raise BadInput(f"{path} is not an OpenEXR file")
        channels: dict[str, np.ndarray] = {}
        part = 0
        while image.seek_subimage(part, 0):
            spec = image.spec()
            pixels = _read(image, path, "float")
            for index, name in enumerate(spec.channelnames):
                key = name if name not in channels else f"{spec.get_string_attribute('name') or part}/{name}"
                channels[key] = np.ascontiguousarray(pixels[..., index], dtype=np.float32)
            part += 1
        return channels
    finally:
        image.close()


def read_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Pixels of an 8- or 16-bit PNG as H×W×C uint8/uint16 (C = 1, 2, 3 or 4)."""
    image = read_image(path)
    if image.format != "png":
        raise BadInput(f"{path} is not a PNG file")
    return image.pixels


def _write(path: Path, pixels: np.ndarray, dtype: str, channels: list[str] | None = None, attributes: dict[str, Any] | None = None) -> None:
    oiio = _oiio()
    height, width, count = pixels.shape
    spec = oiio.ImageSpec(width, height, count, dtype)
    if channels is not None:
        spec.channelnames = tuple(channels)
    for name, value in (attributes or {}).items():
        spec.attribute(name, value)
    out = oiio.ImageOutput.create(str(path))
    if out is None:
        raise EngineError(f"Cannot write {path}: {oiio.geterror().strip()}")
    try:
        if not (out.open(str(path), spec) and out.write_image(np.ascontiguousarray(pixels))):
            raise EngineError(f"Cannot write {path}: {out.geterror().strip() or 'write failed'}")
    finally:
        out.close()


def write_exr(path: Path, channels: dict[str, np.ndarray], compression: str = EXR_COMPRESSION) -> None:
    """Write float32 H×W channels (sorted by name) as one scanline EXR part."""
    names = sorted(channels)
    stacked = np.stack([np.asarray(channels[n], dtype=np.float32) for n in names], axis=-1)
    # An empty DateTime keeps OpenEXR's writer from stamping the time (capDate): the same pixels give the same bytes.
    _write(path, stacked, "float", names, {"compression": compression, "DateTime": ""})


def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write H×W (gray), H×W×2 (gray + alpha), H×W×3 (RGB) or H×W×4 (RGBA) uint8 or uint16 pixels."""
    if pixels.dtype not in (np.uint8, np.uint16):
        raise BadInput(f"PNG pixels must be uint8 or uint16, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or not 1 <= pixels.shape[2] <= 4:
        raise BadInput(f"PNG pixels must be H×W with 1 to 4 channels, got shape {pixels.shape}")
    straight_alpha = {"oiio:UnassociatedAlpha": 1} if pixels.shape[2] in (2, 4) else {}  # PNG stores alpha unassociated
    _write(path, pixels, str(pixels.dtype), attributes=straight_alpha)


def unit_float(pixels: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    """Stored pixels as floats: 8- and 16-bit codes scaled to [0, 1], float pixels as they are."""
    scale = 255.0 if pixels.dtype == np.uint8 else 65535.0 if pixels.dtype == np.uint16 else 1.0
    return pixels.astype(dtype) / scale


def flatten_alpha(pixels: np.ndarray, background: Any = (1.0, 1.0, 1.0), dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray | None]:
    """Stored RGB(A) pixels as RGB floats in [0, 1], on ``background`` where transparent, and their alpha (None when opaque)."""
    values = unit_float(pixels, dtype)
    rgb = values[..., :3]
    if values.shape[2] < 4:
        return rgb, None
    alpha = values[..., 3]
    return rgb * alpha[..., None] + np.asarray(background, dtype) * (1 - alpha[..., None]), alpha


def resample(pixels: np.ndarray, width: int, height: int, method: str, wrap: bool = False) -> np.ndarray:
    """H×W×C float pixels resized to ``width``×``height`` with Pillow's ``method`` filter ("LANCZOS", "BICUBIC"), channel by channel.

    With ``wrap`` the image continues across its left and right edges (a 360°
    panorama): it is padded with its own far columns and the box resampled is
    the original width, so the filter reads across the seam.
    """
    from PIL import Image

    source = np.asarray(pixels, np.float32)
    in_h, in_w = source.shape[:2]
    pad = min(in_w, 8) if wrap else 0
    if pad:
        source = np.concatenate([source[:, -pad:], source, source[:, :pad]], axis=1)
    box = (float(pad), 0.0, float(pad + in_w), float(in_h))
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(source[..., c]), "F").resize((width, height), Image.Resampling[method], box=box))
        for c in range(source.shape[2])
    ]
    return np.stack(channels, axis=-1)


def resize(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """H×W×C float pixels resampled to ``height``×``width`` with OpenImageIO's default filter (area-aware when shrinking)."""
    oiio = _oiio()
    source = np.ascontiguousarray(pixels, np.float32)
    if source.ndim == 2:
        source = source[..., None]
    buf = oiio.ImageBuf(oiio.ImageSpec(source.shape[1], source.shape[0], source.shape[2], "float"))
    buf.set_pixels(oiio.ROI(), source)
    out = oiio.ImageBufAlgo.resize(buf, roi=oiio.ROI(0, width, 0, height, 0, 1, 0, source.shape[2]))
    return np.asarray(out.get_pixels(oiio.TypeFloat), np.float32).reshape(height, width, source.shape[2])
