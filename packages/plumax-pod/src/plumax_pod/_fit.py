"""Population models and their fits: MAP + Laplace (optimistix) and NUTS (numpyro, lazy).

A population model maps a parameter dict to ``(intensity, marks, pods)`` and carries a
prior; its log posterior is the thinned marked TPP likelihood
(:func:`~plumax_pod.tpp_log_likelihood`) plus the log prior, both in the unconstrained
space of its :class:`~plumax_core.ParamSpec`. Fits return a :class:`plumax_core.Posterior`
over that space (``posterior.sample_params`` gives physical units).

With several instruments, instrument ``k`` sees the true process on its own window
``[t0_k, t1_k]`` (or its overpass windows inside it), a fraction ``c_k`` of the events
there (its coverage: the chance that an event fell inside what it observed, independent
of the event), through its own POD; the log-likelihood is the sum over instruments:

    log L = Σ_i [log c_{k_i} + log λ(t_i) + log ∫ P_{k_i} L_i f dQ] − Σ_k c_k Λ_k · p̄_k

(``Λ_k`` the compensator over what ``k`` observed, ``p̄_k = ∫ P_k f dQ``). Per-instrument
``Q50_k`` share a hierarchical prior ``log Q50_k ~ N(log Q50_pop, τ²)``.

The data (:class:`~plumax_pod.PopulationData`) and the chunked event sum live in
:mod:`plumax_pod._population_data`.
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optimistix as optx
from equinox import AbstractVar
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from plumax_core import Param, ParamSpec, Posterior, make_provenance

from ._intensity import AbstractIntensity, ConstantIntensity
from ._likelihood import detection_fraction
from ._marks import AbstractMarkDistribution, LognormalMarks
from ._pod import AbstractPOD, HillPOD
from ._population_data import EVENT_CHUNK as EVENT_CHUNK, PopulationData, event_sum


class AbstractPopulationModel(eqx.Module):
    """A parametric population model.

    Attributes:
        param_spec: the parameter layout (positive parameters log-transformed).

    Contract: ``build(params)`` returns ``(intensity, marks, pods)`` with one POD per
    instrument; ``log_prior_unconstrained(z)`` is the prior log-density of the flat
    unconstrained vector (including the Jacobian of the transforms where the prior is
    stated in physical units).
    """

    param_spec: AbstractVar[ParamSpec]

    @abc.abstractmethod
    def build(
        self, params: dict[str, Array]
    ) -> tuple[AbstractIntensity, AbstractMarkDistribution, tuple[AbstractPOD, ...]]:
        """Population components from a physical params dict."""

    @abc.abstractmethod
    def log_prior_unconstrained(self, z: Float[Array, " D"]) -> Float[Array, ""]:
        """Prior log-density of the unconstrained vector."""

    def log_likelihood(self, params: dict[str, Array], data: PopulationData) -> Array:
        """Thinned marked TPP log-likelihood summed over instruments (module docstring)."""
        intensity, marks, pods = self.build(params)
        if len(pods) != data.n_instruments:
            raise ValueError(f"model has {len(pods)} PODs but data has {data.n_instruments}")
        comp = 0.0
        for k, p in enumerate(pods):
            comp = comp + data.exposure(intensity, k) * detection_fraction(marks, p)
        return event_sum(intensity, marks, pods, data) - comp

    def log_posterior_unconstrained(self, z: Float[Array, " D"], data: PopulationData) -> Array:
        """``log L(x(z)) + log p(z)``: the target of MAP and NUTS."""
        params = self.param_spec.from_unconstrained(z)
        return self.log_likelihood(params, data) + self.log_prior_unconstrained(z)


def _normal_lp(x, m, s):
    return -0.5 * ((x - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)


class LognormalHillModel(AbstractPopulationModel):
    """Constant rate, lognormal marks, Hill POD per instrument (the default model).

    Parameters (physical): ``rate`` (events/s), ``mu`` and ``sigma`` (lognormal marks, log
    kg/s), ``q50`` (kg/s; shape ``(K,)`` when ``n_instruments > 1``), ``slope`` (shared Hill
    exponent) and, for ``K > 1``, ``q50_pop`` (population median of the per-instrument Q50).
    With ``fixed_pod`` the POD is known (e.g. from controlled releases) and not fitted.

    Priors (independent, in the unconstrained space; ``(centre, sd)``, centres in physical
    units, sds in log units for positive parameters): ``rate_prior``, ``mu_prior``,
    ``sigma_prior``, ``q50_prior``, ``slope_prior``; ``tau`` = spread of ``log Q50_k``
    around ``log Q50_pop``.
    """

    param_spec: ParamSpec
    n_instruments: int = eqx.field(static=True)
    fixed_pod: tuple[AbstractPOD, ...] | None
    rate_prior: tuple[float, float] = eqx.field(static=True)
    mu_prior: tuple[float, float] = eqx.field(static=True)
    sigma_prior: tuple[float, float] = eqx.field(static=True)
    q50_prior: tuple[float, float] = eqx.field(static=True)
    slope_prior: tuple[float, float] = eqx.field(static=True)
    tau: float = eqx.field(static=True)

    def __init__(
        self,
        *,
        n_instruments: int = 1,
        fixed_pod: AbstractPOD | tuple[AbstractPOD, ...] | None = None,
        rate_prior: tuple[float, float] = (1e-4, 5.0),
        mu_prior: tuple[float, float] = (0.0, 5.0),
        sigma_prior: tuple[float, float] = (1.0, 1.0),
        q50_prior: tuple[float, float] = (0.1, 1.0),
        slope_prior: tuple[float, float] = (2.0, 0.5),
        tau: float = 0.5,
    ):
        if not (isinstance(n_instruments, int) and n_instruments >= 1):
            raise ValueError(f"`n_instruments` must be a positive int, got {n_instruments!r}")
        for name, (c, s) in {
            "rate_prior": rate_prior,
            "sigma_prior": sigma_prior,
            "q50_prior": q50_prior,
            "slope_prior": slope_prior,
        }.items():
            if not (c > 0 and s > 0):
                raise ValueError(f"`{name}` needs a positive centre and sd, got {(c, s)}")
        if not mu_prior[1] > 0:
            raise ValueError(f"`mu_prior` sd must be > 0, got {mu_prior[1]}")
        if not tau > 0:
            raise ValueError(f"`tau` must be > 0, got {tau}")
        if isinstance(fixed_pod, AbstractPOD):
            fixed_pod = (fixed_pod,)
        if fixed_pod is not None and len(fixed_pod) != n_instruments:
            raise ValueError(f"`fixed_pod` needs {n_instruments} PODs, got {len(fixed_pod)}")
        self.n_instruments, self.fixed_pod, self.tau = n_instruments, fixed_pod, float(tau)
        self.rate_prior, self.mu_prior, self.sigma_prior = rate_prior, mu_prior, sigma_prior
        self.q50_prior, self.slope_prior = q50_prior, slope_prior
        params = [
            Param("rate", units="1/s", lower=0.0, log=True, description="true event rate"),
            Param("mu", units="log(kg/s)", description="mean of log Q"),
            Param("sigma", lower=0.0, log=True, description="std of log Q"),
        ]
        if fixed_pod is None:
            shape = () if n_instruments == 1 else (n_instruments,)
            params.append(Param("q50", shape=shape, units="kg/s", lower=0.0, log=True))
            params.append(Param("slope", lower=0.0, log=True, description="Hill exponent"))
            if n_instruments > 1:
                params.append(Param("q50_pop", units="kg/s", lower=0.0, log=True))
        self.param_spec = ParamSpec(tuple(params))

    def build(self, params):
        intensity = ConstantIntensity(params["rate"])
        marks = LognormalMarks(params["mu"], params["sigma"])
        if self.fixed_pod is not None:
            return intensity, marks, self.fixed_pod
        q50 = jnp.atleast_1d(params["q50"])
        pods = tuple(HillPOD(q50[k], params["slope"]) for k in range(self.n_instruments))
        return intensity, marks, pods

    def log_prior_unconstrained(self, z):
        p = self.param_spec.unflatten(z)  # unconstrained values (log of positive params)
        lp = _normal_lp(p["rate"], math.log(self.rate_prior[0]), self.rate_prior[1])
        lp += _normal_lp(p["mu"], self.mu_prior[0], self.mu_prior[1])
        lp += _normal_lp(p["sigma"], math.log(self.sigma_prior[0]), self.sigma_prior[1])
        if self.fixed_pod is None:
            lp += _normal_lp(p["slope"], math.log(self.slope_prior[0]), self.slope_prior[1])
            lq = math.log(self.q50_prior[0])
            if self.n_instruments == 1:
                lp += _normal_lp(p["q50"], lq, self.q50_prior[1])
            else:
                lp += _normal_lp(p["q50_pop"], lq, self.q50_prior[1])
                lp += jnp.sum(_normal_lp(p["q50"], p["q50_pop"], self.tau))
        return lp

    def initial_params(self, data: PopulationData) -> dict[str, Array]:
        """A data-informed starting point for the optimiser (physical units)."""
        q = np.log(np.asarray(data.mark_data.point_estimates())[np.asarray(data.mask)])
        T = float(np.sum(data.observed_seconds() * np.asarray(data.coverage)))
        out = {
            "rate": jnp.asarray(max(data.n_events, 1) / T * 2.0),
            "mu": jnp.asarray(float(np.median(q)) - 0.5),
            "sigma": jnp.asarray(max(float(np.std(q)) * 1.2, 0.1)),
        }
        if self.fixed_pod is None:
            q50 = self.q50_prior[0]
            out["q50"] = jnp.full((() if self.n_instruments == 1 else (self.n_instruments,)), q50)
            out["slope"] = jnp.asarray(self.slope_prior[0])
            if self.n_instruments > 1:
                out["q50_pop"] = jnp.asarray(q50)
        return out


@eqx.filter_jit
def _map_solve(model, data, z0, tol, max_steps, n_newton, scale):
    """BFGS to the mode, then Newton polish; returns mode, Hessian, J, decrement, stats."""
    nlp = lambda z: -model.log_posterior_unconstrained(z, data)
    sol = optx.minimise(
        lambda z, args: nlp(z) / scale,
        optx.BFGS(rtol=tol, atol=tol),
        z0,
        max_steps=max_steps,
        throw=False,
    )

    def newton(z, _):  # damped Newton steps (D is small); emit (z, g, H) before the update
        g, H = jax.grad(nlp)(z), jax.hessian(nlp)(z)
        step = jnp.linalg.solve(H, g)
        ok = jnp.all(jnp.isfinite(step)) & (jnp.vdot(g, step) > 0)
        z_new = z - jnp.where(ok, step, 0.0)
        return jnp.where(nlp(z_new) <= nlp(z), z_new, z), (z, g, H)

    _, (zs, gs, Hs) = jax.lax.scan(newton, sol.value, None, length=n_newton + 1)
    z, g, H = zs[-1], gs[-1], Hs[-1]
    decrement = jnp.vdot(g, jnp.linalg.solve(H, g))
    return z, H, nlp(z), decrement, sol.stats


def fit_map_laplace(
    model: AbstractPopulationModel,
    data: PopulationData,
    *,
    init: dict[str, ArrayLike] | None = None,
    rtol: float | None = None,
    max_steps: int = 1000,
    n_newton: int = 3,
) -> Posterior:
    """MAP by BFGS (optimistix) in the unconstrained space, then a Laplace approximation.

    ``cov = H⁻¹`` with ``H`` the Hessian of the negative log posterior at the mode
    (exact, by autodiff). The BFGS mode is polished by ``n_newton`` Newton steps; the fit
    counts as converged when the Newton decrement ``gᵀH⁻¹g`` is below 1e-4 and ``H`` is
    positive definite. A Hessian that is not (a flat or saddle direction) is recorded in
    the provenance (``hessian_positive_definite=False``, ``converged=False``) and its
    eigenvalues below ``1e-10 max|λ|`` are raised to that floor so that ``cov`` exists;
    its intervals are then not a posterior's and callers must say so. Returns a
    :class:`plumax_core.Posterior` (``mean`` = mode, ``cov`` dense, ``param_spec`` =
    ``model.param_spec``).
    """
    if not isinstance(model, AbstractPopulationModel):
        raise TypeError("`model` must be an AbstractPopulationModel")
    if not isinstance(data, PopulationData):
        raise TypeError("`data` must be a PopulationData")
    if init is None:
        init = model.initial_params(data) if hasattr(model, "initial_params") else None
    if init is None:
        raise ValueError("`init` is required for this model")
    z0 = model.param_spec.to_unconstrained({k: jnp.asarray(v) for k, v in init.items()})
    x64 = z0.dtype == jnp.float64
    tol = rtol if rtol is not None else (1e-7 if x64 else 1e-5)
    scale = jnp.asarray(float(max(data.n_events, 1)))

    zs, H, J, decrement, stats = _map_solve(model, data, z0, tol, max_steps, n_newton, scale)
    ok = bool(jnp.isfinite(decrement) & (decrement < 1e-4))
    H = 0.5 * (H + H.T)
    evals, evecs = jnp.linalg.eigh(H)
    pd = bool(jnp.all(evals > 0))
    evals = jnp.maximum(evals, 1e-10 * jnp.max(jnp.abs(evals)))
    cov = (evecs / evals) @ evecs.T
    prov = make_provenance(
        n_iter=int(stats["num_steps"]) + n_newton,
        J_star=float(J),
        converged=bool(ok) and pd,
        analysis=model,
        method="map_laplace",
        n_events=int(data.n_events),
        hessian_positive_definite=pd,
        newton_decrement=float(decrement),
    )
    return Posterior(
        zs,
        lx.MatrixLinearOperator(cov, lx.positive_semidefinite_tag),
        provenance=prov,
        param_spec=model.param_spec,
    )


def fit_nuts(
    model: AbstractPopulationModel,
    data: PopulationData,
    *,
    key: PRNGKeyArray,
    num_warmup: int = 500,
    num_samples: int = 500,
    num_chains: int = 1,
    init: dict[str, ArrayLike] | None = None,
    whiten: bool = True,
    progress_bar: bool = False,
) -> Posterior:
    """NUTS (numpyro, imported lazily) on the unconstrained log posterior.

    Initialised at the MAP (``fit_map_laplace``) unless ``init`` is given; chains run
    sequentially. With ``whiten`` (default) NUTS samples ``u`` with
    ``z = z_MAP + L u``, ``L L^T`` the Laplace covariance: the population posterior is
    strongly correlated (rate, Q50 and the mark location trade off against each other)
    and a diagonal mass matrix mixes slowly there; in ``u`` it is close to isotropic.
    Returns a :class:`plumax_core.Posterior` with ``samples`` of shape
    ``(num_chains, num_samples, D)`` (in ``z``) and ``cov`` = the sample covariance.
    """
    from numpyro.diagnostics import effective_sample_size
    from numpyro.infer import MCMC, NUTS

    laplace = fit_map_laplace(model, data) if (init is None or whiten) else None
    if init is None:
        z0 = laplace.mean
    else:
        z0 = model.param_spec.to_unconstrained({k: jnp.asarray(v) for k, v in init.items()})
    if whiten:
        centre = laplace.mean
        chol = jnp.linalg.cholesky(laplace.cov.as_matrix())
        if not bool(jnp.all(jnp.isfinite(chol))):
            raise ValueError("the Laplace covariance is not positive definite; use whiten=False")
        u0 = jax.scipy.linalg.solve_triangular(chol, z0 - centre, lower=True)
    else:
        centre, chol, u0 = jnp.zeros_like(z0), jnp.eye(z0.shape[0], dtype=z0.dtype), z0

    def potential(u):
        return -model.log_posterior_unconstrained(centre + chol @ u, data)

    mcmc = MCMC(
        NUTS(potential_fn=potential),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="sequential",
        progress_bar=progress_bar,
    )
    init_params = jnp.broadcast_to(u0, (num_chains,) + u0.shape) if num_chains > 1 else u0
    mcmc.run(key, init_params=init_params, extra_fields=("diverging",))
    s = mcmc.get_samples(group_by_chain=True)
    s = centre + jnp.asarray(s).reshape(num_chains, num_samples, -1) @ chol.T
    ess = np.asarray(effective_sample_size(np.asarray(s)))
    flat = s.reshape(-1, s.shape[-1])
    cov = jnp.atleast_2d(jnp.cov(flat.T))
    extra = mcmc.get_extra_fields(group_by_chain=True)
    div = int(np.sum(np.asarray(extra.get("diverging", np.zeros(1)))))
    prov = make_provenance(
        n_iter=int(num_chains * num_samples),
        converged=bool(div == 0),
        analysis=model,
        method="nuts",
        n_events=int(data.n_events),
        num_warmup=int(num_warmup),
        num_chains=int(num_chains),
        divergences=div,
        min_ess=float(np.min(ess)),
        whitened=bool(whiten),
    )
    return Posterior(
        jnp.mean(flat, axis=0),
        lx.MatrixLinearOperator(cov, lx.positive_semidefinite_tag),
        s,
        provenance=prov,
        param_spec=model.param_spec,
    )
