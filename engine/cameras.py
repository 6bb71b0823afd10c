"""Camera conventions every capability shares: Blender's camera matrices, OpenCV's pinhole model, orbit cameras.

World = Blender world (Z up). :func:`blender_camera_matrix` is the camera's
``matrix_world`` (camera looks along its local −Z, local +Y is image up); the
operator assigns it as is. Annotations use OpenCV's pinhole model instead:
x_cam = R·X + t (x right, y down, z forward), pixel (col c, row r) covers
[c, c+1)×[r, r+1) and its centre is (c + ½, r + ½), principal point (W/2, H/2).

Orientation: the camera at d·(sin φ cos θ, sin φ sin θ, cos φ) looks at the
origin with world +Z up, so the image's right is (−sin θ, cos θ, 0). That
formula also holds straight above or below (φ = 0 or 180), where "up" is
undefined: there the image's right is the limit from the given azimuth.
In-plane ψ > 0 rolls the camera clockwise about its view direction, so the
image content turns counter-clockwise by ψ (a point right of centre moves up).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import BadInput
from .viewpoints import Viewpoint

#: Blender camera axes (x right, y up, z back) → OpenCV camera axes (x right, y down, z forward).
BLENDER_TO_OPENCV = np.diag([1.0, -1.0, -1.0])
#: Where two views whose pose differs by less than this (degrees, or distance ratio) count as equal.
POSE_TOLERANCE = 1e-3


def camera_location(view: Viewpoint) -> np.ndarray:
    theta, phi = math.radians(view.azimuth), math.radians(view.polar)
    return view.distance * np.array([math.sin(phi) * math.cos(theta), math.sin(phi) * math.sin(theta), math.cos(phi)])


def _look_at_basis(azimuth: float, polar: float) -> np.ndarray:
    """Columns: image right, image up, camera back (= direction from origin to camera)."""
    theta, phi = math.radians(azimuth), math.radians(polar)
    st, ct, sp, cp = math.sin(theta), math.cos(theta), math.sin(phi), math.cos(phi)
    right = [-st, ct, 0.0]
    up = [-cp * ct, -cp * st, sp]
    back = [sp * ct, sp * st, cp]
    return np.array([right, up, back]).T


def _roll(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])


def blender_camera_matrix(view: Viewpoint) -> np.ndarray:
    """4×4 camera-to-world matrix in Blender's camera convention (what ``matrix_world`` gets)."""
    m = np.eye(4)
    m[:3, :3] = _look_at_basis(view.azimuth, view.polar) @ _roll(-view.inplane)
    m[:3, 3] = camera_location(view)
    return m


def intrinsics(
    lens_mm: float,
    sensor_width_mm: float,
    width: int,
    height: int,
    sensor_fit: str = "AUTO",
    sensor_height_mm: float | None = None,
) -> np.ndarray:
    """3×3 K of a Blender perspective camera (square pixels, no lens shift).

    AUTO: the sensor width spans the larger image side; HORIZONTAL: the width;
    VERTICAL: ``sensor_height_mm`` spans the height.
    """
    if lens_mm <= 0 or sensor_width_mm <= 0 or width <= 0 or height <= 0:
        raise BadInput(f"Bad camera: lens {lens_mm} mm, sensor {sensor_width_mm} mm, image {width}×{height}")
    if sensor_fit == "AUTO":
        focal = lens_mm / sensor_width_mm * max(width, height)
    elif sensor_fit == "HORIZONTAL":
        focal = lens_mm / sensor_width_mm * width
    elif sensor_fit == "VERTICAL":
        if not sensor_height_mm or sensor_height_mm <= 0:
            raise BadInput("Sensor fit VERTICAL needs the sensor height")
        focal = lens_mm / sensor_height_mm * height
    else:
        raise BadInput(f"Unknown sensor fit {sensor_fit!r} (AUTO, HORIZONTAL or VERTICAL)")
    return np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])


def extrinsics(camera_matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) with x_cam = R·X + t in OpenCV axes, from a Blender camera-to-world matrix."""
    m = np.asarray(camera_matrix, np.float64)
    if m.shape != (4, 4) or not np.isfinite(m).all():
        raise BadInput(f"A camera matrix is a finite 4×4, got shape {m.shape}")
    rot = m[:3, :3]
    if not np.allclose(rot.T @ rot, np.eye(3), atol=1e-4) or np.linalg.det(rot) < 0:
        raise BadInput("The camera matrix is not a rotation and a translation (scaled or mirrored camera?)")
    r = BLENDER_TO_OPENCV @ rot.T
    return r, -r @ m[:3, 3]


def project(points_world: np.ndarray, k: np.ndarray, r: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N×2, continuous, x right y down) and camera depth z (N); NaN uv where z ≤ 0."""
    pts = np.asarray(points_world, np.float64).reshape(-1, 3)
    cam = pts @ np.asarray(r).T + np.asarray(t).reshape(1, 3)
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uvw = cam @ np.asarray(k).T
        uv = uvw[:, :2] / uvw[:, 2:3]
    uv[z <= 0] = np.nan
    return uv, z


def pose_from_extrinsics(r: np.ndarray, t: np.ndarray) -> tuple[float, float, float, float]:
    """(azimuth, elevation, inplane, distance) in degrees of a camera that looks at the origin.

    Azimuth in [0, 360), in-plane in (−180, 180]. Straight above or below the
    origin azimuth and in-plane are one degree of freedom; it is all given to
    the azimuth (in-plane 0).
    """
    r, t = np.asarray(r, np.float64), np.asarray(t, np.float64).reshape(3)
    centre = -r.T @ t
    distance = float(np.linalg.norm(centre))
    if distance <= 0:
        raise BadInput("The camera sits at the origin: no viewpoint")
    rot = r.T @ BLENDER_TO_OPENCV  # camera-to-world rotation, Blender axes
    polar = math.degrees(math.acos(max(-1.0, min(1.0, centre[2] / distance))))
    if math.hypot(centre[0], centre[1]) > 1e-9 * distance:
        azimuth = math.degrees(math.atan2(centre[1], centre[0]))
        rolled = _look_at_basis(azimuth, polar).T @ rot  # = roll(−inplane)
        inplane = math.degrees(math.atan2(-rolled[1, 0], rolled[0, 0]))
    else:
        azimuth = math.degrees(math.atan2(-rot[0, 0], rot[1, 0]))
        inplane = 0.0
    azimuth %= 360.0
    if inplane <= -180.0:
        inplane += 360.0
    return azimuth, 90.0 - polar, inplane, distance


def camera_to_world(azimuth_deg: float, elevation_deg: float, distance: float = 1.0) -> np.ndarray:
    """4×4 camera-to-world on an orbit: OpenGL camera axes (looking along −Z, Y up) in Blender's Z-up world, looking at the origin.

    Azimuth 0 looks from −Y, 90 from +X, 180 from +Y, 270 from −X; a positive elevation is above (the multi-view models'
    convention, which ViewNeTI's orbit cameras share).
    """
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    ca, sa, ce, se = math.cos(a), math.sin(a), math.cos(e), math.sin(e)
    back = np.array([ce * sa, -ce * ca, se])  # camera +Z: from the origin towards the camera
    return np.array(
        [
            [ca, -se * sa, back[0], distance * back[0]],
            [sa, se * ca, back[1], distance * back[1]],
            [0.0, ce, back[2], distance * back[2]],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
