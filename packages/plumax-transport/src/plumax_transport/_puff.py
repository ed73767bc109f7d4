r"""The Gaussian puff train (Tier I): releases over a window in a time-varying wind.

The emission rate is piecewise constant, ``Q_i`` (kg/s) on ``[e_i, e_{i+1})`` for the
``release_edges`` ``e_0 < ... < e_n`` (s). The window ``[e_0, min(e_n, t_obs)]`` is cut
into puff intervals ``[τ_j, τ_{j+1}]`` of length ``puff_interval`` (the last one
possibly shorter); puff j carries exactly

.. math::  m_j = \int_{τ_j}^{τ_{j+1}} Q(t)\,dt = \sum_i Q_i\,|[τ_j, τ_{j+1}] ∩ [e_i, e_{i+1}]|,

so ``Σ_j m_j = ∫ Q dt`` over the released window with no rounding of interval ends. The
puff leaves ``(x0, y0)`` at its interval midpoint ``τ̄_j`` and is carried by the wind
``(u, v)(t)``, linear in time between the met samples (``MetField.from_timeseries``),
so its centre at the observation time ``t`` is ``x0 + ∫_{τ̄_j}^{t} u dt'`` (exact: a
quadratic per segment). Its spread grows with the *travel distance*
``s_j = ∫_{τ̄_j}^{t} |V| dt'`` (8-point Gauss-Legendre per segment) through the same
Briggs curves as the plume: ``σx = σy = σy(s_j)``, ``σz = σz(s_j)``. The concentration is

.. math::

   c = \sum_j \frac{m_j}{2\pi σ_{y,j}^2}
       e^{-(Δx_j^2 + Δy_j^2)/2σ_{y,j}^2}\; V(z; H, σ_{z,j}, L)

with V the reflected vertical density shared with the plume. Stability, ``pblh``,
temperature and pressure are taken at the observation time (``met.at(t_obs)``).

Optional meander: an Ornstein-Uhlenbeck velocity ``(u', v')`` with standard deviation
``σ_m`` and time scale ``τ_m``, sampled exactly on a grid of step ``dt``
(``u'_{k+1} = φ u'_k + σ_m sqrt(1-φ²) ξ_k``, ``φ = e^{-dt/τ_m}``) from an explicit key,
moves every puff by ``∫_{τ̄_j}^{t} u' dt'``: the whole train sways as one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from plumax_core import AbstractForwardModel, MetField, Observations, Param, ParamSpec
from plumax_core.validation import MIN_WIND_SPEED

from ._common import (
    Checks,
    check_min_wind_speed,
    check_support,
    check_wind,
    one,
    profile_speed,
    run_checked,
    stability_of,
)
from ._dispersion import check_terrain, sigma_y, sigma_z
from ._geometry import AbstractGeometry
from ._reflection import METHODS

_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)


def puff_intervals(
    release_edges: np.ndarray, puff_interval: float, obs_time: float
) -> tuple[np.ndarray, np.ndarray]:
    """Puff interval edges ``τ`` and the overlap matrix ``W[j, i]`` (s).

    ``m = W @ Q`` gives each puff's mass exactly for a piecewise-constant Q.
    """
    e = np.asarray(release_edges, dtype=float)
    end = min(e[-1], obs_time)
    if end <= e[0]:
        raise ValueError("`obs_time` must be after the first release edge")
    n = int(math.ceil((end - e[0]) / puff_interval - 1e-9))
    tau = e[0] + puff_interval * np.arange(n + 1)
    tau[-1] = end  # the last interval may be partial
    lo = np.maximum(tau[:-1, None], e[None, :-1])
    hi = np.minimum(tau[1:, None], e[None, 1:])
    return tau, np.clip(hi - lo, 0.0, None)


class OUMeander(eqx.Module):
    """Ornstein-Uhlenbeck wind meander applied to the whole puff train.

    Attributes:
        sigma: standard deviation of each meander velocity component, m/s (>= 0).
        timescale: Lagrangian time scale τ_m, s (> 0).
        dt: sampling step, s (> 0).
        key: the explicit PRNG key of the realisation.
    """

    sigma: Float[Array, ""]
    timescale: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    key: PRNGKeyArray

    def __init__(self, sigma: float, timescale: float, *, key: PRNGKeyArray, dt: float = 10.0):
        if not (np.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"`sigma` must be finite and >= 0 m/s, got {sigma!r}")
        if not (np.isfinite(timescale) and timescale > 0):
            raise ValueError(f"`timescale` must be finite and > 0 s, got {timescale!r}")
        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"`dt` must be finite and > 0 s, got {dt!r}")
        self.sigma = jnp.asarray(sigma, dtype=float)
        self.timescale = float(timescale)
        self.dt = float(dt)
        self.key = key

    def velocities(self, n: int, dtype) -> Float[Array, "n 2"]:
        """``n`` successive OU velocities (m/s), started from the stationary law."""
        phi = math.exp(-self.dt / self.timescale)
        xi = jr.normal(self.key, (n, 2), dtype=dtype)

        def step(prev, x):
            new = phi * prev + math.sqrt(1.0 - phi**2) * x
            return new, new

        _, path = jax.lax.scan(step, xi[0], xi[1:])
        return self.sigma.astype(dtype) * jnp.concatenate([xi[:1], path], axis=0)


def _met_series(met: MetField, dtype):
    """``(t, u, v)`` knots of a spatially uniform wind (scalars for steady wind)."""
    for name in ("u", "v"):
        a = getattr(met, name)
        if a.ndim == 4 and a.shape[1:] != (1, 1, 1):
            raise ValueError(f"`met.{name}` must be spatially uniform for GaussianPuff")
    u, v = met.u.astype(dtype), met.v.astype(dtype)
    if u.ndim == 0 and v.ndim == 0:
        return None, u, v
    nt = met.time.shape[0]
    u = jnp.broadcast_to(u.reshape(-1), (nt,))
    v = jnp.broadcast_to(v.reshape(-1), (nt,))
    return met.time.astype(dtype), u, v


class GaussianPuff(AbstractForwardModel):
    """A train of Gaussian puffs released over a window, snapshot at ``obs_time``.

    Params (``param_spec``): ``Q`` emission rates kg/s, shape ``(n_intervals,)`` (> 0,
    log-transformed), one per release interval; ``x0``, ``y0`` source position m;
    ``H`` release height m (>= 0).

    Attributes:
        geometry: where the puffs are sampled (shared with :class:`GaussianPlume`).
        release_edges: ``(n_intervals + 1,)`` increasing times (s) bounding the
            constant-rate release intervals.
        obs_time: observation (snapshot) time, s; releases after it are not yet emitted.
        puff_interval: time between puff releases, s.
        meander: optional :class:`OUMeander`.
        terrain, lid, n_images, method, reference_height, min_wind_speed, strict: as for
            :class:`GaussianPlume`.
    """

    geometry: AbstractGeometry
    release_edges: tuple[float, ...] = eqx.field(static=True)
    obs_time: float = eqx.field(static=True)
    puff_interval: float = eqx.field(static=True)
    meander: OUMeander | None
    terrain: str = eqx.field(static=True)
    lid: bool = eqx.field(static=True)
    n_images: int = eqx.field(static=True)
    method: str = eqx.field(static=True)
    reference_height: float | None = eqx.field(static=True)
    min_wind_speed: float = eqx.field(static=True)
    strict: bool = eqx.field(static=True)
    _tau: tuple[float, ...] = eqx.field(static=True)
    _overlap: tuple[tuple[float, ...], ...] = eqx.field(static=True)

    def __init__(
        self,
        geometry: AbstractGeometry,
        release_edges,
        obs_time: float,
        *,
        puff_interval: float = 10.0,
        meander: OUMeander | None = None,
        terrain: str = "rural",
        lid: bool = True,
        n_images: int = 3,
        method: str = "hybrid",
        reference_height: float | None = 10.0,
        min_wind_speed: float = MIN_WIND_SPEED,
        strict: bool = True,
    ):
        if not isinstance(geometry, AbstractGeometry):
            raise TypeError(f"`geometry` must be a geometry, got {type(geometry).__name__}")
        edges = np.asarray(release_edges, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)):
            raise ValueError("`release_edges` must be a finite 1-D array of >= 2 times (s)")
        if np.any(np.diff(edges) <= 0):
            raise ValueError("`release_edges` must be strictly increasing")
        if not (np.isfinite(obs_time) and obs_time > edges[0]):
            raise ValueError("`obs_time` must be finite and after the first release edge")
        if not (np.isfinite(puff_interval) and puff_interval > 0):
            raise ValueError(f"`puff_interval` must be > 0 s, got {puff_interval!r}")
        check_terrain(terrain)
        if method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
        if meander is not None and not isinstance(meander, OUMeander):
            raise TypeError("`meander` must be an OUMeander or None")
        self.geometry = geometry
        self.release_edges = tuple(float(e) for e in edges)
        self.obs_time = float(obs_time)
        self.puff_interval = float(puff_interval)
        self.meander = meander
        self.terrain = terrain
        self.lid = bool(lid)
        self.n_images = int(n_images)
        self.method = method
        self.reference_height = reference_height
        self.min_wind_speed = check_min_wind_speed(min_wind_speed)
        self.strict = bool(strict)
        tau, overlap = puff_intervals(edges, self.puff_interval, self.obs_time)
        self._tau = tuple(float(t) for t in tau)
        self._overlap = tuple(tuple(float(w) for w in row) for row in overlap)

    @property
    def n_intervals(self) -> int:
        return len(self.release_edges) - 1

    @property
    def n_puffs(self) -> int:
        return len(self._tau) - 1

    @property
    def param_spec(self) -> ParamSpec:
        return ParamSpec(
            (
                Param(
                    "Q",
                    shape=(self.n_intervals,),
                    units="kg/s",
                    lower=0.0,
                    log=True,
                    description="emission rate per release interval",
                ),
                Param("x0", units="m", description="source easting"),
                Param("y0", units="m", description="source northing"),
                Param("H", units="m", lower=0.0, description="release height above ground"),
            )
        )

    def puff_masses(self, Q: Float[Array, " n_intervals"]) -> Float[Array, " n_puffs"]:
        """Mass of each puff, kg: ``W @ Q`` (exact for the piecewise-constant rate)."""
        Q = jnp.asarray(Q)
        return jnp.asarray(np.asarray(self._overlap), dtype=Q.dtype) @ Q

    def released_mass(self, Q: Float[Array, " n_intervals"]) -> Float[Array, ""]:
        """Total mass released by ``obs_time``, kg."""
        return jnp.sum(self.puff_masses(Q))

    def _displacement(self, met: MetField, dtype, check: Checks):
        """Displacement ``(dx, dy)`` and travel distance ``s`` of each puff, m."""
        tau = np.asarray(self._tau)
        t_rel = jnp.asarray(0.5 * (tau[:-1] + tau[1:]), dtype=dtype)
        t_obs = jnp.asarray(self.obs_time, dtype=dtype)
        tm, u, v = _met_series(met, dtype)
        u = check_wind(check, u, jnp.hypot(u, v), self.min_wind_speed)
        if tm is None:
            age = t_obs - t_rel
            return u * age, v * age, jnp.hypot(u, v) * age
        lo_ok = (t_rel[0] >= tm[0]) & (t_obs <= tm[-1])
        tm = check(tm, ~lo_ok, "puff release/observation times fall outside `met.time`")
        nt = tm.shape[0]
        h = jnp.diff(tm)
        au, av = jnp.diff(u) / h, jnp.diff(v) / h
        cx = jnp.concatenate([jnp.zeros(1, dtype), jnp.cumsum(0.5 * (u[1:] + u[:-1]) * h)])
        cy = jnp.concatenate([jnp.zeros(1, dtype), jnp.cumsum(0.5 * (v[1:] + v[:-1]) * h)])
        glx, glw = jnp.asarray(_GL_X, dtype), jnp.asarray(_GL_W, dtype)

        def seg_len(i, t):
            # ∫_{tm[i]}^{t} |V| dt' by Gauss-Legendre (speed is smooth on a segment)
            half = 0.5 * (t - tm[i])
            tt = tm[i] + half * (1.0 + glx)
            du = tt - tm[i]
            sp = jnp.hypot(u[i] + au[i] * du, v[i] + av[i] * du)
            return half * jnp.sum(glw * sp)

        full = jax.vmap(lambda i: seg_len(i, tm[i + 1]))(jnp.arange(nt - 1))
        cs = jnp.concatenate([jnp.zeros(1, dtype), jnp.cumsum(full)])

        def at(t):
            i = jnp.clip(jnp.searchsorted(tm, t, side="right") - 1, 0, nt - 2)
            d = t - tm[i]
            X = cx[i] + u[i] * d + 0.5 * au[i] * d**2
            Y = cy[i] + v[i] * d + 0.5 * av[i] * d**2
            return X, Y, cs[i] + seg_len(i, t)

        Xo, Yo, So = at(t_obs)
        Xr, Yr, Sr = jax.vmap(at)(t_rel)
        return Xo - Xr, Yo - Yr, So - Sr

    def _meander_offsets(self, dtype):
        if self.meander is None:
            return 0.0, 0.0
        t0 = float(self._tau[0])
        n = int(math.ceil((self.obs_time - t0) / self.meander.dt)) + 1
        tg = t0 + self.meander.dt * np.arange(n)
        vel = self.meander.velocities(n, dtype)
        dt = self.meander.dt
        cum = jnp.concatenate(
            [jnp.zeros((1, 2), dtype), jnp.cumsum(0.5 * (vel[1:] + vel[:-1]) * dt, axis=0)]
        )
        tau = np.asarray(self._tau)
        t_rel = 0.5 * (tau[:-1] + tau[1:])
        tgj = jnp.asarray(tg, dtype)

        def interp(t):
            return jnp.stack([jnp.interp(t, tgj, cum[:, 0]), jnp.interp(t, tgj, cum[:, 1])], -1)

        off = interp(jnp.asarray([self.obs_time], dtype))[0] - interp(jnp.asarray(t_rel, dtype))
        return off[:, 0], off[:, 1]

    def __call__(self, params: Mapping[str, Array], met: MetField) -> Observations:
        """Snapshot of the puff train at ``obs_time`` in the geometry's units."""
        return run_checked(_puff_core, self, params, met)


@eqx.filter_jit
def _puff_core(model: GaussianPuff, p, met: MetField, inside: bool):
    check = Checks(inside, strict=model.strict)
    p = check_support(model.param_spec, p, check)
    Q, x0, y0, H = p["Q"], p["x0"], p["y0"], p["H"]
    dtype = jnp.result_type(Q, x0, y0, H, met.u)
    # a traced time (tied to met.time) so MetField.at never calls float() on a tracer
    met_o = met.at(jnp.asarray(model.obs_time, met.time.dtype) + 0.0 * met.time[0])
    stab = stability_of(met_o)
    stab = check(stab, (stab < 0) | (stab > 5), "`met.stability_class` must be in 0-5 (A-F)")
    dx, dy, s = model._displacement(met, dtype, check)
    # power-law profile: the whole trajectory at the release height's wind
    f = profile_speed(
        jnp.ones((), dtype), H.astype(dtype), stab, model.terrain, model.reference_height
    )
    dx, dy, s = dx * f, dy * f, s * f
    mx, my = model._meander_offsets(dtype)
    cx, cy = x0 + dx + mx, y0 + dy + my
    m = model.puff_masses(Q.astype(dtype))
    L = one("pblh", met_o.pblh).astype(dtype) if model.lid else None
    Hd = H.astype(dtype)
    if L is not None:
        Hd = check(Hd, Hd > L, "source height exceeds `met.pblh` (the lid)")
        Hd = check(Hd, model.geometry.max_height > L, "a receptor lies above `met.pblh`")
    sy = sigma_y(s, stab, model.terrain)
    sz = sigma_z(s, stab, model.terrain)
    X, Y = model.geometry.horizontal()
    X, Y = X.astype(dtype)[..., None], Y.astype(dtype)[..., None]
    r2 = (X - cx) ** 2 + (Y - cy) ** 2
    horiz = m / (2.0 * math.pi * sy**2) * jnp.exp(-0.5 * r2 / sy**2)
    vert = model.geometry.vertical(
        Hd, sz, L, n_images=model.n_images, method=model.method, trailing=True
    )
    field = jnp.sum(horiz * vert, axis=-1)
    T = one("temperature", met_o.temperature).astype(dtype)
    P = one("pressure", met_o.pressure).astype(dtype)
    return model.geometry.finish(field, T, P), check.flags
