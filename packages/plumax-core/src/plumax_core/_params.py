"""Parameter specifications: names, shapes, units, bounds and transforms.

A :class:`ParamSpec` is what lets priors, emulators, flows and samplers treat the
parameters of *any* forward model as one flat vector. Parameters are passed to a
forward model as a ``dict[str, Array]``; ``ParamSpec.flatten`` / ``unflatten`` convert
to and from a flat ``(..., D)`` vector (leading batch axes are preserved), and
``to_unconstrained`` / ``from_unconstrained`` map bounded or positive parameters to
:math:`\\mathbb{R}^D` with the log-absolute-Jacobian of the map available for change of
variables (``log p_x(x) = log p_z(z) - log|dx/dz|``).

Transforms (per element, ``z`` unconstrained):

* no bounds: ``x = z``;
* ``log=True`` (positive quantity, e.g. an emission rate): ``x = exp(z)``; with finite
  bounds ``0 < lower < upper < inf`` the log is bounded too:
  ``x = exp(log l + (log u - log l) * sigmoid(z))``;
* finite ``lower`` and ``upper``: ``x = l + (u - l) * sigmoid(z)``;
* only ``lower``: ``x = l + exp(z)``; only ``upper``: ``x = u - exp(z)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ._validation import is_concrete


class Param(eqx.Module):
    """One named parameter of a forward model.

    Attributes:
        name: identifier used as the key of the params dict.
        shape: shape of one value (``()`` for a scalar).
        units: physical units (e.g. ``"kg/s"``, ``"m"``).
        lower, upper: support bounds (``-inf``/``inf`` when unbounded).
        log: learn/sample the parameter in log space (requires ``lower >= 0``).
        description: free text for docs and reports.
    """

    name: str = eqx.field(static=True)
    shape: tuple[int, ...] = eqx.field(static=True, default=())
    units: str = eqx.field(static=True, default="")
    lower: float = eqx.field(static=True, default=-math.inf)
    upper: float = eqx.field(static=True, default=math.inf)
    log: bool = eqx.field(static=True, default=False)
    description: str = eqx.field(static=True, default="")

    def __check_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"`name` must be a Python identifier, got {self.name!r}")
        if not isinstance(self.shape, tuple) or not all(
            isinstance(s, int) and s > 0 for s in self.shape
        ):
            raise ValueError(f"`shape` of {self.name!r} must be a tuple of positive ints")
        if math.isnan(self.lower) or math.isnan(self.upper):
            raise ValueError(f"bounds of {self.name!r} must not be NaN")
        if not self.lower < self.upper:
            raise ValueError(
                f"`lower` must be < `upper` for {self.name!r}; got {self.lower} >= {self.upper}"
            )
        if self.log and self.lower < 0:
            raise ValueError(
                f"`log=True` needs `lower >= 0` for {self.name!r}; got lower={self.lower}"
            )

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=int))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "units": self.units,
            "lower": _float_to_json(self.lower),
            "upper": _float_to_json(self.upper),
            "log": self.log,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Param:
        return cls(
            name=d["name"],
            shape=tuple(d.get("shape", ())),
            units=d.get("units", ""),
            lower=_float_from_json(d.get("lower", "-inf")),
            upper=_float_from_json(d.get("upper", "inf")),
            log=bool(d.get("log", False)),
            description=d.get("description", ""),
        )

    # -- elementwise bijection -------------------------------------------------

    def _kind(self) -> str:
        lo, hi = math.isfinite(self.lower), math.isfinite(self.upper)
        if self.log:
            return "log-bounded" if (hi and self.lower > 0) else "log"
        if lo and hi:
            return "bounded"
        if lo:
            return "lower"
        if hi:
            return "upper"
        return "identity"

    def forward_transform(self, z: Array) -> tuple[Array, Array]:
        """Map unconstrained ``z`` to ``x``; also return ``log|dx/dz|`` elementwise."""
        kind, lo, hi = self._kind(), self.lower, self.upper
        if kind == "identity":
            return z, jnp.zeros_like(z)
        if kind == "log":
            if self.lower > 0:
                raise ValueError(
                    f"{self.name!r}: `log=True` with lower={lo} > 0 needs a finite `upper`"
                )
            x = jnp.exp(z)
            return x, z
        if kind == "log-bounded":
            a, b = math.log(lo), math.log(hi)
            s = jax.nn.sigmoid(z)
            logx = a + (b - a) * s
            x = jnp.exp(logx)
            ladj = logx + math.log(b - a) + jax.nn.log_sigmoid(z) + jax.nn.log_sigmoid(-z)
            return x, ladj
        if kind == "bounded":
            s = jax.nn.sigmoid(z)
            x = lo + (hi - lo) * s
            ladj = math.log(hi - lo) + jax.nn.log_sigmoid(z) + jax.nn.log_sigmoid(-z)
            return x, ladj
        if kind == "lower":
            return lo + jnp.exp(z), z
        return hi - jnp.exp(z), z  # "upper"

    def inverse_transform(self, x: Array) -> Array:
        """Map ``x`` in the support to unconstrained ``z``."""
        kind, lo, hi = self._kind(), self.lower, self.upper
        if kind == "identity":
            return x
        if kind == "log":
            return jnp.log(x)
        if kind == "log-bounded":
            a, b = math.log(lo), math.log(hi)
            s = (jnp.log(x) - a) / (b - a)
            return jnp.log(s) - jnp.log1p(-s)
        if kind == "bounded":
            s = (x - lo) / (hi - lo)
            return jnp.log(s) - jnp.log1p(-s)
        if kind == "lower":
            return jnp.log(x - lo)
        return jnp.log(hi - x)


def _float_to_json(x: float) -> float | str:
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def _float_from_json(x: float | str) -> float:
    return float(x)


class ParamSpec(eqx.Module):
    """The ordered parameters of a forward model.

    The flat layout concatenates each parameter raveled in C order, in the order
    given. All methods accept leading batch axes.

    Example:
        >>> spec = ParamSpec((Param("Q", units="kg/s", lower=0.0, log=True),
        ...                   Param("x0", units="m"), Param("y0", units="m")))
        >>> spec.flatten({"Q": 0.1, "x0": 0.0, "y0": 5.0}).shape
        (3,)
    """

    params: tuple[Param, ...] = eqx.field(static=True)

    def __init__(self, params):
        params = tuple(params)
        for p in params:
            if not isinstance(p, Param):
                raise TypeError(f"`params` must contain Param objects, got {type(p).__name__}")
        names = [p.name for p in params]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"`params` has duplicate names: {sorted(dup)}")
        if not params:
            raise ValueError("`params` must contain at least one Param")
        self.params = params

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def size(self) -> int:
        """Length D of the flat vector."""
        return sum(p.size for p in self.params)

    @property
    def flat_names(self) -> tuple[str, ...]:
        """One label per flat element, e.g. ``("Q", "x0", "w[0]", "w[1]")``."""
        out: list[str] = []
        for p in self.params:
            if p.shape == ():
                out.append(p.name)
            else:
                out.extend(f"{p.name}[{i}]" for i in range(p.size))
        return tuple(out)

    def __getitem__(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"no parameter named {name!r}; known: {list(self.names)}")

    def to_dict(self) -> dict[str, Any]:
        return {"params": [p.to_dict() for p in self.params]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParamSpec:
        return cls(tuple(Param.from_dict(p) for p in d["params"]))

    # -- checks ------------------------------------------------------------------

    def validate(self, params: Mapping[str, Any]) -> None:
        """Raise a clear error for missing/unknown names or wrong trailing shapes."""
        if not isinstance(params, Mapping):
            raise TypeError(f"`params` must be a dict of arrays, got {type(params).__name__}")
        missing = [n for n in self.names if n not in params]
        extra = [n for n in params if n not in self.names]
        if missing or extra:
            raise ValueError(
                f"`params` keys do not match the spec: missing {missing}, unexpected {extra}"
            )
        for p in self.params:
            shape = jnp.shape(params[p.name])
            if p.shape and tuple(shape[len(shape) - len(p.shape) :]) != p.shape:
                raise ValueError(f"`params[{p.name!r}]` must end in shape {p.shape}, got {shape}")

    def batch_shape(self, params: Mapping[str, Any]) -> tuple[int, ...]:
        p0 = self.params[0]
        shape = jnp.shape(params[p0.name])
        return tuple(shape[: len(shape) - len(p0.shape)])

    def in_support(self, params: Mapping[str, Any]) -> Bool[Array, "*batch"]:
        """Elementwise check that every parameter lies inside its (closed) bounds."""
        ok = None
        for p in self.params:
            x = jnp.asarray(params[p.name])
            inside = (x >= p.lower) & (x <= p.upper)
            if p.log:
                inside = inside & (x > 0)
            axes = tuple(range(x.ndim - len(p.shape), x.ndim))
            inside = jnp.all(inside, axis=axes) if axes else inside
            ok = inside if ok is None else ok & inside
        return ok

    def check_in_support(self, params: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the first concrete parameter outside its bounds."""
        for p in self.params:
            x = params[p.name]
            if not is_concrete(x):
                continue
            arr = np.asarray(x)
            if np.any(np.isnan(arr)):
                raise ValueError(f"`params[{p.name!r}]` contains NaN")
            bad = (arr < p.lower) | (arr > p.upper) | ((arr <= 0) if p.log else False)
            if np.any(bad):
                raise ValueError(
                    f"`params[{p.name!r}]` = {arr[bad].ravel()[0]!r} is outside its support "
                    f"[{p.lower}, {p.upper}]" + (" (must be > 0)" if p.log else "")
                )

    # -- flat layout -------------------------------------------------------------

    def flatten(self, params: Mapping[str, Any]) -> Float[Array, "*batch D"]:
        """Concatenate the parameters into a flat ``(..., D)`` vector."""
        self.validate(params)
        batch = self.batch_shape(params)
        parts = []
        for p in self.params:
            x = jnp.asarray(params[p.name])
            x = jnp.broadcast_to(x, batch + p.shape)
            parts.append(x.reshape(batch + (p.size,)))
        dtype = jnp.result_type(*parts)
        if not jnp.issubdtype(dtype, jnp.floating):
            dtype = jnp.result_type(float)
        return jnp.concatenate([q.astype(dtype) for q in parts], axis=-1)

    def unflatten(self, flat: Float[Array, "*batch D"]) -> dict[str, Array]:
        """Inverse of :meth:`flatten`."""
        flat = jnp.asarray(flat)
        if flat.shape[-1:] != (self.size,):
            raise ValueError(
                f"`flat` must have trailing size {self.size} (the spec's D), got {flat.shape}"
            )
        batch = flat.shape[:-1]
        out, i = {}, 0
        for p in self.params:
            out[p.name] = flat[..., i : i + p.size].reshape(batch + p.shape)
            i += p.size
        return out

    # -- unconstrained space -----------------------------------------------------

    def from_unconstrained(self, z: Float[Array, "*batch D"]) -> dict[str, Array]:
        """Map an unconstrained flat vector to a params dict inside the support."""
        return self.unflatten(self.forward_transform(z)[0])

    def to_unconstrained(self, params: Mapping[str, Any]) -> Float[Array, "*batch D"]:
        """Map a params dict to the unconstrained flat vector."""
        x = self.flatten(params)
        parts, i = [], 0
        for p in self.params:
            parts.append(p.inverse_transform(x[..., i : i + p.size]))
            i += p.size
        return jnp.concatenate(parts, axis=-1)

    def forward_transform(
        self, z: Float[Array, "*batch D"]
    ) -> tuple[Float[Array, "*batch D"], Float[Array, "*batch"]]:
        """Flat unconstrained ``z`` -> flat constrained ``x`` and ``sum log|dx/dz|``."""
        z = jnp.asarray(z)
        if z.shape[-1:] != (self.size,):
            raise ValueError(f"`z` must have trailing size {self.size}, got {z.shape}")
        xs, ladj, i = [], 0.0, 0
        for p in self.params:
            x, l_ = p.forward_transform(z[..., i : i + p.size])
            xs.append(x)
            ladj = ladj + jnp.sum(l_, axis=-1)
            i += p.size
        return jnp.concatenate(xs, axis=-1), ladj

    def log_abs_det_jacobian(self, z: Float[Array, "*batch D"]) -> Float[Array, "*batch"]:
        """``sum log|dx/dz|`` of the unconstrained -> constrained map at ``z``."""
        return self.forward_transform(z)[1]
