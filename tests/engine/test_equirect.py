import numpy as np

from engine.world import equirect


def test_centre_left_and_quarter_columns_look_where_the_convention_says():
    v = np.array([0.5])
    centre, left, quarter = (equirect.ray_directions(np.array([u]), v)[0] for u in (0.5, 0.0, 0.25))
    np.testing.assert_allclose(centre, [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(left, [-1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(quarter, [0, 1, 0], atol=1e-12)  # left half turns toward +Y
    np.testing.assert_allclose(equirect.ray_directions(np.array([0.3]), np.array([0.0]))[0], [0, 0, 1], atol=1e-12)


def test_rays_are_unit_length():
    u = equirect.pixel_centres(64)[None, :]
    v = equirect.pixel_centres(32)[:, None]
    np.testing.assert_allclose(np.linalg.norm(equirect.ray_directions(u, v), axis=-1), 1.0, atol=1e-12)
