"""Per-scene panel settings: the values the sidebar's buttons pass to the operators."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import StringProperty

from ..operators.capture import CAPTURE_OPTIONS
from ..operators.world_sphere import SPHERE_OPTIONS


class Diffusion3DSceneSettings(bpy.types.PropertyGroup):
    __annotations__ = {
        **CAPTURE_OPTIONS,
        **SPHERE_OPTIONS,
        "last_capture": StringProperty(name="Last Capture", subtype="DIR_PATH", default=""),
    }


def pass_options(operator: Any, settings: Any, options: dict[str, Any]) -> None:
    """Copy the panel's values onto an operator button's properties."""
    for name in options:
        setattr(operator, name, getattr(settings, name))
