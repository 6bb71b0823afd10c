"""The multi-view pipeline and the generate_views job on tiny random-weight ImageDream and MVDream models.

Random weights give noise, so these tests check what must hold whatever the
weights: the same numbers as a plain loop written from the port's description,
the initial latents' draw, what each UNet call sees, determinism, batching, and
the files with their cameras.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from tiny_clip import embedding_lookups, read_clip_words  # noqa: E402
from tiny_multiview import build_tiny_multiview, port_loop  # noqa: E402

from engine.errors import BadInput, JobCancelled  # noqa: E402
from engine.imagefiles import read_png, write_png  # noqa: E402
from engine.jobs import run_job  # noqa: E402
from engine.multiview import pipeline as multiview  # noqa: E402
from engine.multiview.job import ViewsRequest  # noqa: E402
from engine.multiview.model import IMAGEDREAM, MVDREAM, inspect_multiview, load_multiview  # noqa: E402
from engine.params import validate  # noqa: E402
from engine.progress import CancelToken, Reporter  # noqa: E402

pytestmark = pytest.mark.timeout(300)
CPU = torch.device("cpu")
SIZE = 64


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {IMAGEDREAM: build_tiny_multiview(root / "imagedream", image=True), MVDREAM: build_tiny_multiview(root / "mvdream", image=False)}


def load(folder: Path):
    return load_multiview(inspect_multiview(folder), CPU, torch.float32)


def quiet() -> Reporter:
    return Reporter(lambda p: None, CancelToken(), 1)


def object_image() -> np.ndarray:
    rgb = np.ones((SIZE, SIZE, 3), np.float32)
    rgb[16:48, 20:44] = [0.8, 0.3, 0.1]
    return rgb


def settings(**kw) -> multiview.ViewSettings:
    seeds = kw.pop("seeds", [7])
    base = dict(prompts=["a toy"] * len(seeds), negatives=["blurry"] * len(seeds), seeds=seeds, size=SIZE, steps=3, guidance=5.0)
    return multiview.ViewSettings(**{**base, **kw})


class Calls:
    """Every UNet call's inputs, and the image-resampler's."""

    def __init__(self, unet):
        self.unet, self.inputs, self.features = unet, [], []

    def __enter__(self):
        self.hooks = [
            self.unet.input_blocks[0].register_forward_pre_hook(lambda m, args: self.inputs.append(args[0].clone())),
            *(
                [self.unet.image_embed.register_forward_pre_hook(lambda m, args: self.features.append(args[0].clone()))]
                if hasattr(self.unet, "image_embed")
                else []
            ),
        ]
        return self

    def __exit__(self, *exc):
        for hook in self.hooks:
            hook.remove()


def test_imagedream_gives_the_numbers_of_the_ports_own_loop(models):
    model = load(models[IMAGEDREAM])
    s = settings(image=object_image(), elevation=5.0)
    ours = multiview.generate(model, s, quiet())
    with torch.inference_mode():
        reference = port_loop(model, s)
    assert ours.views.shape == (1, 4, SIZE, SIZE, 3)
    np.testing.assert_allclose(ours.views[0], reference, atol=5e-4)  # batching differs: float rounding only


def test_the_initial_latents_are_one_draw_of_five_frames_from_the_seed_and_the_fifth_holds_the_image_latent_at_every_step(models):
    model = load(models[IMAGEDREAM])
    s = settings(image=object_image(), steps=4)
    with Calls(model.unet) as calls:
        multiview.generate(model, s, quiet())
    expected = torch.randn((5, 4, 8, 8), generator=torch.Generator("cpu").manual_seed(7))
    first = calls.inputs[0]
    assert first.shape == (10, 4, 8, 8) and len(calls.inputs) == 4
    torch.testing.assert_close(first[:4], expected[:4])  # DDIM's init sigma and input scale are 1
    torch.testing.assert_close(first[5:9], expected[:4])
    image = multiview.image_latent(model, s.image)[0]
    for seen in calls.inputs:
        assert torch.equal(seen[4], torch.zeros_like(image)), "the unconditional image frame is zero"
        torch.testing.assert_close(seen[9], image)


def test_the_unconditional_branch_sees_zero_image_features(models):
    model = load(models[IMAGEDREAM])
    with Calls(model.unet) as calls:
        multiview.generate(model, settings(image=object_image()), quiet())
    assert len(calls.features) == 1, "the image tokens are made once per job, not per step"
    zero, image = calls.features[0]
    assert not zero.any() and image.abs().sum() > 0


def test_at_guidance_1_each_step_is_one_unet_pass_without_the_unconditional_half(models):
    model = load(models[IMAGEDREAM])
    with Calls(model.unet) as calls:
        out = multiview.generate(model, settings(image=object_image(), guidance=1.0, steps=3), quiet())
    assert [x.shape[0] for x in calls.inputs] == [5, 5, 5] and out.unet_calls == 3
    assert len(calls.features) == 1


def test_same_seed_same_views_and_each_object_set_is_its_own_seeds_run(models):
    model = load(models[IMAGEDREAM])
    image = object_image()
    batch = multiview.generate(model, settings(image=image, seeds=[3, 4]), quiet())
    again = multiview.generate(model, settings(image=image, seeds=[3, 4]), quiet())
    alone = multiview.generate(model, settings(image=image, seeds=[4]), quiet())
    np.testing.assert_array_equal(batch.views, again.views)
    np.testing.assert_allclose(batch.views[1], alone.views[0], atol=1e-4)
    assert np.abs(batch.views[0] - batch.views[1]).max() > 0.01


def test_mvdream_makes_four_views_from_text_alone(models):
    model = load(models[MVDREAM])
    with Calls(model.unet) as calls:
        out = multiview.generate(model, settings(seeds=[1, 2]), quiet())
    assert out.views.shape == (2, 4, SIZE, SIZE, 3) and np.isfinite(out.views).all()
    assert calls.inputs[0].shape[0] == 2 * 2 * 4, "guided halves × sets × four frames, no image frame"


def test_every_step_previews_the_four_views_and_cancel_stops_between_steps(models):
    model = load(models[IMAGEDREAM])
    seen, token = [], CancelToken()

    def emit(p):
        seen.append(p)
        if p.preview is not None and len([e for e in seen if e.preview is not None]) == 2:
            token.cancel()

    with pytest.raises(JobCancelled):
        multiview.generate(model, settings(image=object_image(), steps=10), Reporter(emit, token, 20))
    previews = [p.preview for p in seen if p.preview is not None]
    assert len(previews) == 2 and previews[0].shape == (8, 32, 3), "four 8×8 latent views side by side"


def run(request: ViewsRequest, token: CancelToken | None = None):
    return run_job("generate_views", request, lambda p: None, token or CancelToken())


def test_the_job_writes_views_input_cameras_and_meta_and_refuses_to_overwrite(models, tmp_path):
    rgba = np.zeros((96, 96, 4), np.uint8)
    rgba[30:70, 40:60] = [200, 50, 20, 255]
    path = tmp_path / "object.png"
    write_png(path, rgba)
    request = ViewsRequest(
        out_dir=str(tmp_path / "out"), model=str(models[IMAGEDREAM]), image_path=str(path), prompt="a toy", size=SIZE, steps=2, seed=11
    )
    with embedding_lookups() as lookups:
        result = run(request)
    assert read_clip_words(lookups, "a", "toy"), "the prompt went through CLIP's real tokenizer and 49,408-row table"
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["view_0.png", "view_1.png", "view_2.png", "view_3.png", "input.png", "transforms.json", "meta.json"]
    )
    assert read_png(out / "view_2.png").shape == (SIZE, SIZE, 3)
    transforms = json.loads((out / "transforms.json").read_text())
    assert [f["file_path"] for f in transforms["frames"]] == [f"view_{i}.png" for i in range(4)] and transforms["w"] == SIZE
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 11 and meta["kind"] == IMAGEDREAM and meta["camera_distance"] == 1.5 and meta["steps"] == 2
    assert result.paths[0]["meta.json"] == str(out / "meta.json") and result.kind == IMAGEDREAM
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(BadInput, match="already holds"):
        run(request)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(image=np.zeros((32, 32, 4), np.float32)), "at least 64 pixels"),
        (dict(image=np.zeros((96, 96, 4), np.float32)), "transparent"),
        (dict(count=0), "Count 0: must be 1–16"),
        (dict(size=100), "Size 100: must be 64–1024, a multiple of 64"),
        (dict(model="MVDREAM"), "text-only MVDream model: it cannot use the image"),
        (dict(image=None, prompt="a toy"), "ImageDream model: it needs an object image"),
        (dict(image_path="/nonexistent/thing.png", image=None), "Image File '/nonexistent/thing.png': no such file"),
    ],
)
def test_bad_input_is_refused_in_one_line_and_writes_nothing(models, tmp_path, change, message):
    rgba = np.zeros((96, 96, 4), np.float32)
    rgba[30:70, 40:60] = [0.9, 0.2, 0.1, 1]
    if change.get("model") == "MVDREAM":
        change = {**change, "model": str(models[MVDREAM]), "prompt": "a toy"}
    request = ViewsRequest(
        **{"out_dir": str(tmp_path / "out"), "model": str(models[IMAGEDREAM]), "image": rgba, "size": SIZE, "steps": 1, **change}
    )
    with pytest.raises(BadInput, match=message):
        run(request)
    assert not (tmp_path / "out").exists()


def test_an_output_folder_inside_a_file_is_refused_before_any_model_work(models, tmp_path):
    (tmp_path / "file").write_text("")
    request = ViewsRequest(out_dir=str(tmp_path / "file" / "out"), model=str(models[MVDREAM]), prompt="a toy", size=SIZE, steps=1)
    with pytest.raises(BadInput, match="cannot be made: .* is a file"):
        run(request)


def test_an_elevation_outside_the_trained_range_runs_with_a_warning(models, tmp_path):
    request = ViewsRequest(out_dir=str(tmp_path / "out"), model=str(models[MVDREAM]), prompt="a toy", size=SIZE, steps=1, elevation=45)
    assert validate(request) == ["Elevation 45: outside the usual 0–30 (the models were trained on 0–30°); running anyway"]
    notes: list[str] = []
    run_job("generate_views", request, lambda p: notes.append(p.message), CancelToken())
    assert "Elevation 45: outside the usual 0–30 (the models were trained on 0–30°); running anyway" in notes
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["elevation"] == 45 and meta["kind"] == MVDREAM


def test_a_cancelled_job_writes_nothing(models, tmp_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(JobCancelled):
        run(ViewsRequest(out_dir=str(tmp_path / "out"), model=str(models[MVDREAM]), prompt="a toy", size=SIZE, steps=2), token)
    assert not (tmp_path / "out").exists()


def test_the_quick_mesh_is_written_as_a_coloured_ply_that_reads_back(models, tmp_path):
    request = ViewsRequest(out_dir=str(tmp_path / "out"), model=str(models[MVDREAM]), prompt="a toy", size=SIZE, steps=1, reconstruct=True)
    result = run(request)
    hull = result.hulls[0]
    data = (tmp_path / "out" / "hull.ply").read_bytes()
    header, body = data.split(b"end_header\n", 1)
    assert f"element vertex {len(hull.vertices)}".encode() in header and f"element face {len(hull.faces)}".encode() in header
    vertex = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1")])
    vertices = np.frombuffer(body[: len(hull.vertices) * vertex.itemsize], vertex)
    np.testing.assert_array_equal(np.stack([vertices["x"], vertices["y"], vertices["z"]], axis=1), hull.vertices)
    faces = np.frombuffer(body[len(hull.vertices) * vertex.itemsize :], np.dtype([("n", "u1"), ("v", "<i4", (3,))]))
    assert (faces["n"] == 3).all() and np.array_equal(faces["v"], hull.faces)


@pytest.mark.parametrize("scheduler", ["DPMPP_2M", "EULER_A", "UNIPC"])
def test_every_sampler_runs_the_multi_view_batch(models, scheduler):
    model = load(models[IMAGEDREAM])
    out = multiview.generate(model, settings(image=object_image(), scheduler=scheduler, steps=3), quiet())
    assert out.views.shape == (1, 4, SIZE, SIZE, 3) and np.isfinite(out.views).all()


def test_a_file_that_is_not_an_image_is_refused(models, tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    request = ViewsRequest(out_dir=str(tmp_path / "out"), model=str(models[IMAGEDREAM]), image_path=str(tmp_path / "notes.png"), size=SIZE)
    with pytest.raises(BadInput, match="Cannot read .*notes.png as an image"):
        run(request)
