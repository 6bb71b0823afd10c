"""Conveniences around the operators: a panorama dropped onto the 3D viewport, Blender's own menus, the rig's safe radius shown."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bpy
import numpy as np
import pytest
from blender_helpers import animated_rig, snapshot

from engine import errors
from engine.imagefiles import write_exr, write_png

pytestmark = pytest.mark.timeout(120)

H, W = 16, 32


def write_panorama(folder: Path, rgb_name: str = "rgb.png", depth_name: str | None = "depth.exr") -> Path:
    """A tiny RGB panorama, and its float depth (3 m, a nearer band) when named."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = np.linspace(0, 255, W).astype(np.uint8)
    write_png(folder / rgb_name, rgb)
    if depth_name is not None:
        depth = np.full((H, W), 3.0, np.float32)
        depth[6:10] = 2.0
        write_exr(folder / depth_name, {"Y": depth})
    return folder


def world_spheres() -> list[bpy.types.Object]:
    return [o for o in bpy.context.scene.objects if o.get("diffusion3d_world") is not None]


def files(*names: str) -> list[dict[str, str]]:
    return [{"name": name} for name in names]


# --- dropping a panorama ---------------------------------------------------------------------------------------------


def test_dropping_an_rgb_and_its_depth_builds_one_world_sphere(tmp_path):
    folder = write_panorama(tmp_path, "room.png", "room.exr")  # neither name says depth: the EXR is the depth
    done = bpy.ops.diffusion3d.drop_panorama("INVOKE_DEFAULT", directory=str(folder), files=files("room.exr", "room.png"))
    assert done == {"FINISHED"}
    [sphere] = world_spheres()
    assert sphere["diffusion3d_world"]["rgb"] == str(folder / "room.png")
    assert sphere["diffusion3d_world"]["depth"] == str(folder / "room.exr")
    assert sphere["diffusion3d_world"]["max_distance"] == pytest.approx(3.0)


def test_dropping_one_rgb_finds_its_depth_beside_it(tmp_path):
    folder = write_panorama(tmp_path)  # a capture's names: rgb.png and depth.exr
    assert bpy.ops.diffusion3d.drop_panorama(filepath=str(folder / "rgb.png")) == {"FINISHED"}
    [sphere] = world_spheres()
    assert sphere["diffusion3d_world"]["depth"] == str(folder / "depth.exr")


def test_dropping_one_rgb_without_a_depth_is_refused_in_one_line_and_adds_nothing(tmp_path):
    folder = write_panorama(tmp_path, "view.png", None)
    before = snapshot()
    with pytest.raises(RuntimeError) as refused:
        bpy.ops.diffusion3d.drop_panorama(directory=str(folder), files=files("view.png"))
    assert errors.last_line(refused.value) == (
        "No depth beside view.png (such as view_depth.exr): drop the RGB panorama and its depth together"
    )
    assert snapshot() == before and world_spheres() == []


def test_a_dropped_pair_the_world_sphere_refuses_is_refused_with_its_line(tmp_path):
    folder = write_panorama(tmp_path, depth_name=None)
    (folder / "depth.exr").write_bytes(b"not an image")
    before = snapshot()
    with pytest.raises(RuntimeError) as refused:
        bpy.ops.diffusion3d.drop_panorama(directory=str(folder), files=files("rgb.png", "depth.exr"))
    assert "depth.exr" in errors.last_line(refused.value) and len(str(refused.value).strip().splitlines()) == 1
    assert snapshot() == before


def test_the_file_handler_takes_drops_onto_the_3d_viewport_only():
    handler = bpy.types.DIFFUSION3D_FH_panorama
    assert issubclass(handler, bpy.types.FileHandler)
    assert handler.bl_import_operator == "diffusion3d.drop_panorama"
    assert {".png", ".exr", ".hdr"} <= set(handler.bl_file_extensions.split(";"))
    assert handler.poll_drop(SimpleNamespace(area=SimpleNamespace(type="VIEW_3D")))
    assert not handler.poll_drop(SimpleNamespace(area=SimpleNamespace(type="OUTLINER")))
    assert not handler.poll_drop(SimpleNamespace(area=None))


# --- menu entries ----------------------------------------------------------------------------------------------------


class Recorder:
    """A layout that records the operators it is asked to show, with their icons."""

    def __init__(self) -> None:
        self.buttons: list[tuple[str, str]] = []

    def operator(self, idname: str, **options: Any) -> None:
        self.buttons.append((idname, options.get("icon", "NONE")))

    def separator(self, **_: Any) -> None:
        pass


@pytest.mark.parametrize(
    "menu, idname", [("VIEW3D_MT_camera_add", "diffusion3d.add_stereo_rig"), ("TOPBAR_MT_render", "diffusion3d.render_stereo_video")]
)
def test_blender_menus_offer_the_rig_and_the_video(addon, menu, idname):
    ours = [draw for draw in getattr(bpy.types, menu)._dyn_ui_initialize() if draw.__module__.endswith(".operators.menus")]
    assert len(ours) == 1
    layout = Recorder()
    ours[0](SimpleNamespace(layout=layout), bpy.context)
    icons = bpy.types.UILayout.bl_rna.functions["operator"].parameters["icon"].enum_items.keys()
    assert [button for button, _ in layout.buttons] == [idname]
    assert all(icon in icons for _, icon in layout.buttons)
    getattr(bpy.ops.diffusion3d, idname.split(".")[1]).get_rna_type()  # a registered operator


# --- the safe radius shown --------------------------------------------------------------------------------------------


def evaluated_size(obj: bpy.types.Object) -> float:
    bpy.context.view_layer.update()
    return float(obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).empty_display_size)


def test_the_rig_shows_its_safe_radius_as_a_sphere_that_follows_the_stored_value():
    assert bpy.ops.diffusion3d.add_stereo_rig(place="CURSOR", safe_radius=0.8) == {"FINISHED"}
    rig = bpy.context.view_layer.objects.active
    [sphere] = [c for c in rig.children if c.type == "EMPTY"]
    assert sphere.empty_display_type == "SPHERE" and sphere.hide_render and sphere.hide_select
    assert [c.type for c in rig.children if c.type == "CAMERA"] == ["CAMERA"]  # the rig's camera is still the one camera
    assert evaluated_size(sphere) == pytest.approx(0.8)
    rig["diffusion3d_rig"]["safe_radius"] = 1.7
    rig.update_tag()  # what editing the property in Blender's interface does
    assert evaluated_size(sphere) == pytest.approx(1.7)
    assert sphere.empty_display_size == pytest.approx(1.7)  # written back to the object itself, as the viewport shows it


def test_an_exported_world_leaves_the_safe_radius_sphere_out(tmp_path):
    import pygltflib

    animated_rig(tmp_path)
    sphere = world_spheres()[0]
    out = tmp_path / "world.gltf"
    assert bpy.ops.diffusion3d.export_world(filepath=str(out), object_name=sphere.name) == {"FINISHED"}
    names = [node.name for node in pygltflib.GLTF2().load(str(out)).nodes]
    assert "Stereo Rig" in names and "Stereo Rig Camera" in names and not [n for n in names if "Safe Radius" in n]
