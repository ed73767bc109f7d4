"""OffsetForwardModel / with_offset: an additive nuisance on the observations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plumax_core as pc


class _Line(pc.AbstractForwardModel):
    """``a + c x`` on 5 points, sigma 0.1."""

    @property
    def param_spec(self):
        return pc.ParamSpec((pc.Param("a", units="1"), pc.Param("c", units="1")))

    def __call__(self, params, met):
        x = jnp.linspace(0.0, 1.0, 5)
        a, c = jnp.asarray(params["a"])[..., None], jnp.asarray(params["c"])[..., None]
        return pc.Observations(a + c * x, kind="column_ppm_m", sigma=0.1, instrument="toy")


def _model():
    return _Line()


def test_offset_adds_a_constant_and_keeps_the_rest():
    base = _model()
    m = pc.with_offset(base, units="ppm m")
    assert m.param_spec.names == (*base.param_spec.names, "offset")
    assert m.param_spec.params[-1].units == "ppm m"
    met = pc.MetField.uniform(4.0, 270.0)
    p = {n: jnp.asarray(0.3) for n in base.param_spec.names}
    ref = base(p, met)
    out0 = m({**p, "offset": jnp.asarray(0.0)}, met)
    np.testing.assert_array_equal(out0.values, ref.values)
    out = m({**p, "offset": jnp.asarray(2.5)}, met)
    np.testing.assert_allclose(out.values, ref.values + 2.5, rtol=1e-6)
    assert out.sigma is ref.sigma or np.array_equal(out.sigma, ref.sigma)
    assert m.model_id.endswith("[offset:offset]")


def test_offset_batches_and_differentiates():
    base = _model()
    m = pc.with_offset(base)
    met = pc.MetField.uniform(4.0, 270.0)
    names = base.param_spec.names
    batch = {n: jnp.linspace(0.1, 0.5, 3) for n in names}
    batch["offset"] = jnp.array([0.0, 1.0, -2.0])
    out = m(batch, met).values
    for i in range(3):
        one = m({k: v[i] for k, v in batch.items()}, met).values
        np.testing.assert_allclose(out[i], one, rtol=1e-6)
    p = {n: jnp.asarray(0.2) for n in names}
    g = jax.grad(lambda b: jnp.sum(m({**p, "offset": b}, met).values))(jnp.asarray(0.0))
    assert float(g) == pytest.approx(out.shape[-1])


def test_offset_name_clash_raises():
    base = _model()
    with pytest.raises(ValueError, match="already parameter"):
        pc.with_offset(base, name=base.param_spec.names[0])
    with pytest.raises(TypeError, match="AbstractForwardModel"):
        pc.with_offset("not a model")
