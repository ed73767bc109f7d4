"""A minimal run through plumax-core: model -> prior -> exact posterior -> gates -> registry.

Run it with ``uv run python examples/core_quickstart.py``. It needs nothing but
plumax-core. A toy linear "sensor" observes a point source of strength Q (kg/s)
at known position through a Gaussian footprint; with a Gaussian prior on Q the
posterior is closed form. The script then

1. simulates noisy observations from the forward model,
2. computes the exact (conjugate) posterior and wraps it in a ``Posterior`` with
   complete provenance,
3. checks calibration with the cycle's gates (SBC and TARP over 300 simulations),
4. stores the posterior in an ``ArtifactRegistry`` and prints its lineage.
"""

from __future__ import annotations

import tempfile

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

import plumax_core as pc


class ToySensor(pc.AbstractForwardModel):
    """Concentration (ppm) at receptors: Q * exp(-r^2 / 2 s^2) / u, linear in Q."""

    receptors: jax.Array
    width: float = eqx.field(static=True, default=50.0)

    @property
    def param_spec(self) -> pc.ParamSpec:
        return pc.ParamSpec((pc.Param("Q", units="kg/s"),))

    def __call__(self, params, met):
        footprint = jnp.exp(-0.5 * (self.receptors / self.width) ** 2) / met.wind_speed
        return pc.Observations(
            params["Q"] * footprint, kind="concentration_ppm", dims=("receptor",)
        )


def exact_posterior(model, met, y, sigma, prior_mean, prior_std):
    """Conjugate Gaussian posterior of Q for y = Q h + noise."""
    h = model({"Q": jnp.asarray(1.0)}, met).values
    precision = 1.0 / prior_std**2 + jnp.sum(h * h) / sigma**2
    var = 1.0 / precision
    mean = var * (prior_mean / prior_std**2 + jnp.sum(h * y) / sigma**2)
    return mean, var


def main() -> None:
    key = jr.key(0)
    model = ToySensor(jnp.linspace(-200.0, 200.0, 21))
    met = pc.MetField.uniform(4.0, 270.0, source="quickstart")
    prior = pc.GaussianPrior.from_std(model.param_spec, mean=1.0, std=0.5)
    sigma = 0.05

    # 1-2: one synthetic overpass and its exact posterior
    q_true = 1.3
    k_noise, k_sbc = jr.split(key)
    clean = model({"Q": jnp.asarray(q_true)}, met).values
    y = clean + sigma * jr.normal(k_noise, clean.shape)
    mean, var = exact_posterior(model, met, y, sigma, 1.0, 0.5)
    posterior = pc.Posterior(
        jnp.atleast_1d(mean),
        jnp.atleast_2d(var),
        provenance=pc.make_provenance(
            forward_model=model, met=met, n_iter=0, converged=True, method="conjugate"
        ),
        param_spec=model.param_spec,
    )
    lo, hi = posterior.credible_interval(0.9)["Q"]
    print(f"Q true = {q_true:.3f} kg/s; posterior {float(mean):.3f} ± {float(var) ** 0.5:.3f}")
    print(f"90% credible interval [{float(lo):.3f}, {float(hi):.3f}] kg/s")

    # 3: calibration over many simulations (the cycle's SBC and TARP gates)
    n_sims, n_draws = 300, 99
    k_theta, k_y, k_post, k_tarp = jr.split(k_sbc, 4)
    theta = prior.sample(k_theta, n_sims)["Q"]
    ys = theta[:, None] * model({"Q": jnp.asarray(1.0)}, met).values + sigma * jr.normal(
        k_y, (n_sims, clean.shape[0])
    )
    means, vars_ = jax.vmap(lambda yy: exact_posterior(model, met, yy, sigma, 1.0, 0.5))(ys)
    draws = means[:, None] + jnp.sqrt(vars_)[:, None] * jr.normal(k_post, (n_sims, n_draws))
    ranks = pc.gates.sbc_ranks(theta[:, None], draws[..., None])
    print(pc.gates.sbc_uniformity(ranks, n_draws))
    print(pc.gates.tarp_coverage(draws[..., None], theta[:, None], key=k_tarp))

    # 4: store the posterior as an artifact and show its lineage
    with tempfile.TemporaryDirectory() as root:
        registry = pc.ArtifactRegistry(root)
        oracle_hash = registry.store(model, name="toy-sensor", role=pc.ModelRole.ORACLE)
        post_hash = registry.store(
            posterior,
            name="toy-posterior",
            role=pc.ModelRole.PRODUCTION,
            lineage=pc.ArtifactLineage(oracle_hash=oracle_hash),
        )
        print(f"stored posterior {post_hash[:12]} (oracle {oracle_hash[:12]})")
        restored = registry.load("toy-posterior")
        assert bool(jnp.all(restored.mean == posterior.mean))
        print("lineage:", registry.lineage(post_hash))


if __name__ == "__main__":
    main()
