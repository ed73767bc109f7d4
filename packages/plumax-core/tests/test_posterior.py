import json

import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from plumax_core import (
    REQUIRED_PROVENANCE_KEYS,
    Param,
    ParamSpec,
    Posterior,
    Provenance,
    make_provenance,
)

SPEC = ParamSpec((Param("Q", units="kg/s", lower=0.0, log=True), Param("x0", units="m")))
PROV = make_provenance(n_iter=12, J_star=3.5, converged=True, method="laplace")


def _post(**kw):
    cov = jnp.array([[0.04, 0.01], [0.01, 9.0]])
    return Posterior(jnp.array([np.log(0.2), 10.0]), cov, provenance=PROV, param_spec=SPEC, **kw)


def test_std_and_sampling_moments(x64):
    post = _post()
    np.testing.assert_allclose(post.std(), [0.2, 3.0])
    s = post.sample(jr.key(0), 40000)
    np.testing.assert_allclose(s.mean(0), post.mean, atol=0.05)
    np.testing.assert_allclose(np.cov(np.asarray(s).T), post.cov.as_matrix(), rtol=0.05, atol=2e-3)


def test_samples_only_posterior(x64, getkey):
    samples = jr.normal(getkey(), (4, 500, 2)) * jnp.array([1.0, 2.0])
    post = Posterior(samples.reshape(-1, 2).mean(0), samples=samples, provenance=PROV)
    np.testing.assert_allclose(post.std(), [1.0, 2.0], rtol=0.05)
    assert post.sample(getkey(), 10).shape == (10, 2)
    assert post.names == ("theta[0]", "theta[1]")


def test_credible_interval_is_lognormal_quantile(x64):
    post = _post()
    ci = post.credible_interval(0.9)
    lo, hi = stats.lognorm(s=0.2, scale=0.2).ppf([0.05, 0.95])
    np.testing.assert_allclose([ci["Q"][0], ci["Q"][1]], [lo, hi], rtol=1e-9)
    lo, hi = stats.norm(10.0, 3.0).ppf([0.05, 0.95])
    np.testing.assert_allclose([ci["x0"][0], ci["x0"][1]], [lo, hi], rtol=1e-9)


@pytest.mark.parametrize("cov_kind", ["dense", "diagonal"])
def test_dict_round_trip_exact(x64, cov_kind, getkey):
    if cov_kind == "dense":
        post = _post(samples=jr.normal(getkey(), (2, 3, 2)))
    else:
        post = Posterior(
            jnp.array([0.1, 0.2]),
            lx.DiagonalLinearOperator(jnp.array([1.0, 2.0])),
            provenance=PROV,
        )
    d = json.loads(json.dumps(post.to_dict()))
    back = Posterior.from_dict(d)
    np.testing.assert_array_equal(back.mean, post.mean)
    np.testing.assert_array_equal(back.cov.as_matrix(), post.cov.as_matrix())
    assert type(back.cov) is type(post.cov)
    if post.samples is not None:
        np.testing.assert_array_equal(back.samples, post.samples)
    assert back.provenance == post.provenance
    assert back.param_spec == post.param_spec


def test_float32_round_trip_exact():
    post = Posterior(
        jnp.array([0.1, 1 / 3], jnp.float32), jnp.eye(2, dtype=jnp.float32) * 0.3, provenance=PROV
    )
    back = Posterior.from_dict(json.loads(json.dumps(post.to_dict())))
    assert back.mean.dtype == jnp.float32
    np.testing.assert_array_equal(back.mean, post.mean)


def test_jit_vmap_grad_through_posterior():
    post = _post()
    f = lambda p: jnp.sum(p.std() * p.mean)
    assert float(jax.jit(f)(post)) == pytest.approx(float(f(post)), rel=1e-6)
    g = jax.grad(lambda m: f(Posterior(m, post.cov, provenance=PROV)))(post.mean)
    np.testing.assert_allclose(g, post.std(), rtol=1e-6)
    means = jnp.stack([post.mean, post.mean + 1])
    out = jax.vmap(lambda m: f(Posterior(m, post.cov, provenance=PROV)))(means)
    np.testing.assert_allclose(out[1] - out[0], post.std().sum(), rtol=1e-5)


def test_bad_posteriors():
    with pytest.raises(ValueError, match="square"):
        Posterior(jnp.zeros(2), jnp.ones((2, 3)), provenance=PROV)
    with pytest.raises(ValueError, match="cov"):
        Posterior(jnp.zeros(2), jnp.eye(3), provenance=PROV)
    with pytest.raises(ValueError, match="mandatory"):
        Posterior(jnp.zeros(2), jnp.eye(2), provenance={"n_iter": 3})
    with pytest.raises(ValueError, match="samples"):
        Posterior(jnp.zeros(2), samples=jnp.zeros((5, 2)), provenance=PROV)
    with pytest.raises(ValueError, match="neither"):
        Posterior(jnp.zeros(2), provenance=PROV)
    with pytest.raises(ValueError, match="mean"):
        Posterior(jnp.array([np.nan, 0.0]), jnp.eye(2), provenance=PROV)
    with pytest.raises(ValueError, match="param_spec"):
        Posterior(jnp.zeros(3), jnp.eye(3), provenance=PROV, param_spec=SPEC)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(REQUIRED_PROVENANCE_KEYS), unique=True))
def test_missing_provenance_keys_property(keys):
    data = {k: None for k in keys}
    missing = set(REQUIRED_PROVENANCE_KEYS) - set(keys)
    if missing:
        with pytest.raises(ValueError, match="mandatory"):
            Provenance(data)
    else:
        assert set(Provenance(data)) == set(REQUIRED_PROVENANCE_KEYS)


def test_provenance_is_hashable_json_and_hashes_inputs():
    B = lx.DiagonalLinearOperator(jnp.ones(2))
    p1 = make_provenance(B=B, n_iter=1)
    p2 = make_provenance(B=lx.DiagonalLinearOperator(jnp.ones(2)), n_iter=1)
    p3 = make_provenance(B=lx.DiagonalLinearOperator(jnp.ones(2) * 2), n_iter=1)
    assert p1["gaussx_op_hash"] == p2["gaussx_op_hash"] != p3["gaussx_op_hash"]
    assert hash(p1) == hash(p2) and p1 == p2
    assert "jax" in p1["package_versions"]
    json.dumps(p1.to_dict())
    with pytest.raises(ValueError, match="clash"):
        make_provenance(n_iter=1, converged=True, J_star=None, met_source="x")
    with pytest.raises(TypeError, match="JSON-like"):
        make_provenance(note=object())


def test_provenance_of_unpicklable_model_gets_structural_fingerprint():
    import equinox as eqx

    class Local(eqx.Module):  # defined in a function: cannot be pickled by reference
        w: jax.Array

    p1 = make_provenance(forward_model=Local(jnp.ones(3)))
    p2 = make_provenance(forward_model=Local(jnp.ones(3)))
    p3 = make_provenance(forward_model=Local(jnp.zeros(3)))
    assert p1["forward_model_hash"].startswith("structural:")
    assert p1["forward_model_hash"] == p2["forward_model_hash"] != p3["forward_model_hash"]
