import json

import cv2
import numpy as np
import pytest

from engine.errors import BadInput, JobCancelled
from engine.imagefiles import read_exr, write_exr, write_png
from engine.progress import CancelToken, Reporter
from engine.world import depth as depthlib
from engine.world.capture import CaptureRequest, encode_capture


def fake_render(tmp_path, depth):
    """What Blender leaves in the scratch folder after the capture render."""
    exr, png = tmp_path / "render.exr", tmp_path / "render.png"
    h, w = depth.shape
    write_exr(exr, {"ViewLayer.Depth.Z": depth, "ViewLayer.Combined.R": np.zeros((h, w), np.float32)})
    write_png(png, np.full((h, w, 3), 128, np.uint8))
    return exr, png


def run(request):
    events = []
    result = encode_capture(request, Reporter(events.append, CancelToken()))
    return result, events


def room_depth(h=32, w=64):
    rng = np.random.default_rng(5)
    return rng.uniform(1.5, 6.0, (h, w)).astype(np.float32)


def test_writes_the_four_files_with_consistent_depth(tmp_path):
    d = room_depth()
    d[0, :5] = 1e10  # rays that hit nothing (Cycles' background)
    exr, png = fake_render(tmp_path, d)
    out = tmp_path / "out"
    result, events = run(
        CaptureRequest(render_exr=str(exr), rgb_png=str(png), out_dir=str(out), position=(1.0, 2.0, 3.0), scene_name="Room", samples=8)
    )
    assert sorted(p.name for p in out.iterdir()) == ["depth.exr", "depth16.png", "meta.json", "rgb.png"]
    assert [e.done for e in events] == [1, 2, 3, 4] and events[-1].total == 4
    hits = d < 1e9
    metric = read_exr(out / "depth.exr")["Y"]
    np.testing.assert_array_equal(metric[hits], d[hits])
    assert np.all(metric[~hits] == d[hits].max())  # misses sit on the far shell
    meta = json.loads((out / "meta.json").read_text())
    assert meta["near"] == pytest.approx(d[hits].min()) and meta["far"] == pytest.approx(d[hits].max())
    assert meta["width"] == 64 and meta["height"] == 32 and meta["origin"] == [1.0, 2.0, 3.0]
    assert meta["scene"] == "Room" and "date" not in meta
    assert result.miss_fraction == pytest.approx(5 / d.size)
    inv16 = cv2.imread(str(out / "depth16.png"), cv2.IMREAD_UNCHANGED)  # an independent reader
    assert inv16.dtype == np.uint16 and inv16.ndim == 2
    back = depthlib.relative_distances(inv16 / 65535.0, depthlib.INVERSE, near=meta["near"], far=meta["far"])
    np.testing.assert_allclose(back, metric, rtol=2e-3)
    assert inv16[d == d[hits].min()].item() == 65535  # near = bright


def test_existing_outputs_are_kept_unless_overwrite(tmp_path):
    exr, png = fake_render(tmp_path, room_depth())
    out = tmp_path / "out"
    out.mkdir()
    (out / "meta.json").write_text("mine")
    with pytest.raises(BadInput, match="already holds meta.json"):
        run(CaptureRequest(render_exr=str(exr), rgb_png=str(png), out_dir=str(out)))
    assert (out / "meta.json").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["meta.json"]
    run(CaptureRequest(render_exr=str(exr), rgb_png=str(png), out_dir=str(out), overwrite=True))
    assert json.loads((out / "meta.json").read_text())["width"] == 64


def test_nothing_visible_is_a_clear_error(tmp_path):
    exr, png = fake_render(tmp_path, np.full((8, 16), 1e10, np.float32))
    with pytest.raises(BadInput, match="Nothing visible"):
        run(CaptureRequest(render_exr=str(exr), rgb_png=str(png), out_dir=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_missing_depth_pass_is_named(tmp_path):
    exr, png = fake_render(tmp_path, room_depth(4, 8))
    write_exr(exr, {"ViewLayer.Combined.R": np.zeros((4, 8), np.float32)})
    with pytest.raises(BadInput, match="no Depth pass"):
        run(CaptureRequest(render_exr=str(exr), rgb_png=str(png), out_dir=str(tmp_path / "out")))


def test_cancel_between_steps_writes_nothing(tmp_path):
    exr, png = fake_render(tmp_path, room_depth())
    token = CancelToken()

    def cancel_on_second(event):
        if event.done == 2:
            token.cancel()

    with pytest.raises(JobCancelled):
        encode_capture(
            CaptureRequest(render_exr=str(exr), rgb_png=str(png), out_dir=str(tmp_path / "out")), Reporter(cancel_on_second, token)
        )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
