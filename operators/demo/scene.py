"""A small furnished room for the ``demo`` job.

The demo captures an RGBD 360° panorama from :data:`EYE` with an
equirectangular Cycles camera and turns it into a displaced sphere, so the room
is laid out to read well from its centre: every wall holds something at a
different distance (table and window to the north, sofa and rug to the south,
bookshelf and lamp to the east, plant and picture to the west), and it is lit by
large soft sources (ceiling area light, emissive window) that denoise cleanly at
16–32 samples on a CPU.

Everything is built through ``bpy.data`` (no ``bpy.ops``), so it works headless
and from any context. Meshes are plain boxes, cylinders and spheres written with
``from_pydata``; vertices are stored in world coordinates (objects sit at the
origin) so the shell's inner faces lie exactly on :data:`ROOM_MIN` /
:data:`ROOM_MAX` with no float drift from a transform.
"""

from __future__ import annotations

import math
import random

import bpy
import numpy as np

from ..machinery import compat

ROOM_MIN = (-4.0, -3.0, 0.0)  # interior bounds of the room, metres
ROOM_MAX = (4.0, 3.0, 3.0)
EYE = (0.0, 0.0, 1.6)  # where the demo captures from

COLLECTION_NAME = "Demo Room"
_WALL = 0.1  # shell thickness, outside the interior bounds
_Vec = tuple[float, float, float]


# --- materials ---------------------------------------------------------------------------------


def _principled(
    name: str, color: tuple, roughness: float = 0.6, emission: tuple | None = None, strength: float = 0.0
) -> bpy.types.Material:
    """Get or (re)configure a Principled BSDF material with a plain colour."""
    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    nodes = compat.node_tree(mat).nodes
    bsdf = nodes.get("Principled BSDF") or nodes.new("ShaderNodeBsdfPrincipled")
    bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    if emission is not None:
        bsdf.inputs["Emission Color"].default_value = (*emission, 1.0)
        bsdf.inputs["Emission Strength"].default_value = strength
    mat.diffuse_color = (*color, 1.0)  # type: ignore[assignment]  # solid-mode viewport colour (a float array takes a tuple)
    return mat


def _wood_floor() -> bpy.types.Material:
    """Plank floor: a Brick texture in object space (metres) stretched into long boards."""
    mat = _principled("Demo Floor", (0.35, 0.2, 0.1), roughness=0.45)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    coords = nodes.get("Demo Coords") or nodes.new("ShaderNodeTexCoord")
    coords.name = "Demo Coords"
    brick = nodes.get("Demo Planks") or nodes.new("ShaderNodeTexBrick")
    brick.name = "Demo Planks"
    brick.offset, brick.squash = 0.37, 1.0
    brick.inputs["Color1"].default_value = (0.42, 0.24, 0.12, 1.0)
    brick.inputs["Color2"].default_value = (0.3, 0.17, 0.08, 1.0)
    brick.inputs["Mortar"].default_value = (0.12, 0.07, 0.03, 1.0)
    brick.inputs["Scale"].default_value = 1.0
    brick.inputs["Mortar Size"].default_value = 0.006
    brick.inputs["Brick Width"].default_value = 1.6
    brick.inputs["Row Height"].default_value = 0.2
    links.new(coords.outputs["Object"], brick.inputs["Vector"])
    links.new(brick.outputs["Color"], nodes["Principled BSDF"].inputs["Base Color"])
    return mat


# --- meshes ------------------------------------------------------------------------------------


def _object(
    name: str,
    verts: np.ndarray,
    faces: list,
    material: bpy.types.Material,
    collection: bpy.types.Collection,
    smooth: list[bool] | None = None,
) -> bpy.types.Object:
    """Make a mesh object from world-space vertices and link it into ``collection``."""
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(np.asarray(verts, dtype=np.float64).tolist(), [], faces)
    if smooth is not None:
        mesh.polygons.foreach_set("use_smooth", smooth)
    mesh.update()
    mesh.materials.append(material)
    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    return obj


def _box_lohi(name: str, lo: _Vec, hi: _Vec, material, collection) -> bpy.types.Object:
    """Axis-aligned box between corners ``lo`` and ``hi`` (exact, for the shell)."""
    (x0, y0, z0), (x1, y1, z1) = lo, hi
    verts = [(x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0), (x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1)]
    faces = [(0, 3, 2, 1), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7)]
    return _object(name, np.array(verts), faces, material, collection)


def _box(name: str, center: _Vec, size: _Vec, material, collection) -> bpy.types.Object:
    """Axis-aligned box of ``size`` centred on ``center``."""
    c, h = np.array(center), np.array(size) / 2
    return _box_lohi(name, tuple(c - h), tuple(c + h), material, collection)


def _cylinder(
    name: str, base: _Vec, radius: float, height: float, material, collection, top_radius: float | None = None, segments: int = 24
) -> bpy.types.Object:
    """Vertical capped cylinder (or truncated cone) standing on ``base``."""
    a = np.linspace(0, 2 * math.pi, segments, endpoint=False)
    ring = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], axis=1)
    r_top = radius if top_radius is None else top_radius
    verts = np.concatenate([ring * radius, ring * r_top + (0, 0, height)]) + np.array(base)
    n = segments
    sides = [(i, (i + 1) % n, n + (i + 1) % n, n + i) for i in range(n)]
    faces = sides + [tuple(range(n - 1, -1, -1)), tuple(range(n, 2 * n))]
    return _object(name, verts, faces, material, collection, smooth=[True] * n + [False, False])


def _sphere(
    name: str, center: _Vec, radius: float, material, collection, scale: _Vec = (1.0, 1.0, 1.0), segments: int = 16, rings: int = 8
) -> bpy.types.Object:
    """UV sphere (optionally squashed by ``scale``), smooth shaded."""
    verts = [(0.0, 0.0, -1.0)]
    for j in range(1, rings):
        t = math.pi * j / rings - math.pi / 2
        verts += [
            (math.cos(t) * math.cos(p), math.cos(t) * math.sin(p), math.sin(t))
            for p in np.linspace(0, 2 * math.pi, segments, endpoint=False)
        ]
    verts.append((0.0, 0.0, 1.0))
    top, s = len(verts) - 1, segments
    faces = [(0, 1 + (i + 1) % s, 1 + i) for i in range(s)]
    for j in range(rings - 2):
        r0, r1 = 1 + j * s, 1 + (j + 1) * s
        faces += [(r0 + i, r0 + (i + 1) % s, r1 + (i + 1) % s, r1 + i) for i in range(s)]
    last = 1 + (rings - 2) * s
    faces += [(last + i, last + (i + 1) % s, top) for i in range(s)]
    v = np.array(verts) * radius * np.array(scale) + np.array(center)
    return _object(name, v, faces, material, collection, smooth=[True] * len(faces))


# --- furniture ---------------------------------------------------------------------------------


def _table(x: float, y: float, wood, col) -> None:
    """Dining table, 1.4 × 0.8 m, top at 0.76 m."""
    _box("Table Top", (x, y, 0.74), (1.4, 0.8, 0.05), wood, col)
    for i, (dx, dy) in enumerate([(-0.63, -0.33), (0.63, -0.33), (0.63, 0.33), (-0.63, 0.33)]):
        _box(f"Table Leg {i}", (x + dx, y + dy, 0.361), (0.06, 0.06, 0.72), wood, col)


def _chair(name: str, x: float, y: float, facing: float, wood, seat, col) -> None:
    """Chair at (x, y) facing +X (``facing`` = 1) or −X (−1); its back is on the other side."""
    _box(f"{name} Seat", (x, y, 0.46), (0.45, 0.45, 0.05), seat, col)
    for i, (dx, dy) in enumerate([(-0.19, -0.19), (0.19, -0.19), (0.19, 0.19), (-0.19, 0.19)]):
        _box(f"{name} Leg {i}", (x + dx, y + dy, 0.221), (0.04, 0.04, 0.44), wood, col)
    _box(f"{name} Back", (x - facing * 0.2, y, 0.72), (0.05, 0.45, 0.48), wood, col)


def _sofa(x: float, y0: float, fabric, cushion, pillow, col) -> None:
    """Three-seat sofa centred at ``x`` with its back against the wall at ``y0``."""
    _box("Sofa Base", (x, y0 + 0.47, 0.22), (2.2, 0.9, 0.4), fabric, col)
    _box("Sofa Back", (x, y0 + 0.13, 0.62), (2.2, 0.22, 0.5), fabric, col)
    for side in (-1, 1):
        _box(f"Sofa Arm {side:+d}", (x + side * 1.0, y0 + 0.47, 0.55), (0.2, 0.9, 0.26), fabric, col)
    for i, dx in enumerate((-0.6, 0.0, 0.6)):
        _box(f"Sofa Cushion {i}", (x + dx, y0 + 0.55, 0.48), (0.58, 0.66, 0.12), cushion, col)
    for i, dx in enumerate((-0.65, 0.65)):
        _sphere(f"Sofa Pillow {i}", (x + dx, y0 + 0.36, 0.72), 0.2, pillow, col, scale=(1.0, 0.45, 0.9))


def _bookshelf(x1: float, yc: float, wood, book_mats: list, col) -> None:
    """Open bookshelf with its back on the wall at ``x1`` and a seeded row of books per shelf."""
    depth, width, height, t = 0.36, 1.4, 2.0, 0.03
    x0, xc, y0, y1 = x1 - depth, x1 - depth / 2, yc - width / 2, yc + width / 2
    _box_lohi("Shelf Back", (x1 - t, y0, 0.001), (x1, y1, height), wood, col)
    for side, y in (("L", y0), ("R", y1 - t)):
        _box_lohi(f"Shelf Side {side}", (x0, y, 0.001), (x1, y + t, height), wood, col)
    levels = [0.001, 0.5, 1.0, 1.5, height - t]
    for i, z in enumerate(levels):
        _box_lohi(f"Shelf Board {i}", (x0, y0 + t, z), (x1 - t, y1 - t, z + t), wood, col)
    rng = random.Random(7)  # fixed seed: the demo looks the same every run
    for i, z in enumerate(levels[:-1]):
        y, n = y0 + t + 0.02, 0
        while True:
            w, h = rng.uniform(0.03, 0.06), rng.uniform(0.26, 0.42)
            if y + w > y1 - t - 0.02:
                break
            if rng.random() > 0.12:  # leave a few gaps
                n += 1
                _box_lohi(f"Book {i}-{n}", (xc - 0.13, y, z + t), (xc + 0.12, y + w, z + t + h), rng.choice(book_mats), col)
            y += w + 0.004


def _floor_lamp(x: float, y: float, metal, shade, col) -> None:
    """Standing lamp with a glowing shade (a small warm source that reads well in the panorama)."""
    _cylinder("Lamp Base", (x, y, 0.001), 0.18, 0.03, metal, col)
    _cylinder("Lamp Pole", (x, y, 0.03), 0.018, 1.5, metal, col, segments=12)
    _cylinder("Lamp Shade", (x, y, 1.45), 0.26, 0.32, shade, col, top_radius=0.17)


def _plant(x: float, y: float, pot, soil, leaves, col) -> None:
    """Terracotta pot with a cluster of leafy spheres."""
    _cylinder("Plant Pot", (x, y, 0.001), 0.16, 0.42, pot, col, top_radius=0.22)
    _cylinder("Plant Soil", (x, y, 0.38), 0.2, 0.02, soil, col)
    _cylinder("Plant Stem", (x, y, 0.4), 0.02, 0.5, soil, col, segments=8)
    for i, (dx, dy, z, r) in enumerate(
        [(0, 0, 1.05, 0.28), (0.15, 0.1, 0.85, 0.22), (-0.14, 0.12, 0.9, 0.2), (0.05, -0.16, 0.82, 0.21), (-0.08, -0.05, 1.3, 0.18)]
    ):
        _sphere(f"Plant Leaves {i}", (x + dx, y + dy, z), r, leaves, col)


def _wall_box(
    name: str, axis: int, wall: float, u: float, z: float, du: float, dz: float, offset: float, thick: float, material, collection
) -> None:
    """Thin box flat against a wall: ``axis`` 0 for the wall x = ``wall``, 1 for y = ``wall``.

    ``u`` is the centre along the wall, ``offset`` the gap between wall and box.
    """
    d = wall + (-1.0 if wall > 0 else 1.0) * (offset + thick / 2)
    center = (d, u, z) if axis == 0 else (u, d, z)
    size = (thick, du, dz) if axis == 0 else (du, thick, dz)
    _box(name, center, size, material, collection)


def _picture(name: str, axis: int, wall: float, u: float, z: float, w: float, h: float, frame, blocks: list, col) -> None:
    """Framed abstract picture (three coloured panels) hung on a wall, see :func:`_wall_box`."""
    _wall_box(f"{name} Frame", axis, wall, u, z, w, h, 0.005, 0.04, frame, col)
    iw, ih = w - 0.12, h - 0.12  # canvas inside a 6 cm frame border
    rects = [(0.0, 0.45, 0.0, 1.0), (0.47, 1.0, 0.4, 1.0), (0.47, 1.0, 0.0, 0.38)]  # u0, u1, v0, v1
    for i, ((a, b, c, d), mat) in enumerate(zip(rects, blocks)):
        _wall_box(
            f"{name} Canvas {i}",
            axis,
            wall,
            u - iw / 2 + iw * (a + b) / 2,
            z - ih / 2 + ih * (c + d) / 2,
            iw * (b - a),
            ih * (d - c),
            0.045,
            0.005,
            mat,
            col,
        )


def _window(axis: int, wall: float, u: float, z: float, w: float, h: float, glow, frame, col) -> None:
    """Emissive pale-blue 'daylight' panel just in front of a wall, with a frame and a cross."""
    _wall_box("Window Glass", axis, wall, u, z, w, h, 0.005, 0.015, glow, col)
    t = 0.07
    for n, uc, zc, du, dz in (
        ("Top", u, z + (h + t) / 2, w + 2 * t, t),
        ("Bottom", u, z - (h + t) / 2, w + 2 * t, t),
        ("Left", u - (w + t) / 2, z, t, h),
        ("Right", u + (w + t) / 2, z, t, h),
        ("Mullion", u, z, t / 2, h),
        ("Transom", u, z, w, t / 2),
    ):
        _wall_box(f"Window Frame {n}", axis, wall, uc, zc, du, dz, 0.001, 0.06, frame, col)
    _wall_box("Window Sill", axis, wall, u, z - h / 2 - t - 0.015, w + 2 * t + 0.1, 0.03, 0.001, 0.16, frame, col)


# --- scene -------------------------------------------------------------------------------------


def _remove_previous(scene: bpy.types.Scene) -> None:
    """Delete an earlier 'Demo Room' of this scene, so a second call rebuilds instead of stacking."""
    for coll in list(scene.collection.children):
        if coll.name == COLLECTION_NAME or coll.name.startswith(COLLECTION_NAME + "."):
            for obj in list(coll.objects):
                data = obj.data
                bpy.data.objects.remove(obj)
                if isinstance(data, bpy.types.Light) and data.users == 0:
                    bpy.data.lights.remove(data)
                elif isinstance(data, bpy.types.Mesh) and data.users == 0:
                    bpy.data.meshes.remove(data)
            bpy.data.collections.remove(coll)


def build_demo_room(scene: bpy.types.Scene) -> bpy.types.Collection:
    """Add a furnished room to `scene` in a new collection 'Demo Room' and return the collection.

    Leaves render settings and the scene camera alone; creates a dim world only if the
    scene has none (the room is closed, so the world barely shows).
    """
    _remove_previous(scene)
    col = bpy.data.collections.new(COLLECTION_NAME)
    scene.collection.children.link(col)
    m = _principled
    wall_a, wall_b = m("Demo Wall Warm", (0.78, 0.7, 0.58), 0.9), m("Demo Wall Sage", (0.45, 0.56, 0.46), 0.9)
    wood, dark = m("Demo Wood", (0.38, 0.22, 0.11), 0.5), m("Demo Dark Wood", (0.13, 0.08, 0.05), 0.5)
    white = m("Demo White", (0.85, 0.85, 0.82), 0.4)

    # Shell: inner faces exactly on the bounds, thickness outside them.
    (x0, y0, z0), (x1, y1, z1), t = ROOM_MIN, ROOM_MAX, _WALL
    _box_lohi("Floor", (x0 - t, y0 - t, z0 - t), (x1 + t, y1 + t, z0), _wood_floor(), col)
    _box_lohi("Ceiling", (x0 - t, y0 - t, z1), (x1 + t, y1 + t, z1 + t), m("Demo Ceiling", (0.9, 0.9, 0.88), 0.9), col)
    _box_lohi("Wall North", (x0, y1, z0), (x1, y1 + t, z1), wall_a, col)
    _box_lohi("Wall South", (x0, y0 - t, z0), (x1, y0, z1), wall_a, col)
    _box_lohi("Wall East", (x1, y0, z0), (x1 + t, y1, z1), wall_b, col)
    _box_lohi("Wall West", (x0 - t, y0, z0), (x0, y1, z1), wall_b, col)

    # North: daylight window over the table, chairs at both ends.
    _table(0.0, 2.3, wood, col)
    seat = m("Demo Seat", (0.6, 0.15, 0.1), 0.7)
    _chair("Chair A", -1.0, 2.3, 1.0, dark, seat, col)
    _chair("Chair B", 1.0, 2.3, -1.0, dark, seat, col)
    _window(1, y1, 0.0, 1.75, 2.0, 1.3, m("Demo Window", (0.7, 0.85, 1.0), 0.2, emission=(0.6, 0.8, 1.0), strength=2.0), white, col)

    # South: sofa, rug and a low coffee table.
    _sofa(
        0.4,
        y0 + 0.02,
        m("Demo Sofa", (0.18, 0.3, 0.45), 0.85),
        m("Demo Cushion", (0.25, 0.38, 0.55), 0.9),
        m("Demo Pillow", (0.85, 0.55, 0.2), 0.9),
        col,
    )
    _box("Rug Border", (0.4, -1.2, 0.006), (2.8, 1.8, 0.008), m("Demo Rug Border", (0.8, 0.7, 0.5), 1.0), col)
    _box("Rug", (0.4, -1.2, 0.008), (2.5, 1.5, 0.01), m("Demo Rug", (0.45, 0.09, 0.08), 1.0), col)
    _box("Coffee Table", (0.4, -1.25, 0.38), (1.0, 0.55, 0.05), dark, col)
    _box("Coffee Table Base", (0.4, -1.25, 0.18), (0.8, 0.4, 0.35), wood, col)

    # East: bookshelf, a picture and a lamp in the corner by the sofa.
    books = [
        m(f"Demo Book {i}", c, 0.6)
        for i, c in enumerate(
            [(0.6, 0.1, 0.08), (0.1, 0.3, 0.6), (0.15, 0.45, 0.2), (0.8, 0.6, 0.15), (0.85, 0.82, 0.75), (0.3, 0.15, 0.4)]
        )
    ]
    _bookshelf(x1 - 0.02, 1.2, wood, books, col)
    _picture(
        "Picture East",
        0,
        x1,
        -1.0,
        1.65,
        1.1,
        0.7,
        white,
        [m("Demo Art Teal", (0.1, 0.45, 0.45), 0.6), m("Demo Art Coral", (0.9, 0.4, 0.3), 0.6), m("Demo Art Cream", (0.9, 0.85, 0.7), 0.6)],
        col,
    )
    _floor_lamp(
        3.35,
        -2.35,
        m("Demo Metal", (0.1, 0.1, 0.1), 0.3),
        m("Demo Lamp Shade", (0.95, 0.85, 0.65), 0.8, emission=(1.0, 0.75, 0.45), strength=4.0),
        col,
    )

    # West (the panorama's seam): a picture off the seam and a plant in the corner.
    _picture(
        "Picture West",
        0,
        x0,
        1.7,
        1.7,
        1.0,
        0.75,
        dark,
        [
            m("Demo Art Blue", (0.1, 0.25, 0.55), 0.6),
            m("Demo Art Yellow", (0.85, 0.65, 0.15), 0.6),
            m("Demo Art Red", (0.7, 0.15, 0.1), 0.6),
        ],
        col,
    )
    _plant(
        -3.45,
        -2.45,
        m("Demo Terracotta", (0.6, 0.28, 0.15), 0.8),
        m("Demo Soil", (0.1, 0.07, 0.05), 1.0),
        m("Demo Leaves", (0.12, 0.4, 0.12), 0.7),
        col,
    )

    # Lights: one big soft ceiling panel (visible fixture + area light just below it).
    _box(
        "Ceiling Panel",
        (0.0, 0.0, z1 - 0.015),
        (1.8, 1.2, 0.02),
        m("Demo Ceiling Panel", (1.0, 1.0, 1.0), 0.5, emission=(1.0, 0.95, 0.88), strength=1.5),
        col,
    )
    light = bpy.data.lights.new("Demo Ceiling Light", type="AREA")
    light.shape, light.size, light.size_y = "RECTANGLE", 1.8, 1.2
    light.energy, light.color = 120.0, (1.0, 0.95, 0.88)
    lamp = bpy.data.objects.new("Demo Ceiling Light", light)
    lamp.location = (0.0, 0.0, z1 - 0.03)  # area lights shine down −Z by default
    col.objects.link(lamp)

    if scene.world is None:
        scene.world = bpy.data.worlds.new("Demo World")
        bg = compat.node_tree(scene.world).nodes.get("Background")
        if bg is not None:
            bg.inputs["Color"].default_value = (0.05, 0.06, 0.08, 1.0)
            bg.inputs["Strength"].default_value = 0.5
        scene.world.color = (0.05, 0.06, 0.08)
    return col
