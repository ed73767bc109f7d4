"""Input checks shared by every plumax container.

Checks run eagerly at construction time on concrete values; under ``jax.jit`` /
``jax.vmap`` the leaves are tracers and the checks are skipped (inside jit, use
``equinox.error_if``). Every failure names the offending argument.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array


def is_concrete(x: Any) -> bool:
    """True when ``x`` holds concrete values (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def as_array(name: str, x: Any, *, dtype: Any = None) -> jax.Array:
    """Convert ``x`` to a JAX array, raising ``TypeError`` naming ``name`` if impossible."""
    if isinstance(x, jax.core.Tracer):
        return x if dtype is None else x.astype(dtype)
    try:
        arr = np.asarray(x)
    except Exception as err:  # pragma: no cover - exotic inputs
        raise TypeError(f"`{name}` must be array-like, got {type(x).__name__}") from err
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise TypeError(f"`{name}` must be numeric, got dtype {arr.dtype} ({type(x).__name__})")
    if dtype is None and arr.dtype.kind in "iu" and not isinstance(x, jax.Array):
        # Python ints / integer lists for float quantities become floats.
        dtype = jnp.result_type(float)
    return jnp.asarray(x, dtype=dtype)


def as_float_array(name: str, x: Any) -> jax.Array:
    """Convert to a floating array (default float dtype unless already floating)."""
    arr = as_array(name, x)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    return arr


def check_finite(name: str, x: Any) -> None:
    """Raise ``ValueError`` if a concrete ``x`` contains NaN or inf."""
    if x is None or not is_concrete(x):
        return
    arr = np.asarray(x)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"`{name}` must be finite; it has {n_bad} NaN/inf value(s)")


def check_not_nan(name: str, x: Any) -> None:
    """Raise ``ValueError`` if a concrete ``x`` contains NaN (inf allowed)."""
    if x is None or not is_concrete(x):
        return
    arr = np.asarray(x)
    if arr.dtype.kind == "f" and np.any(np.isnan(arr)):
        raise ValueError(f"`{name}` must not contain NaN")


def check_positive(name: str, x: Any, *, strict: bool = True, units: str = "") -> None:
    """Raise ``ValueError`` unless every concrete value is > 0 (or >= 0)."""
    if x is None or not is_concrete(x):
        return
    check_finite(name, x)
    arr = np.asarray(x)
    bad = arr <= 0 if strict else arr < 0
    if np.any(bad):
        worst = arr[bad].ravel()[0]
        rel = "> 0" if strict else ">= 0"
        unit = f" {units}" if units else ""
        raise ValueError(f"`{name}` must be {rel}{unit}; got {worst!r}")


def check_value(
    name: str,
    x: Any,
    *,
    positive: bool = False,
    nonneg: bool = False,
    lo: float | None = None,
    hi: float | None = None,
    finite: bool = True,
) -> None:
    """Raise ``ValueError`` naming ``name`` if a concrete ``x`` breaks a constraint.

    NaN always fails; ``finite=False`` allows +-inf; ``lo``/``hi`` are inclusive bounds.
    """
    if x is None or not is_concrete(x):
        return
    arr = np.asarray(x, dtype=float)
    if np.any(np.isnan(arr)):
        raise ValueError(f"`{name}` contains NaN")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite")
    if positive and np.any(arr <= 0):
        raise ValueError(f"`{name}` must be > 0, got min {arr.min()!r}")
    if nonneg and np.any(arr < 0):
        raise ValueError(f"`{name}` must be >= 0, got min {arr.min()!r}")
    if lo is not None and np.any(arr < lo):
        raise ValueError(f"`{name}` must be >= {lo}, got min {arr.min()!r}")
    if hi is not None and np.any(arr > hi):
        raise ValueError(f"`{name}` must be <= {hi}, got max {arr.max()!r}")


#: Slowest wind speed, m/s, at which the plume models (and every entry that feeds them)
#: are valid. In light winds the Gaussian models' neglect of along-wind diffusion fails
#: (Turner 1970; Hanna, Briggs & Hosker 1982, ch. 4) and the measured direction is
#: unreliable (cup and vane starting thresholds are about 0.5 m/s: US EPA 2000,
#: *Meteorological Monitoring Guidance*, EPA-454/R-99-005, section 5).
MIN_WIND_SPEED = 0.5
#: Fastest wind speed, m/s, accepted anywhere: above the highest near-surface wind ever
#: measured (a 113.2 m/s gust, Barrow Island, 10 April 1996; WMO Archive of Weather and
#: Climate Extremes). A larger value is a unit or file error, not weather.
MAX_WIND_SPEED = 120.0


def check_wind_speed(name: str, x: Any, *, minimum: float = MIN_WIND_SPEED) -> None:
    """The one rule for a wind speed (m/s): finite and in ``[minimum, MAX_WIND_SPEED]``.

    Every entry that takes a wind speed (the CLI, scene files, pipelines, the transport
    models' eager checks) applies this rule; ``minimum`` defaults to `MIN_WIND_SPEED`
    and may be lowered only by a model documented to be valid in lighter winds.
    Skipped for tracers (inside jit the models use ``equinox.error_if``).

    Raises:
        ValueError: naming ``name``, for NaN/inf, a speed below ``minimum`` (zero and
            negative included) or above `MAX_WIND_SPEED`.
    """
    if x is None or not is_concrete(x):
        return
    arr = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be a finite wind speed in m/s; got {arr.ravel()!r}")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < minimum:
        raise ValueError(
            f"`{name}` must be >= {minimum:g} m/s (the plume models' documented minimum; "
            f"calm, zero and negative winds are outside their validity); got {lo:g} m/s"
        )
    if hi > MAX_WIND_SPEED:
        raise ValueError(
            f"`{name}` must be <= {MAX_WIND_SPEED:g} m/s (faster than any measured surface "
            f"wind: a unit error?); got {hi:g} m/s"
        )


def check_ndim(name: str, x: Any, ndim: int | tuple[int, ...]) -> None:
    """Raise ``ValueError`` if ``x.ndim`` is not (one of) ``ndim``."""
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if jnp.ndim(x) not in allowed:
        raise ValueError(f"`{name}` must have ndim in {allowed}, got shape {jnp.shape(x)}")


def as_finite_float_array(x: Any, name: str, ndim: int | None = None) -> Array:
    """`x` as a floating JAX array; `ValueError` naming `name` for bad rank or NaN/inf."""
    try:
        arr = jnp.asarray(x)
    except TypeError as err:
        raise ValueError(f"`{name}` must be array-like, got {type(x).__name__}.") from err
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"`{name}` must have {ndim} dimension(s), got shape {arr.shape}.")
    # Host-side check: no compilation for each new shape.
    if not np.isfinite(np.asarray(arr)).all():
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return arr


def check_probability(value: float, name: str) -> float:
    """`value` as a float strictly inside (0, 1)."""
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"`{name}` must lie in the open interval (0, 1), got {value}.")
    return value


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """`value` as a Python int >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"`{name}` must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")
    return int(value)


def check_square_operator(operator: object, name: str) -> int:
    """Check that `operator` is a square lineax operator on flat 1-D vectors.

    **Arguments:**

    - `operator`: the object to check.
    - `name`: the argument name used in error messages.

    **Returns:**

    The size `n` of the operator (it maps shape `(n,)` to shape `(n,)`).

    **Raises:**

    - `TypeError` if `operator` is not an `lx.AbstractLinearOperator`.
    - `ValueError` if it does not act on 1-D arrays, or is not square.
    """
    if not isinstance(operator, lx.AbstractLinearOperator):
        raise TypeError(
            f"`{name}` must be a lineax.AbstractLinearOperator, got {type(operator).__name__}. "
            "Wrap a matrix as `lineax.MatrixLinearOperator(matrix)`."
        )
    in_struct = operator.in_structure()
    out_struct = operator.out_structure()
    for label, struct in (("input", in_struct), ("output", out_struct)):
        if not isinstance(struct, jax.ShapeDtypeStruct) or len(struct.shape) != 1:
            raise ValueError(
                f"`{name}` must act on flat 1-D vectors; its {label} structure is {struct}."
            )
    if in_struct.shape != out_struct.shape:
        raise ValueError(
            f"`{name}` must be square; it maps shape {in_struct.shape} to {out_struct.shape}."
        )
    return in_struct.shape[0]
