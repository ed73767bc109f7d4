"""Pasquill stability class from routine observations or from the Obukhov length.

Two independent routes to the class index 0-5 (A-F) used by the dispersion curves:

* :func:`pasquill_class` — Pasquill's (1961) key of surface (10 m) wind speed against
  daytime insolation or night-time cloud cover, in the form tabulated by Turner (1970),
  *Workbook of Atmospheric Dispersion Estimates*, Table 1 (the table Turner (1964)
  objectified with the net radiation index)::

      wind (m/s)   day: strong  moderate  slight    night: >=4/8 cloud  <=3/8 cloud
      < 2               A       A-B       B                (F)*          (F)*
      2 - 3             A-B     B         C                E             F
      3 - 5             B       B-C       C                D             E
      5 - 6             C       C-D       D                D             D
      > 6               C       D         D                D             D

  Overcast conditions (day or night) are neutral, D. *Pasquill leaves night-time winds
  below 2 m/s blank; we return F, the most stable class the curves cover, and say so.
  Intermediate classes ("A-B") resolve to the more unstable letter by default
  (``intermediate="unstable"``) or the more stable one.

* :func:`pasquill_class_from_obukhov` — Golder's (1972) nomogram relating the class to
  the Obukhov length L and roughness length z0, in the straight-line form
  ``1/L = a + b log10(z0)`` fitted by Myrup & Ranzieri (1976) and tabulated in Seinfeld &
  Pandis (2006), *Atmospheric Chemistry and Physics*, 2nd ed., chapter 16::

      class    a        b
      A      -0.096    0.029
      B      -0.037    0.029
      C      -0.002    0.018
      D       0.0      0.0
      E       0.004   -0.018
      F       0.035   -0.036

  The class is the one whose line is nearest to the observed ``1/L`` (boundaries midway
  between adjacent lines). The fit is used for ``1e-3 m <= z0 <= 1 m``, where the lines
  are ordered A < B < ... < F; outside that range we raise rather than extrapolate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from plumax_core import STABILITY_CLASSES, stability_index
from plumax_core.validation import check_wind_speed, error_if

_INSOLATION = ("strong", "moderate", "slight")
# rows: wind < 2, 2-3, 3-5, 5-6, > 6 m/s.  Columns: strong, moderate, slight,
# night >= 4/8 cloud, night <= 3/8 cloud.  "A-B" = intermediate.
_PASQUILL_TABLE = (
    ("A", "A-B", "B", "F", "F"),
    ("A-B", "B", "C", "E", "F"),
    ("B", "B-C", "C", "D", "E"),
    ("C", "C-D", "D", "D", "D"),
    ("C", "D", "D", "D", "D"),
)
_WIND_EDGES = (2.0, 3.0, 5.0, 6.0)  # m/s, lower edge of rows 1..4 (inclusive)

# Golder (1972) / Myrup & Ranzieri (1976): 1/L = a + b log10(z0), 1/m.
GOLDER_COEFFICIENTS: tuple[tuple[float, float], ...] = (
    (-0.096, 0.029),
    (-0.037, 0.029),
    (-0.002, 0.018),
    (0.0, 0.0),
    (0.004, -0.018),
    (0.035, -0.036),
)


def pasquill_class(
    wind_speed: float,
    *,
    daytime: bool,
    insolation: str | None = None,
    cloud_cover: float | None = None,
    intermediate: str = "unstable",
) -> str:
    """Pasquill class letter from 10 m wind speed and insolation / night cloud cover.

    ``wind_speed`` follows core's one wind-speed rule
    (:func:`plumax_core.validation.check_wind_speed`) with its floor lowered to 0: this
    is a *measured* surface wind being classified, not a wind fed to a plume model, and
    Pasquill's first row ("< 2 m/s") includes light and calm winds (calm and sunny is
    class A, the most unstable), so values in [0, 0.5) m/s are meaningful here. NaN,
    inf, negative speeds and speeds above ``MAX_WIND_SPEED`` (120 m/s) raise as
    everywhere else. A plume model given the resulting class still refuses a wind below
    its own 0.5 m/s floor.

    Args:
        wind_speed: surface (10 m) wind speed, m/s, finite, in [0, 120]; a concrete
            value (this is a table lookup returning a letter, not a traceable
            function).
        daytime: True between sunrise and sunset.
        insolation: by day, ``"strong"``, ``"moderate"``, ``"slight"`` or
            ``"overcast"`` (overcast gives D).
        cloud_cover: by night, the cloud fraction in [0, 1]; >= 4/8 uses the "thinly
            overcast or >= 4/8 low cloud" column, < 4/8 the clear column, 1 (8/8) is
            overcast and gives D.
        intermediate: ``"unstable"`` or ``"stable"``: which letter of an intermediate
            class such as "A-B" to return.

    Returns:
        One of ``"A".."F"``.

    Raises:
        ValueError: for a wind speed outside the rule above (or traced), an unknown
            insolation, a missing or out-of-range cloud cover, or an unknown
            ``intermediate``.
    """
    if isinstance(wind_speed, jax.core.Tracer):
        raise ValueError(
            "`wind_speed` must be a concrete number: pasquill_class is a table lookup that "
            "returns a letter and cannot run under jax.jit/vmap/grad"
        )
    if np.ndim(wind_speed) != 0:
        raise ValueError(f"`wind_speed` must be a single value in m/s, got {wind_speed!r}")
    check_wind_speed("wind_speed", wind_speed, minimum=0.0)
    u = float(wind_speed)
    if intermediate not in ("unstable", "stable"):
        raise ValueError(f"`intermediate` must be 'unstable' or 'stable', got {intermediate!r}")
    row = int(np.searchsorted(np.asarray(_WIND_EDGES), u, side="right"))
    if daytime:
        if insolation == "overcast":
            return "D"
        if insolation not in _INSOLATION:
            raise ValueError(
                f"`insolation` must be one of {_INSOLATION + ('overcast',)} by day, "
                f"got {insolation!r}"
            )
        col = _INSOLATION.index(insolation)
    else:
        if cloud_cover is None:
            raise ValueError("`cloud_cover` (fraction 0-1) is required at night")
        cc = float(cloud_cover)
        if not 0.0 <= cc <= 1.0:
            raise ValueError(f"`cloud_cover` must be a fraction in [0, 1], got {cloud_cover!r}")
        if cc >= 1.0:
            return "D"
        col = 3 if cc >= 0.5 else 4
    entry = _PASQUILL_TABLE[row][col]
    if "-" in entry:
        first, second = entry.split("-")
        return first if intermediate == "unstable" else second
    return entry


def golder_inverse_obukhov(
    z0: Float[ArrayLike, "..."],
) -> Float[Array, "... 6"]:
    """``1/L`` (1/m) at the centre of each class A-F for roughness ``z0`` (m), Golder (1972)."""
    coef = np.asarray(GOLDER_COEFFICIENTS)
    lz = jnp.log10(jnp.asarray(z0))[..., None]
    return jnp.asarray(coef[:, 0]) + jnp.asarray(coef[:, 1]) * lz


def pasquill_class_from_obukhov(
    obukhov_length: Float[ArrayLike, "..."],
    z0: Float[ArrayLike, "..."] = 0.1,
) -> Int[Array, "..."]:
    """Pasquill class index 0-5 from the Obukhov length (m) and roughness length (m).

    ``L = ±inf`` is neutral (D). Works on traced arrays (jit/vmap); concrete inputs are
    checked eagerly, traced ones at run time (:func:`plumax_core.validation.error_if`).

    Raises:
        ValueError: for NaN or zero ``obukhov_length`` or ``z0`` outside [1e-3, 1] m.
    """
    L = jnp.asarray(obukhov_length)
    z0 = jnp.asarray(z0, dtype=L.dtype if jnp.issubdtype(L.dtype, jnp.floating) else None)
    bad_L = jnp.isnan(L) | (L == 0)
    bad_z0 = ~((z0 >= 1e-3) & (z0 <= 1.0))
    try:
        bl, bz = bool(np.any(np.asarray(bad_L))), bool(np.any(np.asarray(bad_z0)))
    except Exception:  # traced
        L = error_if(L, bad_L, "`obukhov_length` must be non-zero and not NaN")
        L = error_if(L, jnp.any(bad_z0), "`z0` must be in [1e-3, 1] m for Golder (1972)")
    else:
        if bl:
            raise ValueError("`obukhov_length` must be non-zero and not NaN (inf = neutral)")
        if bz:
            raise ValueError(f"`z0` must be in [1e-3, 1] m for Golder (1972), got {z0}")
    inv = 1.0 / L
    centres = golder_inverse_obukhov(z0)
    return jnp.argmin(jnp.abs(inv[..., None] - centres), axis=-1).astype(jnp.int32)


def class_letter(index: int) -> str:
    """``0..5`` -> ``"A".."F"`` (a concrete index: a letter is not a JAX value)."""
    if isinstance(index, jax.core.Tracer):
        raise ValueError(
            "`index` (stability class) must be concrete to give a letter; inside jax.jit "
            "keep the integer index 0-5"
        )
    return STABILITY_CLASSES[stability_index(index)]
