"""`BlockAverage`: block mean times an averaging kernel, against NumPy."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from plumax_core import BlockAverage, Observations, gates


def _numpy_block_mean(a: np.ndarray, f: int) -> np.ndarray:
    ny, nx = a.shape
    out = np.empty((ny // f, nx // f))
    for j in range(ny // f):
        for i in range(nx // f):
            out[j, i] = a[f * j : f * (j + 1), f * i : f * (i + 1)].mean()
    return out


@pytest.mark.parametrize("f", [1, 2, 3])
def test_block_mean_times_kernel_matches_a_loop(getkey, f):
    a = np.asarray(jr.normal(getkey(), (6, 12)))
    kernel = 0.5 + np.asarray(jr.uniform(getkey(), (6 // f, 12 // f)))
    for k in (0.8, kernel):
        out = BlockAverage(f, k)(a)
        assert out.shape == (6 // f, 12 // f) and out.dims == ("y", "x")
        np.testing.assert_allclose(out.values, k * _numpy_block_mean(a, f), rtol=1e-5, atol=1e-6)


def test_observation_state_keeps_kind_and_averages_coordinates():
    x, y = jnp.arange(8.0), jnp.arange(4.0) * 10.0
    state = Observations(
        jnp.ones((4, 8)), kind="column_ppm_m", dims=("y", "x"), coords={"x": x, "y": y}
    )
    out = BlockAverage(2, instrument="coarse")(state)
    assert out.kind == "column_ppm_m" and out.instrument == "coarse"
    np.testing.assert_allclose(out.coords["x"], [0.5, 2.5, 4.5, 6.5])
    np.testing.assert_allclose(out.coords["y"], [5.0, 25.0])


def test_unit_kernel_conserves_the_integral(getkey):
    """Mean times area: sum(coarse) * f^2 = sum(fine) (pixel averaging loses no mass)."""
    a = np.asarray(jr.uniform(getkey(), (12, 12)))
    out = BlockAverage(4)(a).values
    np.testing.assert_allclose(float(np.sum(out)) * 16, float(np.sum(a)), rtol=1e-5)


def test_linearization_is_exact_and_passes_the_dot_product_test(getkey):
    op = BlockAverage(2, jnp.full((3, 3), 0.7))
    state = jr.normal(getkey(), (6, 6))
    lin = op.linearize(state)
    out = op(state).values
    res = gates.dot_product_test(lin.mv, lin.transpose().mv, state, out, key=getkey())
    assert res.passed
    np.testing.assert_allclose(lin.mv(state), op(state).values, rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"factor": 0}, "factor"),
        ({"factor": 2.0}, "factor"),
        ({"factor": True}, "factor"),
        ({"kernel": -1.0}, "kernel"),
        ({"kernel": float("nan")}, "kernel"),
        ({"kernel": np.ones((2, 2, 2))}, "kernel"),
    ],
)
def test_bad_construction_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BlockAverage(**kwargs)


def test_bad_images_raise():
    with pytest.raises(ValueError, match="multiple"):
        BlockAverage(5)(jnp.ones((6, 6)))
    with pytest.raises(ValueError, match="2-D"):
        BlockAverage(2)(jnp.ones(6))
    with pytest.raises(ValueError, match="kernel"):
        BlockAverage(2, jnp.ones((2, 2)))(jnp.ones((6, 6)))
