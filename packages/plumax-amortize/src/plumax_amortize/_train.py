"""Maximum-likelihood training of an NPE with optax and early stopping.

The loss is the negative log density of the training parameters under the conditional
flow, ``-mean_i log q(theta_i | y_i)`` (Papamakarios & Murray 2016; Greenberg et al.
2019), minimised jointly over the flow and the summary network with Adam. A fixed
fraction of the bank is held out; after every epoch the held-out loss is computed and
training stops when it has not improved for ``patience`` epochs, returning the weights
of the best epoch. Optionally the step size is multiplied by ``lr_decay`` whenever the
held-out loss has not improved for ``lr_patience`` epochs (reduce-on-plateau): the late,
small steps are what sharpens the flow on high-signal observations whose posterior is
much narrower than the prior.

A bank simulated from a proposal (``SimulationBank.log_weight``) is trained on the
importance-weighted loss ``-mean_i w_i log q(theta_i | y_i)``, ``w_i = prior / proposal``
normalised to mean 1 on each split (Lueckmann et al. 2017): its expectation is the
loss under the prior, so the estimator targets the prior's posterior. With a
:class:`ProposalCorrection` instead, the weights are left out of the loss (the flow
learns the proposal posterior, spending its capacity where the proposal put the
simulations) and the estimator resamples its draws into the prior's posterior.

Minibatch order, the held-out split and the initial weights all come from one key, so
training is deterministic given the key on a CPU. Training does no I/O: :func:`fit_npe`
returns the estimator (which records the content hash of its training bank) and its
history; storing it is a separate call, :func:`plumax_amortize.save_npe`.
On a GPU, XLA picks convolution kernels by timing them and reductions can use atomics,
so two runs with the same key can differ in the last bits and then drift apart (seen on
an H100: held-out loss 1.192 and 1.199 for the same key). The environment variable
``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` asks XLA for deterministic kernels.
"""

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import paramax
from jaxtyping import PRNGKeyArray

from plumax_core import SimulationBank
from plumax_core.training import minibatch_epoch

from ._correction import ProposalCorrection
from ._embeddings import AbstractEmbedding, MLPEmbedding
from ._flows import FlowConfig, build_flow
from ._npe import NPE, standardisation, theta_standardisation


class TrainConfig(eqx.Module):
    """Static optimisation settings.

    Attributes:
        learning_rate: Adam step size.
        batch_size: minibatch size (capped at the training-set size).
        max_epochs: epoch limit.
        patience: stop after this many epochs without a better held-out loss.
        val_fraction: fraction of the bank held out for early stopping, in (0, 0.5].
        max_steps: hard limit on optimiser steps (None = no limit); ``max_steps=2``
            gives a deliberately under-trained estimator.
        clip_norm: global gradient-norm clip.
        weight_decay: AdamW weight decay (0 = Adam).
        lr_decay: factor in (0, 1] applied to the step size after ``lr_patience`` epochs
            without a better held-out loss (1 = constant step size).
        lr_patience: epochs without improvement before each decay; it must be smaller
            than ``patience`` for a decay to happen before training stops.
        min_learning_rate: the step size never decays below this (checked against
            ``learning_rate`` only when ``lr_decay < 1``).
    """

    learning_rate: float = eqx.field(static=True, default=1e-3)
    batch_size: int = eqx.field(static=True, default=256)
    max_epochs: int = eqx.field(static=True, default=200)
    patience: int = eqx.field(static=True, default=15)
    val_fraction: float = eqx.field(static=True, default=0.1)
    max_steps: int | None = eqx.field(static=True, default=None)
    clip_norm: float = eqx.field(static=True, default=5.0)
    weight_decay: float = eqx.field(static=True, default=0.0)
    lr_decay: float = eqx.field(static=True, default=1.0)
    lr_patience: int = eqx.field(static=True, default=5)
    min_learning_rate: float = eqx.field(static=True, default=1e-5)

    def __check_init__(self):
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be > 0, got {self.learning_rate}")
        for name in ("batch_size", "max_epochs", "patience", "lr_patience"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")
        if not 0.0 < self.val_fraction <= 0.5:
            raise ValueError(f"`val_fraction` must be in (0, 0.5], got {self.val_fraction}")
        if self.max_steps is not None and (
            not isinstance(self.max_steps, int) or self.max_steps < 1
        ):
            raise ValueError(f"`max_steps` must be a positive int or None, got {self.max_steps!r}")
        if not self.clip_norm > 0 or self.weight_decay < 0:
            raise ValueError("`clip_norm` must be > 0 and `weight_decay` >= 0")
        if not 0.0 < self.lr_decay <= 1.0:
            raise ValueError(f"`lr_decay` must be in (0, 1], got {self.lr_decay}")
        if not self.min_learning_rate > 0 or (
            self.lr_decay < 1.0 and self.min_learning_rate > self.learning_rate
        ):
            raise ValueError(
                f"`min_learning_rate` must be in (0, learning_rate], got {self.min_learning_rate}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "max_epochs": self.max_epochs,
            "patience": self.patience,
            "val_fraction": self.val_fraction,
            "max_steps": self.max_steps,
            "clip_norm": self.clip_norm,
            "weight_decay": self.weight_decay,
            "lr_decay": self.lr_decay,
            "lr_patience": self.lr_patience,
            "min_learning_rate": self.min_learning_rate,
        }


class TrainHistory(eqx.Module):
    """What happened during training.

    Attributes:
        train_loss: mean minibatch loss per epoch (nats per simulation; importance-weighted
            for a bank with ``log_weight`` trained without a correction, as is
            ``val_loss``).
        val_loss: held-out loss per epoch.
        best_epoch: index of the epoch whose weights were kept.
        n_steps: optimiser steps taken.
        stopped_early: True when patience ran out before ``max_epochs``/``max_steps``.
        learning_rate: the step size used in each epoch.
    """

    train_loss: tuple[float, ...] = eqx.field(static=True)
    val_loss: tuple[float, ...] = eqx.field(static=True)
    best_epoch: int = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    stopped_early: bool = eqx.field(static=True)
    learning_rate: tuple[float, ...] = eqx.field(static=True, default=())

    @property
    def best_val_loss(self) -> float:
        return self.val_loss[self.best_epoch]

    def to_dict(self) -> dict[str, Any]:
        return {
            "train_loss": list(self.train_loss),
            "val_loss": list(self.val_loss),
            "best_epoch": self.best_epoch,
            "n_steps": self.n_steps,
            "stopped_early": self.stopped_early,
            "learning_rate": list(self.learning_rate),
        }


def _weighted_log_q(params, static, z, x, m, w):
    flow, embedding = paramax.unwrap(eqx.combine(params, static))
    e = jax.vmap(embedding)(x, m)
    return w * flow.log_prob(z, e)


def _loss(params, static, z, x, m, w):
    return -jnp.mean(_weighted_log_q(params, static, z, x, m, w))


#: held-out simulations scored per call: bounds the memory of the held-out loss (20 000
#: images of 24 x 24 through the default CNN took ~1.4 GB at once on a GPU)
_HELD_OUT_CHUNK = 4096


_held_out_mean = eqx.filter_jit(_loss)


@eqx.filter_jit
def _held_out_sum(params, static, z, x, m, w):
    return -jnp.sum(_weighted_log_q(params, static, z, x, m, w))


def _held_out_loss(params, static, data, chunk: int = _HELD_OUT_CHUNK) -> float:
    """``-mean_i w_i log q(theta_i | y_i)`` over ``data``, in chunks of ``chunk``
    simulations (the last one padded with zero-weight copies: one compiled shape)."""
    n = data[0].shape[0]
    if n <= chunk:
        return float(_held_out_mean(params, static, *data))
    total = 0.0
    for start in range(0, n, chunk):
        part = [a[start : start + chunk] for a in data]
        m = part[0].shape[0]
        if m < chunk:
            part = [
                jnp.concatenate([a, jnp.broadcast_to(a[:1], (chunk - m, *a.shape[1:]))])
                for a in part
            ]
            part[-1] = part[-1].at[m:].set(0.0)  # the weights: padding adds nothing
        total += float(_held_out_sum(params, static, *part))
    return total / n


def _unit_mean_weights(log_weight):
    """Importance weights ``exp(log_weight)`` scaled to mean 1."""
    w = jnp.exp(log_weight - jnp.max(log_weight))
    return w / jnp.mean(w)


def fit_npe(
    bank: SimulationBank,
    *,
    key: PRNGKeyArray,
    embedding: AbstractEmbedding | None = None,
    flow: FlowConfig | None = None,
    train: TrainConfig | None = None,
    correction: ProposalCorrection | None = None,
) -> tuple[NPE, TrainHistory]:
    """Train a neural posterior estimator on a simulation bank.

    The estimator records the bank's content hash (``npe.dataset_hash ==
    bank.content_hash()``, the bank's registry hash) and its simulator; nothing is
    written anywhere: store it with ``save_npe(npe, registry, name)``, whose default
    lineage points at the simulator and the bank.

    Args:
        bank: training simulations (a :class:`plumax_core.SimulationBank`, see
            :func:`simulate`); the held-out split for early
            stopping is taken from it. A bank with ``log_weight`` (simulated from a
            proposal) is trained and scored on the importance-weighted loss, unless a
            ``correction`` is given.
        key: PRNG key (weights, split, minibatches); same key, same estimator.
        embedding: summary network whose ``obs_shape`` equals ``bank.obs_shape``;
            default an :class:`MLPEmbedding` (vectors and small images).
        flow: the flow recipe (default ``FlowConfig()``: a 4-layer affine MAF).
        train: optimisation settings (default ``TrainConfig()``).
        correction: for a bank simulated from a proposal: train on the unweighted loss
            (learn the proposal posterior) and resample every posterior draw into the
            prior's with this :class:`ProposalCorrection`, whose prior and proposal
            must be those the bank was simulated with. None = the weighted loss.

    Returns:
        ``(npe, history)``.

    Raises:
        TypeError, ValueError: wrong types, an embedding whose shape does not match the
            bank, or a bank too small for the held-out split.
    """
    if not isinstance(bank, SimulationBank):
        raise TypeError(f"`bank` must be a SimulationBank, got {type(bank).__name__}")
    flow = FlowConfig() if flow is None else flow
    train = TrainConfig() if train is None else train
    if not isinstance(flow, FlowConfig):
        raise TypeError(f"`flow` must be a FlowConfig, got {type(flow).__name__}")
    if not isinstance(train, TrainConfig):
        raise TypeError(f"`train` must be a TrainConfig, got {type(train).__name__}")
    if correction is not None:
        _check_correction(correction, bank)
    k_emb, k_flow, k_split, k_epochs = jr.split(key, 4)
    if embedding is None:
        embedding = MLPEmbedding(bank.obs_shape, key=k_emb)
    if not isinstance(embedding, AbstractEmbedding):
        raise TypeError(f"`embedding` must be an AbstractEmbedding, got {type(embedding).__name__}")
    if tuple(embedding.obs_shape) != bank.obs_shape:
        raise ValueError(
            f"`embedding.obs_shape` {embedding.obs_shape} does not match the bank's "
            f"observations {bank.obs_shape}"
        )
    n_val = max(1, int(round(train.val_fraction * bank.n)))
    n_train = bank.n - n_val
    if n_train < 2:
        raise ValueError(f"`bank` is too small ({bank.n} simulations) for training")

    perm = jr.permutation(k_split, bank.n)
    theta, values, mask = bank.theta[perm], bank.values[perm], bank.mask[perm]
    tr = slice(0, n_train)
    if not bank.weighted or correction is not None:
        w_train = jnp.ones(n_train, theta.dtype)
        w_val = jnp.ones(n_val, theta.dtype)
    else:
        lw = bank.log_weight[perm].astype(theta.dtype)
        w_train, w_val = _unit_mean_weights(lw[tr]), _unit_mean_weights(lw[n_train:])
    t_loc, t_scale = theta_standardisation(theta[tr])
    o_loc, o_scale = standardisation(values[tr], mask[tr], embedding.element_ndim)
    z = (theta - t_loc) / t_scale
    x = jnp.where(mask, (values - o_loc) / o_scale, 0.0)

    model = (build_flow(flow, bank.param_spec.size, embedding.out_dim, key=k_flow), embedding)
    params, static = eqx.partition(
        model, eqx.is_inexact_array, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable)
    )
    adam = (
        optax.inject_hyperparams(optax.adamw)(
            learning_rate=train.learning_rate, weight_decay=train.weight_decay
        )
        if train.weight_decay > 0
        else optax.inject_hyperparams(optax.adam)(learning_rate=train.learning_rate)
    )
    optimiser = optax.chain(optax.clip_by_global_norm(train.clip_norm), adam)
    opt_state = optimiser.init(params)
    lr, last_change = train.learning_rate, -1
    batch = min(train.batch_size, n_train)
    per_epoch = n_train // batch

    train_data = (z[tr], x[tr], mask[tr], w_train)
    val_data = (z[n_train:], x[n_train:], mask[n_train:], w_val)

    best = (math.inf, params, -1)
    train_hist: list[float] = []
    val_hist: list[float] = []
    lr_hist: list[float] = []
    steps, stopped_early = 0, False
    for i, ekey in enumerate(jr.split(k_epochs, train.max_epochs)):
        n_batches = per_epoch
        if train.max_steps is not None:
            n_batches = min(n_batches, train.max_steps - steps)
            if n_batches <= 0:
                break
        params, opt_state, tl = minibatch_epoch(
            _loss, params, static, opt_state, optimiser, train_data, ekey, batch, n_batches
        )
        steps += n_batches
        vl = _held_out_loss(params, static, val_data)
        train_hist.append(float(tl))
        val_hist.append(vl)
        lr_hist.append(lr)
        if np.isfinite(vl) and vl < best[0]:
            best = (vl, params, i)
        if i - best[2] >= train.patience:
            stopped_early = True
            break
        if train.lr_decay < 1.0 and i - max(best[2], last_change) >= train.lr_patience:
            lr, last_change = max(lr * train.lr_decay, train.min_learning_rate), i
            opt_state = _set_learning_rate(opt_state, lr)
    if best[2] < 0:  # the held-out loss was never finite: keep the last weights
        best = (math.nan, params, len(val_hist) - 1)
    flow_t, emb_t = eqx.combine(best[1], static)
    npe = NPE(
        flow_t,
        emb_t,
        bank.param_spec,
        theta_loc=t_loc,
        theta_scale=t_scale,
        obs_loc=o_loc,
        obs_scale=o_scale,
        flow_config=flow,
        simulator_id=bank.simulator_id,
        simulator_hash=bank.simulator_hash,
        dataset_hash=_bank_hash(bank),
        correction=correction,
    )
    history = TrainHistory(
        train_loss=tuple(train_hist),
        val_loss=tuple(val_hist),
        best_epoch=max(best[2], 0),
        n_steps=steps,
        stopped_early=stopped_early,
        learning_rate=tuple(lr_hist),
    )
    return npe, history


def _bank_hash(bank: SimulationBank) -> str:
    """The bank's content hash, or "" for a bank that cannot be serialised (a lambda
    met sampler): such a bank cannot be stored either, so there is no lineage to keep."""
    try:
        return bank.content_hash()
    except TypeError:
        return ""


def _check_correction(correction, bank: SimulationBank) -> None:
    """The correction must undo the proposal the bank was simulated from."""
    if not isinstance(correction, ProposalCorrection):
        raise TypeError(
            f"`correction` must be a ProposalCorrection or None, got {type(correction).__name__}"
        )
    if correction.prior.param_spec != bank.param_spec:
        raise ValueError("`correction.prior.param_spec` differs from `bank.param_spec`")
    if not bank.weighted:
        raise ValueError(
            "`correction` needs a bank simulated from its proposal "
            "(simulate(..., proposal=correction.proposal)); this bank has no importance weights"
        )
    m = min(bank.n, 256)
    expected = np.asarray(correction.log_weight(bank.theta[:m]), dtype=np.float64)
    stored = np.asarray(bank.log_weight[:m], dtype=np.float64)
    if not np.allclose(expected, stored, rtol=1e-4, atol=1e-4):
        raise ValueError(
            "`correction`'s log prior - log proposal differs from the bank's `log_weight`: "
            "use the prior and proposal the bank was simulated with"
        )


def _set_learning_rate(opt_state, lr: float):
    """The chain's state with the injected Adam step size replaced by ``lr``."""
    clip_state, adam_state = opt_state
    hyper = dict(adam_state.hyperparams)
    hyper["learning_rate"] = jnp.asarray(lr, dtype=jnp.asarray(hyper["learning_rate"]).dtype)
    return (clip_state, adam_state._replace(hyperparams=hyper))
