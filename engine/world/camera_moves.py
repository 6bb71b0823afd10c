"""Camera moves that reveal the depth of a world sphere (DepthFusion's stage 3).

Seen from the sphere's centre nothing shows depth; the viewpoint has to move.
Each move is a path of offsets from the centre plus a yaw, sampled once per
frame, never farther from the centre than the amplitude (which callers keep
within the safe radius, see :mod:`parallax`). A looping move ends where it
started, so its last frame equals its first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..choices import CAMERA_MOVES, EASINGS

DOLLY, ORBIT, SWAY, FIGURE8, LOOK, CUSTOM = CAMERA_MOVES.ids
MOVES = (DOLLY, ORBIT, SWAY, FIGURE8, LOOK)  # the ones computed here (CUSTOM keeps the rig's own keyframes)
EASE_IN_OUT, LINEAR = EASINGS.ids


@dataclass
class CameraPath:
    offsets: np.ndarray  # N×3 from the centre, in the rig's frame turned by ``heading``
    yaw: np.ndarray  # N radians about +Z, added to the heading

    @property
    def frames(self) -> int:
        return len(self.yaw)

    @property
    def max_offset(self) -> float:
        return float(np.linalg.norm(self.offsets, axis=1).max()) if len(self.offsets) else 0.0


def frame_count(seconds: float, fps: float) -> int:
    """Frames for ``seconds`` at ``fps``, counting both ends."""
    if not (seconds > 0 and fps > 0):
        raise ValueError(f"duration and frame rate must be positive, got {seconds} s at {fps} fps")
    return int(round(seconds * fps)) + 1


def _phase(frames: int, easing: str) -> np.ndarray:
    """0 → 1 over the frames, eased so the move starts and stops gently."""
    p = np.linspace(0.0, 1.0, frames)
    if easing == EASE_IN_OUT:
        return (1 - np.cos(math.pi * p)) / 2
    if easing != LINEAR:
        raise ValueError(f"unknown easing {easing!r} (choose from {', '.join(EASINGS.ids)})")
    return p


def camera_path(
    move: str,
    frames: int,
    amplitude: float,
    heading: float = 0.0,
    easing: str = EASE_IN_OUT,
    loop: bool = True,
    look_degrees: float = 360.0,
) -> CameraPath:
    """Offsets (world frame) and yaw for each frame.

    ``heading`` is the rig's yaw: "forward" for a dolly is where the rig looks.
    A looping move covers a whole period (out and back); otherwise half of it
    (a dolly only goes out, an orbit makes half a turn).
    """
    if frames < 2:
        raise ValueError(f"a move needs at least 2 frames, got {frames}")
    if amplitude < 0 or not math.isfinite(amplitude):
        raise ValueError(f"amplitude must be a finite distance ≥ 0, got {amplitude}")
    phase = _phase(frames, easing)
    angle = 2 * math.pi * phase * (1.0 if loop else 0.5)
    forward = np.array([math.cos(heading), math.sin(heading), 0.0])
    left = np.array([-math.sin(heading), math.cos(heading), 0.0])
    zero = np.zeros(frames)
    yaw = zero.copy()
    if move == DOLLY:
        offsets = np.outer(amplitude * (1 - np.cos(angle)) / 2, forward)
    elif move == ORBIT:  # around the centre, starting to its left
        offsets = amplitude * (np.outer(np.cos(angle), left) - np.outer(np.sin(angle), forward))
    elif move == SWAY:  # side to side through the centre
        offsets = np.outer(amplitude * np.sin(angle), left)
    elif move == FIGURE8:  # sideways with a forward-back beat, through the centre; |offset| ≤ amplitude
        offsets = amplitude * (np.outer(np.sin(angle), left) + np.outer(np.sin(2 * angle) / 2, forward))
    elif move == LOOK:  # rotation only
        offsets = np.zeros((frames, 3))
        turn = math.radians(look_degrees)
        full_turns = math.isclose(look_degrees % 360.0, 0.0, abs_tol=1e-9)
        yaw = turn * phase if full_turns or not loop else turn * (1 - np.cos(angle)) / 2  # whole turns, or there and back
    else:
        raise ValueError(f"unknown move {move!r} (choose from {', '.join(MOVES)})")
    return CameraPath(np.asarray(offsets, np.float64), np.asarray(yaw, np.float64))


#: VR180 shows the front half sphere only: how far the view may turn from where it first looks, a margin short of 90°.
FRONT_TURN_LIMIT = 80.0


def front_hemisphere_problem(
    positions: np.ndarray, views: np.ndarray, centre: np.ndarray, frames: list[int], tolerance: float = 1e-6
) -> str:
    """Why a camera path leaves its front hemisphere, or "" when it stays in it (VR180).

    The front is where the camera looks on the first frame (``views[0]``, a
    direction): every position must stay on that side of the plane through
    ``centre`` across it (behind it, the half sphere shows what is not in
    front), and the view must not turn more than :data:`FRONT_TURN_LIMIT`
    from it. ``positions`` and ``views`` are N×3, one row per frame in ``frames``.
    """
    views = np.asarray(views, np.float64)
    views = views / np.linalg.norm(views, axis=1, keepdims=True)
    forward = views[0]
    behind = -(np.asarray(positions, np.float64) - np.asarray(centre, np.float64)) @ forward
    turn = np.degrees(np.arccos(np.clip(views @ forward, -1.0, 1.0)))
    if behind.max() > tolerance:
        worst = int(behind.argmax())
        return f"goes {behind[worst]:.3g} behind its centre (frame {frames[worst]})"
    if turn.max() > FRONT_TURN_LIMIT + 1e-6:
        worst = int(turn.argmax())
        return f"turns {turn[worst]:.0f}° from where it first looks (frame {frames[worst]}; at most {FRONT_TURN_LIMIT:g}°)"
    return ""
