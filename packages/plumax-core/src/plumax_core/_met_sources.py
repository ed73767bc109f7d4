"""Wind-uncertainty priors by met source: how far a model wind may be from the truth.

:func:`default_wind_uncertainty` gives the 1-sigma of ``ln(wind speed)`` and of the
wind direction (degrees) that a wind nuisance prior (``with_uncertain_wind``) should
start from, keyed on :attr:`plumax_core.MetField.source`.

Basis and what is and is not confirmed:

* Varon et al. (2018), "Quantifying methane point sources from fine-scale satellite
  observations of atmospheric methane plumes", *Atmos. Meas. Tech.* 11, 5673-5686,
  https://doi.org/10.5194/amt-11-5673-2018: the source-rate errors they quote hold with
  *local* 10 m wind measurements, and "additional error applies if local wind speed
  measurements are not available" (abstract, confirmed). The 50 % wind-speed error
  widely attributed to reanalysis (GEOS-FP) 10 m winds in that line of work could NOT be
  confirmed from the text available here.
* Molina, Gutiérrez & Sánchez (2021), "Comparison of ERA5 surface wind speed
  climatologies over Europe with observations from the HadISD dataset", *Int. J.
  Climatol.* 41, 4864-4878: ERA5 hourly 10 m winds reproduce station distributions but
  with larger centred RMSE at hourly than at 6-24 h scales (abstract, confirmed); no
  single sigma is taken from it.
* GCOS upper-air wind requirement, 2 m/s and 20 degrees
  (https://www.ncdc.noaa.gov/gosic/gcos-essential-climate-variable-ecv-data-access-matrix/
  gcos-atmosphere-upper-air-ecv-wind-speed-and-direction, confirmed): a requirement,
  used only as a scale for the direction error of a kilometre-scale model.

The numbers below are therefore *engineering defaults* chosen from that context, not
published fits: ERA5 ``sigma_ln_speed = ln 1.5`` (a 1-sigma factor of 1.5 on the speed,
the "50 %" figure read multiplicatively) and 30 degrees in direction (a 31 km grid
misses local channelling and timing); WRF at kilometre scale ``ln 1.3`` and 20 degrees.
User-given (measured) met: ``(0, 0)``. Override them wherever a site has station data.
"""

from __future__ import annotations

import math

__all__ = ["WIND_UNCERTAINTY", "default_wind_uncertainty"]

#: ``source prefix -> (sigma of ln wind speed, sigma of wind direction in degrees)``.
WIND_UNCERTAINTY: dict[str, tuple[float, float]] = {
    "ERA5": (math.log(1.5), 30.0),
    "WRF": (math.log(1.3), 20.0),
    "user": (0.0, 0.0),
}


def default_wind_uncertainty(source: str) -> tuple[float, float]:
    """1-sigma of ``ln(wind speed)`` and of wind direction (degrees) for a met source.

    ``source`` is matched on its first word, case-insensitively, so a
    :attr:`MetField.source` such as ``"ERA5 single levels era5.nc"`` works: ``"ERA5"``
    -> ``(ln 1.5, 30)``, ``"WRF"`` -> ``(ln 1.3, 20)``, ``"user"`` (met given by the
    user, e.g. measured on site) -> ``(0, 0)``. See the module docstring for the basis
    of these defaults and what could not be confirmed.

    Raises:
        ValueError: an unknown source, naming the known ones.
    """
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"`source` must be a non-empty string, got {source!r}")
    head = source.strip().split()[0].upper()
    for key, value in WIND_UNCERTAINTY.items():
        if head == key.upper():
            return value
    raise ValueError(
        f"`source` {source!r} has no default wind uncertainty; known sources: "
        f"{sorted(WIND_UNCERTAINTY)} (matched on the first word)"
    )
