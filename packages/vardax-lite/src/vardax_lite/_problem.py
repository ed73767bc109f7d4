"""The inverse problem: forward model, met, observations, prior and likelihood in one bundle.

Every analysis of vardax-lite works on a :class:`Problem`. The control variable is the
*whitened* unconstrained parameter vector

.. math::

    \\chi = L^{-1}(z - z_b), \\qquad L L^\\top = B,

where ``z`` is the flat unconstrained vector of the model's ``param_spec``, ``z_b`` and
``B`` the mean and covariance of the Gaussian prior (in that space) and ``L`` its
structured Cholesky factor (:func:`plumax_core.linalg.cholesky`). In these variables the
prior is ``N(0, I)`` and the Gaussian cost is a plain sum of squares (Courtier et al.
1994, QJRMS 120:1367, §2; Bannister 2008, QJRMS 134:1951):

.. math::

    J(\\chi) = \\tfrac12 \\chi^\\top\\chi
        + \\tfrac12 \\lVert R^{-1/2}\\,(h(z(\\chi)) - y)\\rVert^2 .

A Student-t likelihood replaces the data term by
``sum (nu + 1)/2 log(1 + w_i^2 / nu)`` with ``w = (h - y) / sigma`` (heteroscedastic
``sigma``). Masked observations contribute nothing.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, Float

from plumax_core import (
    AbstractForwardModel,
    AbstractPrior,
    GaussianPrior,
    MetField,
    Observations,
    ParamSpec,
    forward_flat,
    linalg,
)
from plumax_core.validation import is_concrete

LIKELIHOODS = ("gaussian", "student_t")


def _is_diagonal(op: lx.AbstractLinearOperator) -> bool:
    return isinstance(op, lx.DiagonalLinearOperator) or (
        isinstance(op, lx.TaggedLinearOperator)
        and isinstance(op.operator, lx.DiagonalLinearOperator)
    )


def check_spd(op: lx.AbstractLinearOperator, name: str, *, max_dense: int = 4096) -> None:
    """Raise ``ValueError`` naming ``name`` unless a concrete operator is SPD.

    Diagonal operators are checked elementwise; a :class:`plumax_core.linalg.Kronecker`
    product is SPD exactly when every factor is (its eigenvalues are the products of
    the factors'), and a symmetric :class:`plumax_core.linalg.DiagonalScaled`
    ``D A D`` exactly when ``A`` is and ``D`` has no zero, so those are checked
    through their parts without forming the product (a 50 x 50 grid's Matern prior
    is checked on two 50 x 50 factors, not one 2500 x 2500 matrix). Other operators of
    size ``<= max_dense`` are materialised and checked for symmetry and a finite
    Cholesky factor. A traced operator (under ``jit``) is not checked.
    """
    if not isinstance(op, lx.AbstractLinearOperator):
        raise TypeError(
            f"`{name}` must be a lineax.AbstractLinearOperator, got {type(op).__name__}"
        )
    if op.in_size() != op.out_size():
        raise ValueError(f"`{name}` must be square, got {op.out_size()}x{op.in_size()}")
    if _is_diagonal(op):
        d = lx.diagonal(op)
        if not is_concrete(d):  # traced (under jit): nothing to check
            return
        d = np.asarray(d)
        if not np.all(np.isfinite(d)) or np.any(d <= 0):
            raise ValueError(f"`{name}` is not positive definite (diagonal has entries <= 0)")
        return
    if isinstance(op, linalg.Kronecker):
        for i, factor in enumerate(op.factors):
            check_spd(factor, f"{name} (Kronecker factor {i})", max_dense=max_dense)
        return
    if isinstance(op, linalg.DiagonalScaled) and op.right is None:
        if is_concrete(op.left):  # traced (under jit): only `A` can still be checked
            scale = np.asarray(op.left)
            if not np.all(np.isfinite(scale)) or np.any(scale == 0):
                raise ValueError(f"`{name}` is not positive definite (a zero or non-finite scale)")
        check_spd(op.operator, name, max_dense=max_dense)
        return
    if op.in_size() > max_dense:
        return
    m = op.as_matrix()
    if not is_concrete(m):  # traced (under jit): nothing to check
        return
    m = np.asarray(m, dtype=np.float64)
    if not np.all(np.isfinite(m)):
        raise ValueError(f"`{name}` has non-finite entries")
    scale = max(float(np.max(np.abs(m))), 1e-300)
    if np.max(np.abs(m - m.T)) > 1e-8 * scale:
        raise ValueError(f"`{name}` is not symmetric")
    try:
        np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        eig = float(np.linalg.eigvalsh(m)[0])
        raise ValueError(
            f"`{name}` is not symmetric positive definite (smallest eigenvalue {eig:.3g})"
        ) from None


class Problem(eqx.Module):
    """An inverse problem ``y = h(x(z)) + e`` with a prior on the unconstrained ``z``.

    Attributes:
        forward_model: any :class:`plumax_core.AbstractForwardModel` ``h``.
        met: the :class:`plumax_core.MetField` it runs under.
        observations: the data ``y`` (any shape ``S``) with ``sigma`` or a ``noise``
            operator ``R`` over ``values.ravel()`` and an optional ``mask``.
        prior: prior over the parameters; a :class:`plumax_core.GaussianPrior` is needed
            by the variational analyses (it defines the whitening ``L``), any
            :class:`plumax_core.AbstractPrior` works for :class:`NUTSOracle`.
        likelihood: ``"gaussian"`` or ``"student_t"`` (static).
        df: Student-t degrees of freedom ``nu > 0`` (static; ignored for Gaussian).

    Raises:
        ValueError: a non-SPD prior covariance or noise operator, observations without
            errors, a forward model whose output shape differs from the observations',
            a mask with a correlated ``noise`` operator, a Student-t likelihood with a
            correlated ``noise`` operator, or an unknown likelihood.
    """

    forward_model: AbstractForwardModel
    met: MetField
    observations: Observations
    prior: AbstractPrior
    prior_sqrt: lx.AbstractLinearOperator | None
    obs_sqrt: lx.AbstractLinearOperator
    likelihood: str = eqx.field(static=True)
    df: float = eqx.field(static=True)

    def __init__(
        self,
        forward_model: AbstractForwardModel,
        met: MetField,
        observations: Observations,
        prior: AbstractPrior,
        *,
        likelihood: str = "gaussian",
        df: float = 4.0,
    ):
        if not isinstance(forward_model, AbstractForwardModel):
            raise TypeError(
                "`forward_model` must be an AbstractForwardModel, got "
                f"{type(forward_model).__name__}"
            )
        if not isinstance(met, MetField):
            raise TypeError(f"`met` must be a MetField, got {type(met).__name__}")
        if not isinstance(observations, Observations):
            raise TypeError(
                f"`observations` must be Observations, got {type(observations).__name__}"
            )
        if not isinstance(prior, AbstractPrior):
            raise TypeError(f"`prior` must be an AbstractPrior, got {type(prior).__name__}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"`likelihood` must be one of {LIKELIHOODS}, got {likelihood!r}")
        if not (math.isfinite(df) and df > 0):
            raise ValueError(f"`df` must be finite and > 0, got {df}")
        if observations.sigma is None and observations.noise is None:
            raise ValueError(
                "`observations` carry no `sigma` or `noise`: the likelihood needs their errors"
            )
        if prior.param_spec.size != forward_model.param_spec.size:
            raise ValueError(
                f"`prior` is over D={prior.param_spec.size} parameters but the forward model "
                f"has D={forward_model.param_spec.size}"
            )
        self.forward_model = forward_model
        self.met = met
        self.observations = observations
        self.prior = prior
        self.likelihood = likelihood
        self.df = float(df)
        if isinstance(prior, GaussianPrior):
            check_spd(prior.cov, "B (prior covariance)")
            self.prior_sqrt = linalg.cholesky(prior.cov)
        else:
            self.prior_sqrt = None
        R = observations.error_covariance()
        if observations.noise is not None:
            check_spd(R, "R (observations.noise)")
            if not _is_diagonal(R):
                if observations.mask is not None and not bool(
                    np.all(np.asarray(observations.mask))
                ):
                    raise ValueError(
                        "a `mask` with a correlated `noise` operator is not supported; drop the "
                        "masked rows from `values` and `noise` instead"
                    )
                if likelihood == "student_t":
                    raise ValueError("`likelihood='student_t'` needs per-element `sigma`")
        self.obs_sqrt = linalg.cholesky(R)
        z0 = jax.ShapeDtypeStruct((prior.param_spec.size,), jnp.result_type(float))
        out = jax.eval_shape(forward_flat(forward_model, met, unconstrained=True), z0)
        if out.shape != (observations.size,):
            raise ValueError(
                f"the forward model returns {out.shape[0]} values but `observations` has "
                f"{observations.size} (shape {observations.shape})"
            )

    # -- sizes ---------------------------------------------------------------------

    @property
    def param_spec(self) -> ParamSpec:
        return self.forward_model.param_spec

    @property
    def dim(self) -> int:
        """D, the number of (flat) parameters."""
        return self.param_spec.size

    @property
    def n_obs(self) -> int:
        """Number of observation elements (including masked ones)."""
        return self.observations.size

    @property
    def R(self) -> lx.AbstractLinearOperator:
        """Observation-error covariance over ``values.ravel()``."""
        return self.observations.error_covariance()

    @property
    def B(self) -> lx.AbstractLinearOperator:
        return self._gaussian_prior().cov

    @property
    def z_b(self) -> Float[Array, " D"]:
        """Prior (background) mean in unconstrained space."""
        return self._gaussian_prior().mean

    def _gaussian_prior(self) -> GaussianPrior:
        if not isinstance(self.prior, GaussianPrior):
            raise TypeError(
                "this analysis needs a GaussianPrior (it defines the whitened control "
                f"variable); got {type(self.prior).__name__}"
            )
        return self.prior

    # -- data ----------------------------------------------------------------------

    @property
    def y(self) -> Float[Array, " m"]:
        """Observed values, flat, with masked entries set to 0."""
        return self.observations.filled(0.0).ravel()

    @property
    def weights(self) -> Float[Array, " m"]:
        """1.0 for valid observations, 0.0 for masked ones (flat)."""
        return self.observations.valid().ravel().astype(self.y.dtype)

    @property
    def n_valid(self) -> Array:
        return jnp.sum(self.weights)

    def with_data(self, y=None, z_b=None) -> Problem:
        """A copy with new observed values (shape ``S``) and/or prior mean (traceable)."""
        out = self
        if y is not None:
            out = eqx.tree_at(
                lambda p: p.observations.values, out, jnp.reshape(y, self.observations.shape)
            )
        if z_b is not None:
            out = eqx.tree_at(lambda p: p.prior.mean, out, z_b)
        return out

    # -- maps --------------------------------------------------------------------------

    def predict(self, z: Float[Array, " D"]) -> Float[Array, " m"]:
        """``h(x(z))`` flattened: model-predicted observations at unconstrained ``z``."""
        return forward_flat(self.forward_model, self.met, unconstrained=True)(z)

    def to_control(self, z: Float[Array, " D"]) -> Float[Array, " D"]:
        """``chi = L^{-1}(z - z_b)``."""
        return linalg.solve(self.prior_sqrt, z - self.z_b)

    def from_control(self, chi: Float[Array, " D"]) -> Float[Array, " D"]:
        """``z = z_b + L chi``."""
        self._gaussian_prior()
        return self.z_b + self.prior_sqrt.mv(chi)

    def whiten_obs(self, r: Float[Array, " m"]) -> Float[Array, " m"]:
        """``R^{-1/2} r`` (elementwise division for diagonal ``R``), zero where masked."""
        if _is_diagonal(self.obs_sqrt):
            w = r / lx.diagonal(self.obs_sqrt)
        else:
            w = linalg.solve(self.obs_sqrt, r)
        return jnp.where(self.weights > 0, w, 0.0)

    def whitened_residual(self, z: Float[Array, " D"]) -> Float[Array, " m"]:
        """``R^{-1/2}(h(x(z)) - y)``, zero where masked."""
        return self.whiten_obs(self.predict(z) - self.y)

    def residuals(self, chi: Float[Array, " D"], args=None) -> tuple[Array, Array]:
        """Least-squares residuals ``(chi, R^{-1/2}(h - y))`` (Gaussian likelihood)."""
        del args
        return chi, self.whitened_residual(self.from_control(chi))

    def data_cost(self, z: Float[Array, " D"]) -> Float[Array, ""]:
        """Negative log-likelihood up to a constant."""
        w = self.whitened_residual(z)
        if self.likelihood == "gaussian":
            return 0.5 * jnp.sum(w**2)
        return 0.5 * (self.df + 1.0) * jnp.sum(self.weights * jnp.log1p(w**2 / self.df))

    def cost(self, chi: Float[Array, " D"], args=None) -> Float[Array, ""]:
        """``J(chi) = chi.chi / 2 + data_cost(z(chi))`` (negative log posterior + const)."""
        del args
        return 0.5 * jnp.sum(chi**2) + self.data_cost(self.from_control(chi))

    def log_likelihood(self, z: Float[Array, " D"]) -> Float[Array, ""]:
        """Normalised log-likelihood ``log p(y | z)`` over the valid observations."""
        w = self.whitened_residual(z)
        if _is_diagonal(self.obs_sqrt):
            log_sd = jnp.sum(self.weights * jnp.log(lx.diagonal(self.obs_sqrt)))
        else:
            log_sd = 0.5 * linalg.logdet(self.R)
        n = self.n_valid
        if self.likelihood == "gaussian":
            return -0.5 * jnp.sum(w**2) - log_sd - 0.5 * n * math.log(2 * math.pi)
        nu = self.df
        c = (
            jax.scipy.special.gammaln((nu + 1) / 2)
            - jax.scipy.special.gammaln(nu / 2)
            - 0.5 * math.log(nu * math.pi)
        )
        return n * c - log_sd - self.data_cost(z)

    def log_posterior(self, z: Float[Array, " D"]) -> Float[Array, ""]:
        """Unnormalised log posterior density of the unconstrained ``z``."""
        return self.prior.log_prob_unconstrained(z) + self.log_likelihood(z)

    def whitened_jacobian(self, chi: Float[Array, " D"]) -> lx.AbstractLinearOperator:
        """``G = R^{-1/2} H' L`` at ``chi`` as a JVP-based lineax operator (``m x D``).

        ``H'`` is the Jacobian of the forward map in unconstrained coordinates;
        ``G.T.mv`` is the corresponding VJP (the adjoint), so nothing is materialised.
        """
        fn = lambda c: self.whitened_residual(self.from_control(c))
        _, jvp = jax.linearize(fn, chi)
        return lx.FunctionLinearOperator(jvp, jax.ShapeDtypeStruct(chi.shape, chi.dtype))
