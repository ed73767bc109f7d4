"""Diffusivities and the diffusion operators of the finite-volume solver."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plumax_transport._fv_advection import FaceWinds
from plumax_transport._fv_boundary import Boundaries
from plumax_transport._fv_diffusion import (
    ConstantK,
    MoninObukhovK,
    holtslag_boville_phi_h,
    implicit_vertical_diffusion,
)
from plumax_transport._fv_grid import FVGrid
from plumax_transport._fv_solver import advance, stable_time_step
from plumax_transport._turbulence import VON_KARMAN

NX = 120
XC = np.arange(NX) * 10.0
GX = FVGrid(XC, [0.0], [0.0, 1.0], dy=10.0)
NZ = 120
ZC = np.arange(NZ) * 5.0 + 2.5
GZ = FVGrid([0.0], [0.0], np.arange(NZ + 1) * 5.0, dx=10.0, dy=10.0)


def _moments(coord, q):
    m0 = np.sum(q)
    mean = np.sum(coord * q) / m0
    return m0, np.sum((coord - mean) ** 2 * q) / m0


def test_variance_grows_2kt_along_x_explicit(x64):
    k, t = 20.0, 600.0
    x = XC
    q0 = np.exp(-0.5 * ((x - x.mean()) / 40.0) ** 2)[None, None, :]
    winds = FaceWinds(u=jnp.zeros((1, 1, NX + 1)), v=jnp.zeros((1, 2, NX)))
    dtmax = float(stable_time_step(GX, winds, k, scheme="upwind"))
    assert dtmax == pytest.approx(1.0 / (2 * k / 100.0 + 2 * k / 100.0))
    n = int(np.ceil(t / dtmax))
    q1, out = advance(
        q0,
        grid=GX,
        winds=winds,
        kh=k,
        kz=0.0,
        source=0.0,
        dt=t,
        n_substeps=n,
        boundaries=Boundaries(),
        scheme="upwind",
    )
    m0, v0 = _moments(x, q0[0, 0])
    m1, v1 = _moments(x, np.asarray(q1)[0, 0])
    assert v1 - v0 == pytest.approx(2 * k * t, rel=1e-2)
    assert float(GX.mass(q1)) == pytest.approx(float(GX.mass(q0)), rel=1e-13)
    assert float(out) == 0.0  # zero wind: nothing crosses the open faces


def test_variance_grows_2kt_along_z_implicit(x64):
    k, t = 5.0, 400.0
    z = ZC
    q0 = np.exp(-0.5 * ((z - 300.0) / 15.0) ** 2)[:, None, None]
    winds = FaceWinds(u=jnp.zeros((NZ, 1, 2)), v=jnp.zeros((NZ, 2, 1)))
    q1, _ = advance(
        q0,
        grid=GZ,
        winds=winds,
        kh=0.0,
        kz=k,
        source=0.0,
        dt=t,
        n_substeps=8,
        boundaries=Boundaries(),
        scheme="limited",
    )
    q1 = np.asarray(q1)
    assert q1.min() >= 0
    m0, v0 = _moments(z, q0[:, 0, 0])
    m1, v1 = _moments(z, q1[:, 0, 0])
    assert v1 - v0 == pytest.approx(2 * k * t, rel=1e-2)
    assert m1 == pytest.approx(m0, rel=1e-13)


def test_implicit_vertical_stretched_conserves_and_keeps_mixing_ratio(x64):
    ze = jnp.array([0.0, 10.0, 25.0, 50.0, 100.0, 200.0])
    dz = jnp.diff(ze)
    rng = np.random.default_rng(1)
    kz = jnp.asarray(rng.uniform(1, 50, size=(6, 2, 3)))
    q = jnp.asarray(rng.uniform(size=(5, 2, 3)))
    q1 = implicit_vertical_diffusion(q, kz, dz, 300.0)
    np.testing.assert_allclose(
        jnp.sum(q1 * dz[:, None, None], 0), jnp.sum(q * dz[:, None, None], 0), rtol=1e-14
    )
    assert float(q1.min()) >= 0
    # a long step mixes to the column mean (uniform density)
    qlong = implicit_vertical_diffusion(q, kz, dz, 1e9)
    mean = jnp.sum(q * dz[:, None, None], 0) / 200.0
    np.testing.assert_allclose(qlong, jnp.broadcast_to(mean, q.shape), rtol=1e-5)
    # with an air-density profile, a uniform mixing ratio q = c rho is steady, while a
    # uniform density is not (flux -rho K d(q/rho)/dz)
    rho = jnp.array([1.2, 1.15, 1.1, 1.0, 0.9])
    c = jnp.asarray(rng.uniform(1, 2, size=(1, 2, 3)))
    q_mr = c * rho[:, None, None]
    np.testing.assert_allclose(
        implicit_vertical_diffusion(q_mr, kz, dz, 600.0, rho), q_mr, rtol=1e-13
    )
    q_u = jnp.ones((5, 2, 3))
    moved = implicit_vertical_diffusion(q_u, kz, dz, 600.0, rho)
    assert float(jnp.max(jnp.abs(moved - q_u))) > 1e-3
    np.testing.assert_allclose(jnp.sum(moved * dz[:, None, None], 0), 200.0, rtol=1e-14)


def test_implicit_vertical_differentiable(x64):
    dz = jnp.array([10.0, 20.0, 40.0])
    q = jnp.array([1.0, 2.0, 0.5])[:, None, None]
    kz = jnp.full((4, 1, 1), 3.0)
    f = lambda q, kz: jnp.sum(implicit_vertical_diffusion(q, kz, dz, 100.0) ** 2)
    gq, gk = jax.grad(f, argnums=(0, 1))(q, kz)
    # check against central finite differences in a random direction
    d = jnp.array([0.3, -0.2, 0.7])[:, None, None]
    fd = (f(q + 1e-6 * d, kz) - f(q - 1e-6 * d, kz)) / 2e-6
    assert float(jnp.sum(gq * d)) == pytest.approx(float(fd), rel=1e-7)
    dk = jnp.array([0.0, 1.0, -0.5, 0.0])[:, None, None]
    fdk = (f(q, kz + 1e-6 * dk) - f(q, kz - 1e-6 * dk)) / 2e-6
    assert float(jnp.sum(gk * dk)) == pytest.approx(float(fdk), rel=1e-6)
    _, tang = jax.jvp(lambda a: implicit_vertical_diffusion(a, kz, dz, 100.0), (q,), (d,))
    assert tang.shape == q.shape


def test_constant_k():
    k = ConstantK(kh=30.0, kz=2.0)
    z = jnp.array([5.0, 15.0])
    assert k.horizontal(z, 0.3, -50.0, 800.0).shape == (2, 1, 1)
    np.testing.assert_allclose(k.vertical(jnp.array([0.0, 10.0, 20.0]), 0.3, 1.0, 1.0), 2.0)
    with pytest.raises(ValueError, match="`kh`"):
        ConstantK(kh=-1.0, kz=1.0)
    with pytest.raises(ValueError, match="`kz`"):
        ConstantK(kh=1.0, kz=float("nan"))


def test_monin_obukhov_neutral_surface_layer(x64):
    m = MoninObukhovK()
    z = jnp.array([0.0, 1.0, 2.0, 5.0])
    # neutral (L = +-inf), z << h: K = kappa u* z (exactly up to the (1 - z/h)^2 taper)
    for L in (jnp.inf, -jnp.inf):
        k = m.vertical(z, 0.4, L, 1e9)[:, 0, 0]
        np.testing.assert_allclose(k[1:], VON_KARMAN * 0.4 * z[1:], rtol=1e-8)
    assert VON_KARMAN == 0.4


def test_monin_obukhov_holtslag_boville_values(x64):
    """Hand values of HB93's K = kappa w_t z (1 - z/h)^2 in each regime."""
    m = MoninObukhovK(kh=50.0, k_min=0.1)
    k_at = lambda z, us, L, h: float(m.vertical(jnp.array([z]), us, L, h)[0, 0, 0])
    # unstable surface layer, z = 10 <= 0.1 h: phi_h = (1 + 15 * 0.2)^-1/2 = 1/2,
    # K = 0.4 * 0.3 * 10 * 2 * 0.99^2 = 2.35224
    assert k_at(10.0, 0.3, -50.0, 1000.0) == pytest.approx(2.35224, rel=1e-12)
    # unstable, above the surface layer: phi_h at 0.1 h = 100 m, (1 + 30)^-1/2
    want = 0.4 * 0.3 * math.sqrt(31.0) * 500.0 * 0.5**2
    assert k_at(500.0, 0.3, -50.0, 1000.0) == pytest.approx(want, rel=1e-12)
    # very unstable (L = -1e-3 m): phi_h still taken at 0.1 h = 120 m, not at z = 1000 m
    want = 0.4 * 0.35 * math.sqrt(1.0 + 15.0 * 120.0 / 1e-3) * 1000.0 * (1 - 1000 / 1200) ** 2
    assert k_at(1000.0, 0.35, -1e-3, 1200.0) == pytest.approx(want, rel=1e-10)
    # stable, zeta = 0.2 <= 1: phi_h = 2, K = 0.4 * 0.3 * 20 / 2 * 0.96^2 = 1.10592
    assert k_at(20.0, 0.3, 100.0, 500.0) == pytest.approx(1.10592, rel=1e-12)
    # stable, zeta = 4 > 1: phi_h = 5 + 4 = 9 (not 1 + 20), K = 0.4 * 0.3 * 40 / 9 * 0.92^2
    assert k_at(40.0, 0.3, 10.0, 500.0) == pytest.approx(0.4 * 0.3 * 40 / 9 * 0.92**2, rel=1e-12)
    # the floor: at and above h, and near the ground
    k = m.vertical(jnp.array([0.0, 499.0, 500.0, 800.0]), 0.3, 100.0, 500.0)[:, 0, 0]
    np.testing.assert_allclose(k, [0.1, 0.1, 0.1, 0.1])
    assert k_at(1000.0, 0.3, -50.0, 1000.0) == 0.1
    # horizontal: constant kh; fields of (ny, nx) broadcast
    assert float(m.horizontal(jnp.array([5.0]))[0, 0, 0]) == 50.0
    us = jnp.full((2, 3), 0.3)
    assert m.vertical(jnp.array([0.0, 10.0, 50.0]), us, -50.0, 1000.0).shape == (3, 2, 3)


def test_monin_obukhov_continuous_at_regime_changes(x64):
    m = MoninObukhovK(k_min=0.0)
    eps = 1e-7
    # z = 0.1 h in the unstable case (h = 1000, L = -50)
    k = m.vertical(jnp.array([100.0 * (1 - eps), 100.0, 100.0 * (1 + eps)]), 0.3, -50.0, 1e3)
    np.testing.assert_allclose(k[:, 0, 0], k[1, 0, 0], rtol=1e-6)
    # zeta = 1 in the stable case (L = 40, h = 500)
    k = m.vertical(jnp.array([40.0 * (1 - eps), 40.0, 40.0 * (1 + eps)]), 0.3, 40.0, 500.0)
    np.testing.assert_allclose(k[:, 0, 0], k[1, 0, 0], rtol=1e-6)
    assert float(holtslag_boville_phi_h(jnp.array(1.0))) == 6.0
    # the velocity scale is constant above the surface layer (unstable): K / (z (1-z/h)^2)
    z = jnp.array([100.0, 300.0, 700.0])
    k = m.vertical(z, 0.3, -50.0, 1e3)[:, 0, 0]
    w = k / (z * (1 - z / 1e3) ** 2)
    np.testing.assert_allclose(w, w[0], rtol=1e-12)


def test_monin_obukhov_validation():
    with pytest.raises(ValueError, match="`kh`"):
        MoninObukhovK(kh=-1.0)
    with pytest.raises(ValueError, match="`k_min`"):
        MoninObukhovK(k_min=float("inf"))
    m = MoninObukhovK()
    z = jnp.array([0.0, 10.0])
    with pytest.raises(ValueError, match="`ustar`"):
        m.vertical(z, -0.1, 10.0, 100.0)
    with pytest.raises(ValueError, match="`h`"):
        m.vertical(z, 0.3, 10.0, 0.0)
    with pytest.raises(ValueError, match="`L`"):
        m.vertical(z, 0.3, 0.0, 100.0)
