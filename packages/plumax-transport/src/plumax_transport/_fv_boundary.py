r"""Boundary conditions of the finite-volume transport solver, one kind per domain face.

* ``"periodic"``: the domain wraps; ghost cells copy the cells at the other end and
  the two end faces carry the same flux. It must be paired (west and east, or south
  and north) and is not allowed at the bottom or the top.
* ``"closed"``: a wall; the advective and the diffusive flux through the face are 0.
* ``"open"``: where the normal wind enters, the advective flux is ``u_n * background``
  (air of density ``background`` flows in); where it leaves, the flux is the scheme's
  upwind reconstruction from inside with zero-gradient ghost cells (the edge value
  repeated), the outflow condition of LeVeque (2002, *Finite Volume Methods for
  Hyperbolic Problems*, sec. 7.2.1). The diffusive flux through an open face is 0 (zero
  gradient).

The mass that leaves through open faces (inflow counted negative) is what
:func:`plumax_transport._fv_solver.advance` returns as ``outflow``.
"""

from __future__ import annotations

import math

import equinox as eqx

FACE_KINDS = ("periodic", "closed", "open")


class Boundaries(eqx.Module):
    """Boundary kind of each of the six faces of the domain (all fields static).

    Attributes:
        west, east: faces at the low / high x end.
        south, north: faces at the low / high y end.
        bottom, top: faces at ``z = 0`` and at the top edge ("closed" or "open").
        background: tracer density carried in through an open face where the wind
            enters, kg/m^3 (finite, >= 0).
    """

    west: str = eqx.field(default="open", static=True)
    east: str = eqx.field(default="open", static=True)
    south: str = eqx.field(default="open", static=True)
    north: str = eqx.field(default="open", static=True)
    bottom: str = eqx.field(default="closed", static=True)
    top: str = eqx.field(default="closed", static=True)
    background: float = eqx.field(default=0.0, static=True)

    def __check_init__(self):
        for name in ("west", "east", "south", "north", "bottom", "top"):
            kind = getattr(self, name)
            if kind not in FACE_KINDS:
                raise ValueError(f"`{name}` must be one of {FACE_KINDS}, got {kind!r}")
        for lo, hi in (("west", "east"), ("south", "north")):
            a, b = getattr(self, lo), getattr(self, hi)
            if (a == "periodic") != (b == "periodic"):
                raise ValueError(f"periodic faces must be paired: `{lo}`={a!r} but `{hi}`={b!r}")
        for name in ("bottom", "top"):
            if getattr(self, name) == "periodic":
                raise ValueError(f"`{name}` must be 'closed' or 'open', got 'periodic'")
        bg = float(self.background)
        if not (math.isfinite(bg) and bg >= 0):
            raise ValueError(
                f"`background` must be finite and >= 0 kg/m^3, got {self.background!r}"
            )

    def axis(self, axis: int) -> tuple[str, str]:
        """``(low, high)`` face kinds along array axis 0 (z), 1 (y) or 2 (x)."""
        return ((self.bottom, self.top), (self.south, self.north), (self.west, self.east))[axis]
