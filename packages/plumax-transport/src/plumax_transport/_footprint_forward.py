r"""The linear flux forward model of a footprint (Tier II): ``y = F q + b``.

With a :class:`~plumax_transport.Footprint` ``F`` (receptor units per kg m-2 s-1) the
receptor values for a gridded surface flux ``q`` (kg m-2 s-1, per emission window and
cell) are the matrix-vector product plus a background ``b`` (the receptors' units):

.. math::

   y_r = \sum_c F_{rc}\, q_c + b_r .

The model is exactly linear: its Jacobian with respect to ``q`` is ``F`` everywhere
(:attr:`FootprintForward.operator`), so a Gaussian prior on ``q`` gives the closed-form
analytic inversion (e.g. ``vardax_lite.OptimalInterpolation`` with ``H = F``).

**Checks** (as the Tier I models' ``strict``): a concrete flux outside its
support (NaN; with ``positive``, a flux <= 0) raises ``ValueError``; a traced one (under
``jit``, ``vmap``, ``grad``) is checked at run time, with
:func:`plumax_core.validation.error_if` (``strict=True``; a
:class:`plumax_core.InvalidInputError` under :func:`plumax_core.clean_errors`) or by
NaN receptor values (``strict=False``, so that a sampler rejects the proposal). The
check is one comparison per flux value, small against the sparse product.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from plumax_core import AbstractForwardModel, MetField, Observations, Param, ParamSpec
from plumax_core.linalg import SparseMatrix
from plumax_core.validation import is_concrete

from ._common import Checks
from ._footprint import FLUX_UNITS, Footprint


class FootprintForward(AbstractForwardModel):
    """``flux -> F flux + background``: receptor values of a gridded surface flux.

    Params (``param_spec``): one parameter ``"flux"`` (kg m-2 s-1) of the footprint's
    :attr:`~Footprint.flux_shape`, ``(ny, nx)`` or ``(n_windows, ny, nx)``: unbounded
    (a Gaussian prior; negative values are sinks or corrections to a prior inventory),
    or with ``positive=True`` bounded below by 0 and sampled in log space (a lognormal
    prior).

    Returns :class:`~plumax_core.Observations` of the footprint's ``kind`` with dims
    ``("receptor",)``, shape ``(n_receptors,)`` (``(*batch, n_receptors)`` for a batch
    of fluxes). The ``met`` argument of ``__call__`` is not used: the met is already in
    the footprint (accepted for the forward-model protocol).

    Attributes:
        footprint: the :class:`Footprint`.
        background: receptor values without the flux, in the receptors' units: a scalar
            or ``(n_receptors,)``.
        positive: the flux is > 0 and log-transformed in the unconstrained space.
        strict: a traced call with a flux outside its support raises at run time (True)
            or returns NaN receptor values (False) (module docstring).
    """

    footprint: Footprint
    background: Float[Array, ""] | Float[Array, " n"]
    positive: bool = eqx.field(static=True)
    strict: bool = eqx.field(static=True)

    def __init__(
        self,
        footprint: Footprint,
        background=0.0,
        *,
        positive: bool = False,
        strict: bool = True,
    ):
        if not isinstance(footprint, Footprint):
            raise ValueError(f"`footprint` must be a Footprint, got {type(footprint).__name__}")
        self.footprint = footprint
        self.background = jnp.asarray(background, dtype=footprint.matrix.dtype)
        self.positive = bool(positive)
        self.strict = bool(strict)

    def __check_init__(self):
        n = self.footprint.n_receptors
        if self.background.shape not in ((), (n,)):
            raise ValueError(
                f"`background` must be a scalar or have shape ({n},) (one per receptor), got "
                f"{self.background.shape}"
            )
        if is_concrete(self.background) and not np.all(np.isfinite(np.asarray(self.background))):
            raise ValueError("`background` must be finite")

    @property
    def param_spec(self) -> ParamSpec:
        lower = 0.0 if self.positive else -math.inf
        return ParamSpec(
            (
                Param(
                    "flux",
                    shape=self.footprint.flux_shape,
                    units=FLUX_UNITS,
                    lower=lower,
                    log=self.positive,
                    description="surface flux per (emission window,) cell",
                ),
            )
        )

    @property
    def operator(self) -> SparseMatrix:
        """The Jacobian ``F`` over the flattened flux (the model is linear)."""
        return self.footprint.operator

    def __call__(self, params: Mapping[str, Array], met: MetField | None = None) -> Observations:
        """``F flux + background`` (module docstring).

        Raises:
            ValueError: a params dict without exactly ``"flux"``, a flux not ending in the
                footprint's flux shape, or a flux with NaN or, with ``positive``, a value
                <= 0 (traced: at run time, or NaN values with ``strict=False``).
        """
        spec = self.param_spec
        spec.validate(params)
        q = jnp.asarray(params["flux"])
        if not jnp.issubdtype(q.dtype, jnp.floating):
            q = q.astype(self.footprint.matrix.dtype)
        check = Checks(inside=not is_concrete(q), strict=self.strict)
        if check.inside:
            q = check(q, ~spec.in_support({"flux": q}), self._support_message)
        else:
            spec.check_in_support({"flux": q})
        values = self.footprint.apply(q) + self.background
        if check.flags:  # traced, strict=False (as _common.run_checked)
            values = jnp.where(check.flags[self._support_message], jnp.nan, values)
        return Observations(values, kind=self.footprint.kind, dims=_dims(values.ndim))

    @property
    def _support_message(self) -> str:
        if self.positive:
            return "`params['flux']` contains NaN or a value <= 0 (positive=True)"
        return "`params['flux']` contains NaN"


def _dims(ndim: int) -> tuple[str, ...]:
    return tuple(f"batch_{i}" for i in range(ndim - 1)) + ("receptor",)
