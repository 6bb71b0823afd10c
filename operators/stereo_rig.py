"""``diffusion3d.add_stereo_rig`` and ``diffusion3d.animate_rig``: a stereo viewpoint that moves inside a world sphere.

The rig is an empty (the handle the moves animate) with one stereo camera
under it, looking along the handle's +X like the capture did, and a sphere
empty showing how far the handle may move (:func:`safe_radius_sphere`). Its settings
live on the handle as the ``diffusion3d_rig`` custom property, with the
sphere's safe radius (computed by the engine from the depth the sphere was
built from), so a later move or render needs nothing else.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np
from mathutils import Vector

from ..engine.world import camera_moves, equirect, parallax
from ..engine.world.stereo_rig import SPHERICAL, MoveRequest, RigRequest
from .machinery import declared
from .machinery.job import DeclaredOperator, UserError

RIG_KEY, WORLD_KEY = "diffusion3d_rig", "diffusion3d_world"
LAYER_KEY = "diffusion3d_layer"  # a layered world's foreground layer (its number), parented to the world sphere
#: Safe radius of a rig placed without a sphere (scene units × scene scale).
DEFAULT_SAFE_RADIUS = 0.5
MOVE_ACTION = "Diffusion3D Move"


def world_spheres(scene: bpy.types.Scene) -> list[bpy.types.Object]:
    return [o for o in scene.objects if o.get(WORLD_KEY) is not None]


def find_sphere(context: bpy.types.Context, name: str) -> bpy.types.Object | None:
    """The named world sphere, else the active one, else the only one in the scene."""
    if name:
        obj = context.scene.objects.get(name)
        if obj is None or obj.get(WORLD_KEY) is None:
            raise UserError(f"No world sphere named {name!r} in scene {context.scene.name!r}")
        return obj
    active = context.view_layer.objects.active
    if active is not None and active.get(WORLD_KEY) is not None:
        return active
    scene = context.scene
    assert scene is not None
    spheres = world_spheres(scene)
    if len(spheres) > 1:
        raise UserError(f"{len(spheres)} world spheres in the scene: name the one to use ({', '.join(o.name for o in spheres)})")
    return spheres[0] if spheres else None


def sphere_safe_radius(sphere: bpy.types.Object) -> float:
    """The engine's safe radius (object space) scaled to the world; older spheres fall back to the nearest distance."""
    return parallax.stored_safe_radius(sphere[WORLD_KEY]) * min(abs(s) for s in sphere.matrix_world.to_scale())


def stereo_rigs(scene: bpy.types.Scene) -> list[bpy.types.Object]:
    return [o for o in scene.objects if o.get(RIG_KEY) is not None]


def missing_rig(context: bpy.types.Context) -> str:
    """Why no rig can be found, whatever is named or selected (the scene has none), or "": the rig operators' poll."""
    scene = context.scene
    return "" if scene is not None and stereo_rigs(scene) else "No stereo rig in the scene: add one first"


def find_rig(context: bpy.types.Context, name: str = "") -> bpy.types.Object:
    """The named rig, else the active object's rig (the handle or its camera), else the scene camera's, else the only one."""
    scene = context.scene
    missing = missing_rig(context)
    if missing:
        raise UserError(missing)
    assert scene is not None
    if name:
        obj = scene.objects.get(name)
        if obj is None or obj.get(RIG_KEY) is None:
            raise UserError(f"No stereo rig named {name!r} in scene {scene.name!r}")
        return obj
    for obj in (context.view_layer.objects.active, scene.camera):
        while obj is not None:
            if obj.get(RIG_KEY) is not None:
                return obj
            obj = obj.parent
    rigs = stereo_rigs(scene)
    if len(rigs) > 1:
        raise UserError(f"{len(rigs)} stereo rigs: select one or name it")
    return rigs[0]


def rig_camera(rig: bpy.types.Object) -> bpy.types.Object:
    camera = next((c for c in rig.children if c.type == "CAMERA"), None)
    if camera is None:
        raise UserError(f"Stereo rig {rig.name!r} has no camera under it")
    return camera


class DIFFUSION3D_OT_add_stereo_rig(DeclaredOperator, bpy.types.Operator):
    """Add a stereo camera rig at the world sphere's centre (or the 3D cursor), ready to animate and render"""

    bl_idname = "diffusion3d.add_stereo_rig"
    bl_label = "Add Stereo Rig"
    bl_options = {"REGISTER", "UNDO"}
    request = RigRequest
    __annotations__ = declared.properties(RigRequest)

    def run(self, context: bpy.types.Context, request: RigRequest) -> dict[str, Any]:
        sphere = None if self.place == "CURSOR" else find_sphere(context, self.sphere)
        if sphere is None and self.place == "SPHERE":
            raise UserError("No world sphere in the scene: build one first, or place the rig at the 3D cursor")
        center = sphere.matrix_world.translation.copy() if sphere is not None else context.scene.cursor.location.copy()
        safe = self.safe_radius or (sphere_safe_radius(sphere) if sphere is not None else DEFAULT_SAFE_RADIUS * self.scene_scale)
        median = float(sphere[WORLD_KEY].get("median_distance", 0.0)) if sphere is not None else 0.0
        rig = self._build(context, center, safe, median, sphere)
        where = f"centre of {sphere.name}" if sphere is not None else "3D cursor"
        self.report({"INFO"}, f"{rig.name} at the {where}: interocular {self._ipd():.4g}, safe radius {safe:.3g}")
        return {"rig": rig.name, "safe_radius": safe}

    def _ipd(self) -> float:
        return float(self.interocular * self.scene_scale)

    def _build(
        self, context: bpy.types.Context, center: Vector, safe: float, median: float, sphere: bpy.types.Object | None
    ) -> bpy.types.Object:
        scene = context.scene
        cam_data = bpy.data.cameras.new(self.name)
        stereo = cam_data.stereo
        stereo.interocular_distance = self._ipd()
        stereo.pivot = "CENTER"  # the handle is between the eyes
        if self.mode == SPHERICAL:
            cam_data.type = "PANO"
            cam_data.panorama_type = "EQUIRECTANGULAR"
            stereo.use_spherical_stereo = True
            stereo.use_pole_merge = self.pole_merge
            stereo.convergence_mode = "OFFAXIS" if self.convergence > 0 else "PARALLEL"
            stereo.convergence_distance = self.convergence if self.convergence > 0 else 1e6
        else:
            cam_data.lens = self.focal_length
            stereo.convergence_mode = self.convergence_mode
            stereo.convergence_distance = self.convergence or median or stereo.convergence_distance
        farthest = float(sphere[WORLD_KEY].get("max_distance", 0.0)) if sphere is not None else 0.0
        cam_data.clip_start, cam_data.clip_end = parallax.rig_clip_range(safe, farthest)

        rig = bpy.data.objects.new(self.name, None)
        rig.empty_display_type = "ARROWS"
        rig.empty_display_size = max(safe, 0.1)
        rig.location = center
        camera = bpy.data.objects.new(f"{self.name} Camera", cam_data)
        camera.parent = rig
        camera.rotation_euler = equirect.CAPTURE_ROTATION  # looks along the handle's +X, as the capture did
        rig[RIG_KEY] = {
            "mode": self.mode,
            "interocular": self.interocular,
            "scene_scale": self.scene_scale,
            "safe_radius": safe,
            "center": center[:],
            "sphere": sphere.name if sphere is not None else "",
        }
        bounds = safe_radius_sphere(rig)
        collection = context.collection or scene.collection
        for obj in (rig, camera, bounds):
            collection.objects.link(obj)
        if self.make_active:
            scene.camera = camera
            scene.render.use_multiview = True
            scene.render.views_format = "STEREO_3D"
        for obj in context.view_layer.objects:
            obj.select_set(False)
        rig.select_set(True)
        context.view_layer.objects.active = rig
        return rig


def safe_radius_sphere(rig: bpy.types.Object) -> bpy.types.Object:
    """A sphere empty under the handle showing how far it may move, its size driven by the rig's stored safe radius
    (a driver: editing ``diffusion3d_rig``'s ``safe_radius`` resizes it at the next update). Not rendered, not selectable."""
    sphere = bpy.data.objects.new(f"{rig.name} Safe Radius", None)
    sphere.empty_display_type = "SPHERE"
    sphere.parent = rig
    sphere.hide_render = sphere.hide_select = True
    driver = sphere.driver_add("empty_display_size").driver
    driver.type = "AVERAGE"  # the one variable's value: no Python expression, so it runs without auto-run scripts
    variable = driver.variables.new()
    variable.type = "SINGLE_PROP"
    target = variable.targets[0]
    target.id_type, target.id, target.data_path = "OBJECT", rig, f'["{RIG_KEY}"]["safe_radius"]'
    return sphere


def _bake(
    rig: bpy.types.Object, frames: np.ndarray, locations: np.ndarray, yaw: np.ndarray, base_rotation: tuple[float, float, float]
) -> None:
    """One keyframe per frame on the handle's location and Z rotation, written in bulk."""
    data = rig.animation_data or rig.animation_data_create()
    old = data.action
    action = bpy.data.actions.new(MOVE_ACTION)
    data.action = action
    if old is not None and old.users == 0:
        bpy.data.actions.remove(old)
    channels = [("location", i, locations[:, i]) for i in range(3)] + [("rotation_euler", 2, base_rotation[2] + yaw)]
    for path, index, values in channels:
        curve = action.fcurve_ensure_for_datablock(rig, path, index=index)
        points = curve.keyframe_points
        points.add(len(frames))
        points.foreach_set("co", np.column_stack([frames, values]).astype(np.float32).ravel())
        points.foreach_set("interpolation", np.ones(len(frames), np.int32))  # LINEAR: the path is sampled per frame
        curve.update()


class DIFFUSION3D_OT_animate_rig(DeclaredOperator, bpy.types.Operator):
    """Animate the stereo rig with a move that reveals depth, within the sphere's safe radius"""

    bl_idname = "diffusion3d.animate_rig"
    bl_label = "Animate Stereo Rig"
    bl_options = {"REGISTER", "UNDO"}
    request = MoveRequest
    __annotations__ = declared.properties(MoveRequest)

    @classmethod
    def unavailable(cls, context: bpy.types.Context) -> str:
        return missing_rig(context)

    def run(self, context: bpy.types.Context, request: MoveRequest) -> dict[str, Any]:
        rig = find_rig(context, self.rig)
        if self.move == camera_moves.CUSTOM:
            return self._custom(context, rig)
        return self._animate(context, rig, request)

    def _animate(self, context: bpy.types.Context, rig: bpy.types.Object, request: MoveRequest) -> dict[str, Any]:
        """The move, its angles from the request (the operator's angle properties hold radians)."""
        scene = context.scene
        fps = scene.render.fps / scene.render.fps_base
        frames = camera_moves.frame_count(self.seconds, fps)
        if frames < 2:
            raise UserError(f"{self.seconds} s at {fps:g} fps is under two frames: nothing would move")
        info = rig[RIG_KEY]
        safe = float(info["safe_radius"])
        center = np.array(info["center"], np.float64)
        heading = float(info.get("heading", rig.rotation_euler[2]))
        base = (rig.rotation_euler[0], rig.rotation_euler[1], heading)
        try:
            path = camera_moves.camera_path(self.move, frames, self.amplitude * safe, heading, self.easing, self.loop, request.look_degrees)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        numbers = np.arange(1, frames + 1, dtype=np.float64)
        _bake(rig, numbers, center + path.offsets, path.yaw, base)
        info["heading"] = heading
        scene.frame_start, scene.frame_end = 1, frames
        scene.frame_set(1)
        self.report(
            {"INFO"},
            f"{rig.name}: {self.move.lower()} over {frames} frames ({self.seconds:g} s at {fps:g} fps), "
            f"reaching {path.max_offset:.3g} of the safe radius {safe:.3g}",
        )
        return {"rig": rig.name, "frames": frames}

    def _custom(self, context: bpy.types.Context, rig: bpy.types.Object) -> dict[str, Any]:
        action = rig.animation_data.action if rig.animation_data is not None else None
        if action is None:
            raise UserError(f"{rig.name} has no keyframes of its own to keep (choose a move)")
        start, end = (int(round(f)) for f in action.frame_range)
        if end <= start:
            raise UserError(f"{rig.name}'s keyframes span no frames ({start}–{end})")
        scene = context.scene
        assert scene is not None
        scene.frame_start, scene.frame_end = start, end
        safe = float(rig[RIG_KEY]["safe_radius"])
        farthest = path_extent(scene, rig, start, end)
        scene.frame_set(start)
        if farthest > safe * (1 + 1e-6):
            self.report({"WARNING"}, f"The custom path goes {farthest:.3g} from the centre, beyond the safe radius {safe:.3g}")
        else:
            self.report({"INFO"}, f"Kept {rig.name}'s keyframes: frames {start}–{end}, within the safe radius")
        return {"rig": rig.name, "frames": end - start + 1}


def path_extent(scene: bpy.types.Scene, rig: bpy.types.Object, start: int, end: int) -> float:
    """The farthest the rig's handle gets from its centre over frames ``start``–``end``."""
    center, current, farthest = Vector(rig[RIG_KEY]["center"]), scene.frame_current, 0.0
    for frame in range(start, end + 1):
        scene.frame_set(frame)
        farthest = max(farthest, (rig.matrix_world.translation - center).length)
    scene.frame_set(current)
    return farthest
