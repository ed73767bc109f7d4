"""Input checks shared by the gates (run eagerly, outside jit)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array


def as_float_array(x: Any, name: str, ndim: int | None = None) -> Array:
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
