"""The render files the Blender operator writes for each view, and reading them back.

Per view ``name`` in the render folder:

- ``{name}.png``: 8-bit RGB(A) colour-managed Cycles render, transparent film, straight alpha;
- ``{name}.exr``: Blender's multilayer EXR of the render result (scanline, NONE/ZIP/ZIPS,
  float32 or half), with channels whose names end in ``Depth.Z`` (Cycles' Z pass:
  planar depth along the optical axis, about 1e10 where nothing is hit),
  ``Normal.X/Y/Z`` (world-space normals, 0 on the background) and ``Combined.A``
  (alpha, which the mask is cut from). Names match by suffix after a dot, e.g.
  ``ViewLayer.Depth.Z``; exactly one channel may match each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInput
from ..imagefiles import read_exr, read_png

DEPTH, NORMAL_X, NORMAL_Y, NORMAL_Z, ALPHA = "Depth.Z", "Normal.X", "Normal.Y", "Normal.Z", "Combined.A"
CHANNELS = (DEPTH, NORMAL_X, NORMAL_Y, NORMAL_Z, ALPHA)


@dataclass
class ViewRender:
    rgba: np.ndarray  # H×W×4 uint8, straight alpha (opaque alpha added to an RGB PNG)
    alpha: np.ndarray  # H×W float32 from Combined.A
    depth: np.ndarray  # H×W float32 planar depth; ≥ 1e9 where nothing was hit
    normals: np.ndarray  # H×W×3 float32 world-space normals

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        return self.alpha.shape[1], self.alpha.shape[0]


def render_paths(render_dir: str | Path, name: str) -> tuple[Path, Path]:
    """(colour PNG, multilayer EXR) of view ``name``."""
    folder = Path(render_dir)
    return folder / f"{name}.png", folder / f"{name}.exr"


def find_channel(channels: dict[str, np.ndarray], suffix: str, where: str) -> np.ndarray:
    found = [name for name in channels if name == suffix or name.endswith("." + suffix)]
    if len(found) != 1:
        have = ", ".join(sorted(channels)) or "none"
        if not found:
            raise BadInput(f"{where} has no {suffix} channel (enable the pass; channels: {have})")
        raise BadInput(f"{where} has several {suffix} channels ({', '.join(sorted(found))}); render one view layer")
    return channels[found[0]]


def read_view_render(render_dir: str | Path, name: str) -> ViewRender:
    png, exr = render_paths(render_dir, name)
    for path in (png, exr):
        if not path.is_file():
            raise BadInput(f"View {name!r}: render file {path} is missing")
    pixels = read_png(png)
    if pixels.dtype != np.uint8 or pixels.shape[2] not in (3, 4):
        raise BadInput(f"{png} must be an 8-bit RGB or RGBA PNG (got {pixels.shape[2]} channels of {pixels.dtype})")
    if pixels.shape[2] == 3:
        pixels = np.concatenate([pixels, np.full(pixels.shape[:2] + (1,), 255, np.uint8)], axis=2)
    channels = read_exr(exr)
    depth, nx, ny, nz, alpha = (find_channel(channels, c, str(exr)) for c in CHANNELS)
    if alpha.shape != pixels.shape[:2]:
        (h, w), (ph, pw) = alpha.shape, pixels.shape[:2]
        raise BadInput(f"View {name!r}: {png.name} is {pw}×{ph} but {exr.name} is {w}×{h}")
    return ViewRender(pixels, alpha, depth, np.stack([nx, ny, nz], axis=2))
