"""generate_views in Blender: tiny random-weight ImageDream/MVDream models, real renders, the cameras checked against Blender's own projection.

Random weights give noise views, so these tests check where things go: the
front render, the four cameras around the object (each looking at it, view 1
from the front), their background images, the quick mesh, and that bad input
or a failure changes nothing. The quick mesh's geometry is proven on renders
Blender makes from the four cameras (a sphere and a cube): the engine's hull
of Blender's silhouettes matches the exact visual hull.
"""

import json

import bpy
import numpy as np
import pytest
from blender_helpers import add_box, render_settings, set_image_format, snapshot
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Matrix, Vector
from support import build_tiny, engine_python, models_here

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow, pytest.mark.warm_engine]  # one engine worker for the module
SIZE = 64


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    build_tiny("tiny_multiview:build_tiny_multiview", root / "imagedream", image=True)
    build_tiny("tiny_multiview:build_tiny_multiview", root / "mvdream", image=False)
    return root


@pytest.fixture
def model_prefs(prefs, models):
    prefs.models_dir, prefs.hf_cache_dir, prefs.device = str(models), str(models / "no-cache"), "CPU"
    if not models_here():
        prefs.engine_mode, prefs.python_path = "SUBPROCESS", engine_python()
    return prefs


def views(tmp_path, **kw):
    options = dict(model="imagedream", size=SIZE, steps=1, output_dir=str(tmp_path / "out"))
    return bpy.ops.diffusion3d.generate_views(**{**options, **kw})


def object_png(path):
    from diffusion3d.engine.imagefiles import write_png

    rgba = np.zeros((96, 96, 4), np.uint8)
    rgba[20:80, 30:66] = [200, 60, 30, 255]
    write_png(path, rgba)
    return path


def view_cameras():
    cams = sorted((o for o in bpy.data.objects if "diffusion3d_view" in o), key=lambda o: o["diffusion3d_view"])
    assert [c["diffusion3d_view"] for c in cams] == [0, 1, 2, 3]
    return cams


def lands_in_the_centre(camera, point):
    projected = world_to_camera_view(bpy.context.scene, camera, Vector(point))
    return abs(projected.x - 0.5) < 1e-4 and abs(projected.y - 0.5) < 1e-4 and projected.z > 0


def test_an_image_file_gives_four_views_with_cameras_around_the_cursor_each_showing_its_view(model_prefs, tmp_path):
    bpy.context.scene.cursor.location = (1.0, -2.0, 0.5)
    assert views(tmp_path, source="FILE", image_path=str(object_png(tmp_path / "toy.png")), seed=3) == {"FINISHED"}
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*(f"view_{i}.png" for i in range(4)), "input.png", "transforms.json", "meta.json"]
    )
    cams = view_cameras()
    for i, cam in enumerate(cams):
        assert lands_in_the_centre(cam, (1.0, -2.0, 0.5)), f"camera {i} looks at the object"
        background = cam.data.background_images[0]
        assert cam.data.show_background_images and background.image.filepath.endswith(f"view_{i}.png")
        assert (cam.matrix_world.translation - Vector((1.0, -2.0, 0.5))).length == pytest.approx(1.5, abs=1e-5)
    front = cams[1].matrix_world.translation - Vector((1.0, -2.0, 0.5))
    assert front.normalized().dot(Vector((0, -1, 0))) == pytest.approx(1.0, abs=1e-6), "view 1 (the input's) is at the front"
    assert cams[0].users_collection[0].name == "Views out" and "Views out" in bpy.context.scene.collection.children
    assert json.loads((out / "meta.json").read_text())["seed"] == 3


def test_a_selected_object_is_rendered_from_the_front_and_its_views_are_placed_around_it_at_its_size(model_prefs, tmp_path):
    box = add_box("Toy", (2.0, 0.0, 0.0), (2.6, 0.5, 1.2))
    box.select_set(True)
    before, settings = snapshot(), render_settings()
    scenes = {s.name for s in bpy.data.scenes}
    assert views(tmp_path, source="OBJECT", reconstruct=True) == {"FINISHED"}
    assert {s.name for s in bpy.data.scenes} == scenes and render_settings() == settings, "the front render's scene is gone"
    assert set(box.users_scene) == {bpy.context.scene}
    centre = Vector((2.3, 0.25, 0.6))
    cams = view_cameras()
    for cam in cams:
        assert lands_in_the_centre(cam, centre)
    half = 0.6  # the front view sees X (0.6 wide) and Z (1.2 tall)
    assert (cams[1].matrix_world.translation - centre).length == pytest.approx(half / (0.8 * np.tan(np.radians(49.1) / 2)), rel=1e-5)
    from diffusion3d.engine.imagefiles import read_png

    prepared = read_png(tmp_path / "out" / "input.png")
    assert prepared.shape == (SIZE, SIZE, 3) and (prepared < 250).any(axis=2).mean() > 0.1, "the object is in the prepared input"
    hull = next(o for o in bpy.data.objects if o.name.endswith("hull"))
    assert len(hull.data.vertices) > 0 and hull.data.color_attributes["Colour"].domain == "POINT"
    corners = np.array([hull.matrix_world @ Vector(c) for c in hull.bound_box])
    assert np.allclose((corners.min(0) + corners.max(0)) / 2, centre, atol=0.5), "the hull sits on the object"
    added = {k: snapshot()[k] - before[k] for k in before}
    assert added["objects"] == {"View 0", "View 1", "View 2", "View 3", hull.name} and added["scenes"] == set()


def test_text_alone_makes_views_with_mvdream(model_prefs, tmp_path):
    assert views(tmp_path, source="TEXT", model="mvdream", prompt="a toy car", count=2) == {"FINISHED"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["sample-1", "sample-2"]
    assert "input.png" not in {p.name for p in (tmp_path / "out" / "sample-1").iterdir()}
    assert len(view_cameras()) == 4


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(source="OBJECT"), "Select the object"),
        (dict(source="OBJECT", object_name="Empty"), "nothing to render"),
        (dict(source="FILE", image_path=""), "Image File '': choose an image file of the object"),
        (dict(source="FILE", image_path="/no/such/image.png"), "Image File '/no/such/image.png': no such file"),
        (dict(source="IMAGE", image_name="missing"), "No image named"),
        (dict(source="TEXT", model="imagedream", prompt="a toy"), "needs an object image"),
        (dict(source="FILE", image_path="TOY", model="mvdream", prompt="a toy"), "text-only MVDream model"),
        (dict(source="FILE", image_path="TOY", size=100), "multiple of 64"),
    ],
)
def test_bad_input_is_refused_in_one_line_and_changes_nothing(model_prefs, tmp_path, options, message):
    bpy.data.objects.new("Empty", None)
    if options.get("image_path") == "TOY":
        options = {**options, "image_path": str(object_png(tmp_path / "toy.png"))}
    before, settings = snapshot(), render_settings()
    with pytest.raises(RuntimeError, match=message):
        views(tmp_path, **options)
    assert snapshot() == before and render_settings() == settings
    assert not (tmp_path / "out").exists()


def render_silhouettes(obj, poses, size, folder):
    """RGBA renders of ``obj`` from each camera-to-world pose, in a scene of their own, as the engine's views (top row first)."""
    from diffusion3d.engine.imagefiles import read_image

    scene = bpy.data.scenes.new("silhouettes")
    data = bpy.data.cameras.new("cam")
    data.sensor_fit, data.angle = "VERTICAL", np.radians(49.1)
    cam = bpy.data.objects.new("cam", data)
    scene.collection.objects.link(cam)
    scene.collection.objects.link(obj)
    scene.camera = cam
    scene.render.engine = "CYCLES"
    scene.cycles.samples, scene.cycles.use_denoising = 4, False
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.film_transparent = True
    set_image_format(scene.render.image_settings, "PNG")
    scene.render.image_settings.color_mode = "RGBA"
    out = []
    for i, pose in enumerate(poses):
        cam.matrix_world = Matrix(pose.tolist())
        path = str(folder / f"silhouette-{i}.png")
        bpy.ops.render.render(scene=scene.name)
        next(image for image in bpy.data.images if image.type == "RENDER_RESULT").save_render(path, scene=scene)
        out.append(read_image(path).pixels)
    bpy.data.scenes.remove(scene)
    return np.stack(out)


@pytest.mark.parametrize("shape", ["sphere", "cube"])
@pytest.mark.parametrize("elevation", [0.0, 20.0])
def test_the_quick_mesh_of_blender_renders_from_the_four_cameras_contains_the_object_and_matches_the_exact_hull(tmp_path, shape, elevation):
    pytest.importorskip("skimage")
    from test_multiview_hull import HALF, OBJECTS, RADIUS, SIZE, grid, in_exact_hull, in_mesh

    from diffusion3d.engine.multiview import cameras
    from diffusion3d.engine.multiview.hull import silhouettes, visual_hull

    if shape == "sphere":
        bpy.ops.mesh.primitive_uv_sphere_add(segments=128, ring_count=64, radius=RADIUS)
    else:
        bpy.ops.mesh.primitive_cube_add(size=2 * HALF)
    poses = cameras.scene_cameras(cameras.scene_placement((0.0, 0.0, 0.0)), elevation)  # where the operator puts them
    focal = cameras.focal_length(SIZE)
    intrinsics = dict(fl_x=focal, fl_y=focal, cx=SIZE / 2, cy=SIZE / 2)
    rendered = render_silhouettes(bpy.context.active_object, poses, SIZE, tmp_path)
    masks = silhouettes(rendered)
    exact_masks, solid = OBJECTS[shape]
    exact = exact_masks(poses, intrinsics)
    assert (masks == exact).mean() > 0.99, "Blender's cameras see what the engine's camera model says they see"
    mesh = visual_hull(rendered, masks, poses, **intrinsics, resolution=64)
    axis, points = grid()
    inside_hull = in_exact_hull(points, exact, poses, intrinsics)
    inside_mesh = in_mesh(mesh.vertices, mesh.faces, axis)
    iou = (inside_hull & inside_mesh).sum() / (inside_hull | inside_mesh).sum()
    assert iou >= 0.9, f"IoU {iou:.3f}"
    missed = ~inside_mesh[solid(points, mesh.voxel_size)]
    assert not missed.any(), f"the mesh contains the object ({missed.sum()} of {missed.size} points outside)"


def test_a_loaded_image_and_a_collection_are_sources_too(model_prefs, tmp_path):
    image = bpy.data.images.load(str(object_png(tmp_path / "toy.png")))
    assert views(tmp_path, source="IMAGE", image_name=image.name, output_dir=str(tmp_path / "a")) == {"FINISHED"}
    assert (tmp_path / "a" / "input.png").is_file()
    shelf = bpy.data.collections.new("Shelf")
    bpy.context.scene.collection.children.link(shelf)
    for name, x in (("Cup", 0.0), ("Pot", 1.0)):
        box = add_box(name, (x, 0.0, 0.0), (x + 0.4, 0.4, 0.5))
        for collection in list(box.users_collection):
            collection.objects.unlink(box)
        shelf.objects.link(box)
    assert views(tmp_path, source="OBJECT", object_name="Shelf", output_dir=str(tmp_path / "b")) == {"FINISHED"}
    cams = [o for o in bpy.data.objects if o.get("diffusion3d_view") == 1]
    assert any(lands_in_the_centre(c, (0.7, 0.2, 0.25)) for c in cams), "the collection's views centre on all its objects"
