"""FVGrid and Boundaries: geometry, mass, validation."""

import jax.numpy as jnp
import numpy as np
import pytest

from plumax_transport._fv_boundary import Boundaries
from plumax_transport._fv_grid import FVGrid

X = np.arange(4) * 50.0 + 25.0
Y = np.arange(3) * 20.0 + 10.0
ZE = np.array([0.0, 10.0, 30.0, 70.0])


def test_geometry(x64):
    g = FVGrid(X, Y, ZE)
    assert (g.nx, g.ny, g.nz) == (4, 3, 3) and g.shape == (3, 3, 4)
    assert g.dx == 50.0 and g.dy == 20.0
    np.testing.assert_allclose(g.z, [5.0, 20.0, 50.0])
    np.testing.assert_allclose(g.dz, [10.0, 20.0, 40.0])
    np.testing.assert_allclose(g.x_edges, [0.0, 50.0, 100.0, 150.0, 200.0])
    np.testing.assert_allclose(g.y_edges, [0.0, 20.0, 40.0, 60.0])
    assert g.cell_volume.shape == (3, 1, 1)
    # total volume = box volume, mass of a uniform density = density * volume
    assert float(jnp.sum(g.cell_volume * jnp.ones(g.shape))) == pytest.approx(200 * 60 * 70)
    assert float(g.mass(jnp.full(g.shape, 2.0))) == pytest.approx(2.0 * 200 * 60 * 70)
    q = np.zeros(g.shape)
    q[2, 1, 3] = 1.0
    assert float(g.mass(q)) == pytest.approx(50 * 20 * 40)


def test_single_cell_axis_needs_spacing():
    g = FVGrid([0.0], Y, ZE, dx=100.0)
    assert g.dx == 100.0 and g.nx == 1
    with pytest.raises(ValueError, match="dx="):
        FVGrid([0.0], Y, ZE)
    with pytest.raises(ValueError, match="dy="):
        FVGrid(X, [0.0], ZE)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": [0.0, 1.0, 3.0]}, "`x`.*uniform"),
        ({"y": [[0.0, 1.0]]}, "`y`.*1-D"),
        ({"x": [0.0, np.nan]}, "`x`.*finite"),
        ({"z_edges": [1.0, 2.0]}, r"`z_edges\[0\]`"),
        ({"z_edges": [0.0, 2.0, 2.0]}, "`z_edges`.*increasing"),
        ({"z_edges": [0.0]}, "`z_edges`"),
        ({"x": [3.0, 2.0, 1.0]}, "`x`"),
    ],
)
def test_grid_validation(kwargs, match):
    args = {"x": X, "y": Y, "z_edges": ZE} | kwargs
    with pytest.raises(ValueError, match=match):
        FVGrid(args["x"], args["y"], args["z_edges"])


def test_mass_shape_checked():
    with pytest.raises(ValueError, match="`q`"):
        FVGrid(X, Y, ZE).mass(jnp.zeros((3, 4, 3)))


def test_boundaries_validation():
    b = Boundaries(west="periodic", east="periodic")
    assert b.axis(2) == ("periodic", "periodic") and b.axis(0) == ("closed", "closed")
    with pytest.raises(ValueError, match="paired"):
        Boundaries(west="periodic")
    with pytest.raises(ValueError, match="paired"):
        Boundaries(north="periodic")
    with pytest.raises(ValueError, match="`top`"):
        Boundaries(top="periodic")
    with pytest.raises(ValueError, match="`bottom`"):
        Boundaries(bottom="wall")
    with pytest.raises(ValueError, match="`background`"):
        Boundaries(background=-1.0)
