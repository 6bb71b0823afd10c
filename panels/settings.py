"""Per-scene panel settings: the values the sidebar's buttons pass to the operators, declared by the jobs' requests."""

from __future__ import annotations

import bpy
from bpy.props import PointerProperty, StringProperty

from ..engine.dst.dataset import DSTAnnotateRequest
from ..engine.dst.filter import KCFRequest
from ..engine.dst.generate import EdgeGenerationRequest
from ..engine.multiview.job import ViewsRequest
from ..engine.viewneti.posed import PosedSetRequest
from ..engine.viewneti.render import RenderViewRequest
from ..engine.viewneti.single_image import ImageViewsRequest
from ..engine.viewneti.train import TrainRequest
from ..engine.world.capture import CaptureRequest
from ..engine.world.export import ExportRequest
from ..engine.world.ldm3d import RGBDRequest
from ..engine.world.stereo_rig import MoveRequest, RigRequest
from ..engine.world.stereo_video import VideoRequest
from ..engine.world.upscale import UpscaleRequest
from ..engine.world.world_sphere import WorldSphereRequest
from ..operators.machinery.declared import properties

#: The prefixes the panels give a job's settings where two jobs share a panel's property group (the DST and ViewNeTI panels).
GEN, KCF, TRAIN, NVS = "gen_", "kcf_", "train_", "nvs_"


def prefixed(prefix: str, cls: type, exclude: tuple[str, ...] = ()) -> dict[str, object]:
    return {prefix + name: prop for name, prop in properties(cls, exclude).items()}


class Diffusion3DGenerateSettings(bpy.types.PropertyGroup):
    __annotations__ = properties(RGBDRequest)


class Diffusion3DUpscaleSettings(bpy.types.PropertyGroup):
    __annotations__ = properties(UpscaleRequest)


class Diffusion3DExportSettings(bpy.types.PropertyGroup):
    __annotations__ = properties(ExportRequest)


class Diffusion3DStereoSettings(bpy.types.PropertyGroup):
    """The Stereo panel's rig, move and video options (each operator takes its own)."""

    __annotations__ = {**properties(RigRequest), **properties(MoveRequest), **properties(VideoRequest)}


class Diffusion3DDSTSettings(bpy.types.PropertyGroup):
    """The 3D-DST panel's options (generation and filter options prefixed; all three share the data set folder)."""

    __annotations__ = {
        **properties(DSTAnnotateRequest),
        **prefixed(GEN, EdgeGenerationRequest, ("dataset_dir",)),
        **prefixed(KCF, KCFRequest, ("dataset_dir",)),
    }


class Diffusion3DViewsSettings(bpy.types.PropertyGroup):
    __annotations__ = properties(ViewsRequest)


class Diffusion3DViewNeTISettings(bpy.types.PropertyGroup):
    """The ViewNeTI panel's options: training views, training (``train_``), generation (``gen_``) and views from an image (``nvs_``)."""

    __annotations__ = {
        **properties(PosedSetRequest),
        **prefixed(TRAIN, TrainRequest),
        **prefixed(GEN, RenderViewRequest),
        **prefixed(NVS, ImageViewsRequest),
    }


class Diffusion3DSceneSettings(bpy.types.PropertyGroup):
    __annotations__ = {
        **properties(CaptureRequest),
        **properties(WorldSphereRequest),
        "generate": PointerProperty(type=Diffusion3DGenerateSettings),
        "upscale": PointerProperty(type=Diffusion3DUpscaleSettings),
        "export": PointerProperty(type=Diffusion3DExportSettings),
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
