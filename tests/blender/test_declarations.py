"""Every job's parameters are declared once, on its engine request: its operator, the panel and batch.py's subcommand agree with it.

The contract is read off what is registered and parsed, not off a list kept by
hand: each operator's RNA properties (names, types, defaults, choices, slider
ranges, and hard limits left open so nothing is clamped), and each
subcommand's options (spelling, default, choices) against the declaration.
"""

from __future__ import annotations

import math
import typing

import bpy
import pytest

import batch
from engine import cli, params


def declared_operators(addon) -> list[tuple[str, type]]:
    """(operator name, request class) for every registered operator whose properties a request declares."""
    found = []
    for cls in addon.operators.classes:
        request = getattr(cls, "request", None) or (cls.request_type() if getattr(cls, "job", "") else None)
        if request is not None and params.leaves(request):
            found.append((cls.bl_idname.split(".")[1], request))
    return found


def rna_properties(name: str) -> dict:
    return {p.identifier: p for p in getattr(bpy.ops.diffusion3d, name).get_rna_type().properties if p.identifier != "rna_type"}


def test_every_job_operator_has_exactly_its_requests_parameters_as_declared(addon):
    declared = addon.operators.machinery.declared
    operators = declared_operators(addon)
    assert {name for name, _ in operators} >= {"capture_panorama", "generate_panorama", "render_edge_maps", "train_viewneti"}
    for name, request in operators:
        rna = rna_properties(name)
        leaves = {leaf.prop: leaf for leaf in declared.blender_leaves(request)}
        assert set(rna) == set(leaves), f"{name}: properties other than the declaration's"
        for prop, leaf in leaves.items():
            p, got = leaf.param, rna[prop]
            assert got.name == p.label and got.description.startswith(p.help), f"{name}.{prop}"
            if p.choices is not None:
                assert [i.identifier for i in got.enum_items] == list(p.choices.ids) and got.default == leaf.default, f"{name}.{prop}"
            elif p.values:  # only these numbers: an enum offering exactly them
                assert [i.identifier for i in got.enum_items] == [str(v) for v in p.values] and got.default == str(leaf.default), (
                    f"{name}.{prop}"
                )
            elif leaf.kind in (int, float):
                held = math.radians if declared.is_angle(leaf) else float  # an angle property holds radians
                assert got.default == pytest.approx(held(leaf.default), rel=1e-6), f"{name}.{prop}"
                low, high = p.soft or p.usual or (p.min, p.max)
                if low is not None:
                    assert got.soft_min == pytest.approx(held(low), rel=1e-6), f"{name}.{prop}: the slider's range"
                if high is not None:
                    assert got.soft_max == pytest.approx(held(high), rel=1e-6), f"{name}.{prop}: the slider's range"
                # Blender's own limits stay wide open: an out-of-range value reaches validate and is refused, never clamped
                assert got.hard_min <= -(2**31) + 1 if leaf.kind is int else got.hard_min < -1e30, f"{name}.{prop}"
                assert got.hard_max >= 2**31 - 1 if leaf.kind is int else got.hard_max > 1e30, f"{name}.{prop}"
            elif leaf.kind is bool:
                assert got.default == bool(leaf.default), f"{name}.{prop}"
            elif leaf.kind is str:
                assert got.default == leaf.default, f"{name}.{prop}"


def test_every_subcommand_offers_its_requests_parameters_spelt_and_defaulted_as_declared():
    parser = batch.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    assert set(subparsers) == {c.name for c in batch.COMMANDS}
    for command in batch.COMMANDS:
        every = subparsers[command.name]._actions
        flags = [s for a in every for s in a.option_strings if not s.startswith("--no-")]
        assert len(flags) == len(set(flags)), f"{command.name}: an option spelt twice"
        covered = {name for r in command.requests for leaf in params.leaves(r) for name in leaf.param.cli_fields[1:]}
        seen = set()
        for request in command.requests:
            for leaf in params.leaves(request):
                if leaf.name in seen or leaf.name in command.hide or leaf.name in covered or cli.flag(leaf) is None:
                    continue
                seen.add(leaf.name)
                action = next((a for a in every if cli.flag(leaf) in a.option_strings), None)
                assert action is not None and action.dest == leaf.name, f"{command.name}: {leaf.name}"
                p, default = leaf.param, command.defaults.get(leaf.name, leaf.default)
                if p.cli_required or p.cli_parse or p.cli_fields:
                    continue
                if p.choices is not None:
                    assert action.choices == p.choices.cli_names and action.default == p.choices[default].cli, (
                        f"{command.name}: {leaf.name}"
                    )
                elif typing.get_origin(leaf.kind) is not list:
                    assert action.default == default or (default is None and action.default is None), f"{command.name}: {leaf.name}"
                assert p.help in action.help, f"{command.name}: {leaf.name}'s help"


def test_the_panel_settings_are_the_operators_properties(addon):
    """A panel button passes its box's settings on: every setting the panel keeps for a job is one of the job's properties."""
    settings = bpy.context.scene.diffusion3d
    declared = addon.operators.machinery.declared
    generate = {p.identifier for p in settings.generate.bl_rna.properties if p.identifier not in ("rna_type", "name")}
    assert generate == set(declared.properties(addon.engine.world.ldm3d.RGBDRequest))
    for prop in settings.stereo.bl_rna.properties:
        if prop.identifier not in ("rna_type",):
            owners = [r for r in ("add_stereo_rig", "animate_rig", "render_stereo_video") if prop.identifier in rna_properties(r)]
            assert owners, f"stereo setting {prop.identifier} belongs to no operator"


def test_an_int_out_of_blenders_range_is_an_error_not_a_clamp(addon):
    """What Blender cannot hold is refused by Blender itself, loudly (our ranges sit inside it)."""
    with pytest.raises((TypeError, ValueError, OverflowError)):
        bpy.ops.diffusion3d.generate_panorama(seed=2**40)
    assert params.SEED_MAX == 2**31 - 1 and math.isfinite(params.STEPS_MAX)


def out_of_range(leaf: params.Leaf) -> list:
    """Values a declared number refuses: below and above its range, a value outside its list, and not-a-number and infinities."""
    p, bad = leaf.param, []
    if p.values:
        bad.append(max(p.values) + 1)
    if p.min is not None:
        bad.append(p.min if p.open_min else p.min - 1)
    if p.max is not None:
        bad.append(p.max if p.open_max else p.max + 1)
    if leaf.kind is float:
        bad += [math.nan, math.inf, -math.inf]
    return [leaf.kind(v) if leaf.kind is int else v for v in bad if v not in p.also]


def test_every_out_of_range_value_is_refused_by_its_operator_in_one_line_and_changes_nothing(addon, tmp_path, monkeypatch):
    from blender_helpers import add_box, snapshot

    monkeypatch.chdir(tmp_path)
    add_box("Box", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # what the polls ask for (something to capture or export, a rig): each
    bpy.ops.diffusion3d.add_stereo_rig(place="CURSOR")  # operator is reached, and refuses the value before it reads any of it
    declared, tried = addon.operators.machinery.declared, 0
    before = snapshot()
    for name, request in declared_operators(addon):
        operator = getattr(bpy.ops.diffusion3d, name)
        assert operator.poll(), name
        for leaf in declared.blender_leaves(request):
            if leaf.param.values:  # an enum of exactly these numbers: one outside it cannot even be given
                with pytest.raises(TypeError):
                    operator(**{leaf.prop: str(max(leaf.param.values) + 1)})
                continue
            if leaf.kind not in (int, float):
                continue
            for value in out_of_range(leaf):
                if leaf.kind is int and not -(2**31) <= value < 2**31:
                    continue  # Blender itself refuses what an int property cannot hold
                with pytest.raises(RuntimeError) as refused:
                    operator(**{leaf.prop: value})
                lines = str(refused.value).strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith(f"Error: {leaf.param.label} "), f"{name}.{leaf.prop}={value}: {lines}"
                tried += 1
    assert tried > 100 and snapshot() == before and not any(tmp_path.iterdir())
