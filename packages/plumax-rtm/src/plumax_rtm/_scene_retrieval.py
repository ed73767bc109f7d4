r"""The scene-retrieval recipe: radiance cube -> methane column map, plume, quick-look Q.

:func:`retrieve_scene` chains the plumax-rtm building blocks into the retrieval that
plumax's demo and ``plumax retrieve`` run, and returns the map as
:class:`plumax_core.Observations` ready for a source inversion:

1. **First pass.** Albedo-corrected classic matched filter
   (:func:`~plumax_rtm.matched_filter`; Thompson et al. 2016, AMT 9, 3599: the
   enhancement is divided by the pixel's relative brightness, since the filter's response
   scales with it) on the whole scene; a plume mask at a 2 % false-alarm rate
   (:func:`~plumax_rtm.far_threshold`, :func:`~plumax_rtm.plume_mask`), dilated by
   ``dilation`` pixels, is the *exclusion* (:func:`plume_exclusion`).
2. **Second pass.** The same filter with the exclusion left out of the background mean
   and covariance: a plume inside ``C`` shrinks the filter's response along the target
   (slope 0.77 instead of 1 on the synthetic scene of ``docs/rtm/retrievals.md``).
3. **Desaturation** through the Beer-Lambert saturation curve
   (:func:`~plumax_rtm.saturation_curve`, :func:`~plumax_rtm.desaturate`).
4. **Error model.** The filter's per-pixel 1-sigma ``u = (tᵀC⁻¹t)^{-1/2}`` holds for the
   pixels the covariance was fitted on; :func:`~plumax_rtm.estimate_error_model` measures
   on the scene what the map's errors are elsewhere (out-of-sample variance by
   cross-validation, a common offset, the spatial covariogram and, by injecting the
   detected plume into the scene's own radiance, a gain error):
   :class:`~plumax_rtm.RetrievalErrorModel`. ``σ = u · max(sqrt(v), std(α/u))`` with the
   cross-validated variance factor ``v`` and the in-sample spread
   (:func:`residual_scale`).
5. **Plume mask** at ``false_alarm_rate``, kept to the component nearest the most upwind
   detection (:func:`~plumax_rtm.most_upwind_pixel`).
6. **Quick-look fluxes**: IME (:func:`~plumax_rtm.ime_flux`) and CSF for the met's wind
   direction, whatever it is (:func:`~plumax_rtm.csf_flux_downwind`), both after Varon
   et al. (2018, AMT 11, 5673), with a 0.5 m/s wind error.
7. **Optimal-estimation check** (optional): :func:`~plumax_rtm.optimal_estimation`
   (Rodgers 2000) on up to ``max_oe_pixels`` of the brightest plume pixels, with the
   priors of :func:`oe_check_prior`, compared with the filter (:class:`OECheck`);
   reported, not used by the map.

The radiance is checked first (:func:`~plumax_rtm.check_radiance`) and the matched
filter refuses too few background pixels (:func:`~plumax_rtm.check_background_pixels`).
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from plumax_core import MetField, Observations
from plumax_core.validation import check_coordinate, check_wind_speed

from ._csf_wind import csf_flux_downwind, most_upwind_pixel
from ._error_model import RetrievalErrorModel, estimate_error_model
from ._flux import FluxEstimate, ime_flux, plume_mask
from ._forward import BeerLambertRTM
from ._instruments import SpectralResponse
from ._matched_filter import (
    desaturate,
    far_threshold,
    matched_filter,
    saturation_curve,
    target_spectrum,
)
from ._oe import optimal_estimation
from ._plausibility import check_radiance

__all__ = [
    "OECheck",
    "QUICKLOOK_Z",
    "SceneRetrieval",
    "oe_check_prior",
    "plume_exclusion",
    "residual_scale",
    "retrieve_scene",
]

#: Half-width, in standard deviations, of the quick-look flux intervals (90 %).
QUICKLOOK_Z = 1.645


def plume_exclusion(
    first_pass: Float[Array, "ny nx"],
    *,
    false_alarm_rate: float = 0.02,
    min_pixels: int = 3,
    dilation: int = 2,
) -> np.ndarray:
    """The pixels to leave out of the second pass's background statistics.

    A plume mask of the first-pass enhancement (``far_threshold`` at
    ``false_alarm_rate``, components of at least ``min_pixels``), dilated by
    ``dilation`` pixels (``scipy.ndimage.binary_dilation``; 0 = no dilation) so that the
    faint plume edges stay out of the covariance too.

    Args:
        first_pass: ``(ny, nx)`` matched-filter enhancement, ppm·m (NaN = invalid).
        false_alarm_rate: per-pixel false-alarm rate of the detection, in (0, 0.5).
        min_pixels: smallest detected component kept.
        dilation: dilation iterations, pixels (>= 0).

    Returns:
        ``(ny, nx)`` bool.

    Raises:
        ValueError: a negative or non-integer ``dilation`` (and the errors of
            :func:`~plumax_rtm.far_threshold` / :func:`~plumax_rtm.plume_mask`).
    """
    from scipy import ndimage

    if isinstance(dilation, bool) or not isinstance(dilation, int | np.integer) or dilation < 0:
        raise ValueError(f"`dilation` must be an int >= 0 (pixels), got {dilation!r}")
    a = np.asarray(first_pass)
    m0 = plume_mask(a, far_threshold(a, false_alarm_rate), min_pixels=min_pixels)
    return np.asarray(ndimage.binary_dilation(m0, iterations=dilation) if dilation else m0, bool)


def residual_scale(alpha, uncertainty, background) -> float:
    """Empirical inflation of the filter's error model: ``max(1, std(α/u))``.

    Over the ``background`` pixels (valid, off-plume) the standardised residual
    ``z = α/u`` should be standard normal if ``u`` is the filter's whole error; its
    sample standard deviation (``ddof=1``) measures what ``u`` misses (spectral
    structure of the surface, non-Gaussian noise). The scale never shrinks ``u``.

    Args:
        alpha: ``(...)`` matched-filter enhancement, ppm·m.
        uncertainty: ``(...)`` its per-pixel 1-sigma, ppm·m (> 0 on ``background``).
        background: ``(...)`` bool, the pixels to use (at least 2).

    Raises:
        ValueError: fewer than 2 background pixels, or mismatched shapes.
    """
    a = np.asarray(alpha, np.float64)
    u = np.asarray(uncertainty, np.float64)
    b = np.asarray(background, bool)
    if not (a.shape == u.shape == b.shape):
        raise ValueError(
            f"`alpha`, `uncertainty` and `background` must share a shape, got "
            f"{a.shape}, {u.shape}, {b.shape}"
        )
    if int(b.sum()) < 2:
        raise ValueError(f"`background` must hold at least 2 pixels, got {int(b.sum())}")
    z = a[b] / u[b]
    return max(1.0, float(np.std(z - np.mean(z), ddof=1)))


def oe_check_prior(n_poly: int, albedo_mean: float = 0.25) -> tuple[Array, Array]:
    """Prior mean and 1-sigma of the OE check's state ``[ΔX, s_w, c_0, ..., c_{n-1}]``.

    ``ΔX`` 0 ± 1e5 ppm·m (uninformative: the enhancement is what is checked); water-vapour
    scale 1 ± 0.3; reflectance ``c_0`` = ``albedo_mean`` ± 1 (wide, so an unknown albedo
    map is fine); higher Legendre terms 0 ± 0.5.

    Raises:
        ValueError: ``n_poly < 1`` or a non-finite ``albedo_mean``.
    """
    if isinstance(n_poly, bool) or not isinstance(n_poly, int) or n_poly < 1:
        raise ValueError(f"`n_poly` must be an int >= 1, got {n_poly!r}")
    if not math.isfinite(albedo_mean):
        raise ValueError(f"`albedo_mean` must be finite, got {albedo_mean}")
    mean = jnp.array([0.0, 1.0, albedo_mean] + [0.0] * (n_poly - 1))
    std = jnp.array([1e5, 0.3, 1.0] + [0.5] * (n_poly - 1))
    return mean, std


class OECheck(eqx.Module):
    """Optimal estimation on plume pixels as a check of the matched filter.

    Attributes:
        n: number of plume pixels retrieved.
        mean_ratio_oe_mf: ``Σ ΔX_OE / Σ ΔX_MF`` over those pixels (1 = agreement).
        converged_fraction: fraction of pixels whose OE converged.
        median_dfs: median degrees of freedom for signal.
    """

    n: int = eqx.field(static=True)
    mean_ratio_oe_mf: float = eqx.field(static=True)
    converged_fraction: float = eqx.field(static=True)
    median_dfs: float = eqx.field(static=True)

    def to_dict(self) -> dict[str, Any]:
        """``{"n", "mean_ratio_oe_mf", "converged_fraction", "median_dfs"}``."""
        return {
            "n": self.n,
            "mean_ratio_oe_mf": self.mean_ratio_oe_mf,
            "converged_fraction": self.converged_fraction,
            "median_dfs": self.median_dfs,
        }


def _flux_dict(f: FluxEstimate | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {
        "median": f.rate,
        "std": f.uncertainty,
        "lo": f.rate - QUICKLOOK_Z * f.uncertainty,
        "hi": f.rate + QUICKLOOK_Z * f.uncertainty,
        "units": "kg/s",
        "method": f.method,
    }


class SceneRetrieval(eqx.Module):
    """The result of :func:`retrieve_scene` (images ``(ny, nx)``, ppm·m, float64).

    Attributes:
        enhancement: desaturated matched-filter enhancement (NaN = invalid).
        uncertainty: the filter's per-pixel 1-sigma ``(tᵀC⁻¹t)^{-1/2}``.
        sigma: the map's per-pixel 1-sigma (``error_model.sigma``): ``uncertainty``
            times ``max(sqrt(variance factor), residual_scale)``.
        valid: bool, finite pixels.
        exclusion: bool, the dilated first-pass detection left out of the covariance.
        mask: bool, the plume mask.
        x: ``(nx,)`` pixel centres, m.
        y: ``(ny,)`` pixel centres, m.
        residual_scale: the noise inflation (:func:`residual_scale`), >= 1. Static.
        threshold: the plume-mask threshold, ppm·m. Static.
        pixel_size: pixel side, m. Static.
        source_pixel: ``(iy, ix)`` of the most upwind detection, or None. Static.
        ime: IME quick-look flux (kg/s), or None without a plume.
        csf: CSF quick-look flux (kg/s), or None without a plume or when fewer than 2
            transects fit downwind of the source inside the image.
        oe: the optimal-estimation check, or None (not run, no plume, or no radiance
            noise).
        error_model: the map's error model (:class:`~plumax_rtm.RetrievalErrorModel`).

    Raises:
        ValueError: images of different shapes, coordinates that do not match them, or
            a ``residual_scale`` below 1.
    """

    enhancement: np.ndarray
    uncertainty: np.ndarray
    sigma: np.ndarray
    valid: np.ndarray
    exclusion: np.ndarray
    mask: np.ndarray
    x: Array
    y: Array
    residual_scale: float = eqx.field(static=True)
    threshold: float = eqx.field(static=True)
    pixel_size: float = eqx.field(static=True)
    source_pixel: tuple[int, int] | None = eqx.field(static=True)
    ime: FluxEstimate | None
    csf: FluxEstimate | None
    oe: OECheck | None
    error_model: RetrievalErrorModel

    def __check_init__(self):
        shape = np.shape(self.enhancement)
        if len(shape) != 2:
            raise ValueError(f"`enhancement` must be (ny, nx), got shape {shape}")
        for name in ("uncertainty", "sigma", "valid", "exclusion", "mask"):
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f"`{name}` must have shape {shape}")
        if np.shape(self.x) != (shape[1],) or np.shape(self.y) != (shape[0],):
            raise ValueError(f"`x`, `y` must have shapes ({shape[1]},), ({shape[0]},)")
        if not self.residual_scale >= 1.0:
            raise ValueError(f"`residual_scale` must be >= 1, got {self.residual_scale}")

    def observations(self) -> Observations:
        """The map as :class:`plumax_core.Observations` for a source inversion.

        Kind ``column_ppm_m`` on dims ``("y", "x")`` with coordinates ``y``, ``x`` (m);
        ``values`` the enhancement (0 where invalid); instrument ``"matched-filter
        retrieval"``; arrays in the default float dtype (float32 unless x64 is enabled).
        The errors are the error model's: per-pixel ``sigma`` (1 where invalid) with
        ``mask`` the valid pixels, or, for spatially correlated errors and a fully valid
        map, the Kronecker ``noise`` operator
        (:meth:`RetrievalErrorModel.noise_operator`). A map with invalid pixels and
        correlated errors keeps the diagonal, with ``sigma`` times ``(1 + ρ)/(1 - ρ)``,
        ``ρ = exp(-pixel/ℓ)``: the square root of the variance factor
        ``((1 + ρ)/(1 - ρ))²`` of a mean under the separable AR(1) correlation
        (conservative).
        """
        dtype = jnp.result_type(float)
        em = self.error_model
        values = jnp.asarray(np.where(self.valid, self.enhancement, 0.0), dtype)
        common = dict(
            kind="column_ppm_m",
            dims=("y", "x"),
            coords={"y": self.y, "x": self.x},
            instrument="matched-filter retrieval",
        )
        if em.correlated and bool(np.all(self.valid)):
            return Observations(values, noise=em.noise_operator(), **common)
        sigma = np.asarray(self.sigma, np.float64)
        if em.correlated:
            rho = math.exp(-self.pixel_size / em.correlation_length)
            sigma = sigma * (1 + rho) / (1 - rho)
        return Observations(
            values,
            sigma=jnp.asarray(np.where(self.valid, sigma, 1.0), dtype),
            mask=jnp.asarray(self.valid),
            **common,
        )

    @property
    def warnings(self) -> list[str]:
        """Sentences for a retrieval that found no plume (no flux, nothing to invert)."""
        if self.mask.any():
            return []
        return [
            f"no plume detected: no pixel group above {self.threshold:.4g} ppm m (the "
            "false-alarm threshold), so there is no quick-look flux"
        ]

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers in SI units.

        ``{"warnings", "residual_scale", "mean_uncertainty_ppm_m", "mask_pixels",
        "excluded_pixels", "invalid_pixels", "threshold_ppm_m", "IME", "CSF", "OE",
        "error_model"}`` (:meth:`RetrievalErrorModel.summary`);
        each flux is ``{"median", "std", "lo", "hi", "units": "kg/s", "method"}`` with
        a ``±QUICKLOOK_Z σ`` (90 %) interval, or None; ``OE`` is
        :meth:`OECheck.to_dict` or None.
        """
        return {
            "warnings": self.warnings,
            "residual_scale": self.residual_scale,
            "mean_uncertainty_ppm_m": float(np.nanmean(self.uncertainty)),
            "mask_pixels": int(self.mask.sum()),
            "excluded_pixels": int(self.exclusion.sum()),
            "invalid_pixels": int((~self.valid).sum()),
            "threshold_ppm_m": self.threshold,
            "IME": _flux_dict(self.ime),
            "CSF": _flux_dict(self.csf),
            "OE": None if self.oe is None else self.oe.to_dict(),
            "error_model": self.error_model.summary(),
        }


def _pixel_axes(radiance: Observations) -> tuple[Array, Array, float]:
    """``(x, y, pixel size)``: evenly spaced, square pixels (checked)."""
    for c in ("x", "y"):
        if c not in radiance.coords:
            raise ValueError(
                f"`radiance` needs coordinate {c!r} (pixel centres, m) to place the map"
            )
    x, y = radiance.coords["x"], radiance.coords["y"]
    steps = {}
    for c, v in (("x", x), ("y", y)):
        arr = np.asarray(v)
        if arr.size < 2:
            raise ValueError(f"`radiance.coords[{c!r}]` must hold at least 2 pixel centres")
        check_coordinate(f"radiance.coords[{c!r}]", arr, evenly_spaced=True)
        steps[c] = float(np.mean(np.diff(arr)))
    if not math.isclose(steps["x"], steps["y"], rel_tol=1e-3):
        raise ValueError(
            f"`radiance` pixels must be square (the fluxes use one pixel size): x step "
            f"{steps['x']:g} m, y step {steps['y']:g} m"
        )
    return x, y, steps["x"]


def _check_options(
    false_alarm_rate, min_pixels, max_oe_pixels, wind_speed_std, n_injections
) -> None:
    if isinstance(n_injections, bool) or not isinstance(n_injections, int) or n_injections < 0:
        raise ValueError(f"`n_injections` must be an int >= 0, got {n_injections!r}")
    if not (isinstance(false_alarm_rate, int | float) and 0.0 < false_alarm_rate < 0.5):
        raise ValueError(f"`false_alarm_rate` must be in (0, 0.5), got {false_alarm_rate!r}")
    for name, v in (("min_pixels", min_pixels), ("max_oe_pixels", max_oe_pixels)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"`{name}` must be an int >= 1, got {v!r}")
    if not (math.isfinite(wind_speed_std) and wind_speed_std >= 0):
        raise ValueError(f"`wind_speed_std` must be finite and >= 0 m/s, got {wind_speed_std}")


def retrieve_scene(
    radiance: Observations,
    met: MetField,
    *,
    rtm: BeerLambertRTM,
    srf: SpectralResponse,
    albedo=None,
    false_alarm_rate: float = 0.01,
    dilation: int = 2,
    min_pixels: int = 5,
    optimal_estimation_check: bool = True,
    max_oe_pixels: int = 64,
    wind_speed_std: float = 0.5,
    n_injections: int = 8,
    cv_folds: int = 5,
    seed: int = 0,
) -> SceneRetrieval:
    """Retrieve the methane column map of a radiance scene (the recipe of the module).

    Args:
        radiance: the radiance cube, kind ``"radiance"`` on dims ``("y", "x", "band")``
            with coordinates ``x``, ``y`` (pixel centres, m: ascending, evenly spaced,
            square pixels) and optionally ``band`` (nm); ``sigma`` (its 1-sigma noise) is
            needed for the OE check only; masked elements are treated as invalid pixels.
        met: steady, uniform met: its wind speed (m/s, core's wind-speed rule) and
            direction (degrees, from) drive the IME and CSF fluxes.
        rtm: the Beer-Lambert model (target spectrum, saturation curve, OE).
        srf: the instrument's response (its bands are the cube's).
        albedo: the ``(ny, nx)`` surface reflectance if known; its mean is the OE prior
            of ``c_0`` (:func:`oe_check_prior`; 0.25 when None).
        false_alarm_rate: per-pixel false-alarm rate of the plume mask, in (0, 0.5).
        dilation: dilation of the first-pass exclusion, pixels.
        min_pixels: smallest plume component kept.
        optimal_estimation_check: run the OE check on plume pixels.
        max_oe_pixels: at most this many (the brightest) plume pixels in the OE check.
        wind_speed_std: 1-sigma error of the wind speed in the fluxes, m/s.
        n_injections: plume injections of the error model's gain test (0 = none: gain
            std 0).
        cv_folds: folds of the error model's cross-validation (>= 2).
        seed: the error model's random fold split and injection positions.

    Returns:
        A :class:`SceneRetrieval`; :meth:`SceneRetrieval.observations` is the map.

    Raises:
        TypeError: ``radiance`` is not :class:`plumax_core.Observations`.
        ValueError: radiance of the wrong kind, dims or coordinates, implausible
            radiance (:func:`~plumax_rtm.check_radiance`), too few valid background
            pixels (saying how many remain), a wind speed outside core's rule (naming
            ``met.wind_speed``), or bad options; each naming the argument.
    """
    if not isinstance(radiance, Observations):
        raise TypeError(
            f"`radiance` must be plumax_core.Observations, got {type(radiance).__name__}"
        )
    if radiance.kind != "radiance" or radiance.dims != ("y", "x", "band"):
        raise ValueError(
            f"`radiance` must be kind 'radiance' on dims ('y', 'x', 'band'), got kind "
            f"{radiance.kind!r} on {radiance.dims}"
        )
    _check_options(false_alarm_rate, min_pixels, max_oe_pixels, wind_speed_std, n_injections)
    x, y, pixel_size = _pixel_axes(radiance)
    values = radiance.values
    if radiance.mask is not None:
        values = jnp.where(radiance.mask, values, jnp.nan)
    has_sigma = radiance.sigma is not None or radiance.noise is not None
    sigma = radiance.sigma_full() if has_sigma else None
    bands = radiance.coords.get("band", srf.centers)
    check_radiance(
        np.asarray(values),
        sigma=None if sigma is None else np.asarray(sigma),
        wavelengths=np.asarray(bands),
    )
    u10 = float(np.asarray(met.wind_speed).ravel()[0])
    wdir = float(np.asarray(met.wind_direction).ravel()[0])
    check_wind_speed("met.wind_speed", u10)
    if albedo is not None and np.shape(albedo) != values.shape[:2]:
        raise ValueError(f"`albedo` must have shape {values.shape[:2]}, got {np.shape(albedo)}")

    # 1-2. two passes of the albedo-corrected classic filter, plume out of the covariance
    target = target_spectrum(rtm, srf)
    first = np.asarray(matched_filter(values, target, albedo_correction=True).enhancement)
    exclusion = plume_exclusion(first, dilation=dilation)

    def second_pass(cube, exclude):
        r = matched_filter(
            cube, target, covariance="classic", exclude=jnp.asarray(exclude), albedo_correction=True
        )
        return np.asarray(r.enhancement, np.float64), np.asarray(r.uncertainty, np.float64)

    alpha, unc = second_pass(values, exclusion)
    valid = np.isfinite(alpha)
    # 3. desaturation
    top = max(20000.0, 2.0 * float(np.nanmax(alpha)))
    grid = np.linspace(0.0, top, 161)
    curve = np.asarray(saturation_curve(rtm, srf, target, grid))
    enh = desaturate(alpha, grid, curve)
    # 4. error model: cross-validation, covariogram, injections
    scale = residual_scale(alpha, unc, valid & ~exclusion)
    thr = far_threshold(enh, false_alarm_rate)
    mask = plume_mask(enh, thr, min_pixels=min_pixels)
    error_model = _error_model(
        values,
        rtm,
        srf,
        target,
        second_pass,
        alpha=alpha,
        unc=unc,
        enh=enh,
        valid=valid,
        exclusion=exclusion,
        mask=mask,
        threshold=thr,
        grid=grid,
        curve=curve,
        dilation=dilation,
        pixel_size=pixel_size,
        options=(cv_folds, n_injections, seed),
    )
    if scale > math.sqrt(error_model.variance_factor):
        error_model = eqx.tree_at(lambda m: m.sigma, error_model, unc * scale)
    sig_eff = np.asarray(error_model.sigma)
    # 5. plume mask: the component nearest the most upwind detection
    src = most_upwind_pixel(mask, wdir)
    if src is not None:
        mask = plume_mask(enh, thr, min_pixels=min_pixels, source_pixel=src)
    # 6. quick-look fluxes
    ime = csf = None
    if mask.any():
        filled = np.where(valid, enh, 0.0)
        ime = ime_flux(
            filled, mask, pixel_size, u10, u10_std=wind_speed_std, enhancement_std=sig_eff
        )
        csf = csf_flux_downwind(
            filled,
            pixel_size,
            u10,
            wdir,
            src,
            wind_std=wind_speed_std,
            enhancement_std=sig_eff,
        )
    # 7. optimal-estimation check
    oe = None
    if optimal_estimation_check and mask.any() and sigma is not None:
        a0 = 0.25 if albedo is None else float(np.mean(albedo))
        oe = _oe_check(rtm, srf, values, sigma, enh, mask & valid, a0, max_oe_pixels)
    return SceneRetrieval(
        enhancement=enh,
        uncertainty=unc,
        sigma=sig_eff,
        valid=valid,
        exclusion=exclusion,
        mask=np.asarray(mask, bool),
        x=x,
        y=y,
        residual_scale=scale,
        threshold=float(thr),
        pixel_size=pixel_size,
        source_pixel=src,
        ime=ime,
        csf=csf,
        oe=oe,
        error_model=error_model,
    )


def _test_plume(shape: tuple[int, int], peak: float) -> np.ndarray:
    """A compact Gaussian test plume (1.5-pixel sigma, ``peak`` ppm·m) at the centre,
    zero beyond 3 sigma: what the injection test writes when no plume was detected."""
    ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    r2 = (yy - ny // 2) ** 2 + (xx - nx // 2) ** 2
    return np.where(r2 <= 9 * 1.5**2, peak * np.exp(-r2 / (2 * 1.5**2)), 0.0)


def _error_model(
    values,
    rtm,
    srf,
    target,
    second_pass,
    *,
    alpha,
    unc,
    enh,
    valid,
    exclusion,
    mask,
    threshold,
    grid,
    curve,
    dilation,
    pixel_size,
    options,
) -> RetrievalErrorModel:
    """:func:`~plumax_rtm.estimate_error_model` wired to this recipe's own steps."""
    folds, n_injections, seed = options
    coeffs = rtm.default_coeffs()
    l0 = np.asarray(srf(rtm(0.0, 1.0, coeffs)), np.float64)
    table = np.stack([np.asarray(srf(rtm(float(c), 1.0, coeffs)), np.float64) / l0 for c in grid])

    def transmission(dx):
        flat = np.asarray(dx, np.float64).ravel()
        cols = [np.interp(flat, grid, table[:, b]) for b in range(table.shape[1])]
        return np.stack(cols, -1).reshape(*np.shape(dx), table.shape[1])

    def retrieve_fn(cube):
        a0 = np.asarray(matched_filter(cube, target, albedo_correction=True).enhancement)
        a, _ = second_pass(cube, plume_exclusion(a0, dilation=dilation))
        return desaturate(np.minimum(a, curve[-1]), grid, curve)

    template = np.where(mask & valid, np.clip(enh, 0.0, None), 0.0)
    if not template.any():
        template = _test_plume(enh.shape, 5.0 * max(threshold, float(np.nanmedian(unc))))
    return estimate_error_model(
        alpha_fn=lambda held: second_pass(values, exclusion | held),
        retrieve_fn=retrieve_fn if n_injections > 0 else None,
        radiance=np.asarray(values),
        transmission=transmission,
        alpha=alpha,
        uncertainty=unc,
        enhancement=enh,
        background=valid & ~exclusion,
        exclusion=exclusion,
        template=template,
        n_bands=int(np.shape(values)[-1]),
        pixel_size=pixel_size,
        folds=folds,
        n_injections=n_injections,
        seed=seed,
    )


def _oe_check(rtm, srf, values, sigma, enh, pixels, albedo_mean, max_pixels) -> OECheck:
    """OE on the ``max_pixels`` brightest ``pixels`` of ``enh``, against the filter."""
    iy, ix = np.nonzero(pixels)
    order = np.argsort(-enh[iy, ix])[:max_pixels]
    iy, ix = iy[order], ix[order]
    prior_mean, prior_std = oe_check_prior(rtm.n_poly, albedo_mean)
    r = optimal_estimation(
        rtm,
        srf,
        values[iy, ix],
        jnp.asarray(sigma)[iy, ix],
        prior_mean=prior_mean,
        prior_std=prior_std,
    )
    e_oe = np.asarray(r.enhancement, np.float64)
    e_mf = enh[iy, ix]
    return OECheck(
        n=int(iy.size),
        mean_ratio_oe_mf=float(np.sum(e_oe) / np.sum(e_mf)),
        converged_fraction=float(np.mean(np.asarray(r.converged))),
        median_dfs=float(np.median(np.asarray(r.dfs))),
    )
