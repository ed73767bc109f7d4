"""Posterior <-> xarray.DataTree (NetCDF groups, ArviZ InferenceData layout)."""

import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest
import xarray as xr

from plumax_core import (
    Param,
    ParamSpec,
    Posterior,
    make_provenance,
    posterior_from_datatree,
    posterior_to_datatree,
)

SPEC = ParamSpec(
    [
        Param("Q", units="kg/s", lower=0.0, log=True),
        Param("x0", units="m"),
        Param("w", shape=(2,), units="1"),
    ]
)


def _prov():
    return make_provenance(method="test")


def test_samples_round_trip_and_physical_draws(tmp_path):
    samples = jr.normal(jr.key(0), (2, 50, 4))
    post = Posterior(samples.mean((0, 1)), samples=samples, provenance=_prov(), param_spec=SPEC)
    tree = posterior_to_datatree(post)
    path = tmp_path / "p.nc"
    tree.to_netcdf(path)
    back_tree = xr.open_datatree(path)
    back = posterior_from_datatree(back_tree)
    np.testing.assert_array_equal(np.asarray(back.samples), np.asarray(post.samples))
    np.testing.assert_array_equal(np.asarray(back.mean), np.asarray(post.mean))
    assert back.param_spec == SPEC
    q = back_tree["posterior"]["Q"]
    assert q.dims == ("chain", "draw") and q.attrs["units"] == "kg/s"
    np.testing.assert_allclose(q.values, np.exp(np.asarray(samples[..., 0])), rtol=1e-6)
    assert back_tree["posterior"]["w"].dims == ("chain", "draw", "w_dim_0")
    back_tree.close()


def test_gaussian_round_trip_has_no_posterior_group():
    cov = lx.MatrixLinearOperator(jnp.diag(jnp.array([0.1, 4.0, 1.0, 2.0])) + 0.01)
    post = Posterior(jnp.array([0.5, 1.0, 0.0, -1.0]), cov, provenance=_prov(), param_spec=SPEC)
    tree = posterior_to_datatree(post)
    assert "posterior" not in tree.children and "gaussian" in tree.children
    g = tree["gaussian"]
    assert float(g["Q_median"]) == pytest.approx(np.exp(0.5), rel=1e-6)
    lo = float(g["x0_lower_5"])
    assert lo == pytest.approx(1.0 - 1.6448536 * 2.0024984, rel=1e-5)
    back = posterior_from_datatree(tree)
    np.testing.assert_array_equal(np.asarray(back.cov.as_matrix()), np.asarray(cov.as_matrix()))


def test_not_a_posterior_file():
    with pytest.raises(ValueError, match="not a plumax posterior"):
        posterior_from_datatree(xr.DataTree(xr.Dataset(attrs={"schema": "other"})))
