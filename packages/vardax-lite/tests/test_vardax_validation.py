"""Validation drivers: SBC over a core simulation bank passes for an exact posterior and
FAILS for an over-confident one."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import pytest
from vardax_models import MET, LinearModel

import plumax_core as pc
import vardax_lite as vx


@pytest.fixture(scope="module")
def conjugate():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        G = jnp.asarray(rng.normal(size=(5, 2)))
        spec = pc.ParamSpec((pc.Param("a"), pc.Param("b")))
        model = LinearModel(G, spec)
        prior = pc.GaussianPrior.from_std(spec, jnp.zeros(2), 1.0)
        sigma = 0.5
        oi = vx.OptimalInterpolation(
            G,
            lx.DiagonalLinearOperator(jnp.full(5, sigma**2)),
            lx.DiagonalLinearOperator(jnp.ones(2)),
            jnp.zeros(2),
            param_spec=spec,
        )

        def simulator(z, key):
            y = G @ z + sigma * jr.normal(key, (5,), z.dtype)
            obs = pc.Observations(y, kind="generic", sigma=sigma)
            return vx.Problem(model, MET, obs, prior)

        # the SBC truths and data: one core simulation bank from the prior
        bank = pc.simulate_bank(
            model, prior, MET, 200, key=jr.key(0), noise=pc.GaussianNoise(sigma)
        )
        yield simulator, prior, oi, model, bank


class OverConfident(vx.AbstractAnalysis):
    inner: vx.AbstractAnalysis
    factor: float = eqx.field(static=True, default=0.2)

    def posterior(self, problem, *, key=None):
        p = self.inner.posterior(problem, key=key)
        return pc.Posterior(
            p.mean, p.cov * self.factor**2, provenance=p.provenance, param_spec=p.param_spec
        )


def test_sbc_pass_and_fail(conjugate, x64):
    _, prior, oi, model, bank = conjugate
    kw = dict(forward=model, prior=prior, n_draws=49)
    res = vx.run_sbc(oi, bank, key=jr.key(0), **kw)
    assert res.passed, res.gate
    assert res.ranks.shape == (200, 2)
    assert len(res.histogram["counts"]) == 2
    np.testing.assert_array_equal(res.theta_true, bank.theta)  # the truths are the bank's
    assert res.bank_hash == bank.content_hash() == res.to_dict()["bank_hash"]
    bad = vx.run_sbc(OverConfident(oi), bank, key=jr.key(0), **kw)
    assert not bad.passed
    # stratified by a data-only label
    strat = vx.run_sbc(oi, bank, key=jr.key(1), strata=lambda p: int(p.y[0] > 0), **kw)
    assert set(strat.gate.details["strata"]) == {"0", "1"}


def test_sbc_bad_input(conjugate, x64):
    _, prior, oi, model, bank = conjugate
    with pytest.raises(TypeError, match="`bank`"):
        vx.run_sbc(oi, np.zeros((3, 2)), forward=model, prior=prior, key=jr.key(0))
    wide = pc.GaussianPrior.from_std(prior.param_spec, jnp.zeros(2), 2.0)
    proposal = pc.MixturePrior((prior, wide), (0.5, 0.5))
    weighted = pc.simulate_bank(
        model, prior, MET, 20, key=jr.key(0), noise=pc.GaussianNoise(0.5), proposal=proposal
    )
    with pytest.raises(ValueError, match="proposal"):
        vx.run_sbc(oi, weighted, forward=model, prior=prior, key=jr.key(0))
    other = pc.ParamSpec((pc.Param("c"), pc.Param("d")))
    with pytest.raises(ValueError, match="prior.param_spec"):
        vx.run_sbc(
            oi,
            bank,
            forward=model,
            prior=pc.GaussianPrior.from_std(other, jnp.zeros(2), 1.0),
            key=jr.key(0),
        )
    with pytest.raises(ValueError, match="n_draws"):
        vx.run_sbc(oi, bank, forward=model, prior=prior, key=jr.key(0), n_draws=0)


def test_compare_to_oracle(conjugate, x64):
    simulator, prior, oi, _, _ = conjugate
    cases = {f"case{i}": simulator(jnp.asarray([0.3 * i, -0.2]), jr.key(i)) for i in range(3)}
    good = vx.compare_to_oracle(vx.ThreeDVar(), oi, cases)
    assert good.passed and len(good.rows) == 3
    assert "case0" in str(good)
    bad = vx.compare_to_oracle(OverConfident(vx.ThreeDVar()), oi, cases)
    assert not bad.passed
