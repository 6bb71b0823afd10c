"""``diffusion3d.render_stereo_video``: the rig's animation → a 360° or VR180 stereo MP4 (or an image sequence, or one still).

Frames are rendered one by one into a frames folder, so a cancelled render
keeps what it made. Blender's own FFmpeg then encodes them (H.264) through a
temporary sequencer scene, and the engine adds the spatial-media metadata and
puts the file in place. Every render setting changed on the way is restored.
From the UI each frame is Blender's render job (its progress and Esc);
scripts and background mode block.

VR180 narrows the rig's 360° camera to the front half sphere for the render
(square eyes, spherical stereo with pole merge) and names the file for VR
players (``_180_sbs``); it needs a 360° rig, and a move that stays in front.
A still is one stereo image of the current frame, named the same way.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ..engine import interrupts
from ..engine.choices import STEREO_LAYOUTS, VIDEO_FORMATS, VIDEO_PROJECTIONS, VIDEO_QUALITIES, VIDEO_RESOLUTIONS
from ..engine.errors import BadInput
from ..engine.imagefiles import strip_run_metadata
from ..engine.world import camera_moves
from ..engine.world.stereo_rig import SPHERICAL
from ..engine.world.stereo_video import FRAME_PREFIX, SIDECAR, VideoRequest, VideoResult, eye_size, frame_files, frame_size
from .machinery import compat, declared, session
from .machinery.job import EngineJobOperator, Stage, UserError
from .machinery.render_setup import stamp_nothing
from .machinery.settings_restore import TemporarySettings
from .stereo_rig import RIG_KEY, find_rig, missing_rig, rig_camera

MP4, PNG, EXR = VIDEO_FORMATS.ids
TOP_BOTTOM, SIDE_BY_SIDE, MONO = STEREO_LAYOUTS.ids
FAST, QUALITY, SCENE = VIDEO_QUALITIES.ids
#: Fast defaults for an emission-only world sphere: no bounces, few samples, no denoising (see bench/bench_stereo_video.py).
FAST_SAMPLES = 4
QUALITY_SAMPLES = 128


class FrameRender(Stage):
    """One render per frame of the scene's range into the frames folder, with the video's render settings."""

    label = "Rendering stereo video"
    render_name = "A frame"

    def __init__(
        self,
        camera: bpy.types.Object,
        eye: tuple[int, int],
        layout: str,
        file_format: str,
        quality: str,
        frames_dir: Path,
        frames: list[int],
        projection: str = VIDEO_PROJECTIONS.default,
    ) -> None:
        self.camera, self.eye, self.layout, self.file_format, self.quality = camera, eye, layout, file_format, quality
        self.frames_dir, self.frames, self.projection = frames_dir, frames, projection
        self.ext = ".exr" if file_format == EXR else ".png"
        self._temp: TemporarySettings | None = None

    def start(self, context: bpy.types.Context) -> int:
        assert context.scene is not None
        self._temp = apply_video_settings(
            context.scene, self.camera, self.eye, self.layout, self.file_format, self.quality, self.projection
        )
        return len(self.frames)

    def step(self, context: bpy.types.Context, index: int) -> dict[str, Any]:
        scene = context.scene
        scene.frame_set(self.frames[index])
        scene.render.filepath = str(self.frames_dir / f"{FRAME_PREFIX}{self.frames[index]:04d}")
        return {"write_still": True}

    def rendered(self, context: bpy.types.Context, index: int) -> None:
        frame = self.frames[index]
        path = self.frames_dir / f"{FRAME_PREFIX}{frame:04d}{self.ext}"
        if not path.is_file():
            raise UserError(f"Frame {frame} was rendered but not written to {self.frames_dir}")
        strip_run_metadata(path)  # the same frame gives the same bytes on any machine, under any load

    def undo(self) -> None:
        temp, self._temp = self._temp, None
        if temp is not None:
            temp.restore()


class DIFFUSION3D_OT_render_stereo_video(EngineJobOperator, bpy.types.Operator):
    """Render the stereo rig's animation to a 360° or VR180 stereo video (or image sequence, or one still) with spatial metadata"""

    bl_idname = "diffusion3d.render_stereo_video"
    bl_label = "Render Stereo Video"
    bl_options = {"REGISTER"}
    job = "finish_video"
    job_label = "Finishing video"
    __annotations__ = declared.properties(VideoRequest)

    _render: FrameRender | None = None
    _target: Path | None = None
    _scratch: Path | None = None
    _spherical = True
    _layout = TOP_BOTTOM
    _started = 0.0
    _made_dir: Path | None = None
    _frame_size = (0, 0)

    @classmethod
    def unavailable(cls, context: bpy.types.Context) -> str:
        return missing_rig(context)

    def read(self, context: bpy.types.Context, request: VideoRequest) -> VideoRequest:
        """The rig it renders (360° or flat); the output, by default a new file under the default output folder."""
        rig = find_rig(context, request.rig)
        spherical = rig[RIG_KEY].get("mode", SPHERICAL) == SPHERICAL
        return dataclasses.replace(request, spherical=spherical, filepath=request.filepath or str(session.output_folder("", "video")))

    def stage(self, context: bpy.types.Context, request: VideoRequest) -> FrameRender:
        """Check everything before the first frame; decide the output."""
        scene = context.scene
        assert scene is not None
        rig = find_rig(context, request.rig)
        camera = rig_camera(rig)
        self._spherical = request.spherical
        projection = VIDEO_PROJECTIONS[self.projection]
        cropped = projection.field_of_view[0] > 0
        if cropped and not self._spherical:
            raise UserError(f"{projection.label} needs a 360° rig: {rig.name} is a flat (perspective) stereo pair")
        layout = self._layout = request.layout
        if layout != MONO and not camera.data.stereo.interocular_distance > 0:
            raise UserError(f"{camera.name}: interocular distance must be greater than 0 for a stereo video")
        if self.still:
            frames = [scene.frame_current]
        elif scene.frame_end <= scene.frame_start:
            raise UserError(f"The frame range {scene.frame_start}–{scene.frame_end} has no length: animate the rig first")
        else:
            frames = list(range(scene.frame_start, scene.frame_end + 1))
            if cropped:
                self._check_front(scene, rig, camera, frames, projection.label)
        if not hasattr(scene, "cycles"):
            raise UserError("Cycles is not available in this Blender")
        try:
            eye = eye_size(VIDEO_RESOLUTIONS[self.resolution].eye_width or self.eye_width, self._spherical, self.projection)
            self._frame_size = frame_size(eye, layout)
            frames_dir = self._prepare_output(request)
        except BadInput as exc:
            raise UserError(str(exc)) from None
        self._started = time.perf_counter()
        self._render = FrameRender(camera, eye, layout, self.file_format, self.quality, frames_dir, frames, self.projection)
        return self._render

    @staticmethod
    def _check_front(scene: bpy.types.Scene, rig: bpy.types.Object, camera: bpy.types.Object, frames: list[int], label: str) -> None:
        """A cropped sphere shows only what is in front: the camera must not go behind the rig's centre nor turn away."""
        current, matrices = scene.frame_current, []
        try:
            for frame in frames:
                scene.frame_set(frame)
                matrices.append(np.array(camera.matrix_world, np.float64))
        finally:
            scene.frame_set(current)
        positions, views = np.array(matrices)[:, :3, 3], -np.array(matrices)[:, :3, 2]  # a camera looks down its −Z
        info = rig[RIG_KEY]
        tolerance = 1e-6 * max(1.0, float(info.get("safe_radius", 1.0)))
        centre = np.array(info.get("center", positions[0]), np.float64)
        reason = camera_moves.front_hemisphere_problem(positions, views, centre, frames, tolerance)
        if reason:
            raise UserError(
                f"{label} shows only the front half: {rig.name} {reason}; "
                f"use a move that stays in front (dolly, sway, or look around at most {camera_moves.FRONT_TURN_LIMIT:g}°)"
            )

    def _prepare_output(self, request: VideoRequest) -> Path:
        """Decide the target and frames folder; refuse to replace anything unless allowed; prove the folder is writable."""
        target = frames_dir = request.target()
        if self.file_format == MP4 or self.still:
            if target.exists() and not self.overwrite:
                raise UserError(f"{target} exists; turn on Overwrite to replace it")
            frames_dir = target.parent if self.still else target.with_name(target.stem + "_frames")
        existing = [] if self.still else frame_files(frames_dir)
        if existing and not self.overwrite:
            raise UserError(f"{frames_dir} already holds {len(existing)} frames; turn on Overwrite or choose another output")
        if self.file_format != MP4 and not self.still and (frames_dir / SIDECAR).exists() and not self.overwrite:
            raise UserError(f"{frames_dir / SIDECAR} exists; turn on Overwrite or choose another output")
        self._made_dir = frames_dir if not frames_dir.exists() else None
        try:
            frames_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=frames_dir):
                pass
        except OSError as exc:
            session.remove_if_empty(frames_dir)
            raise UserError(f"Cannot write to {frames_dir}: {exc.strerror or exc}") from None
        for old in existing:
            old.unlink()
        if not self.still:  # a run stopped by a signal leaves no frames (Esc and failures keep them, and say so)
            made = self._made_dir  # read now: the operator's Blender side is gone by then
            interrupts.on_stop(frames_dir, lambda: _remove_frames(frames_dir, made))
        self._target = target
        if self.still:  # rendered aside, then put in place by the engine: a cancelled still leaves nothing
            self._scratch = frames_dir = session.new_scratch("still")
        return frames_dir

    def prepare(self, context: bpy.types.Context, request: VideoRequest) -> VideoRequest:
        """Encode the frames (MP4) and hand the file to the engine for its metadata."""
        assert self._target is not None and self._render is not None
        encoded = image = ""
        if self.still:
            image = str(frame_files(self._render.frames_dir)[0])
        elif self.file_format == MP4:
            self._scratch = session.new_scratch("video")
            assert context.scene is not None
            encoded = str(encode_frames(context.scene, frame_files(self._render.frames_dir), self._frame_size, self._scratch))
        render = context.scene.render
        return dataclasses.replace(
            request,
            encoded=encoded,
            out_path=str(self._target),
            stereo=STEREO_LAYOUTS[self._layout].spatial_media,
            image=image,
            fps=render.fps / render.fps_base,
            width=self._frame_size[0],
            height=self._frame_size[1],
        )

    def finish(self, context: bpy.types.Context, result: VideoResult) -> dict[str, Any]:
        session.remove_scratch(self._scratch)
        if self._render is not None:
            interrupts.forget(self._render.frames_dir)
        if self.file_format == MP4 and not self.still and not self.keep_frames and self._render is not None:
            for path in frame_files(self._render.frames_dir):
                path.unlink()
            session.remove_if_empty(self._render.frames_dir)
        seconds = time.perf_counter() - self._started
        projection = VIDEO_PROJECTIONS[self.projection]
        shape = (f", {projection.label}" if projection.field_of_view[0] else ", 360°") if result.projection else ""
        if self.still:
            self.report(
                {"INFO"}, f"Wrote {result.path}: one {result.width}×{result.height} image ({result.stereo}{shape}) in {seconds:.1f} s"
            )
            return {"paths": {"image": result.path}, "frames": 1, "layout": STEREO_LAYOUTS[self._layout].cli}
        self.report(
            {"INFO"},
            f"Wrote {result.path}: {result.frames} frames of {result.width}×{result.height} ({result.stereo}{shape})"
            f" in {seconds:.1f} s ({seconds / max(result.frames, 1):.2f} s/frame)",
        )
        return {"paths": {"video": result.path}, "frames": result.frames, "layout": STEREO_LAYOUTS[self._layout].cli}

    def discard(self, context: bpy.types.Context) -> None:
        session.remove_scratch(self._scratch)
        if self._render is None:
            return
        kept = [] if self.still else frame_files(self._render.frames_dir)
        if kept:
            self.report(
                {"WARNING"}, f"Stopped after {len(kept)} of {len(self._render.frames)} frames; they are kept in {self._render.frames_dir}"
            )
        elif self._made_dir is not None:
            session.remove_if_empty(self._made_dir)


def apply_video_settings(
    scene: bpy.types.Scene,
    camera: bpy.types.Object,
    eye: tuple[int, int],
    layout: str,
    file_format: str,
    quality: str,
    projection: str = VIDEO_PROJECTIONS.default,
) -> TemporarySettings:
    """Set the scene up to render the rig's frames; the returned settings restore everything."""
    temp = TemporarySettings()
    try:
        _set_output(scene, camera, eye, layout, file_format, temp)
        assert isinstance(camera.data, bpy.types.Camera)
        _set_projection(camera.data, projection, temp)
        if quality != SCENE:
            _set_quality(scene, quality, temp)
    except BaseException:
        temp.restore()
        raise
    return temp


def _set_output(
    scene: bpy.types.Scene, camera: bpy.types.Object, eye: tuple[int, int], layout: str, file_format: str, temp: TemporarySettings
) -> None:
    render, image = scene.render, scene.render.image_settings
    stereo = layout != MONO
    for owner, name, value in (
        (scene, "camera", camera),
        (scene, "frame_current", scene.frame_current),  # put back where the user was
        (render, "engine", "CYCLES"),
        (render, "resolution_x", eye[0]),
        (render, "resolution_y", eye[1]),
        (render, "resolution_percentage", 100),
        (render, "pixel_aspect_x", 1.0),
        (render, "pixel_aspect_y", 1.0),
        (render, "use_border", False),
        (render, "use_multiview", stereo),
        (render, "views_format", "STEREO_3D"),
        (render, "film_transparent", False),
        (render, "use_persistent_data", True),  # keep the scene in memory from frame to frame
        (render, "filepath", render.filepath),
    ):
        temp.set(owner, name, value)
    compat.set_image_format(image, "OPEN_EXR" if file_format == EXR else "PNG", temp.set)
    for name, value in (
        ("color_mode", "RGB"),
        ("color_depth", "32" if file_format == EXR else "8"),
        ("views_format", "STEREO_3D" if stereo else "INDIVIDUAL"),
    ):
        temp.set(image, name, value)
    if stereo:
        temp.set(image.stereo_3d_format, "display_mode", STEREO_LAYOUTS[layout].blender_mode)
        temp.set(image.stereo_3d_format, "use_squeezed_frame", False)
        for view in render.views:
            temp.set(view, "use", view.name in ("left", "right"))


def _set_projection(camera: bpy.types.Camera, projection: str, temp: TemporarySettings) -> None:
    """A cropped sphere (VR180): the rig's equirectangular camera limited to the eye's field about its view, stereo merged at the poles."""
    longitude, latitude = VIDEO_PROJECTIONS[projection].field_of_view
    if not longitude:
        return  # the rig's own camera, as it is
    half_longitude, half_latitude = math.radians(longitude) / 2, math.radians(latitude) / 2
    for owner, name, value in (
        (camera, "type", "PANO"),
        (camera, "panorama_type", "EQUIRECTANGULAR"),
        (camera, "longitude_min", -half_longitude),
        (camera, "longitude_max", half_longitude),
        (camera, "latitude_min", -half_latitude),
        (camera, "latitude_max", half_latitude),
        (camera.stereo, "use_spherical_stereo", True),
        (camera.stereo, "use_pole_merge", True),  # the eyes' parallax fades out toward the top and bottom edges
    ):
        temp.set(owner, name, value)


def _set_quality(scene: bpy.types.Scene, quality: str, temp: TemporarySettings) -> None:
    cycles, fast = scene.cycles, quality == FAST
    temp.set(cycles, "samples", FAST_SAMPLES if fast else QUALITY_SAMPLES)
    temp.set(cycles, "use_adaptive_sampling", not fast)
    temp.set(cycles, "use_denoising", not fast)
    if fast:  # emission only: light never needs to bounce, and the view must show the panorama's own colours
        for name in (
            "max_bounces",
            "diffuse_bounces",
            "glossy_bounces",
            "transmission_bounces",
            "volume_bounces",
            "transparent_max_bounces",
        ):
            temp.set(cycles, name, 0)
        temp.set(cycles, "caustics_reflective", False)
        temp.set(cycles, "caustics_refractive", False)
        view = scene.view_settings
        for name, value in (("view_transform", "Standard"), ("look", "None"), ("exposure", 0.0), ("gamma", 1.0)):
            temp.set(view, name, value)
        temp.set(scene.render, "use_compositing", False)
        temp.set(scene.render, "use_sequencer", False)


def _remove_frames(folder: Path, made: Path | None) -> None:
    for path in frame_files(folder):
        path.unlink(missing_ok=True)
    session.remove_if_empty(made)


def encode_frames(scene: bpy.types.Scene, frames: list[Path], size: tuple[int, int], scratch: Path) -> Path:
    """H.264 MP4 of ``frames`` through Blender's own FFmpeg, by a temporary sequencer scene."""
    if not frames:
        raise UserError("No frames to encode")
    encoder = bpy.data.scenes.new("Diffusion3D encode")
    try:
        strip = encoder.sequence_editor_create().strips.new_image("frames", str(frames[0]), channel=1, frame_start=1)
        for path in frames[1:]:
            strip.elements.append(path.name)
        render = encoder.render
        render.resolution_x, render.resolution_y, render.resolution_percentage = size[0], size[1], 100
        render.fps, render.fps_base = scene.render.fps, scene.render.fps_base
        encoder.frame_start, encoder.frame_end = 1, len(frames)
        encoder.view_settings.view_transform = "Standard"  # the frames are already display colours
        render.use_sequencer = True
        stamp_nothing(render)
        compat.set_image_format(render.image_settings, "FFMPEG")
        ffmpeg = render.ffmpeg
        ffmpeg.format, ffmpeg.codec = "MPEG4", "H264"
        ffmpeg.constant_rate_factor, ffmpeg.ffmpeg_preset = "HIGH", "GOOD"
        ffmpeg.gopsize = max(1, int(math.ceil(render.fps / render.fps_base)))  # a keyframe a second, for seeking
        render.filepath = str(scratch / "video")
        bpy.ops.render.render(animation=True, scene=encoder.name)
    finally:
        bpy.data.scenes.remove(encoder)
    written = sorted(scratch.glob("*.mp4"))  # Blender appends the frame range to the name
    if len(written) != 1:
        raise UserError(f"Blender's FFmpeg wrote no video into {scratch}")
    return written[0]
