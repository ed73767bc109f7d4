"""Fusion of several instruments: layout, data stacking, simulation, hold-out check.

The toy shared model is a Gaussian blob image (column, kg m-2); recovery by inversion is
tested with the Gaussian plume and vardax-lite in ``packages/plumax/tests/test_plumax_tier4.py``.
"""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from plumax_core import (
    AbstractForwardModel,
    BlockAverage,
    FusedForwardModel,
    HoldoutCheck,
    Instrument,
    MetField,
    Observations,
    Param,
    ParamSpec,
    Posterior,
    fuse_observations,
    holdout_check,
    make_provenance,
    simulate_instruments,
)
from plumax_core.testing import check_forward_model

SPEC = ParamSpec(
    (
        Param("Q", units="kg/s", lower=0.0, log=True),
        Param("x0", units="m"),
        Param("y0", units="m"),
    )
)
TRUTH = {"Q": 3.0, "x0": 0.3, "y0": -0.2, "bias_fine": 0.02, "bias_coarse": -0.03, "bias_mid": 0.01}


class _Blob(AbstractForwardModel):
    """``Q exp(-r²/2) / (2π u)`` on a 24 x 24 grid over ±3 (kg m-2; a toy column)."""

    x: jnp.ndarray
    y: jnp.ndarray

    @property
    def param_spec(self):
        return SPEC

    def __call__(self, params, met):
        X, Y = self.x[None, :], self.y[:, None]
        r2 = (X - params["x0"]) ** 2 + (Y - params["y0"]) ** 2
        v = params["Q"] * jnp.exp(-0.5 * r2) / (2 * jnp.pi) / met.wind_speed
        return Observations(
            v, kind="column_kg_m2", dims=("y", "x"), coords={"y": self.y, "x": self.x}
        )


BASE = _Blob(jnp.linspace(-3.0, 3.0, 24), jnp.linspace(-3.0, 3.0, 24))
MET = MetField.uniform(2.0, 270.0)


def _instruments():
    return [
        Instrument("fine", BlockAverage(1), sigma=0.02, bias_std=0.05),
        Instrument("coarse", BlockAverage(4, 0.8), sigma=0.005, bias_std=0.05),
        Instrument("mid", BlockAverage(2, 0.9), sigma=0.01, bias_std=0.05),
    ]


@pytest.fixture(scope="module")
def model():
    return FusedForwardModel(BASE, _instruments(), MET)


def _params(**changes):
    return {k: jnp.asarray(v) for k, v in dict(TRUTH, **changes).items()}


def test_layout_against_a_hand_computation(model):
    assert model.param_spec.names == ("Q", "x0", "y0", "bias_fine", "bias_coarse", "bias_mid")
    assert model.param_spec["bias_mid"].units == "kg m-2"
    assert model.kind == "column_kg_m2" and model.names == ("fine", "coarse", "mid")
    assert [s[3] for s in model.segments] == [(24, 24), (6, 6), (12, 12)]
    out = model(_params(), MET)
    assert out.dims == ("obs",) and out.size == 24 * 24 + 36 + 144
    parts = model.split(out.values)
    clean = np.asarray(BASE({k: _params()[k] for k in ("Q", "x0", "y0")}, MET).values)
    # the coarse instrument sees the 4x4 block mean times its kernel plus its bias
    want = 0.8 * clean.reshape(6, 4, 6, 4).mean(axis=(1, 3)) - 0.03
    np.testing.assert_allclose(parts["coarse"], want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(parts["fine"], clean + 0.02, rtol=1e-6, atol=1e-7)
    idx = model.instrument_index()
    assert (idx[:576] == 0).all() and (idx[576:612] == 1).all() and (idx[612:] == 2).all()


def test_fused_model_meets_the_forward_model_contract(model):
    batch = {k: jnp.stack([v, v * 0.9 + 0.01]) for k, v in _params().items()}
    check_forward_model(model, batch, MET)


def test_simulated_noise_has_the_instrument_sigma(model):
    data = simulate_instruments(model, TRUTH, MET, key=jr.key(0))
    clean = simulate_instruments(model, TRUTH, MET, key=None)
    again = simulate_instruments(model, TRUTH, MET, key=jr.key(0))
    for inst, (name, _a, _b, shape) in zip(model.instruments, model.segments, strict=True):
        obs = data[name]
        assert obs.shape == shape and obs.dims == ("y", "x") and obs.instrument == name
        np.testing.assert_array_equal(obs.values, again[name].values)
        r = np.asarray(obs.values - clean[name].values)
        # sample std of n normal draws: relative standard error 1/sqrt(2(n-1))
        assert abs(r.std(ddof=1) / inst.sigma - 1) < 5 / np.sqrt(2 * (r.size - 1))
        np.testing.assert_allclose(np.asarray(obs.sigma), inst.sigma)


def test_fuse_observations_stacks_values_sigma_and_masks(model):
    data = simulate_instruments(model, TRUTH, MET, key=jr.key(1))
    # the mid instrument's data lose their sigma (the instrument's is used) and a pixel
    mid = data["mid"]
    mask = np.ones(mid.shape, bool)
    mask[0, 0] = False
    data["mid"] = Observations(mid.values, kind=mid.kind, mask=mask, dims=mid.dims)
    fused = fuse_observations(model, data)
    assert fused.dims == ("obs",) and fused.shape == (756,)
    np.testing.assert_array_equal(fused.coords["obs"], model.instrument_index().astype(float))
    s = np.asarray(fused.sigma)
    np.testing.assert_allclose(s[:576], 0.02)
    np.testing.assert_allclose(s[576:612], 0.005)
    np.testing.assert_allclose(s[612:], 0.01)
    assert not bool(fused.mask[612]) and int(np.sum(~np.asarray(fused.mask))) == 1
    np.testing.assert_array_equal(fused.values[576:612], np.ravel(data["coarse"].values))


def _point_posterior(spec, values, sd=1e-6):
    """A posterior concentrated at ``values`` (physical units)."""
    z = spec.to_unconstrained({k: jnp.asarray(values[k]) for k in spec.names})
    return Posterior(z, jnp.eye(spec.size) * sd**2, provenance=make_provenance(), param_spec=spec)


def test_holdout_check_closed_form_for_a_point_posterior(model):
    """With the base parameters known exactly the prediction has no spread: the residual
    is the bias plus the noise, so the implied bias is the true bias (to sigma/sqrt(n))
    and the reduced chi-square is the noise variance over sigma², about 1."""
    data = simulate_instruments(model, TRUTH, MET, key=jr.key(2))
    reduced = model.without("mid", MET)
    post = _point_posterior(reduced.param_spec, TRUTH)
    h = holdout_check(model, "mid", data["mid"], MET, post, key=jr.key(3))
    assert isinstance(h, HoldoutCheck) and h.instrument == "mid" and h.n == 144
    assert abs(h.bias_estimate - TRUTH["bias_mid"]) < 4 * 0.01 / np.sqrt(144)
    assert 0.7 < h.reduced_chi2 < 1.3
    assert h.to_dict() == {
        "instrument": "mid",
        "bias_estimate": h.bias_estimate,
        "reduced_chi2": h.reduced_chi2,
        "n": 144,
    }


def test_holdout_check_flags_an_inconsistent_instrument(model):
    """An instrument that saw twice the emission fails the predictive check."""
    bad = simulate_instruments(model, dict(TRUTH, Q=6.0), MET, key=jr.key(4))["mid"]
    post = _point_posterior(model.without("mid", MET).param_spec, TRUTH)
    h = holdout_check(model, "mid", bad, MET, post, key=jr.key(5))
    assert h.reduced_chi2 > 2.5


def test_bad_inputs(model):
    with pytest.raises(ValueError, match="name"):
        Instrument("not valid", None, sigma=1.0)
    with pytest.raises(ValueError, match="sigma"):
        Instrument("a", None, sigma=-1.0)
    with pytest.raises(TypeError, match="operator"):
        Instrument("a", lambda s: s, sigma=1.0)
    with pytest.raises(ValueError, match="unique"):
        FusedForwardModel(BASE, [Instrument("a", None, 1.0)] * 2, MET)
    with pytest.raises(ValueError, match="multiple"):
        FusedForwardModel(BASE, [Instrument("a", BlockAverage(5), 1.0)], MET)
    with pytest.raises(ValueError, match="at least one"):
        FusedForwardModel(BASE, [], MET)
    with pytest.raises(TypeError, match="base"):
        FusedForwardModel(object(), [Instrument("a", None, 1.0)], MET)
    with pytest.raises(ValueError, match="no instrument named"):
        model.without("nope", MET)
    one = FusedForwardModel(BASE, [Instrument("a", None, 1.0)], MET)
    with pytest.raises(ValueError, match="no observations"):
        fuse_observations(one, {})
    wrong = Observations(jnp.ones((3, 3)), kind="column_kg_m2")
    with pytest.raises(ValueError, match="shape"):
        fuse_observations(one, {"a": wrong})
    post = _point_posterior(SPEC, TRUTH)
    with pytest.raises(ValueError, match="no instrument named"):
        holdout_check(model, "nope", wrong, MET, post, key=jr.key(0))
