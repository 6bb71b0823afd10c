"""Presets per job (``panels/presets.py``): saved and loaded through Blender's own preset operators, the shipped ones
accepted by their jobs, and the user's own kept in a temporary scripts folder (never the real user's)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bpy
import pytest

SHIPPED = Path(__file__).resolve().parents[2] / "panels" / "shipped_presets"


@pytest.fixture(autouse=True)
def user_scripts(tmp_path, monkeypatch) -> Path:
    """Blender's user scripts folder, where user presets go, in a temporary folder (Blender reads the variable on each call)."""
    folder = tmp_path / "scripts"
    monkeypatch.setenv("BLENDER_USER_SCRIPTS", str(folder))
    assert Path(bpy.utils.user_resource("SCRIPTS")) == folder
    return folder


def jobs(addon: Any) -> dict[str, Any]:
    return {job.key: job for job in addon.panels.presets.JOBS}


def settings_of(job: Any) -> Any:
    return functools.reduce(getattr, job.settings.split("."), bpy.context)


def held(job: Any) -> dict[str, Any]:
    settings = settings_of(job)
    return {name: _plain(getattr(settings, name)) for name in job.properties()}


def _plain(value: Any) -> Any:
    """A vector (a mathutils Vector or Color, a live view of the property) as a tuple of its values."""
    return value if isinstance(value, (bool, int, float, str)) else tuple(value)


def change(settings: Any, name: str) -> None:
    """Set a property to a value other than its default."""
    rna = settings.bl_rna.properties[name]
    if rna.type == "BOOLEAN":
        value: Any = not rna.default
    elif rna.type == "ENUM":
        value = next(item.identifier for item in rna.enum_items if item.identifier != rna.default)
    elif rna.type == "INT":
        value = rna.default + 1
    elif getattr(rna, "array_length", 0):
        value = tuple(0.5 * v + 0.1 for v in rna.default_array)  # within a colour's 0–1 too
    else:
        value = rna.default + 0.25
    setattr(settings, name, value)


def save(job: Any, name: str) -> set[str]:
    return getattr(bpy.ops.diffusion3d, job.add_operator.split(".")[1])(name=name)


def load(job: Any, filepath: Path) -> None:
    assert bpy.ops.script.execute_preset(filepath=str(filepath), menu_idname=job.panel) == {"FINISHED"}


def request_from_settings(addon: Any, job: Any) -> Any:
    """The job's request from the panel's settings, as its button passes them (each property named prefix + name)."""
    declared, settings = addon.operators.machinery.declared, settings_of(job)
    names = [leaf.prop for leaf in declared.blender_leaves(job.request) if hasattr(settings, job.prefix + leaf.prop)]
    return declared.request(SimpleNamespace(**{name: getattr(settings, job.prefix + name) for name in names}), job.request)


def shipped_presets() -> list[Path]:
    return sorted(SHIPPED.glob("*/*.py"))


def test_a_saved_preset_restores_every_declared_setting_of_its_job(addon, user_scripts):
    for job in addon.panels.presets.JOBS:
        settings = settings_of(job)
        assert job.properties(), job.key
        for name in job.properties():
            change(settings, name)
        saved = held(job)
        assert save(job, "Mine") == {"FINISHED"}, job.key
        preset = user_scripts / "presets" / "diffusion3d" / job.key / "Mine.py"
        written = {line.split(" = ")[0].removeprefix("settings.") for line in preset.read_text().splitlines()[3:]}
        assert written == set(job.properties()), job.key
        for name in job.properties():
            settings.property_unset(name)
        assert [name for name, value in saved.items() if held(job)[name] == value] == [], job.key
        load(job, preset)
        assert held(job) == saved, job.key


@pytest.mark.parametrize("preset", shipped_presets(), ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_every_shipped_preset_loads_and_its_values_are_accepted_by_the_job(addon, preset):
    from engine import params

    job = jobs(addon)[preset.parent.name]
    load(job, preset)
    settings = settings_of(job)
    for line in preset.read_text().splitlines()[3:]:
        name, value = line.removeprefix("settings.").split(" = ")
        assert _plain(getattr(settings, name)) == ast.literal_eval(value), line
    params.validate(request_from_settings(addon, job), models=False, paths=False)


def test_a_shipped_preset_is_written_as_blender_writes_one_and_sets_only_what_its_job_presets_hold(addon):
    """``AddPresetBase``'s format (its ``preset_defines`` line, then ``settings.NAME = repr(value)``), each file under a
    job's key; a shipped preset sets only what it is about, so a subset of what a saved one holds."""
    known = jobs(addon)
    assert {path.parent.name for path in shipped_presets()} == {"capture", "generate", "world_sphere", "stereo_video"}
    for path in shipped_presets():
        job = known[path.parent.name]
        head, lines = path.read_text().splitlines()[:3], path.read_text().splitlines()[3:]
        assert head == ["import bpy", f"settings = bpy.context.{job.settings}", ""], path
        assert lines, path
        for line in lines:
            name, value = line.removeprefix("settings.").split(" = ")
            assert line.startswith("settings.") and name in job.properties(), line
            assert repr(ast.literal_eval(value)) == value, line
        assert path.stem == addon.panels.presets.AddJobPreset.as_filename(bpy.path.display_name(path.name, title_case=False))


def test_a_preset_leaves_paths_and_prompts_alone(addon, user_scripts, tmp_path):
    """Nor model ids, names of Blender data, or what the job works on (the last capture, the world sphere's place)."""
    known = jobs(addon)
    own = {
        "generate": {
            "prompt": "a cave",
            "negative_prompt": "people",
            "model": "/models/mine",
            "upscaler": "/models/sr",
            "output_dir": str(tmp_path),
            "init": "LAST_CAPTURE",
            "init_rgb_path": str(tmp_path / "rgb.png"),
        },
        "world_sphere": {"rgb_path": str(tmp_path / "rgb.png"), "rgb_image": "Pano", "name": "Mine", "place": "CURSOR", "prompt": "a wall"},
    }
    for key, values in own.items():
        job, settings = known[key], settings_of(known[key])
        assert not set(values) & set(job.properties()), key
        assert save(job, "Mine") == {"FINISHED"}
        preset = user_scripts / "presets" / "diffusion3d" / key / "Mine.py"
        for name, value in values.items():
            setattr(settings, name, value)
        load(job, preset)
        assert {name: getattr(settings, name) for name in values} == values, key


def test_a_user_preset_is_removed_by_its_button_and_a_shipped_one_can_be_neither_removed_nor_shadowed(addon, user_scripts):
    job = jobs(addon)["generate"]
    operator = bpy.ops.diffusion3d.add_preset_generate
    folder = user_scripts / "presets" / "diffusion3d" / "generate"
    assert operator(name="My Draft") == {"FINISHED"} and (folder / "My_Draft.py").is_file()
    assert operator(name="My Draft", remove_name=True) == {"FINISHED"}
    assert list(folder.iterdir()) == []
    assert operator(name="Quick Draft", remove_name=True) == {"CANCELLED"}
    assert (job.shipped / "Quick_Draft.py").is_file()
    assert operator(name="Quick Draft") == {"CANCELLED"}
    assert list(folder.iterdir()) == []


class RecordingLayout:
    """What a popover's draw calls on its layout; buttons logged as (operator, text, what it sets)."""

    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log

    def _child(self, *_: Any, **__: Any) -> RecordingLayout:
        return RecordingLayout(self.log)

    row = column = _child

    def operator(self, idname: str, text: str = "", **_: Any) -> SimpleNamespace:
        button = SimpleNamespace()
        self.log.append(("operator", idname, text, button))
        return button

    def popover(self, **how: Any) -> None:
        self.log.append(("popover", how))

    def prop(self, data: Any, name: str, **_: Any) -> None:
        assert name in data.bl_rna.properties.keys()
        self.log.append(("prop", name))

    def separator(self, **_: Any) -> None:
        self.log.append(("separator",))

    def label(self, **how: Any) -> None:
        self.log.append(("label", how.get("text", "")))


def drawn_popover(addon: Any, key: str) -> list[tuple[Any, ...]]:
    panel = getattr(bpy.types, jobs(addon)[key].panel)
    log: list[tuple[Any, ...]] = []
    popover = SimpleNamespace(layout=RecordingLayout(log), bl_idname=panel.bl_idname, job=panel.job, preset_operator=panel.preset_operator)
    popover.path_menu = functools.partial(bpy.types.Menu.path_menu, popover)
    panel.draw(popover, bpy.context)  # a panel's draw reads only what the stand-in has
    return log


def test_the_preset_button_lists_the_shipped_presets_then_the_users_own_with_their_remove_buttons(addon):
    assert bpy.ops.diffusion3d.add_preset_generate(name="Mine") == {"FINISHED"}
    log = drawn_popover(addon, "generate")
    buttons = [(entry[1], entry[2]) for entry in log if entry[0] == "operator"]
    load, change = "script.execute_preset", "diffusion3d.add_preset_generate"
    assert buttons == [(load, "Low Memory"), (load, "Quality"), (load, "Quick Draft"), (load, "Mine"), (change, ""), (change, "")]
    remove, add = (entry[3] for entry in log if entry[0] == "operator" and entry[1] == change)
    assert remove.remove_name and remove.name == "Mine" and not hasattr(add, "remove_name")
    shipped = next(entry[3] for entry in log if entry[0] == "operator" and entry[2] == "Quick Draft")
    assert shipped.filepath == str(jobs(addon)["generate"].shipped / "Quick_Draft.py")
    assert shipped.menu_idname == "DIFFUSION3D_PT_presets_generate"
    assert [entry for entry in drawn_popover(addon, "export") if entry[0] == "label"] == []  # no shipped ones, no user folder yet


def test_a_panel_header_draws_its_jobs_preset_button(addon):
    log: list[tuple[Any, ...]] = []
    addon.panels.presets.preset_header(RecordingLayout(log), "stereo_video")
    assert log == [("popover", {"panel": "DIFFUSION3D_PT_presets_stereo_video", "icon": "PRESET", "text": ""})]
