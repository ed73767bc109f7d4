r"""Several instruments observing one source, fused in one forward model.

Each :class:`Instrument` is an observation operator (resolution + averaging kernel, e.g.
:class:`~plumax_core.BlockAverage`), a per-element noise level and a prior width for its
additive bias. A :class:`FusedForwardModel` composes the shared model with every
instrument's operator (:func:`~plumax_core.compose`) and adds one bias parameter per
instrument, so a single posterior over ``(Q, x0, y0, bias_<name>...)`` uses all the data:

$$
y_k = A_k\big(f(\theta)\big) + b_k + \varepsilon_k, \qquad
\varepsilon_k \sim \mathcal{N}(0, \sigma_k^2 I).
$$

The fused output is one flat :class:`~plumax_core.Observations` (dim ``"obs"``) that
concatenates the instruments in order; :attr:`FusedForwardModel.segments` says which
slice belongs to which instrument. :func:`holdout_check` is the posterior predictive
check of an instrument left out of the fit (is it consistent with the others?).
"""

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from ._forward import AbstractForwardModel, AbstractObservationOperator, compose
from ._met import MetField
from ._observations import OBSERVATION_KINDS, Observations
from ._params import Param, ParamSpec
from ._posterior import Posterior

__all__ = [
    "FusedForwardModel",
    "HoldoutCheck",
    "Instrument",
    "fuse_observations",
    "holdout_check",
    "simulate_instruments",
]


class Instrument(eqx.Module):
    """One instrument of a fused (Tier IV) inversion.

    Attributes:
        name: identifier (a Python identifier: it names the ``bias_<name>`` parameter).
        operator: maps the shared model's output to this instrument's observations
            (e.g. :class:`~plumax_core.BlockAverage`), or None for that output itself.
        sigma: 1-sigma noise per observation, in the observation units (e.g. ppm m).
        bias_std: prior standard deviation of the additive bias, same units.

    Raises:
        ValueError: a ``name`` that is not an identifier, or a ``sigma`` / ``bias_std``
            that is not finite and > 0.
        TypeError: an ``operator`` that is not an observation operator.
    """

    name: str = eqx.field(static=True)
    operator: AbstractObservationOperator | None
    sigma: float = eqx.field(static=True)
    bias_std: float = eqx.field(static=True, default=10.0)

    def __check_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"instrument `name` must be a Python identifier, got {self.name!r}")
        if self.operator is not None and not isinstance(self.operator, AbstractObservationOperator):
            raise TypeError("`operator` must be an AbstractObservationOperator or None")
        for field in ("sigma", "bias_std"):
            v = getattr(self, field)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"instrument {self.name!r}: `{field}` must be > 0, got {v}")


class FusedForwardModel(AbstractForwardModel):
    """All instruments' observations of one source, with one additive bias each.

    ``param_spec`` is ``base.param_spec`` followed by one ``bias_<name>`` (in the units
    of ``kind``) per instrument. The output is :class:`Observations` with dims
    ``("obs",)``: ``A_k(base(params)) + bias_k`` flattened and concatenated in
    instrument order, of total size ``segments[-1][2]``.

    Attributes:
        base: the shared model (its ``param_spec`` comes first).
        instruments: the instruments, in output order.
        members: ``compose(base, instrument.operator)`` per instrument (``base`` itself
            for an instrument without operator).
        segments: ``((name, start, stop, shape), ...)``: the slice of the flat output
            belonging to each instrument and that instrument's own output shape. Static.
        kind: the observation kind of every member (they must agree). Static.

    Raises:
        TypeError: ``base`` is not a forward model.
        ValueError: no instrument, duplicate names, a ``bias_<name>`` that clashes with a
            base parameter, members of different kinds, or an operator that cannot take
            the base output (e.g. a block size that does not divide the image).
    """

    base: AbstractForwardModel
    instruments: tuple[Instrument, ...]
    members: tuple[AbstractForwardModel, ...]
    segments: tuple[tuple[str, int, int, tuple[int, ...]], ...] = eqx.field(static=True)
    kind: str = eqx.field(static=True)

    def __init__(
        self, base: AbstractForwardModel, instruments: Sequence[Instrument], met: MetField
    ):
        """Build the fusion; ``met`` is only used to evaluate output shapes (no FLOPs)."""
        if not isinstance(base, AbstractForwardModel):
            raise TypeError(f"`base` must be an AbstractForwardModel, got {type(base).__name__}")
        instruments = tuple(instruments)
        if not instruments:
            raise ValueError("`instruments` must contain at least one Instrument")
        names = [i.name for i in instruments]
        if len(set(names)) != len(names):
            raise ValueError(f"instrument names must be unique, got {names}")
        clash = [f"bias_{n}" for n in names if f"bias_{n}" in base.param_spec.names]
        if clash:
            raise ValueError(f"bias parameter names {clash} clash with the base model's")
        members = tuple(
            base if i.operator is None else compose(base, i.operator) for i in instruments
        )
        # shapes and kinds from an abstract evaluation (no FLOPs)
        spec = base.param_spec
        z = jax.ShapeDtypeStruct((spec.size,), jnp.result_type(float))
        segs, start, kinds = [], 0, set()
        for inst, m in zip(instruments, members, strict=True):
            out = jax.eval_shape(lambda zz, m=m: m(spec.unflatten(zz), met), z)
            n = int(np.prod(out.values.shape, dtype=int))
            segs.append((inst.name, start, start + n, tuple(out.values.shape)))
            kinds.add(out.kind)
            start += n
        if len(kinds) != 1:
            raise ValueError(f"instruments return different observation kinds: {sorted(kinds)}")
        self.base = base
        self.instruments = instruments
        self.members = members
        self.segments = tuple(segs)
        self.kind = kinds.pop()

    @property
    def names(self) -> tuple[str, ...]:
        """The instrument names, in output order."""
        return tuple(i.name for i in self.instruments)

    @property
    def param_spec(self) -> ParamSpec:
        units = OBSERVATION_KINDS[self.kind][0]
        biases = tuple(
            Param(
                f"bias_{i.name}",
                units=units,
                description=f"additive bias of instrument {i.name!r}",
            )
            for i in self.instruments
        )
        return ParamSpec(self.base.param_spec.params + biases)

    def __call__(self, params: Mapping[str, Array], met: MetField) -> Observations:
        """Concatenated ``A_k(base(params)) + bias_k`` over instruments, dim ``"obs"``."""
        base_params = {n: params[n] for n in self.base.param_spec.names}
        parts = []
        for inst, m in zip(self.instruments, self.members, strict=True):
            v = m(base_params, met).values.ravel()
            parts.append(v + params[f"bias_{inst.name}"])
        values = jnp.concatenate(parts)
        return Observations(values, kind=self.kind, dims=("obs",), instrument="+".join(self.names))

    def instrument_index(self) -> np.ndarray:
        """``(n_obs,)`` int: the index of the instrument each flat element belongs to."""
        out = np.empty(self.segments[-1][2], dtype=np.int32)
        for k, (_, a, b, _) in enumerate(self.segments):
            out[a:b] = k
        return out

    def split(self, values: Array) -> dict[str, Array]:
        """Cut a flat ``(n_obs,)`` vector into ``{name: array of the instrument's shape}``."""
        return {n: values[a:b].reshape(s) for n, a, b, s in self.segments}

    def without(self, name: str, met: MetField) -> "FusedForwardModel":
        """The same fusion with instrument ``name`` held out."""
        if name not in self.names:
            raise ValueError(f"no instrument named {name!r}; known: {list(self.names)}")
        rest = [i for i in self.instruments if i.name != name]
        return FusedForwardModel(self.base, rest, met)


def _sigma_of(obs: Observations, inst: Instrument, shape: tuple[int, ...]) -> np.ndarray:
    """The data's own per-element sigma, else the instrument's (float64, ``shape``)."""
    s = obs.sigma_full() if (obs.sigma is not None or obs.noise is not None) else inst.sigma
    return np.broadcast_to(np.asarray(s, dtype=np.float64), shape)


def fuse_observations(
    model: FusedForwardModel, observations: Mapping[str, Observations]
) -> Observations:
    """Stack per-instrument data in the model's order into one flat :class:`Observations`.

    Each instrument's ``sigma`` (or its :class:`Instrument` ``sigma`` when the data carry
    none) becomes the per-element ``sigma``; masks are carried over; coordinate
    ``"obs"`` holds the instrument index of each element.

    Args:
        model: the fusion whose layout the data must follow.
        observations: ``{instrument name: Observations}``, each of the instrument's
            output shape and of ``model.kind``.

    Raises:
        ValueError: an instrument without data, or data of the wrong shape or kind.
    """
    missing = [n for n in model.names if n not in observations]
    if missing:
        raise ValueError(f"no observations for instrument(s) {missing}")
    values, sigma, mask = [], [], []
    for inst, (name, _a, _b, shape) in zip(model.instruments, model.segments, strict=True):
        obs = observations[name]
        if tuple(obs.shape) != shape:
            raise ValueError(
                f"observations of {name!r} have shape {tuple(obs.shape)}, the model gives {shape}"
            )
        if obs.kind != model.kind:
            raise ValueError(f"observations of {name!r} are {obs.kind!r}, expected {model.kind!r}")
        values.append(np.asarray(obs.values).ravel())
        sigma.append(_sigma_of(obs, inst, shape).ravel())
        mask.append(np.asarray(obs.valid()).ravel())
    m = np.concatenate(mask)
    return Observations(
        np.concatenate(values),
        kind=model.kind,
        sigma=np.concatenate(sigma),
        mask=None if m.all() else m,
        dims=("obs",),
        coords={"obs": model.instrument_index().astype(float)},
        instrument="+".join(model.names),
    )


def simulate_instruments(
    model: FusedForwardModel,
    params: Mapping[str, float],
    met: MetField,
    *,
    key: PRNGKeyArray | None,
) -> dict[str, Observations]:
    """Synthetic per-instrument data: ``A_k(base(params)) + bias_k + sigma_k * noise``.

    Args:
        model: the fusion.
        params: the base parameters and every ``bias_<name>``, physical units.
        met: the met.
        key: PRNG key of the Gaussian noise (one split per instrument); None gives
            noise-free data (still carrying ``sigma``).

    Returns:
        ``{name: Observations}`` in each instrument's own shape (dims ``("y", "x")``
        for images), ``sigma`` the instrument's.
    """
    model.param_spec.validate(params)
    p = {k: jnp.asarray(v, dtype=float) for k, v in params.items()}
    clean = model(p, met).values
    out = {}
    keys = [None] * len(model.instruments) if key is None else jr.split(key, len(model.instruments))
    for inst, (name, a, b, shape), k in zip(model.instruments, model.segments, keys, strict=True):
        v = clean[a:b].reshape(shape)
        if k is not None:
            v = v + inst.sigma * jr.normal(k, shape, dtype=v.dtype)
        dims = ("y", "x") if len(shape) == 2 else None
        out[name] = Observations(v, kind=model.kind, sigma=inst.sigma, dims=dims, instrument=name)
    return out


class HoldoutCheck(eqx.Module):
    """The result of :func:`holdout_check` (units of the observation kind).

    Attributes:
        instrument: the held-out instrument's name.
        bias_estimate: mean over valid elements of ``y - E[A(base(θ))]``: the additive
            bias the other instruments imply for it.
        reduced_chi2: mean over valid elements of the squared de-biased residual over
            ``sigma² + predictive variance``; about 1 for a consistent instrument.
        n: number of valid elements.
    """

    instrument: str = eqx.field(static=True)
    bias_estimate: float = eqx.field(static=True)
    reduced_chi2: float = eqx.field(static=True)
    n: int = eqx.field(static=True)

    def to_dict(self) -> dict[str, Any]:
        """``{"instrument", "bias_estimate", "reduced_chi2", "n"}`` (JSON-ready)."""
        return {
            "instrument": self.instrument,
            "bias_estimate": self.bias_estimate,
            "reduced_chi2": self.reduced_chi2,
            "n": self.n,
        }


def holdout_check(
    model: FusedForwardModel,
    name: str,
    observations: Observations,
    met: MetField,
    posterior: Posterior,
    *,
    key: PRNGKeyArray,
    n: int = 200,
) -> HoldoutCheck:
    """Posterior predictive check of an instrument left out of the fit.

    ``n`` draws of the base parameters from ``posterior`` (fitted without instrument
    ``name``) are pushed through that instrument's member model
    ``A_name(base(θ))`` (vectorised with ``jax.vmap``); the residual
    ``r = y - mean_draws(prediction)`` gives the implied bias ``b̂ = mean(r)`` and the
    reduced chi-square ``mean((r - b̂)² / (σ² + var_draws(prediction)))`` over the valid
    elements (``σ`` the data's own, else the instrument's).

    Args:
        model: the full fusion, the held-out instrument included.
        name: the held-out instrument.
        observations: its data (its own output shape).
        met: the met.
        posterior: the posterior of the fusion without ``name`` (its ``param_spec``
            holds the base parameters).
        key: PRNG key of the posterior draws.
        n: number of posterior draws.

    Raises:
        ValueError: an unknown instrument ``name``, or a posterior without
            ``param_spec``.
    """
    if name not in model.names:
        raise ValueError(f"no instrument named {name!r}; known: {list(model.names)}")
    if posterior.param_spec is None:
        raise ValueError("`posterior` has no param_spec: its draws cannot be named")
    k = model.names.index(name)
    member, inst = model.members[k], model.instruments[k]
    draws = posterior.sample_params(key, n)
    base_names = model.base.param_spec.names
    pred = jax.vmap(lambda p: member(p, met).values)({b: draws[b] for b in base_names})
    pred = np.asarray(pred, dtype=np.float64)
    y = np.asarray(observations.values, dtype=np.float64)
    valid = np.asarray(observations.valid())
    sigma = _sigma_of(observations, inst, y.shape)
    resid = y - pred.mean(axis=0)
    bias = float(resid[valid].mean())
    var = sigma**2 + pred.var(axis=0)
    chi2 = float(np.mean(((resid - bias) ** 2 / var)[valid]))
    return HoldoutCheck(name, bias, chi2, int(valid.sum()))
