"""Image files the engine reads and writes itself, with numpy and zlib only.

Blender's Python has numpy but no imaging library, and the engine must run in
it (in-process mode) as well as in the user's own Python. So the few formats
the product exchanges are coded here: scanline OpenEXR (what Cycles saves;
uncompressed, ZIPS and ZIP) and PNG writing at 8 or 16 bits. Writers go
through :class:`NewFiles` so an existing file is never half-overwritten.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import BadInput

_EXR_MAGIC = 20000630
_EXR_TYPES: dict[int, np.dtype] = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}
_EXR_LINES = {0: 1, 2: 1, 3: 16}  # NONE, ZIPS, ZIP: scanlines per chunk


class NewFiles:
    """Write several files all-or-nothing, never overwriting unless allowed.

    Each file is written to a temporary name beside its target; only when every
    write succeeded are they moved into place. Existing targets are an error
    (checked up front) unless ``overwrite`` is set.
    """

    def __init__(self, targets: list[Path], overwrite: bool = False) -> None:
        existing = [p for p in targets if p.exists()]
        if existing and not overwrite:
            names = ", ".join(p.name for p in existing)
            raise BadInput(f"{existing[0].parent} already holds {names} (enable overwrite to replace)")
        self._staged: list[tuple[Path, Path]] = []

    def write(self, path: Path, write: Callable[[Path], object]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
        self._staged.append((Path(tmp), path))
        write(Path(tmp))

    def commit(self) -> None:
        for tmp, path in self._staged:
            os.replace(tmp, path)
        self._staged.clear()

    def discard(self) -> None:
        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)
        self._staged.clear()

    def __enter__(self) -> "NewFiles":
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


# --- OpenEXR -----------------------------------------------------------------


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\0", pos)
    return data[pos:end].decode("latin-1"), end + 1


def read_exr(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All channels of a single-part scanline EXR as float32 H×W arrays, by name."""
    data = Path(path).read_bytes()
    if len(data) < 8 or struct.unpack_from("<i", data, 0)[0] != _EXR_MAGIC:
        raise BadInput(f"{path} is not an OpenEXR file")
    if struct.unpack_from("<i", data, 4)[0] & 0x1A00:  # tiled, deep or multi-part
        raise BadInput(f"{path}: only single-part scanline EXR files are supported")
    pos, attrs = 8, {}
    while data[pos] != 0:
        name, pos = _cstring(data, pos)
        _kind, pos = _cstring(data, pos)
        size = struct.unpack_from("<i", data, pos)[0]
        attrs[name] = data[pos + 4 : pos + 4 + size]
        pos += 4 + size
    pos += 1
    channels, cpos, chlist = [], 0, attrs["channels"]
    while chlist[cpos] != 0:
        name, cpos = _cstring(chlist, cpos)
        pixel_type, _linear, xs, ys = struct.unpack_from("<iB3xii", chlist, cpos)
        cpos += 16
        if (xs, ys) != (1, 1):
            raise BadInput(f"{path}: subsampled channel {name!r} is not supported")
        channels.append((name, _EXR_TYPES[pixel_type]))
    compression = attrs["compression"][0]
    if compression not in _EXR_LINES:
        raise BadInput(f"{path}: EXR compression {compression} is not supported (use none, ZIP or ZIPS)")
    x0, y0, x1, y1 = struct.unpack("<4i", attrs["dataWindow"])
    width, height = x1 - x0 + 1, y1 - y0 + 1
    lines = _EXR_LINES[compression]
    chunks = -(-height // lines)
    offsets = np.frombuffer(data, "<u8", chunks, pos)
    row_bytes = sum(width * dt.itemsize for _, dt in channels)
    raw = bytearray(row_bytes * height)
    for offset in offsets:
        y, size = struct.unpack_from("<ii", data, int(offset))
        block = data[int(offset) + 8 : int(offset) + 8 + size]
        count = min(lines, y1 + 1 - y)
        if compression and size < row_bytes * count:
            block = _unzip_exr(block)
        start = (y - y0) * row_bytes
        raw[start : start + len(block)] = block
    out, col = {}, 0
    rows = np.frombuffer(bytes(raw), np.uint8).reshape(height, row_bytes)
    for name, dt in channels:
        nbytes = width * dt.itemsize
        out[name] = rows[:, col : col + nbytes].copy().view(dt).astype(np.float32)
        col += nbytes
    return out


def _unzip_exr(block: bytes) -> bytes:
    """Undo EXR's ZIP filter: inflate, undo the byte delta, re-interleave halves."""
    t = np.frombuffer(zlib.decompress(block), np.uint8).copy()
    t[1:] -= 128
    t = np.cumsum(t, dtype=np.uint8)
    out = np.empty_like(t)
    half = (t.size + 1) // 2
    out[0::2], out[1::2] = t[:half], t[half:]
    return out.tobytes()


def _zip_exr(raw: bytes) -> bytes:
    t = np.frombuffer(raw, np.uint8)
    split = np.concatenate([t[0::2], t[1::2]])
    delta = split.copy()
    delta[1:] = split[1:] - split[:-1] + 128
    return zlib.compress(delta.tobytes(), 6)


def _attr(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def write_exr(path: Path, channels: dict[str, np.ndarray]) -> None:
    """Write float32 H×W channels as a ZIP-compressed scanline EXR."""
    names = sorted(channels)
    arrays = [np.ascontiguousarray(channels[n], dtype="<f4") for n in names]
    height, width = arrays[0].shape
    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", 2, 0, 1, 1) for n in names) + b"\0"
    window = struct.pack("<4i", 0, 0, width - 1, height - 1)
    header = b"".join(
        [
            struct.pack("<ii", _EXR_MAGIC, 2),
            _attr("channels", "chlist", chlist),
            _attr("compression", "compression", b"\x03"),
            _attr("dataWindow", "box2i", window),
            _attr("displayWindow", "box2i", window),
            _attr("lineOrder", "lineOrder", b"\0"),
            _attr("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
            _attr("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0)),
            _attr("screenWindowWidth", "float", struct.pack("<f", 1.0)),
            b"\0",
        ]
    )
    rows = np.concatenate([a.view(np.uint8) for a in arrays], axis=1)  # H × (channels·W·4)
    chunks = []
    for y in range(0, height, 16):
        raw = rows[y : y + 16].tobytes()
        packed = _zip_exr(raw)
        if len(packed) >= len(raw):
            packed = raw  # EXR stores a chunk raw when compression does not help
        chunks.append(struct.pack("<ii", y, len(packed)) + packed)
    table_end = len(header) + 8 * len(chunks)
    offsets = np.cumsum([table_end] + [len(c) for c in chunks[:-1]]).astype("<u8")
    with open(path, "wb") as f:
        f.write(header + offsets.tobytes() + b"".join(chunks))


# --- PNG ---------------------------------------------------------------------


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write H×W (gray), H×W×3 (RGB) or H×W×4 (RGBA) uint8 or uint16 pixels."""
    if pixels.dtype not in (np.uint8, np.uint16):
        raise BadInput(f"PNG pixels must be uint8 or uint16, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    height, width, channels = pixels.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    depth = pixels.dtype.itemsize * 8
    big_endian: np.dtype = pixels.dtype.newbyteorder(">")
    rows = np.ascontiguousarray(pixels.astype(big_endian)).view(np.uint8).reshape(height, -1)
    # Filter "Up" (2) on every row: vectorised here, and helps smooth images compress.
    filtered = np.empty((height, rows.shape[1] + 1), np.uint8)
    filtered[:, 0] = 2
    filtered[0, 1:] = rows[0]
    filtered[1:, 1:] = rows[1:] - rows[:-1]
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_png_chunk(b"IHDR", ihdr))
        f.write(_png_chunk(b"IDAT", zlib.compress(filtered.tobytes(), 6)))
        f.write(_png_chunk(b"IEND", b""))


_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # gray, RGB, gray+alpha, RGBA (no palettes)


def read_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Pixels of an 8- or 16-bit non-interlaced PNG as H×W×C uint8/uint16 (C = 1, 2, 3 or 4).

    Blender's PNGs use every row filter (libpng's adaptive choice), so all five
    are undone here; Sub, Average and Paeth are recursive along a row, so the
    general case sweeps anti-diagonals, each one vectorised.
    """
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise BadInput(f"{path} is not a PNG file")
    pos, header, idat = 8, b"", []
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IHDR":
            header = data[pos + 8 : pos + 8 + length]
        elif kind == b"IDAT":
            idat.append(data[pos + 8 : pos + 8 + length])
        elif kind == b"IEND":
            break
        pos += 12 + length
    if len(header) != 13 or not idat:
        raise BadInput(f"{path}: a PNG without IHDR or image data")
    width, height, depth, color, _comp, _filt, interlace = struct.unpack(">IIBBBBB", header)
    if color not in _PNG_CHANNELS or depth not in (8, 16) or interlace:
        raise BadInput(f"{path}: only 8/16-bit non-interlaced gray/RGB(A) PNGs are supported")
    channels = _PNG_CHANNELS[color]
    bpp = channels * depth // 8  # bytes per pixel: filters look this far back
    try:
        raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    except zlib.error as exc:
        raise BadInput(f"{path}: damaged PNG data ({exc})") from None
    if raw.size < height * (width * bpp + 1):
        raise BadInput(f"{path}: truncated PNG data")
    rows = raw[: height * (width * bpp + 1)].reshape(height, width * bpp + 1)
    filters, body = rows[:, 0], rows[:, 1:].reshape(height, width, bpp)
    if filters.max(initial=0) > 4:
        raise BadInput(f"{path}: unknown PNG row filter {filters.max()}")
    pixels = _unfilter_png(filters, body)
    dtype = np.dtype(">u2") if depth == 16 else np.dtype(np.uint8)
    out = pixels.reshape(height, -1).view(dtype).reshape(height, width, channels)
    return out.astype(np.uint16 if depth == 16 else np.uint8)


def _unfilter_png(filters: np.ndarray, body: np.ndarray) -> np.ndarray:
    height, width, bpp = body.shape
    # Padded with a zero row above and a zero column left: PNG's value outside the image.
    out = np.zeros((height + 1, width + 1, bpp), np.int32)
    if filters.max(initial=0) <= 2:  # None/Sub/Up only: row by row, Sub is a running sum
        for r in range(height):
            line = body[r].astype(np.int32)
            if filters[r] == 1:
                line = np.cumsum(line, axis=0)
            elif filters[r] == 2:
                line = line + out[r, 1:]
            out[r + 1, 1:] = line & 0xFF
        return out[1:, 1:].astype(np.uint8)
    kinds = filters.astype(np.int32)
    for d in range(height + width - 1):  # anti-diagonal d: pixels whose left/up neighbours are done
        rr = np.arange(max(0, d - width + 1), min(height - 1, d) + 1)
        cc = d - rr
        f = body[rr, cc].astype(np.int32)
        a, b, ul = out[rr + 1, cc], out[rr, cc + 1], out[rr, cc]
        p = a + b - ul
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - ul)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, ul))
        kind = kinds[rr][:, None]
        pred = np.select([kind == 1, kind == 2, kind == 3, kind == 4], [a, b, (a + b) >> 1, paeth], 0)
        out[rr + 1, cc + 1] = (f + pred) & 0xFF
    return out[1:, 1:].astype(np.uint8)
