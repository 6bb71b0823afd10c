"""RGBD panorama → displaced world-sphere mesh (DepthFusion stage 2).

A vertex sits on each sampled pixel's ray at that pixel's distance, so the mesh
seen from its centre reproduces the panorama and seen from anywhere else shows
the scene's depth. Arrays come out in the layout Blender's bulk setters take
(vertex coordinates, face start offsets, corner → vertex indices, corner UVs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..choices import DEPTH_MAPPINGS, DEPTH_MODES, SPHERE_PLACES
from ..diffusion.sources import ModelAccess
from ..errors import BadInput
from ..params import INPUT_FILE, LENGTH, PIXELS, Note, nested, param, refuse, same_as
from ..progress import Reporter
from . import depth as depthlib
from . import equirect, inpaint, layers
from .capture import capture_origin
from .inpaint import InpaintOptions
from .layers import EDGE_THRESHOLD
from .parallax import safe_radius
from .rgbd import read_depth

#: Above this many grid vertices a mesh is surely a mistake (a 16k×8k panorama at full grid).
MAX_VERTICES = 134_217_728


@dataclass
class SphereMesh:
    """A world sphere in Blender's mesh layout. Faces: quads, then pole triangles."""

    vertices: np.ndarray  # (V, 3) float32
    face_starts: np.ndarray  # (F,) int32, offset of each face's first corner
    corner_verts: np.ndarray  # (L,) int32
    corner_uvs: np.ndarray  # (L, 2) float32, v up as Blender's UVs
    edge_verts: np.ndarray  # (E, 2) int32, every edge once
    corner_edges: np.ndarray  # (L,) int32, edge from each corner to the next corner of its face
    grid_shape: tuple[int, int]  # (rows, columns) of the sampled grid
    dropped_faces: int  # faces removed across depth discontinuities


def grid_shape(height: int, width: int, step: int) -> tuple[int, int]:
    """Rows and columns sampled at every ``step``-th pixel (step 1 = full resolution)."""
    if step < 1:
        raise BadInput(f"Grid step must be 1 (full), 2 (half), 4 (quarter) …, got {step}")
    rows, cols = height // step, width // step
    if rows < 2 or cols < 3:
        raise BadInput(f"Grid step {step} leaves {rows}×{cols} samples of a {width}×{height} panorama; use a smaller step")
    if rows * cols > MAX_VERTICES:
        raise BadInput(f"A {cols}×{rows} grid is too large ({rows * cols:,} vertices); use a larger step")
    return rows, cols


def sample_indices(count: int, samples: int) -> np.ndarray:
    """Pixel nearest to the centre of each of ``samples`` equal blocks."""
    return np.minimum(((np.arange(samples) + 0.5) * count / samples).astype(np.int64), count - 1)


def grid_pixels(height: int, width: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the pixels a grid of ``step`` samples (:func:`grid_shape` of them)."""
    rows, cols = grid_shape(height, width, step)
    return sample_indices(height, rows), sample_indices(width, cols)


def build_world_sphere(distance: np.ndarray, step: int = 1, discontinuity: float = 0.0) -> SphereMesh:
    """Mesh whose vertices sit at ``distance`` (H×W ray distances) along each sampled pixel's ray.

    Longitude wraps: the last column joins the first through shared vertices, while
    the UVs of that seam continue past u = 1 so the (repeating) texture does not
    smear back across the image. Each pole is one vertex at the median distance of
    its nearest row. With ``discontinuity`` > 0, a face whose corner distances
    differ by more than that ratio (far/near − 1) is dropped, leaving a hole
    instead of a stretched "rubber sheet".
    """
    if distance.ndim != 2:
        raise BadInput(f"Distance must be H×W, got shape {distance.shape}")
    height, width = distance.shape
    row_idx, col_idx = grid_pixels(height, width, step)
    return mesh_from_grid((col_idx + 0.5) / width, (row_idx + 0.5) / height, distance[np.ix_(row_idx, col_idx)], discontinuity)


def mesh_from_grid(u: np.ndarray, v: np.ndarray, dist: np.ndarray, discontinuity: float = 0.0) -> SphereMesh:
    """The world sphere of a grid: ``dist`` (rows×cols ray distances) at columns ``u`` and rows ``v`` (image coordinates)."""
    if discontinuity < 0:
        raise BadInput(f"Discontinuity threshold must be ≥ 0 (0 = keep every face), got {discontinuity}")
    rows, cols = v.size, u.size
    dist = dist.astype(np.float64)
    rays = equirect.ray_directions(u[None, :], v[:, None])
    top, bottom = float(np.median(dist[0])), float(np.median(dist[-1]))
    vertices = np.empty((rows * cols + 2, 3), dtype=np.float32)
    vertices[:-2] = (rays * dist[..., None]).reshape(-1, 3)
    vertices[-2:] = [[0.0, 0.0, top], [0.0, 0.0, -bottom]]

    # Corners index a table of "UV points": the grid plus one extra column that
    # repeats column 0 at u + 1 (the seam), plus one pole point per column.
    ext = np.arange(rows * (cols + 1), dtype=np.int32).reshape(rows, cols + 1)
    top_pole = ext.size + np.arange(cols, dtype=np.int32)
    bottom_pole = top_pole + cols
    point_vertex = np.empty(ext.size + 2 * cols, dtype=np.int32)
    point_vertex[: ext.size].reshape(rows, cols + 1)[:, :cols] = np.arange(rows * cols).reshape(rows, cols)
    point_vertex[: ext.size].reshape(rows, cols + 1)[:, cols] = np.arange(0, rows * cols, cols)
    point_vertex[top_pole], point_vertex[bottom_pole] = rows * cols, rows * cols + 1

    u_ext = np.append(u, u[0] + 1.0)
    point_uv = np.empty((point_vertex.size, 2), dtype=np.float32)
    grid_uv = point_uv[: ext.size].reshape(rows, cols + 1, 2)
    grid_uv[..., 0] = u_ext[None, :]
    grid_uv[..., 1] = (1.0 - v)[:, None]
    point_uv[top_pole, 0] = point_uv[bottom_pole, 0] = (u_ext[:-1] + u_ext[1:]) / 2
    point_uv[top_pole, 1], point_uv[bottom_pole, 1] = 1.0, 0.0

    # Corner order (i, j) → (i+1, j) → (i+1, j+1) → (i, j+1) gives normals facing the centre.
    quad_grid = np.empty((rows - 1, cols, 4), dtype=np.int32)
    quad_grid[..., 0], quad_grid[..., 1] = ext[:-1, :-1], ext[1:, :-1]
    quad_grid[..., 2], quad_grid[..., 3] = ext[1:, 1:], ext[:-1, 1:]
    quads = quad_grid.reshape(-1, 4)
    pole_grid = np.empty((2, cols, 3), dtype=np.int32)
    pole_grid[0, :, 0], pole_grid[0, :, 1], pole_grid[0, :, 2] = top_pole, ext[0, :-1], ext[0, 1:]
    pole_grid[1, :, 0], pole_grid[1, :, 1], pole_grid[1, :, 2] = ext[-1, :-1], bottom_pole, ext[-1, 1:]
    tris = pole_grid.reshape(-1, 3)
    edge_verts, quad_edges, tri_edges = _grid_edges(rows, cols)

    dropped = 0
    if discontinuity > 0:
        corner_dist = np.append(dist.ravel(), [top, bottom])[point_vertex]
        quad_keep = _continuous(corner_dist[quads], discontinuity)
        tri_keep = _continuous(corner_dist[tris], discontinuity)
        dropped = int(quad_keep.size - quad_keep.sum() + tri_keep.size - tri_keep.sum())
        quads, tris = quads[quad_keep], tris[tri_keep]
        quad_edges, tri_edges = quad_edges[quad_keep], tri_edges[tri_keep]

    corners = np.concatenate([quads.ravel(), tris.ravel()])
    corner_edges = np.concatenate([quad_edges.ravel(), tri_edges.ravel()])
    if dropped:  # keep only edges some face still uses
        used = np.zeros(len(edge_verts), dtype=bool)
        used[corner_edges] = True
        corner_edges = (np.cumsum(used, dtype=np.int32) - 1)[corner_edges]
        edge_verts = edge_verts[used]
    face_starts = np.concatenate(
        [np.arange(0, 4 * len(quads), 4, dtype=np.int32), np.arange(4 * len(quads), corners.size, 3, dtype=np.int32)]
    )
    return SphereMesh(
        vertices=vertices,
        face_starts=face_starts,
        corner_verts=point_vertex[corners],
        corner_uvs=point_uv[corners],
        edge_verts=edge_verts,
        corner_edges=corner_edges.astype(np.int32, copy=False),
        grid_shape=(rows, cols),
        dropped_faces=dropped,
    )


def _grid_edges(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every edge of the closed grid once, and the edge after each face corner.

    Edge ids: row edges (i, j)–(i, j+1) first, then column edges (i, j)–(i+1, j),
    then the top and bottom pole spokes. Knowing them saves Blender from
    deriving edges from the faces, the slowest step of making the mesh.
    """
    grid = np.arange(rows * cols, dtype=np.int32).reshape(rows, cols)
    right = np.roll(grid, -1, axis=1)
    n_row, n_col = rows * cols, (rows - 1) * cols
    top_id, bottom_id = rows * cols, rows * cols + 1
    edge_verts = np.empty((n_row + n_col + 2 * cols, 2), dtype=np.int32)
    edge_verts[:n_row, 0], edge_verts[:n_row, 1] = grid.ravel(), right.ravel()
    edge_verts[n_row : n_row + n_col, 0], edge_verts[n_row : n_row + n_col, 1] = grid[:-1].ravel(), grid[1:].ravel()
    spokes = n_row + n_col
    edge_verts[spokes : spokes + cols, 0], edge_verts[spokes : spokes + cols, 1] = top_id, grid[0]
    edge_verts[spokes + cols :, 0], edge_verts[spokes + cols :, 1] = grid[-1], bottom_id

    row_edge = grid  # id of edge (i, j)–(i, j+1)
    col_edge = n_row + grid[:-1]  # id of edge (i, j)–(i+1, j)
    col_edge_right = np.roll(col_edge, -1, axis=1)
    top_spoke = spokes + np.arange(cols, dtype=np.int32)
    bottom_spoke = top_spoke + cols
    quad_edges = np.empty((rows - 1, cols, 4), dtype=np.int32)
    # Corners (i, j) → (i+1, j) → (i+1, j+1) → (i, j+1), each to the next.
    quad_edges[..., 0], quad_edges[..., 1] = col_edge, row_edge[1:]
    quad_edges[..., 2], quad_edges[..., 3] = col_edge_right, row_edge[:-1]
    tri_edges = np.empty((2, cols, 3), dtype=np.int32)
    tri_edges[0, :, 0], tri_edges[0, :, 1], tri_edges[0, :, 2] = top_spoke, row_edge[0], np.roll(top_spoke, -1)
    tri_edges[1, :, 0], tri_edges[1, :, 1], tri_edges[1, :, 2] = bottom_spoke, np.roll(bottom_spoke, -1), row_edge[-1]
    return edge_verts, quad_edges.reshape(-1, 4), tri_edges.reshape(-1, 3)


def _continuous(corner_dist: np.ndarray, threshold: float) -> np.ndarray:
    """True for faces whose farthest corner is within (1 + threshold) × the nearest."""
    return corner_dist.max(axis=1) <= corner_dist.min(axis=1) * (1.0 + threshold)


@dataclass
class WorldSphereRequest:
    rgb_path: str = param(
        "", "RGB", "The colour panorama (2:1)", path=INPUT_FILE, cli="--rgb", cli_required=True, blender=True
    )  # the operator's material reads it; the engine needs only its size
    depth_path: str = param(
        "",
        "Depth",
        "The depth panorama: float EXR/.npy/HDR/TIFF distances (Metric), or 8/16-bit disparity, near = bright (Relative)",
        path=INPUT_FILE,
        cli="--depth",
        cli_required=True,
    )
    rgb_image: str = param("", "RGB Image", "A loaded image to use instead of the RGB file", blender=True, cli=None)
    depth_image: str = param("", "Depth Image", "A loaded image to use instead of the depth file", blender=True, cli=None)
    depth_mode: str = param(depthlib.AUTO, "Depth Values", "How the depth's values are read", choices=DEPTH_MODES, cli="--mode")
    relative_mapping: str = param(
        depthlib.OFFSET, "Mapping", "Relative depth: the paper's offset or inverse depth", choices=DEPTH_MAPPINGS, cli="--mapping"
    )
    radius: float = param(
        5.0, "Radius", "Offset: the distance of disparity 0.5", unit=LENGTH, min=0.0, open_min=True, max=1e6, soft=(0.1, 100.0)
    )
    strength: float = param(
        1.0,
        "Strength",
        "Offset: how far disparity moves a vertex",
        min=0.0,
        max=2.0,
        open_max=True,
        soft=(0.0, 1.99),
        why="at 2 the nearest vertices reach the viewer",
    )
    near: float = param(1.0, "Near", "Inverse depth: the distance of disparity 1", unit=LENGTH, min=0.0, open_min=True, max=1e6)
    far: float = param(10.0, "Far", "Inverse depth: the distance of disparity 0", unit=LENGTH, min=0.0, open_min=True, max=1e6)
    step: int = param(2, "Grid Step", "Sample every Nth pixel: 1 full resolution, 2 half, 4 quarter …", min=1, max=64, prop="grid_step")
    discontinuity: float = param(
        0.0,
        "Cut Jumps",
        "Drop faces whose far corner is more than this fraction farther than the near one (0 keeps every face)",
        min=0.0,
        max=1e6,
        soft=(0.0, 2.0),
        cli="--cut",
    )
    layers: int = param(
        1,
        "Layers",
        "1: one sphere. 2 or more: the foreground at depth edges becomes layers of its own in front of a background "
        "filled behind it, so a viewpoint off the centre sees no stretched curtains",
        min=1,
        max=8,
    )
    edge_threshold: float = param(
        EDGE_THRESHOLD,
        "Edge Threshold",
        "Layers: a depth edge is where neighbours' distances differ by more than this fraction",
        min=0.0,
        open_min=True,
        max=100.0,
    )
    min_region: int = param(
        64, "Minimum Region", "Layers: smaller foreground regions stay in the background", unit=PIXELS, min=1, max=2**24
    )
    reach: float = param(
        0.5,
        "Walk Radius",
        "Layers: how far from the centre a viewer may step and see behind the foreground (how deep it is filled behind)",
        unit=LENGTH,
        min=0.0,
        open_min=True,
        max=1e3,
    )
    border: int = param(
        2, "Border", "Layers: pixels past each region's edge over which it fades out onto the background's own", unit=PIXELS, min=0, max=64
    )
    inpaint: InpaintOptions = nested(InpaintOptions)
    access: ModelAccess = nested(ModelAccess)
    place: str = param(
        "ORIGIN",
        "Place At",
        "Where the centre of a sphere that is not from a capture goes (a capture's goes where it was captured)",
        choices=SPHERE_PLACES,
        blender=True,
    )
    name: str = param("World Sphere", "Name", "The new object's name", blender=True)
    # Filled by the operator:
    depth: np.ndarray | None = None  # H×W metric distances or relative disparity in [0, 1]; None: read depth_path
    rgb_size: tuple[int, int] = (0, 0)  # (width, height) of the colour panorama it will wear
    rgb: np.ndarray | None = None  # H×W×3 colours in [0, 1], for layers (the background's filled behind the foreground)

    def check(self) -> list[Note]:
        if self.relative_mapping == depthlib.INVERSE and not self.near < self.far:
            refuse("far", f"must be farther than Near ({self.near:g})")
        if self.inpaint.inpaint_model and self.layers < 2:
            refuse("inpaint_model", "paints behind the foreground layers: set Layers to 2 or more")
        return []


@dataclass
class LayeredWorldRequest(WorldSphereRequest):
    """A world sphere in layers (``build_layered_world``): the same request, two layers unless told."""

    layers: int = same_as(WorldSphereRequest, "layers", default=2)
    name: str = same_as(WorldSphereRequest, "name", default="Layered World")


@dataclass
class WorldLayer:
    """One foreground layer of a layered world: its mesh (cut where its alpha ends) and its texture with that alpha."""

    mesh: SphereMesh
    rgba: np.ndarray  # H×W×4 float32


@dataclass
class WorldSphereResult:
    vertices: np.ndarray
    face_starts: np.ndarray
    corner_verts: np.ndarray
    corner_uvs: np.ndarray
    edge_verts: np.ndarray
    corner_edges: np.ndarray
    rows: int = 0
    cols: int = 0
    dropped_faces: int = 0
    min_distance: float = 0.0
    median_distance: float = 0.0
    max_distance: float = 0.0
    safe_radius: float = 0.0  # how far a viewpoint may move from the centre (see parallax)
    depth_mode: str = ""  # the mode used (AUTO resolved)
    depth_kind: str = ""  # how the depth was stored: "float EXR", "16-bit PNG", "array", …
    capture_origin: list[float] = field(default_factory=list)  # where a captured depth was taken; [] otherwise
    background: np.ndarray | None = None  # a layered world: the background's colours, filled behind the layers (H×W×3)
    layers: list[WorldLayer] = field(default_factory=list)  # a layered world's foreground layers, farther before nearer
    clamped: float = 0.0  # share of the filled background pushed behind its occluder
    painted_by: str = ""  # the model that painted a layered world's background; "" geometric (or one sphere)


class DepthReading(Protocol):
    """A request's depth panorama and how its values are read: the world sphere's fields (:class:`WorldSphereRequest`)."""

    depth_path: str
    depth: np.ndarray | None
    depth_mode: str
    relative_mapping: str
    radius: float
    strength: float
    near: float
    far: float


def request_distances(request: DepthReading, rgb_size: tuple[int, int]) -> tuple[np.ndarray, str, str]:
    """A request's depth (its file, else its array) as ray distances, the mode used (AUTO resolved) and how it was
    stored; refused unless 2:1 and the size of its colour panorama, ``rgb_size`` (width, height)."""
    if request.depth_path:
        stored = read_depth(request.depth_path, request.depth_mode)
        depth, kind, mode = stored.values, stored.kind, stored.mode
    elif request.depth is not None:
        depth, kind, mode = np.asarray(request.depth), "array", request.depth_mode
        if mode == depthlib.AUTO:
            depth, mode = depthlib.as_stored(depth)
    else:
        raise BadInput("No depth panorama: give a depth file (or an array)")
    height, width = depth.shape[:2]
    if tuple(rgb_size) != (width, height):
        rw, rh = rgb_size
        raise BadInput(f"RGB ({rw}×{rh}) and depth ({width}×{height}) must be the same size")
    if width != 2 * height:
        raise BadInput(f"An equirectangular panorama is 2:1 (width = 2 × height), got {width}×{height}")
    dist = depthlib.distances(
        depth,
        mode,
        mapping=request.relative_mapping,
        radius=request.radius,
        strength=request.strength,
        near=request.near,
        far=request.far,
    )
    return dist, mode, kind


def sphere_from_depth(request: WorldSphereRequest, report: Reporter) -> WorldSphereResult:
    """The ``world_sphere`` job: a depth panorama (file or array) → the mesh arrays and the figures the rig needs."""
    report.total = 3
    dist, mode, kind = request_distances(request, request.rgb_size)
    report.step("Depth to distance")
    layered = None
    if request.layers > 1:
        if request.rgb is None:
            raise BadInput("Layers need the panorama's colours: the background is filled behind the foreground")
        painter = None
        if request.inpaint.inpaint_model:
            report.total += request.inpaint.steps + 4  # loading, then the pipeline's
            prompt = inpaint.panorama_prompt(request.inpaint, request.rgb_path, request.depth_path)
            painter = inpaint.model_painter(request.inpaint, request.access, prompt, True, report)
        layered = layers.peel(
            request.rgb, dist, request.layers, request.edge_threshold, request.min_region, request.border, request.reach, painter=painter
        )
    if layered is not None and len(layered.layers) > 1:
        background = layered.layers[0]
        mesh = build_world_sphere(background.distance, request.step)  # whole: what it hides is filled
        fronts = [
            WorldLayer(_layer_mesh(layer, request.step, request.edge_threshold), np.dstack([layer.rgb, layer.alpha]))
            for layer in layered.layers[1:]
        ]
        report.step(f"{len(fronts)} foreground layer{'s' * (len(fronts) > 1)} of {layered.regions} region{'s' * (layered.regions > 1)}")
    else:
        if layered is not None:
            report.note("No foreground at depth edges: one sphere")
        mesh, background, fronts = build_world_sphere(dist, request.step, request.discontinuity), None, []
        report.step("Building the mesh")
    result = WorldSphereResult(
        vertices=mesh.vertices,
        face_starts=mesh.face_starts,
        corner_verts=mesh.corner_verts,
        corner_uvs=mesh.corner_uvs,
        edge_verts=mesh.edge_verts,
        corner_edges=mesh.corner_edges,
        rows=mesh.grid_shape[0],
        cols=mesh.grid_shape[1],
        dropped_faces=mesh.dropped_faces,
        min_distance=float(dist.min()),
        median_distance=float(np.median(dist)),
        max_distance=float(dist.max()),
        safe_radius=safe_radius(dist),
        depth_mode=mode,
        depth_kind=kind,
        capture_origin=capture_origin(request.depth_path) if request.depth_path else [],
        background=background.rgb if background is not None else None,
        layers=fronts,
        clamped=layered.clamped if layered is not None else 0.0,
        painted_by=request.inpaint.inpaint_model if fronts and request.inpaint.inpaint_model else "",
    )
    report.step("Done", done=report.total)  # an inpainting that found nothing to paint skipped its steps
    return result


def _layer_mesh(layer: layers.Layer, step: int, cut: float) -> SphereMesh:
    """A foreground layer's mesh: the grid at its distances, only the faces whose every corner it covers, cut where
    its own distances jump by more than ``cut`` (an object before another in one layer is no curtain either)."""
    height, width = layer.distance.shape
    row_idx, col_idx = grid_pixels(height, width, step)
    covered = layer.alpha[np.ix_(row_idx, col_idx)] > 0
    distances = np.where(covered, layer.distance[np.ix_(row_idx, col_idx)], 1.0)
    mesh = mesh_from_grid((col_idx + 0.5) / width, (row_idx + 0.5) / height, distances, cut)
    vertex_covered = np.append(covered.ravel(), [False, False])  # the poles are the background's
    return keep_faces(mesh, np.logical_and.reduceat(vertex_covered[mesh.corner_verts], mesh.face_starts))


def keep_faces(mesh: SphereMesh, keep: np.ndarray) -> SphereMesh:
    """``mesh`` with only the faces ``keep`` marks, its unused vertices and edges gone."""
    sizes = np.diff(np.append(mesh.face_starts, len(mesh.corner_verts)))  # corners per face
    keep_corner = np.repeat(keep, sizes)
    corner_verts, corner_edges = mesh.corner_verts[keep_corner], mesh.corner_edges[keep_corner]
    used_verts = np.zeros(len(mesh.vertices), bool)
    used_verts[corner_verts] = True
    used_edges = np.zeros(len(mesh.edge_verts), bool)
    used_edges[corner_edges] = True
    vertex_at, edge_at = np.cumsum(used_verts) - 1, np.cumsum(used_edges) - 1
    kept_sizes = sizes[keep]
    return SphereMesh(
        vertices=mesh.vertices[used_verts],
        face_starts=(np.cumsum(kept_sizes) - kept_sizes).astype(np.int32),
        corner_verts=vertex_at[corner_verts].astype(np.int32),
        corner_uvs=mesh.corner_uvs[keep_corner],
        edge_verts=vertex_at[mesh.edge_verts[used_edges]].astype(np.int32),
        corner_edges=edge_at[corner_edges].astype(np.int32),
        grid_shape=mesh.grid_shape,
        dropped_faces=int((~keep).sum()),
    )
