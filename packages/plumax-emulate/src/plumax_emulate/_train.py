"""Training an emulator on a `SimulationDataset` (optax).

:func:`fit_emulator` splits the dataset into training and validation draws, fits the
input/output normalisation on the training draws, builds (or takes) a network and
minimises the mean-squared error in the normalised target space with AdamW under a
warmup + cosine learning-rate schedule (Loshchilov & Hutter 2017, 2019). Training
stops early when the validation loss has not improved for ``patience`` epochs, and
the best-validation weights are returned. The whole run is a function of ``key``
(split, initialisation, minibatch order): the same key gives the same weights.

Checkpoints go through `plumax_core.ArtifactRegistry` with role ``EMULATOR`` and lineage
``ArtifactLineage(oracle_hash=tree_hash(forward), training_artifact=dataset.hash)``:
``tree_hash(forward)`` is the hash under which the registry stores the oracle model.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import PRNGKeyArray

from plumax_core import ArtifactLineage, ArtifactRegistry, ModelRole
from plumax_core.training import minibatch_epoch

from ._dataset import SimulationDataset
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
        checkpoint_every: store the best-so-far model in the registry every this many
            epochs (None = only the final model).
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
    checkpoint_every: int | None = None

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
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ValueError("`checkpoint_every` must be a positive int or None")


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
        train_indices, val_indices: the dataset draws used for each role.
        artifact_hash: registry hash of the stored model, or None.
        checkpoint_hashes: hashes of intermediate checkpoints.
    """

    model: NeuralForward
    history: dict[str, list[float]]
    best_epoch: int
    n_epochs: int
    stopped_early: bool
    train_seconds: float
    train_indices: np.ndarray
    val_indices: np.ndarray
    artifact_hash: str | None = None
    checkpoint_hashes: tuple[str, ...] = ()


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
                f"`net` maps {net.n_in} -> {net.n_out} but the dataset needs {n_in} -> {n_out}"
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
    dataset: SimulationDataset,
    *,
    key: PRNGKeyArray,
    net: Literal["mlp", "pca", "conv"] | AbstractEmulatorNet = "mlp",
    net_options: dict[str, Any] | None = None,
    config: TrainConfig | None = None,
    log_outputs: bool = False,
    log_offset: float | None = None,
    ood: Literal["warn", "raise", "ignore"] = "warn",
    met_mismatch: Literal["warn", "raise", "ignore"] = "warn",
    registry: ArtifactRegistry | None = None,
    name: str | None = None,
    tags: dict[str, Any] | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train a `NeuralForward` on ``dataset``.

    Args:
        dataset: the simulations (inputs: unconstrained params, then met features).
        key: PRNG key (split, init, minibatch order).
        net: ``"mlp"`` (vector outputs), ``"conv"`` (2-D image outputs), ``"pca"``
            (basis + MLP coefficients), or a ready `AbstractEmulatorNet` (it sees
            normalised inputs/outputs; see `Standardiser`, `OutputTransform`).
        net_options: keyword arguments of the network's constructor (width, depth, ...).
        config: a `TrainConfig`.
        log_outputs: learn ``log(y + offset)`` (positive fields); ``log_offset`` defaults
            to ``1e-6 max|y|``.
        ood, met_mismatch: policies stored in the model (see `NeuralForward`).
        registry, name: if given, store the best model as an ``EMULATOR`` artifact under
            ``name`` (and checkpoints under ``name + "-checkpoint"``).
        tags: extra registry tags.
        progress: show a tqdm bar over epochs.

    Returns:
        A `TrainResult`.
    """
    from tqdm.auto import tqdm

    if not isinstance(dataset, SimulationDataset):
        raise TypeError(f"`dataset` must be a SimulationDataset, got {type(dataset).__name__}")
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError("`config` must be a TrainConfig")
    if registry is not None and not name:
        raise ValueError("`name` is required when `registry` is given")
    n = len(dataset)
    n_val = max(1, int(round(config.val_fraction * n)))
    if n - n_val < 2:
        raise ValueError(f"the dataset ({n} draws) is too small to split for training")
    k_split, k_init, k_loop = jr.split(key, 3)
    perm = np.asarray(jr.permutation(k_split, n))
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])

    x_all = np.concatenate([dataset.theta, dataset.features], axis=1).astype(np.float64)
    y_all = dataset.values.reshape(n, -1).astype(np.float64)
    in_norm = Standardiser.fit(x_all[train_idx])
    out_tf = OutputTransform.fit(y_all[train_idx], log=log_outputs, offset=log_offset)
    x = np.asarray(in_norm(jnp.asarray(x_all, jnp.float32)))
    t = np.asarray(out_tf(jnp.asarray(y_all, jnp.float32)))
    x_tr, t_tr = jnp.asarray(x[train_idx]), jnp.asarray(t[train_idx])
    x_va, t_va = jnp.asarray(x[val_idx]), jnp.asarray(t[val_idx])

    network = _build_net(
        net, x.shape[1], t[train_idx], dataset.values.shape[1:], dict(net_options or {}), k_init
    )
    batch_size = min(config.batch_size, len(train_idx))
    steps_per_epoch = n_batches = max(len(train_idx) // batch_size, 1)
    optim, schedule = _make_optimizer(config, steps_per_epoch)
    params, static = eqx.partition(network, _trainable_filter(network))
    opt_state = optim.init(params)

    def make_model(p) -> NeuralForward:
        return NeuralForward(
            net=eqx.combine(p, static),
            input_norm=in_norm,
            output_transform=out_tf,
            param_spec=dataset.param_spec,
            template=dataset.template,
            training_met=dataset.met if dataset.met_features is None else None,
            met_features=dataset.met_features,
            input_lower=jnp.asarray(x_all[train_idx].min(0), jnp.float32),
            input_upper=jnp.asarray(x_all[train_idx].max(0), jnp.float32),
            ood=ood,
            met_mismatch=met_mismatch,
            emulated_model_id=dataset.forward.model_id,
            emulated_model_hash=dataset.model_hash or "",
        )

    lineage = ArtifactLineage(oracle_hash=dataset.model_hash, training_artifact=dataset.hash)
    base_tags = {"dataset_id": dataset.dataset_id, "n_train": len(train_idx), **(tags or {})}
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "learning_rate": []}
    best, best_params, best_epoch, since = np.inf, params, 0, 0
    checkpoints: list[str] = []
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
        if va < best * (1 - config.min_delta):
            best, best_params, best_epoch, since = va, params, epoch, 0
        else:
            since += 1
        if va < best:
            best, best_params, best_epoch = va, params, epoch
        bar.set_postfix(val=f"{va:.3g}", best=f"{best:.3g}")
        if (
            registry is not None
            and config.checkpoint_every is not None
            and (epoch + 1) % config.checkpoint_every == 0
        ):
            h = registry.store(
                make_model(best_params),
                f"{name}-checkpoint",
                ModelRole.EMULATOR,
                lineage=lineage,
                tags={**base_tags, "epoch": epoch, "best_epoch": best_epoch, "val_loss": best},
            )
            checkpoints.append(h)
        if since >= config.patience:
            stopped = True
            break
    bar.close()
    seconds = time.perf_counter() - t0
    model = make_model(best_params)
    artifact = None
    if registry is not None:
        artifact = registry.store(
            model,
            name,
            ModelRole.EMULATOR,
            lineage=lineage,
            tags={**base_tags, "best_epoch": best_epoch, "val_loss": best},
        )
    return TrainResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        n_epochs=epoch + 1,
        stopped_early=stopped,
        train_seconds=seconds,
        train_indices=train_idx,
        val_indices=val_idx,
        artifact_hash=artifact,
        checkpoint_hashes=tuple(checkpoints),
    )
