"""Observations: what every forward model returns and every inference consumes."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, Bool, Float

from ._validation import as_float_array, check_finite, is_concrete, positive_error_if

_KINDS: dict[str, tuple[str, str]] = {
    "concentration_ppm": ("ppm", "methane mole-fraction enhancement"),
    "concentration_kg_m3": ("kg m-3", "methane mass-concentration enhancement"),
    "column_ppm_m": ("ppm m", "vertically integrated methane enhancement"),
    "column_mol_m2": ("mol m-2", "vertically integrated methane enhancement"),
    "column_kg_m2": ("kg m-2", "vertically integrated methane enhancement"),
    "xch4_ppb": ("ppb", "column-averaged dry-air methane mole fraction (XCH4, or its enhancement)"),
    "radiance": ("uW cm-2 sr-1 nm-1", "at-sensor spectral radiance"),
    "reflectance": ("1", "apparent surface reflectance"),
    "generic": ("1", "dimensionless model output"),
}

#: Known observation kinds: ``kind -> (units, long_name)``. Extend with
#: :func:`register_observation_kind`.
OBSERVATION_KINDS: Mapping[str, tuple[str, str]] = MappingProxyType(_KINDS)


def register_observation_kind(kind: str, units: str, long_name: str) -> None:
    """Register a new observation ``kind`` with its units (UDUNITS string) and long name.

    Re-registering an existing kind with different units raises ``ValueError``.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError("`kind` must be a non-empty string")
    if kind in _KINDS and _KINDS[kind][0] != units:
        raise ValueError(f"kind {kind!r} already registered with units {_KINDS[kind][0]!r}")
    _KINDS[kind] = (units, long_name)


def _default_dims(ndim: int) -> tuple[str, ...]:
    return {0: (), 1: ("obs",), 2: ("y", "x"), 3: ("y", "x", "band")}.get(
        ndim, tuple(f"dim_{i}" for i in range(ndim))
    )


def _checked_sigma(sigma: Array, shape: tuple[int, ...], mask: Array | None) -> Array:
    """``sigma``, checked finite and > 0 where valid (now, or at run time if traced)."""
    try:
        if jnp.broadcast_shapes(sigma.shape, shape) != shape:
            return sigma  # Observations.__check_init__ reports the shape
    except ValueError:
        return sigma
    if mask is not None and mask.shape != shape:
        return sigma  # Observations.__check_init__ reports the shape
    return positive_error_if("sigma", sigma, where=mask)


class Observations(eqx.Module):
    """Observed (or simulated) values with their errors, validity mask and coordinates.

    Attributes:
        values: the data, any shape ``S``; units given by ``kind``.
        sigma: per-element 1-sigma error, broadcastable to ``S`` (same units), or None.
        noise: full error covariance over ``values.ravel()`` as a lineax operator of
            size ``prod(S)``, or None. At most one of ``sigma`` / ``noise``.
        mask: boolean, shape ``S``; True where the value is valid. None = all valid.
        coords: ``{dim: (n,) array}`` for some of ``dims``.
        dims: one name per axis of ``values``.
        kind: what the values are (see :data:`OBSERVATION_KINDS`), e.g.
            ``"concentration_ppm"``, ``"column_ppm_m"``, ``"xch4_ppb"``, ``"radiance"``.
        instrument: free-text instrument / geometry label.

    NaN is allowed in ``values`` only where ``mask`` is False. ``sigma`` must be finite
    and > 0 wherever the observations are valid: checked now when concrete
    (``ValueError``), at run time when traced (an error under ``jax.jit``, never the
    likelihood of ``|sigma|``).
    """

    values: Float[Array, "..."]
    sigma: Float[Array, "..."] | None
    noise: lx.AbstractLinearOperator | None
    mask: Bool[Array, "..."] | None
    coords: dict[str, Float[Array, " n"]]
    dims: tuple[str, ...] = eqx.field(static=True)
    kind: str = eqx.field(static=True)
    instrument: str = eqx.field(static=True)

    def __init__(
        self,
        values,
        *,
        kind: str,
        sigma=None,
        noise: lx.AbstractLinearOperator | None = None,
        mask=None,
        coords: Mapping[str, Any] | None = None,
        dims: tuple[str, ...] | None = None,
        instrument: str = "",
    ):
        self.values = as_float_array("values", values)
        self.mask = None if mask is None else jnp.asarray(mask, dtype=bool)
        self.sigma = (
            None
            if sigma is None
            else _checked_sigma(as_float_array("sigma", sigma), self.values.shape, self.mask)
        )
        self.noise = noise
        self.coords = {k: as_float_array(f"coords[{k!r}]", v) for k, v in (coords or {}).items()}
        self.dims = tuple(dims) if dims is not None else _default_dims(self.values.ndim)
        self.kind = kind
        self.instrument = str(instrument)

    def __check_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(
                f"unknown observation `kind` {self.kind!r}; known: {sorted(_KINDS)} "
                "(add one with register_observation_kind)"
            )
        shape = self.values.shape
        if len(self.dims) != len(shape):
            raise ValueError(f"`dims` {self.dims} does not match values of shape {shape}")
        for name, c in self.coords.items():
            if name not in self.dims:
                raise ValueError(f"`coords` has {name!r}, which is not one of `dims` {self.dims}")
            n = shape[self.dims.index(name)]
            if c.shape != (n,):
                raise ValueError(f"`coords[{name!r}]` must have shape ({n},), got {c.shape}")
        if self.mask is not None and self.mask.shape != shape:
            raise ValueError(f"`mask` must have the shape of values {shape}, got {self.mask.shape}")
        if self.sigma is not None and self.noise is not None:
            raise ValueError("give either `sigma` or `noise`, not both")
        if self.sigma is not None:
            try:
                b = jnp.broadcast_shapes(self.sigma.shape, shape)
            except ValueError:
                b = None
            if b != shape:
                raise ValueError(
                    f"`sigma` of shape {self.sigma.shape} does not broadcast to values {shape}"
                )
        if self.noise is not None:
            if not isinstance(self.noise, lx.AbstractLinearOperator):
                raise TypeError("`noise` must be a lineax.AbstractLinearOperator")
            n = int(np.prod(shape, dtype=int))
            if self.noise.in_size() != n or self.noise.out_size() != n:
                raise ValueError(
                    f"`noise` must be a {n}x{n} operator over values.ravel(), got "
                    f"{self.noise.out_size()}x{self.noise.in_size()}"
                )
        if is_concrete(self.values):
            vals = np.asarray(self.values)
            bad = ~np.isfinite(vals)
            if self.mask is not None and is_concrete(self.mask):
                bad &= np.asarray(self.mask)
            if np.any(bad):
                raise ValueError(
                    f"`values` has {int(bad.sum())} non-finite value(s) where `mask` is not "
                    "False; mask them (mask=np.isfinite(values)) or remove them"
                )
        for name, c in self.coords.items():
            check_finite(f"coords[{name!r}]", c)

    # -- derived -----------------------------------------------------------------

    @property
    def units(self) -> str:
        return _KINDS[self.kind][0]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    @property
    def size(self) -> int:
        return int(np.prod(self.values.shape, dtype=int))

    def valid(self) -> Bool[Array, "..."]:
        """The validity mask (all True when ``mask`` is None)."""
        if self.mask is None:
            return jnp.ones(self.values.shape, bool)
        return self.mask

    def filled(self, fill: float = 0.0) -> Float[Array, "..."]:
        """Values with invalid elements replaced by ``fill`` (safe inside likelihoods)."""
        if self.mask is None:
            return self.values
        return jnp.where(self.mask, self.values, fill)

    def sigma_full(self) -> Float[Array, "..."]:
        """Per-element standard deviation, shape of values (from ``sigma`` or ``noise``)."""
        if self.sigma is not None:
            return jnp.broadcast_to(self.sigma, self.values.shape)
        if self.noise is not None:
            return jnp.sqrt(lx.diagonal(self.noise)).reshape(self.values.shape)
        raise ValueError(f"these {self.kind!r} observations carry no `sigma` or `noise`")

    def error_covariance(self) -> lx.AbstractLinearOperator:
        """Error covariance over ``values.ravel()`` as a lineax operator."""
        if self.noise is not None:
            return self.noise
        s = self.sigma_full().ravel()
        return lx.DiagonalLinearOperator(s**2)

    def replace(self, **changes: Any) -> Observations:
        """A copy with some fields replaced (values, sigma, noise, mask, coords, ...)."""
        fields = dict(
            values=self.values,
            sigma=self.sigma,
            noise=self.noise,
            mask=self.mask,
            coords=self.coords,
            dims=self.dims,
            kind=self.kind,
            instrument=self.instrument,
        )
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"Observations has no field(s) {sorted(unknown)}")
        fields.update(changes)
        values = fields.pop("values")
        return Observations(values, **fields)

    # -- xarray ------------------------------------------------------------------

    def to_xarray(self):
        """An ``xarray.Dataset`` (``values``, ``sigma``, ``mask``) with CF attributes.

        A full ``noise`` operator is stored as its diagonal (``sigma``) and flagged in the
        attributes; round trips are exact for diagonal errors.
        """
        import xarray as xr

        units, long_name = _KINDS[self.kind]
        dv = {
            "values": xr.Variable(
                self.dims, np.asarray(self.values), attrs={"units": units, "long_name": long_name}
            )
        }
        attrs = {"kind": self.kind, "instrument": self.instrument, "Conventions": "CF-1.8"}
        if self.sigma is not None:
            s = np.asarray(self.sigma)
            sdims = self.dims[len(self.dims) - s.ndim :] if s.ndim else ()
            if s.ndim and s.shape != tuple(self.values.shape[len(self.dims) - s.ndim :]):
                s = np.broadcast_to(s, self.values.shape)
                sdims = self.dims
            dv["sigma"] = xr.Variable(
                sdims, s, attrs={"units": units, "long_name": f"1-sigma error of {long_name}"}
            )
        elif self.noise is not None:
            dv["sigma"] = xr.Variable(
                self.dims,
                np.asarray(self.sigma_full()),
                attrs={"units": units, "long_name": "1-sigma error (diagonal of covariance)"},
            )
            attrs["noise_correlated"] = 1
        if self.mask is not None:
            dv["mask"] = xr.Variable(
                self.dims,
                np.asarray(self.mask).astype(np.int8),
                attrs={
                    "long_name": "validity mask",
                    "flag_values": [0, 1],
                    "flag_meanings": "invalid valid",
                },
            )
        coords = {k: (k, np.asarray(v)) for k, v in self.coords.items()}
        return xr.Dataset(dv, coords=coords, attrs=attrs)

    @classmethod
    def from_xarray(cls, ds) -> Observations:
        """Inverse of :meth:`to_xarray`; checks the ``kind`` and units attributes."""
        import xarray as xr

        if not isinstance(ds, xr.Dataset):
            raise TypeError(f"`ds` must be an xarray.Dataset, got {type(ds).__name__}")
        if "values" not in ds:
            raise ValueError("`ds` has no variable 'values'")
        kind = ds.attrs.get("kind")
        if kind is None:
            raise ValueError("`ds` has no 'kind' attribute (e.g. 'column_ppm_m')")
        if kind not in _KINDS:
            raise ValueError(f"`ds` has unknown kind {kind!r}; known: {sorted(_KINDS)}")
        units = ds["values"].attrs.get("units")
        if units is not None and units != _KINDS[kind][0]:
            raise ValueError(
                f"`ds['values']` has units {units!r} but kind {kind!r} needs {_KINDS[kind][0]!r}"
            )
        dims = tuple(ds["values"].dims)
        sigma = None
        if "sigma" in ds:
            sigma = ds["sigma"].values
        mask = ds["mask"].values.astype(bool) if "mask" in ds else None
        coords = {k: ds[k].values for k in ds.coords if k in dims}
        return cls(
            ds["values"].values,
            kind=kind,
            sigma=sigma,
            mask=mask,
            coords=coords,
            dims=dims,
            instrument=str(ds.attrs.get("instrument", "")),
        )
