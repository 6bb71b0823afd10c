"""The offline demo's settings (``batch.py demo``): a furnished room → RGBD capture → world sphere and layered world →
previews and a stereo video.

With a model (an RGBDRequest's ``model``) the panorama is generated with LDM3D instead of captured.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..params import OUTPUT_FOLDER, PIXELS, overwrite_field, param


@dataclass
class DemoRequest:
    out_dir: str = param("out/demo", "Output Folder", "Where the demo writes", path=OUTPUT_FOLDER, cli="--out")
    width: int = param(1024, "Width", "The capture's width (and a generated panorama's)", unit=PIXELS, min=16, max=8192, multiple=8)
    samples: int = param(32, "Samples", "Cycles samples per pixel", min=1, max=65536)
    step: int = param(1, "Grid Step", "The sphere's grid: every Nth pixel (1: full resolution)", min=1, max=64)
    layers: int = param(
        2,
        "Layers",
        "The world's layers (1: the single sphere only). With 2 or more the demo builds the layered world (the "
        "model, if given, paints its background) and still renders the single sphere's previews beside it",
        min=1,
        max=8,
    )
    video_width: int = param(1024, "Video Width", "Eye width of the 2 s top-bottom stereo 360° video", unit=PIXELS, min=16, max=8192)
    overwrite: bool = overwrite_field()
