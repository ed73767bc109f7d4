"""Cross-section look-up tables over (pressure, temperature, wavenumber).

Generated in batches of (p, T) pairs with a tqdm progress bar, written atomically to
NetCDF with CF attributes, and interpolated inside jit: bilinear in (ln p, T). Queries
outside the table raise (``ValueError`` eagerly, ``plumax_core.validation.error_if``
under jit) — the table never extrapolates.
"""

from __future__ import annotations

import os
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from plumax_core.validation import error_if

from ._hitran import LineList
from ._spectroscopy import cross_section


def _is_tracer(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _check_range(name, x, lo, hi):
    if _is_tracer(x) or _is_tracer(lo) or _is_tracer(hi):
        x = jnp.asarray(x)
        return error_if(x, (x < lo) | (x > hi), f"`{name}` outside the LUT range")
    v = np.asarray(x)
    if np.any(~np.isfinite(v)) or np.any(v < lo) or np.any(v > hi):
        raise ValueError(
            f"`{name}`={v} outside the LUT range [{float(lo)}, {float(hi)}] (no extrapolation)"
        )
    return x


class CrossSectionLUT(eqx.Module):
    """A table ``σ(p_i, T_j, ν_k)`` in cm²/molecule.

    Attributes:
        pressure: ``(n_p,)`` Pa, strictly ascending, > 0.
        temperature: ``(n_T,)`` K, strictly ascending.
        wavenumber: ``(n_nu,)`` cm⁻¹ ascending.
        xsec: ``(n_p, n_T, n_nu)`` cross-sections.
        species: gas name.
    """

    pressure: Float[Array, " n_p"]
    temperature: Float[Array, " n_T"]
    wavenumber: Float[Array, " n_nu"]
    xsec: Float[Array, "n_p n_T n_nu"]
    species: str = eqx.field(static=True)

    def __check_init__(self):
        for name in ("pressure", "temperature", "wavenumber"):
            v = np.asarray(getattr(self, name))
            if v.ndim != 1 or v.size < 2 or np.any(np.diff(v) <= 0):
                raise ValueError(f"`{name}` must be 1-D, >= 2 points, strictly ascending")
        if np.asarray(self.pressure)[0] <= 0:
            raise ValueError("`pressure` must be > 0")
        shape = (self.pressure.size, self.temperature.size, self.wavenumber.size)
        if self.xsec.shape != shape:
            raise ValueError(f"`xsec` must have shape {shape}, got {self.xsec.shape}")

    def __call__(self, pressure, temperature) -> Float[Array, " n_nu"]:
        """Bilinear interpolation in (ln p, T); raises outside the table."""
        p_lo, p_hi = self.pressure[0], self.pressure[-1]
        t_lo, t_hi = self.temperature[0], self.temperature[-1]
        p = _check_range("pressure", pressure, p_lo, p_hi)
        T = _check_range("temperature", temperature, t_lo, t_hi)
        lp = jnp.log(self.pressure)
        x = jnp.log(jnp.asarray(p, lp.dtype))
        i = jnp.clip(jnp.searchsorted(lp, x) - 1, 0, lp.size - 2)
        fx = (x - lp[i]) / (lp[i + 1] - lp[i])
        tt = self.temperature
        T = jnp.asarray(T, tt.dtype)
        j = jnp.clip(jnp.searchsorted(tt, T) - 1, 0, tt.size - 2)
        fy = (T - tt[j]) / (tt[j + 1] - tt[j])
        a = self.xsec
        return (
            (1 - fx) * (1 - fy) * a[i, j]
            + fx * (1 - fy) * a[i + 1, j]
            + (1 - fx) * fy * a[i, j + 1]
            + fx * fy * a[i + 1, j + 1]
        )

    @classmethod
    def build(
        cls,
        lines: LineList,
        pressure,
        temperature,
        wavenumber,
        *,
        species: str = "CH4",
        batch_size: int = 8,
        progress: bool = True,
        **xsec_kwargs,
    ) -> CrossSectionLUT:
        """Compute the table with :func:`plumax_rtm.cross_section`, ``batch_size`` (p, T)
        pairs per compiled call (vmapped), with a tqdm progress bar."""
        from tqdm.auto import tqdm

        pressure = np.asarray(pressure, float)
        temperature = np.asarray(temperature, float)
        grid = jnp.asarray(wavenumber)
        pp, tt = np.meshgrid(pressure, temperature, indexing="ij")
        pairs = np.stack([pp.ravel(), tt.ravel()], axis=1)
        n = len(pairs)
        batch_size = max(1, min(int(batch_size), n))
        fn = jax.jit(jax.vmap(lambda p, t: cross_section(lines, grid, p, t, **xsec_kwargs)))
        out = []
        for s in tqdm(range(0, n, batch_size), disable=not progress, desc=f"LUT {species}"):
            b = pairs[s : s + batch_size]
            pad = batch_size - len(b)
            bb = np.concatenate([b, np.repeat(b[-1:], pad, axis=0)]) if pad else b
            out.append(np.asarray(fn(jnp.asarray(bb[:, 0]), jnp.asarray(bb[:, 1])))[: len(b)])
        xs = np.concatenate(out).reshape(pressure.size, temperature.size, -1)
        return cls(jnp.asarray(pressure), jnp.asarray(temperature), grid, jnp.asarray(xs), species)

    def to_netcdf(self, path: str | os.PathLike) -> pathlib.Path:
        """Write atomically (temp file + rename) with CF attributes."""
        import xarray as xr

        path = pathlib.Path(path)
        ds = xr.Dataset(
            {
                "cross_section": (
                    ("pressure", "temperature", "wavenumber"),
                    np.asarray(self.xsec),
                    {
                        "units": "cm2 molecule-1",
                        "long_name": f"{self.species} absorption cross-section",
                    },
                )
            },
            coords={
                "pressure": (
                    "pressure",
                    np.asarray(self.pressure),
                    {"units": "Pa", "long_name": "air pressure", "standard_name": "air_pressure"},
                ),
                "temperature": (
                    "temperature",
                    np.asarray(self.temperature),
                    {
                        "units": "K",
                        "long_name": "air temperature",
                        "standard_name": "air_temperature",
                    },
                ),
                "wavenumber": (
                    "wavenumber",
                    np.asarray(self.wavenumber),
                    {"units": "cm-1", "long_name": "vacuum wavenumber"},
                ),
            },
            attrs={
                "Conventions": "CF-1.8",
                "species": self.species,
                "title": "plumax-rtm cross-section LUT",
                "interpolation": "bilinear in (ln p, T); no extrapolation",
            },
        )
        tmp = path.with_name(path.name + ".tmp")
        try:
            ds.to_netcdf(tmp)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    @classmethod
    def from_netcdf(cls, path: str | os.PathLike) -> CrossSectionLUT:
        import xarray as xr

        with xr.open_dataset(path) as ds:
            ds = ds.load()
        if "cross_section" not in ds:
            raise ValueError(f"`path` {path} has no 'cross_section' variable")
        return cls(
            jnp.asarray(ds["pressure"].values),
            jnp.asarray(ds["temperature"].values),
            jnp.asarray(ds["wavenumber"].values),
            jnp.asarray(ds["cross_section"].values),
            str(ds.attrs.get("species", "CH4")),
        )
