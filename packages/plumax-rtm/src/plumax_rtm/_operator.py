"""``RadianceOperator``: column-enhancement image -> at-sensor radiance cube."""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jaxtyping import Array, Float

from plumax_core import AbstractObservationOperator, Observations

from ._forward import BeerLambertRTM, mol_m2_to_ppm_m
from ._instruments import NoiseModel, SpectralResponse


class RadianceOperator(AbstractObservationOperator):
    """Maps a column enhancement image ``(ny, nx)`` to a radiance cube ``(ny, nx, m)``.

    ``L_j(y, x) = Σ_i W_ji · RTM(ΔX(y, x), s_w, a(y, x) · c)_i``: the Beer-Lambert model
    per pixel, then the instrument's spectral response.

    Attributes:
        rtm: the fine-grid forward model.
        srf: the instrument response (fine grid must match ``rtm.wavelength``).
        albedo: ``(ny, nx)`` per-pixel reflectance scaling, or None (= 1).
        h2o_scale: water-vapour scaling.
        coeffs: ``(k,)`` reflectance Legendre coefficients.
        noise: optional :class:`NoiseModel` (sets ``sigma`` of the output).
        instrument: label.

    Accepts ``Observations`` of kind ``column_ppm_m`` or ``column_mol_m2`` (converted at
    STP) or a plain array in ppm·m. ``linearize`` is the exact JVP/VJP of ``__call__``
    (:func:`plumax_core.autodiff_linearization`).
    """

    rtm: BeerLambertRTM
    srf: SpectralResponse
    albedo: Float[Array, "ny nx"] | None
    h2o_scale: Float[Array, ""]
    coeffs: Float[Array, " k"]
    noise: NoiseModel | None
    instrument: str = eqx.field(static=True)

    def __init__(
        self, rtm, srf, *, albedo=None, h2o_scale=1.0, coeffs=None, noise=None, instrument=""
    ):
        self.rtm = rtm
        self.srf = srf
        self.albedo = None if albedo is None else jnp.asarray(albedo)
        self.h2o_scale = jnp.asarray(h2o_scale)
        self.coeffs = rtm.default_coeffs() if coeffs is None else jnp.asarray(coeffs)
        self.noise = noise
        self.instrument = instrument

    def __check_init__(self):
        if self.srf.fine_wavelength.shape != self.rtm.wavelength.shape:
            raise ValueError("`srf` fine grid must equal `rtm.wavelength`")

    def _ppm_m(self, state) -> Array:
        if isinstance(state, Observations):
            if state.kind == "column_ppm_m":
                return state.filled(0.0)
            if state.kind == "column_mol_m2":
                return mol_m2_to_ppm_m(state.filled(0.0))
            raise ValueError(
                f"`state` kind must be column_ppm_m or column_mol_m2, got {state.kind!r}"
            )
        return jnp.asarray(state)

    def radiance(self, enhancement: Float[Array, "ny nx"]) -> Float[Array, "ny nx m"]:
        if enhancement.ndim != 2:
            raise ValueError(f"`state` must be an image (ny, nx), got shape {enhancement.shape}")
        alb = jnp.ones_like(enhancement) if self.albedo is None else self.albedo
        if alb.shape != enhancement.shape:
            raise ValueError(f"`albedo` shape {alb.shape} != state shape {enhancement.shape}")

        def pix(dx, a):
            return self.srf(self.rtm(dx, self.h2o_scale, a * self.coeffs))

        return jax.vmap(jax.vmap(pix))(enhancement, alb)

    def __call__(self, state) -> Observations:
        L = self.radiance(self._ppm_m(state))
        sigma = None if self.noise is None else self.noise.sigma(L)
        return Observations(
            L,
            kind="radiance",
            sigma=sigma,
            dims=("y", "x", "band"),
            coords={"band": self.srf.centers},
            instrument=self.instrument,
        )

    def linearize(self, state) -> lx.AbstractLinearOperator:
        x0 = self._ppm_m(state)
        _, jvp = jax.linearize(self.radiance, x0)
        return lx.FunctionLinearOperator(jvp, jax.eval_shape(lambda: x0))
