"""Tier IV coupled inversion through the pipeline: recovery, fusion tightening, hold-out.

The building blocks (plumax_core's BlockAverage, FusedForwardModel, Instrument, pin,
holdout_check) are tested in plumax-core (test_fusion.py, test_block_average.py,
test_pin.py); here they are composed with the Gaussian plume and vardax-lite."""

import jax.random as jr
import numpy as np
import pytest

import plumax
from plumax import pipelines as pl
from plumax_core import MetField
from plumax_transport import GaussianPlume

TRUTH = {"Q": 0.1, "x0": 0.0, "y0": 0.0, "bias_fine": 6.0, "bias_coarse": -8.0, "bias_mid": 3.0}


def _instruments():
    return [
        plumax.Instrument("fine", plumax.BlockAverage(1), sigma=40.0, bias_std=20.0),
        plumax.Instrument("coarse", plumax.BlockAverage(4, 0.8), sigma=10.0, bias_std=20.0),
        plumax.Instrument("mid", plumax.BlockAverage(2, 0.9), sigma=25.0, bias_std=20.0),
    ]


@pytest.fixture(scope="module")
def setup():
    met = MetField.uniform(4.0, 270.0, stability="C", pblh=800.0)
    base = plumax.pin(GaussianPlume(pl.default_geometry(24), check_upwind=False), H=5.0)
    insts = _instruments()
    model = plumax.FusedForwardModel(base, insts, met)
    data = plumax.simulate_instruments(model, TRUTH, met, key=jr.key(3))
    fused = pl.fuse_instruments(data, met, base, insts)
    singles = {i.name: pl.fuse_instruments({i.name: data[i.name]}, met, base, [i]) for i in insts}
    held = pl.fuse_instruments(data, met, base, insts, hold_out="mid")
    return {
        "met": met,
        "base": base,
        "insts": insts,
        "model": model,
        "data": data,
        "fused": fused,
        "singles": singles,
        "held": held,
    }


def test_recovery_of_q_and_biases(setup):
    s = setup["fused"].inversion.summary
    for name, truth in TRUTH.items():
        lo95, hi95 = _interval(setup["fused"].inversion.posterior, name, 0.95)
        assert lo95 <= truth <= hi95, (name, truth, lo95, hi95)
    assert s["Q"]["units"] == "kg/h"
    assert abs(s["Q"]["median"] - 360.0) < 3 * s["Q"]["std"]
    assert s["converged"]


def _interval(post, name, level):
    lo, hi = post.credible_interval(level)[name]
    return float(lo), float(hi)


def test_fused_posterior_is_tighter_than_any_single_instrument(setup):
    fused_sd = float(setup["fused"].inversion.posterior.std()[0])  # sd of log Q
    single_sd = {n: float(r.inversion.posterior.std()[0]) for n, r in setup["singles"].items()}
    assert all(fused_sd < sd for sd in single_sd.values()), (fused_sd, single_sd)
    # and every single-instrument posterior still covers the truth
    for r in setup["singles"].values():
        lo, hi = _interval(r.inversion.posterior, "Q", 0.95)
        assert lo <= TRUTH["Q"] <= hi


def test_hold_out(setup):
    held = setup["held"]
    assert held.model.names == ("fine", "coarse")
    assert "bias_mid" not in held.inversion.posterior.param_spec.names
    h = held.holdout
    assert h["instrument"] == "mid" and h["n"] == 144
    assert 0.5 < h["reduced_chi2"] < 2.0
    assert abs(h["bias_estimate"] - TRUTH["bias_mid"]) < 4 * 25.0 / np.sqrt(144)


def test_hold_out_flags_an_inconsistent_instrument(setup):
    """A held-out instrument that saw twice the source fails the predictive check."""
    truth2 = dict(TRUTH, Q=0.2)
    bad = plumax.simulate_instruments(setup["model"], truth2, setup["met"], key=jr.key(4))
    data = dict(setup["data"], mid=bad["mid"])
    res = pl.fuse_instruments(data, setup["met"], setup["base"], setup["insts"], hold_out="mid")
    assert res.holdout["reduced_chi2"] > 2.5
