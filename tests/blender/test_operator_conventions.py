"""Blender's interface conventions, for every operator the add-on registers (found in Blender's RNA, not listed here).

A button that cannot run is greyed out with the reason as its tooltip (a ``poll`` that calls ``poll_message_set``);
every option has a tooltip; an operator that adds scene data registers an undo step; an action that would destroy
something asks first when clicked, and runs without asking from a script.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import bpy
import pytest
import window_driver as wd
from blender_helpers import add_box, build_sphere

from engine import errors

#: What Blender says when a poll returns False without saying why.
SILENT_POLL = "failed, context is incorrect"


def registered_operators() -> list[type]:
    """Every operator class Blender has registered under the add-on's ``diffusion3d.`` names."""
    found = (getattr(bpy.types, name) for name in dir(bpy.types) if "_OT_" in name)
    return sorted((cls for cls in found if getattr(cls, "bl_idname", "").startswith("diffusion3d.")), key=lambda cls: cls.bl_idname)


def call(cls: type) -> object:
    """``bpy.ops.diffusion3d.NAME``: the operator as a script calls it."""
    return getattr(bpy.ops.diffusion3d, cls.bl_idname.split(".", 1)[1])


def own_poll(cls: type) -> bool:
    """Whether the add-on wrote a ``poll`` for ``cls`` (Blender's base classes have none)."""
    return any("poll" in vars(klass) for klass in cls.__mro__ if not klass.__module__.lstrip("_").startswith(("bpy_types", "bpy.types")))


def refusal(cls: type) -> str:
    """The error a script gets calling ``cls`` while its poll says no."""
    with pytest.raises(RuntimeError) as refused:
        call(cls)()
    text = str(refused.value)
    assert f"bpy.ops.{cls.bl_idname}.poll()" in text, f"{cls.bl_idname} ran past its poll: {text}"
    return text


@dataclass
class FakeHandle:
    """An engine job in flight, as :class:`JobState` sees one."""

    finished: bool = False
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@pytest.fixture
def job_running(addon):
    """A job in flight ("Generating panorama"), as the panel sees it while one runs; cleared after the test."""
    current = addon.operators.machinery.job.current
    handle = FakeHandle()
    current.start_engine(handle, "Generating panorama")
    try:
        yield handle
    finally:
        current.clear()


def preset_operators(addon) -> list[type]:
    """The add-preset operators: generated beside the preset panels that call them (``panels/presets.py``)."""
    return [cls for cls in addon.panels.presets.classes if issubclass(cls, bpy.types.Operator)]


def test_the_registered_operators_are_the_add_ons_classes(addon):
    ours = (*addon.operators.classes, *preset_operators(addon))
    assert {cls.__name__ for cls in registered_operators()} == {cls.__name__ for cls in ours}


def test_every_registered_operator_has_a_poll_that_says_why_it_cannot_run():
    operators = registered_operators()
    assert [cls.bl_idname for cls in operators if not own_poll(cls)] == []
    refused = [cls for cls in operators if not call(cls).poll()]  # an empty file: no job, no engine, nothing selected
    assert {"diffusion3d.capture_panorama", "diffusion3d.cancel_job", "diffusion3d.release_engine"} <= {c.bl_idname for c in refused}
    for cls in refused:
        assert SILENT_POLL not in refusal(cls), f"{cls.bl_idname}'s poll says no without saying why"


def test_while_a_job_runs_every_job_operator_is_greyed_out_naming_the_job(addon, job_running):
    polled = [cls for cls in registered_operators() if issubclass(cls, addon.operators.machinery.job.PolledOperator)]
    assert len(polled) > len(addon.operators.classes) // 2  # the job operators: all but a few housekeeping ones (and the presets')
    for cls in polled:
        assert not call(cls).poll(), cls.bl_idname
        assert errors.last_line(RuntimeError(refusal(cls))) == "Diffusion 3D is busy (Generating panorama); cancel it or wait"
    assert bpy.ops.diffusion3d.cancel_job.poll()


def test_a_call_that_skips_the_poll_is_refused_alike(addon, job_running):
    op = wd.stand_in(addon.operators.stereo_rig.DIFFUSION3D_OT_add_stereo_rig, place="CURSOR")
    assert op.execute(bpy.context) == {"CANCELLED"}
    assert op.reports == [("ERROR", "Diffusion 3D is busy (Generating panorama); cancel it or wait")]
    assert not [o for o in bpy.data.objects if o.get("diffusion3d_rig") is not None]


def test_missing_input_greys_out_the_operators_that_would_certainly_fail():
    """What no option can make up for: nothing to capture or export, no rig to animate or render, nothing selected."""
    expected = {
        "capture_panorama": "Nothing to capture: the scene has no visible objects",
        "export_world": "Nothing to export: the scene has no mesh",
        "animate_rig": "No stereo rig in the scene: add one first",
        "render_stereo_video": "No stereo rig in the scene: add one first",
        "set_object_class": "Nothing selected",
    }
    for name, words in expected.items():
        assert not getattr(bpy.ops.diffusion3d, name).poll(), name
        with pytest.raises(RuntimeError, match=words):
            getattr(bpy.ops.diffusion3d, name)()
    box = add_box("Box", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    box.select_set(True)
    bpy.ops.diffusion3d.add_stereo_rig(place="CURSOR")
    for name in expected:
        assert getattr(bpy.ops.diffusion3d, name).poll(), name


def test_an_operator_that_finishes_by_calling_another_finds_the_add_on_free(addon, monkeypatch, tmp_path):
    """``finish`` runs once the job is over (Generate builds its world sphere through the sphere's operator)."""
    world = addon.operators.world_sphere.DIFFUSION3D_OT_build_world_sphere
    finish, seen = world.finish, []

    def finish_and_look(self, context, result):
        seen.append(bpy.ops.diffusion3d.add_stereo_rig.poll())
        return finish(self, context, result)

    monkeypatch.setattr(world, "finish", finish_and_look)
    build_sphere(tmp_path / "blocking")
    wd.windowed(addon, monkeypatch)
    context = wd.Context()
    folder = tmp_path / "blocking"
    op = wd.stand_in(world, rgb_path=str(folder / "rgb.png"), depth_path=str(folder / "depth.npy"), grid_step=1)
    assert wd.run(op, context) == {"FINISHED"}, op.reports
    wd.assert_closed(addon, context)
    assert seen == [True, True]  # from a script, then from the UI (modal)


def test_every_operator_property_has_a_description():
    for cls in registered_operators():
        properties = call(cls).get_rna_type().properties
        assert [p.identifier for p in properties if p.identifier != "rna_type" and not p.description.strip()] == [], cls.bl_idname


#: Words a title keeps in lower case (Blender's guidelines: title case, short function words lower).
LOWER_IN_TITLES = {
    "a",
    "an",
    "and",
    "as",
    "at",
    "by",
    "for",
    "from",
    "in",
    "into",
    "of",
    "off",
    "on",
    "or",
    "per",
    "the",
    "to",
    "vs",
    "with",
}


def test_every_operator_and_every_option_it_shows_is_named_in_title_case():
    """Button labels and option labels: each word capitalised but short function words, the first word always."""
    for cls in registered_operators():
        rna = call(cls).get_rna_type()
        shown = [p.name for p in rna.properties if p.identifier != "rna_type" and not p.is_hidden]
        for name in (rna.name, *shown):
            words = re.findall(r"[A-Za-z][\w'-]*", name)
            lower = [w for i, w in enumerate(words) if w[0].islower() and (i == 0 or w not in LOWER_IN_TITLES)]
            assert lower == [], f"{cls.bl_idname}: {name!r}"


def test_generate_views_registers_an_undo_step(addon):
    """It adds a collection, cameras, images and a mesh. Its modal phase ends with FINISHED, on which Blender pushes the step."""
    assert {"REGISTER", "UNDO"} <= addon.operators.multiview.DIFFUSION3D_OT_generate_views.bl_options


def test_release_engine_during_a_job_asks_first_and_runs_directly_from_a_script(addon, job_running):
    session = addon.operators.machinery.session
    session.client()
    op, context = wd.stand_in(addon.operators.engine_ops.DIFFUSION3D_OT_release_engine), wd.Context()
    assert op.invoke(context, wd.MOUSE) == {"INTERFACE"}
    [asked] = context.window_manager.confirmations
    assert "Generating panorama" in asked["message"] and "cancels" in asked["message"]
    assert session.started() and not job_running.cancelled  # nothing happens before the answer
    assert bpy.ops.diffusion3d.release_engine() == {"FINISHED"}  # a script: no dialog
    assert job_running.cancelled and not session.started()


def test_release_engine_without_a_job_releases_at_once_and_without_an_engine_is_greyed_out(addon):
    session = addon.operators.machinery.session
    session.client()
    op, context = wd.stand_in(addon.operators.engine_ops.DIFFUSION3D_OT_release_engine), wd.Context()
    assert op.invoke(context, wd.MOUSE) == {"FINISHED"}
    assert context.window_manager.confirmations == [] and not session.started()
    assert not bpy.ops.diffusion3d.release_engine.poll()


def test_set_class_asks_before_an_empty_tags_field_clears_tags(addon):
    box = add_box("Crate", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    box.select_set(True)
    bpy.ops.diffusion3d.set_object_class(class_name="crate", tags="old, wooden")
    cls = addon.operators.dst.dataset.DIFFUSION3D_OT_set_object_class
    retag, context = wd.stand_in(cls, tags="new"), wd.Context()
    assert retag.invoke(context, wd.MOUSE) == {"FINISHED"} and box["diffusion3d_tags"] == "new"
    clear = wd.stand_in(cls, class_name="crate")
    assert clear.invoke(context, wd.MOUSE) == {"INTERFACE"}
    [asked] = context.window_manager.confirmations
    assert "Crate" in asked["message"] and box["diffusion3d_tags"] == "new"  # nothing cleared before the answer
    assert bpy.ops.diffusion3d.set_object_class(class_name="crate") == {"FINISHED"}  # a script: no dialog
    assert box["diffusion3d_tags"] == ""


def test_every_declared_number_shows_its_unit_in_blender():
    """Pixels as PIXEL, lengths in the scene's length unit, seconds as time, angles as ANGLE: walked over every
    registered operator's properties against the declarations they came from."""
    from engine import params

    expected = {
        params.PIXELS: ("subtype", "PIXEL"),
        params.LENGTH: ("unit", "LENGTH"),
        params.SECONDS: ("unit", "TIME_ABSOLUTE"),
        params.DEGREES: ("subtype", "ANGLE"),
    }
    checked = 0
    for cls in registered_operators():
        request = cls.request_type() if hasattr(cls, "request_type") else getattr(cls, "request", None)
        if request is None:
            continue
        properties = call(cls).get_rna_type().properties
        for leaf in params.leaves(request):
            rna = properties.get(leaf.prop)
            if rna is None or leaf.param.unit not in expected or leaf.kind not in (int, float):
                continue
            if leaf.param.unit != params.PIXELS and leaf.kind is int:
                continue
            what, value = expected[leaf.param.unit]
            assert getattr(rna, what) == value, f"{cls.bl_idname}.{leaf.prop}: {what} {getattr(rna, what)}"
            checked += 1
    assert checked > 20


def test_a_declared_angle_is_held_in_radians_by_blender_and_reaches_the_job_in_degrees_unchanged(addon):
    """Every operator's angle property is Blender's ANGLE (radians, shown in the scene's rotation unit) with the declared
    default; the panel's angles (32-bit properties) give the job back the very degrees put in, limits included."""
    from engine import params
    from engine.dst.dataset import DSTAnnotateRequest
    from engine.multiview.job import ViewsRequest
    from engine.viewneti.posed import PosedSetRequest
    from engine.world.stereo_rig import MoveRequest

    declared = addon.operators.machinery.declared
    defaults = 0
    for cls in registered_operators():
        request = cls.request_type() if hasattr(cls, "request_type") else getattr(cls, "request", None)
        rna = call(cls).get_rna_type().properties if request is not None else {}
        for leaf in params.leaves(request) if request is not None else ():
            if declared.is_angle(leaf) and leaf.prop in rna:
                assert rna[leaf.prop].subtype == "ANGLE"
                assert rna[leaf.prop].default == pytest.approx(math.radians(leaf.default), abs=1e-6), f"{cls.bl_idname}.{leaf.prop}"
                defaults += 1
    assert defaults >= 8
    settings = bpy.context.scene.diffusion3d
    round_trips = 0
    for owner, request in (
        (settings.stereo, MoveRequest),
        (settings.dst, DSTAnnotateRequest),
        (settings.views, ViewsRequest),
        (settings.viewneti, PosedSetRequest),
    ):
        for leaf in filter(declared.is_angle, params.leaves(request)):
            for degrees in (leaf.param.min, leaf.param.max, leaf.default, 12.5):
                setattr(owner, leaf.prop, declared.held(leaf, degrees))
                assert declared.values(owner, request)[leaf.name] == degrees, f"{leaf.prop}: {degrees}°"
                round_trips += 1
    assert round_trips >= 4 * 8
