"""Input checks shared by every plumax container.

Checks run eagerly at construction time on concrete values; under ``jax.jit`` /
``jax.vmap`` the leaves are tracers and the checks are skipped (inside jit, use
``equinox.error_if``). Every failure names the offending argument.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


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


def check_ndim(name: str, x: Any, ndim: int | tuple[int, ...]) -> None:
    """Raise ``ValueError`` if ``x.ndim`` is not (one of) ``ndim``."""
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if jnp.ndim(x) not in allowed:
        raise ValueError(f"`{name}` must have ndim in {allowed}, got shape {jnp.shape(x)}")
