"""Helpers shared by the Blender tests."""

import bpy

DATA = ("objects", "meshes", "images", "materials", "cameras", "lights", "scenes", "collections", "actions")


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
