"""Building a simulation bank: prior draws -> forward model -> noise model.

:func:`simulate_bank` draws ``theta ~ prior`` (or ``theta ~ proposal`` with importance
log-weights), runs ANY :class:`~plumax_core.AbstractForwardModel` in ``jit(vmap)``
batches sharded over local devices, applies an optional noise model, and returns a
:class:`~plumax_core.SimulationBank`, optionally through the on-disk cache of
:mod:`plumax_core._bank_cache` (resumable NetCDF shards).

Key schedule (``same key, same bank``, however the work is batched, sharded, cached or
interrupted): ``k_theta, k_noise, k_repeats, k_met = jax.random.split(key, 4)``;

* ``theta`` from ``k_theta`` (all ``n`` draws at once, before any simulation);
* draw ``i`` has the key ``k_i = split(k_noise, n)[i]``; its noise under met ``j`` (of
  K repeated mets; ``j = 0`` for one met) uses ``fold_in(k_i, j)``;
* the number of overpasses kept per draw (``min_repeats``) from ``k_repeats``;
* a sampled met of draw ``i`` from ``split(k_met, n)[i]`` (kept in ``bank.met_keys``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from ._bank import SimulationBank
from ._bank_cache import FORMAT, FORMAT_VERSION, BankCache, Shard
from ._forward import AbstractForwardModel
from ._importance import importance_log_weight
from ._met import MetField
from ._noise import AbstractNoiseModel
from ._observations import Observations
from ._prior import AbstractPrior
from ._serialise import tree_hash

ProgressCallback = Callable[[int, int], None]


def _hash_or_none(obj: Any) -> str | None:
    try:
        return tree_hash(obj)
    except TypeError:
        return None


def _simulator_hash(forward: AbstractForwardModel) -> str:
    """``tree_hash`` of a forward model; for a model whose class cannot be pickled by
    reference (defined in a script or a test function), the hash of its ``model_id`` and
    array leaves instead."""
    h = _hash_or_none(forward)
    if h is not None:
        return h
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(forward, eqx.is_array))]
    return tree_hash({"model_id": forward.model_id, "arrays": leaves})


def _key_data(key: PRNGKeyArray) -> list[int]:
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        data = jr.key_data(key)
    else:
        data = jnp.asarray(key)
        if data.dtype != jnp.uint32:
            raise TypeError(f"`key` must be a jax.random key, got dtype {data.dtype}")
    return [int(v) for v in np.asarray(data).ravel()]


def _positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
        raise ValueError(f"`{name}` must be a positive int, got {v!r}")
    return int(v)


def _one(forward, mets, sampler, noise, features, theta, noise_key, met_key):
    params = forward.param_spec.from_unconstrained(theta)
    run = mets if sampler is None else (sampler(met_key),)
    values, masks = [], []
    for j, met in enumerate(run):
        obs = forward(params, met)
        v, m = obs.values, obs.valid()
        if noise is not None:
            sigma = None
            if obs.sigma is not None or obs.noise is not None:
                sigma = obs.sigma_full()
            v, m = noise(v, sigma, m, key=jr.fold_in(noise_key, j))
        values.append(v)
        masks.append(m)
    if features is None:
        feats = jnp.zeros((0,), theta.dtype)
    else:
        feats = jnp.asarray(features(run[0]), theta.dtype)
    return jnp.stack(values), jnp.stack(masks), feats


@eqx.filter_jit
def _simulate_batch(forward, mets, sampler, noise, features, theta, noise_keys, met_keys):
    def one(th, nk, mk):
        return _one(forward, mets, sampler, noise, features, th, nk, mk)

    axes = (0, None if noise_keys is None else 0, None if met_keys is None else 0)
    return jax.vmap(one, in_axes=axes)(theta, noise_keys, met_keys)


@eqx.filter_jit
def _template(forward, theta, met):
    return forward(forward.param_spec.from_unconstrained(theta), met)


class _Work:
    """The fixed inputs of one bank: draws, keys and devices (host-side loop)."""

    def __init__(self, forward, mets, sampler, noise, features, theta, noise_keys, met_keys):
        self.forward, self.mets, self.sampler = forward, mets, sampler
        self.noise, self.features = noise, features
        self.theta, self.noise_keys, self.met_keys = theta, noise_keys, met_keys

    def run(self, start, stop, batch_size, devices, progress, done, total) -> Shard:
        sharding = None
        if len(devices) > 1:
            mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
            sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
        outs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        bs = batch_size
        for b0 in range(start, stop, bs):
            b1 = min(b0 + bs, stop)
            m = b1 - b0
            args = [self.theta[b0:b1]]
            args += [None if k is None else k[b0:b1] for k in (self.noise_keys, self.met_keys)]
            if m < bs:  # pad to a fixed batch (one compilation); the padding is dropped
                args = [
                    None
                    if a is None
                    else jnp.concatenate([a, jnp.broadcast_to(a[:1], (bs - m, *a.shape[1:]))])
                    for a in args
                ]
            target = sharding if sharding is not None else devices[0]
            args = [None if a is None else jax.device_put(a, target) for a in args]
            v, mk, f = _simulate_batch(
                self.forward, self.mets, self.sampler, self.noise, self.features, *args
            )
            outs.append((np.asarray(v)[:m], np.asarray(mk)[:m], np.asarray(f)[:m]))
            done += m
            if progress is not None:
                progress(done, total)
        values = np.concatenate([o[0] for o in outs])
        mask = np.concatenate([o[1] for o in outs])
        bad = ~np.isfinite(values) & mask
        if bad.any():
            first = int(np.argmax(bad.reshape(len(bad), -1).any(axis=1)))
            raise ValueError(
                f"the forward model returned non-finite values where valid for draw "
                f"{start + first}; mask them in its Observations, or keep the prior inside "
                "the model's domain"
            )
        return Shard(values, mask, np.concatenate([o[2] for o in outs]))


def simulate_bank(
    forward: AbstractForwardModel,
    prior: AbstractPrior,
    met: MetField | Sequence[MetField] | Callable[[PRNGKeyArray], MetField],
    n: int,
    *,
    key: PRNGKeyArray,
    noise: AbstractNoiseModel | None = None,
    proposal: AbstractPrior | None = None,
    min_repeats: int | None = None,
    met_features: Callable[[MetField], Any] | None = None,
    batch_size: int = 256,
    shard_size: int = 1024,
    cache_dir: str | os.PathLike[str] | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: ProgressCallback | None = None,
) -> SimulationBank:
    """Simulate ``n`` draws ``theta ~ prior``, ``y = noise(forward(theta, met))``.

    With a ``proposal``, ``theta ~ proposal`` instead and the bank carries the importance
    log-weights ``log prior(theta) - log proposal(theta)``; an estimator trained with
    them still targets the prior (Lueckmann et al. 2017). Use a defensive mixture
    ``MixturePrior((prior, q), (alpha, 1 - alpha))`` (Hesterberg 1995) so that every
    weight is at most ``1 / alpha``.

    Args:
        forward: any forward model (physics or emulator).
        prior: prior over ``forward.param_spec``; draws are stored in its unconstrained
            flat space.
        met: a fixed `MetField`; a sequence of K `MetField` (K repeated observations of
            the same source, ``values`` of shape ``(n, K, *S1)``); or a traceable sampler
            ``key -> MetField`` (one met per draw; an equinox Module or module-level
            function if the bank is cached or stored).
        n: number of simulations, >= 1.
        key: PRNG key; the same key gives the same bank (see the module docstring).
        noise: the observation noise model; None keeps the clean simulations.
        proposal: where to draw ``theta`` from instead of the prior (same
            ``param_spec``; its support must cover the prior's). None = the prior.
        min_repeats: with K mets, draw the number of overpasses of each simulation
            uniformly in ``[min_repeats, K]`` and mask the missing ones entirely
            (padding), so a deep-set estimator learns variable counts. None = always K.
        met_features: a traceable ``MetField -> (F,)`` (e.g. an emulator's met-feature
            extractor) whose values are stored per draw in ``bank.features``.
        batch_size: draws per ``jit(vmap(forward))`` call (bounds memory; at most
            ``shard_size``); rounded up to a multiple of the number of devices.
        shard_size: draws per cache shard (the unit of resumption).
        cache_dir: folder of the on-disk cache (NetCDF shards, resumable); None keeps
            everything in memory.
        devices: devices to shard each batch over (along the batch axis); default
            ``jax.local_devices()``. Every draw runs the same program whatever the
            device count.
        progress: called as ``progress(done, n)`` after each batch.

    Returns:
        A :class:`SimulationBank` (``log_weight`` when a proposal was used, ``features``
        with ``met_features``, ``met_keys`` with a sampled met).

    Raises:
        TypeError: wrong argument types.
        ValueError: bad sizes; a prior or proposal on another layout; draws outside the
            support or mapping to non-finite unconstrained values; non-finite importance
            weights; non-finite simulations where valid; an object that cannot be hashed
            while ``cache_dir`` is set.
    """
    if not isinstance(forward, AbstractForwardModel):
        raise TypeError(f"`forward` must be an AbstractForwardModel, got {type(forward).__name__}")
    if not isinstance(prior, AbstractPrior):
        raise TypeError(f"`prior` must be an AbstractPrior, got {type(prior).__name__}")
    spec = forward.param_spec
    if prior.param_spec != spec:
        raise ValueError("`prior.param_spec` differs from `forward.param_spec`")
    if proposal is not None:
        if not isinstance(proposal, AbstractPrior):
            raise TypeError(
                f"`proposal` must be an AbstractPrior or None, got {type(proposal).__name__}"
            )
        if proposal.param_spec != spec:
            raise ValueError("`proposal.param_spec` differs from `forward.param_spec`")
    if noise is not None and not isinstance(noise, AbstractNoiseModel):
        raise TypeError(
            f"`noise` must be an AbstractNoiseModel or None, got {type(noise).__name__}"
        )
    if met_features is not None and not callable(met_features):
        raise TypeError("`met_features` must be a callable MetField -> (F,) array, or None")
    n = _positive_int("n", n)
    shard_size = _positive_int("shard_size", shard_size)
    batch_size = _positive_int("batch_size", batch_size)
    if progress is not None and not callable(progress):
        raise TypeError("`progress` must be a callable (done, total) -> None, or None")
    mets, sampler = _met_source(met)
    if min_repeats is not None:
        k_total = len(mets) if _is_sequence(met) else 0
        if not k_total:
            raise ValueError("`min_repeats` needs a sequence of met (repeated observations)")
        if (
            isinstance(min_repeats, bool)
            or not isinstance(min_repeats, int)
            or not (1 <= min_repeats <= k_total)
        ):
            raise ValueError(f"`min_repeats` must be in [1, {k_total}], got {min_repeats!r}")
    devices = tuple(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("`devices` must not be empty")
    nd = len(devices)
    batch_size = -(-min(batch_size, shard_size, n) // nd) * nd

    k_theta, k_noise, k_repeats, k_met = jr.split(key, 4)
    source = prior if proposal is None else proposal
    params = source.sample(k_theta, n)
    spec.check_in_support(params)
    theta = spec.to_unconstrained(params)
    if not bool(jnp.all(jnp.isfinite(theta))):
        raise ValueError("draws map to non-finite unconstrained values (a draw on a bound?)")
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
    noise_keys = None if noise is None else jr.split(k_noise, n)
    met_keys = None if sampler is None else jr.split(k_met, n)
    work = _Work(forward, mets, sampler, noise, met_features, theta, noise_keys, met_keys)

    cache = None
    if cache_dir is not None:
        cache = _open_cache(
            cache_dir,
            forward,
            prior,
            proposal,
            met,
            noise,
            met_features,
            key,
            n,
            shard_size,
            theta,
        )
    template = None if cache is None else cache.load_template()
    if template is None:
        met0 = mets[0] if sampler is None else sampler(met_keys[0])
        template = _template(forward, theta[0], met0)
        if not isinstance(template, Observations):
            raise TypeError(f"`forward` must return Observations, got {type(template).__name__}")
        if cache is not None:
            cache.write_template(template)

    n_shards = -(-n // shard_size)
    shards: list[Shard | None] = [None] * n_shards
    if cache is not None:
        shards = [cache.load_shard(i) for i in range(n_shards)]
    done = sum(min(shard_size, n - i * shard_size) for i, s in enumerate(shards) if s is not None)
    for i, s in enumerate(shards):
        if s is not None:
            continue
        start, stop = i * shard_size, min(n, (i + 1) * shard_size)
        shard = work.run(start, stop, batch_size, devices, progress, done, n)
        if not _is_sequence(met):  # one met per draw: no repeat axis
            shard = Shard(shard.values[:, 0], shard.mask[:, 0], shard.features)
        shards[i] = shard
        done += stop - start
        if cache is not None:
            cache.write_shard(i, shards[i], template)

    values = np.concatenate([s.values for s in shards])
    mask = np.concatenate([s.mask for s in shards])
    feats = np.concatenate([s.features for s in shards])
    values, mask = jnp.asarray(values), jnp.asarray(mask)
    if min_repeats is not None:
        k_total = len(mets)
        counts = jr.randint(k_repeats, (n,), min_repeats, k_total + 1)
        present = jnp.arange(k_total)[None, :] < counts[:, None]
        present = present.reshape(present.shape + (1,) * (values.ndim - 2))
        mask = mask & present
        values = jnp.where(mask, values, jnp.nan)
    return SimulationBank(
        theta,
        values,
        mask,
        spec,
        template=template,
        kind=template.kind,
        simulator_id=forward.model_id,
        simulator_hash=_simulator_hash(forward),
        log_weight=log_weight,
        features=None if met_features is None else jnp.asarray(feats),
        met=tuple(mets) if _is_sequence(met) else (mets[0] if sampler is None else sampler),
        met_keys=met_keys,
        met_features=met_features,
        noise=noise,
    )


def _is_sequence(met) -> bool:
    return not isinstance(met, MetField) and isinstance(met, Sequence)


def _met_source(met) -> tuple[tuple[MetField, ...], Callable | None]:
    """``(mets, sampler)``: the fixed mets (one or K), or ``((), sampler)``."""
    if isinstance(met, MetField):
        return (met,), None
    if _is_sequence(met):
        mets = tuple(met)
        if not mets or not all(isinstance(m, MetField) for m in mets):
            raise TypeError(
                "`met` must be a MetField, a non-empty sequence of MetField or a sampler"
            )
        return mets, None
    if callable(met):
        return (), met
    raise TypeError(
        "`met` must be a MetField, a non-empty sequence of MetField or a callable "
        f"key -> MetField, got {type(met).__name__}"
    )


def _open_cache(
    cache_dir, forward, prior, proposal, met, noise, met_features, key, n, shard_size, theta
) -> BankCache:
    met_obj = tuple(met) if _is_sequence(met) else met
    hashes = {
        "forward": _hash_or_none(forward),
        "prior": _hash_or_none(prior),
        "proposal": None if proposal is None else _hash_or_none(proposal),
        "met": _hash_or_none(met_obj),
        "met_features": None if met_features is None else _hash_or_none(met_features),
        "noise": None if noise is None else _hash_or_none(noise),
    }
    given = {
        "forward": True,
        "prior": True,
        "proposal": proposal is not None,
        "met": True,
        "met_features": met_features is not None,
        "noise": noise is not None,
    }
    unhashable = [name for name, h in hashes.items() if given[name] and h is None]
    if unhashable:
        raise ValueError(
            f"{unhashable} must be hashable by plumax_core.tree_hash to be cached (a "
            "MetField, an equinox Module of importable classes or a module-level "
            "function; a lambda, closure or locally defined class is not)"
        )
    theta_np = np.asarray(theta)
    identity = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "simulator_hash": hashes["forward"],
        "model_id": forward.model_id,
        "prior_hash": hashes["prior"],
        "proposal_hash": hashes["proposal"],
        "met_hash": hashes["met"],
        "features_hash": hashes["met_features"],
        "noise_hash": hashes["noise"],
        "key": _key_data(key),
        "n": n,
        "shard_size": shard_size,
        "dtype": str(theta_np.dtype),
    }
    return BankCache(cache_dir, identity, theta_np, shard_size, forward.param_spec.flat_names)
