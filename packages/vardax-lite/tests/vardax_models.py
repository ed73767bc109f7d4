"""Small forward models used by the vardax-lite tests (their own, with closed forms)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np

import plumax_core as pc
import vardax_lite as vx

MET = pc.MetField.uniform(5.0, 270.0)


class LinearModel(pc.AbstractForwardModel):
    """``y = G theta`` (raw, unbounded parameters)."""

    G: jax.Array
    param_spec: pc.ParamSpec

    def __call__(self, params, met):
        return pc.Observations(self.G @ self.param_spec.flatten(params), kind="generic")


class ExpModel(pc.AbstractForwardModel):
    """Nonlinear: ``y_i = Q * exp(-(x_i - x0)^2 / (2 s^2))`` with ``Q`` log-transformed."""

    x: jax.Array
    param_spec: pc.ParamSpec = eqx.field(
        default_factory=lambda: pc.ParamSpec(
            (pc.Param("Q", units="kg/s", lower=0.0, log=True), pc.Param("x0", units="m"))
        )
    )

    def __call__(self, params, met):
        return pc.Observations(
            params["Q"] * jnp.exp(-((self.x - params["x0"]) ** 2) / 2.0), kind="generic"
        )


class LogObs(pc.AbstractForwardModel):
    """Observes ``log Q`` directly (a lognormal measurement of an emission rate)."""

    param_spec: pc.ParamSpec

    def __call__(self, params, met):
        return pc.Observations(jnp.log(params["Q"])[None], kind="generic")


class Advection(vx.AbstractTimeSteppingModel):
    """Periodic 1-D upwind advection, Courant number ``c``; observe every other cell."""

    param_spec: pc.ParamSpec
    n_steps: int = eqx.field(static=True)
    c: float = eqx.field(static=True)

    def initial_state(self, params, met):
        return params["x0"]

    def step(self, x, k, met, params):
        return x - self.c * (x - jnp.roll(x, 1))

    def observe(self, x, k, met):
        return x[::2]


def linear_problem(D=3, m=8, seed=0, dtype=None, mask=None):
    """A random linear-Gaussian problem and its closed-form posterior (numpy float64)."""
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(m, D))
    A = rng.normal(size=(D, D))
    B = A @ A.T + D * np.eye(D)
    zb = rng.normal(size=D)
    sig = 0.3 + rng.uniform(size=m)
    y = G @ rng.normal(size=D) + sig * rng.normal(size=m)
    spec = pc.ParamSpec(tuple(pc.Param(f"a{i}") for i in range(D)))
    model = LinearModel(jnp.asarray(G), spec)
    prior = pc.GaussianPrior(jnp.asarray(zb), jnp.asarray(B), spec)
    yv = y.copy()
    if mask is not None:
        yv[~mask] = np.nan
    obs = pc.Observations(jnp.asarray(yv), kind="generic", sigma=jnp.asarray(sig), mask=mask)
    problem = vx.Problem(model, MET, obs, prior)
    w = np.ones(m) if mask is None else mask.astype(float)
    Ri = np.diag(w / sig**2)
    P = np.linalg.inv(np.linalg.inv(B) + G.T @ Ri @ G)
    mu = zb + P @ G.T @ Ri @ (np.nan_to_num(yv) - G @ zb)
    return (
        problem,
        mu,
        P,
        dict(G=G, B=B, zb=zb, sig=sig, y=y, R=lx.DiagonalLinearOperator(jnp.asarray(sig**2))),
    )


class AdvectionDiffusion2D(vx.AbstractTimeSteppingModel):
    """Periodic 2-D tracer transport forced by a gridded emission (a Tier III stand-in).

    ``c_{k+1} = c_k - cx (c_k - c_k[x-1]) - cy (c_k - c_k[y-1]) + nu lap(c_k)
    + dt E[k // steps_per_window]``: first-order upwind advection (Courant numbers
    ``cx, cy >= 0``) and explicit 5-point diffusion (``nu`` = K dt / dx^2), stable for
    ``cx + cy + 4 nu <= 1``; periodic in both directions. The parameter ``emission`` has
    shape ``(n_windows, ny, nx)``; the state starts at zero, so the model is linear in
    the emission (nonlinear in the control when the spec's Param has ``log=True``).
    Observes the flat cells ``obs_index`` after every step.
    """

    param_spec: pc.ParamSpec
    obs_index: jax.Array
    n_steps: int = eqx.field(static=True)
    steps_per_window: int = eqx.field(static=True)
    cx: float = eqx.field(static=True, default=0.3)
    cy: float = eqx.field(static=True, default=0.2)
    nu: float = eqx.field(static=True, default=0.1)
    dt: float = eqx.field(static=True, default=1.0)

    @property
    def grid(self):
        return self.param_spec.params[0].shape[1:]

    def initial_state(self, params, met):
        ny, nx = self.grid
        return jnp.zeros(ny * nx, jnp.result_type(params["emission"]))

    def step(self, x, k, met, params):
        c = x.reshape(self.grid)
        adv = self.cx * (c - jnp.roll(c, 1, axis=1)) + self.cy * (c - jnp.roll(c, 1, axis=0))
        lap = (
            jnp.roll(c, 1, 0) + jnp.roll(c, -1, 0) + jnp.roll(c, 1, 1) + jnp.roll(c, -1, 1)
        ) - 4.0 * c
        src = params["emission"][k // self.steps_per_window]
        return (c - adv + self.nu * lap + self.dt * src).reshape(-1)

    def observe(self, x, k, met):
        return x[self.obs_index]


def gridded_emission_model(nw=2, ny=12, nx=12, steps_per_window=4, n_obs=9, log=False, seed=0):
    """An :class:`AdvectionDiffusion2D` on an ``(nw, ny, nx)`` emission, observing
    ``n_obs`` random cells after each of ``nw * steps_per_window`` steps."""
    rng = np.random.default_rng(seed)
    emission = pc.Param(
        "emission", shape=(nw, ny, nx), units="kg m-2 s-1", lower=0.0 if log else -np.inf, log=log
    )
    idx = jnp.asarray(np.sort(rng.choice(ny * nx, n_obs, replace=False)))
    return AdvectionDiffusion2D(
        pc.ParamSpec((emission,)),
        idx,
        n_steps=nw * steps_per_window,
        steps_per_window=steps_per_window,
    )
