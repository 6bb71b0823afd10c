"""Blender tests: the real ``bpy`` module, the add-on registered from this checkout."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import bpy
import pytest

import batch


@pytest.fixture(scope="session")
def addon() -> Any:
    return batch.load_addon()  # registers this folder as "diffusion3d", whatever it is called


@pytest.fixture(scope="module", autouse=True)
def engine_released_after_each_module(addon: Any) -> Iterator[None]:
    """A module that keeps its engine warm (``warm_engine``) still leaves none behind."""
    yield
    addon.operators.machinery.session.release()


@pytest.fixture(autouse=True)
def fresh_file(addon: Any, request: pytest.FixtureRequest) -> Iterator[None]:
    """An empty file for every test; the engine is released after it unless the test keeps it warm (``warm_engine``)."""
    bpy.ops.wm.read_homefile(use_empty=True)  # keeps the add-on enabled, unlike factory settings
    yield
    if request.node.get_closest_marker("warm_engine") is None:
        addon.operators.machinery.session.release()


@pytest.fixture
def prefs(addon: Any) -> Iterator[Any]:
    """The add-on preferences; whatever a test changes is put back."""
    p = addon.operators.machinery.session.preferences()
    saved = {name: getattr(p, name) for name in p.bl_rna.properties.keys() if name not in ("rna_type", "bl_idname")}
    yield p
    for name, value in saved.items():
        setattr(p, name, value)
