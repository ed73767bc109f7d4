"""Training an emulator on a core simulation bank (optax).

:func:`fit_emulator` splits a `plumax_core.SimulationBank` (clean simulations, from
`plumax_core.simulate_bank`) into training and validation draws, fits the
input/output normalisation on the training draws, builds (or takes) a network and
minimises the mean-squared error in the normalised target space with AdamW under a
warmup + cosine learning-rate schedule (Loshchilov & Hutter 2017, 2019). Training
stops early when the validation loss has not improved for ``patience`` epochs, and
the best-validation weights are returned. The whole run is a function of ``key``
(split, initialisation, minibatch order): the same key gives the same weights.

Training does no I/O: it returns a :class:`TrainResult`, and the emulator records the
emulated model's hash and the bank's content hash (``NeuralForward.dataset_hash``).
Storing it is a separate call, :func:`plumax_emulate.save_emulator`, whose default
lineage is ``ArtifactLineage(oracle_hash=tree_hash(forward), training_artifact=
bank.content_hash())``; periodic checkpoints are the caller's, through the
``on_improvement`` callback.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import PRNGKeyArray

from plumax_core import SimulationBank
from plumax_core.training import minibatch_epoch

from ._inputs import bank_inputs, check_emulator_bank
from ._nets import AbstractEmulatorNet, ConvDecoderNet, MLPNet, PCANet
from ._neural_forward import NeuralForward
from ._normalise import OutputTransform, Standardiser


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of :func:`fit_emulator`.

    Attributes:
        learning_rate: peak learning rate of AdamW.
        final_lr_ratio: end of the cosine decay, as a fraction of the peak.
        warmup_epochs: linear warmup length, epochs.
        max_epochs: epoch budget (the cosine schedule spans it).
        batch_size: minibatch size (clipped to the training-set size).
        val_fraction: fraction of draws held out for validation/early stopping (0-0.5).
        patience: stop after this many epochs without a relative validation improvement
            of ``min_delta``.
        min_delta: relative improvement that resets the patience counter.
        weight_decay: AdamW decoupled weight decay.
        grad_clip: global-norm gradient clipping (None = off).
    """

    learning_rate: float = 3e-3
    final_lr_ratio: float = 1e-2
    warmup_epochs: int = 5
    max_epochs: int = 300
    batch_size: int = 128
    val_fraction: float = 0.1
    patience: int = 40
    min_delta: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0

    def __post_init__(self):
        if not (self.learning_rate > 0 and np.isfinite(self.learning_rate)):
            raise ValueError(f"`learning_rate` must be > 0, got {self.learning_rate}")
        if not 0 < self.final_lr_ratio <= 1:
            raise ValueError(f"`final_lr_ratio` must be in (0, 1], got {self.final_lr_ratio}")
        for name in ("max_epochs", "batch_size", "patience"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")
        if not 0 < self.val_fraction <= 0.5:
            raise ValueError(f"`val_fraction` must be in (0, 0.5], got {self.val_fraction}")
        if self.warmup_epochs < 0 or self.weight_decay < 0 or self.min_delta < 0:
            raise ValueError("`warmup_epochs`, `weight_decay` and `min_delta` must be >= 0")


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What :func:`fit_emulator` returns.

    Attributes:
        model: the trained `NeuralForward` (best validation weights).
        history: per-epoch ``train_loss``, ``val_loss`` and ``learning_rate`` lists.
        best_epoch: epoch (0-based) of the best validation loss.
        n_epochs: epochs run.
        stopped_early: whether early stopping ended the run.
        train_seconds: wall time of the optimisation loop.
        train_indices, val_indices: the bank's draws used for each role.
    """

    model: NeuralForward
    history: dict[str, list[float]]
    best_epoch: int
    n_epochs: int
    stopped_early: bool
    train_seconds: float
    train_indices: np.ndarray
    val_indices: np.ndarray


def _trainable_filter(net: AbstractEmulatorNet) -> Any:
    spec = jax.tree_util.tree_map(eqx.is_inexact_array, net)
    if isinstance(net, PCANet):
        frozen = ["coeff_scale"] if net.learn_basis else ["basis", "bias", "coeff_scale"]
        for name in frozen:
            spec = eqx.tree_at(lambda m, n=name: getattr(m, n), spec, replace=False)
    return spec


def _loss(params, static, x, t):
    net = eqx.combine(params, static)
    pred = jax.vmap(net)(x)
    return jnp.mean((pred - t) ** 2)


@eqx.filter_jit
def _eval_loss(params, static, x, t):
    return _loss(params, static, x, t)


@functools.lru_cache(maxsize=32)
def _make_optimizer(config: TrainConfig, steps_per_epoch: int):
    """AdamW + warmup-cosine schedule; cached so equal configs reuse the compiled epoch."""
    total = config.max_epochs * steps_per_epoch
    warmup = min(config.warmup_epochs * steps_per_epoch, total - 1)
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0 if warmup > 0 else config.learning_rate,
        peak_value=config.learning_rate,
        warmup_steps=warmup,
        decay_steps=total,
        end_value=config.learning_rate * config.final_lr_ratio,
    )
    chain = [] if config.grad_clip is None else [optax.clip_by_global_norm(config.grad_clip)]
    return optax.chain(*chain, optax.adamw(schedule, weight_decay=config.weight_decay)), schedule


def _build_net(
    net: str | AbstractEmulatorNet,
    n_in: int,
    targets: np.ndarray,
    out_shape: tuple[int, ...],
    options: dict[str, Any],
    key: PRNGKeyArray,
) -> AbstractEmulatorNet:
    n_out = targets.shape[1]
    if isinstance(net, AbstractEmulatorNet):
        if net.n_in != n_in or net.n_out != n_out:
            raise ValueError(
                f"`net` maps {net.n_in} -> {net.n_out} but the bank needs {n_in} -> {n_out}"
            )
        return net
    if net == "mlp":
        return MLPNet(n_in, n_out, key=key, **options)
    if net == "pca":
        return PCANet(n_in, targets, key=key, **options)
    if net == "conv":
        if len(out_shape) != 2:
            raise ValueError(f"`net='conv'` needs 2-D (image) outputs, got shape {out_shape}")
        return ConvDecoderNet(n_in, out_shape, key=key, **options)
    raise ValueError(f"`net` must be 'mlp', 'pca', 'conv' or an AbstractEmulatorNet, got {net!r}")


def fit_emulator(
    bank: SimulationBank,
    *,
    key: PRNGKeyArray,
    net: Literal["mlp", "pca", "conv"] | AbstractEmulatorNet = "mlp",
    net_options: dict[str, Any] | None = None,
    config: TrainConfig | None = None,
    log_outputs: bool = False,
    log_offset: float | None = None,
    ood: Literal["warn", "raise", "ignore"] = "warn",
    met_mismatch: Literal["warn", "raise", "ignore"] = "warn",
    on_improvement: Callable[[int, NeuralForward, float], None] | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train a `NeuralForward` on ``bank``.

    Args:
        bank: clean simulations, a `plumax_core.SimulationBank` (inputs: unconstrained
            params, then met features; the met fixed, or ``bank.met_features`` an
            `AbstractMetFeatures`).
        key: PRNG key (split, init, minibatch order).
        net: ``"mlp"`` (vector outputs), ``"conv"`` (2-D image outputs), ``"pca"``
            (basis + MLP coefficients), or a ready `AbstractEmulatorNet` (it sees
            normalised inputs/outputs; see `Standardiser`, `OutputTransform`).
        net_options: keyword arguments of the network's constructor (width, depth, ...).
        config: a `TrainConfig`.
        log_outputs: learn ``log(y + offset)`` (positive fields); ``log_offset`` defaults
            to ``1e-6 max|y|``.
        ood, met_mismatch: policies stored in the model (see `NeuralForward`).
        on_improvement: called as ``on_improvement(epoch, model, val_loss)`` each time
            the validation loss improves, with the best-so-far model (e.g. to store a
            checkpoint with `save_emulator`); training itself writes nothing.
        progress: show a tqdm bar over epochs.

    Returns:
        A `TrainResult`; ``result.model.dataset_hash`` is ``bank.content_hash()``.

    Raises:
        TypeError, ValueError: a bank an emulator cannot learn from (masked or
            non-finite values, repeated observations, a sampled met without met
            features), a bad config or network, or too few draws.
    """
    from tqdm.auto import tqdm

    check_emulator_bank(bank)
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError("`config` must be a TrainConfig")
    if bank.met_features is None and bank.fixed_met is None:
        raise ValueError(
            "`bank` was simulated under a sampled met without met features: an emulator "
            "needs one fixed met, or met features as inputs (simulate_bank(met_features=...))"
        )
    if on_improvement is not None and not callable(on_improvement):
        raise TypeError("`on_improvement` must be a callable (epoch, model, val_loss) or None")
    n = bank.n
    n_val = max(1, int(round(config.val_fraction * n)))
    if n - n_val < 2:
        raise ValueError(f"the bank ({n} draws) is too small to split for training")
    k_split, k_init, k_loop = jr.split(key, 3)
    perm = np.asarray(jr.permutation(k_split, n))
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])

    x_all = bank_inputs(bank).astype(np.float64)
    y_all = np.asarray(bank.values).reshape(n, -1).astype(np.float64)
    in_norm = Standardiser.fit(x_all[train_idx])
    out_tf = OutputTransform.fit(y_all[train_idx], log=log_outputs, offset=log_offset)
    x = np.asarray(in_norm(jnp.asarray(x_all, jnp.float32)))
    t = np.asarray(out_tf(jnp.asarray(y_all, jnp.float32)))
    x_tr, t_tr = jnp.asarray(x[train_idx]), jnp.asarray(t[train_idx])
    x_va, t_va = jnp.asarray(x[val_idx]), jnp.asarray(t[val_idx])

    network = _build_net(
        net, x.shape[1], t[train_idx], bank.obs_shape, dict(net_options or {}), k_init
    )
    batch_size = min(config.batch_size, len(train_idx))
    steps_per_epoch = n_batches = max(len(train_idx) // batch_size, 1)
    optim, schedule = _make_optimizer(config, steps_per_epoch)
    params, static = eqx.partition(network, _trainable_filter(network))
    opt_state = optim.init(params)
    dataset_hash = _bank_hash(bank)

    def make_model(p) -> NeuralForward:
        return NeuralForward(
            net=eqx.combine(p, static),
            input_norm=in_norm,
            output_transform=out_tf,
            param_spec=bank.param_spec,
            template=bank.template,
            training_met=bank.fixed_met if bank.met_features is None else None,
            met_features=bank.met_features,
            input_lower=jnp.asarray(x_all[train_idx].min(0), jnp.float32),
            input_upper=jnp.asarray(x_all[train_idx].max(0), jnp.float32),
            ood=ood,
            met_mismatch=met_mismatch,
            emulated_model_id=bank.simulator_id,
            emulated_model_hash=bank.simulator_hash,
            dataset_hash=dataset_hash,
        )

    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "learning_rate": []}
    best, best_params, best_epoch, since = np.inf, params, 0, 0
    stopped = False
    t0 = time.perf_counter()
    bar = tqdm(range(config.max_epochs), desc="training", disable=not progress)
    epoch = -1
    for epoch in bar:
        k_epoch = jr.fold_in(k_loop, epoch)
        params, opt_state, tr = minibatch_epoch(
            _loss, params, static, opt_state, optim, (x_tr, t_tr), k_epoch, batch_size, n_batches
        )
        va = float(_eval_loss(params, static, x_va, t_va))
        history["train_loss"].append(float(tr))
        history["val_loss"].append(va)
        history["learning_rate"].append(float(schedule((epoch + 1) * steps_per_epoch)))
        if not np.isfinite(va):
            raise FloatingPointError(
                f"validation loss is {va} at epoch {epoch}; lower `learning_rate`"
            )
        improved = va < best
        if va < best * (1 - config.min_delta):
            best, best_params, best_epoch, since = va, params, epoch, 0
        else:
            since += 1
        if va < best:
            best, best_params, best_epoch = va, params, epoch
        bar.set_postfix(val=f"{va:.3g}", best=f"{best:.3g}")
        if improved and on_improvement is not None:
            on_improvement(epoch, make_model(best_params), best)
        if since >= config.patience:
            stopped = True
            break
    bar.close()
    seconds = time.perf_counter() - t0
    return TrainResult(
        model=make_model(best_params),
        history=history,
        best_epoch=best_epoch,
        n_epochs=epoch + 1,
        stopped_early=stopped,
        train_seconds=seconds,
        train_indices=train_idx,
        val_indices=val_idx,
    )


def _bank_hash(bank: SimulationBank) -> str:
    """The bank's content hash, or "" for a bank that cannot be serialised (a lambda
    met sampler): such a bank cannot be stored either, so there is no lineage to keep."""
    try:
        return bank.content_hash()
    except TypeError:
        return ""
