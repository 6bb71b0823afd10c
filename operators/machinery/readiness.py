"""Whether a model job can run as things stand, and the button that fixes it, for the panel to say so where the job's
button is: a first run that works, not an error after pressing Generate. Cheap enough for every redraw: file checks
only (the engine is not started, no model is read)."""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import bpy

from ...engine.diffusion.sources import find_local
from ...engine.errors import BadInput
from . import session


@dataclass(frozen=True)
class Fix:
    operator: str  # its idname
    text: str
    icon: str


@dataclass(frozen=True)
class Blocker:
    """Why a model job cannot run now, and what fixes it."""

    text: str
    fixes: tuple[Fix, ...]


SET_UP_ENGINE = Fix("diffusion3d.setup_engine", "Set Up Engine", "IMPORT")
MODELS_FOLDER = Fix("diffusion3d.show_preferences", "Choose Models Folder", "FILE_FOLDER")
ALLOW_DOWNLOADS = Fix("diffusion3d.allow_downloads", "Allow Downloads", "URL")
ONLINE_ACCESS = Fix("diffusion3d.show_preferences", "Preferences", "PREFERENCES")


@functools.cache
def _torch_here() -> bool:
    """Whether Blender's own Python has torch (asked once: installing it needs a restart anyway)."""
    return importlib.util.find_spec("torch") is not None


def model_job_blocker(context: bpy.types.Context, model: str) -> Blocker | None:
    """What stops a model job on ``model`` now (no engine Python with torch; the model neither here nor downloadable),
    or None."""
    prefs = session.preferences(context)
    if prefs is None:
        return None
    if prefs.engine_mode == "IN_PROCESS" and not _torch_here():
        return Blocker("Model jobs need an engine Python with torch", (SET_UP_ENGINE,))
    if prefs.engine_mode == "SUBPROCESS" and prefs.python_path and not Path(bpy.path.abspath(prefs.python_path)).is_file():
        return Blocker("The engine's Python is missing", (SET_UP_ENGINE,))
    access = session.model_access(prefs)
    try:
        here = find_local(model, access.models_dir, access.cache_dir) is not None
    except BadInput:  # no model named: the job's own check says so
        return None
    if here or access.allow_download:
        return None
    if prefs.allow_downloads:  # allowed, but Blender's online access is off
        return Blocker(f"{model} is not on this machine and Blender's online access is off", (ONLINE_ACCESS,))
    return Blocker(f"{model} is not on this machine", (MODELS_FOLDER, ALLOW_DOWNLOADS))
