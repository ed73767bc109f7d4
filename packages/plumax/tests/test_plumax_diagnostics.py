"""`invert` gives no silent wrong answers (issue 17, "Silent wrong answers").

Entry checks reject what no real scene holds (winds of 0.1 and 1e6 m/s, columns of
-1e30 ppm m, NaN); answers the data did not inform, did not converge to, or cannot
explain carry ``summary["warnings"]`` and ``summary["diagnostics"]``, which
``plumax invert`` prints. Each case failed silently before (exit 0, a plausible Q).
"""

import json

import equinox as eqx
import jax.random as jr
import numpy as np
import pytest

import plumax
from plumax import pipelines as pl


@pytest.fixture(scope="module")
def scene_ds():
    # the scene of test_plumax_pipelines: same shapes, so the compiled solver is shared
    return pl.simulate(
        q_kgh=250.0, x0=10.0, y0=-5.0, geometry=pl.default_geometry(16), noise=15.0, key=jr.key(2)
    )


@pytest.mark.parametrize("speed", [0.1, 1e6, 0.0])
def test_invert_rejects_winds_outside_the_one_rule(scene_ds, speed):
    with pytest.raises(ValueError, match="met_wind_speed"):
        pl.invert(scene_ds.assign_attrs(met_wind_speed=speed))


def test_invert_checks_the_met_of_bare_observations(scene_ds):
    """A MetField built from gridded winds (here: edited) is checked at the entry too."""
    scene = plumax.read_scene(scene_ds)
    met = eqx.tree_at(lambda m: m.u, scene.met, scene.met.u * 0 + 150.0)
    with pytest.raises(ValueError, match=r"met\.wind_speed"):
        pl.invert(scene.observations, met, scene.model)


def test_invert_rejects_impossible_column_values(scene_ds):
    with pytest.raises(ValueError, match=r"`values` holds 256 impossible column_ppm_m"):
        pl.invert(scene_ds.assign(values=scene_ds["values"] * 0 - 1e30))
    with pytest.raises(ValueError, match="pure methane"):
        pl.invert(scene_ds.assign(values=scene_ds["values"] * 0 + 1e30))
    # one bad pixel is enough, and it is located
    v = scene_ds["values"].values.copy()
    v[3, 7] = -1e30
    with pytest.raises(ValueError, match=r"index \(3, 7\)"):
        pl.invert(scene_ds.assign(values=(("y", "x"), v, scene_ds["values"].attrs)))
    scene = plumax.read_scene(scene_ds)
    bad = scene.observations.replace(values=scene.observations.values.at[0, 0].set(-1e30))
    with pytest.raises(ValueError, match=r"`observations\.values`"):
        pl.invert(bad, scene.met, scene.model)


def test_invert_rejects_non_finite_values(scene_ds):
    v = scene_ds["values"].values.copy()
    v[2, 2] = np.inf
    with pytest.raises(ValueError, match="values"):
        pl.invert(scene_ds.assign(values=(("y", "x"), v, scene_ds["values"].attrs)))


def test_a_good_scene_passes_every_check(scene_ds):
    s = pl.invert(scene_ds).summary
    assert s["warnings"] == []
    d = s["diagnostics"]
    assert d["passed"] is True
    assert set(d["checks"]) == {"convergence", "posterior_contraction", "chi2_fit"}
    fit = d["checks"]["chi2_fit"]["details"]
    assert fit["dof"] == 256 and 0.8 < fit["reduced_chi2"] < 1.2
    assert min(d["checks"]["posterior_contraction"]["details"]["contraction"]) > 0.9
    json.dumps(s)  # JSON-ready


def test_one_pixel_is_flagged_as_prior_dominated(scene_ds):
    """A 1x1 image cannot locate a source: x0 keeps its prior, Q barely moves."""
    s = pl.invert(scene_ds.isel(x=[5], y=[8])).summary
    assert any("barely inform" in w and "x0" in w for w in s["warnings"])
    c = s["diagnostics"]["checks"]["posterior_contraction"]
    assert not c["passed"] and "x0" in c["details"]["prior_dominated"]


def test_negated_map_is_flagged_as_a_misfit(scene_ds):
    """No non-negative plume explains a negative one: the chi-square test rejects it."""
    s = pl.invert(scene_ds.assign(values=-scene_ds["values"])).summary
    fit = s["diagnostics"]["checks"]["chi2_fit"]
    assert not fit["passed"] and fit["statistic"] < 1e-6
    assert fit["details"]["reduced_chi2"] > 5
    assert any("does not fit" in w for w in s["warnings"])
    # an unconverged MAP is said out loud, not only in the JSON
    if s["converged"] is False:
        assert any("did not converge" in w for w in s["warnings"])
