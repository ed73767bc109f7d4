"""Target spectra and matched filters for methane enhancement (ppm·m).

The matched filter (Manolakis et al. 2014, IEEE Signal Proc. Mag. 31, 24; Thompson et
al. 2016, GRL 43, 6571) for a pixel spectrum ``x`` with background mean ``μ`` and
covariance ``C`` and target ``t = μ ⊙ k`` (``k = ∂ln L/∂ΔX``, the unit absorption
spectrum) is

``α = (x - μ)ᵀ C⁻¹ t / (tᵀ C⁻¹ t)``, with noise-limited 1σ ``σ_α = (tᵀ C⁻¹ t)^{-1/2}``.

Variants: column-wise statistics (one ``μ, C`` per detector column of a push-broom
imager), Ledoit-Wolf shrinkage of ``C`` (Ledoit & Wolf 2004, J. Multivar. Anal. 88,
365), a low-rank + diagonal ``C`` solved by Woodbury (``plumax_core.linalg``), the
albedo correction ``α/r`` with ``r = xᵀμ/μᵀμ`` (Thompson et al. 2016), and an iterative,
sparse, non-negative, L1-regularised filter in the spirit of mag1c (Foote et al. 2020,
IEEE TGRS 58, 6480): background statistics re-estimated after removing the current
plume estimate, with a soft threshold and a non-negativity constraint.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, Float

from plumax_core import linalg as plx

from ._forward import BeerLambertRTM
from ._instruments import SpectralResponse
from ._plausibility import check_background_pixels, check_radiance, check_target

COVARIANCES = ("classic", "shrinkage", "lowrank")


def target_spectrum(
    rtm: BeerLambertRTM,
    srf: SpectralResponse,
    *,
    h2o_scale=1.0,
    coeffs=None,
    enhancement: float = 0.0,
) -> Float[Array, " m"]:
    """Unit absorption spectrum ``k = ∂ ln L_band / ∂ΔX`` ((ppm·m)⁻¹) by ``jax.jvp`` at the
    background (``ΔX = enhancement``, default 0)."""
    coeffs = rtm.default_coeffs() if coeffs is None else jnp.asarray(coeffs)

    def f(dx):
        return jnp.log(srf(rtm(dx, h2o_scale, coeffs)))

    x0 = jnp.asarray(enhancement, rtm.wavelength.dtype)
    _, k = jax.jvp(f, (x0,), (jnp.ones_like(x0),))
    return k


class MatchedFilterResult(eqx.Module):
    """Matched-filter output.

    Attributes:
        enhancement: ``(...)`` ppm·m (NaN where masked).
        uncertainty: ``(...)`` 1σ ppm·m.
        valid: ``(...)`` bool, False for pixels with non-finite radiance.
        n_masked: number of masked pixels.
    """

    enhancement: Float[Array, "..."]
    uncertainty: Float[Array, "..."]
    valid: Array
    n_masked: int = eqx.field(static=True)


def _ledoit_wolf(xc: Array, w: Array) -> Array:
    """Ledoit-Wolf (2004) shrinkage of the sample covariance towards ``μ_s I``."""
    n = jnp.sum(w)
    s = (xc * w[:, None]).T @ xc / n
    m = s.shape[0]
    mu = jnp.trace(s) / m
    d2 = jnp.sum((s - mu * jnp.eye(m)) ** 2)
    # b̄² = (1/n²) Σ_k ||x_k x_kᵀ - S||²_F, computed without forming x_k x_kᵀ.
    sq = jnp.sum(xc**2, axis=1)
    b2 = (jnp.sum(w * sq**2) - n * jnp.sum(s**2)) / n**2
    b2 = jnp.clip(b2, 0.0, d2)
    shrink = jnp.where(d2 > 0, b2 / d2, 0.0)
    return shrink * mu * jnp.eye(m) + (1 - shrink) * s


def _solver(xc, w, covariance, rank, ridge):
    """A function ``v -> C⁻¹ v`` for the chosen covariance model."""
    n = jnp.sum(w)
    m = xc.shape[1]
    if covariance == "shrinkage":
        c = _ledoit_wolf(xc, w)
    else:
        c = (xc * w[:, None]).T @ xc / jnp.maximum(n - 1, 1)
    c = c + ridge * jnp.trace(c) / m * jnp.eye(m)
    if covariance == "lowrank":
        evals, evecs = jnp.linalg.eigh(c)
        U = evecs[:, -rank:]
        lam = evals[-rank:]
        resid = jnp.clip(jnp.diag(c) - jnp.sum(U**2 * lam, axis=1), 1e-12 * jnp.trace(c) / m)
        op = plx.LowRankUpdate(
            lx.DiagonalLinearOperator(resid), U, jnp.diag(lam), tags=lx.positive_semidefinite_tag
        )
        return lambda v: plx.solve(op, v)
    chol = jax.scipy.linalg.cho_factor(c)
    return lambda v: jax.scipy.linalg.cho_solve(chol, v)


def _stats(x, w):
    n = jnp.sum(w)
    mu = jnp.sum(x * w[:, None], axis=0) / n
    return mu, (x - mu) * w[:, None]


@eqx.filter_jit
def _mf_core(x, w, k, covariance, rank, ridge, albedo_correction):
    mu, xc = _stats(x, w)
    t = mu * k
    cinv = _solver(xc, w, covariance, rank, ridge)
    ct = cinv(t)
    norm = t @ ct
    alpha = ((x - mu) @ ct) / norm
    if albedo_correction:
        r = (x @ mu) / (mu @ mu)
        alpha = alpha / r
    return alpha, jnp.full_like(alpha, 1.0 / jnp.sqrt(norm))


def _prepare(radiance, target, wavelengths):
    x = jnp.asarray(radiance)
    k = jnp.asarray(target)
    if x.ndim < 2:
        raise ValueError(f"`radiance` must be (..., band), got shape {x.shape}")
    if k.ndim != 1 or k.shape[0] != x.shape[-1]:
        raise ValueError(
            f"`target` has {k.shape[-1] if k.ndim else 0} bands but `radiance` has {x.shape[-1]}"
        )
    if wavelengths is not None:
        wl = np.asarray(wavelengths)
        if wl.shape != (x.shape[-1],):
            raise ValueError(f"`wavelengths` must have shape ({x.shape[-1]},), got {wl.shape}")
        if np.any(np.diff(wl) <= 0):
            raise ValueError("`wavelengths` must be strictly ascending")
    valid = jnp.all(jnp.isfinite(x), axis=-1)
    n_masked = int(np.sum(~np.asarray(valid)))
    if n_masked == valid.size:
        raise ValueError("`radiance` has no pixel with all-finite values")
    check_radiance(np.asarray(x), wavelengths=wavelengths)
    check_target(k)
    return x, k, valid, n_masked


def matched_filter(
    radiance: Float[Array, "... m"],
    target: Float[Array, " m"],
    *,
    wavelengths=None,
    covariance: str = "classic",
    rank: int = 10,
    ridge: float = 1e-6,
    albedo_correction: bool = False,
    columnwise: bool = False,
    exclude=None,
) -> MatchedFilterResult:
    """Matched-filter enhancement (ppm·m) for each pixel of a radiance cube.

    The inputs are checked first (:func:`check_radiance`, :func:`check_target`): at
    least 2 bands, no negative radiance, positive band means, spatial variance in every
    band, a target that varies across bands; and, for scene-wide statistics, more valid
    background pixels than the covariance model needs (:func:`min_background_pixels`:
    ``m + 1`` for ``"classic"``).

    Args:
        radiance: ``(..., m)`` radiances (any leading shape; ``(ny, nx, m)`` for
            ``columnwise``). Pixels with any non-finite band are masked (NaN output,
            counted in ``n_masked``) and excluded from the statistics.
        target: ``(m,)`` unit absorption spectrum ``∂ln L/∂ΔX`` (:func:`target_spectrum`).
        wavelengths: optional ``(m,)`` band centres; checked strictly ascending.
        covariance: ``"classic"`` (sample), ``"shrinkage"`` (Ledoit-Wolf) or
            ``"lowrank"`` (``rank`` eigenmodes + diagonal, Woodbury solve).
        ridge: diagonal loading, fraction of the mean variance.
        albedo_correction: divide by ``r = xᵀμ/μᵀμ``, the pixel's relative brightness
            (Thompson et al. 2016): the filter's response to a given enhancement scales
            with ``r``, so without it the scatter of surface albedo is a per-pixel gain
            error on plume pixels. ``uncertainty`` is unchanged, which is right when the
            pixel noise scales with its radiance (SNR-limited: the noise of ``α`` then
            scales with ``r`` too).
        columnwise: one ``μ, C`` per column ``x`` of an ``(ny, nx, m)`` cube. The
            pixel-count rule is not applied per column: a column with ``ny <= m`` valid
            pixels has a singular sample covariance that only ``ridge`` regularises.
        exclude: optional bool mask (leading shape) of pixels left out of the background
            statistics, e.g. a dilated plume mask from a first pass: a plume inside
            ``C`` shrinks the filter's response along the target (slope < 1).

    Raises:
        ValueError: bad shapes or options, implausible radiance (naming ``radiance``),
            or too few valid background pixels (saying how many remain).
    """
    if covariance not in COVARIANCES:
        raise ValueError(f"`covariance` must be one of {COVARIANCES}, got {covariance!r}")
    x, k, valid, n_masked = _prepare(radiance, target, wavelengths)
    shape = x.shape[:-1]
    xf = jnp.where(valid[..., None], x, 0.0)
    w = valid.astype(x.dtype)
    n_excluded = 0
    if exclude is not None:
        ex = jnp.asarray(exclude, bool)
        if ex.shape != valid.shape:
            raise ValueError(f"`exclude` must have shape {valid.shape}, got {ex.shape}")
        w = w * (~ex).astype(x.dtype)
        n_excluded = int(np.sum(np.asarray(valid & ex)))
    if not columnwise:
        check_background_pixels(
            int(np.sum(np.asarray(w) > 0)),
            x.shape[-1],
            covariance=covariance,
            rank=int(rank),
            n_pixels=int(valid.size),
            n_excluded=n_excluded,
            n_invalid=n_masked,
        )
    args = (k, covariance, int(rank), float(ridge), bool(albedo_correction))
    if columnwise:
        if x.ndim != 3:
            raise ValueError("`columnwise` needs a (ny, nx, m) cube")
        a, s = jax.vmap(lambda xc, wc: _mf_core(xc, wc, *args), in_axes=(1, 1), out_axes=1)(xf, w)
    else:
        a, s = _mf_core(xf.reshape(-1, x.shape[-1]), w.reshape(-1), *args)
        a, s = a.reshape(shape), s.reshape(shape)
    a = jnp.where(valid, a, jnp.nan)
    return MatchedFilterResult(a, s, valid, n_masked)


def sparse_matched_filter(
    radiance: Float[Array, "... m"],
    target: Float[Array, " m"],
    *,
    l1: float = 0.0,
    n_iter: int = 10,
    ridge: float = 1e-6,
    wavelengths=None,
) -> MatchedFilterResult:
    """Iterative sparse, non-negative, L1-regularised matched filter (mag1c-like).

    Each iteration re-estimates ``μ, C`` from ``x - α (μ ⊙ k)`` (the radiance with the
    current plume removed), then ``α = max(0, ((x-μ)ᵀC⁻¹t - l1) / tᵀC⁻¹t)`` — the
    minimiser of ``½ (x - μ - α t)ᵀC⁻¹(x - μ - α t) + l1 α`` over ``α >= 0``.

    Args:
        l1: L1 weight (radiance-whitened units; 0 = non-negative only).
        n_iter: iterations (static).
    """
    x, k, valid, n_masked = _prepare(radiance, target, wavelengths)
    shape = x.shape[:-1]
    m = x.shape[-1]
    check_background_pixels(
        int(valid.size) - n_masked, m, n_pixels=int(valid.size), n_invalid=n_masked
    )
    xf = jnp.where(valid[..., None], x, 0.0).reshape(-1, m)
    w = valid.reshape(-1).astype(x.dtype)

    @jax.jit
    def run(xf, w):
        def body(alpha, _):
            mu0 = jnp.sum(xf * w[:, None], axis=0) / jnp.sum(w)
            clean = xf - alpha[:, None] * (mu0 * k)
            mu, xc = _stats(clean, w)
            t = mu * k
            cinv = _solver(xc, w, "classic", 0, ridge)
            ct = cinv(t)
            norm = t @ ct
            a = jnp.maximum(0.0, ((xf - mu) @ ct - l1) / norm)
            return a * w, 1.0 / jnp.sqrt(norm)

        alpha, s = jax.lax.scan(body, jnp.zeros(xf.shape[0], xf.dtype), None, length=n_iter)
        return alpha, s[-1]

    a, s = run(xf, w)
    a = jnp.where(valid, a.reshape(shape), jnp.nan)
    return MatchedFilterResult(a, jnp.full(shape, s), valid, n_masked)


def far_threshold(enhancement: Float[Array, "..."], false_alarm_rate: float) -> float:
    """Detection threshold (ppm·m) at a per-pixel false-alarm rate.

    Assumes background pixels follow a Gaussian null whose centre and spread are the
    median and the MAD-based robust standard deviation (``1.4826 · MAD``) of the image
    (robust to the few plume pixels): ``thr = med + σ Φ⁻¹(1 - FAR)``.
    """
    from scipy.stats import norm

    if not (0.0 < false_alarm_rate < 0.5):
        raise ValueError("`false_alarm_rate` must be in (0, 0.5)")
    a = np.asarray(enhancement)
    a = a[np.isfinite(a)]
    med = np.median(a)
    sig = 1.4826 * np.median(np.abs(a - med))
    return float(med + sig * norm.ppf(1 - false_alarm_rate))


def saturation_curve(
    rtm: BeerLambertRTM,
    srf: SpectralResponse,
    target: Float[Array, " m"],
    enhancements: Float[Array, " K"],
    *,
    noise_sigma: Float[Array, " m"] | None = None,
) -> Float[Array, " K"]:
    """What a linear matched filter returns for the Beer-Lambert radiance of each true
    enhancement (noise-free, whitened by ``diag(noise_sigma²)`` or the identity).

    The slope falls below 1 as lines saturate; :func:`desaturate` inverts the curve.
    """
    coeffs = rtm.default_coeffs()
    l0 = srf(rtm(0.0, 1.0, coeffs))
    t = l0 * target
    wgt = 1.0 if noise_sigma is None else 1.0 / jnp.asarray(noise_sigma) ** 2
    num = jax.vmap(lambda c: jnp.sum((srf(rtm(c, 1.0, coeffs)) - l0) * t * wgt))(
        jnp.asarray(enhancements)
    )
    return num / jnp.sum(t * t * wgt)


def desaturate(alpha, enhancements, curve):
    """Map matched-filter output ``alpha`` back to enhancement through a monotone
    :func:`saturation_curve` (linear interpolation; beyond the curve's range raises)."""
    e = np.asarray(enhancements)
    c = np.asarray(curve)
    if np.any(np.diff(c) <= 0):
        raise ValueError("`curve` must be strictly increasing")
    a = np.asarray(alpha)
    fin = np.isfinite(a)
    if np.any(a[fin] > c[-1]):
        raise ValueError("`alpha` beyond the saturation curve's range (extend `enhancements`)")
    out = np.where(a >= 0, np.interp(np.where(fin, a, 0.0), c, e), a)
    return np.where(fin, out, np.nan)
