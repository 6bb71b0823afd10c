import numpy as np
import pytest

from engine.errors import BadInput
from engine.imagefiles import NewFiles, read_exr, write_exr, write_png
from png_reference import decode_png


@pytest.mark.parametrize("shape, dtype", [((7, 11), np.uint16), ((5, 9, 3), np.uint8), ((4, 6, 4), np.uint16)])
def test_png_roundtrip(tmp_path, shape, dtype):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    write_png(tmp_path / "a.png", pixels)
    header, back = decode_png(tmp_path / "a.png")
    assert header["depth"] == np.dtype(dtype).itemsize * 8
    np.testing.assert_array_equal(back.reshape(pixels.shape), pixels)


def test_png_rejects_float_pixels(tmp_path):
    with pytest.raises(BadInput, match="uint8 or uint16"):
        write_png(tmp_path / "a.png", np.zeros((2, 2), np.float32))


@pytest.mark.parametrize("shape", [(1, 1), (17, 5), (40, 33)])
def test_exr_roundtrip_smooth_and_noisy(tmp_path, shape):
    rng = np.random.default_rng(4)
    smooth = np.tile(np.linspace(0, 5, shape[1], dtype=np.float32), (shape[0], 1))
    noisy = rng.uniform(0, 1e4, shape).astype(np.float32)  # incompressible: chunks stored raw
    write_exr(tmp_path / "d.exr", {"Y": smooth, "A.Depth.Z": noisy})
    back = read_exr(tmp_path / "d.exr")
    assert set(back) == {"Y", "A.Depth.Z"}
    np.testing.assert_array_equal(back["Y"], smooth)
    np.testing.assert_array_equal(back["A.Depth.Z"], noisy)


def test_read_exr_refuses_other_files(tmp_path):
    (tmp_path / "x.exr").write_bytes(b"not an exr at all")
    with pytest.raises(BadInput, match="not an OpenEXR"):
        read_exr(tmp_path / "x.exr")


def test_new_files_never_overwrite_and_leave_nothing_on_failure(tmp_path):
    kept = tmp_path / "a.txt"
    kept.write_text("original")
    with pytest.raises(BadInput, match="already holds a.txt"):
        NewFiles([kept, tmp_path / "b.txt"])
    assert kept.read_text() == "original"

    with pytest.raises(RuntimeError):
        with NewFiles([kept, tmp_path / "b.txt"], overwrite=True) as files:
            files.write(tmp_path / "b.txt", lambda p: p.write_text("new"))
            files.write(kept, lambda p: (_ for _ in ()).throw(RuntimeError("disk full")))
    assert kept.read_text() == "original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]  # no temporaries, no half set

    with NewFiles([kept, tmp_path / "b.txt"], overwrite=True) as files:
        files.write(tmp_path / "b.txt", lambda p: p.write_text("new b"))
        files.write(kept, lambda p: p.write_text("new a"))
    assert kept.read_text() == "new a" and (tmp_path / "b.txt").read_text() == "new b"
