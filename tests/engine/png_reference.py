"""A reference PNG reader for what engine.imagefiles.write_png produces."""

import struct
import zlib
from pathlib import Path

import numpy as np


def decode_png(path: Path) -> tuple[dict, np.ndarray]:
    """A reference reader for what write_png produces (filters None/Sub/Up)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    w, h, depth, color, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    stride = w * channels * depth // 8
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, stride + 1)
    rows = np.zeros((h, stride), np.uint8)
    for i in range(h):
        f, line = raw[i, 0], raw[i, 1:]
        prev = rows[i - 1] if i else np.zeros(stride, np.uint8)
        assert f in (0, 2)
        rows[i] = line + prev if f == 2 else line
    dtype = ">u2" if depth == 16 else np.uint8
    pixels = rows.view(dtype).reshape(h, w, channels).astype(np.uint16 if depth == 16 else np.uint8)
    return {"width": w, "height": h, "depth": depth, "channels": channels}, pixels
