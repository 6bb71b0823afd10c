"""Blender tests: the real ``bpy`` module, the add-on registered from this checkout."""

from __future__ import annotations

from typing import Any, Iterator

import bpy
import pytest

import batch

DATA = ("objects", "meshes", "images", "materials", "cameras", "collections")


@pytest.fixture(scope="session")
def addon() -> Any:
    return batch.load_addon()  # registers this folder as "diffusion3d", whatever it is called


@pytest.fixture(autouse=True)
def fresh_file(addon: Any) -> Iterator[None]:
    bpy.ops.wm.read_homefile(use_empty=True)  # keeps the add-on enabled, unlike factory settings
    yield
    addon.operators.session.release()


@pytest.fixture
def prefs(addon: Any) -> Iterator[Any]:
    """The add-on preferences; whatever a test changes is put back."""
    p = addon.operators.session.preferences()
    saved = {name: getattr(p, name) for name in p.bl_rna.properties.keys() if name not in ("rna_type", "bl_idname")}
    yield p
    for name, value in saved.items():
        setattr(p, name, value)


def snapshot() -> dict[str, set[str]]:
    """Names of every datablock an operator could leave behind."""
    return {kind: {block.name for block in getattr(bpy.data, kind)} for kind in DATA}


def add_box(name: str, lo: tuple[float, float, float], hi: tuple[float, float, float]) -> bpy.types.Object:
    (x0, y0, z0), (x1, y1, z1) = lo, hi
    verts = [(x, y, z) for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)]
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, [], faces)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj
