"""The stereo rig and its camera moves, declared as the jobs the operators run in Blender (they have no engine part).

A rig is an empty with one stereo camera under it, placed at a world sphere's
centre; a move animates it within the sphere's safe radius
(:mod:`camera_moves`). ``render_stereo_video`` then renders it (:mod:`stereo_video`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..choices import CAMERA_MOVES, CONVERGENCE_MODES, EASINGS, RIG_MODES, RIG_PLACES
from ..params import DEGREES, FACTOR, LENGTH, SECONDS, param

SPHERICAL, FLAT = RIG_MODES.ids
DEFAULT_INTEROCULAR = 0.065  # metres: a human's


@dataclass
class RigRequest:
    mode: str = param(SPHERICAL, "Mode", "360° or flat stereo", choices=RIG_MODES, cli=None, cli_switch=("--flat", FLAT))
    place: str = param("AUTO", "Place At", "Where the rig goes", choices=RIG_PLACES)
    sphere: str = param("", "Sphere", "The world sphere object; empty: the active one, else the only one", blender=True)
    interocular: float = param(
        DEFAULT_INTEROCULAR,
        "Interocular Distance",
        "Distance between the eyes in metres (a human's ≈ 0.065), before the scene scale",
        unit=LENGTH,
        min=0.0,
        open_min=True,
        max=10.0,
        soft=(0.01, 0.2),
        cli="--ipd",
    )
    scene_scale: float = param(
        1.0,
        "Scene Scale",
        "Scene units per metre of the real world: multiplies the interocular distance (a sphere from relative depth is not in metres)",
        min=0.0,
        open_min=True,
        max=1e4,
        soft=(0.01, 100.0),
    )
    convergence: float = param(
        0.0,
        "Convergence",
        "Distance with zero parallax; 0: parallel eyes (360°: the usual choice for VR; flat: the sphere's median distance)",
        unit=LENGTH,
        min=0.0,
        max=1e6,
        soft=(0.0, 100.0),
    )
    convergence_mode: str = param("OFFAXIS", "Convergence Mode", "Flat mode: how the two cameras are aimed", choices=CONVERGENCE_MODES)
    focal_length: float = param(35.0, "Focal Length", "Flat mode: the lens's focal length in mm", min=1.0, max=5000.0, soft=(10.0, 200.0))
    pole_merge: bool = param(True, "Pole Merge", "360°: fade the parallax out toward the poles so they show no double image")
    safe_radius: float = param(
        0.0,
        "Safe Radius",
        "How far the viewpoint may move from the centre; 0: from the sphere's depth (or 0.5 × scene scale without a sphere)",
        unit=LENGTH,
        min=0.0,
        max=1e6,
        soft=(0.0, 10.0),
    )
    make_active: bool = param(True, "Make Active Camera", "Render through the rig, in stereo")
    name: str = param("Stereo Rig", "Name", "The new rig's name", blender=True, cli="--rig-name")


@dataclass
class MoveRequest:
    move: str = param("DOLLY", "Move", "How the rig moves (keep: its own keyframes)", choices=CAMERA_MOVES)
    seconds: float = param(
        4.0, "Duration", "Length of the move, at the scene frame rate", unit=SECONDS, min=0.0, open_min=True, max=3600.0, soft=(0.5, 60.0)
    )
    amplitude: float = param(
        0.5,
        "Amplitude",
        "How far the move goes, as a fraction of the safe radius",
        unit=FACTOR,
        min=0.0,
        max=1.0,
        why="beyond 1 the view leaves the safe radius",
    )
    easing: str = param("EASE_IN_OUT", "Easing", "How the move starts and stops", choices=EASINGS)
    loop: bool = param(True, "Loop", "End where the move began: the last frame equals the first")
    look_degrees: float = param(
        360.0, "Turn", "Look Around: how far to turn", unit=DEGREES, min=-3600.0, max=3600.0, soft=(0.0, 720.0), cli="--turn"
    )
    rig: str = param("", "Rig", "The stereo rig; empty: the active one, or the scene camera's", blender=True)
