"""ViewNeTI training on a tiny posed set with a tiny SD 2.x: the loss goes down, a seed reproduces a run, a resumed run equals an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from tiny_clip import embedding_lookups, read_clip_words  # noqa: E402
from tiny_viewneti import build_tiny_sd2  # noqa: E402

from engine.cameras import camera_to_world  # noqa: E402
from engine.diffusion.sources import ModelAccess  # noqa: E402
from engine.errors import BadInput, JobCancelled  # noqa: E402
from engine.imagefiles import write_png  # noqa: E402
from engine.jobs import run_job  # noqa: E402
from engine.progress import CancelToken  # noqa: E402
from engine.viewneti import checkpoint  # noqa: E402
from engine.viewneti.cameras import spherical_numbers  # noqa: E402
from engine.viewneti.train import TrainRequest  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny_sd2(tmp_path_factory.mktemp("models") / "tiny-sd2")


def posed_set(folder: Path, views: int = 4, size: int = 64, colour=(200, 40, 30), elevation: float = 10) -> Path:
    """A square seen from ``views`` azimuths: it slides across the image as the camera turns."""
    (folder / "images").mkdir(parents=True)
    entries = []
    for i in range(views):
        azimuth = 360 * i / views
        pixels = np.full((size, size, 3), 255, np.uint8)
        left = int(8 + 40 * i / views)
        pixels[20:44, left : left + 16] = colour
        write_png(folder / "images" / f"{i:03d}.png", pixels)
        camera = spherical_numbers(camera_to_world(azimuth, elevation, 2.0)).tolist()
        entries.append({"file": f"images/{i:03d}.png", "spherical": camera})
    (folder / "cameras.json").write_text(json.dumps({"images": entries}))
    return folder


def request(base, data, out, **kw) -> TrainRequest:
    """A request on one posed set, or several (a list)."""
    options = dict(steps=4, batch=1, accumulation=1, width=128, height=64, save_every=2, seed=3, view_word="v", object_word="o")
    folders = [str(d) for d in (data if isinstance(data, list) else [data])]
    return TrainRequest(folders, str(base), str(out), access=ModelAccess(device="CPU"), **{**options, **kw})


def run(r, token=None):
    return run_job("train_viewneti", r, lambda p: None, token or CancelToken())


def mapper_tensors(folder: Path) -> dict:
    _, view, objects, _ = checkpoint.load(folder)
    return {**{f"view.{k}": v for k, v in view.items()}, **{f"object{i}.{k}": v for i, obj in enumerate(objects) for k, v in obj.items()}}


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

    with pytest.raises(JobCancelled, match="cancelled at step 3; kept the checkpoint in .* at step 2 "):
        run_job("train_viewneti", request(base, data, tmp_path / "ckpt", steps=6), emit, token)
    assert checkpoint.load(tmp_path / "ckpt")[0].steps_done == 2


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(views=1), "at least 2 views"),
        (dict(model_kind="epsilon"), "ViewNeTI's base is SD 2.x with v-prediction"),
        (dict(parameterisation="DTU12"), "no DTU12 camera numbers"),
        (dict(width=100), "Width 100: must be 64–1024, a multiple of 64"),
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
    from engine.viewneti.render import RenderViewRequest, Views

    options = dict(width=128, height=64, steps=2, seed=4)
    views = Views([c.tolist() for c in cameras], **{**options, **kw})
    return RenderViewRequest(checkpoint=str(ckpt), model=str(base), out_dir=str(out), views=views, access=ModelAccess(device="CPU"))


def test_a_checkpoint_renders_the_cameras_it_is_given_reproducibly_and_warns_of_cameras_it_was_not_trained_for(base, tmp_path):
    data = posed_set(tmp_path / "data")  # one elevation, one distance
    cameras = [camera_to_world(30, 10, 2.0), camera_to_world(200, 10, 2.0)]
    results = {}
    for job, job_request in [
        ("train_viewneti", request(base, data, tmp_path / "ckpt", steps=2)),
        ("render_view", render_request(base, tmp_path / "ckpt", tmp_path / "a", cameras)),
    ]:
        with embedding_lookups() as lookups:  # the placeholders' own ids (49,408 and 49,409) are never looked up
            results[job] = run_job(job, job_request, lambda p: None, CancelToken())
        assert read_clip_words(lookups, "a", "photo", "of") and all(max(ids) < rows for rows, ids in lookups), job
    assert results["train_viewneti"].warnings == [
        "The training cameras all have the same elevation and distance: the view mapper learns nothing of them and reads any "
        "camera as at the training value (vary the views, as the staggered orbit does)"
    ]
    first = results["render_view"]
    again = run_job("render_view", render_request(base, tmp_path / "ckpt", tmp_path / "b", cameras), lambda p: None, CancelToken())
    assert [Path(p).name for p in first.paths] == ["view_0000.png", "view_0001.png"] and not first.warnings
    assert all(Path(a).read_bytes() == Path(b).read_bytes() for a, b in zip(first.paths, again.paths))
    assert Path(first.paths[0]).read_bytes() != Path(first.paths[1]).read_bytes(), "another camera, another view"
    meta = json.loads((tmp_path / "a" / "render.json").read_text())
    assert len(meta["views"]) == 2 and meta["seed"] == 4
    high = run_job(
        "render_view", render_request(base, tmp_path / "ckpt", tmp_path / "c", [camera_to_world(0, 40, 2.0)]), lambda p: None, CancelToken()
    )
    assert high.warnings == ["The view mapper saw one elevation only (10) in training: a camera at another is read as at that one"]
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
    as_orbit.views.orbits = [[30, 10, 2.0]]
    result = run_job("render_view", as_orbit, lambda p: None, CancelToken())
    assert Path(result.paths[0]).read_bytes() == Path(as_matrix.paths[0]).read_bytes()
    both = render_request(base, tmp_path / "ckpt", tmp_path / "c", [matrix])
    both.views.orbits = [[30, 10, 2.0]]
    with pytest.raises(BadInput, match="one of them"):
        run_job("render_view", both, lambda p: None, CancelToken())


def test_pre_training_fits_one_shared_view_mapper_and_one_object_mapper_per_set(base, tmp_path):
    sets = [posed_set(tmp_path / "red"), posed_set(tmp_path / "blue", colour=(30, 40, 200), elevation=20)]
    result = run(request(base, sets, tmp_path / "ckpt", mode="PRETRAIN", steps=3))
    info, view, objects, _ = checkpoint.load(tmp_path / "ckpt")
    assert info.mode == "PRETRAIN" and [o.name for o in info.objects] == ["red", "blue"] and len(objects) == 2
    assert info.objects[1].source == "../blue", "relative to the checkpoint: the same bytes wherever it is trained"
    assert info.cameras.low[2] == pytest.approx(10) and info.cameras.high[2] == pytest.approx(20), "ranges over every set"
    assert any(not torch.equal(objects[0][k], objects[1][k]) for k in objects[0]), "each set has its own object mapper"
    assert len(result.losses) == 3 and all(np.isfinite(result.losses))
    run(request(base, sets, tmp_path / "again", mode="PRETRAIN", steps=3))
    first, again = mapper_tensors(tmp_path / "ckpt"), mapper_tensors(tmp_path / "again")
    assert all(torch.equal(first[k], again[k]) for k in first)

    render = render_request(base, tmp_path / "ckpt", tmp_path / "views", [camera_to_world(30, 15, 2.0)])
    render.views.names = ["red.png"]
    red = run_job("render_view", render, lambda p: None, CancelToken())
    render = render_request(base, tmp_path / "ckpt", tmp_path / "views", [camera_to_world(30, 15, 2.0)], object="blue")
    render.views.names, render.views.meta_name = ["blue.png"], "blue.json"
    blue = run_job("render_view", render, lambda p: None, CancelToken())
    assert Path(red.paths[0]).read_bytes() != Path(blue.paths[0]).read_bytes(), "another object mapper, another image"
    assert json.loads((tmp_path / "views" / "blue.json").read_text())["object"] == "blue"
    with pytest.raises(BadInput, match="no object 'green' .*red, blue"):
        run_job("render_view", render_request(base, tmp_path / "ckpt", tmp_path / "x", [camera_to_world(0, 15, 2.0)], object="green"),
                lambda p: None, CancelToken())  # fmt: skip


def test_single_view_training_keeps_the_pre_trained_view_mapper_frozen_and_fits_a_new_object_mapper(base, tmp_path):
    sets = [posed_set(tmp_path / "red"), posed_set(tmp_path / "blue", colour=(30, 40, 200), elevation=20)]
    run(request(base, sets, tmp_path / "pre", mode="PRETRAIN", steps=2, alpha=3.0))
    one = posed_set(tmp_path / "one", views=1, colour=(40, 200, 30), elevation=15)
    fit = dict(mode="SINGLE_VIEW", view_mapper=str(tmp_path / "pre"), width=64, view_word="x")
    result = run(request(base, one, tmp_path / "fit", steps=4, **fit))
    run(request(base, one, tmp_path / "start", steps=1, **fit))
    pre, pre_view, _, _ = checkpoint.load(tmp_path / "pre")
    info, view, objects, _ = checkpoint.load(tmp_path / "fit")
    assert info.mode == "SINGLE_VIEW" and info.view_mapper_from == "../pre"
    assert all(torch.equal(view[k], pre_view[k]) for k in pre_view), "the view mapper is frozen"
    assert info.cameras == pre.cameras and (info.width, info.height, info.alpha, info.view_word) == (128, 64, 3.0, "v"), (
        "the pre-trained view mapper's cameras, size, α and word"
    )
    assert [o.name for o in info.objects] == ["one"] and len(objects) == 1
    assert not result.warnings and len(result.losses) == 4
    start = checkpoint.load(tmp_path / "start")[2][0]
    assert any(not torch.equal(objects[0][k], start[k]) for k in start), "the object mapper trains"

    high = posed_set(tmp_path / "high", views=1, elevation=60)
    outside = run(request(base, high, tmp_path / "fit2", mode="SINGLE_VIEW", view_mapper=str(tmp_path / "pre"), steps=1))
    assert outside.warnings and "The image's camera lies" in outside.warnings[0] and "outside the trained range" in outside.warnings[0]


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(mode="SINGLE_VIEW"), "needs a pre-trained view mapper"),
        (dict(mode="PRETRAIN"), "at least 2 posed sets"),
        (dict(view_mapper="."), "single-view training only"),  # a folder that exists: the path check passes
        (dict(two_sets=True), "One Scene training reads one posed set"),
        (dict(mode="TWO_SCENES"), "Mode 'TWO_SCENES': choose from SCENE, PRETRAIN, SINGLE_VIEW"),
        (dict(augmentation="HEAVY"), "Augmentation 'HEAVY': choose from AUTO"),
    ],
)
def test_a_mode_given_the_wrong_inputs_is_refused_in_one_line(base, tmp_path, change, message):
    data = posed_set(tmp_path / "data")
    with pytest.raises(BadInput, match=message):
        run(request(base, [data, data] if change.pop("two_sets", False) else data, tmp_path / "ckpt", **change))
    assert not (tmp_path / "ckpt").exists()


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def two_steps(base, tmp_path):
    """A scene run of 2 steps (seed 3, 128×64, batch 1, α 5): its posed set, another one, and the checkpoint."""
    data, other = posed_set(tmp_path / "data"), posed_set(tmp_path / "other", colour=(30, 40, 200))
    run(request(base, data, tmp_path / "ckpt", steps=2))
    return data, other, tmp_path / "ckpt"


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(width=64), "Width 64: the checkpoint in .*ckpt was trained with 128×64, not 64×64: a resumed run keeps its settings"),
        (dict(height=128), "Width 128: the checkpoint in .* was trained with 128×64, not 128×128"),
        (dict(seed=4), "Seed 4: the checkpoint in .* was trained with 3:"),
        (dict(batch=2), "Batch 2: the checkpoint in .* was trained with 1:"),
        (dict(accumulation=2), "Accumulation 2: the checkpoint in .* was trained with 1:"),
        (dict(learning_rate=2e-3), "Learning Rate 0.002: the checkpoint in .* was trained with 0.001:"),
        (dict(augmentation="NONE"), "Augmentation 'NONE': the checkpoint in .* was trained with 'AUTO':"),
        (dict(alpha=3.0), "Alpha 3: the checkpoint in .* was trained with 5:"),
        (dict(parameterisation="DTU12"), "Cameras 'DTU12': the checkpoint in .* was trained with 'SPHERICAL':"),
        (dict(object_word="thing"), "object_word 'thing': the checkpoint in .* was trained with 'o':"),
        (dict(data="other"), "Training Views '.*other': the checkpoint in .* was trained with .*data:"),
        (
            dict(mode="PRETRAIN", data="both"),
            r"Mode 'PRETRAIN': the checkpoint in .* was trained with 'SCENE': .*; Training Views .\S*data. differ too",
        ),
        (dict(seed=4, batch=2, alpha=3.0), "Seed 4: .*; Batch .1. and Alpha .5. differ too"),
        (dict(steps=2), "Steps 2: the checkpoint in .* has done 2 steps already: give more to continue it"),
    ],
)
def test_a_resume_with_changed_settings_is_refused_naming_them_and_rewrites_nothing(base, two_steps, change, message):
    data, other, ckpt = two_steps
    before = tree(ckpt)
    given = change.pop("data", None)
    sets = {None: data, "other": other, "both": [data, other]}[given]
    with pytest.raises(BadInput, match=message) as refused:
        run(request(base, sets, ckpt, resume=True, **{"steps": 4, **change}))
    assert "\n" not in str(refused.value)
    assert tree(ckpt) == before, "the checkpoint stays byte-identical"


def test_a_resume_may_ask_for_more_steps_and_another_save_interval(base, two_steps):
    data, _, ckpt = two_steps
    result = run(request(base, data, ckpt, resume=True, steps=5, save_every=1))
    assert result.steps_done == 5 and len(result.losses) == 5
    assert checkpoint.read(ckpt).steps_done == 5 and len(json.loads((ckpt / "loss.json").read_text())) == 5


def test_a_resume_from_the_command_line_takes_the_settings_it_does_not_give_from_the_checkpoint(base, two_steps):
    """What ``batch.py viewneti-train --data D --resume --steps 6 --out C`` builds: 128×64, seed 3, batch 1… as trained."""
    from engine import params

    data, _, ckpt = two_steps
    given = {"data_dirs": [str(data)], "model": str(base), "out_dir": str(ckpt), "resume": True, "steps": 6}
    resumed = params.build(TrainRequest, given)
    assert (resumed.width, resumed.height, resumed.seed, resumed.batch, resumed.accumulation) == (128, 64, 3, 1, 1)
    assert (resumed.view_word, resumed.object_word, resumed.alpha) == ("v", "o", 5.0)
    params.validate(resumed, models=False)  # nothing changed but the steps
    assert params.build(TrainRequest, {**given, "seed": 4}).seed == 4  # what is given stands, and is refused by name
    assert params.build(TrainRequest, {**given, "resume": False}).seed == TrainRequest.__dataclass_fields__["seed"].default


def rewrite_tensors(path: Path, change) -> None:
    """The safetensors file with ``change`` applied to its tensors (a dict), its header's record kept."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as f:
        tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    change(tensors)
    save_file(tensors, str(path), metadata=metadata)


def edit_info(folder: Path, change) -> None:
    info = json.loads((folder / checkpoint.INFO).read_text())
    change(info)
    (folder / checkpoint.INFO).write_text(json.dumps(info))


def extra_object(info):
    info["objects"].append({"name": "extra", "target": [0, 0, 0], "source": ""})


def dtu_cameras(info):
    info["cameras"] = {"kind": "DTU12", "low": [0.0] * 12, "high": [1.0] * 12}


def wider_output(tensors):
    tensors["output_layer.0.weight"] = torch.zeros(66, 64)


def set_nan(tensors):
    tensors["net.0.weight"][0, 0] = float("nan")


CORRUPTIONS = [
    ("an extra object", (checkpoint.INFO, extra_object), 'viewneti.json says objects \\["data", "extra"\\]; view_mapper.safetensors was written for \\["data"\\]'),
    ("another camera kind", (checkpoint.INFO, dtu_cameras), 'viewneti.json says cameras.kind "DTU12"; view_mapper.safetensors was written for "SPHERICAL"'),
    ("a NaN range", (checkpoint.INFO, lambda i: i["cameras"]["low"].__setitem__(2, float("nan"))), "viewneti.json: cameras.low .*NaN.*: every number must be finite"),
    ("an infinite range", (checkpoint.INFO, lambda i: i["cameras"]["high"].__setitem__(3, float("inf"))), "viewneti.json: cameras.high .*Infinity.*: every number must be finite"),
    ("another α", (checkpoint.INFO, lambda i: i.__setitem__("alpha", 3.0)), "viewneti.json says alpha 3.0; view_mapper.safetensors was written for 5.0"),
    ("another text width", (checkpoint.INFO, lambda i: i.__setitem__("word_dim", 16)), "viewneti.json says word_dim 16; view_mapper.safetensors was written for 32"),
    ("a missing field", (checkpoint.INFO, lambda i: i.pop("sigmas")), "viewneti.json lacks the field 'sigmas'"),
    ("a loss too few", (checkpoint.INFO, lambda i: i["losses"].pop()), "viewneti.json: losses .*: holds 1 losses for steps_done 2"),
    ("a tensor of another width", (checkpoint.VIEW_FILE, wider_output), "view_mapper.safetensors: output_layer.0.weight is 66×64, not 64×64 .by viewneti.json's word_dim 32"),
    ("a missing tensor", (checkpoint.OBJECT_FILE, lambda t: t.pop("0.net.3.bias")), "object_mappers.safetensors lacks the tensor '0.net.3.bias'"),
    ("a truncated file", (checkpoint.OBJECT_FILE, None), "object_mappers.safetensors is cut short: \\d+ bytes, its header describes \\d+"),
    ("a missing file", (checkpoint.VIEW_FILE, "delete"), "view_mapper.safetensors is missing"),
    ("a NaN weight", (checkpoint.VIEW_FILE, set_nan), "view_mapper.safetensors: net.0.weight holds NaN or infinite numbers"),
]  # fmt: skip


def corrupt(folder: Path, file: str, change) -> None:
    path = folder / file
    if file == checkpoint.INFO:
        edit_info(folder, change)
    elif change == "delete":
        path.unlink()
    elif change is None:
        path.write_bytes(path.read_bytes()[:-100])
    else:
        rewrite_tensors(path, change)


@pytest.mark.parametrize("what, how, message", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_a_checkpoint_whose_json_and_tensors_disagree_is_refused_in_one_line_for_resume_and_render(
    base, two_steps, tmp_path, what, how, message
):
    data, _, ckpt = two_steps
    corrupt(ckpt, *how)
    before = tree(ckpt)
    jobs = [
        ("train_viewneti", request(base, data, ckpt, resume=True, steps=4)),
        ("render_view", render_request(base, ckpt, tmp_path / "views", [camera_to_world(0, 10, 2.0)])),
        ("views_from_image", image_views_request(base, ckpt, data / "images" / "000.png", tmp_path / "views")),
    ]
    for job, job_request in jobs:  # refused by the request's check (the NaN weight: on loading, before any model)
        with pytest.raises(BadInput, match=f"(Checkpoint|Pre-trained) '.*ckpt'.*{message}|The checkpoint in .*ckpt.*{message}") as refused:
            run_job(job, job_request, lambda p: None, CancelToken())
        assert "\n" not in str(refused.value), job
    assert tree(ckpt) == before and not (tmp_path / "views").exists()


def test_the_architecture_a_checkpoint_is_checked_against_is_the_mappers(base, two_steps):
    from engine.viewneti.mapper import Mapper, MapperSpec

    state = Mapper(MapperSpec(4, 1024)).state_dict()
    assert {k: list(v.shape) for k, v in state.items()} == checkpoint.mapper_shapes(1024)
    assert list(state) == list(checkpoint.mapper_shapes(1024)), "in parameter order, as the optimizer's moments"
    _, _, ckpt = two_steps
    info = checkpoint.read(ckpt)
    assert (info.batch, info.accumulation, info.learning_rate, info.augmentation, info.seed) == (1, 1, 1e-3, "AUTO", 3)


def test_a_checkpoint_of_the_earlier_format_is_refused_saying_why(base, two_steps):
    _, _, ckpt = two_steps
    edit_info(ckpt, lambda i: i.__setitem__("format", "diffusion3d-viewneti/1"))
    with pytest.raises(
        BadInput, match="is of an earlier format .* whose tensor files do not record what they were made for: train it again"
    ):
        checkpoint.read(ckpt)


def image_views_request(base, pre, image, out, **kw):
    from engine.viewneti.render import Views
    from engine.viewneti.single_image import ImageViewsRequest

    views = Views(orbits=[[30, 15, 2.0], [200, 15, 2.0]], width=128, height=64, steps=2, seed=1)
    options = dict(fit_steps=2, seed=5, access=ModelAccess(device="CPU"))
    return ImageViewsRequest(image=str(image), view_mapper=str(pre), model=str(base), out_dir=str(out), views=views, **{**options, **kw})


def test_one_image_becomes_new_views_in_one_job_through_a_fitted_object_mapper(base, tmp_path):
    sets = [posed_set(tmp_path / "red"), posed_set(tmp_path / "blue", colour=(30, 40, 200), elevation=20)]
    run(request(base, sets, tmp_path / "pre", mode="PRETRAIN", steps=2))
    image = tmp_path / "photo.png"
    pixels = np.full((64, 128, 4), 0, np.uint8)
    pixels[16:48, 40:80] = [40, 200, 30, 255]  # an object on a transparent background
    write_png(image, pixels)
    seen = []
    result = run_job("views_from_image", image_views_request(base, tmp_path / "pre", image, tmp_path / "out"), seen.append, CancelToken())
    assert [Path(p).name for p in result.paths] == ["view_0000.png", "view_0001.png"] and not result.warnings
    fitted = checkpoint.load(Path(result.checkpoint))[0]
    assert fitted.mode == "SINGLE_VIEW" and fitted.steps_done == 2 and Path(result.checkpoint).parent == tmp_path / "out" / "fit"
    numbers = spherical_numbers(np.asarray(result.image_camera))
    assert numbers[2] == pytest.approx(15) and numbers[3] == pytest.approx(2.0) and numbers[1] == pytest.approx(0, abs=1e-9), (
        "without a camera: azimuth 0 at the middle of the trained elevations (10–20°) and distances"
    )
    dones = [p.done for p in seen]
    assert dones == sorted(dones) and seen[-1].done == seen[-1].total, "one bar from the fit to the last view"
    assert any(p.message.startswith("Fit: Step 2 of 2") for p in seen) and any(p.message.startswith("Views: ") for p in seen)

    again = run_job("views_from_image", image_views_request(base, tmp_path / "pre", image, tmp_path / "again"), lambda p: None,
                    CancelToken())  # fmt: skip
    assert all(Path(a).read_bytes() == Path(b).read_bytes() for a, b in zip(result.paths, again.paths)), "reproducible"
    with pytest.raises(BadInput, match="already"):
        run_job("views_from_image", image_views_request(base, tmp_path / "pre", image, tmp_path / "out"), lambda p: None, CancelToken())


def test_a_cancelled_fit_leaves_nothing_and_a_dtu_view_mapper_needs_the_image_camera(base, tmp_path):
    sets = [posed_set(tmp_path / "red"), posed_set(tmp_path / "blue", colour=(30, 40, 200), elevation=20)]
    run(request(base, sets, tmp_path / "pre", mode="PRETRAIN", steps=1))
    image = tmp_path / "photo.png"
    write_png(image, np.full((64, 128, 3), 128, np.uint8))
    token = CancelToken()

    def emit(p):
        if p.message.startswith("Fit: Step 1 of"):
            token.cancel()

    with pytest.raises(JobCancelled, match="cancelled at step 1"):
        run_job("views_from_image", image_views_request(base, tmp_path / "pre", image, tmp_path / "out", fit_steps=3), emit, token)
    assert not (tmp_path / "out" / "fit").exists() and not list((tmp_path / "out").glob("*.png"))

    from engine.viewneti.cameras import CameraRanges
    from engine.viewneti.mapper import Mapper, MapperSpec

    dtu = checkpoint.CheckpointInfo(CameraRanges("DTU12", [0.0] * 12, [1.0] * 12), 32, width=128, height=64, mode="IMPORTED")
    mappers = [Mapper(MapperSpec(inputs, 32)).state_dict() for inputs in (12, 0)]
    checkpoint.save(tmp_path / "dtu_pre", dtu, mappers[0], mappers[1:], None, overwrite=False)
    with pytest.raises(BadInput, match="give the image's camera"):
        run_job("views_from_image", image_views_request(base, tmp_path / "dtu_pre", image, tmp_path / "dtu"), lambda p: None, CancelToken())
