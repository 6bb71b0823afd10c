"""Image files through OpenImageIO: what we write reads back elsewhere (OpenCV), and what others write reads here."""

import sys

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

from engine.errors import BadInput, EngineError
from engine.imagefiles import NewFiles, copy_png, read_exr, read_image, read_png, resize, write_exr, write_png
from engine.world import depth as depthlib


def to_rgb(pixels: np.ndarray) -> np.ndarray:
    """OpenCV's BGR(A) as RGB(A)."""
    if pixels.ndim == 3 and pixels.shape[2] >= 3:
        return np.concatenate([pixels[..., 2::-1], pixels[..., 3:]], axis=-1)
    return pixels


@pytest.mark.parametrize("shape, dtype", [((7, 11), np.uint16), ((5, 9, 3), np.uint8), ((4, 6, 4), np.uint16), ((3, 5, 4), np.uint8)])
def test_png_written_here_reads_back_in_opencv_and_here(tmp_path, shape, dtype):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    write_png(tmp_path / "a.png", pixels)
    np.testing.assert_array_equal(to_rgb(cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_UNCHANGED)), pixels)
    np.testing.assert_array_equal(read_png(tmp_path / "a.png"), pixels.reshape(*shape[:2], -1))


def test_colour_under_transparent_pixels_is_kept_as_stored(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[..., 3] = [[0, 64, 128], [255, 1, 0]]
    write_png(tmp_path / "a.png", rgba)
    np.testing.assert_array_equal(to_rgb(cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_UNCHANGED)), rgba)
    cv2.imwrite(str(tmp_path / "b.png"), rgba[..., [2, 1, 0, 3]])
    np.testing.assert_array_equal(read_png(tmp_path / "b.png"), rgba)  # never premultiplied on reading


def test_png_rejects_float_pixels_and_odd_shapes(tmp_path):
    with pytest.raises(BadInput, match="uint8 or uint16"):
        write_png(tmp_path / "a.png", np.zeros((2, 2), np.float32))
    with pytest.raises(BadInput, match="1 to 4 channels"):
        write_png(tmp_path / "a.png", np.zeros((2, 2, 5), np.uint8))


@pytest.mark.parametrize("shape", [(1, 1), (17, 5), (40, 33)])
def test_exr_roundtrip_smooth_and_noisy(tmp_path, shape):
    rng = np.random.default_rng(4)
    smooth = np.tile(np.linspace(0, 5, shape[1], dtype=np.float32), (shape[0], 1))
    noisy = rng.uniform(0, 1e4, shape).astype(np.float32)
    write_exr(tmp_path / "d.exr", {"Y": smooth, "A.Depth.Z": noisy})
    back = read_exr(tmp_path / "d.exr")
    assert set(back) == {"Y", "A.Depth.Z"}
    np.testing.assert_array_equal(back["Y"], smooth)
    np.testing.assert_array_equal(back["A.Depth.Z"], noisy)


@pytest.mark.parametrize("compression", ["none", "zip", "zips", "piz", "rle", "pxr24", "b44", "dwaa", "dwab"])
def test_a_depth_exr_loads_whatever_its_compression(tmp_path, compression):
    rng = np.random.default_rng(5)
    depth = rng.uniform(0.5, 20.0, (32, 64)).astype(np.float32)
    write_exr(tmp_path / "depth.exr", {"Z": depth}, compression=compression)
    spec = oiio.ImageInput.open(str(tmp_path / "depth.exr"))
    assert spec.spec().get_string_attribute("compression") == compression
    spec.close()
    stored = depthlib.read_depth_file(tmp_path / "depth.exr")
    assert stored.mode == depthlib.METRIC and stored.kind == "float EXR" and stored.values.shape == (32, 64)
    lossless = compression in ("none", "zip", "zips", "piz", "rle")
    np.testing.assert_allclose(stored.values, depth, rtol=0 if lossless else 2e-2)


def test_a_multi_part_exr_gives_every_part_s_channels(tmp_path):
    """Blender 5 writes one part per pass; 4.5 one part with them all. Both read the same."""
    path = str(tmp_path / "passes.exr")
    h, w = 4, 6
    parts = {"ViewLayer.Combined": ("R", "G", "B", "A"), "ViewLayer.Depth": ("Z",)}
    specs = []
    for name, channels in parts.items():
        spec = oiio.ImageSpec(w, h, len(channels), "float")
        spec.channelnames = tuple(f"{name}.{c}" for c in channels)
        spec.attribute("name", name)
        specs.append(spec)
    out = oiio.ImageOutput.create(path)
    assert out.open(path, specs)
    for index, spec in enumerate(specs):
        if index:
            assert out.open(path, spec, "AppendSubimage")
        out.write_image(np.full((h, w, spec.nchannels), index + 1, np.float32))
    out.close()
    back = read_exr(path)
    assert sorted(back) == sorted(f"{n}.{c}" for n, cs in parts.items() for c in cs)
    assert (back["ViewLayer.Depth.Z"] == 2).all() and (back["ViewLayer.Combined.A"] == 1).all()


def test_files_that_are_not_what_they_should_be_are_refused_with_the_reason(tmp_path):
    (tmp_path / "x.exr").write_bytes(b"not an exr at all")
    with pytest.raises(BadInput, match="Could not read image"):
        read_exr(tmp_path / "x.exr")
    write_png(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(BadInput, match="not an OpenEXR"):
        read_exr(tmp_path / "a.png")
    with pytest.raises(BadInput, match="not found"):
        read_image(tmp_path / "missing.png")


def test_without_openimageio_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "OpenImageIO", None)
    with pytest.raises(EngineError, match="pip install OpenImageIO"):
        read_image(tmp_path / "a.png")


@pytest.mark.parametrize(
    "name, write, mode, kind",
    [
        ("d.png", lambda p, v: cv2.imwrite(p, np.round(v * 255).astype(np.uint8)), depthlib.RELATIVE, "8-bit PNG"),
        ("d.png", lambda p, v: cv2.imwrite(p, np.round(v * 65535).astype(np.uint16)), depthlib.RELATIVE, "16-bit PNG"),
        ("d.jpg", lambda p, v: cv2.imwrite(p, np.round(v * 255).astype(np.uint8)), depthlib.RELATIVE, "8-bit JPEG"),
        ("d.tif", lambda p, v: cv2.imwrite(p, (1 + 9 * v).astype(np.float32)), depthlib.METRIC, "float TIFF"),
        ("d.hdr", lambda p, v: cv2.imwrite(p, np.repeat((1 + 9 * v)[..., None], 3, -1).astype(np.float32)), depthlib.METRIC, "float HDR"),
        ("d.npy", lambda p, v: np.save(p, (1 + 9 * v).astype(np.float32)), depthlib.METRIC, "float .npy"),
        ("d.npy", lambda p, v: np.save(p, np.round(v * 65535).astype(np.uint16)), depthlib.RELATIVE, "uint16 .npy"),
    ],
)
def test_auto_depth_mode_follows_the_file(tmp_path, name, write, mode, kind):
    values = np.tile(np.linspace(0.1, 0.9, 16, dtype=np.float32), (8, 1))
    path = str(tmp_path / name)
    write(path, values)
    stored = depthlib.read_depth_file(path)
    assert (stored.mode, stored.kind, stored.values.shape, stored.values.dtype) == (mode, kind, (8, 16), np.float32)
    expected = values if mode == depthlib.RELATIVE else 1 + 9 * values
    tolerance = 0.05 if name.endswith((".jpg", ".hdr")) else 1e-2
    np.testing.assert_allclose(stored.values, expected, rtol=tolerance, atol=tolerance)
    assert depthlib.resolve_mode(depthlib.AUTO, stored.mode) == mode


def test_metric_mode_refuses_an_8_bit_image_and_points_to_auto():
    with pytest.raises(BadInput, match="Auto or Relative"):
        depthlib.resolve_mode(depthlib.METRIC, depthlib.RELATIVE)
    assert depthlib.resolve_mode(depthlib.RELATIVE, depthlib.METRIC) == depthlib.RELATIVE


def test_new_files_never_overwrite_and_leave_nothing_on_failure(tmp_path):
    kept = tmp_path / "a.txt"
    kept.write_text("original")
    with pytest.raises(BadInput, match="already holds a.txt"):
        NewFiles([kept, tmp_path / "b.txt"])
    assert kept.read_text() == "original"

    with pytest.raises(RuntimeError), NewFiles([kept, tmp_path / "b.txt"], overwrite=True) as files:
        files.write(tmp_path / "b.txt", lambda p: p.write_text("new"))
        files.write(kept, lambda p: (_ for _ in ()).throw(RuntimeError("disk full")))
    assert kept.read_text() == "original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]  # no temporaries, no half set

    with NewFiles([kept, tmp_path / "b.txt"], overwrite=True) as files:
        files.write(tmp_path / "b.txt", lambda p: p.write_text("new b"))
        files.write(kept, lambda p: p.write_text("new a"))
    assert kept.read_text() == "new a" and (tmp_path / "b.txt").read_text() == "new b"


def test_resize_keeps_flat_colour_and_the_mean_of_a_shrunk_image():
    flat = np.full((40, 60, 3), (0.2, 0.5, 0.8), np.float32)
    np.testing.assert_allclose(resize(flat, 17, 33), np.broadcast_to((0.2, 0.5, 0.8), (33, 17, 3)), atol=1e-5)
    noise = np.random.default_rng(1).random((64, 64, 1)).astype(np.float32)
    small = resize(noise, 16, 16)
    assert small.shape == (16, 16, 1) and abs(float(small.mean()) - float(noise.mean())) < 0.01
    assert resize(noise[..., 0], 8, 8).shape == (8, 8, 1)


def test_an_exr_carries_no_write_time_so_the_same_pixels_give_the_same_bytes(tmp_path):
    depth = np.linspace(1, 2, 12, dtype=np.float32).reshape(3, 4)
    write_exr(tmp_path / "a.exr", {"Z": depth})
    assert b"capDate" not in (tmp_path / "a.exr").read_bytes()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    import zlib

    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


def test_a_copied_png_loses_its_per_run_text_and_time_chunks_and_keeps_its_pixels(tmp_path):
    pixels = np.random.default_rng(5).integers(0, 256, (6, 7, 4), dtype=np.uint8)
    write_png(tmp_path / "clean.png", pixels)
    clean = (tmp_path / "clean.png").read_bytes()
    header_end = 8 + 25  # the signature, then IHDR (13 bytes of data + 12 of length, type and CRC)
    stamped = (
        clean[:header_end]
        + png_chunk(b"tEXt", b"cycles.ViewLayer.render_time\x0000:00.13")
        + png_chunk(b"tIME", bytes(7))
        + png_chunk(b"zTXt", b"File\x00\x00x")
        + clean[header_end:]
    )
    (tmp_path / "render.png").write_bytes(stamped)
    copy_png(tmp_path / "render.png", tmp_path / "copy.png")
    assert (tmp_path / "copy.png").read_bytes() == clean
    np.testing.assert_array_equal(read_png(tmp_path / "copy.png"), pixels)


@pytest.mark.parametrize("content, words", [(b"not a png", "is not a PNG"), (b"\x89PNG\r\n\x1a\n\x00\x00\x01\x00IHDR", "truncated")])
def test_copying_a_broken_png_is_refused_naming_the_file(tmp_path, content, words):
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(BadInput, match=words):
        copy_png(tmp_path / "bad.png", tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()
