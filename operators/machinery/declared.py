"""Blender properties from the engine's request declarations (``engine/params.py``), and requests from their values.

An operator's options and the panel's settings are :func:`properties` of the
job's request: labels, tooltips, defaults, choices and slider ranges as
declared. Blender's own hard limits are left wide open on purpose: a value out
of range reaches the engine's ``validate`` and is refused in one line, never
clamped on the way. :func:`request` reads the values back into the request.
"""

from __future__ import annotations

import math
import typing
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, FloatVectorProperty, IntProperty, StringProperty

from ...engine import params
from ...engine.diffusion.sources import ModelAccess
from ...engine.params import Leaf

#: Blender's float properties hold 32-bit floats: the slider of an open-ended field stops here.
_FLOAT_SOFT_LIMIT = 1e6
#: Significant digits of an angle back from Blender, in degrees: its radians are 32-bit floats (~7 digits), so 90° reads
#: 90.0000025° and -3600° reads -3599.99994°; six digits give back what was put in.
_DEGREE_DIGITS = 6


def is_angle(leaf: Leaf) -> bool:
    """A declared angle: degrees in the engine and on the command line, Blender's ANGLE property (radians) here, shown in
    the scene's rotation unit. Only :func:`prop`, :func:`values` and :func:`held` convert."""
    return leaf.param.unit == params.DEGREES and leaf.kind is float


def from_preferences(cls: type) -> bool:
    """Nested requests the operators fill from the preferences, not from options: the model access."""
    return cls is ModelAccess


def description(leaf: Leaf) -> str:
    p = leaf.param
    allowed = p.range_text()
    return f"{p.help} [{allowed}]" if allowed and leaf.kind in (int, float) else p.help


def _soft(leaf: Leaf) -> dict[str, Any]:
    p = leaf.param
    low, high = p.soft or p.usual or (p.min, p.max)
    limits = {"soft_min": low, "soft_max": high}
    to_blender = math.radians if is_angle(leaf) else float
    return {k: (leaf.kind(v) if leaf.kind is int else to_blender(v)) for k, v in limits.items() if v is not None}


def _subtype(leaf: Leaf) -> dict[str, Any]:
    p = leaf.param
    if p.path in (params.INPUT_FILE, params.OUTPUT_FILE):
        return {"subtype": "FILE_PATH"}
    if p.path in (params.INPUT_FOLDER, params.OUTPUT_FOLDER):
        return {"subtype": "DIR_PATH"}
    if p.unit == params.PIXELS and leaf.kind is int:
        return {"subtype": "PIXEL"}
    if p.unit == params.FACTOR:
        return {"subtype": "FACTOR"}
    if p.unit == params.LENGTH and leaf.kind is float:
        return {"unit": "LENGTH"}
    if p.unit == params.SECONDS and leaf.kind is float:
        return {"unit": "TIME_ABSOLUTE"}
    if is_angle(leaf):
        return {"subtype": "ANGLE"}
    return {}


def prop(leaf: Leaf) -> Any:
    """The Blender property for one declared parameter."""
    p, kind, default = leaf.param, leaf.kind, leaf.default
    common = {"name": p.label, "description": description(leaf), **_subtype(leaf)}
    if kind is bool:
        return BoolProperty(default=bool(default), **common)
    if p.choices is not None:
        return EnumProperty(items=p.choices.items(), default=default, name=p.label, description=p.help)
    if p.values:  # only these numbers: offered as they are, never one the job refuses (held as text: Blender's enums)
        items = [(str(v), str(v), p.help) for v in p.values]
        return EnumProperty(items=items, default=str(default), name=p.label, description=p.help)
    if kind is int:
        step = {"step": p.multiple} if 1 < p.multiple <= 100 else {}
        return IntProperty(default=default, **_soft(leaf), **step, **common)
    if kind is float:
        soft = _soft(leaf)
        soft.setdefault("soft_min", -_FLOAT_SOFT_LIMIT)
        soft.setdefault("soft_max", _FLOAT_SOFT_LIMIT)
        return FloatProperty(default=math.radians(default) if is_angle(leaf) else default, **soft, **common)
    if typing.get_origin(kind) is tuple:
        vector = {"subtype": "COLOR" if p.unit == params.FACTOR else "TRANSLATION"}
        return FloatVectorProperty(default=default, size=len(default), **{**common, **vector})
    return StringProperty(default=default if isinstance(default, str) else "", **common)  # text, paths; a list: one path


def in_blender(leaf: Leaf) -> bool:
    """Parameters Blender holds: all but lists of numbers (orbit positions), which only the command line spells out."""
    kind = leaf.kind
    return typing.get_origin(kind) is not list or typing.get_args(kind)[0] is str


def blender_leaves(cls: type) -> list[Leaf]:
    return [leaf for leaf in params.leaves(cls, from_preferences) if in_blender(leaf)]


def properties(cls: type, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """An operator's (or a panel's) properties for the declared parameters of the request ``cls``, by property name."""
    return {leaf.prop: prop(leaf) for leaf in blender_leaves(cls) if leaf.prop not in exclude}


def values(owner: Any, cls: type) -> dict[str, Any]:
    """The parameter values an operator (or the panel's settings) holds, by field name, ready for ``params.build``."""
    found = {}
    for leaf in blender_leaves(cls):
        if hasattr(owner, leaf.prop):
            value = getattr(owner, leaf.prop)
            if typing.get_origin(leaf.kind) is list and isinstance(value, str):
                value = [bpy.path.abspath(value)] if value else []
            elif leaf.param.path and isinstance(value, str) and value:
                value = bpy.path.abspath(value)
            elif leaf.param.values and isinstance(value, str):
                value = leaf.kind(value)
            elif is_angle(leaf):
                value = float(f"{math.degrees(value):.{_DEGREE_DIGITS}g}")
            found[leaf.name] = value
    return found


def request(owner: Any, cls: type) -> Any:
    return params.build(cls, values(owner, cls))


def assign(target: Any, request: Any, names: tuple[str, ...] = ()) -> None:
    """Put a request's declared values on an operator's properties (``batch.py``, the panel's buttons); ``names``: only these."""
    for leaf in blender_leaves(type(request)):
        if names and leaf.name not in names:
            continue
        value = _value(request, leaf)
        if value is None or not hasattr(target, leaf.prop):
            continue
        setattr(target, leaf.prop, held(leaf, value))


def _value(request: Any, leaf: Leaf) -> Any:
    for part in leaf.path:
        request = getattr(request, part)
    return request


def pass_settings(button: Any, settings: Any, cls: type, prefix: str = "") -> None:
    """Copy the panel's values (``prefix`` + property name) onto an operator button's properties."""
    for leaf in blender_leaves(cls):
        name = prefix + leaf.prop
        if hasattr(settings, name) and hasattr(button, leaf.prop):
            setattr(button, leaf.prop, getattr(settings, name))


def keywords(request: Any) -> dict[str, Any]:
    """A request's declared values as an operator call's keywords (``bpy.ops.diffusion3d.NAME(**keywords(request))``)."""
    found = {}
    for leaf in blender_leaves(type(request)):
        value = _value(request, leaf)
        if value is not None:
            found[leaf.prop] = held(leaf, value)
    return found


def held(leaf: Leaf, value: Any) -> Any:
    """A declared value as its Blender property holds it: a list's one path, one of a few numbers as its text, an angle
    in radians."""
    if typing.get_origin(leaf.kind) is list:
        return value[0] if value else ""
    if is_angle(leaf):
        return math.radians(value)
    return str(value) if leaf.param.values else value
