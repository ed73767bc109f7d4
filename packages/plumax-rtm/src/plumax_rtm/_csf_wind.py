r"""Cross-sectional flux for any wind direction, and the most upwind plume pixel.

The cross-sectional flux method (Varon et al. 2018, AMT 11, 5673, eq. 5; Krings et al.
2011) integrates the enhancement along transects *perpendicular to the wind*, at
several distances downwind of the source:

$$
Q = U \int \Delta\Omega \, \mathrm{d}n ,
$$

averaged over the transects. Nothing in the method ties the wind to an image axis;
:func:`~plumax_rtm.csf_flux` takes the wind along ``+x`` (or ``+y``), so here the image
is first brought into the *wind frame* (columns downwind, rows crosswind) and then
handed to it:

* a wind from a cardinal direction (within :data:`CARDINAL_TOLERANCE_DEG`) is an exact
  flip/transpose of the pixel grid (no resampling: a westerly wind, 270°, leaves the
  image as it is);
* any other direction samples the image bilinearly
  (``scipy.ndimage.map_coordinates``, order 1, 0 outside the image) on the wind-frame
  grid through the source pixel, with the pixel size as step. The noise image is
  resampled the same way and its samples are treated as independent (an approximation:
  neighbouring bilinear samples share pixels).

Image convention: ``image[iy, ix]`` with ``y`` (north) and ``x`` (east) pixel
coordinates ascending, as for :class:`plumax_core.Observations` on dims ``("y", "x")``.
Wind directions are meteorological (the direction the wind blows *from*, degrees): the
wind blows towards ``(-sin d, -cos d)`` in ``(x, y)``.
"""

from __future__ import annotations

import math

import numpy as np

from ._flux import FluxEstimate, csf_flux

__all__ = [
    "CARDINAL_TOLERANCE_DEG",
    "csf_flux_downwind",
    "downwind_unit",
    "most_upwind_pixel",
]

#: Wind directions within this many degrees of 0, 90, 180 or 270 are treated as exactly
#: cardinal (a float32 wind from 270° comes back from ``(u, v)`` as 270 ± 3e-5°).
CARDINAL_TOLERANCE_DEG = 1e-3

# (row, column) step of the downwind unit vector for winds from N, E, S, W
_CARDINAL = {0: (-1.0, 0.0), 90: (0.0, -1.0), 180: (1.0, 0.0), 270: (0.0, 1.0)}


def _cardinal(wind_direction: float) -> int | None:
    d = float(wind_direction) % 360.0
    for c in (0, 90, 180, 270, 360):
        if abs(d - c) <= CARDINAL_TOLERANCE_DEG:
            return c % 360
    return None


def _check_direction(wind_direction) -> float:
    try:
        d = float(wind_direction)
    except (TypeError, ValueError):
        raise ValueError(
            f"`wind_direction` must be a number (degrees, from), got {wind_direction!r}"
        ) from None
    if not math.isfinite(d):
        raise ValueError(f"`wind_direction` must be finite (degrees, from), got {d}")
    return d


def downwind_unit(wind_direction: float) -> tuple[float, float]:
    """The unit vector the wind blows towards, as ``(row, column)`` pixel steps.

    ``(-cos d, -sin d)`` for a meteorological direction ``d`` (degrees, from) on an image
    whose rows are ``y`` (north) and columns ``x`` (east), both ascending; exactly
    ``(0, 1)`` for a westerly wind (270°) and likewise for the other cardinal directions
    (within :data:`CARDINAL_TOLERANCE_DEG`).

    Raises:
        ValueError: a ``wind_direction`` that is not a finite number.
    """
    d = _check_direction(wind_direction)
    c = _cardinal(d)
    if c is not None:
        return _CARDINAL[c]
    r = math.radians(d)
    return (-math.cos(r), -math.sin(r))


def most_upwind_pixel(mask, wind_direction: float) -> tuple[int, int] | None:
    """The ``(iy, ix)`` of the pixel of ``mask`` farthest upwind (None if ``mask`` is empty).

    The pixel minimising the projection on :func:`downwind_unit`; ties go to the first
    in row-major order (for a westerly wind: the leftmost column, lowest row first).

    Raises:
        ValueError: a ``mask`` that is not 2-D, or a bad ``wind_direction``.
    """
    m = np.asarray(mask, bool)
    if m.ndim != 2:
        raise ValueError(f"`mask` must be (ny, nx), got shape {m.shape}")
    ur, uc = downwind_unit(wind_direction)
    if not m.any():
        return None
    iy, ix = np.nonzero(m)
    j = int(np.argmin(iy * ur + ix * uc))
    return int(iy[j]), int(ix[j])


def _exact_wind_frame(a: np.ndarray, src: tuple[int, int], c: int):
    """Flip/transpose so a cardinal wind blows along +column; the source follows."""
    ny, nx = a.shape
    r, k = src
    if c == 270:
        return a, (r, k)
    if c == 90:
        return a[:, ::-1], (r, nx - 1 - k)
    if c == 180:
        return a.T, (k, r)
    return a[::-1, :].T, (k, ny - 1 - r)  # from the north: towards -row


class _Frame:
    """Sample points of the wind-frame grid through the source (non-cardinal wind)."""

    def __init__(self, shape: tuple[int, int], src: tuple[int, int], d: float, halfwidth: int):
        ny, nx = shape
        ur, uc = downwind_unit(d)
        nr, nc = -uc, ur  # crosswind unit, perpendicular to (ur, uc)
        corners = np.array([[0, 0], [0, nx - 1], [ny - 1, 0], [ny - 1, nx - 1]], float)
        along = (corners[:, 0] - src[0]) * ur + (corners[:, 1] - src[1]) * uc
        n_along = int(np.floor(max(along.max(), 0.0))) + 1
        s = np.arange(n_along, dtype=float)[None, :]
        t = np.arange(-halfwidth, halfwidth + 1, dtype=float)[:, None]
        self.rows = src[0] + s * ur + t * nr
        self.cols = src[1] + s * uc + t * nc
        tol = 1e-9
        self.inside = (
            (self.rows >= -tol)
            & (self.rows <= ny - 1 + tol)
            & (self.cols >= -tol)
            & (self.cols <= nx - 1 + tol)
        )
        self.source = (halfwidth, 0)

    def sample(self, a: np.ndarray) -> np.ndarray:
        from scipy import ndimage

        return ndimage.map_coordinates(
            np.asarray(a, float), [self.rows, self.cols], order=1, mode="constant", cval=0.0
        )


def csf_flux_downwind(
    enhancement,
    pixel_size: float,
    wind_speed: float,
    wind_direction: float,
    source_pixel: tuple[int, int],
    *,
    first_px: int = 3,
    spacing_px: int = 3,
    max_transects: int = 6,
    halfwidth_px: int | None = None,
    wind_std: float = 1.0,
    enhancement_std=None,
) -> FluxEstimate | None:
    """Cross-sectional-flux source rate (kg/s) for a wind from any direction.

    Transects perpendicular to the wind at ``first_px, first_px + spacing_px, ...``
    pixels downwind of ``source_pixel``, as long as the transect's centre lies inside
    the image, at most ``max_transects`` of them, each integrated over
    ``±halfwidth_px`` pixels across the wind (samples outside the image count as 0);
    then :func:`~plumax_rtm.csf_flux` in the wind frame (see the module docstring).

    Args:
        enhancement: ``(ny, nx)`` column enhancement, ppm·m (NaN counts as 0).
        pixel_size: pixel side, m (square pixels).
        wind_speed: wind speed used for the flux, m/s (> 0).
        wind_direction: meteorological wind direction (from), degrees.
        source_pixel: ``(iy, ix)`` of the source, e.g. :func:`most_upwind_pixel` of the
            plume mask.
        first_px: distance of the first transect, pixels (>= 1).
        spacing_px: distance between transects, pixels (>= 1).
        max_transects: at most this many transects (>= 2).
        halfwidth_px: half-width of each transect, pixels; default
            ``max(2, n_cross // 3)`` with ``n_cross`` the image's crosswind extent in
            pixels (``ny`` for a westerly wind).
        wind_std: 1-sigma error of ``wind_speed``, m/s.
        enhancement_std: per-pixel 1-sigma of ``enhancement`` (ppm·m, scalar or image),
            or None.

    Returns:
        The :class:`~plumax_rtm.FluxEstimate` (method ``"CSF"``), or None when fewer
        than 2 transects fit inside the image downwind of the source.

    Raises:
        ValueError: a non-2-D ``enhancement``, a source pixel outside it, a bad wind
            (speed not finite and > 0, direction not finite), or bad transect settings;
            each naming the argument.
    """
    e = np.asarray(enhancement, float)
    if e.ndim != 2:
        raise ValueError(f"`enhancement` must be (ny, nx), got shape {e.shape}")
    ny, nx = e.shape
    src = (int(source_pixel[0]), int(source_pixel[1]))
    if not (0 <= src[0] < ny and 0 <= src[1] < nx):
        raise ValueError(f"`source_pixel` {src} lies outside the ({ny}, {nx}) image")
    if not (math.isfinite(wind_speed) and wind_speed > 0):
        raise ValueError(f"`wind_speed` must be finite and > 0 m/s, got {wind_speed}")
    for name, v, low in (("first_px", first_px, 1), ("spacing_px", spacing_px, 1)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < low:
            raise ValueError(f"`{name}` must be an int >= {low}, got {v!r}")
    if isinstance(max_transects, bool) or not isinstance(max_transects, int) or max_transects < 2:
        raise ValueError(f"`max_transects` must be an int >= 2, got {max_transects!r}")
    d = _check_direction(wind_direction)
    c = _cardinal(d)
    ur, uc = downwind_unit(d)
    if halfwidth_px is None:
        n_cross = int(round(abs(uc) * ny + abs(ur) * nx))
        halfwidth_px = max(2, n_cross // 3)
    std = None
    if enhancement_std is not None:
        std = np.broadcast_to(np.asarray(enhancement_std, float), e.shape)
    if c is not None:
        frame, src_f = _exact_wind_frame(e, src, c)
        std_f = None if std is None else _exact_wind_frame(std, src, c)[0]
        n_along = frame.shape[1]
        dists = [k for k in range(first_px, n_along, spacing_px) if src_f[1] + k < n_along]
    else:
        grid = _Frame(e.shape, src, d, int(halfwidth_px))
        frame, src_f = grid.sample(np.nan_to_num(e)), grid.source
        std_f = None if std is None else grid.sample(std)
        n_along = frame.shape[1]
        dists = [k for k in range(first_px, n_along, spacing_px) if grid.inside[src_f[0], k]]
    if len(dists) < 2:
        return None
    return csf_flux(
        frame,
        pixel_size,
        wind_speed,
        src_f,
        distances_px=tuple(dists[:max_transects]),
        halfwidth_px=int(halfwidth_px),
        wind_std=wind_std,
        enhancement_std=std_f,
    )
