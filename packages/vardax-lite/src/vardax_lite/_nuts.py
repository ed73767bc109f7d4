"""NUTS: the gold-standard sampler of the oracle (numpyro, imported lazily).

The numpyro model is built from the :class:`Problem`: prior in the unconstrained space
of the ``param_spec`` (sampled in the whitened variable ``chi ~ N(0, I)`` with
``z = z_b + L chi`` when the prior is Gaussian, which makes the posterior close to
isotropic and lets NUTS adapt quickly), likelihood Gaussian (diagonal or full ``R``) or
Student-t, heteroscedastic, with masked observations dropped. Chains start at the best
of several MAP solves (``n_starts``: the prior mean and prior draws).
No-U-Turn sampler: Hoffman & Gelman (2014), JMLR 15:1593. R-hat (split, Gelman et al.
2013, BDA3 §11.4) and the effective sample size (Geyer 1992; BDA3 eq. 11.8) are
recorded in provenance.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
from jaxtyping import PRNGKeyArray

from plumax_core import GaussianPrior, Posterior

from ._analysis import AbstractAnalysis, clean_input_errors, provenance_for
from ._map import solve_map
from ._problem import Problem, _is_diagonal


@eqx.filter_jit
def _solve_starts(problem: Problem, chi0, solver: str):
    solve = lambda c: solve_map(problem, c, solver=solver, rtol=1e-8, atol=1e-8, max_steps=100)
    return eqx.filter_vmap(solve)(chi0)


def numpyro_model(problem: Problem, *, whiten: bool = True):
    """A numpyro model function for ``problem`` (site ``"z"`` holds the unconstrained params).

    With ``whiten=True`` (Gaussian prior only) the latent site is ``"chi"`` and ``"z"`` a
    deterministic site; otherwise ``"z"`` is sampled directly (Gaussian prior: a
    ``MultivariateNormal``; any other prior: an improper flat site plus a factor
    ``prior.log_prob_unconstrained(z)``).
    """
    import numpyro
    import numpyro.distributions as dist

    gaussian_prior = isinstance(problem.prior, GaussianPrior)
    d = problem.dim
    valid = problem.weights > 0
    y = problem.y

    def model():
        if gaussian_prior and whiten:
            chi = numpyro.sample("chi", dist.Normal(jnp.zeros(d), 1.0).to_event(1))
            z = numpyro.deterministic("z", problem.from_control(chi))
        elif gaussian_prior:
            z = numpyro.sample(
                "z",
                dist.MultivariateNormal(problem.z_b, scale_tril=problem.prior_sqrt.as_matrix()),
            )
        else:
            z = numpyro.sample(
                "z", dist.ImproperUniform(dist.constraints.real_vector, (), event_shape=(d,))
            )
            numpyro.factor("prior", problem.prior.log_prob_unconstrained(z))
        pred = problem.predict(z)
        if _is_diagonal(problem.obs_sqrt):
            sd = lx.diagonal(problem.obs_sqrt)
            if problem.likelihood == "gaussian":
                lik = dist.Normal(pred, sd)
            else:
                lik = dist.StudentT(problem.df, pred, sd)
            with numpyro.handlers.mask(mask=valid):
                numpyro.sample("y", lik.to_event(0), obs=y)
        else:
            numpyro.sample(
                "y", dist.MultivariateNormal(pred, scale_tril=problem.obs_sqrt.as_matrix()), obs=y
            )

    return model


class NUTSOracle(AbstractAnalysis):
    """NUTS posterior samples (numpyro) for any forward model, prior and likelihood.

    Attributes:
        num_warmup, num_samples: per chain (static).
        num_chains: chains, run vectorised on one device (static).
        target_accept: dual-averaging target acceptance probability.
        dense_mass: adapt a dense mass matrix (static).
        whiten: sample the whitened ``chi`` (Gaussian prior) rather than ``z``.
        init_at_map: start chains at the MAP (Gaussian likelihood: Gauss-Newton;
            Student-t: BFGS); else at the prior mean.
        n_starts: MAP solves started from the prior mean and ``n_starts - 1`` prior
            draws (vectorised); chains start at the one with the highest posterior
            density. A single start can end in a local mode far from the posterior mass
            (e.g. a plume whose source position is wrong by several pixels); chains
            started there never leave it and, all starting together, R-hat cannot tell.
            The draws use ``fold_in(key, 1)``, so the sampler's own stream is unchanged.

    The returned :class:`plumax_core.Posterior` has ``samples`` ``(chains, draws, D)``,
    ``mean`` their average, ``cov`` None, and provenance with ``n_iter`` = total draws,
    ``converged`` = max split R-hat < 1.05, and ``rhat`` / ``ess`` per parameter.
    """

    num_warmup: int = eqx.field(static=True, default=500)
    num_samples: int = eqx.field(static=True, default=500)
    num_chains: int = eqx.field(static=True, default=2)
    target_accept: float = eqx.field(static=True, default=0.8)
    dense_mass: bool = eqx.field(static=True, default=True)
    whiten: bool = eqx.field(static=True, default=True)
    init_at_map: bool = eqx.field(static=True, default=True)
    n_starts: int = eqx.field(static=True, default=8)

    def __check_init__(self):
        if not (isinstance(self.n_starts, int) and self.n_starts >= 1):
            raise ValueError(f"`n_starts` must be a positive int, got {self.n_starts!r}")
        for name in ("num_warmup", "num_samples", "num_chains"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= (0 if name == "num_warmup" else 1)):
                raise ValueError(f"`{name}` must be a non-negative int, got {v!r}")
        if not 0.0 < self.target_accept < 1.0:
            raise ValueError(f"`target_accept` must be in (0, 1), got {self.target_accept}")

    def _initial_chi(self, problem: Problem, key: PRNGKeyArray):
        """Whitened MAP start (best of ``n_starts``) and a record of the search."""
        solver = "gauss_newton" if problem.likelihood == "gaussian" else "bfgs"
        chi0 = jnp.zeros((1, problem.dim), problem.z_b.dtype)
        if self.n_starts > 1:
            draws = jr.normal(jr.fold_in(key, 1), (self.n_starts - 1, problem.dim))
            chi0 = jnp.concatenate([chi0, draws.astype(chi0.dtype)])
        res = _solve_starts(problem, chi0, solver)
        J = np.asarray(res.J, np.float64)
        J = np.where(np.isfinite(J), J, np.inf)
        best = int(np.argmin(J))
        info = {
            "map_starts": self.n_starts,
            "map_best_start": best,
            "map_gain_over_first_start": float(J[0] - J[best]) if np.isfinite(J[0]) else None,
        }
        return res.chi[best], res.z[best], info

    def run(self, problem: Problem, *, key: PRNGKeyArray):
        """Run the sampler; return the numpyro ``MCMC`` object (for diagnostics)."""
        return self._run(problem, key)[0]

    def _run(self, problem: Problem, key: PRNGKeyArray):
        from numpyro.infer import MCMC, NUTS, init_to_value

        gaussian_prior = isinstance(problem.prior, GaussianPrior)
        whiten = self.whiten and gaussian_prior
        init, info = None, {}
        if self.init_at_map and gaussian_prior:
            chi, z, info = self._initial_chi(problem, key)
            init = {"chi": chi} if whiten else {"z": z}
        kwargs = {} if init is None else {"init_strategy": init_to_value(values=init)}
        kernel = NUTS(
            numpyro_model(problem, whiten=whiten),
            target_accept_prob=self.target_accept,
            dense_mass=self.dense_mass,
            **kwargs,
        )
        mcmc = MCMC(
            kernel,
            num_warmup=self.num_warmup,
            num_samples=self.num_samples,
            num_chains=self.num_chains,
            chain_method="vectorized",
            progress_bar=False,
        )
        mcmc.run(key, extra_fields=("diverging",))
        return mcmc, info

    @clean_input_errors
    def posterior(self, problem: Problem, *, key: PRNGKeyArray | None = None) -> Posterior:
        """Sample; return a Posterior with ``samples`` and R-hat / ESS in provenance."""
        from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

        key = jr.key(0) if key is None else key
        mcmc, info = self._run(problem, key)
        z = mcmc.get_samples(group_by_chain=True)["z"]
        z = jnp.asarray(z).reshape(self.num_chains, self.num_samples, problem.dim)
        zn = np.asarray(z, dtype=np.float64)
        rhat = (
            np.asarray(split_gelman_rubin(zn))
            if self.num_samples >= 4
            else np.full(problem.dim, np.nan)
        )
        ess = np.asarray(effective_sample_size(zn))
        diverging = int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"])))
        max_rhat = float(np.nanmax(rhat)) if np.any(np.isfinite(rhat)) else float("nan")
        prov = provenance_for(
            problem,
            self,
            n_iter=self.num_chains * self.num_samples,
            J_star=None,
            converged=bool(max_rhat < 1.05) if np.isfinite(max_rhat) else None,
            rhat=[float(r) for r in rhat],
            ess=[float(e) for e in ess],
            n_divergent=diverging,
            adapter="samples",
            **info,
        )
        mean = jnp.mean(z.reshape(-1, problem.dim), axis=0)
        return Posterior(mean, None, z, provenance=prov, param_spec=problem.param_spec)
