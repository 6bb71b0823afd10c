"""Per-scene panel settings: the values the sidebar's buttons pass to the operators."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import PointerProperty, StringProperty

from ..operators.capture import CAPTURE_OPTIONS
from ..operators.dst.dataset import DST_OPTIONS
from ..operators.dst.filter import FILTER_OPTIONS
from ..operators.dst.generate import GENERATE_EDGES_OPTIONS
from ..operators.ldm3d import GENERATE_OPTIONS
from ..operators.multiview import VIEWS_OPTIONS
from ..operators.stereo_rig import ANIMATE_OPTIONS, RIG_OPTIONS
from ..operators.stereo_video import VIDEO_OPTIONS
from ..operators.upscale import UPSCALE_OPTIONS
from ..operators.viewneti import GENERATE_VIEW_OPTIONS, IMAGE_VIEWS_OPTIONS, TRAIN_OPTIONS, TRAINING_VIEWS_OPTIONS
from ..operators.world_sphere import SPHERE_OPTIONS


class Diffusion3DGenerateSettings(bpy.types.PropertyGroup):
    __annotations__ = dict(GENERATE_OPTIONS)


class Diffusion3DUpscaleSettings(bpy.types.PropertyGroup):
    __annotations__ = dict(UPSCALE_OPTIONS)


class Diffusion3DStereoSettings(bpy.types.PropertyGroup):
    """The Stereo panel's rig, move and video options (each operator takes its own subset)."""

    __annotations__ = {**RIG_OPTIONS, **ANIMATE_OPTIONS, **VIDEO_OPTIONS}


class Diffusion3DDSTSettings(bpy.types.PropertyGroup):
    """The 3D-DST panel's options (generation and filter options prefixed, where names repeat)."""

    __annotations__ = {
        **DST_OPTIONS,
        **{f"gen_{k}": v for k, v in GENERATE_EDGES_OPTIONS.items() if k != "dataset_dir"},
        **{f"kcf_{k}": v for k, v in FILTER_OPTIONS.items() if k != "dataset_dir"},
    }


class Diffusion3DViewsSettings(bpy.types.PropertyGroup):
    __annotations__ = dict(VIEWS_OPTIONS)


class Diffusion3DViewNeTISettings(bpy.types.PropertyGroup):
    """The ViewNeTI panel's options: training views, training (``train_``) and generation (``gen_``)."""

    __annotations__ = {
        **TRAINING_VIEWS_OPTIONS,
        **{f"train_{k}": v for k, v in TRAIN_OPTIONS.items()},
        **{f"gen_{k}": v for k, v in GENERATE_VIEW_OPTIONS.items()},
        **{f"nvs_{k}": v for k, v in IMAGE_VIEWS_OPTIONS.items()},
    }


class Diffusion3DSceneSettings(bpy.types.PropertyGroup):
    __annotations__ = {
        **CAPTURE_OPTIONS,
        **SPHERE_OPTIONS,
        "generate": PointerProperty(type=Diffusion3DGenerateSettings),
        "upscale": PointerProperty(type=Diffusion3DUpscaleSettings),
        "stereo": PointerProperty(type=Diffusion3DStereoSettings),
        "dst": PointerProperty(type=Diffusion3DDSTSettings),
        "views": PointerProperty(type=Diffusion3DViewsSettings),
        "viewneti": PointerProperty(type=Diffusion3DViewNeTISettings),
        "last_capture": StringProperty(name="Last Capture", subtype="DIR_PATH", default=""),
        "last_generation": StringProperty(name="Last Generation", subtype="DIR_PATH", default=""),
    }


class Diffusion3DFoundModel(bpy.types.PropertyGroup):
    """One entry of the model picker (``name`` is what the Model field takes)."""

    __annotations__ = {"label": StringProperty(), "kind": StringProperty()}


def pass_options(operator: Any, settings: Any, options: dict[str, Any]) -> None:
    """Copy the panel's values onto an operator button's properties."""
    for name in options:
        setattr(operator, name, getattr(settings, name))
