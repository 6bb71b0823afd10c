"""The sidebar panels, drawn into a recording layout (the bpy module has no window to draw them in).

Every property a panel shows must exist on what it is drawn from, and every
button must name a registered operator whose options the panel can set.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import bpy
import pytest


class OperatorButton:
    """What ``layout.operator`` returns: accepts only the operator's own properties."""

    def __init__(self, idname: str) -> None:
        category, name = idname.split(".")
        self._props = getattr(getattr(bpy.ops, category), name).get_rna_type().properties.keys()
        self.__dict__["idname"] = idname

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            assert name in self._props, f"{self.idname} has no property {name!r}"
        object.__setattr__(self, name, value)


class RecordingLayout:
    def __init__(self, log: list[tuple[str, str]]) -> None:
        self.log = log

    def _child(self, *_: Any, **__: Any) -> RecordingLayout:
        return RecordingLayout(self.log)

    row = column = box = split = _child

    def prop(self, data: Any, name: str, **_: Any) -> None:
        if name.startswith('["'):
            assert name[2:-2] in data.keys(), f"{data.name} has no custom property {name}"
        else:
            assert name in data.bl_rna.properties.keys(), f"{type(data).__name__} has no property {name!r}"
        self.log.append(("prop", name))

    def prop_search(self, data: Any, name: str, search_data: Any, search_name: str, **_: Any) -> None:
        self.prop(data, name)
        assert hasattr(search_data, search_name)

    def operator(self, idname: str, **_: Any) -> OperatorButton:
        self.log.append(("operator", idname))
        return OperatorButton(idname)

    def label(self, **_: Any) -> None:
        self.log.append(("label", _.get("text", "")))

    def progress(self, **_: Any) -> None:
        self.log.append(("progress", _.get("text", "")))


def draw(panel_cls: type, context: Any) -> list[tuple[str, str]]:
    log: list[tuple[str, str]] = []
    panel_cls.draw(SimpleNamespace(layout=RecordingLayout(log)), context)  # a panel's draw reads only self.layout
    return log


@pytest.mark.parametrize("variant", ["defaults", "flat rig, custom size, PNG", "relative depth, generate from files"])
def test_every_sidebar_panel_draws(addon, variant):
    settings = bpy.context.scene.diffusion3d
    if variant != "defaults":
        st = settings.stereo
        st.mode, st.resolution, st.file_format, st.move = "FLAT", "CUSTOM", "PNG", "LOOK"
        settings.depth_mode, settings.relative_mapping = "RELATIVE", "INVERSE"
        settings.generate.init = "FILES"
        settings.origin = "LOCATION"
        settings.views.source = "OBJECT" if variant.startswith("flat") else "IMAGE"
        settings.viewneti.layout, settings.viewneti.transparent = "HEMISPHERE", False
    if variant.startswith("relative"):
        bpy.ops.diffusion3d.add_stereo_rig(place="CURSOR")
    sidebar = addon.panels.sidebar
    buttons = set()
    if variant != "defaults":
        settings.dst.source, settings.dst.polar_preset = "COLLECTION", "CUSTOM"
        box = bpy.data.objects.new("Box", bpy.data.meshes.new("Box"))
        bpy.context.scene.collection.objects.link(box)
        box.select_set(True)
        bpy.context.view_layer.objects.active = box
        bpy.ops.diffusion3d.set_object_class(class_name="crate", tags="old, wooden")
        assert (box["diffusion3d_class"], box["diffusion3d_tags"]) == ("crate", "old, wooden")
    panels = (
        sidebar.DIFFUSION3D_PT_world,
        sidebar.DIFFUSION3D_PT_stereo,
        sidebar.DIFFUSION3D_PT_dst,
        sidebar.DIFFUSION3D_PT_views,
        sidebar.DIFFUSION3D_PT_viewneti,
    )
    for cls in (*panels, sidebar.DIFFUSION3D_PT_engine):
        log = draw(cls, bpy.context)
        assert log, f"{cls.__name__} drew nothing"
        buttons |= {name for kind, name in log if kind == "operator"}
    assert {
        "diffusion3d.generate_from_edges",
        "diffusion3d.filter_dataset",
        "diffusion3d.render_edge_maps",
        "diffusion3d.set_object_class",
        "diffusion3d.add_stereo_rig",
        "diffusion3d.animate_rig",
        "diffusion3d.render_stereo_video",
        "diffusion3d.capture_panorama",
        "diffusion3d.generate_views",
        "diffusion3d.render_training_views",
        "diffusion3d.train_viewneti",
        "diffusion3d.generate_view",
    } <= buttons


def test_the_engine_panel_warns_once_on_an_untested_blender_and_not_on_a_tested_one(addon, monkeypatch):
    compat, engine_panel = addon.operators.machinery.compat, addon.panels.sidebar.DIFFUSION3D_PT_engine
    assert tuple(bpy.app.version[:2]) in compat.TESTED  # this run is on a tested line
    assert compat.untested_version() == "" and not [t for kind, t in draw(engine_panel, bpy.context) if "untested" in t]
    monkeypatch.setattr(compat, "bpy", SimpleNamespace(app=SimpleNamespace(version=(5, 3, 0), version_string="5.3.0")))
    warnings = [t for kind, t in draw(engine_panel, bpy.context) if kind == "label" and "untested" in t]
    assert warnings == ["Blender 5.3.0 is untested: Diffusion 3D is tested on 4.5 LTS and 5.2 LTS"]


def test_the_manifest_minimum_is_the_oldest_tested_blender(addon):
    import tomllib
    from pathlib import Path

    manifest = tomllib.loads((Path(addon.__file__).parent / "blender_manifest.toml").read_text())
    oldest = min(addon.operators.machinery.compat.TESTED)
    assert manifest["blender_version_min"] == f"{oldest[0]}.{oldest[1]}.0"
    assert "blender_version_max" not in manifest  # newer versions install and get the warning above


def test_a_blender_stage_shows_progress_and_cancel(addon):
    current = addon.operators.machinery.job.current
    current.start_stage("Rendering stereo video")
    current.stage_progress("Rendering stereo video", 3, 10)
    try:
        log = draw(addon.panels.sidebar.DIFFUSION3D_PT_stereo, bpy.context)
        assert ("progress", "Rendering stereo video: 3/10") in log and ("operator", "diffusion3d.cancel_job") in log
        assert bpy.ops.diffusion3d.cancel_job.poll()
        bpy.ops.diffusion3d.cancel_job()
        assert current.cancel_requested
    finally:
        current.clear()


@pytest.mark.parametrize(
    "state, fixes",
    [
        ("no engine", ["diffusion3d.setup_engine"]),
        ("model missing", ["diffusion3d.show_preferences", "diffusion3d.allow_downloads"]),
        ("model missing, downloads allowed but Blender offline", ["diffusion3d.show_preferences"]),
        ("ready", []),
    ],
)
def test_a_model_job_that_cannot_run_says_so_where_its_button_is_with_the_button_that_fixes_it(addon, prefs, tmp_path, state, fixes):
    import sys

    from support import build_tiny

    models = tmp_path / "models"
    build_tiny("tiny_ldm3d:build_tiny_ldm3d", models / "tiny-ldm3d-4c", vae_channels=4)
    prefs.engine_mode, prefs.python_path = "SUBPROCESS", str(tmp_path / "gone" / "python") if state == "no engine" else sys.executable
    prefs.models_dir, prefs.hf_cache_dir = str(models), str(tmp_path / "no-cache")
    prefs.allow_downloads = "allowed" in state
    gen = bpy.context.scene.diffusion3d.generate
    gen.model = "tiny-ldm3d-4c" if state == "ready" else "Intel/ldm3d-pano"
    log = draw(addon.panels.sidebar.DIFFUSION3D_PT_world, bpy.context)
    generate = log.index(("operator", "diffusion3d.generate_panorama"))
    shown = [name for kind, name in log[:generate] if kind == "operator" and name in FIX_OPERATORS]
    assert shown == fixes
    if fixes:
        assert any(kind == "label" and ("engine" in text or "not on this machine" in text) for kind, text in log[:generate])


FIX_OPERATORS = {"diffusion3d.setup_engine", "diffusion3d.show_preferences", "diffusion3d.allow_downloads"}
