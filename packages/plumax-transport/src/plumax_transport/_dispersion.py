"""Dispersion coefficients σy(x), σz(x): Briggs (1973) open-country and urban curves.

The formulas are Briggs' fits to the Pasquill-Gifford (open country) and McElroy-Pooler
(St. Louis, urban) dispersion curves, as tabulated in

* Hanna, S. R., Briggs, G. A. & Hosker, R. P. (1982), *Handbook on Atmospheric
  Diffusion*, DOE/TIC-11223, Table 4.5; and
* Seinfeld, J. H. & Pandis, S. N. (2006), *Atmospheric Chemistry and Physics*, 2nd ed.,
  Table 18.3 ("Formulas recommended by Briggs (1973) for σy(x) and σz(x),
  10² < x < 10⁴ m").

Every curve has the form ``a x (1 + b x)^p`` with ``x`` the downwind (travel) distance
in metres and the result in metres:

=====  =========================  ==========================
class  open country σy            open country σz
=====  =========================  ==========================
A      0.22x(1+0.0001x)^-1/2      0.20x
B      0.16x(1+0.0001x)^-1/2      0.12x
C      0.11x(1+0.0001x)^-1/2      0.08x(1+0.0002x)^-1/2
D      0.08x(1+0.0001x)^-1/2      0.06x(1+0.0015x)^-1/2
E      0.06x(1+0.0001x)^-1/2      0.03x(1+0.0003x)^-1
F      0.04x(1+0.0001x)^-1/2      0.016x(1+0.0003x)^-1
=====  =========================  ==========================

=====  =========================  ==========================
class  urban σy                   urban σz
=====  =========================  ==========================
A-B    0.32x(1+0.0004x)^-1/2      0.24x(1+0.001x)^+1/2
C      0.22x(1+0.0004x)^-1/2      0.20x
D      0.16x(1+0.0004x)^-1/2      0.14x(1+0.0003x)^-1/2
E-F    0.11x(1+0.0004x)^-1/2      0.08x(1+0.0015x)^-1/2
=====  =========================  ==========================

The published range of validity is 100 m to 10 km; outside it the same expressions are
used (they go to zero linearly at the source), which is the usual practice and is
stated in the docs. The functions are smooth, jit/vmap/grad friendly, and take the class
as a traced integer index 0-5 (A-F) so that stability can come from the met.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from plumax_core import stability_index

#: Terrain types with Briggs (1973) curves.
TERRAINS: tuple[str, ...] = ("rural", "urban")

# (a, b, p) per class A-F; sigma = a x (1 + b x)^p.  Hand-typed from the table above.
_SIGMA_Y = {
    "rural": np.array(
        [
            [0.22, 1e-4, -0.5],
            [0.16, 1e-4, -0.5],
            [0.11, 1e-4, -0.5],
            [0.08, 1e-4, -0.5],
            [0.06, 1e-4, -0.5],
            [0.04, 1e-4, -0.5],
        ]
    ),
    "urban": np.array(
        [
            [0.32, 4e-4, -0.5],
            [0.32, 4e-4, -0.5],
            [0.22, 4e-4, -0.5],
            [0.16, 4e-4, -0.5],
            [0.11, 4e-4, -0.5],
            [0.11, 4e-4, -0.5],
        ]
    ),
}
_SIGMA_Z = {
    "rural": np.array(
        [
            [0.20, 0.0, 0.0],
            [0.12, 0.0, 0.0],
            [0.08, 2e-4, -0.5],
            [0.06, 1.5e-3, -0.5],
            [0.03, 3e-4, -1.0],
            [0.016, 3e-4, -1.0],
        ]
    ),
    "urban": np.array(
        [
            [0.24, 1e-3, 0.5],
            [0.24, 1e-3, 0.5],
            [0.20, 0.0, 0.0],
            [0.14, 3e-4, -0.5],
            [0.08, 1.5e-3, -0.5],
            [0.08, 1.5e-3, -0.5],
        ]
    ),
}


def check_terrain(terrain: str) -> str:
    """Return ``terrain`` if it is ``"rural"`` or ``"urban"``; raise ``ValueError`` otherwise."""
    if terrain not in TERRAINS:
        raise ValueError(f"`terrain` must be one of {TERRAINS}, got {terrain!r}")
    return terrain


def _class_index(stability: int | str | ArrayLike) -> Int[Array, "..."]:
    """Class index as an integer array; letters and Python ints are validated eagerly."""
    if isinstance(stability, str) or isinstance(stability, (int, np.integer)):
        return jnp.asarray(stability_index(stability), dtype=jnp.int32)
    arr = jnp.asarray(stability)
    if not jnp.issubdtype(arr.dtype, jnp.integer):
        raise ValueError(f"`stability` must be a class letter or integer index, got {arr.dtype}")
    try:
        concrete = np.asarray(arr)
    except Exception:  # a tracer: checked by the caller (eqx.error_if)
        return arr
    if np.any((concrete < 0) | (concrete > 5)):
        raise ValueError(f"`stability` must be in 0-5 (A-F), got {concrete}")
    return arr


def _curve(table: np.ndarray, x: Float[Array, "..."], idx: Int[Array, "..."]) -> Array:
    x = jnp.asarray(x)
    coef = jnp.asarray(table, dtype=x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else None)
    a, b, p = coef[idx, 0], coef[idx, 1], coef[idx, 2]
    # (1 + b x)^p for p in {-1, -1/2, 0, 1/2} from one rsqrt: much cheaper than a
    # general pow (log + exp) with a traced exponent, and exact to rounding.
    t = 1.0 + b * x
    r = jax.lax.rsqrt(t)
    factor = jnp.where(p == -0.5, r, jnp.where(p == -1.0, r * r, jnp.where(p == 0.5, t * r, 1.0)))
    return a * x * factor


def sigma_y(
    x: Float[ArrayLike, "..."],
    stability: int | str | Int[ArrayLike, "..."],
    terrain: str = "rural",
) -> Float[Array, "..."]:
    """Horizontal dispersion σy (m) at downwind distance ``x`` (m), Briggs (1973).

    Args:
        x: downwind (travel) distance, m; must be >= 0 (values < 0 are the caller's
            business: mask them, see :mod:`plumax_transport._plume`).
        stability: Pasquill class ``"A".."F"`` or index 0-5 (may be a traced int array).
        terrain: ``"rural"`` (open country) or ``"urban"``.

    Returns:
        σy in m, shape of ``broadcast(x, stability)``.
    """
    return _curve(_SIGMA_Y[check_terrain(terrain)], x, _class_index(stability))


def sigma_z(
    x: Float[ArrayLike, "..."],
    stability: int | str | Int[ArrayLike, "..."],
    terrain: str = "rural",
) -> Float[Array, "..."]:
    """Vertical dispersion σz (m) at downwind distance ``x`` (m), Briggs (1973).

    See :func:`sigma_y` for the arguments; the table is in the module docstring.
    """
    return _curve(_SIGMA_Z[check_terrain(terrain)], x, _class_index(stability))
