"""Tier IV coupling: several instruments observing one source, fused in one forward model.

Each :class:`Instrument` is an observation operator (resolution + averaging kernel),
a per-element noise level and a prior width for its additive bias. A
:class:`FusedForwardModel` composes the shared transport model with every instrument's
operator (:func:`plumax_core.compose`) and adds one bias parameter per instrument, so a
single posterior over ``(Q, x0, y0, bias_<name>...)`` uses all the data at once:

``y_k = A_k(transport(Q, x0, y0)) + b_k + e_k``,   ``e_k ~ N(0, sigma_k^2 I)``.

The fused output is one flat :class:`plumax_core.Observations` (dim ``"obs"``) that
concatenates the instruments in order; :attr:`FusedForwardModel.segments` says which
slice belongs to which instrument.
"""

from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from plumax_core import (
    AbstractForwardModel,
    AbstractObservationOperator,
    MetField,
    Observations,
    Param,
    ParamSpec,
    compose,
)

__all__ = ["FusedForwardModel", "Instrument", "fuse_observations", "simulate_instruments"]


class Instrument(eqx.Module):
    """One instrument of a Tier IV inversion.

    Attributes:
        name: identifier (a Python identifier: it names the ``bias_<name>`` parameter).
        operator: maps the transport model's output to this instrument's observations
            (e.g. :class:`plumax.BlockAverage`), or None for the transport output itself.
        sigma: 1-sigma noise per observation, in the observation units (e.g. ppm m).
        bias_std: prior standard deviation of the additive bias, same units.
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

    Attributes:
        base: the shared transport model (its ``param_spec`` comes first).
        instruments: the instruments, in output order.
        members: ``compose(base, instrument.operator)`` per instrument.
        segments: ``((name, start, stop, shape), ...)``: the slice of the flat output
            belonging to each instrument and that instrument's own output shape. Static.
        kind: the observation kind of every member (they must agree). Static.

    ``param_spec`` = ``base.param_spec`` + ``bias_<name>`` (units of ``kind``) per
    instrument. Output: :class:`Observations` with dims ``("obs",)`` of total size
    ``segments[-1][2]``.
    """

    base: AbstractForwardModel
    instruments: tuple[Instrument, ...]
    members: tuple[AbstractForwardModel, ...]
    segments: tuple[tuple[str, int, int, tuple[int, ...]], ...] = eqx.field(static=True)
    kind: str = eqx.field(static=True)

    def __init__(
        self, base: AbstractForwardModel, instruments: Sequence[Instrument], met: MetField
    ):
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
        return tuple(i.name for i in self.instruments)

    @property
    def param_spec(self) -> ParamSpec:
        from plumax_core import OBSERVATION_KINDS

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


def fuse_observations(
    model: FusedForwardModel, observations: Mapping[str, Observations]
) -> Observations:
    """Stack per-instrument data in the model's order into one flat :class:`Observations`.

    Each instrument's ``sigma`` (or its :class:`Instrument` ``sigma`` when the data carry
    none) becomes the per-element ``sigma``; masks are carried over; coordinate
    ``"obs"`` holds the instrument index of each element.
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
        s = obs.sigma_full() if (obs.sigma is not None or obs.noise is not None) else inst.sigma
        sigma.append(np.broadcast_to(np.asarray(s, dtype=float), shape).ravel())
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

    ``params`` holds the base parameters and every ``bias_<name>``. ``key=None``
    gives noise-free data (still carrying ``sigma``).
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
