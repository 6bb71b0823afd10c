"""Where the Blenders we support differ: 4.5 LTS and 5.2 LTS, the app and the ``bpy`` module.

Each difference is written once here, with its reason; the rest of the add-on
calls these functions and never looks at ``bpy.app.version`` itself. The
tests run on every line in :data:`TESTED`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bpy

#: The Blender lines the test suite runs on (the manifest's minimum is the oldest).
TESTED = ((4, 5), (5, 2))

#: Blender 5.0 moved multilayer EXR and video out of ``file_format`` into a media type chosen first.
_MEDIA_TYPES = {"OPEN_EXR_MULTILAYER": "MULTI_LAYER_IMAGE", "FFMPEG": "VIDEO"}

Setter = Callable[[Any, str, Any], None]


def set_image_format(settings: Any, file_format: str, setter: Setter = setattr) -> None:
    """Choose ``file_format`` on image settings (render output or a file-output node).

    Blender 5.0 added ``media_type`` (image, multilayer image, video): a format
    of another media type is refused until the media type is switched, and
    switching it resets the format. 4.5 has no media type. ``setter`` may be a
    :class:`TemporarySettings`'s ``set`` so everything is put back afterwards.
    """
    for name in ("file_format", "color_mode", "color_depth"):  # a media type or format switch changes these:
        setter(settings, name, getattr(settings, name))  # through the setter first, so their values are put back
    if hasattr(settings, "media_type"):
        setter(settings, "media_type", _MEDIA_TYPES.get(file_format, "IMAGE"))
    setter(settings, "file_format", file_format)


def node_tree(idblock: Any) -> Any:
    """The shader node tree of a material or world.

    4.5 makes it only when ``use_nodes`` is set; 5.x always has one and
    deprecates ``use_nodes`` (removal planned for 6.0), so it is set only where needed.
    """
    if idblock.node_tree is None:
        idblock.use_nodes = True
    return idblock.node_tree


def bundled_site_packages() -> Path | None:
    """The folder of Python packages Blender bundles (OpenImageIO, OpenColorIO, …).

    Blender itself has it on ``sys.path``; the PyPI ``bpy`` module ships it
    inside the wheel but leaves it off. None when it is not there.
    """
    python = Path(bpy.utils.system_resource("PYTHON"))
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for folder in (python / "lib" / version / "site-packages", python / "Lib" / "site-packages"):  # POSIX, Windows
        if folder.is_dir():
            return folder
    return None


def use_bundled_packages() -> None:
    """Make Blender's bundled packages importable (the engine reads images with OpenImageIO).

    Appended, so a package the user installed in this Python still comes first.
    """
    folder = bundled_site_packages()
    if folder is not None and str(folder) not in sys.path:
        sys.path.append(str(folder))


def untested_version() -> str:
    """One warning line when this Blender is not a tested line, else "".

    Blender itself refuses versions below the manifest's minimum; newer ones
    install, and may work, but nobody has run the tests on them.
    """
    if tuple(bpy.app.version[:2]) in TESTED:
        return ""
    tested = " and ".join(f"{major}.{minor} LTS" for major, minor in TESTED)
    return f"Blender {bpy.app.version_string} is untested: Diffusion 3D is tested on {tested}"
