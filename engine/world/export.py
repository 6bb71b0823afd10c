"""Worlds out of Blender: what an export asks for, and the engine's part of it.

One request (:class:`ExportRequest`) declares the export for the operator, ``batch.py export`` and ``batch.py sphere
--export``. The mesh formats (glTF, USD) are written by Blender's own exporters (``operators/export.py``); the
``export_world`` job gives them the mesh to write, or writes the splats itself:

- **Fewer faces**: a world sphere is a longitude-latitude grid, so a target face count is met by keeping every k-th
  row and column (the smallest k that meets it), each kept vertex where it was and with its UVs, the depth cuts made
  again at the coarser grid (:func:`coarser`). Regular, exact at the kept samples, and fast: no edge collapses.
- **Splats**: the world's panoramas read as the world sphere read them (its recorded depth settings), through the
  ``rgbd_splats`` job's own code (:mod:`.splats`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..choices import EXPORT_FORMATS
from ..errors import BadInput
from ..params import OUTPUT_FILE, SEED_MAX, Note, Refused, overwrite_field, param, refuse, same_as, validate
from ..progress import Reporter
from .splats import SplatRequest, splats_from_rgbd
from .world_sphere import SphereMesh, mesh_from_grid, sample_indices

AUTO, GLB, GLTF, USDZ, USDC, SPLAT_PLY = EXPORT_FORMATS.ids
#: Every grid keeps at least this many rows and columns (a sphere of 2×3 samples).
MIN_ROWS, MIN_COLS = 2, 3


def grid_faces(rows: int, cols: int) -> int:
    """Faces of a whole world sphere grid: quads between rows, a triangle fan at each pole."""
    return (rows - 1) * cols + 2 * cols


def format_of(filepath: str, chosen: str) -> str:
    """The format ``chosen``, or the one the file's extension names (Auto); refused where they disagree."""
    suffix = Path(filepath).suffix.lower()
    by_suffix = {f.suffix: f.id for f in EXPORT_FORMATS if f.suffix}
    if chosen == AUTO:
        if suffix not in by_suffix:
            refuse("filepath", f"its extension names no format: end it in {', '.join(by_suffix)}")
        return by_suffix[suffix]
    wanted = EXPORT_FORMATS[chosen].suffix
    if suffix != wanted:
        refuse("filepath", f"a {EXPORT_FORMATS[chosen].label} file ends in {wanted}")
    return chosen


@dataclass
class SphereGrid:
    """A world sphere's mesh as built: ``rows``·``cols`` grid vertices row by row, then the two poles (object space)."""

    vertices: np.ndarray  # (rows·cols + 2, 3) float32
    rows: int
    cols: int
    discontinuity: float = 0.0  # the build's depth cut (0: none), made again on the coarser grid


@dataclass
class ExportRequest:
    filepath: str = param(
        "",
        "File",
        "Where to write the world: .glb, .gltf, .usdz, .usdc, or .ply for Gaussian splats; its folder must exist",
        path=OUTPUT_FILE,
        cli="--out",
        cli_required=True,
    )
    format: str = param(AUTO, "Format", "The file format", choices=EXPORT_FORMATS)
    target_faces: int = param(
        0,
        "Target Faces",
        "At most this many faces, for viewers with limits (many web viewers want under 100,000; a 1024×512 grid has 525,312): "
        "the world sphere keeps every k-th row and column. 0: every face",
        min=0,
        max=SEED_MAX,
        why="Blender's integer properties are 32-bit",
    )
    camera_path: bool = param(True, "Camera Path", "The stereo rig's camera and its animation too (glTF and USD)")
    splat_step: int = param(1, "Splat Step", "Gaussian splats: one every Nth pixel (1: one per pixel)", min=1, max=64)
    object_name: str = param(
        "",
        "Object",
        "The world sphere or mesh to export (default: the active object, else the scene's one world sphere)",
        blender=True,
        cli="--object",
    )
    overwrite: bool = overwrite_field("Replace an existing file")
    grid: SphereGrid | None = None  # the world sphere to make coarser (target faces), from Blender
    splats: SplatRequest | None = None  # the world's panoramas and how its depth was read, from Blender

    def check(self) -> list[Note]:
        chosen = format_of(self.filepath, self.format)
        folder = Path(self.filepath).expanduser().parent
        if not folder.is_dir():
            refuse("filepath", f"no such folder {folder} (make it first)")
        if Path(self.filepath).expanduser().exists() and not self.overwrite:
            refuse("filepath", "already exists ({overwrite} replaces it)")
        if chosen == SPLAT_PLY and self.target_faces:
            refuse("target_faces", "splats have no faces: choose their {splat_step}")
        return []

    @property
    def chosen(self) -> str:
        return format_of(self.filepath, self.format)


@dataclass
class AlsoExport:
    """``batch.py sphere … --export FILE``: the world exported too, in one go, its file checked before the sphere is built."""

    export: str = param("", "Export", "Also export the world: .glb, .gltf, .usdz, .usdc, or .ply for Gaussian splats", path=OUTPUT_FILE)
    target_faces: int = same_as(ExportRequest, "target_faces")

    def check(self) -> list[Note]:
        try:  # the export's own rules (whether its file may be replaced: request(), by the scene's --overwrite)
            self.export and ExportRequest(filepath=self.export, target_faces=self.target_faces, overwrite=True).check()
        except Refused as exc:
            refuse("export" if exc.field == "filepath" else exc.field, exc.why)
        return []

    def request(self, overwrite: bool) -> ExportRequest | None:
        if not self.export:
            return None
        if Path(self.export).expanduser().exists() and not overwrite:
            raise BadInput(f"--export {self.export!r}: already exists (--overwrite replaces it)")
        return ExportRequest(filepath=self.export, target_faces=self.target_faces, overwrite=overwrite)


@dataclass
class ExportResult:
    format: str
    path: str = ""  # the splats' file (the mesh formats are written in Blender)
    splat_count: int = 0
    mesh: SphereMesh | None = None  # the coarser world sphere to write, if a target face count asked for one
    grid_step: int = 1  # rows and columns kept: every grid_step-th

    def summary(self) -> dict[str, Any]:
        return {"format": self.format, "path": self.path, "splats": self.splat_count, "grid_step": self.grid_step}


def grid_directions(grid: SphereGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid's image coordinates (``u`` per column, ``v`` per row) and its distances, read back from its vertices."""
    rows, cols = grid.rows, grid.cols
    if grid.vertices.shape != (rows * cols + 2, 3):
        raise BadInput(
            f"The world sphere's mesh was edited ({len(grid.vertices):,} vertices; its {cols}×{rows} grid has {rows * cols + 2:,}): "
            "only a world sphere as built can be made coarser; export it with every face (Target Faces 0)"
        )
    points = grid.vertices[: rows * cols].reshape(rows, cols, 3).astype(np.float64)
    dist = np.linalg.norm(points, axis=-1)
    if not np.all(dist > 0):
        raise BadInput("The world sphere has a vertex at its centre: only a world sphere as built can be made coarser")
    middle = points[rows // 2] / dist[rows // 2, :, None]  # the equator's row: longitude is best defined there
    u = (1.0 - np.arctan2(middle[:, 1], middle[:, 0]) / np.pi) / 2.0  # the inverse of equirect.ray_directions
    v = 0.5 - np.arcsin(np.clip(points[:, 0, 2] / dist[:, 0], -1.0, 1.0)) / np.pi
    return u, v, dist


def coarser(grid: SphereGrid, target_faces: int) -> tuple[SphereMesh, int]:
    """The world sphere keeping every k-th row and column, k the smallest that leaves at most ``target_faces`` faces."""
    u, v, dist = grid_directions(grid)
    rows, cols = grid.rows, grid.cols
    largest = max(1, min(rows // MIN_ROWS, cols // MIN_COLS))
    step = next((k for k in range(2, largest + 1) if grid_faces(rows // k, cols // k) <= target_faces), 0)
    if not step:
        fewest = grid_faces(rows // largest, cols // largest)
        raise BadInput(f"Target Faces {target_faces:,}: this world sphere keeps at least {fewest:,} faces ({cols}×{rows} grid)")
    keep_rows, keep_cols = sample_indices(rows, rows // step), sample_indices(cols, cols // step)
    mesh = mesh_from_grid(u[keep_cols], v[keep_rows], dist[np.ix_(keep_rows, keep_cols)], grid.discontinuity)
    return mesh, step


def export_world(request: ExportRequest, report: Reporter) -> ExportResult:
    """The ``export_world`` job: the splats written, or the mesh the exporter is to write (made coarser if asked)."""
    chosen = request.chosen
    if chosen == SPLAT_PLY:
        if request.splats is None:
            raise BadInput("Splats need the world's RGB and depth panoramas")
        splats = dataclasses.replace(request.splats, out_path=request.filepath, overwrite=request.overwrite, step=request.splat_step)
        validate(splats)
        written = splats_from_rgbd(splats, report)
        return ExportResult(chosen, written.path, written.count, grid_step=request.splat_step)
    report.total = 1
    if not request.target_faces or request.grid is None:
        report.step("Done")
        return ExportResult(chosen)
    mesh, step = coarser(request.grid, request.target_faces)
    report.step(f"Grid step {step}: {len(mesh.face_starts):,} faces")
    return ExportResult(chosen, mesh=mesh, grid_step=step)
