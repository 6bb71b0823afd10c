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
    """Records what a panel draws: ("prop", name), ("operator", idname), ("label", text), ("progress", text),
    ("suggest", name) for a model field that only suggests, ("thumbnail", icon); the buttons' options in ``buttons``."""

    use_property_split = use_property_decorate = False

    def __init__(self, log: list[tuple[str, str]], buttons: list[OperatorButton] | None = None) -> None:
        self.log, self.buttons = log, buttons if buttons is not None else []

    def _child(self, *_: Any, **__: Any) -> RecordingLayout:
        child = RecordingLayout(self.log, self.buttons)
        child.use_property_split = self.use_property_split  # Blender's sub-layouts inherit it
        return child

    row = column = box = split = _child

    def prop(self, data: Any, name: str, text: str | None = None, **_: Any) -> None:
        if name.startswith('["'):
            assert name[2:-2] in data.keys(), f"{data.name} has no custom property {name}"
        else:
            assert name in data.bl_rna.properties.keys(), f"{type(data).__name__} has no property {name!r}"
        assert text != "" or _.get("placeholder"), f"{name} is drawn with neither a label nor a placeholder"
        self.log.append(("prop", name))

    def prop_search(self, data: Any, name: str, search_data: Any, search_name: str, **how: Any) -> None:
        self.prop(data, name, **how)
        assert hasattr(search_data, search_name)
        if how.get("results_are_suggestions"):
            self.log.append(("suggest", name))

    def operator(self, idname: str, **_: Any) -> OperatorButton:
        self.log.append(("operator", idname))
        button = OperatorButton(idname)
        self.buttons.append(button)
        return button

    def label(self, **_: Any) -> None:
        self.log.append(("label", _.get("text", "")))

    def progress(self, **_: Any) -> None:
        self.log.append(("progress", _.get("text", "")))

    def template_icon(self, icon_value: int, **_: Any) -> None:
        self.log.append(("thumbnail", str(icon_value)))


def draw(panel_cls: type, context: Any, buttons: list[OperatorButton] | None = None) -> list[tuple[str, str]]:
    log: list[tuple[str, str]] = []
    panel_cls.draw(SimpleNamespace(layout=RecordingLayout(log, buttons)), context)  # a panel's draw reads only self.layout
    return log


#: The capability panels whose jobs are in their subpanels.
PARENTS = {"DIFFUSION3D_PT_world", "DIFFUSION3D_PT_stereo", "DIFFUSION3D_PT_dst", "DIFFUSION3D_PT_viewneti"}


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
    for cls in sidebar.classes:
        log = draw(cls, bpy.context)
        if cls.__name__ in PARENTS:
            continue  # a parent draws the running job's progress only
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
    settings, sidebar = bpy.context.scene.diffusion3d, addon.panels.sidebar
    if state == "ready":  # any model folder found here will do; otherwise each job's default (views: the published one)
        settings.generate.model = settings.upscale.model = settings.views.model = "tiny-ldm3d-4c"
    for panel, button in (
        (sidebar.DIFFUSION3D_PT_world_generate, "diffusion3d.generate_panorama"),
        (sidebar.DIFFUSION3D_PT_world_upscale, "diffusion3d.upscale_panorama"),
        (sidebar.DIFFUSION3D_PT_views, "diffusion3d.generate_views"),
    ):
        log = draw(panel, bpy.context)
        before = log[: log.index(("operator", button))]
        assert [name for kind, name in before if kind == "operator" and name in FIX_OPERATORS] == fixes, button
        if fixes:
            assert any(kind == "label" and ("engine" in text or "not on this machine" in text) for kind, text in before), button


FIX_OPERATORS = {"diffusion3d.setup_engine", "diffusion3d.show_preferences", "diffusion3d.allow_downloads"}


def test_every_job_section_lays_its_fields_out_in_blenders_two_columns(addon):
    for cls in addon.panels.sidebar.classes:
        if cls.__name__ in PARENTS:
            continue
        layout = RecordingLayout([])
        cls.draw(SimpleNamespace(layout=layout), bpy.context)
        assert layout.use_property_split and not layout.use_property_decorate, cls.__name__


def test_every_model_field_takes_any_folder_or_repo_id_and_has_a_folder_button_that_fills_it(addon, tmp_path):
    """The found models are only suggested (the default repo id is not drawn as invalid before *Find Models*); each model
    field of each job has a browse button whose target is that very field."""
    from engine import params

    settings = bpy.context.scene.diffusion3d
    settings.layers, settings.generate.upscale = 2, "2"  # the inpaint model and the upscaler are shown
    log: list[tuple[str, str]] = []
    buttons: list[OperatorButton] = []
    for cls in addon.panels.sidebar.classes:
        cls.draw(SimpleNamespace(layout=RecordingLayout(log, buttons)), bpy.context)
    targets = [b.setting for b in buttons if b.idname == "diffusion3d.choose_model_folder"]
    assert len(targets) >= 9 and len(set(targets)) == len(targets)
    for target in targets:
        owner_path, _, name = target.rpartition(".")
        owner = bpy.context.scene.path_resolve(owner_path)
        assert name in owner.bl_rna.properties.keys()
    suggested = {name for kind, name in log if kind == "suggest"}
    assert {"model", "upscaler", "inpaint_model"} <= suggested
    drawn_models = {t.rpartition(".")[2] for t in targets}
    models_in_sections = {
        leaf.prop
        for request in (addon.engine.world.ldm3d.RGBDRequest,)
        for leaf in params.leaves(request)
        if leaf.param.model and leaf.param.ui
    }
    assert models_in_sections - {"depth_estimator", "upscaler"} <= drawn_models  # shown in its state (init from files: the estimator)
    folder = tmp_path / "my-ldm3d"
    folder.mkdir()
    assert bpy.ops.diffusion3d.choose_model_folder(setting="diffusion3d.generate.model", directory=str(folder)) == {"FINISHED"}
    assert settings.generate.model == str(folder)
    for bad in ("diffusion3d.generate.nothing", "render.filepath"):
        with pytest.raises(RuntimeError, match="No model setting"):
            bpy.ops.diffusion3d.choose_model_folder(setting=bad, directory=str(folder))
    assert settings.generate.model == str(folder) and bpy.context.scene.render.filepath != str(folder)


def test_after_a_job_its_section_shows_the_result_and_opens_its_folder(addon, tmp_path, monkeypatch):
    """A real job (an export) records its output; its section draws the thumbnail of an image result and *Open Output
    Folder*; other sections show nothing of it."""
    from blender_helpers import build_sphere

    sidebar, last = addon.panels.sidebar, addon.operators.machinery.last_result
    for name in ("operator", "folder", "image"):  # no result yet (and the one before this test back after it)
        monkeypatch.setattr(last.last, name, "")
    assert not bpy.ops.diffusion3d.open_output_folder.poll()
    build_sphere(tmp_path / "pano")
    out = tmp_path / "exports" / "world.glb"
    out.parent.mkdir()
    assert bpy.ops.diffusion3d.export_world(filepath=str(out)) == {"FINISHED"}
    assert (last.last.operator, last.last.folder, last.last.image) == ("diffusion3d.export_world", str(out.parent), "")
    export_log = draw(sidebar.DIFFUSION3D_PT_world_export, bpy.context)
    assert ("operator", "diffusion3d.open_output_folder") in export_log
    assert ("operator", "diffusion3d.open_output_folder") not in draw(sidebar.DIFFUSION3D_PT_world_generate, bpy.context)
    opened: list[str] = []
    monkeypatch.setattr(addon.operators.panel_ops, "open_folder", opened.append)
    assert bpy.ops.diffusion3d.open_output_folder() == {"FINISHED"} and opened == [str(out.parent)]

    last.record(
        "diffusion3d.generate_panorama",
        {"paths": {"depth": str(tmp_path / "pano" / "depth.npy"), "rgb": str(tmp_path / "pano" / "rgb.png")}},
    )
    assert last.last.image == str(tmp_path / "pano" / "rgb.png") and last.last.folder == str(tmp_path / "pano")
    thumbnails = addon.panels.thumbnails
    thumbnails.icon(last.last.image)  # the preview is made from the file (its icon is drawn only with a window: 0 here)
    (preview,) = [p for key, p in thumbnails._previews.items() if key.startswith(last.last.image + "@")]
    assert tuple(preview.image_size) == (64, 32)
    monkeypatch.setattr(thumbnails, "icon", lambda image: 7 if image == last.last.image else 0)  # as in a window
    drawn = [value for kind, value in draw(sidebar.DIFFUSION3D_PT_world_generate, bpy.context) if kind == "thumbnail"]
    assert drawn == ["7"]
    (tmp_path / "pano" / "rgb.png").unlink()
    (tmp_path / "pano" / "depth.npy").unlink()
    (tmp_path / "pano").rmdir()
    assert not bpy.ops.diffusion3d.open_output_folder.poll(), "a folder that is gone is not offered"


def test_while_a_job_runs_every_capability_panel_shows_its_progress_and_cancel_and_the_sections_still_draw(addon):
    current, sidebar = addon.operators.machinery.job.current, addon.panels.sidebar
    current.start_stage("Rendering edge maps")
    try:
        for cls in sidebar.classes:
            log = draw(cls, bpy.context)
            if cls.__name__ in PARENTS or cls is sidebar.DIFFUSION3D_PT_views:
                assert log[:2] == [("progress", "Rendering edge maps"), ("operator", "diffusion3d.cancel_job")], cls.__name__
            elif cls is not sidebar.DIFFUSION3D_PT_engine:
                assert any(kind == "operator" for kind, _ in log), f"{cls.__name__}: its buttons (greyed out by their poll)"
    finally:
        current.clear()


def test_a_broken_engine_is_named_in_one_line_in_the_engine_panel_with_repair_and_remove(addon, monkeypatch):
    check = addon.operators.engine_ops.last_check
    monkeypatch.setattr(check, "text", "Python 3.11.7: torch 2.13.0+cu130; devices: cpu; 1.7 GB on disk")
    monkeypatch.setattr(
        check, "problems", "torch is a CUDA build (cu130) but no NVIDIA driver was found: Repair installs the build for this machine"
    )
    buttons: list[OperatorButton] = []
    log = draw(addon.panels.sidebar.DIFFUSION3D_PT_engine, bpy.context, buttons)
    assert ("label", check.problems) in log and ("label", check.text) in log
    setup = [b for b in buttons if b.idname == "diffusion3d.setup_engine"]
    assert [(getattr(b, "upgrade", False), getattr(b, "remove", False)) for b in setup] == [(True, False), (False, True)]
    monkeypatch.setattr(check, "problems", "")
    assert not [name for kind, name in draw(addon.panels.sidebar.DIFFUSION3D_PT_engine, bpy.context) if name == "diffusion3d.setup_engine"]
