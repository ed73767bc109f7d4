"""Numerical helpers shared by the plumax-pod modules: stable log1mexp and quadrature rules."""

import jax
import jax.numpy as jnp
import numpy as np


def log1mexp(x: jax.Array) -> jax.Array:
    """``log(1 - exp(x))`` for ``x <= 0``, stable on both ends (Maechler 2012)."""
    x = jnp.minimum(x, 0.0)
    near = x > -0.6931471805599453
    # each branch sees only inputs where it is finite, so gradients never meet inf * 0
    x_near = jnp.where(near, x, -1.0)
    x_far = jnp.where(near, -1.0, x)
    return jnp.where(near, jnp.log(-jnp.expm1(x_near)), jnp.log1p(-jnp.exp(x_far)))


def gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [-1, 1] (numpy, float64)."""
    return np.polynomial.legendre.leggauss(n)


def gauss_hermite_prob(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes/weights for E[g(Z)], Z ~ N(0, 1) (probabilists' Gauss-Hermite, weights sum 1)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / np.sqrt(2 * np.pi)


def gauss_laguerre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes/weights for E[g(E)], E ~ Exp(1) (Gauss-Laguerre)."""
    return np.polynomial.laguerre.laggauss(n)
