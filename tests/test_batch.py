"""batch.py as users run it: a separate process, one JSON line last, one-line errors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from support import batch, build_tiny, models_here, read_usd, run_metadata

from engine.world import spatial_media

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(300)
#: Model subcommands end to end run on the line whose model jobs go through the worker (Blender 5.2 here, and any Blender
#: without torch), the path batch.py adds; the same operators run in-process on both lines in tests/blender.
worker_line = pytest.mark.skipif(models_here(), reason="model subcommands end to end run on the worker line (Blender 5.2)")


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def summary(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_lists_the_subcommands():
    proc = batch("--help")
    assert proc.returncode == 0
    for name in ("capture", "sphere", "demo", "panorama", "stereo-video"):
        assert name in proc.stdout


@pytest.mark.slow
def test_demo_capture_and_sphere_end_to_end(tmp_path):
    demo = summary(batch("demo", "--out", str(tmp_path / "demo"), "--width", "128", "--samples", "1", "--step", "2", "--video-width", "32"))
    assert demo["command"] == "demo"
    for key in ("blend", "preview_center", "preview_offcenter", "preview_center_layered", "preview_offcenter_layered", "stereo_video"):
        assert Path(demo["paths"][key]).stat().st_size > 0
    assert demo["sphere"]["object"] == "Layered World" and demo["sphere"]["layers"] == ["Layered World Layer 1"]
    video = spatial_media.read(demo["paths"]["stereo_video"])
    assert (video.width, video.height, video.frames, video.stereo, video.projection) == (32, 32, 49, "top-bottom", "equirectangular")
    assert sorted(p.name for p in Path(demo["paths"]["capture"]).iterdir()) == ["depth.exr", "depth16.png", "meta.json", "rgb.png"]
    assert demo["sphere"]["vertices"] == 32 * 64 + 2 and set(demo["timings_s"]) >= {"capture", "sphere", "layered_world"}
    assert demo["sphere"]["location"] == pytest.approx([0.0, 0.0, 1.6])  # where the room was captured
    # Seen from its centre, the sphere and the layered world show the panorama they were built from.
    captured = cv2.imread(str(Path(demo["paths"]["capture"]) / "rgb.png")).astype(np.float32)
    for key in ("preview_center", "preview_center_layered"):
        centre = cv2.imread(demo["paths"][key]).astype(np.float32)
        assert np.abs(centre - captured).mean() < 0.1 * np.abs(captured - captured.mean()).mean(), key
    # Every file follows the umask, and no image says when or where it was rendered.
    mask = os.umask(0)
    os.umask(mask)
    out = Path(demo["paths"]["blend"]).parent
    assert {p.name: p.stat().st_mode & 0o777 for p in out.rglob("*") if p.is_file()} == {
        p.name: 0o666 & ~mask for p in out.rglob("*") if p.is_file()
    }
    images = [p for p in out.rglob("*") if p.suffix in (".png", ".exr")]
    assert {p.name: run_metadata(p) for p in images} == {p.name: {} for p in images}

    # The same capture through the other subcommands, from the saved world.blend.
    cap = summary(
        batch(
            "capture",
            "--blend",
            demo["paths"]["blend"],
            "--out",
            str(tmp_path / "cap"),
            "--width",
            "64",
            "--samples",
            "1",
            "--from",
            "0,0,0",
        )
    )
    assert Path(cap["paths"]["depth.exr"]).is_file()
    sph = summary(
        batch(
            "sphere",
            "--rgb",
            cap["paths"]["rgb.png"],
            "--depth",
            cap["paths"]["depth.exr"],
            "--step",
            "1",
            "--save",
            str(tmp_path / "s.blend"),
        )
    )
    assert sph["vertices"] == 32 * 64 + 2 and Path(sph["paths"]["blend"]).is_file()

    again = batch("demo", "--out", str(tmp_path / "demo"), "--width", "128", "--samples", "1")
    assert again.returncode == 1 and "already holds" in again.stderr and "--overwrite" in again.stderr

    # The demo world's rig, moved again and rendered side by side.
    out = tmp_path / "orbit.mp4"
    vid = summary(
        batch(
            "stereo-video",
            "--blend",
            demo["paths"]["blend"],
            "--out",
            str(out),
            "--move",
            "orbit",
            "--seconds",
            "0.25",
            "--layout",
            "side-by-side",
            "--resolution",
            "32",
            "--ipd",
            "0.1",
        )
    )
    meta = spatial_media.read(out)
    assert vid["frames"] == meta.frames == 7 and (meta.width, meta.height, meta.stereo) == (64, 16, "left-right")


def test_sphere_from_a_jpeg_and_an_8_bit_depth_needs_no_depth_mode(tmp_path):
    """The usual export of panorama generators: Auto reads the 8-bit depth as relative disparity."""
    rgb = np.zeros((32, 64, 3), np.uint8)
    rgb[..., 2] = np.linspace(0, 255, 64).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "pano.jpg"), rgb)
    cv2.imwrite(str(tmp_path / "depth8.png"), np.tile(np.linspace(255, 0, 64).astype(np.uint8), (32, 1)))
    done = summary(batch("sphere", "--rgb", str(tmp_path / "pano.jpg"), "--depth", str(tmp_path / "depth8.png"), "--step", "1"))
    assert done["depth_mode"] == "RELATIVE" and done["vertices"] == 32 * 64 + 2 and done["location"] == [0, 0, 0]
    metric = batch("sphere", "--rgb", str(tmp_path / "pano.jpg"), "--depth", str(tmp_path / "depth8.png"), "--mode", "metric")
    assert metric.returncode == 1 and "use depth mode Auto or Relative" in metric.stderr


def test_a_sphere_exports_in_one_go_and_a_saved_world_exports_again_as_usd_and_as_the_splats_of_its_panoramas(tmp_path):
    import pygltflib

    rgb = np.zeros((32, 64, 3), np.uint8)
    rgb[..., 1] = np.linspace(0, 255, 64).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "pano.png"), rgb)
    cv2.imwrite(str(tmp_path / "depth8.png"), np.tile(np.linspace(255, 0, 64).astype(np.uint8), (32, 1)))
    panoramas = ("--rgb", str(tmp_path / "pano.png"), "--depth", str(tmp_path / "depth8.png"))
    world = tmp_path / "world.blend"
    built = summary(
        batch("sphere", *panoramas, "--step", "1", "--save", str(world), "--export", str(tmp_path / "world.glb"), "--target-faces", "600")
    )
    assert built["paths"] == {"blend": str(world), "export": str(tmp_path / "world.glb")} and set(built["timings_s"]) == {
        "sphere",
        "export",
    }
    primitive = pygltflib.GLTF2().load(str(tmp_path / "world.glb")).meshes[0].primitives[0]
    assert pygltflib.GLTF2().load(str(tmp_path / "world.glb")).accessors[primitive.attributes.POSITION].count == 16 * 33 + 2 * 32
    usd = summary(batch("export", "--blend", str(world), "--out", str(tmp_path / "world.usdz")))
    assert usd["format"] == "USDZ" and usd["faces"] == 33 * 64
    assert len(read_usd(tmp_path / "world.usdz")["mesh_points"]) == 1
    splats = summary(batch("export", "--blend", str(world), "--out", str(tmp_path / "world.ply"), "--splat-step", "2"))
    direct = summary(batch("splats", *panoramas, "--out", str(tmp_path / "direct.ply"), "--step", "2"))
    assert splats["splats"] == direct["count"] == 16 * 32
    assert (tmp_path / "world.ply").read_bytes() == (tmp_path / "direct.ply").read_bytes(), "the world's depth read as the sphere read it"
    again = batch("export", "--blend", str(world), "--out", str(tmp_path / "world.usdz"))
    assert (
        again.returncode == 1
        and again.stderr.strip() == f"error: --out '{tmp_path / 'world.usdz'}': already exists (--overwrite replaces it)"
    )


@pytest.mark.parametrize(
    "args, words",
    [
        (("sphere", "--rgb", "missing.png", "--depth", "missing.exr"), "--rgb 'missing.png': no such file"),
        (("capture", "--out", "x", "--blend", "missing.blend"), "--blend 'missing.blend': no such file"),
        (("panorama", "--out", "x", "--model", "/no/such/model"), "not found"),
        (("panorama", "--out", "x", "--model", "Some/repo", "--cache-dir", "empty-cache"), "not in the Hugging Face cache"),
        (("panorama", "--out", "x", "--init-depth", str(ROOT / "docs" / "demo.png")), "img2img needs the RGB image its depth belongs to"),
        (("panorama", "--out", "x", "--engine-python", "/no/such/python"), "--engine-python '/no/such/python': no such file"),
        (("stereo-video", "--out", "x.mp4", "--resolution", "huge"), "--resolution takes"),
        (("stereo-video", "--out", "x.mp4", "--seconds", "0"), "--seconds 0: must be > 0 and ≤ 3600"),
    ],
)
def test_errors_exit_non_zero_with_one_line(tmp_path, args, words):
    proc = batch(*args)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and words in lines[0], proc.stderr[-1000:]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """Model jobs run in this Python when it has torch, else in $DIFFUSION3D_ENGINE_PYTHON's worker (batch.py reads it too)."""
    return build_tiny("tiny_ldm3d:build_tiny_ldm3d", tmp_path_factory.mktemp("models") / "tiny-pano", vae_channels=4)


@pytest.mark.slow
@worker_line
def test_panorama_text_then_img2img_and_a_saved_world(tmp_path, tiny_model):
    common = ("--models-dir", str(tiny_model.parent), "--model", "tiny-pano", "--width", "64", "--steps", "2")
    first = summary(batch("panorama", "--out", str(tmp_path / "a"), "--seed", "3", "--count", "2", *common))
    assert [Path(p["rgb.png"]).parent.name for p in first["paths"]] == ["sample-1", "sample-2"]
    meta = json.loads(Path(first["paths"][1]["meta.json"]).read_text())
    assert meta["seed"] == 4 and (meta["width"], meta["height"]) == (64, 32)

    sample = first["paths"][0]
    second = summary(
        batch(
            "panorama",
            "--out",
            str(tmp_path / "b"),
            "--init-rgb",
            sample["rgb.png"],
            "--init-depth",
            sample["depth16.png"],
            "--strength",
            "0.5",
            "--scheduler",
            "dpmpp-2m",
            "--save",
            str(tmp_path / "world.blend"),
            *common,
        )
    )
    meta = json.loads(Path(second["paths"][0]["meta.json"]).read_text())
    assert meta["img2img"] and meta["strength"] == 0.5 and meta["scheduler"] == "DPMPP_2M"
    assert second["sphere"]["vertices"] > 0 and Path(second["blend"]).is_file()


@pytest.mark.slow
@worker_line
def test_panorama_upscale_and_the_upscale_subcommand(tmp_path, tiny_model):
    build_tiny("tiny_ldm3d:build_tiny_ldm3d_sr", tiny_model.parent / "tiny-sr")
    common = ("--models-dir", str(tiny_model.parent), "--steps", "2")
    chained = summary(
        batch(
            "panorama",
            "--out",
            str(tmp_path / "a"),
            "--model",
            "tiny-pano",
            "--width",
            "64",
            "--upscale",
            "2",
            "--upscaler",
            "tiny-sr",
            *common,
        )
    )
    meta = json.loads(Path(chained["paths"][0]["meta.json"]).read_text())
    assert (meta["width"], meta["height"]) == (128, 64) and (tmp_path / "a" / "base" / "rgb.png").is_file()
    base = tmp_path / "a" / "base"
    up = summary(
        batch(
            "upscale",
            "--rgb",
            str(base / "rgb.png"),
            "--depth",
            str(base / "depth16.png"),
            "--scale",
            "2",
            "--model",
            "tiny-sr",
            "--out",
            str(tmp_path / "b"),
            *common,
        )
    )
    assert up["size"] == [128, 64] and up["windows"] == 1 and Path(up["paths"]["depth16.png"]).is_file()
    proc = batch(
        "upscale",
        "--rgb",
        str(base / "rgb.png"),
        "--depth",
        str(base / "depth16.png"),
        "--scale",
        "1.1",
        "--model",
        "tiny-sr",
        "--out",
        str(tmp_path / "c"),
        *common,
    )
    lines = [line for line in proc.stderr.strip().splitlines() if line]
    assert proc.returncode != 0 and "multiples of 8" in lines[-1] and not (tmp_path / "c").exists()


@pytest.mark.slow
@worker_line
def test_panoramas_make_one_folder_per_prompt_line_that_any_run_remakes_alike(tmp_path, tiny_model):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# three worlds\na cave\na beach\n\na forest\n", encoding="utf-8")
    common = (
        "--prompts",
        str(prompts),
        "--models-dir",
        str(tiny_model.parent),
        "--model",
        "tiny-pano",
        "--width",
        "64",
        "--steps",
        "2",
        "--seed",
        "4",
    )
    whole = summary(batch("panoramas", *common, "--out", str(tmp_path / "all")))
    assert whole["made"] == [1, 2, 3] and sorted(p.name for p in (tmp_path / "all").iterdir()) == [f"prompt-000{i}" for i in (1, 2, 3)]
    meta = json.loads((tmp_path / "all" / "prompt-0002" / "meta.json").read_text())
    assert meta["prompt"] == "a beach" and meta["seed"] == 5
    alone = summary(batch("panoramas", *common, "--lines", "2", "--save-blend", "--out", str(tmp_path / "one")))
    assert alone["made"] == [2] and (tmp_path / "one" / "prompt-0002" / "world.blend").is_file()
    for name in ("rgb.png", "depth16.png", "depth.npy"):
        assert (tmp_path / "one" / "prompt-0002" / name).read_bytes() == (tmp_path / "all" / "prompt-0002" / name).read_bytes()
    again = summary(batch("panoramas", *common, "--out", str(tmp_path / "all")))
    assert again["made"] == [] and again["skipped"] == [1, 2, 3], "prompts already made are skipped"


@pytest.mark.slow
@worker_line
def test_demo_uses_a_real_model_when_given_one(tmp_path, tiny_model):
    demo = summary(
        batch(
            "demo",
            "--out",
            str(tmp_path / "demo"),
            "--model",
            str(tiny_model),
            "--width",
            "64",
            "--steps",
            "2",
            "--step",
            "1",
            "--video-width",
            "32",
        )
    )
    assert demo["source"].startswith("ldm3d:") and "generate" in demo["timings_s"] and "capture" not in demo["timings_s"]
    assert sorted(p.name for p in Path(demo["paths"]["generated"]).iterdir()) == ["depth.npy", "depth16.png", "meta.json", "rgb.png"]
    assert demo["sphere"]["vertices"] == 32 * 64 + 2 and Path(demo["paths"]["preview_center"]).stat().st_size > 0
    # A random model's depth is noise: the layers peel it (the model paints behind them) or refuse it in one line, and
    # then the single sphere stays the demo's world (the refusal itself: tests/blender/test_layered_world.py).
    if "layered_world_skipped" in demo:
        assert demo["layered_world_skipped"].startswith("The foreground would cover") and demo["sphere"]["layers"] == []
        assert "preview_offcenter_layered" not in demo["paths"]
    else:
        assert demo["sphere"]["layers"] and Path(demo["paths"]["preview_offcenter_layered"]).stat().st_size > 0


@pytest.mark.slow
def test_edges_in_shards_merge_to_one_run(tmp_path):
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    mesh = bpy.data.meshes.new("Mug")
    mesh.from_pydata(
        [(x, y, z) for x in (0, 1) for y in (0, 0.6) for z in (0, 1.2)],
        [],
        [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)],
    )
    bpy.context.scene.collection.objects.link(bpy.data.objects.new("Mug", mesh))
    blend = tmp_path / "cad.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    common = ("--blend", str(blend), "--views", "3", "--resolution", "48", "--samples", "2", "--edges", "geometric", "--seed", "5")
    whole = summary(batch("edges", "--out", str(tmp_path / "whole"), *common))
    assert whole["views"] == 3 and whole["annotations"] == 3
    parts = [summary(batch("edges", "--out", str(tmp_path / f"part{i}"), "--shard", f"{i}/2", *common)) for i in (1, 2)]
    assert [p["views"] for p in parts] == [2, 1]
    merged = summary(batch("merge", "--shards", str(tmp_path / "part1"), str(tmp_path / "part2"), "--out", str(tmp_path / "merged")))
    assert merged["views"] == 3
    for name in ("annotations.json", "dataset.json"):
        assert (tmp_path / "merged" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    bad = batch("edges", "--out", str(tmp_path / "x"), "--objects", "Nope", *common)
    assert bad.returncode == 1 and "No object named Nope" in bad.stderr


@pytest.mark.slow
@worker_line
def test_dst_chain_edges_generate_and_filter(tmp_path):
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.mesh.primitive_monkey_add()
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "cad.blend"))
    data = tmp_path / "data"
    summary(
        batch(
            "edges",
            "--blend",
            str(tmp_path / "cad.blend"),
            "--out",
            str(data),
            "--views",
            "4",
            "--resolution",
            "32",
            "--edges",
            "geometric",
        )
    )
    sd, cn = (
        build_tiny("tiny_controlnet:build_tiny_sd", tmp_path / "sd"),
        build_tiny("tiny_controlnet:build_tiny_controlnet", tmp_path / "cn"),
    )
    gen = summary(
        batch(
            "generate-from-edges",
            "--dataset",
            str(data),
            "--base-model",
            str(sd),
            "--controlnet",
            str(cn),
            "--steps",
            "2",
            "--images-per-view",
            "2",
            "--device",
            "cpu",
            "--style",
            "studio photo",
        )
    )
    assert gen["generated_images"] == 8
    annotations = json.loads((data / "annotations.json").read_text())
    assert len(annotations["images"]) == 12 and all("studio photo" in i["prompt"] for i in annotations["images"] if "prompt" in i)
    kcf = summary(
        batch(
            "kcf",
            "--dataset",
            str(data),
            "--fraction",
            "0.25",
            "--folds",
            "2",
            "--epochs",
            "1",
            "--image-size",
            "16",
            "--backbone",
            "small",
            "--device",
            "cpu",
        )
    )
    assert len(kcf["rejected"]) == 2 and (data / "kcf.json").is_file()
    # the same three steps as one subcommand, one --seed for all: the same bytes
    views = ("--views", "4", "--resolution", "32", "--edges", "geometric")
    generation = ("--base-model", str(sd), "--controlnet", str(cn), "--steps", "2", "--images-per-view", "2", "--style", "studio photo")
    filtering = ("--fraction", "0.25", "--folds", "2", "--epochs", "1", "--image-size", "16", "--backbone", "small")
    chained = tmp_path / "chained"
    both = ("--blend", str(tmp_path / "cad.blend"), "--out", str(chained), *views, *generation, *filtering, "--device", "cpu")
    chain = summary(batch("dst", *both))
    assert (
        chain["generated_images"] == 8 and chain["rejected"] == kcf["rejected"] and set(chain["timings_s"]) == {"edges", "generate", "kcf"}
    )
    assert tree(chained) == tree(data)
    part = summary(batch("dst", *both[:3], str(tmp_path / "part"), *both[4:], "--shard", "1/2"))
    assert part["views"] == 2 and part["generated_images"] == 4 and "rejected" not in part, "a shard renders and generates, then stops"
    again = batch("generate-from-edges", "--dataset", str(data), "--base-model", str(sd), "--controlnet", str(cn), "--device", "cpu")
    assert again.returncode == 1 and "already holds" in again.stderr


@pytest.fixture(scope="module")
def tiny_views_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("views-models")
    build_tiny("tiny_multiview:build_tiny_multiview", root / "imagedream", image=True)
    build_tiny("tiny_multiview:build_tiny_multiview", root / "mvdream", image=False)
    return root


@pytest.mark.slow
@worker_line
def test_multiview_from_an_image_and_from_a_blend_object_with_the_quick_mesh(tmp_path, tiny_views_models):
    from engine.imagefiles import write_png

    common = ("--models-dir", str(tiny_views_models), "--size", "64", "--steps", "1")
    rgba = np.zeros((96, 96, 4), np.uint8)
    rgba[20:80, 30:66] = [200, 60, 30, 255]
    write_png(tmp_path / "toy.png", rgba)
    first = summary(
        batch("multiview", "--image", str(tmp_path / "toy.png"), "--model", "imagedream", "--out", str(tmp_path / "a"), *common)
    )
    assert sorted(first["paths"][0]) == sorted([*(f"view_{i}.png" for i in range(4)), "input.png", "transforms.json", "meta.json"])
    transforms = json.loads(Path(first["paths"][0]["transforms.json"]).read_text())
    assert len(transforms["frames"]) == 4 and transforms["w"] == 64

    scene = tmp_path / "scene.blend"
    make = f"import bpy; bpy.ops.mesh.primitive_monkey_add(); bpy.ops.wm.save_as_mainfile(filepath={str(scene)!r})"
    subprocess.run([sys.executable, "-c", make], check=True, capture_output=True, timeout=120)
    second = summary(
        batch(
            "multiview",
            "--blend",
            str(scene),
            "--object",
            "Suzanne",
            "--model",
            "imagedream",
            "--reconstruct",
            "--out",
            str(tmp_path / "b"),
            "--save",
            str(tmp_path / "views.blend"),
            *common,
        )
    )
    assert "hull.ply" in second["paths"][0] and Path(second["blend"]).is_file()
    third = summary(
        batch("multiview", "--prompt", "a toy car", "--model", "mvdream", "--count", "2", "--out", str(tmp_path / "c"), *common)
    )
    assert len(third["paths"]) == 2 and "input.png" not in third["paths"][0]


def test_multiview_of_an_object_in_no_scene_is_refused_in_one_line_and_writes_nothing(tmp_path):
    proc = batch("multiview", "--object", "Suzanne", "--out", str(tmp_path / "x"))
    lines = [line for line in proc.stderr.strip().splitlines() if line]
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-1000:]
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
@worker_line
def test_viewneti_data_train_and_render_end_to_end(tmp_path):
    base = build_tiny("tiny_viewneti:build_tiny_sd2", tmp_path / "models" / "tiny-sd2")
    scene = tmp_path / "scene.blend"
    make = f"import bpy; bpy.ops.mesh.primitive_monkey_add(); bpy.ops.wm.save_as_mainfile(filepath={str(scene)!r})"
    subprocess.run([sys.executable, "-c", make], check=True, capture_output=True, timeout=120)
    data = summary(
        batch(
            "viewneti-data",
            "--blend",
            str(scene),
            "--objects",
            "Suzanne",
            "--views",
            "3",
            "--size",
            "128",
            "64",
            "--samples",
            "1",
            "--out",
            str(tmp_path / "set"),
        )
    )
    assert len(json.loads(Path(data["paths"]["cameras"]).read_text())["images"]) == 3
    common = ("--model", str(base), "--device", "cpu")
    trained = summary(
        batch(
            "viewneti-train",
            "--data",
            str(tmp_path / "set"),
            "--steps",
            "2",
            "--batch",
            "1",
            "--accumulation",
            "1",
            "--size",
            "128",
            "64",
            "--out",
            str(tmp_path / "ckpt"),
            *common,
        )
    )
    assert trained["steps_done"] == 2 and Path(trained["paths"]["checkpoint"], "viewneti.json").is_file()
    rendered = summary(
        batch(
            "viewneti-render",
            "--checkpoint",
            str(tmp_path / "ckpt"),
            "--azimuth",
            "45",
            "--distance",
            "3",
            "--size",
            "128",
            "64",
            "--steps",
            "2",
            "--out",
            str(tmp_path / "view.png"),
            *common,
        )
    )
    assert Path(rendered["paths"]["image"]).is_file() and (tmp_path / "view.json").is_file()
    proc = batch("viewneti-render", "--checkpoint", str(tmp_path / "ckpt"), "--azimuth", "45", "--out", str(tmp_path / "x.png"), *common)
    assert proc.returncode != 0 and "--azimuth 45: an orbit position needs its distance" in proc.stderr
    small = ("--size", "128", "64", "--steps", "1")
    sets = (str(tmp_path / "set"), str(tmp_path / "set"))
    pre = summary(
        batch(
            "viewneti-train",
            "--mode",
            "pretrain",
            "--data",
            *sets,
            "--steps",
            "1",
            "--batch",
            "1",
            "--accumulation",
            "1",
            "--size",
            "128",
            "64",
            "--out",
            str(tmp_path / "pre"),
            *common,
        )
    )
    assert [o["name"] for o in json.loads(Path(pre["paths"]["checkpoint"], "viewneti.json").read_text())["objects"]] == ["set", "set_1"]
    image = str(tmp_path / "set" / "images" / "000.png")
    views = summary(
        batch(
            "viewneti-nvs",
            "--image",
            image,
            "--view-mapper",
            str(tmp_path / "pre"),
            "--orbit",
            "30",
            "15",
            "3",
            "--orbit",
            "90",
            "15",
            "3",
            "--fit-steps",
            "1",
            *small,
            "--out",
            str(tmp_path / "nvs"),
            *common,
        )
    )
    assert len(views["paths"]["views"]) == 2 and Path(views["paths"]["checkpoint"], "viewneti.json").is_file()


def hand_made_checkpoint(folder: Path, data: Path) -> Path:
    """A ViewNeTI checkpoint of zero weights, written without torch (as Blender 5.2's Python has none): 2 steps at 128×64."""
    from engine.imagefiles import recorded_path
    from engine.viewneti import checkpoint
    from engine.viewneti.cameras import CameraRanges

    info = checkpoint.CheckpointInfo(CameraRanges("SPHERICAL", [-1, -1, 0, 1], [1, 1, 30, 3]), 32, width=128, height=64)
    info.objects = [checkpoint.TrainedObject("set", source=recorded_path(data, folder))]  # as training records it
    info.batch, info.accumulation, info.learning_rate, info.augmentation = 3, 3, 1e-3, "AUTO"  # the options' defaults
    info.steps_done, info.losses, info.base_revision = 2, [0.5, 0.4], ""
    shapes = checkpoint.mapper_shapes(info.word_dim)
    files = {
        checkpoint.VIEW_FILE: shapes,
        checkpoint.OBJECT_FILE: {f"0.{k}": v for k, v in shapes.items()},
        checkpoint.STATE_FILE: {"generator": [16]},
    }
    folder.mkdir(parents=True)
    for name, tensors in files.items():
        header: dict = {"__metadata__": {checkpoint.BINDING: json.dumps(checkpoint.binding(info))}}
        offset = 0
        for key, shape in tensors.items():
            size = int(np.prod(shape)) * (1 if key == "generator" else 4)
            header[key] = {"dtype": "U8" if key == "generator" else "F32", "shape": shape, "data_offsets": [offset, offset + size]}
            offset += size
        text = json.dumps(header).encode()
        (folder / name).write_bytes(len(text).to_bytes(8, "little") + text + bytes(offset))
    (folder / checkpoint.INFO).write_text(json.dumps(info.to_json()))
    return folder


def test_a_resume_with_another_size_and_a_mixed_up_checkpoint_are_refused_in_one_line_before_any_work(tmp_path):
    data = tmp_path / "set"
    data.mkdir()
    ckpt = hand_made_checkpoint(tmp_path / "ckpt", data)
    before = tree(ckpt)
    proc = batch("viewneti-train", "--data", str(data), "--resume", "--size", "256", "128", "--steps", "5", "--out", str(ckpt))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-1000:]
    assert lines[0].startswith(f"error: --size 256: the checkpoint in {ckpt} was trained with 128×64, not 256×128"), lines[0]
    info = json.loads((ckpt / "viewneti.json").read_text())
    info["objects"].append({"name": "extra", "target": [0, 0, 0], "source": ""})
    (ckpt / "viewneti.json").write_text(json.dumps(info))
    before = tree(ckpt)
    proc = batch("viewneti-render", "--checkpoint", str(ckpt), "--azimuth", "30", "--distance", "2", "--out", str(tmp_path / "v.png"))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-1000:]
    assert "--checkpoint" in lines[0] and 'viewneti.json says objects ["set", "extra"]; view_mapper.safetensors was written for' in lines[0]
    assert tree(ckpt) == before and not (tmp_path / "v.png").exists()


def test_a_shard_carries_the_request_and_builds_what_the_same_command_with_its_shard_builds(tmp_path):
    """On Ray a shard's task gets the job's request as JSON plus its own --shard and --out: the same request as on one machine."""
    sys.path.insert(0, str(ROOT))
    import batch as module

    def requests(*argv: str) -> list:
        args = module.build_parser().parse_args(list(argv))
        return module.requests_of(args.spec, args.options, args)

    blend = tmp_path / "a.blend"
    blend.write_bytes(b"")
    common = ("--views", "3", "--seed", "4", "--resolution", "48", "--blend", str(blend))
    driver = requests("edges", *common, "--out", str(tmp_path / "ds"), "--overwrite", "--ray", "auto", "--shards", "2")
    jobs = module.sharding.edges([r for r in driver if not isinstance(r, module.driver.ClusterOptions)], ["python", "batch.py"], 2)
    task = jobs[0].command(2, 2)
    assert task[:5] == ["python", "batch.py", "edges", "--request", task[4]] and task[5:] == ["--shard", "2/2", "--out", "{out}"]
    shard = requests(*task[2:-1], str(tmp_path / "shard"))[0]
    single = requests("edges", *common, "--shard", "2/2", "--out", str(tmp_path / "shard"))[0]
    assert shard == single and (shard.views_per_object, shard.seed, shard.shard) == (3, 4, "2/2")
    assert json.loads(task[4]) == jobs[0].parameters, "the manifest records the request every shard runs"
    assert jobs[0].parameters["DSTAnnotateRequest"]["dataset_dir"] == "" and not jobs[0].parameters["DSTAnnotateRequest"]["overwrite"]


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    (tmp_path / "file").write_text("a file where a folder should be")
    for name in ("r.png", "d.png", "p.txt"):
        (tmp_path / name).write_text("a prompt")
    given = {name: str(tmp_path / name) for name in ("r.png", "d.png", "p.txt")}
    for args in (
        ("upscale", "--rgb", given["r.png"], "--depth", given["d.png"]),
        ("panorama",),
        ("panoramas", "--prompts", given["p.txt"]),
    ):
        proc = batch(*args, "--out", str(tmp_path / "file" / "out"))
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 1 and len(lines) == 1 and "--out" in lines[0] and "cannot be made" in lines[0], proc.stderr
    proc = batch("multiview", "--prompt", "a toy", "--out", str(tmp_path / "v"), "--save", str(tmp_path / "file" / "x.blend"))
    assert proc.returncode == 1 and "--save" in proc.stderr and "cannot be made" in proc.stderr and not (tmp_path / "v").exists()


def failures(tmp_path: Path, model: Path) -> dict[str, tuple[list[str], str]]:
    """What users ran into, each with the words its one line must hold: damaged files, contradicting names."""
    (tmp_path / "random.blend").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    (tmp_path / "notes.blend").write_text("not a .blend at all\n")
    (tmp_path / "cut.blend").write_bytes(b"BLENDER-v405REND" + bytes(100))  # a .blend's header, its blocks cut off
    (tmp_path / "text.png").write_text("not a PNG at all\n")
    (tmp_path / "depth.exr").write_bytes(b"v/1\x01" + bytes(60))  # an EXR's magic number, nothing after it
    cut_model = Path(shutil.copytree(model, tmp_path / "cut-model"))
    weights = cut_model / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100_000])
    out = str(tmp_path / "out")
    return {
        "a corrupt .blend": (["capture", "--blend", str(tmp_path / "random.blend"), "--out", out], "File format is not supported"),
        "a text file as .blend": (["edges", "--blend", str(tmp_path / "notes.blend"), "--out", out], "File format is not supported"),
        "a text file as a layered world's panorama": (
            ["sphere", "--rgb", str(tmp_path / "text.png"), "--depth", str(tmp_path / "depth.exr"), "--layers", "2"],
            "RGB panorama: Could not read image",
        ),
        "a .blend cut short": (["viewneti-data", "--blend", str(tmp_path / "cut.blend"), "--out", out], "cut.blend"),
        "a VR180 name tagged top-bottom for a side-by-side video": (
            ["stereo-video", "--projection", "vr180", "--out", str(tmp_path / "out" / "w_180_tb.mp4")],
            "w_180_tb.mp4 is tagged tb, but this is a 180° left-right video",
        ),
        "a model's weights cut short": (
            ["panorama", "--model", str(cut_model), "--out", out],
            f"--model '{cut_model}': {weights} is cut short (100,000 of",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "a corrupt .blend",
        "a text file as .blend",
        "a text file as a layered world's panorama",
        "a .blend cut short",
        "a VR180 name tagged top-bottom for a side-by-side video",
        "a model's weights cut short",
    ],
)
def test_what_users_ran_into_ends_in_one_line_exit_1_and_nothing_written_and_debug_shows_the_traceback(tmp_path, tiny_model, case):
    args, words = failures(tmp_path, tiny_model)[case]
    proc = batch(*args)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()
    debug = batch(*args, "--debug")
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr, debug.stderr[-2000:]
    assert debug.stderr.strip().splitlines()[-1] == lines[0] and not (tmp_path / "out").exists()


def test_any_exception_at_all_is_one_line_and_its_traceback_only_with_debug_while_interrupts_pass(capsys, monkeypatch):
    sys.path.insert(0, str(ROOT))
    import batch as module

    def bug(argv: list[str]) -> dict:
        raise KeyError("x")

    monkeypatch.setattr(module, "execute", bug)
    assert module.main(["batch.py", "capture", "--out", "x"]) == 1
    assert capsys.readouterr().err == "error: KeyError: 'x' (a bug: --debug shows where)\n"
    assert module.main(["batch.py", "capture", "--out", "x", "--debug"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("Traceback (most recent call last)")
        and "in bug" in err
        and err.endswith("error: KeyError: 'x' (a bug: --debug shows where)\n")
    )

    def interrupted(argv: list[str]) -> dict:
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "execute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        module.main(["batch.py", "capture", "--out", "x"])


def test_a_refusal_names_the_options_it_mentions_as_typed(tmp_path):
    (tmp_path / "cap").mkdir()
    (tmp_path / "cap" / "rgb.png").write_bytes(b"mine")
    proc = batch("capture", "--out", str(tmp_path / "cap"))
    assert proc.returncode == 1 and proc.stderr == f"error: --out '{tmp_path / 'cap'}': already holds rgb.png (--overwrite replaces them)\n"
    proc = batch("kcf", "--data", str(tmp_path), "--out", str(tmp_path / "scores"))
    assert proc.returncode == 1 and proc.stderr.endswith("only a shard writes its scores elsewhere (give --shard I/N)\n"), proc.stderr


def test_a_blend_that_cannot_be_read_is_refused_naming_blend(tmp_path, capsys, monkeypatch):
    sys.path.insert(0, str(ROOT))
    import batch as module

    blend = tmp_path / "private.blend"
    blend.write_bytes(b"BLENDER")
    blend.chmod(0)
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != blend and real(path, mode))  # root reads everything
    assert module.main(["batch.py", "capture", "--blend", str(blend), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == f"error: --blend '{blend}': cannot be read (no permission)\n"
    assert not (tmp_path / "out").exists()


def test_edges_render_the_named_objects_of_a_collection_excluded_from_the_view_layer(tmp_path):
    """As in the demo's world.blend, whose room is excluded once the world sphere replaces it."""
    scene = tmp_path / "world.blend"
    make = (
        "import bpy\n"
        "room = bpy.data.collections.new('Room'); bpy.context.scene.collection.children.link(room)\n"
        "for name, x in (('Sofa Base', 0.0), ('Table Top', 2.0)):\n"
        "    bpy.ops.mesh.primitive_cube_add(location=(x, 0, 0)); obj = bpy.context.object; obj.name = name\n"
        "    obj.users_collection[0].objects.unlink(obj); room.objects.link(obj)\n"
        "    obj.vertex_groups.new(name='kp_corner').add([0], 1.0, 'REPLACE')\n"
        "bpy.context.view_layer.layer_collection.children['Room'].exclude = True\n"
        f"bpy.ops.wm.save_as_mainfile(filepath={str(scene)!r})\n"
    )
    subprocess.run([sys.executable, "-c", make], check=True, capture_output=True, timeout=120)
    before = scene.read_bytes()
    args = ("--objects", "Sofa Base,Table Top", "--views", "1", "--resolution", "32", "--samples", "1", "--out", str(tmp_path / "ds"))
    done = summary(batch("edges", "--blend", str(scene), *args))
    assert done["views"] == done["annotations"] == 2 and scene.read_bytes() == before
