"""Issue 17, Python API: no silent wrong answers from the core containers.

Each test fails on the code before the fix: a covariance that is not SPD, a negative
``sigma`` or ``std`` under ``jax.jit``, a traced stability index, a check raised from
compiled code reaching the user as an XLA error, float32 pixel coordinates.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

from plumax_core import (
    GaussianPrior,
    InvalidInputError,
    MetField,
    Observations,
    Param,
    ParamSpec,
    Posterior,
    clean_errors,
    filter_jit,
    make_provenance,
    stability_index,
)
from plumax_core.validation import (
    DENSE_CHECK_MAX,
    check_coordinate,
    check_covariance,
    error_if,
)

PROV = make_provenance(n_iter=1, converged=True, method="test")
SPEC = ParamSpec((Param("a"), Param("b")))


# -- Posterior: cov must be symmetric positive definite and finite -------------------

BAD_COVS = {
    "indefinite": ([[1.0, 2.0], [2.0, 1.0]], "positive definite"),
    "nan": ([[1.0, np.nan], [np.nan, 1.0]], "finite"),
    "inf_diagonal": ([[np.inf, 0.0], [0.0, 1.0]], "finite"),
    "asymmetric": ([[1.0, 0.5], [0.0, 1.0]], "symmetric"),
    "negative_variance": ([[1.0, 0.0], [0.0, -1.0]], "positive definite"),
    "zero_variance": ([[1.0, 0.0], [0.0, 0.0]], "positive definite"),
}


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("case", sorted(BAD_COVS))
def test_posterior_rejects_bad_cov(case, dtype, x64):
    mat, what = BAD_COVS[case]
    cov = jnp.asarray(mat, dtype)
    with pytest.raises(ValueError, match=f"`cov` must be {what}"):
        Posterior(jnp.zeros(2, dtype), cov, provenance=PROV)
    with pytest.raises(ValueError, match="`cov`"):
        Posterior(jnp.zeros(2, dtype), lx.MatrixLinearOperator(cov), provenance=PROV)


def test_posterior_rejects_bad_diagonal_operator():
    for d in ([1.0, -1.0], [1.0, np.nan], [0.0, 1.0]):
        with pytest.raises(ValueError, match="`cov`"):
            Posterior(jnp.zeros(2), lx.DiagonalLinearOperator(jnp.asarray(d)), provenance=PROV)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_posterior_accepts_valid_covariances_with_rounding(dtype, x64):
    """Valid covariances pass in both precisions, including float32 rounding noise,
    very different scales (log Q vs metres squared) and near-singular correlation."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 6))
    cov = A @ A.T + 1e-3 * np.eye(6)
    scales = np.array([1e-3, 1.0, 1e3, 1e-2, 10.0, 1.0])
    cov = cov * np.outer(scales, scales)
    # an inverse computed in the working precision is asymmetric at rounding level
    inv = np.asarray(jnp.linalg.inv(jnp.linalg.inv(jnp.asarray(cov, dtype))))
    post = Posterior(jnp.zeros(6, dtype), jnp.asarray(inv, dtype), provenance=PROV)
    assert np.all(np.isfinite(np.asarray(post.std())))
    # a perfectly correlated pair (rank-deficient only by rounding) is still accepted
    c = jnp.asarray([[1.0, 1.0 - 1e-7], [1.0 - 1e-7, 1.0]], dtype)
    assert np.all(np.isfinite(Posterior(jnp.zeros(2, dtype), c, provenance=PROV).std()))


def test_posterior_large_lazy_cov_is_probed_not_materialised():
    n = DENSE_CHECK_MAX + 1
    calls = []

    def mv(v):
        calls.append(1)
        return 2.0 * v

    struct = jax.ShapeDtypeStruct((n,), jnp.float32)
    good = lx.FunctionLinearOperator(mv, struct, lx.positive_semidefinite_tag)
    Posterior(jnp.zeros(n), good, provenance=PROV)
    assert 0 < len(calls) <= 3 * 2  # probes only (tracing may call mv once more each)
    neg = lx.FunctionLinearOperator(lambda v: -v, struct)
    with pytest.raises(ValueError, match="`cov` must be positive definite"):
        Posterior(jnp.zeros(n), neg, provenance=PROV)
    skew = np.zeros((n, n), np.float32)
    skew[0, 1] = 1.0
    asym = lx.MatrixLinearOperator(jnp.eye(n) + jnp.asarray(skew))
    with pytest.raises(ValueError, match="`cov` must be symmetric"):
        Posterior(jnp.zeros(n), asym, provenance=PROV)
    nan = lx.FunctionLinearOperator(lambda v: v * jnp.nan, struct)
    with pytest.raises(ValueError, match="`cov` must be finite"):
        check_covariance("cov", nan)


def test_std_raises_for_what_the_probes_missed():
    """A large lazy cov with one negative variance passes the three probes; std() then
    raises instead of returning NaN."""
    n = DENSE_CHECK_MAX + 1
    d = jnp.ones(n).at[0].set(-1e-3)
    struct = jax.ShapeDtypeStruct((n,), jnp.float32)
    post = Posterior(
        jnp.zeros(n), lx.FunctionLinearOperator(lambda v: d * v, struct), provenance=PROV
    )
    with pytest.raises(
        ValueError, match="`cov diagonal \\(the variances\\)` must be finite and > 0"
    ):
        post.std()


def test_posterior_traced_cov_checked_at_run_time():
    f = jax.jit(
        lambda d: Posterior(jnp.zeros(2), lx.DiagonalLinearOperator(d), provenance=PROV).std()
    )
    np.testing.assert_allclose(f(jnp.array([4.0, 9.0])), [2.0, 3.0])
    with pytest.raises(InvalidInputError, match="`cov` must have finite"), clean_errors():
        f(jnp.array([4.0, -9.0]))


def test_posterior_single_sample_has_no_spread():
    with pytest.raises(ValueError, match="at least 2 `samples`"):
        Posterior(jnp.zeros(2), samples=jnp.zeros((1, 1, 2)), provenance=PROV)


def test_gaussian_prior_uses_the_same_covariance_rule():
    with pytest.raises(ValueError, match="`cov` must be symmetric"):
        GaussianPrior(jnp.zeros(2), jnp.array([[1.0, 0.5], [0.0, 1.0]]), SPEC)
    with pytest.raises(ValueError, match="`cov` must be finite"):
        GaussianPrior(jnp.zeros(2), jnp.array([[1.0, np.nan], [np.nan, 1.0]]), SPEC)


# -- negative sigma / std under jit ---------------------------------------------------


def _gauss_loglik(sigma):
    obs = Observations(jnp.array([0.5, -0.2, 0.1]), kind="generic", sigma=sigma)
    r = obs.values / obs.sigma_full()
    return -0.5 * jnp.sum(r**2) - 0.5 * jnp.linalg.slogdet(obs.error_covariance().as_matrix())[1]


@pytest.mark.parametrize("bad", [-1.0, 0.0, np.nan, np.inf])
def test_observations_bad_sigma_fails_under_jit(bad):
    f = jax.jit(_gauss_loglik)
    assert np.isfinite(float(f(1.0)))
    with pytest.raises(InvalidInputError, match="`sigma` must be finite and > 0"), clean_errors():
        f(bad)
    with pytest.raises(ValueError, match="`sigma` must be finite and > 0"):
        _gauss_loglik(bad)


def test_observations_traced_sigma_respects_mask():
    def f(sigma, mask):
        obs = Observations(jnp.ones(3), kind="generic", sigma=sigma, mask=mask)
        return jnp.sum(jnp.where(obs.valid(), 1.0 / obs.sigma_full(), 0.0))

    sigma = jnp.array([1.0, -1.0, 2.0])
    # a bad sigma where the observation is masked out is allowed ...
    assert float(jax.jit(f)(sigma, jnp.array([True, False, True]))) == pytest.approx(1.5)
    # ... and refused where it is valid, with a concrete sigma and a traced mask too
    with pytest.raises(InvalidInputError, match="`sigma`"), clean_errors():
        jax.jit(f)(sigma, jnp.array([True, True, True]))
    with pytest.raises(InvalidInputError, match="`sigma`"), clean_errors():
        jax.jit(lambda m: f(sigma, m))(jnp.array([True, True, True]))


@pytest.mark.parametrize("bad", [-1.0, 0.0, np.nan])
def test_prior_from_std_bad_std_fails_under_jit(bad):
    def logp(std):
        return GaussianPrior.from_std(SPEC, 0.0, std).log_prob({"a": 0.3, "b": -0.1})

    f = jax.jit(logp)
    good = float(f(1.0))
    assert np.isfinite(good)
    with pytest.raises(InvalidInputError, match="`std` must be finite and > 0"), clean_errors():
        f(bad)
    with pytest.raises(ValueError, match="`std`"):
        logp(bad)


def test_prior_traced_dense_cov_checked():
    f = jax.jit(lambda c: GaussianPrior(jnp.zeros(2), c, SPEC).log_prob({"a": 0.0, "b": 0.0}))
    assert np.isfinite(float(f(jnp.eye(2))))
    with pytest.raises(InvalidInputError, match="`cov`"), clean_errors():
        f(-jnp.eye(2))


# -- stability: traced indices ----------------------------------------------------------


def test_traced_stability_index_works_and_is_range_checked():
    f = jax.jit(lambda s: MetField.uniform(4.0, 270.0, stability=s).stability_class)
    assert int(f(jnp.int32(2))) == 2
    with pytest.raises(InvalidInputError, match="`stability` must be in 0-5"), clean_errors():
        f(jnp.int32(7))
    g = jax.jit(lambda s: MetField(4.0, 0.0, stability_class=s).stability_class + 0)
    with pytest.raises(InvalidInputError, match="`stability_class`"), clean_errors():
        g(jnp.int32(-1))


def test_traced_float_stability_names_the_argument():
    with pytest.raises(ValueError, match="`stability` must be an integer class index"):
        jax.jit(lambda s: MetField.uniform(4.0, 270.0, stability=s).u)(3.0)
    with pytest.raises(ValueError, match="`stability_class` must be an integer class index"):
        jax.jit(lambda s: MetField(4.0, 0.0, stability_class=s).u)(3.0)


def test_stability_series_and_float_classes():
    m = MetField.from_timeseries(
        jnp.array([0.0, 60.0]),
        jnp.array([2.0, 3.0]),
        jnp.array([90.0, 90.0]),
        stability=jnp.array([1, 4]),
    )
    assert m.stability_class.ravel().tolist() == [1, 4]
    # integer-valued floats (NetCDF) are accepted; a fractional class is not truncated
    assert int(MetField(1.0, 0.0, stability_class=3.0).stability_class) == 3
    with pytest.raises(ValueError, match="`stability_class` must hold integer class"):
        MetField(1.0, 0.0, stability_class=2.5)
    with pytest.raises(ValueError, match="`stability`"):
        stability_index(object())


# -- errors raised inside jit reach the user as plain ValueErrors ----------------------


def _positive(x):
    return error_if(x, x <= 0, "`x` must be > 0 (test check)")


def test_clean_errors_under_jax_jit_and_filter_jit():
    with pytest.raises((jax.errors.JaxRuntimeError, ValueError), match="INTERNAL"):
        jax.jit(_positive)(-1.0)  # what a user saw before
    with pytest.raises(InvalidInputError) as info, clean_errors():
        jax.jit(_positive)(-1.0)
    assert str(info.value) == "`x` must be > 0 (test check)"
    assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidInputError, match=r"^`x` must be > 0 \(test check\)$"):
        filter_jit(_positive)(jnp.asarray(-1.0))
    with pytest.raises(InvalidInputError, match="test check"):
        filter_jit(jax.vmap(_positive))(jnp.array([1.0, -1.0]))
    assert float(filter_jit(_positive)(jnp.asarray(2.0))) == 2.0
    # a check already decided at trace time (a constant argument) is cleaned too
    with pytest.raises(InvalidInputError, match="test check"):
        filter_jit(_positive)(-1.0)


def test_clean_errors_leaves_other_errors_alone():
    def foreign(x):
        return eqx.error_if(x, x <= 0, "not a plumax check")

    with pytest.raises(eqx.EquinoxRuntimeError, match="not a plumax check"):
        filter_jit(foreign)(jnp.asarray(-1.0))
    with pytest.raises(eqx.EquinoxTracetimeError, match="not a plumax check"):
        filter_jit(foreign)(-1.0)
    with pytest.raises((jax.errors.JaxRuntimeError, ValueError)) as info, clean_errors():
        jax.jit(foreign)(-1.0)
    assert not isinstance(info.value, InvalidInputError)
    assert "not a plumax check" in str(info.value)
    with pytest.raises(KeyError), clean_errors():
        raise KeyError("unrelated")


# -- coordinates: strictly ascending, evenly spaced at the dtype's resolution ----------


@pytest.mark.parametrize("n", [24, 32])
def test_float32_pixel_coordinates_from_netcdf_are_evenly_spaced(tmp_path, n):
    """The demo scene's float32 pixel centres, written to NetCDF and read back."""
    xr = pytest.importorskip("xarray")
    y = np.linspace(-600.0, 600.0, n).astype(np.float32)
    path = tmp_path / "scene.nc"
    xr.Dataset(coords={"y": ("y", y)}).to_netcdf(path)
    with xr.open_dataset(path) as ds:
        back = ds["y"].values
    assert back.dtype == np.float32
    d = np.diff(back.astype(float))
    assert not np.allclose(d, d[0], rtol=1e-6)  # the old float64 tolerance refused it
    check_coordinate("y", back, evenly_spaced=True)
    check_coordinate("y", back.astype(np.float64), evenly_spaced=True)
    bumped = back.copy()
    bumped[5] += np.float32(0.1)  # a real irregularity, 0.2% of a 52 m pixel
    with pytest.raises(ValueError, match="`y` must be evenly spaced"):
        check_coordinate("y", bumped, evenly_spaced=True)


@pytest.mark.parametrize(
    ("values", "what"),
    [([0.0, 0.0, 1.0], "repeats a value at index 1"), ([2.0, 1.0, 0.0], "decreases")],
)
def test_coordinate_must_be_strictly_ascending(values, what):
    with pytest.raises(ValueError, match=f"`x` must be strictly ascending; it {what}"):
        check_coordinate("x", np.asarray(values))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_emission_rate_rule_names_the_argument_and_units(bad):
    from plumax_core.validation import check_emission_rate

    with pytest.raises(ValueError, match=r"`q_kgh` \(emission rate\) must be finite and > 0 kg/h"):
        check_emission_rate("q_kgh", bad, units="kg/h")
    with pytest.raises(ValueError, match="kg/s; got"):
        check_emission_rate("q", [0.1, bad])
    check_emission_rate("q", [0.1, 2.0])  # valid rates pass
    check_emission_rate("q", jnp.asarray([1.0, 2.0]))  # concrete JAX arrays too
    jax.jit(lambda q: check_emission_rate("q", q) or q)(jax.numpy.asarray(-1.0))  # traced: skipped
