"""Instruments: spectral response functions as lineax operators, band sets and noise.

Band sets (NOMINAL — regular grids from published sampling/FWHM, not per-unit
calibration files):

* EMIT: 285 bands, 381-2493 nm, ~7.4 nm sampling, 8.5 nm FWHM (Green et al. 2020, IEEE
  Aerospace Conf., doi:10.1109/AERO47225.2020.9172731; Thompson et al. 2024).
* AVIRIS-NG: 425 bands, 380-2510 nm, 5 nm sampling, 5.5 nm FWHM (Hamlin et al. 2011,
  IEEE Aerospace Conf.; Thorpe et al. 2016).
* PRISMA SWIR: 173 bands, 920-2505 nm, ≤ 12 nm sampling (here ~9.2 nm), ~10 nm FWHM (Cogliati et
  al. 2021, RSE 262, 112499; Loizzo et al. 2018). Checked: the eoPortal PRISMA entry
  (directory.eoportal.org, "PRISMA (Hyperspectral)") gives a 173-channel NIR/SWIR
  band over 920-2505 nm (and 66 VNIR channels, 239 in all). Other public sources
  differ by one or two (a vendor specification table lists 171 SWIR bands; an L1
  product's metadata holds 172 valid SWIR slots plus one zero placeholder), so use the
  product's own ``List_Cw_Swir``/``List_Fwhm_Swir`` for real data.
* EnMAP SWIR: 130 bands, 900-2445 nm (~12 nm sampling), 10 nm FWHM (Guanter et al. 2015, Remote
  Sens. 7, 8830). NOT VERIFIED: public sources checked give the SWIR range (900-2450 nm,
  DLR), ~10 nm SWIR sampling/resolution (Guanter et al. 2015 abstract) and 224 bands in
  all over VNIR+SWIR (EnMAP-Box L2A example data), but no SWIR band count was found;
  the GFZ requirements page notes that the number of bands varies with the VNIR/SWIR
  overlap at 900-1000 nm. 130 is a nominal assumption; use the product's metadata
  band centres/FWHM for real data.
* Sentinel-2A MSI B11/B12: centres 1613.7 / 2202.4 nm, bandwidths 90.8 / 175.6 nm (ESA
  Sentinel-2 Spectral Response Functions, S2-SRF COPE-GSEG-EOPG-TN-15-0007), as
  top-hat tabulated responses.
* Landsat 8/9 OLI SWIR1/SWIR2: 1566.5-1651.2 nm and 2107.4-2294.1 nm (Barsi et al.
  2014, Remote Sens. 6, 10232), top-hat.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, Float

_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))

#: name -> (first centre nm, last centre nm, number of bands, FWHM nm) — nominal.
_REGULAR = {
    "EMIT": (381.0, 2493.0, 285, 8.5),
    "AVIRIS-NG": (380.0, 2510.0, 425, 5.5),
    "PRISMA": (920.0, 2505.0, 173, 10.0),
    "EnMAP": (900.0, 2445.0, 130, 10.0),
}
#: name -> ((centre nm, width nm), ...) — top-hat band passes.
_BROADBAND = {
    "Sentinel-2 MSI": ((1613.7, 90.8), (2202.4, 175.6)),
    "Landsat 8/9 OLI": ((1608.85, 84.7), (2200.75, 186.7)),
}
INSTRUMENTS = tuple(_REGULAR) + tuple(_BROADBAND)


def instrument_bands(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Nominal band centres and FWHM (nm) of a named instrument (:data:`INSTRUMENTS`)."""
    if name in _REGULAR:
        a, b, n, f = _REGULAR[name]
        c = np.linspace(a, b, n)
        return c, np.full(n, f)
    if name in _BROADBAND:
        arr = np.asarray(_BROADBAND[name])
        return arr[:, 0].copy(), arr[:, 1].copy()
    raise ValueError(f"`name` {name!r} unknown; choose from {INSTRUMENTS}")


class SpectralResponse(eqx.Module):
    """A linear map from a fine spectrum ``(n,)`` to band values ``(m,)``.

    ``y_j = Σ_i W_ji x_i`` with each row of ``W`` a response function sampled on the fine
    grid and normalised to unit sum (trapezoid weights), so a flat spectrum is preserved.

    Attributes:
        matrix: ``(m, n)`` weights.
        centers: ``(m,)`` band centres, nm.
        fine_wavelength: ``(n,)`` nm.
    """

    matrix: Float[Array, "m n"]
    centers: Float[Array, " m"]
    fine_wavelength: Float[Array, " n"]

    def __check_init__(self):
        m, n = self.matrix.shape
        if self.centers.shape != (m,) or self.fine_wavelength.shape != (n,):
            raise ValueError("SpectralResponse shapes inconsistent")

    @classmethod
    def gaussian(cls, fine_wavelength, centers, fwhm) -> "SpectralResponse":
        """Gaussian SRFs with the given centres and FWHM (nm)."""
        wl = np.asarray(fine_wavelength, float)
        c = np.asarray(centers, float)
        f = np.broadcast_to(np.asarray(fwhm, float), c.shape)
        _check_grid(wl, c, f)
        s = f * _FWHM_TO_SIGMA
        w = np.exp(-0.5 * ((wl[None, :] - c[:, None]) / s[:, None]) ** 2) * _trapz_w(wl)
        return cls._make(w, c, wl)

    @classmethod
    def tabulated(cls, fine_wavelength, centers, response_wavelength, responses):
        """Tabulated SRFs: ``responses[j]`` sampled at ``response_wavelength`` (nm),
        linearly interpolated to the fine grid (zero outside)."""
        wl = np.asarray(fine_wavelength, float)
        rw = np.asarray(response_wavelength, float)
        r = np.atleast_2d(np.asarray(responses, float))
        if np.any(np.diff(rw) <= 0):
            raise ValueError("`response_wavelength` must be strictly ascending")
        w = np.stack([np.interp(wl, rw, row, left=0.0, right=0.0) for row in r]) * _trapz_w(wl)
        return cls._make(w, np.asarray(centers, float), wl)

    @classmethod
    def top_hat(cls, fine_wavelength, centers, widths):
        """Rectangular band passes (a tabulated response of 1 inside ``centre ± width/2``)."""
        wl = np.asarray(fine_wavelength, float)
        c, wd = np.asarray(centers, float), np.asarray(widths, float)
        _check_grid(wl, c, wd)
        w = (np.abs(wl[None, :] - c[:, None]) <= wd[:, None] / 2) * _trapz_w(wl)
        return cls._make(w.astype(float), c, wl)

    @classmethod
    def for_instrument(cls, name: str, fine_wavelength, *, wl_min=None, wl_max=None):
        """The named instrument's nominal SRFs on a fine grid, keeping the bands whose
        centre is in ``[wl_min, wl_max]`` (default: those inside the fine grid, 2 FWHM in)."""
        c, f = instrument_bands(name)
        wl = np.asarray(fine_wavelength, float)
        lo = wl[0] + (f if name in _REGULAR else f / 2) if wl_min is None else wl_min
        hi = wl[-1] - (f if name in _REGULAR else f / 2) if wl_max is None else wl_max
        keep = (c >= lo) & (c <= hi)
        if not keep.any():
            raise ValueError(f"no {name} band inside the fine grid {wl[0]:.1f}-{wl[-1]:.1f} nm")
        if name in _BROADBAND:
            return cls.top_hat(wl, c[keep], f[keep])
        return cls.gaussian(wl, c[keep], f[keep])

    @classmethod
    def _make(cls, w, c, wl):
        tot = w.sum(axis=1, keepdims=True)
        if np.any(tot <= 0):
            raise ValueError("a response function has no support on the fine grid")
        dt = jnp.asarray(0.0).dtype
        return cls(jnp.asarray(w / tot, dt), jnp.asarray(c, dt), jnp.asarray(wl, dt))

    def __call__(self, spectrum: Float[Array, "... n"]) -> Float[Array, "... m"]:
        return spectrum @ self.matrix.T

    def as_operator(self) -> lx.MatrixLinearOperator:
        """The response as a lineax operator (its ``transpose()`` is the adjoint)."""
        return lx.MatrixLinearOperator(self.matrix)

    @property
    def n_bands(self) -> int:
        return int(self.matrix.shape[0])


def _trapz_w(wl):
    d = np.diff(wl)
    w = np.zeros_like(wl)
    w[:-1] += d / 2
    w[1:] += d / 2
    return w[None, :]


def _check_grid(wl, c, f):
    if wl.ndim != 1 or np.any(np.diff(wl) <= 0):
        raise ValueError("`fine_wavelength` must be 1-D and strictly ascending")
    if c.ndim != 1 or np.any(np.diff(c) <= 0):
        raise ValueError("`centers` must be 1-D and strictly ascending")
    if np.any(~(f > 0)):
        raise ValueError("`fwhm`/`widths` must be > 0")


class NoiseModel(eqx.Module):
    """Radiance noise: ``σ² = (L/SNR)² + NEdL²`` per band (either term may be zero).

    Attributes:
        snr: ``(m,)`` or scalar signal-to-noise ratio at the given radiance (0 = off).
        nedl: ``(m,)`` or scalar noise-equivalent radiance, µW cm⁻² sr⁻¹ nm⁻¹.
    """

    snr: Float[Array, "..."]
    nedl: Float[Array, "..."]

    def __init__(self, *, snr=0.0, nedl=0.0):
        self.snr = jnp.asarray(snr, float)
        self.nedl = jnp.asarray(nedl, float)

    def __check_init__(self):
        if np.any(np.asarray(self.snr) < 0) or np.any(np.asarray(self.nedl) < 0):
            raise ValueError("`snr` and `nedl` must be >= 0")
        if not (np.any(np.asarray(self.snr) > 0) or np.any(np.asarray(self.nedl) > 0)):
            raise ValueError("give a positive `snr` or `nedl`")

    def sigma(self, radiance: Float[Array, "... m"]) -> Float[Array, "... m"]:
        rel = jnp.where(self.snr > 0, radiance / jnp.where(self.snr > 0, self.snr, 1.0), 0.0)
        return jnp.sqrt(rel**2 + self.nedl**2)

    def sample(self, radiance, *, key) -> Float[Array, "... m"]:
        """``radiance + σ ε`` with standard-normal ``ε``."""
        return radiance + self.sigma(radiance) * jax.random.normal(
            key, radiance.shape, radiance.dtype
        )
