"""Image files through OpenImageIO: what we write reads back elsewhere (OpenCV), and what others write reads here."""

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

from engine.errors import BadInput, EngineError
from engine.imagefiles import (
    NewFiles,
    copy_png,
    copy_render,
    read_exr,
    read_image,
    read_png,
    recorded_path,
    resize,
    strip_run_metadata,
    write_exr,
    write_png,
)
from engine.world import depth as depthlib
from engine.world.rgbd import rgbd_writers


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


@pytest.fixture
def umask():
    """Run under a given umask: ``umask(0o027)``; the process's own is restored afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def every_kind_of_file(folder: Path) -> dict[str, object]:
    """One writer for each kind of file the engine writes: PNG, EXR, JSON, npy (a sample's files), and a copied PNG."""
    pixels = np.zeros((4, 6, 3), np.uint8)
    write_png(folder.parent / "render.png", pixels)
    sample = rgbd_writers(pixels, np.zeros((4, 6), np.uint16), np.zeros((4, 6), np.float32), {"seed": 1})
    return {
        **sample,
        "depth.exr": lambda p: write_exr(p, {"Y": np.ones((4, 6), np.float32)}),
        "copied.png": lambda p: copy_png(folder.parent / "render.png", p),
    }


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_every_file_written_follows_the_umask_like_any_new_file(tmp_path, umask, mask, mode):
    out = tmp_path / "out"
    out.mkdir()
    writers = every_kind_of_file(out)
    umask(mask)
    with NewFiles([out / n for n in writers]) as files:
        for name, write in writers.items():
            files.write(out / name, write)
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == {n: mode for n in writers}
    assert sorted(p.name for p in out.iterdir()) == sorted(["copied.png", "depth.exr", "depth.npy", "depth16.png", "meta.json", "rgb.png"])


def test_a_failed_move_leaves_what_was_there_before_and_no_staging_files(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("old a")
    (tmp_path / "c.txt").write_text("old c")
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    real_replace, calls = os.replace, []

    def replace(source, target):  # the second file's move into place fails
        if Path(target) == tmp_path / "b.txt" and not calls:
            calls.append(target)
            raise PermissionError(13, "Permission denied")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    targets = [tmp_path / n for n in ("a.txt", "b.txt", "c.txt")]
    with (
        pytest.raises(BadInput, match=r"^Cannot move b.txt into place in .*: Permission denied$"),
        NewFiles(targets, overwrite=True) as files,
    ):
        for target in targets:
            files.write(target, lambda p, name=target.name: p.write_text(f"new {name}"))
    assert calls, "the failure was injected"
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before, "the first file is back, nothing else is left"


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_where_a_file_should_go_is_refused_naming_it(tmp_path, overwrite):
    (tmp_path / "meta.json").mkdir()
    (tmp_path / "meta.json" / "inside").write_text("kept")
    with pytest.raises(BadInput, match=rf"^{tmp_path}/meta.json is a folder$"):
        NewFiles([tmp_path / "rgb.png", tmp_path / "meta.json"], overwrite)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"] and (tmp_path / "meta.json" / "inside").read_text() == "kept"


def test_a_folder_that_appears_while_the_files_are_written_is_refused_and_nothing_lands(tmp_path):
    (tmp_path / "rgb.png").write_text("old")
    targets = [tmp_path / "rgb.png", tmp_path / "meta.json"]
    with pytest.raises(BadInput, match=rf"^{tmp_path}/meta.json is a folder$"), NewFiles(targets, overwrite=True) as files:
        files.write(targets[0], lambda p: p.write_text("new"))
        files.write(targets[1], lambda p: p.write_text("{}"))
        targets[1].mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json", "rgb.png"] and (tmp_path / "rgb.png").read_text() == "old"


def test_a_file_where_the_output_folder_should_be_is_refused_naming_it(tmp_path):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(BadInput, match=rf"^{tmp_path}/out is a file, not a folder$"):
        NewFiles([tmp_path / "out" / "sub" / "rgb.png"])


def test_files_in_several_folders_land_together_and_the_staging_folders_go(tmp_path):
    (tmp_path / "images").mkdir()
    targets = [tmp_path / "images" / "0.png", tmp_path / "annotations.json"]
    with NewFiles(targets) as files:
        files.write(targets[0], lambda p: write_png(p, np.zeros((2, 2), np.uint8)))
        files.write(targets[1], lambda p: p.write_text(json.dumps({})))
        assert len([p for p in tmp_path.rglob(".*staging-*")]) == 2, "one staging folder beside each folder's targets"
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["annotations.json", "images", "images/0.png"]


def test_a_recorded_path_is_relative_to_the_folder_of_the_file_that_names_it(tmp_path):
    assert recorded_path(tmp_path / "gen" / "rgb.png", tmp_path / "up") == "../gen/rgb.png"
    assert recorded_path(tmp_path / "up" / "x" / "a.png", tmp_path / "up") == "x/a.png"


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


def stamped_exr(path: Path, when: str) -> dict[str, np.ndarray]:
    """A two-part half-float EXR as Blender 5 writes a multi-layer render, with its stamp metadata; its pixels by part."""
    pixels = {
        name: np.random.default_rng(len(name)).random((3, 5, 2)).astype(np.float16) for name in ("ViewLayer.Combined", "ViewLayer.Depth")
    }
    specs = []
    for name in pixels:
        spec = oiio.ImageSpec(5, 3, 2, "half")
        spec.channelnames = (f"{name}.R", f"{name}.G")
        spec.attribute("name", name)
        spec.attribute("compression", "zip")
        spec.attribute("BlenderMultiChannel", "Blender V2.55.1 and newer")
        for key, value in {
            "Date": when,
            "RenderTime": when,
            "File": f"/home/{when}/scene.blend",
            "cycles.ViewLayer.render_time": when,
        }.items():
            spec.attribute(key, value)
        specs.append(spec)
    out = oiio.ImageOutput.create(str(path))
    for index, (spec, values) in enumerate(zip(specs, pixels.values())):
        assert (out.open(str(path), specs) if index == 0 else out.open(str(path), spec, "AppendSubimage")) and out.write_image(values)
    out.close()
    return pixels


def test_a_blender_exr_copied_loses_its_stamps_and_keeps_every_part_as_stored(tmp_path):
    pixels = stamped_exr(tmp_path / "a.exr", "2026/01/01 10:00:00")
    stamped_exr(tmp_path / "b.exr", "2027/12/31 23:59:59")
    copy_render(tmp_path / "a.exr", tmp_path / "clean-a.exr")
    copy_render(tmp_path / "b.exr", tmp_path / "clean-b.exr")
    assert (tmp_path / "clean-a.exr").read_bytes() == (tmp_path / "clean-b.exr").read_bytes()
    image = oiio.ImageInput.open(str(tmp_path / "clean-a.exr"))
    for part, (name, values) in enumerate(pixels.items()):
        assert image.seek_subimage(part, 0)
        spec = image.spec()
        kept = {a.name for a in spec.extra_attribs}
        assert {"Date", "RenderTime", "File", "cycles.ViewLayer.render_time", "capDate", "DateTime"}.isdisjoint(kept), kept
        assert spec.get_string_attribute("name") == name and "BlenderMultiChannel" in kept and str(spec.format) == "half"
        np.testing.assert_array_equal(image.read_image(part, 0, 0, 2, "half"), values)
    image.close()


def test_a_rendered_file_is_rewritten_in_place_without_its_stamps_and_other_files_are_refused(tmp_path):
    stamped_exr(tmp_path / "frame.exr", "now")
    strip_run_metadata(tmp_path / "frame.exr")
    copy_render(tmp_path / "frame.exr", tmp_path / "again.exr")
    assert (tmp_path / "frame.exr").read_bytes() == (tmp_path / "again.exr").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.exr", "frame.exr"], "no staging left"
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    with pytest.raises(BadInput, match=r"a.jpg is neither a PNG nor an OpenEXR file$"):
        copy_render(tmp_path / "a.jpg", tmp_path / "b.jpg")


@pytest.mark.parametrize("content, words", [(b"not a png", "is not a PNG"), (b"\x89PNG\r\n\x1a\n\x00\x00\x01\x00IHDR", "truncated")])
def test_copying_a_broken_png_is_refused_naming_the_file(tmp_path, content, words):
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(BadInput, match=words):
        copy_png(tmp_path / "bad.png", tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()
