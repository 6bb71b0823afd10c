"""Panels, preferences and the per-scene settings they edit."""

import bpy
from bpy.props import CollectionProperty, PointerProperty

from . import presets, sidebar, thumbnails
from .preferences import Diffusion3DPreferences
from .settings import (
    Diffusion3DDSTSettings,
    Diffusion3DExportSettings,
    Diffusion3DFoundModel,
    Diffusion3DGenerateSettings,
    Diffusion3DSceneSettings,
    Diffusion3DStereoSettings,
    Diffusion3DUpscaleSettings,
    Diffusion3DViewNeTISettings,
    Diffusion3DViewsSettings,
)

classes: tuple[type, ...] = (
    Diffusion3DPreferences,
    Diffusion3DGenerateSettings,
    Diffusion3DUpscaleSettings,
    Diffusion3DExportSettings,
    Diffusion3DStereoSettings,
    Diffusion3DDSTSettings,
    Diffusion3DViewsSettings,
    Diffusion3DViewNeTISettings,
    Diffusion3DSceneSettings,
    Diffusion3DFoundModel,
    *sidebar.classes,
    *presets.classes,
)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    thumbnails.register()
    bpy.types.Scene.diffusion3d = PointerProperty(type=Diffusion3DSceneSettings)
    bpy.types.WindowManager.diffusion3d_models = CollectionProperty(type=Diffusion3DFoundModel)
    bpy.types.WindowManager.diffusion3d_upscalers = CollectionProperty(type=Diffusion3DFoundModel)


def unregister() -> None:
    thumbnails.unregister()
    del bpy.types.WindowManager.diffusion3d_upscalers
    del bpy.types.WindowManager.diffusion3d_models
    del bpy.types.Scene.diffusion3d
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)  # type: ignore[arg-type]
