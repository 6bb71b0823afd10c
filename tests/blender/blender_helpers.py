"""Helpers shared by the Blender tests."""

from pathlib import Path

import bpy
import numpy as np

from engine.imagefiles import write_png

DATA = ("objects", "meshes", "images", "materials", "cameras", "lights", "scenes", "collections", "actions")


def snapshot() -> dict[str, set[str]]:
    """Names of every datablock an operator could leave behind."""
    return {kind: {block.name for block in getattr(bpy.data, kind)} for kind in DATA}


def add_box(name: str, lo: tuple[float, float, float], hi: tuple[float, float, float]) -> bpy.types.Object:
    (x0, y0, z0), (x1, y1, z1) = lo, hi
    verts = [(x, y, z) for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, [], faces)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def emissive_box(name: str, centre: tuple[float, float, float], half: float, colour: tuple[float, float, float]) -> bpy.types.Object:
    """A cube that shows ``colour`` whatever the lights (an emission material)."""
    (x, y, z) = centre
    obj = add_box(name, (x - half, y - half, z - half), (x + half, y + half, z + half))
    material = bpy.data.materials.new(name)
    if material.node_tree is None:  # 4.5 makes it on use_nodes; 5.x always has one
        material.use_nodes = True
    nodes = material.node_tree.nodes
    nodes.clear()
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = (*colour, 1.0)
    output = nodes.new("ShaderNodeOutputMaterial")
    material.node_tree.links.new(emission.outputs[0], output.inputs[0])
    obj.data.materials.append(material)
    return obj


def decode(path: Path) -> list[np.ndarray]:
    """Every frame of a video (BGR), through OpenCV."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def capture_room() -> None:
    """A room with a pillar, the 3D cursor inside it: something to capture from the cursor."""
    add_box("Room", (-3.0, -3.0, 0.0), (3.0, 3.0, 3.0))
    add_box("Pillar", (1.0, 1.0, 0.0), (1.5, 1.5, 3.0))
    bpy.context.scene.cursor.location = (0.0, 0.0, 1.5)


def build_sphere(folder: Path, distance: float = 4.0) -> bpy.types.Object:
    """A small world sphere from a constant-distance depth with one nearer block (a depth edge)."""
    folder.mkdir(parents=True, exist_ok=True)
    depth = np.full((32, 64), distance, np.float32)
    depth[12:20, 28:36] = distance / 2
    rgb = np.zeros((32, 64, 3), np.uint8)
    rgb[..., 1] = np.linspace(0, 255, 64).astype(np.uint8)
    write_png(folder / "rgb.png", rgb)
    np.save(folder / "depth.npy", depth)
    assert bpy.ops.diffusion3d.build_world_sphere(rgb_path=str(folder / "rgb.png"), depth_path=str(folder / "depth.npy"), grid_step=1) == {
        "FINISHED"
    }
    return bpy.context.view_layer.objects.active


def render_settings() -> tuple:
    """The scene render settings a video render changes (and must restore)."""
    scene = bpy.context.scene
    r, c = scene.render, scene.cycles
    return (
        scene.camera,
        r.engine,
        r.resolution_x,
        r.resolution_y,
        r.use_multiview,
        r.filepath,
        r.image_settings.file_format,
        r.image_settings.views_format,
        c.samples,
        c.max_bounces,
        c.use_denoising,
        scene.view_settings.view_transform,
        scene.frame_current,
    )


def animated_rig(tmp_path: Path, seconds: float = 0.25, **rig: object) -> bpy.types.Scene:
    """A small world sphere with a stereo rig swaying in it (6 frames at 24 fps)."""
    build_sphere(tmp_path / "sphere")
    bpy.ops.diffusion3d.add_stereo_rig(**rig)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 24, 1.0
    bpy.ops.diffusion3d.animate_rig(move="SWAY", seconds=seconds)
    return scene


def cad_scene() -> tuple[bpy.types.Object, bpy.types.Object]:
    """Two selected CAD-like boxes: a chair with a class, tags and a keypoint group, and a rotated car."""
    chair = add_box("Chair", (-0.4, -0.3, 0.0), (0.4, 0.3, 1.2))
    chair["diffusion3d_class"], chair["diffusion3d_tags"] = "chair", "wooden, tall"
    chair.vertex_groups.new(name="kp_top").add([1, 3, 5, 7], 1.0, "REPLACE")
    car = add_box("Car", (0.0, 0.0, 0.0), (4.0, 2.0, 1.5))
    car.rotation_euler = (0.0, 0.0, 0.4)
    for obj in (chair, car):
        obj.select_set(True)
    return chair, car


def set_image_format(settings: bpy.types.ImageFormatSettings, file_format: str) -> None:
    """The add-on's own way (its compat module), for a test that saves renders itself."""
    import batch

    batch.load_addon().operators.machinery.compat.set_image_format(settings, file_format)
