"""Reading the render files back: PNGs with every row filter, and the multilayer EXR contract."""

import struct
import zlib

import cv2
import numpy as np
import pytest
from dst_scene import write_render

from engine.dst.renders import find_channel, read_view_render
from engine.errors import BadInput
from engine.imagefiles import read_png, write_exr, write_png


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def encode_png(path, pixels, filters, depth=8):
    """A slow, obvious PNG encoder applying the given row filter to each row (the reference)."""
    h, w, ch = pixels.shape
    dtype = ">u2" if depth == 16 else np.uint8
    rows = np.ascontiguousarray(pixels.astype(dtype)).view(np.uint8).reshape(h, -1).astype(int)
    bpp = ch * depth // 8
    out = bytearray()
    for y in range(h):
        f = filters[y]
        out.append(f)
        for x in range(rows.shape[1]):
            a = rows[y, x - bpp] if x >= bpp else 0
            b = rows[y - 1, x] if y else 0
            c = rows[y - 1, x - bpp] if y and x >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][f]
            out.append((rows[y, x] - pred) % 256)
    color = {1: 0, 2: 4, 3: 2, 4: 6}[ch]

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    comp = zlib.compress(bytes(out))
    half = len(comp) // 2  # split image data over two IDAT chunks, as encoders may
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0))
    data += chunk(b"tEXt", b"Software\0test") + chunk(b"IDAT", comp[:half]) + chunk(b"IDAT", comp[half:]) + chunk(b"IEND", b"")
    path.write_bytes(data)


@pytest.mark.parametrize("channels, depth", [(4, 8), (3, 8), (1, 8), (2, 8), (4, 16), (1, 16)])
def test_read_png_undoes_every_row_filter(tmp_path, channels, depth):
    rng = np.random.default_rng(channels * depth)
    h, w = 23, 17
    hi = 65536 if depth == 16 else 256
    pixels = (rng.integers(0, hi, (h, w, channels)) // 7 * 3 % hi).astype(np.uint16 if depth == 16 else np.uint8)
    for filters in ([0] * h, [1] * h, [3] * h, [4] * h, list(rng.integers(0, 5, h))):
        encode_png(tmp_path / "f.png", pixels, filters, depth)
        got = read_png(tmp_path / "f.png")
        assert got.dtype == pixels.dtype and np.array_equal(got, pixels), filters


def test_read_png_reads_our_writer_and_opencv(tmp_path):
    rng = np.random.default_rng(0)
    img = np.cumsum(rng.integers(0, 9, (64, 80, 4)), axis=1).astype(np.uint8)
    write_png(tmp_path / "ours.png", img)
    assert np.array_equal(read_png(tmp_path / "ours.png"), img)
    cv2.imwrite(str(tmp_path / "cv.png"), img[..., [2, 1, 0, 3]])  # libpng's own filter choice
    assert np.array_equal(read_png(tmp_path / "cv.png"), img)
    gray16 = rng.integers(0, 65536, (9, 11)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), gray16)
    assert np.array_equal(read_png(tmp_path / "g16.png")[..., 0], gray16)


def test_read_png_refuses_what_it_does_not_read(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(BadInput):
        read_png(tmp_path / "x.png")
    cv2.imwrite(str(tmp_path / "photo.jpg"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(BadInput, match="not a PNG"):
        read_png(tmp_path / "photo.jpg")


def passes(h=12, w=16):
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[3:9, 4:12] = (200, 100, 50, 255)
    alpha = rgba[..., 3].astype(np.float32) / 255
    depth = np.where(alpha > 0, 2.5, 1e10).astype(np.float32)
    normals = np.zeros((h, w, 3), np.float32)
    normals[alpha > 0] = (0, 0, 1)
    return rgba, alpha, depth, normals


def test_read_view_render_follows_the_contract(tmp_path):
    rgba, alpha, depth, normals = passes()
    write_render(tmp_path, "v0", rgba, alpha, depth, normals)
    r = read_view_render(tmp_path, "v0")
    assert r.size == (16, 12) and np.array_equal(r.rgba, rgba) and np.array_equal(r.alpha, alpha)
    assert np.array_equal(r.depth, depth) and np.array_equal(r.normals, normals)
    write_png(tmp_path / "rgb.png", rgba[..., :3])  # an RGB PNG gets an opaque alpha
    (tmp_path / "rgb.exr").write_bytes((tmp_path / "v0.exr").read_bytes())
    assert (read_view_render(tmp_path, "rgb").rgba[..., 3] == 255).all()


def test_read_view_render_says_what_is_wrong(tmp_path):
    rgba, alpha, depth, normals = passes()
    with pytest.raises(BadInput, match="missing"):
        read_view_render(tmp_path, "nothing")
    write_render(tmp_path, "small", rgba[:6], alpha[:6], depth[:6], normals[:6])
    write_png(tmp_path / "small.png", rgba)
    with pytest.raises(BadInput, match="16×12 but small.exr is 16×6"):
        read_view_render(tmp_path, "small")
    write_png(tmp_path / "nodepth.png", rgba)
    write_exr(tmp_path / "nodepth.exr", {"ViewLayer.Combined.A": alpha, "ViewLayer.Normal.X": alpha})
    with pytest.raises(BadInput, match="no Depth.Z channel"):
        read_view_render(tmp_path, "nodepth")
    with pytest.raises(BadInput, match="several"):
        find_channel({"A.Depth.Z": depth, "B.Depth.Z": depth}, "Depth.Z", "x.exr")
    assert find_channel({"ViewLayer.Depth.Z": depth, "ViewLayer.MyDepth.Z": alpha}, "Depth.Z", "x") is depth
    write_png(tmp_path / "deep.png", rgba.astype(np.uint16) * 257)
    (tmp_path / "deep.exr").write_bytes((tmp_path / "nodepth.exr").read_bytes())
    with pytest.raises(BadInput, match="8-bit"):
        read_view_render(tmp_path, "deep")
