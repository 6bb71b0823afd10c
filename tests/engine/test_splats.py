"""Gaussian splats from an RGBD panorama: the ``.ply`` as viewers read it, and the splats rendered back from the centre."""

from __future__ import annotations

import re

import numpy as np
import pytest
from plyfile import PlyData

from engine.errors import BadInput
from engine.imagefiles import write_png
from engine.jobs import run_job
from engine.params import validate
from engine.progress import CancelToken, Reporter
from engine.world import equirect
from engine.world.splats import (
    FOOTPRINT,
    MAX_OPACITY,
    PROPERTIES,
    SH_C0,
    THICKNESS,
    SplatRequest,
    gaussians_from_rgbd,
    splats_from_rgbd,
    write_splat_ply,
)

WIDTH, HEIGHT = 64, 32


def smooth_panorama(width: int = WIDTH, height: int = HEIGHT) -> tuple[np.ndarray, np.ndarray]:
    """Colours and distances that vary smoothly over the sphere (across the seam and the poles too)."""
    rays = equirect.ray_directions(equirect.pixel_centres(width)[None, :], equirect.pixel_centres(height)[:, None])
    rgb = 0.5 + 0.3 * rays * np.array([1.0, -0.8, 0.6])
    distance = 4.0 + 0.8 * rays[..., 0] - 0.5 * rays[..., 2] + 0.3 * rays[..., 1] * rays[..., 2]
    return rgb, distance


def rotation_matrices(q: np.ndarray) -> np.ndarray:
    """N×3×3 rotations of quaternions ``w x y z``."""
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], axis=1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], axis=1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=1),
        ],
        axis=1,
    )


def columns(g: np.ndarray, prefix: str, count: int) -> np.ndarray:
    return np.stack([g[f"{prefix}{k}"] for k in range(count)], axis=1).astype(np.float64)


def render_equirect(g: np.ndarray, width: int, height: int) -> np.ndarray:
    """EWA splatting (3DGS, Kerbl et al. 2023, after Zwicker et al. 2001) into an equirectangular camera at the origin.

    Each Gaussian's covariance Σ = R S Sᵀ Rᵀ goes to the image as J Σ Jᵀ, J the Jacobian of the equirectangular
    projection at its mean; its weight at a pixel is opacity · exp(−½ dᵀ Σ₂⁻¹ d); colours are composited front to back
    in order of distance, C = Σ cᵢ αᵢ Πⱼ₍ⱼ₋ᵢ₎ (1 − αⱼ).
    """
    mean = np.stack([g["x"], g["y"], g["z"]], axis=1).astype(np.float64)
    order = np.argsort(np.linalg.norm(mean, axis=1))
    g, mean = g[order], mean[order]
    scales = np.exp(columns(g, "scale_", 3))
    rot = rotation_matrices(columns(g, "rot_", 4))
    cov = rot @ (scales[:, :, None] ** 2 * np.transpose(rot, (0, 2, 1)))

    x, y, z = mean.T
    rho2 = x * x + y * y
    rho, r2 = np.sqrt(rho2), rho2 + z * z
    lon, lat = np.arctan2(y, x), np.arctan2(z, rho)
    col = (1 - lon / np.pi) / 2 * width - 0.5  # the convention of engine.world.equirect, inverted
    row = (0.5 - lat / np.pi) * height - 0.5
    d_lon = np.stack([-y / rho2, x / rho2, np.zeros_like(x)], axis=1)
    d_lat = np.stack([-x * z / (r2 * rho), -y * z / (r2 * rho), rho / r2], axis=1)
    jac = np.stack([-width / (2 * np.pi) * d_lon, -height / np.pi * d_lat], axis=1)  # N×2×3
    cov2 = jac @ cov @ np.transpose(jac, (0, 2, 1))
    inv = np.linalg.inv(cov2)

    pj, pi = np.meshgrid(np.arange(width), np.arange(height))
    dx = pj.ravel()[None, :] - col[:, None]
    dx = (dx + width / 2) % width - width / 2  # longitude wraps
    dy = pi.ravel()[None, :] - row[:, None]
    power = -0.5 * (inv[:, 0, 0, None] * dx * dx + 2 * inv[:, 0, 1, None] * dx * dy + inv[:, 1, 1, None] * dy * dy)
    opacity = 1 / (1 + np.exp(-g["opacity"].astype(np.float64)))
    alpha = np.minimum(0.99, opacity[:, None] * np.exp(power))
    transmit = np.cumprod(np.vstack([np.ones((1, alpha.shape[1])), 1 - alpha[:-1]]), axis=0)
    colour = np.maximum(0.5 + SH_C0 * columns(g, "f_dc_", 3), 0)
    return ((transmit * alpha).T @ colour).reshape(height, width, 3)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))


def test_the_ply_has_the_reference_codes_properties_in_order_as_little_endian_float32(tmp_path):
    rgb, distance = smooth_panorama()
    path = tmp_path / "splats.ply"
    write_splat_ply(path, gaussians_from_rgbd(rgb, distance, step=2))
    ply = PlyData.read(str(path))
    assert ply.byte_order == "<" and not ply.text
    (vertex,) = ply.elements
    assert vertex.name == "vertex"
    assert [p.name for p in vertex.properties] == PROPERTIES
    assert PROPERTIES[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] and len(PROPERTIES) == 62
    assert PROPERTIES[-8:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert {p.val_dtype for p in vertex.properties} == {"f4"}
    assert vertex.count == (HEIGHT // 2) * (WIDTH // 2)


def test_the_colours_normals_and_higher_harmonics_read_back_as_viewers_show_them(tmp_path):
    rgb, distance = smooth_panorama()
    path = tmp_path / "splats.ply"
    write_splat_ply(path, gaussians_from_rgbd(rgb, distance))
    data = PlyData.read(str(path))["vertex"].data
    np.testing.assert_allclose(0.5 + SH_C0 * columns(data, "f_dc_", 3), rgb.reshape(-1, 3), atol=1e-6)
    assert not columns(data, "f_rest_", 45).any()
    assert not np.stack([data["nx"], data["ny"], data["nz"]]).any()


def test_eight_bit_colours_are_read_as_codes_over_255():
    rgb, distance = smooth_panorama()
    codes = np.round(rgb * 255).astype(np.uint8)
    g = gaussians_from_rgbd(codes, distance)
    np.testing.assert_allclose(0.5 + SH_C0 * columns(g, "f_dc_", 3), codes.reshape(-1, 3) / 255, atol=1e-6)


def test_each_centre_lies_at_its_pixels_distance_along_its_ray_from_the_centre():
    rgb, distance = smooth_panorama()
    centre = (1.0, -2.0, 0.5)
    g = gaussians_from_rgbd(rgb, distance, centre=centre)
    rays = equirect.ray_directions(equirect.pixel_centres(WIDTH)[None, :], equirect.pixel_centres(HEIGHT)[:, None])
    points = np.stack([g["x"], g["y"], g["z"]], axis=1) - centre
    np.testing.assert_allclose(points, (rays * distance[..., None]).reshape(-1, 3), atol=1e-5)


def test_quaternions_are_unit_and_turn_the_local_z_axis_onto_the_ray():
    rgb, distance = smooth_panorama()
    g = gaussians_from_rgbd(rgb, distance)
    q = columns(g, "rot_", 4)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1, atol=1e-6)
    assert (q[:, 0] >= 0).all()
    rays = equirect.ray_directions(equirect.pixel_centres(WIDTH)[None, :], equirect.pixel_centres(HEIGHT)[:, None])
    frames = rotation_matrices(q)
    np.testing.assert_allclose(frames[:, :, 2], rays.reshape(-1, 3), atol=1e-5)
    np.testing.assert_allclose(np.cross(frames[:, :, 0], frames[:, :, 1]), frames[:, :, 2], atol=1e-5)  # right-handed
    assert (frames[:, 2, 1] > 0).all()  # local y points north (up)


def test_scales_are_logs_of_the_pixels_extent_at_its_distance_and_the_thin_axis_along_the_ray():
    rgb, distance = smooth_panorama()
    step = 2
    g = gaussians_from_rgbd(rgb, distance, step=step)
    rows, cols = HEIGHT // step, WIDTH // step
    rays = equirect.ray_directions(
        ((np.arange(cols) * step + 1 + 0.5) / WIDTH)[None, :], ((np.arange(rows) * step + 1 + 0.5) / HEIGHT)[:, None]
    ).reshape(-1, 3)
    dist = distance[1::step, 1::step].ravel()
    cos_lat = np.hypot(rays[:, 0], rays[:, 1])
    sigma = np.exp(columns(g, "scale_", 3))
    np.testing.assert_allclose(sigma[:, 0], FOOTPRINT * dist * 2 * np.pi / cols * cos_lat, rtol=1e-5)
    np.testing.assert_allclose(sigma[:, 1], FOOTPRINT * dist * np.pi / rows, rtol=1e-5)
    np.testing.assert_allclose(sigma[:, 2], THICKNESS * sigma[:, :2].min(axis=1), rtol=1e-5)


def test_opacity_is_the_logit_of_alpha_up_to_the_largest_writable_and_transparent_pixels_are_left_out():
    rgb, distance = smooth_panorama()
    alpha = np.tile(np.linspace(0, 1, WIDTH), (HEIGHT, 1))
    g = gaussians_from_rgbd(rgb, distance, alpha=alpha)
    assert len(g) == HEIGHT * (WIDTH - 1)
    expected = np.minimum(np.tile(alpha[0, 1:], HEIGHT), MAX_OPACITY)
    np.testing.assert_allclose(1 / (1 + np.exp(-g["opacity"].astype(np.float64))), expected, atol=1e-6)
    opaque = gaussians_from_rgbd(rgb, distance)["opacity"]
    np.testing.assert_allclose(opaque, np.log(MAX_OPACITY / (1 - MAX_OPACITY)), rtol=1e-6)


def test_splats_rendered_from_the_centre_reproduce_the_panorama():
    rgb, distance = smooth_panorama()
    image = render_equirect(gaussians_from_rgbd(rgb, distance), WIDTH, HEIGHT)
    assert psnr(image, rgb) >= 30


def test_splats_of_every_second_pixel_rendered_at_full_size_leave_no_holes():
    """Between the sampled pixels only the Gaussians' footprints (their sizes and turns) fill the image."""
    rgb, distance = smooth_panorama()
    centre = np.array([2.0, 1.0, -1.0])
    g = gaussians_from_rgbd(rgb, distance, step=2, centre=centre)
    for k, axis in enumerate("xyz"):
        g[axis] -= centre[k]
    assert psnr(render_equirect(g, WIDTH, HEIGHT), rgb) >= 30


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rgb": np.zeros((HEIGHT, WIDTH, 4))}, "RGB must have shape"),
        ({"rgb": np.full((HEIGHT, WIDTH, 3), 1.5)}, "RGB must lie in [0, 1]"),
        ({"alpha": -np.ones((HEIGHT, WIDTH))}, "Alpha must lie in [0, 1]"),
        ({"distance": -np.ones((HEIGHT, WIDTH))}, "Metric depth must be positive"),
        ({"step": 0}, "Grid step must be"),
        ({"centre": (0.0, 1.0)}, "Centre must be three"),
    ],
)
def test_bad_input_is_refused_in_one_line(change, message):
    rgb, distance = smooth_panorama()
    args = {"rgb": rgb, "distance": distance, "alpha": None, "step": 1, "centre": (0.0, 0.0, 0.0)} | change
    with pytest.raises(BadInput, match=re.escape(message)) as caught:
        gaussians_from_rgbd(**args)
    assert "\n" not in str(caught.value)


def test_an_existing_file_is_not_replaced_unless_asked_and_nothing_is_left_half_written(tmp_path):
    rgb, distance = smooth_panorama()
    g = gaussians_from_rgbd(rgb, distance, step=4)
    path = tmp_path / "splats.ply"
    path.write_bytes(b"old")
    with pytest.raises(BadInput, match="already holds splats.ply"):
        write_splat_ply(path, g)
    assert path.read_bytes() == b"old"
    write_splat_ply(path, g, overwrite=True)
    assert PlyData.read(str(path))["vertex"].count == len(g)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["splats.ply"]


def run_splats(**fields):
    return splats_from_rgbd(SplatRequest(**fields), Reporter(lambda p: None, CancelToken()))


def test_the_job_writes_the_splats_of_an_rgba_png_and_a_metric_depth_file_the_alpha_as_opacity(tmp_path):
    rgb, distance = smooth_panorama()
    rgba = np.concatenate([rgb, np.full((HEIGHT, WIDTH, 1), 0.5)], axis=2)
    rgba[:, :8, 3] = 0  # transparent: no Gaussians
    codes = np.round(rgba * 255).astype(np.uint8)
    write_png(tmp_path / "rgb.png", codes)
    np.save(tmp_path / "depth.npy", distance.astype(np.float32))
    out = tmp_path / "out" / "splats.ply"
    request = SplatRequest(rgb_path=str(tmp_path / "rgb.png"), depth_path=str(tmp_path / "depth.npy"), out_path=str(out))
    assert validate(request) == []
    result = run_job("rgbd_splats", request, lambda p: None, CancelToken())
    assert (result.count, result.rows, result.cols, result.depth_mode) == (HEIGHT * (WIDTH - 8), HEIGHT, WIDTH, "METRIC")
    data = PlyData.read(str(out))["vertex"].data
    np.testing.assert_allclose(0.5 + SH_C0 * columns(data, "f_dc_", 3), codes[:, 8:, :3].reshape(-1, 3) / 255, atol=1e-6)
    np.testing.assert_allclose(data["opacity"], np.log(codes[0, 8, 3] / (255 - codes[0, 8, 3])), rtol=1e-5)
    points = np.stack([data["x"], data["y"], data["z"]], axis=1)
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), distance[:, 8:].ravel(), rtol=1e-5)


def test_the_job_reads_relative_depth_as_the_world_sphere_does(tmp_path):
    rgb, _ = smooth_panorama()
    write_png(tmp_path / "rgb.png", np.round(rgb * 255).astype(np.uint8))
    disparity = np.tile(np.linspace(0, 1, WIDTH), (HEIGHT, 1))
    write_png(tmp_path / "depth16.png", np.round(disparity * 65535).astype(np.uint16))
    out = tmp_path / "splats.ply"
    result = run_splats(
        rgb_path=str(tmp_path / "rgb.png"), depth_path=str(tmp_path / "depth16.png"), radius=3.0, strength=1.0, step=2, out_path=str(out)
    )
    assert (result.count, result.depth_mode, result.depth_kind) == ((HEIGHT // 2) * (WIDTH // 2), "RELATIVE", "16-bit PNG")
    data = PlyData.read(str(out))["vertex"].data
    radii = np.linalg.norm(np.stack([data["x"], data["y"], data["z"]], axis=1), axis=1)
    np.testing.assert_allclose(radii, np.tile(3.0 * (1 + (0.5 - disparity[0, 1::2])), HEIGHT // 2), rtol=1e-4)


def test_the_job_refuses_an_output_that_is_not_a_ply_and_mismatched_panoramas(tmp_path):
    rgb, distance = smooth_panorama()
    write_png(tmp_path / "rgb.png", np.round(rgb * 255).astype(np.uint8))
    np.save(tmp_path / "depth.npy", distance[:, :-2].astype(np.float32))
    with pytest.raises(BadInput, match="must be a .ply file"):
        validate(SplatRequest(rgb_path=str(tmp_path / "rgb.png"), depth_path=str(tmp_path / "depth.npy"), out_path=str(tmp_path / "a.obj")))
    with pytest.raises(BadInput, match=r"RGB \(64×32\) and depth \(62×32\) must be the same size"):
        run_splats(rgb_path=str(tmp_path / "rgb.png"), depth_path=str(tmp_path / "depth.npy"), out_path=str(tmp_path / "a.ply"))
    assert not (tmp_path / "a.ply").exists()
