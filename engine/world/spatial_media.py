"""Spatial-media metadata in MP4 files, so VR players and video sites play them as 360° / stereo.

Google's Spherical Video V2 puts two boxes in the video track's sample entry
(e.g. ``avc1``): ``st3d`` (stereo mode) and ``sv3d`` (projection: a header,
then ``proj`` with a pose and an ``equi`` box of crop bounds). The older V1
form, an XML ``uuid`` box in the track, is what some sites still read, so a
whole-sphere 360° file gets both. A cropped sphere (VR180: each eye the front
half) gets V2 only, its ``equi`` bounds saying what is cropped: V1 has no
bounds, and its pixel crop fields are not defined per eye for stereo frames, so
a V1-only player would stretch each eye over the whole sphere. Only the small ``moov`` box is rebuilt; the media data is
streamed through untouched, and chunk offsets are shifted when ``moov`` comes
before it.
"""

from __future__ import annotations

import os
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Union

from ..choices import STEREO_LAYOUTS
from ..imagefiles import NewFiles

TOP_BOTTOM, LEFT_RIGHT, MONO = (layout.spatial_media for layout in STEREO_LAYOUTS)  # the stereo_mode names of the spec
STEREO_MODES = {MONO: 0, TOP_BOTTOM: 1, LEFT_RIGHT: 2}
EQUIRECTANGULAR = "equirectangular"
#: ``equi`` projection bounds (top, bottom, left, right): fractions of the whole 360°×180° cropped from each edge, 0.32 fixed point.
Bounds = tuple[int, int, int, int]
WHOLE_SPHERE: Bounds = (0, 0, 0, 0)
_ONE = 1 << 32
#: The V1 spherical-video box's UUID (RFC "Spherical Video", section "MP4").
SPHERICAL_UUID = bytes.fromhex("ffcc8263f8554a938814587a02521fdd")
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"sv3d", b"proj"}
_VISUAL_ENTRY_PREFIX = 78  # bytes of a VisualSampleEntry before its child boxes
_SOURCE = b"Diffusion 3D\0"


class MP4Error(ValueError):
    """The file is not an MP4 this module can read."""


@dataclass
class Box:
    kind: bytes
    payload: bytes = b""  # leaf data, or the fixed fields a container has before its children
    children: list[Box] = field(default_factory=list)
    container: bool = False

    def find(self, kind: bytes) -> Box | None:
        return next((c for c in self.children if c.kind == kind), None)

    def encode(self) -> bytes:
        body = self.payload + b"".join(c.encode() for c in self.children)
        size = 8 + len(body)
        if size < 2**32:
            return struct.pack(">I4s", size, self.kind) + body
        return struct.pack(">I4sQ", 1, self.kind, size + 8) + body


def _headers(data: memoryview) -> list[tuple[bytes, int, int]]:
    """(type, header length, total size) of the boxes laid end to end in ``data``."""
    out, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = len(data) - pos
        if size < header or pos + size > len(data):
            raise MP4Error(f"damaged box {kind!r} at byte {pos}")
        out.append((kind, header, size))
        pos += size
    return out


def _parse(data: memoryview, parent: bytes = b"") -> list[Box]:
    boxes, pos = [], 0
    for kind, header, size in _headers(data):
        body = data[pos + header : pos + size]
        prefix = 0
        if kind == b"stsd":
            prefix = 8  # version, flags, entry count
        elif parent == b"stsd" and len(body) >= _VISUAL_ENTRY_PREFIX and _is_visual(kind):
            prefix = _VISUAL_ENTRY_PREFIX
        if kind in _CONTAINERS or prefix:
            boxes.append(Box(kind, bytes(body[:prefix]), _parse(body[prefix:], kind), container=True))
        else:
            boxes.append(Box(kind, bytes(body)))
        pos += size
    return boxes


def _is_visual(kind: bytes) -> bool:
    return kind in {b"avc1", b"avc3", b"hvc1", b"hev1", b"vp09", b"av01", b"mp4v", b"encv"}


def _full_box(kind: bytes, body: bytes) -> Box:
    return Box(kind, b"\0\0\0\0" + body)


def _st3d(stereo: str) -> Box:
    return _full_box(b"st3d", struct.pack(">B", STEREO_MODES[stereo]))


def crop_bounds(longitude: float, latitude: float) -> Bounds:
    """The ``equi`` bounds of an eye covering ``longitude``° × ``latitude``° about the view direction (VR180: 180 × 180)."""
    if not (0 < longitude <= 360 and 0 < latitude <= 180):
        raise ValueError(f"an eye covers 0–360° of longitude and 0–180° of latitude, got {longitude}° × {latitude}°")
    side = min(int(round((1 - longitude / 360) / 2 * _ONE)), _ONE - 1)
    edge = min(int(round((1 - latitude / 180) / 2 * _ONE)), _ONE - 1)
    return edge, edge, side, side


def _check_bounds(bounds: Bounds) -> None:
    top, bottom, left, right = bounds
    if not all(0 <= b < _ONE for b in bounds) or bottom >= _ONE - 1 - top or right >= _ONE - 1 - left:
        raise ValueError(f"projection bounds {bounds} crop the whole frame away (each is a 0.32 fixed-point fraction)")


def _sv3d(bounds: Bounds) -> Box:
    pose = _full_box(b"prhd", struct.pack(">iii", 0, 0, 0))
    equi = _full_box(b"equi", struct.pack(">IIII", *bounds))
    projection = Box(b"proj", children=[pose, equi], container=True)
    return Box(b"sv3d", children=[_full_box(b"svhd", _SOURCE), projection], container=True)


def _v1_xml(stereo: str) -> Box:
    xml = (
        '<?xml version="1.0"?><rdf:SphericalVideo xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns:GSpherical="http://ns.google.com/videos/1.0/spherical/">'
        "<GSpherical:Spherical>true</GSpherical:Spherical><GSpherical:Stitched>true</GSpherical:Stitched>"
        "<GSpherical:StitchingSoftware>Diffusion 3D</GSpherical:StitchingSoftware>"
        "<GSpherical:ProjectionType>equirectangular</GSpherical:ProjectionType>"
        f"<GSpherical:StereoMode>{stereo}</GSpherical:StereoMode></rdf:SphericalVideo>"
    )
    return Box(b"uuid", SPHERICAL_UUID + xml.encode())


def _handler(trak: Box) -> bytes:
    mdia = trak.find(b"mdia")
    hdlr = mdia.find(b"hdlr") if mdia is not None else None
    return hdlr.payload[8:12] if hdlr is not None and len(hdlr.payload) >= 12 else b""


def _video_entry(moov: Box) -> tuple[Box, Box]:
    """(video track, its first sample entry)."""
    for trak in (c for c in moov.children if c.kind == b"trak"):
        if _handler(trak) != b"vide":
            continue
        stsd = _descend(trak, b"mdia", b"minf", b"stbl", b"stsd")
        if stsd is not None and stsd.children and stsd.children[0].container:
            return trak, stsd.children[0]
    raise MP4Error("no video track with a visual sample entry")


def _descend(box: Box, *kinds: bytes) -> Box | None:
    node: Box | None = box
    for kind in kinds:
        node = node.find(kind) if node is not None else None
    return node


def _shift_chunk_offsets(moov: Box, after: int, delta: int) -> None:
    """Move every chunk offset that points past ``after`` by ``delta`` bytes."""
    for trak in (c for c in moov.children if c.kind == b"trak"):
        stbl = _descend(trak, b"mdia", b"minf", b"stbl")
        for box in stbl.children if stbl is not None else ():
            if box.kind not in (b"stco", b"co64"):
                continue
            code = ">I" if box.kind == b"stco" else ">Q"
            (count,) = struct.unpack_from(">I", box.payload, 4)
            offsets = list(struct.unpack_from(f">{count}{code[1]}", box.payload, 8))
            offsets = [o + delta if o >= after else o for o in offsets]
            if box.kind == b"stco" and offsets and max(offsets) >= 2**32:
                raise MP4Error("the file is too large to add metadata to its 32-bit chunk offsets")
            box.payload = box.payload[:8] + struct.pack(f">{count}{code[1]}", *offsets)


def _top_level(f: BinaryIO) -> list[tuple[bytes, int, int, int]]:
    """(type, start, header length, size) of the file's top-level boxes, without reading media data."""
    out, pos = [], 0
    end = f.seek(0, os.SEEK_END)
    while pos + 8 <= end:
        f.seek(pos)
        size, kind = struct.unpack(">I4s", f.read(8))
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", f.read(8))
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise MP4Error(f"damaged top-level box {kind!r} at byte {pos}")
        out.append((kind, pos, header, size))
        pos += size
    return out


def _read_moov(f: BinaryIO) -> tuple[Box, int, int]:
    """The parsed ``moov`` box, its start and its size."""
    boxes = _top_level(f)
    if not boxes or boxes[0][0] != b"ftyp":
        raise MP4Error("not an MP4 file (no ftyp box first)")
    for kind, start, header, size in boxes:
        if kind == b"moov":
            f.seek(start + header)
            return Box(b"moov", children=_parse(memoryview(f.read(size - header)), b"moov"), container=True), start, size
    raise MP4Error("no moov box")


PathLike = Union[str, "os.PathLike[str]"]


def inject(
    source: PathLike,
    target: PathLike,
    stereo: str = MONO,
    spherical: bool = True,
    overwrite: bool = False,
    bounds: Bounds = WHOLE_SPHERE,
) -> None:
    """Copy ``source`` to ``target`` with the stereo mode and, if ``spherical``, the equirectangular projection.

    ``bounds`` crop each eye's sphere (:func:`crop_bounds`); a cropped one gets no V1 XML (see the module's note).
    """
    if stereo not in STEREO_MODES:
        raise ValueError(f"unknown stereo mode {stereo!r} (choose from {', '.join(STEREO_MODES)})")
    _check_bounds(bounds)
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists (allow overwriting to replace it)")
    with open(source, "rb") as f:
        moov, moov_start, moov_size = _read_moov(f)
        trak, entry = _video_entry(moov)
        entry.children = [c for c in entry.children if c.kind not in (b"st3d", b"sv3d")]
        entry.children.append(_st3d(stereo))
        trak.children = [c for c in trak.children if not (c.kind == b"uuid" and c.payload[:16] == SPHERICAL_UUID)]
        if spherical:
            entry.children.append(_sv3d(bounds))
            if bounds == WHOLE_SPHERE:
                trak.children.append(_v1_xml(stereo))
        new_size = len(moov.encode())
        _shift_chunk_offsets(moov, moov_start + moov_size, new_size - moov_size)
        encoded = moov.encode()

        def write(path: Path) -> None:
            with open(path, "wb") as out:
                f.seek(0)
                shutil.copyfileobj(_Limited(f, moov_start), out)
                out.write(encoded)
                f.seek(moov_start + moov_size)
                shutil.copyfileobj(f, out)

        with NewFiles([target], overwrite) as files:  # a normal file's permissions, moved into place whole
            files.write(target, write)


class _Limited:
    """The first ``limit`` bytes of a file, for ``copyfileobj``."""

    def __init__(self, f: BinaryIO, limit: int) -> None:
        self.f, self.left = f, limit

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data


@dataclass
class SpatialMetadata:
    """The video track's size and frame count, and the spatial metadata it carries."""

    width: int = 0
    height: int = 0
    frames: int = 0
    stereo: str = ""  # from st3d; "" when absent
    projection: str = ""  # "equirectangular" when sv3d has an equi box
    bounds: Bounds = WHOLE_SPHERE  # equi crop: top, bottom, left, right
    v1_xml: str = ""


def read(path: PathLike) -> SpatialMetadata:
    """What spatial metadata the video track carries."""
    with open(path, "rb") as f:
        moov, _, _ = _read_moov(f)
    trak, entry = _video_entry(moov)
    meta = SpatialMetadata()
    meta.width, meta.height = struct.unpack_from(">HH", entry.payload, 24)
    stsz = _descend(trak, b"mdia", b"minf", b"stbl", b"stsz")
    if stsz is not None:
        (meta.frames,) = struct.unpack_from(">I", stsz.payload, 8)
    st3d = entry.find(b"st3d")
    if st3d is not None:
        code = st3d.payload[4]
        meta.stereo = next((name for name, value in STEREO_MODES.items() if value == code), f"unknown ({code})")
    equi = _descend(entry, b"sv3d", b"proj", b"equi")
    if equi is not None:
        meta.projection = EQUIRECTANGULAR
        meta.bounds = struct.unpack_from(">IIII", equi.payload, 4)
    v1 = next((c for c in trak.children if c.kind == b"uuid" and c.payload[:16] == SPHERICAL_UUID), None)
    if v1 is not None:
        meta.v1_xml = v1.payload[16:].decode("utf-8", "replace")
    return meta
