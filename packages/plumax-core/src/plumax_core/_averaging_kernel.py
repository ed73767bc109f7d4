"""The column averaging-kernel observation operator of a satellite XCH4 retrieval.

A retrieval of the column-averaged dry-air mole fraction of methane (XCH4) does not see
the true profile ``x`` uniformly: it sees it through its column averaging kernel ``a``
and falls back on its prior ``x_a`` where it is insensitive. For one sounding with
``n`` retrieval layers the standard form is

    ``XCH4 = y_a + sum_i h_i a_i (x_i - x_a,i)``,   ``y_a = sum_i h_i x_a,i``,

with ``h_i = d_i / sum_j d_j`` the pressure weighting function built from the dry-air
sub-columns ``d_i`` (mol m-2), ``a_i`` the (dimensionless) column averaging kernel,
``x_a,i`` the prior mole fraction of layer ``i`` (ppb) and ``x_i`` the model's
(ppb). Where a product gives its prior as sub-columns ``c_i`` (mol m-2) the mole
fraction is ``x_a,i = 1e9 c_i / d_i``, and the form above is identical to the sum over
sub-columns ``(sum_i c_i + a_i (1e-9 x_i d_i - c_i)) / sum_i d_i * 1e9`` used by the
Integrated Methane Inversion's TROPOMI operator (IMI, github.com/geoschem/
integrated_methane_inversion, ``TROPOMI_operator.py``, which cites eq. 46 of the
TROPOMI methane ATBD, Hasekamp et al. 2019, SRON-S5P-LEV2-RP-001; the equation number
was not checked here).

A model rarely lives on the retrieval's layers. :func:`regrid_matrix` maps a profile on
model layers (its own pressure edges) to the retrieval layers conserving mass: each
retrieval layer gets the pressure-weighted mean of the model layers overlapping it,
``x_l = sum_m w_lm x_m`` with ``w_lm = overlap(l, m) / sum_m' overlap(l, m')`` and the
overlap measured in pressure (the pressure-overlap weights of IMI's
``remapping_weights`` / ``remap``; for mass-conserving vertical regridding of profile
data in general see also Keppens et al. 2019, Atmos. Meas. Tech., not consulted here). When the
model column spans the retrieval column, ``sum_l dp_l x_l = sum_m dp_m x_m`` exactly for
every profile (mass conservation). The matrix is precomputed, so the operator is affine
in the state, and jit / vmap / grad see only an ``einsum``.

Shapes: ``npix`` soundings, ``nlayer`` retrieval layers (12 for TROPOMI), ``nmodel``
model layers. Layers may be ordered surface-first or top-first, as long as each
profile's layers follow its own edges.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, Bool, Float

from ._forward import AbstractObservationOperator, autodiff_linearization
from ._observations import Observations
from ._units import PPB, PPM

__all__ = ["AveragingKernelOperator", "regrid_matrix"]

#: One part per billion as a mole fraction.
#: Unit strings accepted for a prior given as sub-columns.
_MOL_M2 = ("mol m-2", "mol/m2", "mol m^-2", "mol/m^2", "mol.m-2")
#: A state given as ``Observations`` of these kinds is converted to ppb by this factor.
_STATE_KIND_TO_PPB = {"concentration_ppm": float(round(PPM / PPB))}  # 1000


def _float_np(name: str, x: Any, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a numeric array, got {type(x).__name__}") from None
    if arr.ndim != ndim:
        raise ValueError(f"`{name}` must be {ndim}-D, got shape {arr.shape}")
    return arr


def _check_edges(name: str, edges: np.ndarray) -> None:
    """Finite, >= 0 and strictly monotonic along the last axis (either direction)."""
    if edges.shape[-1] < 2:
        raise ValueError(f"`{name}` needs at least 2 edges per profile, got {edges.shape[-1]}")
    if not np.all(np.isfinite(edges)):
        raise ValueError(f"`{name}` must be finite (Pa)")
    if np.any(edges < 0):
        raise ValueError(f"`{name}` must be >= 0 Pa")
    d = np.diff(edges, axis=-1)
    ok = np.all(d > 0, axis=-1) | np.all(d < 0, axis=-1)
    if not np.all(ok):
        bad = np.flatnonzero(~np.atleast_1d(ok))
        raise ValueError(
            f"`{name}` must be strictly monotonic along its last axis (Pa, surface-first or "
            f"top-first); {bad.size} profile(s) are not, first at index {int(bad[0])}"
        )


def regrid_matrix(
    pressure_edges: Any,
    model_pressure_edges: Any,
    *,
    extend_model_column: bool = True,
    rtol: float = 1e-6,
) -> np.ndarray:
    """Mass-conserving pressure-overlap regridding from model layers to retrieval layers.

    ``W[p, l, m] = overlap_p(l, m) / sum_m' overlap_p(l, m')``, the overlap of retrieval
    layer ``l`` and model layer ``m`` of profile ``p`` measured in pressure, so that
    ``x_ret = W @ x_model`` gives each retrieval layer the pressure-weighted mean of the
    model layers it overlaps (IMI ``remapping_weights``). Each row of ``W`` sums to 1.

    Conservation: if the model column spans the retrieval column then
    ``sum_l dp_l x_ret,l = sum_m dp_m x_model,m`` for every profile; model layers (or
    parts) outside the retrieval column (e.g. below a higher retrieval surface) get zero
    weight, i.e. the conserved quantity is the model column over the retrieval's
    pressure range.

    Args:
        pressure_edges: ``(npix, nlayer + 1)`` retrieval layer edges, Pa.
        model_pressure_edges: ``(nmodel + 1,)`` shared, or ``(npix, nmodel + 1)`` per profile,
            model layer edges, Pa. Either order (surface-first or top-first), strictly
            monotonic.
        extend_model_column: where the model column does not reach the retrieval's
            surface or top (topography, a lower model lid), stretch the outermost model
            layers to cover it, i.e. fill with the nearest model layer's value (as IMI's
            merged-grid ``remap`` does below the model surface; its newer
            ``remapping_weights`` renormalises over the covered part instead). With
            ``False`` such a profile raises ``ValueError``.
        rtol: coverage tolerance relative to the retrieval column thickness, used when
            ``extend_model_column`` is False.

    Returns:
        ``(npix, nlayer, nmodel)`` NumPy float64 weights.

    Raises:
        ValueError: edges not 2-D / 1-D as above, not finite, negative, not strictly
            monotonic, a pixel-count mismatch, or (``extend_model_column=False``) a model
            column that does not cover the retrieval column.
    """
    r = _float_np("pressure_edges", pressure_edges, 2)
    m = _float_np("model_pressure_edges", model_pressure_edges, np.ndim(model_pressure_edges))
    if m.ndim == 1:
        m = np.broadcast_to(m, (r.shape[0], m.shape[0]))
    if m.ndim != 2:
        raise ValueError(
            f"`model_pressure_edges` must be (nmodel+1,) or (npix, nmodel+1), got shape {m.shape}"
        )
    if m.shape[0] != r.shape[0]:
        raise ValueError(
            f"`model_pressure_edges` has {m.shape[0]} profiles but the retrieval has "
            f"{r.shape[0]} pixels"
        )
    _check_edges("pressure_edges", r)
    _check_edges("model_pressure_edges", m)
    rlo, rhi = np.minimum(r[:, :-1], r[:, 1:]), np.maximum(r[:, :-1], r[:, 1:])
    mlo, mhi = np.minimum(m[:, :-1], m[:, 1:]), np.maximum(m[:, :-1], m[:, 1:])
    r_top, r_bot = r.min(axis=1), r.max(axis=1)
    m_top, m_bot = m.min(axis=1), m.max(axis=1)
    if extend_model_column:
        rows = np.arange(r.shape[0])
        i_top, i_bot = np.argmin(mlo, axis=1), np.argmax(mhi, axis=1)
        mlo = mlo.copy()
        mhi = mhi.copy()
        mlo[rows, i_top] = np.minimum(m_top, r_top)
        mhi[rows, i_bot] = np.maximum(m_bot, r_bot)
    else:
        tol = rtol * (r_bot - r_top)
        uncovered = (r_top < m_top - tol) | (r_bot > m_bot + tol)
        if np.any(uncovered):
            first = int(np.flatnonzero(uncovered)[0])
            raise ValueError(
                f"`model_pressure_edges` do not cover the retrieval column for "
                f"{int(uncovered.sum())} pixel(s) (first: pixel {first}, retrieval "
                f"[{r_top[first]:.6g}, {r_bot[first]:.6g}] Pa, model [{m_top[first]:.6g}, "
                f"{m_bot[first]:.6g}] Pa); pass extend_model_column=True to stretch the "
                "outermost model layers"
            )
    overlap = np.minimum(rhi[:, :, None], mhi[:, None, :]) - np.maximum(
        rlo[:, :, None], mlo[:, None, :]
    )
    overlap = np.maximum(overlap, 0.0)
    total = overlap.sum(axis=-1, keepdims=True)
    if np.any(total <= 0):  # only reachable without extension, within tolerance
        raise ValueError("`model_pressure_edges` leave a retrieval layer without any model layer")
    return overlap / total


class AveragingKernelOperator(AbstractObservationOperator):
    """XCH4 that a retrieval would report for a model methane field (per sounding).

    ``__call__(state)`` returns ``Observations(kind="xch4_ppb", dims=("pixel",))`` with

        ``XCH4_p = y_a,p + sum_i h_p,i a_p,i (x_p,i - x_a,p,i)``  (ppb),

    where ``x_p = state[p]`` on the retrieval layers, or ``x_p = W_p @ state[p]`` when
    the operator was built with ``model_pressure_edges`` (:func:`regrid_matrix`). The
    operator is affine in the state, so :meth:`linearize` (``h a W``) is exact and
    applies to enhancements ``dx`` directly: ``dXCH4 = sum_i h_i a_i (W dx)_i``.

    The state (ppb) is ``(npix, nlayer)`` without ``model_pressure_edges``, otherwise
    ``(npix, nmodel)``: the model's full methane mole fraction sampled at the soundings.
    A bare array is taken as ppb; an :class:`Observations` of kind
    ``"concentration_ppm"`` is converted (x 1000); other kinds are refused.

    Pixels with ``mask`` False are kept in the output (same shape every call) but
    flagged invalid, so :class:`Observations` drops them from any likelihood; their
    inputs may be NaN/fill, which is replaced by neutral values (kernel 0, prior 0,
    sub-column 1, zero regridding row) so values and gradients stay finite.

    Attributes:
        kernel: ``(npix, nlayer)`` column averaging kernel, dimensionless.
        prior: ``(npix, nlayer)`` prior mole fraction, ppb.
        weights: ``(npix, nlayer)`` pressure weights ``h`` (rows sum to 1).
        prior_xch4: ``(npix,)`` prior XCH4 ``y_a``, ppb.
        pressure_edges: ``(npix, nlayer + 1)`` retrieval layer edges, Pa.
        regrid: ``(npix, nlayer, nmodel)`` regridding matrix, or None (state already on
            the retrieval layers).
        mask: ``(npix,)`` validity (True = use), or None (all valid).
        pixel: ``(npix,)`` coordinate written on the output's ``"pixel"`` dim, or None.
        instrument: label for the output observations. Static.
    """

    kernel: Float[Array, "npix nlayer"]
    prior: Float[Array, "npix nlayer"]
    weights: Float[Array, "npix nlayer"]
    prior_xch4: Float[Array, " npix"]
    pressure_edges: Float[Array, "npix nlevel"]
    regrid: Float[Array, "npix nlayer nmodel"] | None
    mask: Bool[Array, " npix"] | None
    pixel: Float[Array, " npix"] | None
    instrument: str = eqx.field(static=True)

    def __init__(
        self,
        averaging_kernel: Any,
        prior_profile: Any,
        dry_air_subcolumns: Any,
        pressure_edges: Any,
        *,
        prior_units: str = "ppb",
        prior_xch4: Any = None,
        model_pressure_edges: Any = None,
        extend_model_column: bool = True,
        mask: Any = None,
        pixel: Any = None,
        instrument: str = "",
    ):
        """Build the operator (all checks here, eagerly, on NumPy copies).

        Args:
            averaging_kernel: ``(npix, nlayer)`` column averaging kernel ``a``, 1.
            prior_profile: ``(npix, nlayer)`` prior ``x_a``: mole fraction in ppb
                (``prior_units="ppb"``) or sub-columns in mol m-2
                (``prior_units="mol m-2"``, converted with the dry-air sub-columns).
            dry_air_subcolumns: ``(npix, nlayer)`` dry-air sub-columns ``d``, mol m-2,
                > 0 (only their ratios enter ``h``).
            pressure_edges: ``(npix, nlayer + 1)`` retrieval layer edges, Pa, ordered
                like the layers.
            prior_units: ``"ppb"`` or ``"mol m-2"``.
            prior_xch4: ``(npix,)`` prior XCH4 ``y_a`` in ppb; default ``sum h x_a``.
            model_pressure_edges: ``(nmodel + 1,)`` or ``(npix, nmodel + 1)`` model layer
                edges, Pa: the state is then on model layers and is regridded.
            extend_model_column: passed to :func:`regrid_matrix`.
            mask: ``(npix,)`` bool, True where the sounding is used.
            pixel: ``(npix,)`` coordinate for the output's ``"pixel"`` dim.
            instrument: label written on the output.

        Raises:
            ValueError: shapes that do not match, unknown ``prior_units``, non-finite
                values at valid pixels, dry-air sub-columns <= 0, bad pressure edges.
        """
        a = _float_np("averaging_kernel", averaging_kernel, 2)
        npix, nlayer = a.shape
        xa = _float_np("prior_profile", prior_profile, 2)
        d = _float_np("dry_air_subcolumns", dry_air_subcolumns, 2)
        pe = _float_np("pressure_edges", pressure_edges, 2)
        for name, arr in (("prior_profile", xa), ("dry_air_subcolumns", d)):
            if arr.shape != (npix, nlayer):
                raise ValueError(
                    f"`{name}` must have the shape of `averaging_kernel` {(npix, nlayer)}, "
                    f"got {arr.shape}"
                )
        if pe.shape != (npix, nlayer + 1):
            raise ValueError(
                f"`pressure_edges` must be (npix, nlayer + 1) = {(npix, nlayer + 1)}, "
                f"got {pe.shape}"
            )
        valid = np.ones(npix, bool)
        if mask is not None:
            m = np.asarray(mask)
            if m.shape != (npix,) or m.dtype != bool:
                raise ValueError(f"`mask` must be a boolean array of shape ({npix},)")
            valid = m.copy()
        ya = None
        if prior_xch4 is not None:
            ya = _float_np("prior_xch4", prior_xch4, 1)
            if ya.shape != (npix,):
                raise ValueError(f"`prior_xch4` must have shape ({npix},), got {ya.shape}")
        named = {
            "averaging_kernel": a,
            "prior_profile": xa,
            "dry_air_subcolumns": d,
            "pressure_edges": pe,
        }
        if ya is not None:
            named["prior_xch4"] = ya[:, None]
        for name, arr in named.items():
            bad = ~np.all(np.isfinite(arr), axis=-1) & valid
            if np.any(bad):
                raise ValueError(
                    f"`{name}` has non-finite values at {int(bad.sum())} valid pixel(s) "
                    f"(first: {int(np.flatnonzero(bad)[0])}); mask them (mask=False)"
                )
        if np.any((d <= 0) & valid[:, None]):
            raise ValueError("`dry_air_subcolumns` must be > 0 mol m-2 at valid pixels")
        # neutral values at invalid pixels: finite output and gradients, masked anyway
        inv = ~valid
        a, xa, d, pe = a.copy(), xa.copy(), d.copy(), pe.copy()
        a[inv], xa[inv], d[inv] = 0.0, 0.0, 1.0
        pe[inv] = np.linspace(1.0e5, 0.0, nlayer + 1)
        _check_edges("pressure_edges", pe)
        if prior_units == "ppb":
            xa_ppb = xa
        elif prior_units in _MOL_M2:
            xa_ppb = xa / d / PPB
        else:
            raise ValueError(f"`prior_units` must be 'ppb' or 'mol m-2', got {prior_units!r}")
        h = d / d.sum(axis=1, keepdims=True)
        if ya is None:
            ya = np.sum(h * xa_ppb, axis=1)
        else:
            ya = np.where(valid, ya, 0.0)
        regrid = None
        if model_pressure_edges is not None:
            me = np.asarray(model_pressure_edges, dtype=np.float64)
            w = np.zeros((npix, nlayer, me.shape[-1] - 1))
            if me.ndim == 1:
                me_valid = me
            elif me.ndim == 2 and me.shape[0] == npix:
                me_valid = me[valid]
            else:
                raise ValueError(
                    "`model_pressure_edges` must be (nmodel+1,) or (npix, nmodel+1) with "
                    f"npix = {npix}, got shape {me.shape}"
                )
            if np.any(valid):
                w[valid] = regrid_matrix(
                    pe[valid], me_valid, extend_model_column=extend_model_column
                )
            regrid = jnp.asarray(w, dtype=float)
        pix = None
        if pixel is not None:
            pix = _float_np("pixel", pixel, 1)
            if pix.shape != (npix,) or not np.all(np.isfinite(pix)):
                raise ValueError(f"`pixel` must be a finite array of shape ({npix},)")
            pix = jnp.asarray(pix, dtype=float)
        self.kernel = jnp.asarray(a, dtype=float)
        self.prior = jnp.asarray(xa_ppb, dtype=float)
        self.weights = jnp.asarray(h, dtype=float)
        self.prior_xch4 = jnp.asarray(ya, dtype=float)
        self.pressure_edges = jnp.asarray(pe, dtype=float)
        self.regrid = regrid
        self.mask = None if mask is None else jnp.asarray(valid)
        self.pixel = pix
        self.instrument = str(instrument)

    @property
    def n_pixels(self) -> int:
        return int(self.kernel.shape[0])

    @property
    def n_layers(self) -> int:
        return int(self.kernel.shape[1])

    @property
    def state_shape(self) -> tuple[int, int]:
        """``(npix, nlayer)``, or ``(npix, nmodel)`` with regridding."""
        if self.regrid is None:
            return (self.n_pixels, self.n_layers)
        return (self.n_pixels, int(self.regrid.shape[-1]))

    def on_retrieval_layers(self, state: Observations | Array) -> Float[Array, "npix nlayer"]:
        """The state (ppb) on the retrieval layers: ``W @ state`` or the state itself."""
        if isinstance(state, Observations):
            factor = _STATE_KIND_TO_PPB.get(state.kind)
            if factor is None:
                raise ValueError(
                    f"`state` of kind {state.kind!r} cannot be a methane mole fraction; pass "
                    f"a ppb array or one of the kinds {sorted(_STATE_KIND_TO_PPB)}"
                )
            x = state.values * factor
        else:
            x = jnp.asarray(state)
        if x.shape != self.state_shape:
            where = "model layers" if self.regrid is not None else "retrieval layers"
            raise ValueError(
                f"`state` must have shape {self.state_shape} (pixels, {where}), got {x.shape}"
            )
        if self.regrid is None:
            return x
        return jnp.einsum("plm,pm->pl", self.regrid, x)

    def __call__(self, state: Observations | Array) -> Observations:
        """Simulated XCH4 (ppb), shape ``(npix,)``, dims ``("pixel",)``."""
        x = self.on_retrieval_layers(state)
        xch4 = self.prior_xch4 + jnp.sum(self.weights * self.kernel * (x - self.prior), axis=-1)
        coords = {} if self.pixel is None else {"pixel": self.pixel}
        return Observations(
            xch4,
            kind="xch4_ppb",
            mask=self.mask,
            dims=("pixel",),
            coords=coords,
            instrument=self.instrument,
        )

    def linearize(self, state: Observations | Array) -> lx.AbstractLinearOperator:
        """Exact Jacobian ``d XCH4 / d state`` (the operator is affine), by JVP/VJP."""
        return autodiff_linearization(self, state)
