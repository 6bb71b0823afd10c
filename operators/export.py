"""``diffusion3d.export_world``: a world sphere (or a mesh, such as the object views' quick mesh) → glTF/GLB, USD or splats.

The engine's ``export_world`` job writes the splats, or gives the world sphere made coarser for a target face count.
Blender's own exporters write the mesh formats, from a scene of the export's own that holds a copy of the object with
an unlit material (glTF: ``KHR_materials_unlit``; USD: an emissive preview surface, black otherwise) and the stereo rig
with its camera path. They write into a scratch folder, and the files move into place together, or none do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import addon_utils
import bpy
import numpy as np

from ..engine.imagefiles import NewFiles
from ..engine.world import export as exportlib
from ..engine.world.export import ExportRequest, ExportResult, SphereGrid
from ..engine.world.splats import READING, SplatRequest
from ..engine.world.world_sphere import WorldSphereRequest
from .machinery import compat, declared, session
from .machinery.blender_data import mesh_from_sphere
from .machinery.job import EngineJobOperator, UserError
from .machinery.settings_restore import TemporarySettings
from .stereo_rig import LAYER_KEY, WORLD_KEY, find_sphere, rig_camera, stereo_rigs

TEXTURES = "textures"  # the folder beside a .gltf or .usdc that holds its texture


class DIFFUSION3D_OT_export_world(EngineJobOperator, bpy.types.Operator):
    """Export the world sphere (or the active mesh) as glTF/GLB or USD for viewers, engines and headsets, or as Gaussian splats"""

    bl_idname = "diffusion3d.export_world"
    bl_label = "Export World"
    bl_options = {"REGISTER"}
    job = "export_world"
    job_label = "Exporting"
    __annotations__ = declared.properties(ExportRequest)

    _object: bpy.types.Object | None = None

    @classmethod
    def unavailable(cls, context: bpy.types.Context) -> str:
        """Only a mesh of the scene exports (named, active, or its world sphere): a scene with none cannot."""
        has_mesh = any(o.type == "MESH" for o in context.scene.objects)
        return "" if has_mesh else "Nothing to export: the scene has no mesh (build a world sphere first)"

    def read(self, context: bpy.types.Context, request: ExportRequest) -> ExportRequest:
        obj = self._object = self._chosen(context, request.object_name)
        chosen = request.chosen
        world = obj.get(WORLD_KEY)
        if chosen == exportlib.SPLAT_PLY:
            return dataclasses.replace(request, splats=self._splat_sources(obj, world))
        exporter_missing(chosen)
        faces = len(obj.data.polygons)
        if request.target_faces > faces:
            raise UserError(f"Target Faces {request.target_faces:,}: above {obj.name}'s {faces:,} faces (0 exports them all)")
        if not request.target_faces or request.target_faces == faces:
            return request
        if world is None:
            raise UserError(
                f"{obj.name} is not a world sphere: only a world sphere's grid can be made coarser (Target Faces 0 exports it whole)"
            )
        rows, cols = world["grid"]
        vertices = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
        obj.data.vertices.foreach_get("co", vertices)
        grid = SphereGrid(vertices.reshape(-1, 3), int(rows), int(cols), float(world.get("discontinuity", 0.0)))
        return dataclasses.replace(request, grid=grid)

    @staticmethod
    def _chosen(context: bpy.types.Context, name: str) -> bpy.types.Object:
        """The named object, else the active mesh, else the scene's one world sphere."""
        if name:
            obj = context.scene.objects.get(name)
            if obj is None:
                raise UserError(f"No object named {name!r} in scene {context.scene.name!r}")
        else:
            active = context.view_layer.objects.active
            obj = active if active is not None and active.type == "MESH" else find_sphere(context, "")
            if obj is None:
                raise UserError("Nothing to export: select a world sphere or a mesh, or name it")
        if obj.type != "MESH":
            raise UserError(f"{obj.name} is a {obj.type.lower()}, not a mesh: select a world sphere or a mesh")
        return obj

    @staticmethod
    def _splat_sources(obj: bpy.types.Object, world: Any) -> SplatRequest:
        """The world's panoramas as files, and how its depth was read."""
        if world is None:
            raise UserError(f"{obj.name} is not a world sphere: splats are made from a world's RGB and depth panoramas")
        paths = {}
        for key, what in (("rgb", "RGB"), ("depth", "depth")):
            source = str(world.get(key, ""))
            image = bpy.data.images.get(source)
            path = bpy.path.abspath(image.filepath) if image is not None and image.filepath else source
            if not path or not Path(path).is_file() or image is not None and (image.is_dirty or image.packed_file is not None):
                raise UserError(
                    f"Splats need {obj.name}'s {what} panorama as a file, and {source or 'it'!r} is not one: save the image, "
                    "or make the splats from the files (batch.py splats --rgb RGB --depth DEPTH --out FILE.ply)"
                )
            paths[key] = path
        reading = dict(world.get("reading", {}).to_dict() if "reading" in world else {})
        defaults = {name: getattr(WorldSphereRequest(), name) for name in READING}
        return SplatRequest(rgb_path=paths["rgb"], depth_path=paths["depth"], **{**defaults, **reading, "depth_mode": world["depth_mode"]})

    def finish(self, context: bpy.types.Context, result: ExportResult) -> dict[str, Any]:
        obj = self._object
        assert obj is not None
        if result.format == exportlib.SPLAT_PLY:
            self.report({"INFO"}, f"Wrote {result.splat_count:,} Gaussian splats of {obj.name} to {result.path}")
            return {"paths": {"export": result.path}, "format": result.format, "splats": result.splat_count}
        target = Path(bpy.path.abspath(self.filepath)).resolve()
        scratch = session.new_scratch("export")
        try:
            with export_scene(context, obj, result, self.camera_path, result.format) as (scene, faces):
                write_with_blender(scene, result.format, scratch / target.name)
            written = sorted(p for p in scratch.rglob("*") if p.is_file())
            with NewFiles([target.parent / p.relative_to(scratch) for p in written], self.overwrite) as files:
                for path in written:
                    (target.parent / path.relative_to(scratch)).parent.mkdir(exist_ok=True)
                    files.copy(target.parent / path.relative_to(scratch), path)
        finally:
            session.remove_scratch(scratch)
        coarser = f", grid step {result.grid_step}" if result.mesh is not None else ""
        self.report({"INFO"}, f"Exported {obj.name} ({faces:,} faces{coarser}) to {target}")
        return {"paths": {"export": str(target)}, "format": result.format, "faces": faces, "grid_step": result.grid_step}


def exporter_missing(chosen: str) -> None:
    """Refuse a format whose exporter this Blender lacks, naming it."""
    if chosen in (exportlib.GLB, exportlib.GLTF):
        if "gltf" not in dir(bpy.ops.export_scene):  # a core add-on, on by default; enabled for this session only
            addon_utils.enable("io_scene_gltf2", default_set=False)
        if "gltf" not in dir(bpy.ops.export_scene):
            raise UserError("This Blender has no glTF exporter (the io_scene_gltf2 add-on): enable or reinstall it, or export as USD")
    elif not getattr(bpy.app.build_options, "usd", False):
        raise UserError("This Blender was built without USD: export as glTF (.glb) instead")


@contextmanager
def export_scene(
    context: bpy.types.Context, obj: bpy.types.Object, result: ExportResult, camera_path: bool, chosen: str
) -> Iterator[tuple[bpy.types.Scene, int]]:
    """A scene of the export's own holding ``obj`` and the stereo rig (linked, so their names stay theirs), shown as the
    exported file shows them: the coarser mesh (if made), an unlit material, a perspective camera; all put back after."""
    user = context.scene
    assert user is not None
    made: list[tuple[Any, Any]] = []
    shown = [obj, *(child for child in obj.children if child.get(LAYER_KEY) and child.type == "MESH")]  # a layered world's layers too
    materials = {o.name: list(o.data.materials) for o in shown}  # the user's meshes', put back after
    with TemporarySettings() as temp:
        try:
            scene = bpy.data.scenes.new("Diffusion3D Export")
            made.append((bpy.data.scenes, scene))
            if result.mesh is not None:
                mesh = mesh_from_sphere(obj.data.name, result.mesh)
                made.append((bpy.data.meshes, mesh))
                for material in materials[obj.name]:
                    mesh.materials.append(material)
                temp.set(obj, "data", mesh)
            for one in shown:
                image = _texture(one)
                if image is None:
                    continue
                unlit = unlit_material(one.name, image, for_usd=chosen in (exportlib.USDZ, exportlib.USDC), alpha=one is not obj)
                made.append((bpy.data.materials, unlit))
                for index in range(len(one.data.materials)):
                    one.data.materials[index] = unlit
                if one is not obj:
                    scene.collection.objects.link(one)
            scene.collection.objects.link(obj)
            for name in ("fps", "fps_base"):
                setattr(scene.render, name, getattr(user.render, name))
            scene.frame_start, scene.frame_end = user.frame_start, user.frame_end
            scene.unit_settings.scale_length = user.unit_settings.scale_length
            for rig in stereo_rigs(user) if camera_path else ():
                camera = rig_camera(rig)
                scene.collection.objects.link(rig)
                scene.collection.objects.link(camera)
                temp.set(camera.data, "type", "PERSP")  # a viewer's camera: the formats have no panoramic one
                scene.camera = camera
            yield scene, len(obj.data.polygons)
        finally:
            temp.restore()  # first: the objects get their meshes and materials back before what was made is removed
            for one in shown:
                for index, material in enumerate(materials[one.name]):
                    if index < len(one.data.materials) and one.data.materials[index] != material:
                        one.data.materials[index] = material
            for store, block in reversed(made):
                store.remove(block)


def _texture(obj: bpy.types.Object) -> bpy.types.Image | None:
    """The image the object's material shows (a world sphere's panorama), if any."""
    for slot in obj.material_slots:
        tree = compat.node_tree(slot.material) if slot.material is not None else None
        for node in tree.nodes if tree is not None else ():
            if node.type == "TEX_IMAGE" and node.image is not None:
                return node.image  # type: ignore[no-any-return]
    return None


def unlit_material(name: str, image: bpy.types.Image, for_usd: bool, alpha: bool = False) -> bpy.types.Material:
    """``image`` shown as is (with ``alpha``, its alpha too: a layer's fading edge). glTF's exporter writes
    ``KHR_materials_unlit`` for emission seen by camera rays only, mixed with transparency by the alpha; USD has no
    unlit surface: a preview surface whose emission is the image, its base colour black, its opacity the alpha."""
    material = bpy.data.materials.new(f"{name} Unlit")
    material.use_backface_culling = False
    tree = compat.node_tree(material)
    nodes, links = tree.nodes, tree.links
    nodes.clear()
    texture = nodes.new("ShaderNodeTexImage")
    texture.image, texture.extension = image, "REPEAT"
    output = nodes.new("ShaderNodeOutputMaterial")
    if for_usd:
        surface = nodes.new("ShaderNodeBsdfPrincipled")
        surface.inputs["Base Color"].default_value = (0.0, 0.0, 0.0, 1.0)
        surface.inputs["Emission Strength"].default_value = 1.0
        links.new(texture.outputs["Color"], surface.inputs["Emission Color"])
        if alpha:
            links.new(texture.outputs["Alpha"], surface.inputs["Alpha"])
        links.new(surface.outputs["BSDF"], output.inputs["Surface"])
        return material
    emission, camera_only, light_path = nodes.new("ShaderNodeEmission"), nodes.new("ShaderNodeMixShader"), nodes.new("ShaderNodeLightPath")
    links.new(texture.outputs["Color"], emission.inputs["Color"])
    links.new(light_path.outputs["Is Camera Ray"], camera_only.inputs["Fac"])
    links.new(emission.outputs["Emission"], camera_only.inputs[2])
    surface = camera_only
    if alpha:
        surface, clear = nodes.new("ShaderNodeMixShader"), nodes.new("ShaderNodeBsdfTransparent")
        links.new(texture.outputs["Alpha"], surface.inputs["Fac"])
        links.new(clear.outputs["BSDF"], surface.inputs[1])
        links.new(camera_only.outputs["Shader"], surface.inputs[2])
    links.new(surface.outputs["Shader"], output.inputs["Surface"])
    return material


def write_with_blender(scene: bpy.types.Scene, chosen: str, path: Path) -> None:
    """``scene`` through Blender's exporter for ``chosen``, into ``path`` (textures into a folder beside it)."""
    windows = bpy.context.window_manager.windows
    window = bpy.context.window or (windows[0] if windows else None)
    if window is None:
        raise UserError("Blender has no window to export from")
    animated = scene.camera is not None
    user_scene = window.scene  # the exporters read the window's scene (glTF's sets it, and sets it back to what it read)
    window.scene = scene
    try:
        with bpy.context.temp_override(window=window, scene=scene, view_layer=scene.view_layers[0]):
            _export(chosen, path, animated)
    finally:
        window.scene = user_scene
    if not path.is_file():
        raise UserError(f"Blender's {chosen} exporter wrote nothing to {path.name}")


def _export(chosen: str, path: Path, animated: bool) -> None:
    """Blender's exporter for ``chosen``, in the context of ``scene``."""
    if chosen in (exportlib.GLB, exportlib.GLTF):
        result: Any = bpy.ops.export_scene.gltf(
            filepath=str(path),
            check_existing=False,
            export_format="GLB" if chosen == exportlib.GLB else "GLTF_SEPARATE",
            export_texture_dir=TEXTURES,
            use_active_scene=True,
            export_cameras=True,
            export_lights=False,
            use_renderable=True,  # leaves out what is not rendered: a rig's safe-radius sphere (parented, so traversed)
            export_extras=False,
            export_yup=True,
            export_apply=False,
            export_animations=animated,
            export_image_format="AUTO",
            will_save_settings=False,
        )
    else:
        result = bpy.ops.wm.usd_export(  # bpy.ops returns a set of words
            filepath=str(path),
            check_existing=False,
            selected_objects_only=False,
            export_animation=animated,
            export_materials=True,
            generate_preview_surface=True,
            export_textures_mode="NEW",
            relative_paths=True,
            export_cameras=True,
            author_blender_name=False,
        )
    if "FINISHED" not in result:
        raise UserError(f"Blender's {chosen} exporter did not finish ({', '.join(result)})")
