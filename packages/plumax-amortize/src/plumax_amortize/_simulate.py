"""Simulation banks: (parameters, observations) pairs for neural posterior estimation.

``theta ~ prior``, ``y ~ noise(forward(theta, met))``; or ``theta ~ proposal`` with the
importance log-weights ``log prior(theta) - log proposal(theta)`` stored beside the
simulations, so that an estimator trained on them can still target the prior's
posterior (a proposal puts more simulations where the prior has few, e.g. strong
sources). Parameters are stored in the *unconstrained* flat space of the forward
model's ``param_spec`` (what the flow learns; mapped back with
``ParamSpec.from_unconstrained`` so no posterior draw can leave the prior support).
Works with ANY :class:`plumax_core.AbstractForwardModel`, physics or emulator.
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from plumax_core import AbstractForwardModel, AbstractPrior, MetField, ParamSpec, tree_hash

from ._correction import importance_log_weight, kish_effective_sample_size
from ._noise import AbstractNoiseModel


class SimulationBank(eqx.Module):
    """A bank of simulations ``(theta_i, y_i)``, ``i = 1..N``.

    Attributes:
        theta: ``(N, D)`` parameters in the unconstrained space of ``param_spec``.
        values: ``(N, *S)`` noisy observations (NaN allowed where ``mask`` is False).
            For repeated observations (several overpasses) ``S = (K, *S1)``.
        mask: ``(N, *S)`` validity mask.
        param_spec: the parameter layout.
        kind: observation kind (``Observations.kind``) of the simulator.
        simulator_id: ``model_id`` of the forward model that made the bank.
        simulator_hash: content hash of the forward model (``tree_hash``).
        log_weight: ``(N,)`` importance log-weights ``log prior(theta) - log
            proposal(theta)`` when the bank was simulated from a proposal, else None
            (every weight 1). :func:`fit_npe` weights each simulation's loss by them,
            unless it is given a :class:`ProposalCorrection`.
    """

    theta: Float[Array, "N D"]
    values: Float[Array, "N ..."]
    mask: Bool[Array, "N ..."]
    param_spec: ParamSpec
    kind: str = eqx.field(static=True, default="generic")
    simulator_id: str = eqx.field(static=True, default="none")
    simulator_hash: str = eqx.field(static=True, default="")
    log_weight: Float[Array, " N"] | None = None

    def __check_init__(self):
        if not isinstance(self.param_spec, ParamSpec):
            raise TypeError("`param_spec` must be a ParamSpec")
        if self.theta.ndim != 2 or self.theta.shape[1] != self.param_spec.size:
            raise ValueError(
                f"`theta` must have shape (N, {self.param_spec.size}), got {self.theta.shape}"
            )
        if self.values.shape[0] != self.theta.shape[0]:
            raise ValueError(
                f"`values` has {self.values.shape[0]} simulations but `theta` has "
                f"{self.theta.shape[0]}"
            )
        if self.mask.shape != self.values.shape:
            raise ValueError(
                f"`mask` must have the shape of `values` {self.values.shape}, got {self.mask.shape}"
            )
        if self.log_weight is not None and self.log_weight.shape != self.theta.shape[:1]:
            raise ValueError(
                f"`log_weight` must have shape ({self.theta.shape[0]},), "
                f"got {self.log_weight.shape}"
            )

    @property
    def n(self) -> int:
        return int(self.theta.shape[0])

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Shape ``S`` of one observation."""
        return tuple(self.values.shape[1:])

    @property
    def weighted(self) -> bool:
        """True when the bank was simulated from a proposal (it carries importance
        weights); such a bank is for training, not for calibration checks."""
        return self.log_weight is not None

    def effective_sample_size(self) -> float:
        """Kish's effective sample size ``(sum w)^2 / sum w^2`` (``n`` when unweighted):
        how many prior simulations the weighted bank is worth for an average over the
        prior."""
        if self.log_weight is None:
            return float(self.n)
        return float(kish_effective_sample_size(self.log_weight))

    def params(self) -> dict[str, Array]:
        """The parameters in physical units (a params dict with leading axis N)."""
        return self.param_spec.from_unconstrained(self.theta)

    def take(self, index) -> "SimulationBank":
        """A sub-bank: ``index`` is a slice or an integer index array."""
        return SimulationBank(
            self.theta[index],
            self.values[index],
            self.mask[index],
            self.param_spec,
            kind=self.kind,
            simulator_id=self.simulator_id,
            simulator_hash=self.simulator_hash,
            log_weight=None if self.log_weight is None else self.log_weight[index],
        )

    def split(self, n_first: int) -> tuple["SimulationBank", "SimulationBank"]:
        """``(first n_first, rest)``, e.g. training and held-out simulations."""
        if not 0 < n_first < self.n:
            raise ValueError(f"`n_first` must be in (0, {self.n}), got {n_first}")
        return self.take(slice(0, n_first)), self.take(slice(n_first, None))

    def content_hash(self) -> str:
        """sha256 of the bank's arrays and layout (the training-data lineage hash)."""
        content = {
            "theta": np.asarray(self.theta),
            "values": np.asarray(self.values),
            "mask": np.asarray(self.mask),
            "param_spec": self.param_spec.to_dict(),
            "kind": self.kind,
            "simulator_hash": self.simulator_hash,
        }
        if self.log_weight is not None:  # unweighted banks keep their earlier hashes
            content["log_weight"] = np.asarray(self.log_weight)
        return tree_hash(content)


def _simulate_one(model, met, noise, theta, key):
    params = model.param_spec.from_unconstrained(theta)
    obs = model(params, met)
    sigma = None
    if obs.sigma is not None or obs.noise is not None:
        sigma = obs.sigma_full()
    return noise(obs.values, sigma, obs.valid(), key=key)


def model_hash(model: AbstractForwardModel) -> str:
    """``tree_hash`` of the forward model; for a model whose class cannot be pickled by
    reference (defined in a script or a test module), the hash of its ``model_id`` and
    array leaves instead."""
    try:
        return tree_hash(model)
    except TypeError:
        leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))]
        return tree_hash({"model_id": model.model_id, "arrays": leaves})


@eqx.filter_jit
def _simulate_chunk(model, mets, noise, theta, keys):
    outs = []
    for j, met in enumerate(mets):
        kj = jax.vmap(lambda k, j=j: jr.fold_in(k, j))(keys)
        one = lambda t, k, met=met: _simulate_one(model, met, noise, t, k)  # noqa: E731
        outs.append(jax.vmap(one)(theta, kj))
    return jnp.stack([o[0] for o in outs], axis=1), jnp.stack([o[1] for o in outs], axis=1)


def simulate(
    model: AbstractForwardModel,
    prior: AbstractPrior,
    met: MetField | Sequence[MetField],
    noise: AbstractNoiseModel,
    n: int,
    *,
    key: PRNGKeyArray,
    chunk_size: int = 1024,
    min_repeats: int | None = None,
    proposal: AbstractPrior | None = None,
) -> SimulationBank:
    """Simulate ``n`` pairs ``theta ~ prior``, ``y ~ noise(model(theta, met))``.

    With a ``proposal``, ``theta ~ proposal`` instead and the bank carries the
    importance log-weights ``log prior(theta) - log proposal(theta)``;
    :func:`fit_npe` minimises the weighted loss, whose expectation is the prior's, so
    the estimator still learns the prior's posterior while seeing more simulations
    where the proposal puts more mass (the importance-weighted loss of Lueckmann et al.
    2017). Alternatively ``fit_npe(..., correction=ProposalCorrection(prior, proposal))``
    learns the proposal's posterior and resamples its draws. Use a defensive mixture
    ``plumax_core.MixturePrior((prior, q), (alpha, 1 - alpha))`` (Hesterberg 1995) so
    that every weight is at most ``1 / alpha``.

    Args:
        model: any forward model (physics or emulator).
        prior: prior over ``model.param_spec`` (its ``sample`` must stay in the support).
        met: the meteorology; a sequence of K ``MetField`` simulates K repeated
            observations (overpasses) of the same source, giving ``values`` of shape
            ``(n, K, *S1)``.
        noise: the observation noise model.
        n: number of simulations, >= 1.
        key: PRNG key; the same key gives the same bank.
        chunk_size: simulations per vmapped batch (bounds memory).
        min_repeats: with a sequence of met, draw the number of overpasses of each
            simulation uniformly in ``[min_repeats, K]`` and mask the missing ones
            entirely (padding), so a deep-set estimator learns variable counts.
            None = always K.
        proposal: where to draw ``theta`` from instead of the prior (same
            ``param_spec``; its support must cover the prior's). None = the prior.

    Returns:
        A :class:`SimulationBank` (with ``log_weight`` when a proposal was used).

    Raises:
        TypeError, ValueError: wrong types or shapes; a proposal on another layout, or
            non-finite importance weights.
    """
    if not isinstance(model, AbstractForwardModel):
        raise TypeError(f"`model` must be an AbstractForwardModel, got {type(model).__name__}")
    if not isinstance(prior, AbstractPrior):
        raise TypeError(f"`prior` must be an AbstractPrior, got {type(prior).__name__}")
    if not isinstance(noise, AbstractNoiseModel):
        raise TypeError(f"`noise` must be an AbstractNoiseModel, got {type(noise).__name__}")
    if prior.param_spec != model.param_spec:
        raise ValueError("`prior.param_spec` differs from `model.param_spec`")
    if proposal is not None:
        if not isinstance(proposal, AbstractPrior):
            raise TypeError(
                f"`proposal` must be an AbstractPrior or None, got {type(proposal).__name__}"
            )
        if proposal.param_spec != model.param_spec:
            raise ValueError("`proposal.param_spec` differs from `model.param_spec`")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` must be a positive int, got {n!r}")
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be >= 1, got {chunk_size}")
    repeated = not isinstance(met, MetField)
    mets = tuple(met) if repeated else (met,)
    if not mets or not all(isinstance(m, MetField) for m in mets):
        raise TypeError("`met` must be a MetField or a non-empty sequence of MetField")
    spec = model.param_spec
    k_prior, k_noise, k_rep = jr.split(key, 3)
    theta = spec.to_unconstrained((prior if proposal is None else proposal).sample(k_prior, n))
    log_weight = None
    if proposal is not None:
        log_weight = importance_log_weight(prior, proposal, theta)
        if not bool(jnp.all(jnp.isfinite(log_weight))):
            raise ValueError(
                "`proposal` gave non-finite importance weights (log prior - log "
                "proposal) for some draws: its log density must be finite at its own "
                "draws, and its support must cover the prior's (a defensive mixture "
                "plumax_core.MixturePrior((prior, q), (alpha, 1 - alpha)) does both)"
            )

    keys = jr.split(k_noise, n)
    size = min(chunk_size, n)
    vals, masks = [], []
    for start in range(0, n, size):
        th, ks = theta[start : start + size], keys[start : start + size]
        m = th.shape[0]
        if m < size:  # pad the last chunk: one compiled shape for every chunk
            th = jnp.concatenate([th, jnp.broadcast_to(th[:1], (size - m, th.shape[1]))])
            ks = jnp.concatenate([ks, jnp.broadcast_to(ks[:1], (size - m, *ks.shape[1:]))])
        v, mk = _simulate_chunk(model, mets, noise, th, ks)
        vals.append(v[:m])
        masks.append(mk[:m])
    values = jnp.concatenate(vals)
    mask = jnp.concatenate(masks)
    if repeated:
        k_total = len(mets)
        if min_repeats is not None:
            if not 1 <= min_repeats <= k_total:
                raise ValueError(f"`min_repeats` must be in [1, {k_total}], got {min_repeats}")
            counts = jr.randint(k_rep, (n,), min_repeats, k_total + 1)
            present = jnp.arange(k_total)[None, :] < counts[:, None]
            present = present.reshape(present.shape + (1,) * (values.ndim - 2))
            mask = mask & present
            values = jnp.where(mask, values, jnp.nan)
    else:
        if min_repeats is not None:
            raise ValueError("`min_repeats` needs a sequence of met (repeated observations)")
        values, mask = values[:, 0], mask[:, 0]
    obs0 = model(spec.from_unconstrained(theta[0]), mets[0])
    return SimulationBank(
        theta,
        values,
        mask,
        spec,
        kind=obs0.kind,
        simulator_id=model.model_id,
        simulator_hash=model_hash(model),
        log_weight=log_weight,
    )
