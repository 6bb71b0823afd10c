"""The add-on's one engine client, configured from the preferences.

Every operator gets its client here, so the choice between in-process and
subprocess engine, and the environment the worker sees (model folders,
offline mode), is made in one place.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bpy

from ...engine import interrupts
from ...engine.client import EngineClient, make_client
from ...engine.diffusion.sources import ModelAccess
from ...engine.errors import BadInput
from . import compat

ADDON = __package__.removesuffix(".operators.machinery")  # the add-on's own name (an extension's is "bl_ext.<repo>.<id>")

_client: EngineClient | None = None
_blender_client: EngineClient | None = None
_client_key: tuple[str, ...] = ()


def preferences(context: bpy.types.Context | None = None) -> Any:
    """The add-on preferences, or None when the add-on is not registered as such."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON)
    return addon.preferences if addon is not None else None


def worker_python(prefs: Any) -> str:
    """The interpreter for subprocess mode: the user's choice, else Blender's own."""
    path = bpy.path.abspath(prefs.python_path) if prefs is not None and prefs.python_path else ""
    return path or sys.executable


def worker_env(prefs: Any) -> dict[str, str]:
    """Environment for the engine: where models are, and whether it may go online."""
    env: dict[str, str] = {}
    online = bool(prefs is not None and prefs.allow_downloads and bpy.app.online_access)
    if not online:
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_OFFLINE"] = "1"
    if prefs is not None and prefs.hf_cache_dir:
        env["HF_HOME"] = bpy.path.abspath(prefs.hf_cache_dir)
    if prefs is not None and prefs.models_dir:
        env["DIFFUSION3D_MODELS"] = bpy.path.abspath(prefs.models_dir)
    return env


def model_access(prefs: Any) -> ModelAccess:
    """Where models are, what the engine may do to get them, and where they run: the part every model request holds."""
    if prefs is None:
        return ModelAccess()
    return ModelAccess(
        models_dir=bpy.path.abspath(prefs.models_dir) if prefs.models_dir else "",
        cache_dir=bpy.path.abspath(prefs.hf_cache_dir) if prefs.hf_cache_dir else "",
        allow_download=bool(prefs.allow_downloads and bpy.app.online_access),
        allow_pickle=bool(prefs.allow_pickle),
        device=prefs.device,
        precision=prefs.precision,
    )


def client(context: bpy.types.Context | None = None) -> EngineClient:
    """The shared client; rebuilt (and the old engine released) when the settings change."""
    global _client, _client_key
    prefs = preferences(context)
    mode = prefs.engine_mode if prefs is not None else "IN_PROCESS"
    env = worker_env(prefs)
    python = worker_python(prefs) if mode == "SUBPROCESS" else ""
    bundled = compat.bundled_site_packages()
    if python == sys.executable and bundled is not None:  # Blender's own Python as the worker: its OpenImageIO too
        env["PYTHONPATH"] = str(bundled)
    key = (mode, python, *sorted(f"{k}={v}" for k, v in env.items()))
    if _client is None or key != _client_key:
        if _client is not None:
            _client.release()
        if mode == "IN_PROCESS":
            os.environ.update(env)  # in-process jobs read the same variables
        _client, _client_key = make_client(mode, python, env), key
    return _client


def use_model_options(access: ModelAccess | None, python: str = "") -> None:
    """The preferences a model job reads, from ``batch.py``'s options (this session only): the model access, the engine's Python."""
    prefs = preferences()
    if access is not None:
        prefs.models_dir, prefs.hf_cache_dir = access.models_dir, access.cache_dir
        prefs.device, prefs.precision = access.device, access.precision
        prefs.allow_downloads, prefs.allow_pickle = access.allow_download, access.allow_pickle
    if python:
        prefs.engine_mode, prefs.python_path = "SUBPROCESS", str(Path(python).expanduser().absolute())


def release() -> None:
    """Stop the worker / drop cached models. Safe to call any time."""
    global _client, _client_key
    if _client is not None:
        _client.release()
    _client, _client_key = None, ()


def blender_client() -> EngineClient:
    """The engine in Blender's own Python whatever the preferences say: for the job that makes the engine Python
    (its pip runs in the new environment, never in Blender's)."""
    global _blender_client
    if _blender_client is None:
        _blender_client = make_client("IN_PROCESS", "", {})
    return _blender_client


def engine_folder() -> Path:
    """Where Set Up Engine makes the managed engine: ``engine`` in the extension's user data folder."""
    try:
        return Path(bpy.utils.extension_path_user(ADDON, path="engine"))
    except (ValueError, RuntimeError):  # not installed as an extension (e.g. tests, batch)
        return Path.home() / "Diffusion3D" / "engine"


def started() -> bool:
    """Whether there is an engine to release (a client made since the last release)."""
    return _client is not None


def status() -> str:
    return _client.status() if _client is not None else "Not started"


def output_folder(chosen: str, kind: str) -> Path:
    """The folder the user chose, else a new time-stamped one under the default output folder."""
    if chosen:
        return Path(bpy.path.abspath(chosen))
    return default_output_dir(kind + "s") / time.strftime(f"{kind}-%Y%m%d-%H%M%S")


def default_output_dir(kind: str) -> Path:
    """``//diffusion3d/<kind>`` next to a saved .blend, else the extension's user folder."""
    prefs = preferences()
    if prefs is not None and prefs.output_dir:
        return Path(bpy.path.abspath(prefs.output_dir)) / kind
    if bpy.data.filepath:
        return Path(bpy.data.filepath).parent / "diffusion3d" / kind
    try:
        return Path(bpy.utils.extension_path_user(ADDON, path=kind, create=True))
    except (ValueError, RuntimeError):  # not installed as an extension (e.g. tests, batch)
        return Path.home() / "Diffusion3D" / kind


def new_scratch(prefix: str) -> Path:
    """A private folder for a job's intermediate files; removed by :func:`remove_scratch`, or if a signal stops the process."""
    return interrupts.remove_on_stop(Path(tempfile.mkdtemp(prefix=f"diffusion3d-{prefix}-")))


def remove_scratch(folder: Path | None) -> None:
    """Remove a job's scratch folder and what is in it (nothing if it is gone or was never made)."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        interrupts.forget(folder)


def make_output_folder(folder: Path) -> Path | None:
    """Make a job's output folder; the folder if this made it (the job removes it if it stays empty; so does a signal)."""
    made = None if folder.exists() else folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"Cannot write to {folder}: {exc.strerror or exc}") from None
    if made is not None:
        interrupts.on_stop(made, lambda: remove_if_empty(made))
    return made


def remove_if_empty(folder: Path | None) -> None:
    """Remove an output folder the job made, if nothing was written into it."""
    if folder is not None and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    if folder is not None:
        interrupts.forget(folder)
