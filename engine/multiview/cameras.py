"""The four views' cameras: what the model is conditioned on, and where the views sit for reconstruction.

The models were trained on four views around the object at azimuths 0, 90,
180 and 270 degrees and one shared elevation, each camera given as its 4×4
camera-to-world matrix flattened row-major (16 numbers), with a fifth all-zero
camera for the image-prompt frame. That matrix has OpenGL camera axes (looking
along −Z, Y up) in Blender's Z-up world at distance 1: azimuth 0 looks from −Y,
90 from +X, 180 from +Y, 270 from −X, and a positive elevation is above.

The model knows no distance or field of view. The views are placed for
reconstruction where the tools that consume them assume: LGM's camera, 1.5
from the centre with a 49.1° vertical field of view (:data:`DISTANCE`,
:data:`FOV_DEG`); ``transforms.json`` (nerfstudio) states them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..cameras import camera_to_world
from ..errors import BadInput

AZIMUTHS = (0.0, 90.0, 180.0, 270.0)
DISTANCE = 1.5  # LGM's camera radius, in units of the object's normalised size
FOV_DEG = 49.1  # LGM's vertical field of view


def model_cameras(elevation_deg: float, image_frame: bool = True) -> np.ndarray:
    """The model's camera input: float32 [4 (+1), 16], the four views' matrices at distance 1, then an all-zero row for the image frame."""
    rows = [camera_to_world(a, elevation_deg).reshape(16) for a in AZIMUTHS]
    if image_frame:
        rows.append(np.zeros(16))
    return np.asarray(rows, np.float32)


def focal_length(size: int, fov_deg: float = FOV_DEG) -> float:
    """Pixels: the focal length of a square ``size``² image with the vertical field of view ``fov_deg``."""
    if not 0 < fov_deg < 180:
        raise BadInput(f"A field of view must lie between 0° and 180°, got {fov_deg}")
    return (size / 2) / math.tan(math.radians(fov_deg) / 2)


def transforms(size: int, elevation_deg: float, distance: float = DISTANCE, fov_deg: float = FOV_DEG) -> dict[str, Any]:
    """nerfstudio's ``transforms.json`` for ``view_0.png … view_3.png``: shared pinhole intrinsics, one camera-to-world per view."""
    if size < 1:
        raise BadInput(f"The views' size must be at least 1 pixel, got {size}")
    if not distance > 0:
        raise BadInput(f"The camera distance must be greater than 0, got {distance}")
    focal = focal_length(size, fov_deg)
    return {
        "camera_model": "OPENCV",
        "fl_x": focal,
        "fl_y": focal,
        "cx": size / 2,
        "cy": size / 2,
        "w": size,
        "h": size,
        "k1": 0.0,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
        "frames": [
            {"file_path": f"view_{i}.png", "transform_matrix": camera_to_world(a, elevation_deg, distance).tolist()}
            for i, a in enumerate(AZIMUTHS)
        ],
    }


FRONT_VIEW = 1  # ImageDream sees its input image as view 1 (azimuth 90: the camera on +X)


def object_scale(half_extent: float, fill: float = 0.8) -> float:
    """Scene units per unit of the views' world for an object whose front silhouette reaches ``half_extent`` from its centre.

    The prepared input shows the object filling ``fill`` of the frame; at the
    views' distance and field of view that is this many units of their world.
    """
    if not half_extent > 0:
        raise BadInput(f"An object's size must be greater than 0, got {half_extent}")
    return half_extent / (fill * DISTANCE * math.tan(math.radians(FOV_DEG) / 2))


def scene_placement(centre: tuple[float, float, float], scale: float = 1.0) -> np.ndarray:
    """4×4 similarity from the views' world into a scene: view 1 (the input's view) turned to the scene's front (−Y), scaled, moved."""
    turn = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # −90° about Z: +X → −Y
    placement = np.eye(4)
    placement[:3, :3] = scale * turn
    placement[:3, 3] = centre
    return placement


def scene_cameras(placement: np.ndarray, elevation_deg: float) -> np.ndarray:
    """The four views' camera-to-world matrices placed in the scene, rigid (the scale goes into the distance): [4, 4, 4]."""
    scale = float(np.linalg.norm(placement[:3, 0]))
    placed = []
    for azimuth in AZIMUTHS:
        matrix = placement @ camera_to_world(azimuth, elevation_deg, DISTANCE)
        matrix[:3, :3] /= scale
        placed.append(matrix)
    return np.asarray(placed)
