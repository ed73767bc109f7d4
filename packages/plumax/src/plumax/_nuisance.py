"""The nuisance parameters of an inversion of a retrieved map (composition only).

What the data's error model and the met source say is uncertain becomes parameters of
the forward model, each with a zero-mean Gaussian prior of a stated 1-sigma (the
libraries' combinators; no numerics here):

* ``wind_dir_offset`` (degrees) and ``log_wind_scale`` —
  ``plumax_core.with_uncertain_wind``, priors from the met source
  (``met_wind_direction_std`` degrees, ``met_wind_speed_log_std``);
* ``log_gain`` — ``plumax_core.with_gain``, prior from the retrieval's injection test
  (``plumax_rtm.RetrievalErrorModel.gain_log_std``);
* ``offset`` (ppm m) — ``plumax_core.with_offset``, prior from the retrieval's
  cross-validation (``RetrievalErrorModel.offset_std``).

A term whose 1-sigma is 0 is left out (known exactly).
"""

import math
from typing import Any

from plumax_core import AbstractForwardModel, with_gain, with_offset, with_uncertain_wind

__all__ = [
    "START_ATTRS",
    "WIND_ATTRS",
    "add_nuisances",
    "map_starts",
    "read_starts",
    "read_wind_uncertainty",
]

#: Scene attributes of the met source's wind uncertainty (1-sigma).
WIND_ATTRS = {"met_wind_speed_log_std": "1", "met_wind_direction_std": "degree"}


def _check_std(name: str, value: float) -> float:
    v = float(value)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"`{name}` must be finite and >= 0, got {value!r}")
    return v


def add_nuisances(
    model: AbstractForwardModel,
    *,
    error_model: Any = None,
    wind_speed_log_std: float = 0.0,
    wind_direction_std: float = 0.0,
) -> tuple[AbstractForwardModel, dict[str, float]]:
    """``(model with the nuisance parameters, {name: prior 1-sigma})``.

    Args:
        model: the transport model (e.g. ``pin(plume, H=5.0)``).
        error_model: a ``plumax_rtm.RetrievalErrorModel`` (gain and offset), or None.
        wind_speed_log_std: 1-sigma of the log of the wind speed (0.2 is about 20 %).
        wind_direction_std: 1-sigma of the wind direction, degrees.

    Raises:
        ValueError: a negative or non-finite standard deviation, naming it.
    """
    stds: dict[str, float] = {}
    ws = _check_std("wind_speed_log_std", wind_speed_log_std)
    wd = _check_std("wind_direction_std", wind_direction_std)
    if ws > 0 or wd > 0:
        model = with_uncertain_wind(model)
        # a zero term stays in the spec: a tiny prior pins it (both come as one wrapper)
        stds["log_wind_scale"] = ws if ws > 0 else 1e-6
        stds["wind_dir_offset"] = wd if wd > 0 else 1e-6
    if error_model is not None:
        if error_model.gain_log_std > 0:
            model = with_gain(model)
            stds["log_gain"] = float(error_model.gain_log_std)
        if error_model.offset_std > 0:
            model = with_offset(model, units="ppm m")
            stds["offset"] = float(error_model.offset_std)
    return model, stds


def read_wind_uncertainty(attrs) -> tuple[float, float]:
    """``(wind_speed_log_std, wind_direction_std)`` from a scene's attributes (0 when
    absent: the met is taken as exact).

    Raises:
        ValueError: a negative or non-finite value, naming the attribute.
    """
    return tuple(_check_std(k, attrs.get(k, 0.0)) for k in WIND_ATTRS)  # type: ignore[return-value]


#: Scene attributes of a retrieved map's MAP starts: the most upwind plume pixel's
#: centre (m), the pixel size (m) and the IME quick-look flux (kg/s; absent without one).
START_ATTRS = ("retrieval_source_x", "retrieval_source_y", "pixel_size", "retrieval_ime_kg_s")


#: Spacing, m, of the 3 x 3 grid of starts around the origin (one prior standard deviation
#: of the default position prior): a faint plume's posterior may have modes far from
#: the detected pixel (a noise feature can be the most upwind detection).
PRIOR_GRID = 100.0


def map_starts(
    source: tuple[float, float] | None, pixel: float, q_kg_s: float | None
) -> list[dict[str, float]]:
    """Starts for the MAP search of a retrieved map (model units): ``x0``, ``y0`` on a
    3 x 3 grid inside the most upwind plume pixel ``source`` (its centre and a third of
    a pixel either side: a narrow plume's likelihood is rugged at the sub-pixel scale),
    when there is one, and on a 3 x 7 grid around the origin (``x0`` every
    :data:`PRIOR_GRID`, ``y0`` every third of it: a faint plume's posterior has modes
    away from any detection); ``Q`` the quick-look flux (kg/s) when there is one."""
    q = {"Q": float(q_kg_s)} if q_kg_s is not None and q_kg_s > 0 else {}
    near = []
    if source is not None:
        x, y = source
        d = pixel / 3.0
        near = [{**q, "x0": x + i * d, "y0": y + j * d} for i in (-1, 0, 1) for j in (-1, 0, 1)]
    wide = [
        {**q, "x0": i * PRIOR_GRID, "y0": j * PRIOR_GRID / 3}
        for i in (-1, 0, 1)
        for j in (-3, -2, -1, 0, 1, 2, 3)
    ]
    return near + wide


def read_starts(attrs) -> list[dict[str, float]]:
    """:func:`map_starts` from a retrieval's attributes (:data:`START_ATTRS`; the source
    and IME entries are absent when no plume was detected)."""
    source = None
    if "retrieval_source_x" in attrs:
        source = (float(attrs["retrieval_source_x"]), float(attrs["retrieval_source_y"]))
    q = attrs.get("retrieval_ime_kg_s")
    return map_starts(source, float(attrs["pixel_size"]), None if q is None else float(q))
