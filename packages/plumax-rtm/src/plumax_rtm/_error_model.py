r"""The error model of a matched-filter column map, estimated from the scene itself.

A matched filter fitted on a scene's background pixels (mean ``μ̂`` and covariance
``Ĉ``) reports the per-pixel 1-sigma ``u = (tᵀĈ⁻¹t)^{-1/2}``. That is the spread of its
output over the very pixels ``Ĉ`` was fitted on; a plume pixel is *not* among them (the
plume is excluded from the covariance, :func:`~plumax_rtm.plume_exclusion`), and for
such out-of-sample pixels the filter errs more (the sample-covariance loss of Reed,
Mallett & Brennan 1974, IEEE TAES 10, 853: for Gaussian data the variance grows by
about ``(n - 1)/(n - p - 1)`` for ``n`` pixels and ``p`` bands, and more when the
background is not Gaussian). The errors of the whole map also share the error of ``μ̂``
(an additive offset) and may be spatially correlated. :func:`estimate_error_model`
measures each term on the scene:

* **out-of-sample variance** — ``K``-fold cross-validation over the background pixels:
  the filter fitted on ``K - 1`` folds is applied to the held-out fold, and the mean
  square of ``α/u`` there is the variance factor ``v``; it is carried to the full
  sample size by the Gaussian-theory ratio ``f(n)/f(n (K-1)/K)``, ``f(n) = (n-1)/(n-p-1)``,
  and never taken below 1. The map's 1-sigma is ``σ = u · sqrt(v)``.
* **common offset** — the spread of the held-out folds' mean ``α/u`` beyond what their
  size explains, floored at the closed form ``σ/sqrt(n)`` of a mean over ``n`` pixels:
  the 1-sigma ``offset_std`` (ppm·m) of an additive constant over the whole map.
* **spatial correlation** — the empirical covariogram of the background ``α/σ``
  (:func:`covariogram`) at lags of 1..``max_lag`` pixels along x and y; a separable
  exponential ``ρ(Δx, Δy) = exp(-|Δx|/ℓ - |Δy|/ℓ)`` fitted to the lag-1 correlation when
  it is significant (above ``2/sqrt(pairs)``), else ``ℓ = 0`` (independent pixels).
  The covariance of the map is then the Kronecker product ``σ² R_y ⊗ R_x``
  (:meth:`RetrievalErrorModel.noise_operator`, ``plumax_core.linalg.Kronecker``:
  never a dense ``n² `` matrix).
* **gain** — an injection test (the plume-injection method of detection-limit studies,
  e.g. Cusworth et al. 2019, AMT 12, 5655): the detected plume (or, without one, a
  compact test plume) is written into plume-free parts of the scene's own radiance
  through the Beer-Lambert transmission of the model, the retrieval is rerun, and the
  response ``Σ ΔX (α_inj - α) / Σ ΔX²`` is measured at ``n_injections`` positions. The
  root-mean-square of ``log`` response is ``gain_log_std``, the prior 1-sigma of a
  multiplicative gain nuisance (saturation, target and albedo-correction mismatch).

The inversion uses all four (``plumax.pipelines.invert`` on a retrieved map): ``σ`` and
the correlation in the likelihood, the offset and the gain as nuisance parameters
(``plumax_core.with_offset``, ``plumax_core.with_gain``) with these priors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, Float

from plumax_core import linalg

__all__ = [
    "RetrievalErrorModel",
    "covariogram",
    "cross_validated_errors",
    "estimate_error_model",
    "exponential_correlation",
    "injection_gains",
]

#: The global attributes / variables a column scene file stores the model under.
ERROR_MODEL_ATTRS = (
    "retrieval_variance_factor",
    "retrieval_offset_std",
    "retrieval_correlation_length",
    "retrieval_gain_log_std",
    "retrieval_gain_injections",
)


class RetrievalErrorModel(eqx.Module):
    """What a column map's errors are (ppm·m; estimated by :func:`estimate_error_model`).

    Attributes:
        sigma: ``(ny, nx)`` per-pixel 1-sigma of the map, out-of-sample, ppm·m.
        variance_factor: ``v``, the out-of-sample variance over the filter's own
            ``u²`` (>= 1). Static.
        offset_std: 1-sigma of an additive offset common to the whole map, ppm·m (>= 0).
            Static.
        correlation_length: ``ℓ`` of the separable exponential correlation, m (0 =
            independent pixels). Static.
        gain_log_std: prior 1-sigma of the log of a multiplicative gain (>= 0). Static.
        gain_injections: the measured injection responses (empty when not run). Static.
        covariogram: ``(max_lag + 1,)`` empirical correlation of the background at lags
            0..max_lag pixels (mean of the x and y directions). Static.
        pixel_size: pixel side, m. Static.

    Raises:
        ValueError: a non-positive or non-finite sigma, a variance factor below 1, or a
            negative offset, correlation length or gain std.
    """

    sigma: np.ndarray
    variance_factor: float = eqx.field(static=True)
    offset_std: float = eqx.field(static=True)
    correlation_length: float = eqx.field(static=True)
    gain_log_std: float = eqx.field(static=True)
    gain_injections: tuple[float, ...] = eqx.field(static=True)
    covariogram: tuple[float, ...] = eqx.field(static=True)
    pixel_size: float = eqx.field(static=True)

    def __check_init__(self):
        s = np.asarray(self.sigma)
        if s.ndim != 2 or not (np.all(np.isfinite(s)) and np.all(s > 0)):
            raise ValueError("`sigma` must be a (ny, nx) map of finite values > 0 (ppm m)")
        if not self.variance_factor >= 1.0:
            raise ValueError(f"`variance_factor` must be >= 1, got {self.variance_factor}")
        for name in ("offset_std", "correlation_length", "gain_log_std", "pixel_size"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"`{name}` must be finite and >= 0, got {v}")

    @property
    def correlated(self) -> bool:
        """True when neighbouring pixels' errors are correlated (``ℓ > 0``)."""
        return self.correlation_length > 0

    def correlation_factors(self) -> tuple[Float[Array, "ny ny"], Float[Array, "nx nx"]]:
        """``(R_y, R_x)``: the exponential correlation along each axis
        (:func:`exponential_correlation`; identities when ``ℓ = 0``)."""
        ny, nx = np.shape(self.sigma)
        return (
            exponential_correlation(ny, self.pixel_size, self.correlation_length),
            exponential_correlation(nx, self.pixel_size, self.correlation_length),
        )

    def noise_operator(self) -> lx.AbstractLinearOperator:
        """The map's error covariance over ``values.ravel()`` (row-major ``(y, x)``).

        ``diag(σ²)`` for independent pixels; with ``ℓ > 0``,
        ``Kronecker(σ² R_y, R_x)`` (``plumax_core.linalg.Kronecker``), which needs a
        uniform ``σ`` (the scene-wide filter's is).

        Raises:
            ValueError: correlated errors with a ``σ`` map that is not uniform.
        """
        s = np.asarray(self.sigma, np.float64)
        dtype = jnp.result_type(float)
        if not self.correlated:
            return lx.DiagonalLinearOperator(jnp.asarray(s.ravel() ** 2, dtype))
        if np.ptp(s) > 1e-6 * np.max(s):
            raise ValueError(
                "correlated retrieval errors need a uniform `sigma` (one matched filter for "
                "the whole scene); this map's sigma varies by pixel"
            )
        ry, rx = self.correlation_factors()
        tag = lx.positive_semidefinite_tag
        return linalg.Kronecker(
            lx.MatrixLinearOperator(jnp.asarray(s.flat[0] ** 2 * ry, dtype), tag),
            lx.MatrixLinearOperator(jnp.asarray(rx, dtype), tag),
        )

    def to_attrs(self) -> dict[str, Any]:
        """The scalar terms as file attributes (:data:`ERROR_MODEL_ATTRS`)."""
        return {
            "retrieval_variance_factor": float(self.variance_factor),
            "retrieval_offset_std": float(self.offset_std),
            "retrieval_correlation_length": float(self.correlation_length),
            "retrieval_gain_log_std": float(self.gain_log_std),
            "retrieval_gain_injections": np.asarray(self.gain_injections, np.float64),
        }

    @classmethod
    def from_attrs(cls, attrs, sigma, pixel_size: float) -> RetrievalErrorModel:
        """The model from :meth:`to_attrs`'s attributes and the file's ``sigma`` map.

        Raises:
            ValueError: a missing attribute (naming it) or an invalid value.
        """
        missing = [k for k in ERROR_MODEL_ATTRS[:4] if k not in attrs]
        if missing:
            raise ValueError(f"the retrieval error model is missing attribute(s) {missing}")
        inj = np.atleast_1d(np.asarray(attrs.get("retrieval_gain_injections", []), float))
        return cls(
            sigma=np.asarray(sigma, np.float64),
            variance_factor=float(attrs["retrieval_variance_factor"]),
            offset_std=float(attrs["retrieval_offset_std"]),
            correlation_length=float(attrs["retrieval_correlation_length"]),
            gain_log_std=float(attrs["retrieval_gain_log_std"]),
            gain_injections=tuple(float(g) for g in inj),
            covariogram=(),
            pixel_size=float(pixel_size),
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers: the scalar terms, the mean sigma and the covariogram."""
        return {
            "sigma_mean_ppm_m": float(np.mean(self.sigma)),
            "variance_factor": self.variance_factor,
            "offset_std_ppm_m": self.offset_std,
            "correlation_length_m": self.correlation_length,
            "gain_log_std": self.gain_log_std,
            "gain_injections": list(self.gain_injections),
            "covariogram": list(self.covariogram),
        }


def exponential_correlation(n: int, spacing: float, length: float) -> np.ndarray:
    """``(n, n)`` correlation ``exp(-|i - j| spacing / length)`` of a regular axis
    (the identity for ``length = 0``); an AR(1) Toeplitz matrix, positive definite."""
    if length <= 0:
        return np.eye(n)
    lag = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    return np.exp(-lag * spacing / length)


def covariogram(
    z: Float[Array, "ny nx"], use: np.ndarray, max_lag: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Empirical correlation of a standardised map at pixel lags ``0..max_lag``.

    For each lag ``h`` and each axis, the mean of ``z_i z_j`` over pairs of ``use``
    pixels ``h`` apart along that axis, over the mean ``z²``; the two axes averaged.

    Args:
        z: ``(ny, nx)`` centred, standardised residuals (e.g. ``α/σ`` off the plume).
        use: ``(ny, nx)`` bool, the pixels to use.
        max_lag: the largest lag, pixels (>= 1).

    Returns:
        ``(rho, pairs)``: ``(max_lag + 1,)`` correlations (``rho[0] = 1``) and the number
        of pixel pairs behind each.

    Raises:
        ValueError: mismatched shapes, ``max_lag < 1`` or fewer than 2 usable pixels.
    """
    zz = np.asarray(z, np.float64)
    u = np.asarray(use, bool)
    if zz.shape != u.shape or zz.ndim != 2:
        raise ValueError(f"`z` and `use` must be (ny, nx) of one shape, got {zz.shape}, {u.shape}")
    if isinstance(max_lag, bool) or not isinstance(max_lag, int) or max_lag < 1:
        raise ValueError(f"`max_lag` must be an int >= 1, got {max_lag!r}")
    if int(u.sum()) < 2:
        raise ValueError("`use` must hold at least 2 pixels")
    zz = np.where(u, zz - zz[u].mean(), 0.0)
    var = float(np.sum(zz**2) / u.sum())
    rho, pairs = [1.0], [int(u.sum())]
    for h in range(1, max_lag + 1):
        num = np.sum(zz[:, h:] * zz[:, :-h]) + np.sum(zz[h:, :] * zz[:-h, :])
        cnt = int(np.sum(u[:, h:] & u[:, :-h]) + np.sum(u[h:, :] & u[:-h, :]))
        rho.append(float(num / cnt / var) if cnt else 0.0)
        pairs.append(cnt)
    return np.asarray(rho), np.asarray(pairs)


def _sample_loss(n: int, p: int) -> float:
    """Gaussian-theory out-of-sample variance growth ``(n-1)/(n-p-1)`` (inf if n <= p+1)."""
    return (n - 1) / (n - p - 1) if n > p + 1 else math.inf


def cross_validated_errors(
    alpha_fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    background: np.ndarray,
    n_bands: int,
    *,
    folds: int = 5,
    seed: int = 0,
) -> tuple[float, float]:
    """Out-of-sample variance factor and offset of a filter, by ``folds``-fold CV.

    Args:
        alpha_fn: ``exclude -> (alpha, u)``: the filter's ``(ny, nx)`` output and
            1-sigma with its statistics fitted on all ``background`` pixels outside
            ``exclude``.
        background: ``(ny, nx)`` bool, the background pixels.
        n_bands: ``p``, the number of bands.
        folds: ``K`` (>= 2).
        seed: the random split (``numpy.random.default_rng(seed)``).

    Returns:
        ``(v, offset_std_over_sigma)``: the variance factor at the full sample size
        (>= 1) and the 1-sigma of the common offset in units of ``σ = u sqrt(v)``.

    Raises:
        ValueError: ``folds < 2`` or too few background pixels for the folds.
    """
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"`folds` must be an int >= 2, got {folds!r}")
    idx = np.flatnonzero(np.asarray(background, bool).ravel())
    n = idx.size
    n_train = n - -(-n // folds)
    if not math.isfinite(_sample_loss(n_train, n_bands)):
        raise ValueError(
            f"cross-validation needs more than {n_bands + 1} training pixels per fold; "
            f"{n} background pixels in {folds} folds leave {n_train}"
        )
    parts = np.array_split(np.random.default_rng(seed).permutation(idx), folds)
    sq, means, sizes = [], [], []
    shape = np.shape(background)
    for part in parts:
        held = np.zeros(int(np.prod(shape)), bool)
        held[part] = True
        held = held.reshape(shape)
        alpha, u = alpha_fn(held)
        z = (np.asarray(alpha, np.float64) / np.asarray(u, np.float64))[held]
        z = z[np.isfinite(z)]
        sq.append(z**2)
        means.append(z.mean())
        sizes.append(z.size)
    v_cv = float(np.mean(np.concatenate(sq)))
    v = max(1.0, v_cv * _sample_loss(n, n_bands) / _sample_loss(n_train, n_bands))
    # the fold means scatter by sqrt(v_cv / size) from noise alone; the rest is offset
    excess = float(np.var(means, ddof=1) - v_cv / np.mean(sizes))
    offset = max(math.sqrt(max(excess, 0.0) / v_cv), 1.0 / math.sqrt(n))
    return v, offset


def injection_gains(
    retrieve_fn: Callable[[np.ndarray], np.ndarray],
    radiance: Float[Array, "ny nx m"],
    transmission: Callable[[np.ndarray], np.ndarray],
    template: np.ndarray,
    avoid: np.ndarray,
    base: np.ndarray,
    *,
    n: int = 8,
    seed: int = 0,
) -> np.ndarray:
    """The retrieval's response to a known plume written into the scene, at ``n`` places.

    The ``template`` enhancement (ppm·m) is shifted (circularly) to positions whose
    footprint misses ``avoid``, multiplied into the radiance through
    ``transmission(ΔX) -> (..., m)`` (the Beer-Lambert band transmission relative to no
    enhancement), and retrieved again with ``retrieve_fn``; the response at a position is
    ``Σ ΔX (α_inj - base) / Σ ΔX²`` over the footprint.

    Returns:
        ``(k,)`` responses, ``k <= n`` (fewer when fewer positions fit).

    Raises:
        ValueError: an empty template or ``n < 1``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"`n` must be an int >= 1, got {n!r}")
    tmpl = np.clip(np.nan_to_num(np.asarray(template, np.float64)), 0.0, None)
    foot = tmpl > 0
    if not foot.any():
        raise ValueError("`template` has no positive enhancement to inject")
    ny, nx = tmpl.shape
    avoid = np.asarray(avoid, bool)
    shifts = [
        (dy, dx)
        for dy in range(ny)
        for dx in range(nx)
        if (dy, dx) != (0, 0) and not np.any(np.roll(foot, (dy, dx), (0, 1)) & avoid)
    ]
    order = np.random.default_rng(seed).permutation(len(shifts))[:n]
    rad = np.asarray(radiance, np.float64)
    out = []
    for i in order:
        inj = np.roll(tmpl, shifts[i], (0, 1))
        m = inj > 0
        e = np.asarray(retrieve_fn(rad * transmission(inj)), np.float64)
        d = e[m] - np.asarray(base, np.float64)[m]
        ok = np.isfinite(d)
        out.append(float(np.sum(d[ok] * inj[m][ok]) / np.sum(inj[m][ok] ** 2)))
    return np.asarray(out)


def estimate_error_model(
    *,
    alpha_fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    retrieve_fn: Callable[[np.ndarray], np.ndarray] | None,
    radiance: np.ndarray,
    transmission: Callable[[np.ndarray], np.ndarray] | None,
    alpha: np.ndarray,
    uncertainty: np.ndarray,
    enhancement: np.ndarray,
    background: np.ndarray,
    exclusion: np.ndarray,
    template: np.ndarray,
    n_bands: int,
    pixel_size: float,
    folds: int = 5,
    max_lag: int = 3,
    n_injections: int = 8,
    seed: int = 0,
) -> RetrievalErrorModel:
    """Measure the four terms of the module docstring on one scene.

    Args:
        alpha_fn: ``exclude -> (alpha, u)``, the filter refitted without ``exclude``
            (and without the scene's own exclusion) — for the cross-validation.
        retrieve_fn: ``radiance -> enhancement``, the whole retrieval rerun (two passes
            and desaturation) — for the injections; None skips them (gain std 0).
        radiance: ``(ny, nx, m)`` the scene's radiance.
        transmission: ``ΔX -> (..., m)`` band transmission (see :func:`injection_gains`).
        alpha, uncertainty: ``(ny, nx)`` the filter's output and 1-sigma ``u``.
        enhancement: ``(ny, nx)`` the retrieved (desaturated) map.
        background: ``(ny, nx)`` bool, valid pixels outside the exclusion.
        exclusion: ``(ny, nx)`` bool, the pixels kept out of the statistics.
        template: ``(ny, nx)`` the enhancement to inject (ppm·m, 0 off the plume).
        n_bands: the number of bands ``p``.
        pixel_size: m.
        folds, max_lag, n_injections, seed: see :func:`cross_validated_errors`,
            :func:`covariogram`, :func:`injection_gains`.
    """
    v, off = cross_validated_errors(alpha_fn, background, n_bands, folds=folds, seed=seed)
    sigma = np.asarray(uncertainty, np.float64) * math.sqrt(v)
    z = np.asarray(alpha, np.float64) / sigma
    rho, pairs = covariogram(np.where(background, z, 0.0), background, max_lag)
    length = 0.0
    if rho[1] > 2.0 / math.sqrt(max(pairs[1], 1)) and rho[1] < 1.0:
        length = float(pixel_size / -math.log(rho[1]))
    gains: np.ndarray = np.zeros(0)
    if retrieve_fn is not None and transmission is not None and n_injections > 0:
        gains = injection_gains(
            retrieve_fn,
            radiance,
            transmission,
            template,
            exclusion,
            enhancement,
            n=n_injections,
            seed=seed,
        )
    ok = gains[gains > 0]
    gain_std = float(np.sqrt(np.mean(np.log(ok) ** 2))) if ok.size else 0.0
    return RetrievalErrorModel(
        sigma=sigma,
        variance_factor=float(v),
        offset_std=float(off * float(np.mean(sigma))),
        correlation_length=length,
        gain_log_std=gain_std,
        gain_injections=tuple(float(g) for g in gains),
        covariogram=tuple(float(r) for r in rho),
        pixel_size=float(pixel_size),
    )
