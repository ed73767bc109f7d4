"""Input checks shared by every plumax container.

Checks run eagerly at construction time on concrete values; under ``jax.jit`` /
``jax.vmap`` the leaves are tracers and the ``check_*`` functions are skipped; the
``*_error_if`` variants then check at run time with :func:`plumax_core.validation.error_if`
(see :mod:`plumax_core._errors` for how those failures reach the user). Every failure
names the offending argument.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array

from ._errors import error_if


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


def check_emission_rate(name: str, q: Any, *, units: str = "kg/s") -> None:
    """The one rule for an emission rate given as a number: finite and > 0 ``units``.

    Used at every entry that takes a rate from a user (a simulation's true rate, a
    prior's centre, a catalogue's rates); a rate inside a model is a parameter, whose
    support (``Q > 0``, log-transformed) the model's ``ParamSpec`` states. Concrete
    values only (a traced rate is the model's to check).

    Raises:
        ValueError: naming ``name``, for NaN/inf or a value <= 0, with ``units``.
    """
    if q is None or not is_concrete(q):
        return
    arr = np.asarray(q, dtype=float)
    bad = ~np.isfinite(arr) | (arr <= 0)
    if np.any(bad):
        worst = arr[bad].ravel()[0]
        raise ValueError(f"`{name}` (emission rate) must be finite and > 0 {units}; got {worst}")


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


def wind_speed_messages(name: str, minimum: float = MIN_WIND_SPEED) -> tuple[str, str, str]:
    """The wind-speed rule's three messages: ``(not finite, too slow, too fast)``.

    :func:`check_wind_speed` raises them (followed by ``"; got <value> m/s"``) for
    concrete values; :func:`wind_speed_error_if` raises them, word for word, from
    inside ``jax.jit``.
    """
    if minimum == MIN_WIND_SPEED:
        why = (
            " (the plume models' documented minimum; calm, zero and negative winds are "
            "outside their validity)"
        )
    elif minimum == 0:
        why = " (a wind speed cannot be negative)"
    else:
        why = ""
    return (
        f"`{name}` must be a finite wind speed in m/s",
        f"`{name}` must be >= {minimum:g} m/s{why}",
        f"`{name}` must be <= {MAX_WIND_SPEED:g} m/s (faster than any measured surface "
        "wind: a unit error?)",
    )


def _check_minimum(minimum: float) -> float:
    minimum = float(minimum)
    if not 0.0 <= minimum < MAX_WIND_SPEED:
        raise ValueError(
            f"`minimum` wind speed must be in [0, {MAX_WIND_SPEED:g}) m/s, got {minimum!r}"
        )
    return minimum


def check_wind_speed(name: str, x: Any, *, minimum: float = MIN_WIND_SPEED) -> None:
    """The one rule for a wind speed (m/s): finite and in ``[minimum, MAX_WIND_SPEED]``.

    Every entry that takes a wind speed (the CLI, scene files, pipelines, the transport
    models' eager checks, ``MetField.uniform`` / ``from_timeseries``) applies this rule;
    ``minimum`` defaults to `MIN_WIND_SPEED` and may be lowered only by an entry
    documented to be valid in lighter winds (e.g. the Pasquill table, which classifies a
    measured surface wind, calm included). Skipped for tracers: inside ``jax.jit`` the
    models apply the same rule with :func:`wind_speed_error_if`.

    Raises:
        ValueError: naming ``name``, for NaN/inf, a speed below ``minimum`` (zero and
            negative included) or above `MAX_WIND_SPEED`.
    """
    minimum = _check_minimum(minimum)
    if x is None or not is_concrete(x):
        return
    arr = np.asarray(x, dtype=float)
    nonfinite, slow, fast = wind_speed_messages(name, minimum)
    if not np.all(np.isfinite(arr)):
        bad = arr[~np.isfinite(arr)].ravel()[0]
        raise ValueError(f"{nonfinite}; got {float(bad)}")
    if arr.size == 0:
        return
    lo, hi = float(arr.min()), float(arr.max())
    if lo < minimum:
        raise ValueError(f"{slow}; got {lo:g} m/s")
    if hi > MAX_WIND_SPEED:
        raise ValueError(f"{fast}; got {hi:g} m/s")


def wind_speed_violations(
    name: str, speed: Array, *, minimum: float = MIN_WIND_SPEED
) -> tuple[tuple[Array, str], ...]:
    """``((bad, message), ...)`` of the wind-speed rule for a (possibly traced) ``speed``.

    ``bad`` is a boolean array, True where ``speed`` breaks that part of the rule; the
    messages are those of :func:`wind_speed_messages`. For callers that collect their
    checks (e.g. to return NaN instead of raising under a sampler).
    """
    minimum = _check_minimum(minimum)
    speed = jnp.asarray(speed)
    nonfinite, slow, fast = wind_speed_messages(name, minimum)
    return (
        (~jnp.isfinite(speed), nonfinite),
        (speed < minimum, slow),
        (speed > MAX_WIND_SPEED, fast),
    )


def wind_speed_error_if(name: str, speed: Array, *, minimum: float = MIN_WIND_SPEED) -> Array:
    """``speed``, checked by the wind-speed rule: eagerly if concrete, else at run time.

    Concrete values go through :func:`check_wind_speed` (``ValueError``); traced ones
    through :func:`plumax_core.validation.error_if` with the same messages (an
    :class:`~plumax_core.InvalidInputError` under :func:`~plumax_core.clean_errors`).
    """
    if is_concrete(speed):
        check_wind_speed(name, speed, minimum=minimum)
        return speed
    for bad, msg in wind_speed_violations(name, speed, minimum=minimum):
        speed = error_if(speed, bad, msg)
    return speed


def check_coordinate(name: str, x: Any, *, evenly_spaced: bool = False) -> None:
    """Raise ``ValueError`` unless ``x`` is a finite, strictly ascending 1-D coordinate.

    With ``evenly_spaced=True`` the steps must also be equal up to rounding:
    ``|step - mean step| <= 16 eps max(|x|)``, with ``eps`` the resolution of the
    coordinate's dtype but never finer than float32's (1.2e-7): a float32 grid passes,
    and so does one that went through float32 (JAX's default) and back to float64 —
    e.g. 32 pixel centres over ±600 m are off by 4e-5 m, while the tolerance is 1e-3 m.
    Skipped for tracers.

    Raises:
        ValueError: naming ``name``: not 1-D, empty, NaN/inf, a repeated value or a
            decrease (with its position), or unequal steps.
    """
    if x is None or not is_concrete(x):
        return
    arr = np.asarray(x)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D coordinate, got shape {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"`{name}` must be numeric, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite; it has NaN/inf values")
    step = np.diff(arr.astype(np.float64))
    if np.any(step <= 0):
        i = int(np.argmax(step <= 0))
        what = "repeats a value" if step[i] == 0 else "decreases"
        raise ValueError(
            f"`{name}` must be strictly ascending; it {what} at index {i + 1} "
            f"({float(arr[i]):g} then {float(arr[i + 1]):g})"
        )
    if evenly_spaced and step.size > 1:
        eps = float(np.finfo(np.float32).eps)
        if arr.dtype.kind == "f":
            eps = max(eps, float(np.finfo(arr.dtype).eps))
        mean = (float(arr[-1]) - float(arr[0])) / step.size
        tol = 16.0 * eps * float(np.max(np.abs(arr)))
        dev = float(np.max(np.abs(step - mean)))
        if dev > tol:
            raise ValueError(
                f"`{name}` must be evenly spaced; its steps differ from their mean "
                f"{mean:g} by up to {dev:.3g} (tolerance {tol:.3g} for {arr.dtype})"
            )


#: Unit strings of a length in metres (CF/UDUNITS spellings).
METRE_UNITS = ("m", "metre", "meter", "metres", "meters")
_ANGLE_UNITS = (
    "degree",
    "degrees",
    "degrees_north",
    "degrees_east",
    "degree_north",
    "degree_east",
    "degree_n",
    "degree_e",
    "degrees_n",
    "degrees_e",
    "deg",
    "rad",
)


def check_length_units(name: str, units: Any, *, default: str | None = None) -> None:
    """Raise ``ValueError`` unless ``units`` (a CF ``units`` attribute) is metres.

    The one rule for a coordinate that must be a distance: an angle (``degrees_north``,
    ``degrees_east``, ``degree`` ...) is refused with a message that points to
    :class:`plumax_core.LocalFrame` (degrees are never taken for metres); any other
    unit is refused too. ``units=None`` (no attribute) passes only when ``default`` is
    given (the caller documents that a unitless coordinate is read as ``default``).
    """
    if units is None:
        if default is not None:
            return
        raise ValueError(f"`{name}` has no units attribute; expected metres ('m')")
    u = str(units).strip()
    if u.lower() in _ANGLE_UNITS:
        raise ValueError(
            f"`{name}` is in {u!r} (an angle), not metres: convert longitude/latitude to a "
            "local frame first (plumax_core.LocalFrame.to_xy)"
        )
    if u not in METRE_UNITS:
        raise ValueError(f"`{name}` has units {u!r}; expected metres ('m')")


#: Covariance operators up to this size are materialised and checked in full
#: (symmetry and a Cholesky factorisation); larger ones are probed (see
#: :func:`check_covariance`).
DENSE_CHECK_MAX = 512


def _has_tracer(tree: Any) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(tree))


def _cheap_diagonal(op: lx.AbstractLinearOperator) -> bool:
    return isinstance(op, lx.DiagonalLinearOperator | lx.MatrixLinearOperator)


def check_covariance(name: str, cov: lx.AbstractLinearOperator) -> None:
    """Raise ``ValueError`` unless a concrete ``cov`` is a valid covariance operator.

    Policy, by what can be afforded:

    * diagonal operators: every variance finite and > 0;
    * other operators of size ``D <= DENSE_CHECK_MAX`` (512): materialised in float64;
      every entry finite; positive diagonal; symmetric, ``|C_ij - C_ji| <= sqrt(eps)``
      on the correlation scale ``C = cov_ij / sqrt(cov_ii cov_jj)`` (``eps`` of the
      operator's dtype, so float32 rounding passes); and positive definite: the Cholesky
      factorisation of ``C + D eps I`` succeeds (a matrix singular only by rounding
      passes, an indefinite one does not);
    * larger operators (typically lazy, e.g. ``L H⁻¹ Lᵀ``): three fixed Rademacher
      probes ``v``: ``cov v`` finite, ``vᵀ cov v > 0``, and ``uᵀ cov v = vᵀ cov u`` to
      ``sqrt(eps)`` relative to ``sqrt(uᵀ cov u · vᵀ cov v)``. Six matrix-vector
      products, never a ``D x D`` matrix: a defect a probe misses is not detected.

    Skipped when the operator holds tracers (see :func:`covariance_error_if`).
    """
    if _has_tracer(cov):
        return
    n = cov.in_size()
    dtype = np.dtype(cov.in_structure().dtype)
    eps = float(np.finfo(dtype).eps) if dtype.kind == "f" else float(np.finfo(float).eps)
    tol = float(np.sqrt(eps))
    with jax.ensure_compile_time_eval():
        if isinstance(cov, lx.DiagonalLinearOperator) or n <= DENSE_CHECK_MAX:
            _check_dense_covariance(name, cov, n, eps, tol)
        else:
            _probe_covariance(name, cov, n, dtype, tol)


def _check_dense_covariance(name, cov, n, eps, tol) -> None:
    if isinstance(cov, lx.DiagonalLinearOperator):
        diag = np.asarray(lx.diagonal(cov), dtype=np.float64)
        mat = None
    else:
        mat = np.asarray(cov.as_matrix(), dtype=np.float64)
        diag = np.diag(mat).copy()
        n_bad = int(np.size(mat) - np.count_nonzero(np.isfinite(mat)))
        if n_bad:
            raise ValueError(f"`{name}` must be finite; it has {n_bad} NaN/inf entries")
    if not np.all(np.isfinite(diag)):
        raise ValueError(f"`{name}` must be finite; its diagonal has NaN/inf variances")
    if np.any(diag <= 0):
        i = int(np.argmax(diag <= 0))
        raise ValueError(
            f"`{name}` must be positive definite; variance {i} (diagonal entry) is {diag[i]:g}"
        )
    if mat is None:
        return
    s = 1.0 / np.sqrt(diag)
    corr = mat * s[:, None] * s[None, :]
    asym = float(np.max(np.abs(corr - corr.T))) if n > 1 else 0.0
    if asym > tol:
        i, j = np.unravel_index(int(np.argmax(np.abs(corr - corr.T))), corr.shape)
        raise ValueError(
            f"`{name}` must be symmetric; entries ({i}, {j}) and ({j}, {i}) differ by "
            f"{asym:.3g} in correlation units (tolerance {tol:.1g})"
        )
    corr = 0.5 * (corr + corr.T)
    try:
        np.linalg.cholesky(corr + n * eps * np.eye(n))
    except np.linalg.LinAlgError:
        lam = float(np.linalg.eigvalsh(corr).min())
        raise ValueError(
            f"`{name}` must be positive definite; its correlation matrix has an "
            f"eigenvalue {lam:.3g} <= 0 (a negative variance along some direction)"
        ) from None


def _probe_covariance(name, cov, n, dtype, tol) -> None:
    rng = np.random.default_rng(0)
    probes = rng.choice([-1.0, 1.0], size=(3, n)).astype(dtype)
    out = np.stack([np.asarray(cov.mv(jnp.asarray(v)), dtype=np.float64) for v in probes])
    if not np.all(np.isfinite(out)):
        raise ValueError(f"`{name}` must be finite; `{name}.mv` gives NaN/inf on a probe vector")
    p64 = probes.astype(np.float64)
    gram = p64 @ out.T  # gram[i, j] = v_i . (cov v_j)
    quad = np.diag(gram)
    if np.any(quad <= 0):
        raise ValueError(
            f"`{name}` must be positive definite; vᵀ {name} v = {quad.min():.3g} <= 0 for a "
            "probe vector v"
        )
    scale = np.sqrt(np.outer(quad, quad))
    asym = float(np.max(np.abs(gram - gram.T) / scale))
    if asym > tol:
        raise ValueError(
            f"`{name}` must be symmetric; uᵀ {name} v and vᵀ {name} u differ by {asym:.3g} "
            f"(relative; tolerance {tol:.1g}) for probe vectors u, v"
        )


def covariance_error_if(name: str, cov: lx.AbstractLinearOperator) -> lx.AbstractLinearOperator:
    """``cov``, with a run-time check of its variances when it holds tracers.

    For traced diagonal and dense (``MatrixLinearOperator``) covariances: every variance
    finite and > 0, via :func:`plumax_core.validation.error_if` on the operator's arrays
    (so any use of the returned operator runs the check). Other traced operators and
    concrete ones are returned unchanged (concrete ones are for :func:`check_covariance`).
    """
    if not _has_tracer(cov) or not _cheap_diagonal(cov):
        return cov
    diag = lx.diagonal(cov)
    bad = ~(jnp.isfinite(diag) & (diag > 0))
    dyn, static = eqx.partition(cov, eqx.is_array)
    dyn = error_if(dyn, bad, f"`{name}` must have finite, positive variances on its diagonal")
    return eqx.combine(dyn, static)


def positive_error_if(name: str, x: Array, *, where: Array | None = None) -> Array:
    """``x``, checked finite and > 0 (where ``where`` is True): eagerly if concrete.

    Concrete values raise ``ValueError`` now; traced ones get a run-time
    :func:`plumax_core.validation.error_if` with the same message.
    """
    msg = f"`{name}` must be finite and > 0"
    bad = ~(jnp.isfinite(x) & (x > 0))
    if where is not None:
        msg += " where observations are valid"
        bad = bad & where
    if is_concrete(bad):
        if bool(np.any(np.asarray(bad))):
            raise ValueError(msg)
        return x
    return error_if(x, bad, msg)


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
