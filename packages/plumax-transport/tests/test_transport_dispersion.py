"""σy, σz against the Briggs (1973) formulas as tabulated in Seinfeld & Pandis (2006),
*Atmospheric Chemistry and Physics*, 2nd ed., Table 18.3 (= Hanna, Briggs & Hosker 1982,
Table 4.5), re-typed here independently of the package, plus hand-computed numbers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plumax_transport import sigma_y, sigma_z

# Seinfeld & Pandis Table 18.3, typed as formulas (x in m).
RURAL = {
    "A": (lambda x: 0.22 * x / math.sqrt(1 + 1e-4 * x), lambda x: 0.20 * x),
    "B": (lambda x: 0.16 * x / math.sqrt(1 + 1e-4 * x), lambda x: 0.12 * x),
    "C": (
        lambda x: 0.11 * x / math.sqrt(1 + 1e-4 * x),
        lambda x: 0.08 * x / math.sqrt(1 + 2e-4 * x),
    ),
    "D": (
        lambda x: 0.08 * x / math.sqrt(1 + 1e-4 * x),
        lambda x: 0.06 * x / math.sqrt(1 + 1.5e-3 * x),
    ),
    "E": (lambda x: 0.06 * x / math.sqrt(1 + 1e-4 * x), lambda x: 0.03 * x / (1 + 3e-4 * x)),
    "F": (lambda x: 0.04 * x / math.sqrt(1 + 1e-4 * x), lambda x: 0.016 * x / (1 + 3e-4 * x)),
}
URBAN_AB = (
    lambda x: 0.32 * x / math.sqrt(1 + 4e-4 * x),
    lambda x: 0.24 * x * math.sqrt(1 + 1e-3 * x),
)
URBAN_EF = (
    lambda x: 0.11 * x / math.sqrt(1 + 4e-4 * x),
    lambda x: 0.08 * x / math.sqrt(1 + 1.5e-3 * x),
)
URBAN = {
    "A": URBAN_AB,
    "B": URBAN_AB,
    "C": (lambda x: 0.22 * x / math.sqrt(1 + 4e-4 * x), lambda x: 0.20 * x),
    "D": (
        lambda x: 0.16 * x / math.sqrt(1 + 4e-4 * x),
        lambda x: 0.14 * x / math.sqrt(1 + 3e-4 * x),
    ),
    "E": URBAN_EF,
    "F": URBAN_EF,
}


@pytest.mark.parametrize("terrain,table", [("rural", RURAL), ("urban", URBAN)])
@pytest.mark.parametrize("cls", list("ABCDEF"))
@pytest.mark.parametrize("x", [100.0, 1000.0, 10000.0])
def test_sigma_matches_briggs_table(terrain, table, cls, x, x64):
    fy, fz = table[cls]
    np.testing.assert_allclose(float(sigma_y(x, cls, terrain)), fy(x), rtol=1e-12)
    np.testing.assert_allclose(float(sigma_z(x, cls, terrain)), fz(x), rtol=1e-12)


@pytest.mark.parametrize(
    "x,cls,terrain,sy,sz",
    [
        # hand-computed from the table (4 significant figures)
        (1000.0, "D", "rural", 76.28, 37.95),  # 80/sqrt(1.1), 60/sqrt(2.5)
        (10000.0, "F", "rural", 282.8, 40.00),  # 400/sqrt(2), 160/4
        (100.0, "C", "rural", 10.95, 7.921),  # 11/sqrt(1.01), 8/sqrt(1.02)
        (1000.0, "A", "urban", 270.4, 339.4),  # 320/sqrt(1.4), 240 sqrt(2)
        (10000.0, "E", "urban", 491.9, 200.0),  # 1100/sqrt(5), 800/4
    ],
)
def test_sigma_hand_computed(x, cls, terrain, sy, sz):
    assert float(sigma_y(x, cls, terrain)) == pytest.approx(sy, rel=6e-4)
    assert float(sigma_z(x, cls, terrain)) == pytest.approx(sz, rel=6e-4)


def test_sigma_traced_class_and_grad():
    f = jax.jit(lambda x, c: sigma_z(x, c))
    assert float(f(1000.0, jnp.int32(3))) == pytest.approx(60 / math.sqrt(2.5), rel=1e-6)
    g = jax.grad(lambda x: sigma_y(x, "D"))(500.0)
    assert np.isfinite(float(g)) and float(g) > 0


@pytest.mark.parametrize("bad", ["G", "x", 6, -1, 2.5])
def test_unknown_class_raises(bad):
    with pytest.raises(ValueError, match="stability"):
        sigma_y(100.0, bad)


def test_unknown_terrain_raises():
    with pytest.raises(ValueError, match="terrain"):
        sigma_z(100.0, "D", "suburban")
