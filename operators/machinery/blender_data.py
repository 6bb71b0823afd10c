"""Moving arrays in and out of Blender data in bulk (``foreach_get``/``foreach_set``), and objects evaluated for reading."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ...engine.errors import BadInput
from ...engine.imagefiles import check_image
from . import compat


def image_pixels(image: bpy.types.Image) -> np.ndarray:
    """H×W×4 float32 pixels, top row first (Blender stores them bottom-up)."""
    width, height = image.size
    if width == 0 or height == 0 or not image.has_data and not _try_load(image):
        raise ValueError(f"Could not read image {image.name!r} ({image.filepath or 'no file'})")
    flat = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(flat)
    return flat.reshape(height, width, 4)[::-1]


def _try_load(image: bpy.types.Image) -> bool:
    try:
        image.reload()
    except RuntimeError:
        return False
    width, _height = image.size
    return bool(image.has_data and width)


def load_image(path: str | Path, non_color: bool = False) -> tuple[bpy.types.Image, bool]:
    """Load ``path`` (reusing an image already loaded from it); returns (image, newly_loaded).

    Raises ValueError with a readable reason when the file is missing or unreadable,
    and leaves no image behind in that case.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Image file not found: {path}")
    resolved = str(path.resolve())
    for image in bpy.data.images:
        if image.filepath and Path(bpy.path.abspath(image.filepath)).resolve() == Path(resolved):
            image.reload()
            return image, False
    try:
        check_image(resolved)  # Blender's loader would also print its own line about a damaged file
    except BadInput as exc:
        raise ValueError(str(exc).replace(resolved, str(path))) from None
    try:
        image = bpy.data.images.load(resolved, check_existing=False)
    except RuntimeError as exc:
        raise ValueError(f"Could not read image {path}: {exc}") from None
    if non_color:
        image.colorspace_settings.name = "Non-Color"
    width, height = image.size
    if width == 0 or height == 0:
        bpy.data.images.remove(image)
        raise ValueError(f"Could not read image {path}: unsupported or damaged file")
    return image, True


def mesh_from_arrays(
    name: str,
    vertices: np.ndarray,
    face_starts: np.ndarray,
    corner_verts: np.ndarray,
    corner_uvs: np.ndarray | None = None,
    edge_verts: np.ndarray | None = None,
    corner_edges: np.ndarray | None = None,
) -> bpy.types.Mesh:
    """A new mesh from flat arrays, in bulk; removed again if anything fails.

    Given the edges (each once, and the edge after every face corner) Blender
    need not derive them from the faces, which is most of the time otherwise.
    """
    mesh = bpy.data.meshes.new(name)
    try:
        mesh.vertices.add(len(vertices))
        mesh.loops.add(len(corner_verts))
        mesh.polygons.add(len(face_starts))
        _set_attribute(mesh, "position", "vector", mesh.vertices, "co", vertices, np.float32)
        _set_attribute(mesh, ".corner_vert", "value", mesh.loops, "vertex_index", corner_verts, np.int32)
        mesh.polygons.foreach_set("loop_start", np.ascontiguousarray(face_starts, dtype=np.int32))
        if corner_uvs is not None:
            uv_layer = mesh.uv_layers.new(name="UVMap")
            uv_layer.uv.foreach_set("vector", np.ascontiguousarray(corner_uvs, dtype=np.float32).ravel())
        if edge_verts is not None and corner_edges is not None:
            mesh.edges.add(len(edge_verts))
            _set_attribute(mesh, ".edge_verts", "value", mesh.edges, "vertices", edge_verts, np.int32)
            _set_attribute(mesh, ".corner_edge", "value", mesh.loops, "edge_index", corner_edges, np.int32)
            mesh.update()
        else:
            mesh.update(calc_edges=True)
    except BaseException:
        bpy.data.meshes.remove(mesh)
        raise
    return mesh


def mesh_from_sphere(name: str, sphere: Any) -> bpy.types.Mesh:
    """A new mesh from a world sphere's arrays (the engine's ``SphereMesh`` or ``WorldSphereResult``: the same fields)."""
    s = sphere
    return mesh_from_arrays(name, s.vertices, s.face_starts, s.corner_verts, s.corner_uvs, s.edge_verts, s.corner_edges)


def _set_attribute(
    mesh: bpy.types.Mesh,
    attribute: str,
    field: str,
    fallback: bpy.types.bpy_prop_collection,
    fallback_field: str,
    values: np.ndarray,
    dtype: type,
) -> None:
    """Set a built-in attribute in one copy; older layouts go through the slower RNA collection."""
    flat: np.ndarray = np.ascontiguousarray(values, dtype=dtype).ravel()
    layer = mesh.attributes.get(attribute)
    if layer is not None:
        layer.data.foreach_set(field, flat)
    else:
        fallback.foreach_set(fallback_field, flat)


def packed_image(name: str, pixels: np.ndarray, colorspace: str) -> bpy.types.Image:
    """A new image of ``pixels`` (H×W×3 or ×4 in [0, 1], top row first), packed into the .blend: no file to lose."""
    height, width, channels = pixels.shape
    rgba = np.ones((height, width, 4), np.float32)
    rgba[..., :channels] = pixels
    image = bpy.data.images.new(name, width, height, alpha=channels == 4)
    try:
        image.colorspace_settings.name = colorspace
        image.pixels.foreach_set(np.ascontiguousarray(rgba[::-1]).ravel())  # type: ignore[arg-type]  # any buffer; rows bottom-up
        image.pack()
    except BaseException:
        bpy.data.images.remove(image)
        raise
    return image


def emission_material(name: str, image: bpy.types.Image, alpha: bool = False) -> bpy.types.Material:
    """Unlit material showing ``image`` as is: the panorama seen from the centre (with ``alpha``, its alpha too)."""
    material = bpy.data.materials.new(name)
    material.use_backface_culling = False
    tree = compat.node_tree(material)
    nodes, links = tree.nodes, tree.links
    nodes.clear()
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    texture.extension = "REPEAT"  # the seam's UVs run past u = 1
    texture.interpolation = "Linear"
    texture.location = (-400, 0)
    emission = nodes.new("ShaderNodeEmission")
    emission.location = (-100, 0)
    output = nodes.new("ShaderNodeOutputMaterial")
    output.location = (150, 0)
    links.new(texture.outputs["Color"], emission.inputs["Color"])
    if not alpha:
        links.new(emission.outputs["Emission"], output.inputs["Surface"])
        return material
    mix, clear = nodes.new("ShaderNodeMixShader"), nodes.new("ShaderNodeBsdfTransparent")  # the image's alpha: its fading edge
    mix.location, clear.location, output.location = (150, 0), (-100, 150), (350, 0)
    links.new(texture.outputs["Alpha"], mix.inputs["Fac"])
    links.new(clear.outputs["BSDF"], mix.inputs[1])
    links.new(emission.outputs["Emission"], mix.inputs[2])
    links.new(mix.outputs["Shader"], output.inputs["Surface"])
    return material


@contextmanager
def evaluated(context: bpy.types.Context, objects: list[bpy.types.Object]) -> Iterator[bpy.types.Depsgraph]:
    """A depsgraph with ``objects`` evaluated (modifiers applied, placed): the view layer's when it holds them all.

    Objects outside it (in a collection excluded from the view layer) are not evaluated there; as the user chose
    them, they are evaluated in a scene of the job's own that holds them, removed again afterwards.
    """
    layer = context.view_layer
    if all(obj.name in layer.objects for obj in objects):
        yield context.evaluated_depsgraph_get()
        return
    scene = bpy.data.scenes.new("Diffusion3D Evaluation")
    try:
        for obj in objects:
            scene.collection.objects.link(obj)
        with context.temp_override(scene=scene, view_layer=scene.view_layers[0]):
            depsgraph = bpy.context.evaluated_depsgraph_get()
        yield depsgraph
    finally:
        bpy.data.scenes.remove(scene)


def evaluated_vertices(context: bpy.types.Context, obj: bpy.types.Object, groups: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """The evaluated mesh's vertex positions (N×3, object space), the named vertex groups' weights (N×G) and its face count.

    Blender has no bulk accessor for vertex-group weights. While they are read,
    a Geometry Nodes modifier at the end of the stack stores each group as a
    float point attribute, which ``foreach_get`` reads at once; the modifier
    and its node group are removed again before this returns.
    """
    modifier = _groups_as_attributes(obj, groups) if groups else None
    try:
        with evaluated(context, [obj]) as depsgraph:
            mesh_owner = obj.evaluated_get(depsgraph)
            mesh = mesh_owner.to_mesh()
            try:
                count = len(mesh.vertices)
                co = np.empty(count * 3, np.float64)
                mesh.vertices.foreach_get("co", co)
                weights = np.zeros((len(groups), count), np.float32)
                for g, row in enumerate(weights):
                    mesh.attributes[_GROUP_ATTRIBUTE.format(g)].data.foreach_get("value", row)
                return co.reshape(-1, 3), weights.T, len(mesh.polygons)
            finally:
                mesh_owner.to_mesh_clear()
    finally:
        if modifier is not None:
            tree = modifier.node_group
            obj.modifiers.remove(modifier)
            bpy.data.node_groups.remove(tree)


_GROUP_ATTRIBUTE = "diffusion3d_group_{}"


def _groups_as_attributes(obj: bpy.types.Object, groups: list[str]) -> bpy.types.Modifier:
    tree = bpy.data.node_groups.new("Diffusion3D vertex groups", "GeometryNodeTree")
    try:
        for side in ("INPUT", "OUTPUT"):  # 5.2's stubs list only "DEFAULT" as a socket type; any type name works
            tree.interface.new_socket("Geometry", in_out=side, socket_type="NodeSocketGeometry")  # type: ignore[arg-type]
        geometry = tree.nodes.new("NodeGroupInput").outputs[0]
        for g, name in enumerate(groups):
            read = tree.nodes.new("GeometryNodeInputNamedAttribute")
            read.data_type = "FLOAT"
            read.inputs["Name"].default_value = name
            store = tree.nodes.new("GeometryNodeStoreNamedAttribute")
            store.data_type, store.domain = "FLOAT", "POINT"
            store.inputs["Name"].default_value = _GROUP_ATTRIBUTE.format(g)
            tree.links.new(geometry, store.inputs["Geometry"])
            tree.links.new(read.outputs["Attribute"], store.inputs["Value"])
            geometry = store.outputs["Geometry"]
        tree.links.new(geometry, tree.nodes.new("NodeGroupOutput").inputs[0])
        modifier = obj.modifiers.new("Diffusion3D vertex groups", "NODES")
        modifier.node_group = tree
    except BaseException:
        bpy.data.node_groups.remove(tree)
        raise
    return modifier


def vertex_colour_material(name: str, mesh: bpy.types.Mesh, colours: np.ndarray) -> bpy.types.Material:
    """Per-vertex colours (sRGB values in [0, 1], as images store them) as the mesh's colour attribute, shown by a new material."""
    srgb = np.clip(np.asarray(colours, np.float64), 0, 1)
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)  # float colour attributes are linear
    rgba = np.concatenate([linear, np.ones((len(linear), 1))], axis=1).astype(np.float32)
    attribute = mesh.color_attributes.new("Colour", "FLOAT_COLOR", "POINT")
    attribute.data.foreach_set("color", rgba.ravel())
    material = bpy.data.materials.new(name)
    tree = compat.node_tree(material)
    nodes, links = tree.nodes, tree.links
    shader = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    colour = nodes.new("ShaderNodeVertexColor")
    colour.layer_name, colour.location = "Colour", (-300, 200)
    links.new(colour.outputs["Color"], shader.inputs["Base Color"])
    mesh.materials.append(material)
    return material
