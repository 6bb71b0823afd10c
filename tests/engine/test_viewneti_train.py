"""ViewNeTI training on a tiny posed set with a tiny SD 2.x: the loss goes down, a seed reproduces a run, a resumed run equals an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from tiny_viewneti import build_tiny_sd2  # noqa: E402

from engine.diffusion.sources import ModelAccess  # noqa: E402
from engine.errors import BadInput, JobCancelled  # noqa: E402
from engine.imagefiles import write_png  # noqa: E402
from engine.jobs import run_job  # noqa: E402
from engine.multiview.cameras import camera_to_world  # noqa: E402
from engine.progress import CancelToken  # noqa: E402
from engine.viewneti import checkpoint  # noqa: E402
from engine.viewneti.cameras import spherical_numbers  # noqa: E402
from engine.viewneti.train import TrainRequest  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_sd2(tmp_path_factory.mktemp("models") / "tiny-sd2")


def posed_set(folder: Path, views: int = 4, size: int = 64) -> Path:
    """A red square seen from ``views`` azimuths: it slides across the image as the camera turns."""
    (folder / "images").mkdir(parents=True)
    entries = []
    for i in range(views):
        azimuth = 360 * i / views
        pixels = np.full((size, size, 3), 255, np.uint8)
        left = int(8 + 40 * i / views)
        pixels[20:44, left : left + 16] = [200, 40, 30]
        write_png(folder / "images" / f"{i:03d}.png", pixels)
        entries.append({"file": f"images/{i:03d}.png", "spherical": spherical_numbers(camera_to_world(azimuth, 10, 2.0)).tolist()})
    (folder / "cameras.json").write_text(json.dumps({"images": entries}))
    return folder


def request(base, data, out, **kw) -> TrainRequest:
    options = dict(steps=4, batch=1, accumulation=1, width=128, height=64, save_every=2, seed=3, view_word="v", object_word="o")
    return TrainRequest(str(data), str(base), str(out), access=ModelAccess(device="CPU"), **{**options, **kw})


def run(r, token=None):
    return run_job("train_viewneti", r, lambda p: None, token or CancelToken())


def mapper_tensors(folder: Path) -> dict:
    _, view, obj, _ = checkpoint.load(folder)
    return {**{f"view.{k}": v for k, v in view.items()}, **{f"object.{k}": v for k, v in obj.items()}}


def test_training_lowers_the_loss_and_writes_a_checkpoint_with_its_curve(base, tmp_path):
    data = posed_set(tmp_path / "data")
    result = run(request(base, data, tmp_path / "ckpt", steps=30, save_every=10, learning_rate=3e-3))
    losses = np.array(result.losses)
    assert result.steps_done == 30 and len(losses) == 30
    assert losses[-10:].mean() < losses[:10].mean(), losses
    info, view, _, state = checkpoint.load(tmp_path / "ckpt")
    assert info.steps_done == 30 and info.cameras.kind == "SPHERICAL" and info.word_dim == 32 and info.alpha == 5.0
    assert set(view) == {
        "net.0.weight",
        "net.0.bias",
        "net.1.weight",
        "net.1.bias",
        "net.3.weight",
        "net.3.bias",
        "net.4.weight",
        "net.4.bias",
        "output_layer.0.weight",
        "output_layer.0.bias",
    }
    assert state is not None and "generator" in state
    assert len(json.loads((tmp_path / "ckpt" / "loss.json").read_text())) == 30
    from engine.imagefiles import read_png

    drawn = read_png(tmp_path / "ckpt" / "loss.png")
    assert drawn.shape == (320, 640, 3) and (drawn == [30, 60, 160]).all(axis=2).sum() > 100, "the running mean is drawn"


def test_the_same_seed_reproduces_a_run_and_a_resumed_run_equals_an_uninterrupted_one(base, tmp_path):
    data = posed_set(tmp_path / "data")
    run(request(base, data, tmp_path / "a"))
    run(request(base, data, tmp_path / "b"))
    first, again = mapper_tensors(tmp_path / "a"), mapper_tensors(tmp_path / "b")
    assert all(torch.equal(first[k], again[k]) for k in first)
    run(request(base, data, tmp_path / "c", steps=2))
    run(request(base, data, tmp_path / "c", steps=4, resume=True))
    resumed = mapper_tensors(tmp_path / "c")
    assert all(torch.equal(first[k], resumed[k]) for k in first)
    assert checkpoint.load(tmp_path / "c")[0].losses == checkpoint.load(tmp_path / "a")[0].losses


def test_a_cancelled_training_keeps_its_last_checkpoint_and_says_which_step(base, tmp_path):
    data = posed_set(tmp_path / "data")
    token, seen = CancelToken(), []

    def emit(p):
        seen.append(p.message)
        if p.message.startswith("Step 3 of"):
            token.cancel()

    with pytest.raises(JobCancelled, match="cancelled at step 3; the checkpoint in .* holds step 2"):
        run_job("train_viewneti", request(base, data, tmp_path / "ckpt", steps=6), emit, token)
    assert checkpoint.load(tmp_path / "ckpt")[0].steps_done == 2


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(views=1), "at least 2 views"),
        (dict(model_kind="epsilon"), "ViewNeTI's base is SD 2.x with v-prediction"),
        (dict(parameterisation="DTU12"), "no DTU12 camera numbers"),
        (dict(width=100), "multiples of 64"),
    ],
)
def test_bad_input_is_refused_in_one_line(base, tmp_path, change, message):
    data = posed_set(tmp_path / "data", views=change.pop("views", 4))
    model = base
    if change.pop("model_kind", None):
        import shutil

        model = tmp_path / "eps"
        shutil.copytree(base, model)
        config = json.loads((model / "scheduler" / "scheduler_config.json").read_text())
        (model / "scheduler" / "scheduler_config.json").write_text(json.dumps({**config, "prediction_type": "epsilon"}))
    with pytest.raises(BadInput, match=message):
        run(request(model, data, tmp_path / "ckpt", **change))
    assert not (tmp_path / "ckpt" / checkpoint.INFO).exists()


def test_images_of_mixed_sizes_are_refused(base, tmp_path):
    data = posed_set(tmp_path / "data")
    write_png(data / "images" / "001.png", np.zeros((32, 48, 3), np.uint8))
    with pytest.raises(BadInput, match="mixed sizes"):
        run(request(base, data, tmp_path / "ckpt"))


def render_request(base, ckpt, out, cameras, **kw):
    from engine.viewneti.render import RenderViewRequest

    options = dict(width=128, height=64, steps=2, seed=4)
    return RenderViewRequest(
        str(ckpt), str(base), str(out), [c.tolist() for c in cameras], access=ModelAccess(device="CPU"), **{**options, **kw}
    )


def test_a_checkpoint_renders_the_cameras_it_is_given_reproducibly_and_warns_outside_its_range(base, tmp_path):
    data = posed_set(tmp_path / "data")
    run(request(base, data, tmp_path / "ckpt", steps=2))
    cameras = [camera_to_world(30, 10, 2.0), camera_to_world(200, 10, 2.0)]
    first = run_job("render_view", render_request(base, tmp_path / "ckpt", tmp_path / "a", cameras), lambda p: None, CancelToken())
    again = run_job("render_view", render_request(base, tmp_path / "ckpt", tmp_path / "b", cameras), lambda p: None, CancelToken())
    assert [Path(p).name for p in first.paths] == ["view_0000.png", "view_0001.png"] and not first.warnings
    assert all(Path(a).read_bytes() == Path(b).read_bytes() for a, b in zip(first.paths, again.paths))
    assert Path(first.paths[0]).read_bytes() != Path(first.paths[1]).read_bytes(), "another camera, another view"
    meta = json.loads((tmp_path / "a" / "render.json").read_text())
    assert len(meta["views"]) == 2 and meta["seed"] == 4
    high = run_job(
        "render_view", render_request(base, tmp_path / "ckpt", tmp_path / "c", [camera_to_world(0, 40, 2.0)]), lambda p: None, CancelToken()
    )
    assert high.warnings and "outside the trained range" in high.warnings[0]
    with pytest.raises(BadInput, match="already holds"):
        run_job("render_view", render_request(base, tmp_path / "ckpt", tmp_path / "a", cameras), lambda p: None, CancelToken())


def test_a_checkpoint_made_on_another_base_revision_is_refused(base, tmp_path):
    data = posed_set(tmp_path / "data")
    run(request(base, data, tmp_path / "ckpt", steps=1, save_every=1))
    info_path = tmp_path / "ckpt" / checkpoint.INFO
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "base_revision": "folder-0123456789abcdef"}))
    with pytest.raises(BadInput, match="trained on .* at revision folder-0123456789abcdef"):
        run_job(
            "render_view",
            render_request(base, tmp_path / "ckpt", tmp_path / "out", [camera_to_world(0, 10, 2.0)]),
            lambda p: None,
            CancelToken(),
        )
    assert not (tmp_path / "out").exists()


def test_orbit_positions_render_about_the_training_target_like_the_same_camera_matrix(base, tmp_path):
    data = posed_set(tmp_path / "data")
    run(request(base, data, tmp_path / "ckpt", steps=1, save_every=1))
    matrix = camera_to_world(30, 10, 2.0)  # the posed set circles the origin
    as_matrix = run_job("render_view", render_request(base, tmp_path / "ckpt", tmp_path / "a", [matrix]), lambda p: None, CancelToken())
    as_orbit = render_request(base, tmp_path / "ckpt", tmp_path / "b", [])
    as_orbit.orbits = [[30, 10, 2.0]]
    result = run_job("render_view", as_orbit, lambda p: None, CancelToken())
    assert Path(result.paths[0]).read_bytes() == Path(as_matrix.paths[0]).read_bytes()
    both = render_request(base, tmp_path / "ckpt", tmp_path / "c", [matrix])
    both.orbits = [[30, 10, 2.0]]
    with pytest.raises(BadInput, match="not both"):
        run_job("render_view", both, lambda p: None, CancelToken())
