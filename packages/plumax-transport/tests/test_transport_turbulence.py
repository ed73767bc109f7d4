"""Turbulence profiles: Hanna (1982) as printed in Stohl et al. (2005, section 7) at hand
points in each regime, the regime thresholds, the floors, d(sigma_w^2)/dz against finite
differences and the closed form, the contract of every implementation, and the
surface-layer scaling (psi_m against core's NumPy twin)."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plumax_core._met_profile import psi_m as psi_m_numpy
from plumax_transport import (
    AbstractTurbulence,
    HannaTurbulence,
    HomogeneousTurbulence,
    TurbulenceProfile,
)
from plumax_transport._turbulence import (
    VON_KARMAN,
    convective_velocity,
    friction_velocity,
    psi_m,
)

# floors far below the test points, so the published formulas show through
BARE = HannaTurbulence(min_tau_horizontal=1e-6, min_tau_vertical=1e-6, min_sigma=1e-6)


def _call(model, z, h, ustar, wstar, L) -> TurbulenceProfile:
    return model(*(jnp.asarray(np.atleast_1d(a), dtype=float) for a in (z, h, ustar, wstar, L)))


def _hanna_unstable(z, h, us, ws, L):
    """Stohl et al. (2005) unstable formulas, written out in scalar Python."""
    zeta = z / h
    su = us * (12.0 + h / (2.0 * abs(L))) ** (1.0 / 3.0)
    sw = math.sqrt(1.2 * ws**2 * (1 - 0.9 * zeta) * zeta ** (2 / 3) + (1.8 - 1.4 * zeta) * us**2)
    if zeta < 0.1:
        tw = 0.1 * z / (sw * (0.55 - 0.38 * z / abs(L))) if z < abs(L) else 0.59 * z / sw
    else:
        tw = 0.15 * h / sw * (1.0 - math.exp(-5.0 * zeta))
    return su, su, sw, 0.15 * h / su, 0.15 * h / su, tw


def _hanna_neutral(z, us, f=1e-4):
    su = 2.0 * us * math.exp(-3.0 * f * z / us)
    sw = 1.3 * us * math.exp(-2.0 * f * z / us)
    tau = 0.5 * z / sw / (1.0 + 15.0 * f * z / us)
    return su, sw, sw, tau, tau, tau


def _hanna_stable(z, h, us):
    zeta = z / h
    su, sw = 2.0 * us * (1 - zeta), 1.3 * us * (1 - zeta)
    return (
        su,
        sw,
        sw,
        0.15 * h / su * zeta**0.5,
        0.07 * h / sw * zeta**0.5,
        0.10 * h / sw * zeta**0.8,
    )


def _fields(p: TurbulenceProfile):
    return tuple(float(np.asarray(getattr(p, n))[0]) for n in ("sigma_u", "sigma_v", "sigma_w"))


def _taus(p: TurbulenceProfile):
    return tuple(float(np.asarray(getattr(p, n))[0]) for n in ("tau_u", "tau_v", "tau_w"))


@pytest.mark.parametrize("z", [30.0, 80.0, 500.0, 990.0])
def test_hanna_unstable_published_values(x64, z):
    """u* = 0.4, w* = 2, h = 1000 m, L = -50 m: the three tau_w branches (z < |L|,
    |L| < z < 0.1 h, z > 0.1 h)."""
    p = _call(BARE, z, 1000.0, 0.4, 2.0, -50.0)
    want = _hanna_unstable(z, 1000.0, 0.4, 2.0, -50.0)
    np.testing.assert_allclose(_fields(p) + _taus(p), want, rtol=1e-10)
    if z == 500.0:  # by hand: sigma_u = 0.4 * 22^(1/3), sigma_w^2 = 1.6631 + 0.176
        assert _fields(p)[0] == pytest.approx(1.120816, rel=1e-6)
        assert _fields(p)[2] == pytest.approx(math.sqrt(1.839100), rel=1e-5)
        assert _taus(p)[2] == pytest.approx(101.53, rel=1e-4)


def test_hanna_unstable_tau_w_is_continuous_at_its_branch_points(x64):
    """0.1/(0.55 - 0.38) = 0.588 ~ 0.59 at z = |L|; 0.59 z/sw = 0.15 h/sw (1 - e^-0.5)
    (= 0.059 h/sw) at z = 0.1 h, when |L| <= 0.1 h."""
    for z_edge, L in ((50.0, -50.0), (100.0, -20.0), (100.0, -100.0)):
        lo = _taus(_call(BARE, z_edge - 1e-6, 1000.0, 0.4, 2.0, L))[2]
        hi = _taus(_call(BARE, z_edge + 1e-6, 1000.0, 0.4, 2.0, L))[2]
        assert lo == pytest.approx(hi, rel=0.01)


@pytest.mark.parametrize("L", [-300.0, -150.0])
def test_hanna_unstable_tau_w_jumps_at_zeta_0_1_when_L_exceeds_0_1_h(x64, L):
    """|L| > 0.1 h: the surface-layer form holds just below zeta = 0.1 (z < |L|) and the
    mixed-layer form above it (zeta < 0.1 is tested first, as printed; FLEXPART's
    hanna.f90 tests z < |L| first): tau_w jumps by 5.90 (0.55 - 0.038 h/|L|), 2.5 for
    L = -300 m; and at z = 200 m < |L| the mixed-layer form holds, not hanna.f90's."""
    h, us, ws = 1000.0, 0.4, 2.0
    lo = _taus(_call(BARE, 100.0 - 1e-6, h, us, ws, L))[2]
    hi = _taus(_call(BARE, 100.0 + 1e-6, h, us, ws, L))[2]
    factor = 0.15 * (1.0 - math.exp(-0.5)) * (0.55 - 0.038 * h / abs(L)) / 0.01
    assert hi / lo == pytest.approx(factor, rel=1e-4)
    p = _call(BARE, 200.0, h, us, ws, L)
    sw = _fields(p)[2]
    assert _taus(p)[2] == pytest.approx(0.15 * h / sw * (1.0 - math.exp(-1.0)), rel=1e-10)
    if L == -300.0:
        assert factor == pytest.approx(2.5, abs=0.01)
        flexpart = 0.1 * 200.0 / (sw * (0.55 - 0.38 * 200.0 / abs(L)))  # z < |L|
        assert abs(_taus(p)[2] / flexpart - 1.0) > 0.2


@pytest.mark.parametrize("z", [10.0, 100.0, 800.0])
def test_hanna_neutral_published_values(x64, z):
    for L in (math.inf, -math.inf, 2000.0, -2000.0):  # h/|L| < 1: neutral
        p = _call(BARE, z, 1000.0, 0.5, 0.0, L)
        np.testing.assert_allclose(_fields(p) + _taus(p), _hanna_neutral(z, 0.5), rtol=1e-10)
    p = _call(BARE, 100.0, 1000.0, 0.5, 0.0, math.inf)
    assert _fields(p)[0] == pytest.approx(math.exp(-0.06), rel=1e-9)  # by hand
    assert _taus(p)[0] == pytest.approx(50.0 / (0.65 * math.exp(-0.04)) / 1.3, rel=1e-9)
    # the Coriolis parameter is an attribute
    q = _call(HannaTurbulence(coriolis=1.2e-4, min_tau_vertical=1e-6), 100.0, 1000.0, 0.5, 0, 1e9)
    assert _fields(q)[2] == pytest.approx(_hanna_neutral(100.0, 0.5, f=1.2e-4)[2], rel=1e-10)


@pytest.mark.parametrize("z", [5.0, 50.0, 150.0])
def test_hanna_stable_published_values(x64, z):
    p = _call(BARE, z, 200.0, 0.2, 0.0, 20.0)
    np.testing.assert_allclose(_fields(p) + _taus(p), _hanna_stable(z, 200.0, 0.2), rtol=1e-10)
    if z == 50.0:  # by hand
        np.testing.assert_allclose(_taus(p), [50.0, 35.8974359, 33.83356], rtol=1e-6)
    # tau_v = 0.07 h/sigma_v zeta^0.5 as printed, not hanna.f90's 0.467 tau_u (= 0.07
    # h/sigma_u zeta^0.5): longer by sigma_u/sigma_v = 2/1.3
    assert _taus(p)[1] / (0.467 * _taus(p)[0]) == pytest.approx(2.0 / 1.3, rel=2e-3)


def test_regime_thresholds_at_h_over_L_equal_one(x64):
    h, z = 1000.0, 300.0
    neutral = _hanna_neutral(z, 0.4)[:3]
    np.testing.assert_allclose(_fields(_call(BARE, z, h, 0.4, 1.0, -1001.0)), neutral, rtol=1e-9)
    np.testing.assert_allclose(_fields(_call(BARE, z, h, 0.4, 0.0, 1001.0)), neutral, rtol=1e-9)
    unstable = _hanna_unstable(z, h, 0.4, 1.0, -999.0)[:3]
    np.testing.assert_allclose(_fields(_call(BARE, z, h, 0.4, 1.0, -999.0)), unstable, rtol=1e-9)
    stable = _hanna_stable(z, h, 0.4)[:3]
    np.testing.assert_allclose(_fields(_call(BARE, z, h, 0.4, 0.0, 999.0)), stable, rtol=1e-9)


def test_floors(x64):
    t = HannaTurbulence()
    # stable profiles vanish at z = h: sigma floored, tau floored and finite
    p = _call(t, 200.0, 200.0, 0.2, 0.0, 20.0)
    assert _fields(p) == pytest.approx((0.01, 0.01, 0.01))
    assert all(math.isfinite(v) for v in _taus(p))
    # near the ground every tau is at its floor; z below min_height is min_height
    for L in (-50.0, math.inf, 20.0):
        q = _call(t, 0.0, 200.0, 0.3, 1.0, L)
        assert _taus(q)[2] == pytest.approx(30.0)
        if L < 0:  # tau_u = 0.15 h / sigma_u does not depend on z: above its floor
            assert min(_taus(q)[:2]) > 10.0
        else:
            assert _taus(q)[:2] == pytest.approx((10.0, 10.0))
        r = _call(t, 1.0, 200.0, 0.3, 1.0, L)
        assert _fields(q) == pytest.approx(_fields(r), rel=1e-12)
        assert float(q.dsigma_w2_dz[0]) == 0.0  # constant below min_height
    # a calm wind (u* = 0) stays finite
    c = _call(t, 50.0, 500.0, 0.0, 0.0, math.inf)
    assert all(math.isfinite(v) and v > 0 for v in _fields(c) + _taus(c))


@pytest.mark.parametrize(
    "z, h, us, ws, L",
    [
        (30.0, 1000.0, 0.4, 2.0, -50.0),
        (80.0, 1000.0, 0.4, 2.0, -50.0),
        (600.0, 1000.0, 0.4, 2.0, -50.0),
        (950.0, 1000.0, 0.3, 1.5, -10.0),
        (100.0, 1000.0, 0.5, 0.0, math.inf),
        (50.0, 200.0, 0.2, 0.0, 20.0),
        (190.0, 200.0, 0.2, 0.0, 20.0),
    ],
)
def test_dsigma_w2_dz_matches_finite_differences(x64, z, h, us, ws, L):
    t = HannaTurbulence()
    eps = 1e-4 * z
    sw = lambda zz: _fields(_call(t, zz, h, us, ws, L))[2]
    fd = (sw(z + eps) ** 2 - sw(z - eps) ** 2) / (2 * eps)
    got = float(_call(t, z, h, us, ws, L).dsigma_w2_dz[0])
    assert got == pytest.approx(fd, rel=1e-6, abs=1e-12)
    assert got != 0.0
    if L < 0:  # the closed form FLEXPART codes (hanna.f90: 2 sigma_w dsigwdz)
        zeta = z / h
        closed = (ws**2 * (0.8 * zeta ** (-1 / 3) - 1.8 * zeta ** (2 / 3)) - 1.4 * us**2) / h
        assert got == pytest.approx(closed, rel=1e-10)


def test_homogeneous_is_constant():
    t = HomogeneousTurbulence(0.5, 0.4, 0.3, (20.0, 30.0, 40.0))
    z = jnp.linspace(0.0, 900.0, 7)
    p = t(z, 1000.0, 0.3, 1.0, -20.0)
    for name, v in zip(
        TurbulenceProfile.__dataclass_fields__,
        (0.5, 0.4, 0.3, 20.0, 30.0, 40.0, 0.0),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(getattr(p, name)), np.full(7, v), rtol=1e-7)
    assert HomogeneousTurbulence(1.0, 1.0, 1.0, 15.0).lagrangian_time == (15.0, 15.0, 15.0)


MODELS = {
    "homogeneous": lambda: HomogeneousTurbulence(0.5, 0.5, 0.3, 25.0),
    "homogeneous-zero": lambda: HomogeneousTurbulence(0.0, 0.0, 0.0, 25.0),
    "hanna": lambda: HannaTurbulence(),
    "hanna-bare": lambda: BARE,
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_contract(name):
    model = MODELS[name]()
    rng = np.random.default_rng(1)
    n = 64
    h = rng.uniform(100.0, 2000.0, n)
    z = rng.uniform(0.0, 1.0, n) * h
    us = rng.uniform(0.0, 1.0, n)
    ws = rng.uniform(0.0, 3.0, n)
    L = np.where(rng.uniform(size=n) < 0.5, -1, 1) * 10 ** rng.uniform(0.5, 4, n)
    L[:5] = np.inf
    args = tuple(jnp.asarray(a, dtype=jnp.float32) for a in (z, h, us, ws, L))
    p = model(*args)
    for field in TurbulenceProfile.__dataclass_fields__:
        v = np.asarray(getattr(p, field))
        assert v.shape == (n,), field
        assert np.all(np.isfinite(v)), field
    for s in (p.sigma_u, p.sigma_v, p.sigma_w):
        assert np.all(np.asarray(s) >= 0)
    for t in (p.tau_u, p.tau_v, p.tau_w):
        assert np.all(np.asarray(t) > 0)
    jitted = eqx.filter_jit(lambda m, *a: m(*a))(model, *args)
    looped = [model(*(a[i : i + 1] for a in args)) for i in (0, 7, 33)]
    vm = jax.vmap(model)(*args)
    for field in TurbulenceProfile.__dataclass_fields__:
        ref = np.asarray(getattr(p, field))
        np.testing.assert_allclose(np.asarray(getattr(jitted, field)), ref, rtol=2e-6)
        np.testing.assert_allclose(np.asarray(getattr(vm, field)), ref, rtol=2e-6)
        for i, q in zip((0, 7, 33), looped, strict=True):
            np.testing.assert_allclose(np.asarray(getattr(q, field))[0], ref[i], rtol=2e-6)


def test_psi_m_matches_core_numpy(x64):
    zeta = np.concatenate([-np.geomspace(1e-4, 50.0, 40), [0.0], np.geomspace(1e-4, 2.0, 20)])
    np.testing.assert_allclose(np.asarray(psi_m(zeta)), psi_m_numpy(zeta), rtol=1e-12)


def test_friction_and_convective_velocity(x64):
    # neutral: the log law
    us = friction_velocity(5.0, 0.1, jnp.inf, 10.0)
    assert float(us) == pytest.approx(VON_KARMAN * 5.0 / math.log(100.0), rel=1e-12)
    # unstable / stable: the Monin-Obukhov bracket with core's psi_m
    for L in (-30.0, 200.0):
        want = VON_KARMAN * 5.0 / (math.log(100.0) - psi_m_numpy(10.0 / L) + psi_m_numpy(0.1 / L))
        assert float(friction_velocity(5.0, 0.1, L, 10.0)) == pytest.approx(float(want), rel=1e-12)
    assert (
        float(friction_velocity(5.0, 0.1, -30.0))
        > float(us)
        > float(friction_velocity(5.0, 0.1, 200.0))
    )
    # Deardorff: w*^3 = -h u*^3 / (kappa L) for L < 0; 0 otherwise
    ws = float(convective_velocity(0.4, 1000.0, -50.0))
    assert ws**3 == pytest.approx(1000.0 * 0.4**3 / (VON_KARMAN * 50.0), rel=1e-12)
    assert float(convective_velocity(0.4, 1000.0, 50.0)) == 0.0
    assert float(convective_velocity(0.4, 1000.0, jnp.inf)) == 0.0


def test_abstract_turbulence_cannot_be_instantiated():
    with pytest.raises(TypeError):
        AbstractTurbulence()


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="`sigma_v`"):
        HomogeneousTurbulence(1.0, -0.1, 1.0, 10.0)
    with pytest.raises(ValueError, match="`sigma_w`"):
        HomogeneousTurbulence(1.0, 1.0, math.nan, 10.0)
    with pytest.raises(ValueError, match="`lagrangian_time`"):
        HomogeneousTurbulence(1.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="`lagrangian_time`"):
        HomogeneousTurbulence(1.0, 1.0, 1.0, (10.0, 20.0))
    with pytest.raises(ValueError, match="`min_tau_vertical`"):
        HannaTurbulence(min_tau_vertical=-1.0)
    with pytest.raises(ValueError, match="`coriolis`"):
        HannaTurbulence(coriolis=0.0)
    with pytest.raises(ValueError, match="`min_height`"):
        HannaTurbulence(min_height=math.inf)
