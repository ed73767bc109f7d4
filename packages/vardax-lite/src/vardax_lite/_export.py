"""Export a per-event posterior as a mark likelihood for population models.

A population model (plumax-pod) needs, for each detected event, the *likelihood*
``p(y | z)`` of its parameters, not the posterior ``p(z | y) ∝ p(y | z) π(z)`` that the
event-level inference produced under its own prior ``π``. Dividing the prior out is an
importance correction (Hogg, Myers & Bovy 2010, ApJ 725:2166, eq. 9): with posterior
draws ``z_i``, weights ``w_i ∝ 1 / π(z_i)`` turn them into draws from the normalised
likelihood. For Gaussian posterior and prior (in the same unconstrained space) the
division is exact (a ratio of Gaussians):

.. math::

    \\Lambda^{-1} = P^{-1} - B^{-1}, \\qquad
    \\mu_L = \\Lambda (P^{-1}\\mu - B^{-1} z_b),

valid when ``P^{-1} - B^{-1}`` is positive definite (the data were informative in every
direction). :class:`GaussianMarkLikelihood` stores the posterior (covariance as a
diagonal, a Cholesky factor or a low-rank update, samples when present), the Gaussian
prior, and the prior log-density at the mean and at every sample.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import lineax as lx
import numpy as np
from jaxtyping import Array, Float

from plumax_core import GaussianPrior, ParamSpec, Posterior, linalg

SCHEMA = "vardax-lite/gaussian-mark-likelihood/1"
_PSD = (lx.symmetric_tag, lx.positive_semidefinite_tag)


def _cov_to_dict(cov: lx.AbstractLinearOperator) -> dict[str, Any]:
    base = cov.operator if isinstance(cov, lx.TaggedLinearOperator) else cov
    if isinstance(base, lx.DiagonalLinearOperator):
        return {"type": "diagonal", "diagonal": np.asarray(base.diagonal).tolist()}
    if isinstance(base, linalg.LowRankUpdate) and isinstance(base.base, lx.DiagonalLinearOperator):
        if base.V is None:
            k = base.rank
            C = np.eye(k) if base.C is None else np.asarray(base.C)
            return {
                "type": "low_rank",
                "diagonal": np.asarray(base.base.diagonal).tolist(),
                "U": np.asarray(base.U).tolist(),
                "C": C.tolist(),
            }
    if isinstance(base, lx.ComposedLinearOperator) and _is_chol_product(base):
        return {"type": "cholesky", "L": np.asarray(base.operator1.matrix).tolist()}
    L = np.linalg.cholesky(np.asarray(cov.as_matrix(), dtype=np.float64))
    dtype = np.asarray(lx.diagonal(cov)).dtype
    return {"type": "cholesky", "L": L.astype(dtype).tolist()}


def _is_chol_product(op) -> bool:
    a, b = op.operator1, op.operator2
    return (
        isinstance(a, lx.MatrixLinearOperator)
        and lx.is_lower_triangular(a)
        and isinstance(b, lx.MatrixLinearOperator)
        and lx.is_upper_triangular(b)
        and bool(jnp.array_equal(b.matrix, a.matrix.T))
    )


def _cov_from_dict(d: Mapping[str, Any], dtype) -> lx.AbstractLinearOperator:
    arr = lambda x: jnp.asarray(np.asarray(x, dtype=dtype))
    kind = d.get("type")
    if kind == "diagonal":
        return lx.DiagonalLinearOperator(arr(d["diagonal"]))
    if kind == "low_rank":
        return linalg.LowRankUpdate(
            lx.DiagonalLinearOperator(arr(d["diagonal"])), arr(d["U"]), arr(d["C"])
        )
    if kind == "cholesky":
        L = arr(d["L"])
        return chol_covariance(L)
    raise ValueError(f"unknown covariance type {kind!r}")


def chol_covariance(L: Float[Array, "D D"]) -> lx.AbstractLinearOperator:
    """``L L^T`` as a lazy SPD-tagged operator from a lower-triangular factor ``L``."""
    Lop = lx.MatrixLinearOperator(L, lx.lower_triangular_tag)
    Lt = lx.MatrixLinearOperator(L.T, lx.upper_triangular_tag)
    return lx.TaggedLinearOperator(Lop @ Lt, _PSD)


def _posterior_to_dict(post: Posterior) -> dict[str, Any]:
    return {
        "dtype": str(post.mean.dtype),
        "mean": np.asarray(post.mean).tolist(),
        "cov": None if post.cov is None else _cov_to_dict(post.cov),
        "samples": None if post.samples is None else np.asarray(post.samples).tolist(),
        "provenance": post.provenance.to_dict(),
        "param_spec": None if post.param_spec is None else post.param_spec.to_dict(),
    }


def _posterior_from_dict(d: Mapping[str, Any]) -> Posterior:
    dtype = np.dtype(d["dtype"])
    arr = lambda x: jnp.asarray(np.asarray(x, dtype=dtype))
    cov = None if d.get("cov") is None else _cov_from_dict(d["cov"], dtype)
    samples = None if d.get("samples") is None else arr(d["samples"])
    spec = None if d.get("param_spec") is None else ParamSpec.from_dict(d["param_spec"])
    prov = {
        k: (float(v) if isinstance(v, str) and v in ("inf", "-inf", "nan") else v)
        for k, v in d["provenance"].items()
    }
    return Posterior(arr(d["mean"]), cov, samples, provenance=prov, param_spec=spec)


class GaussianMarkLikelihood:
    """A per-event posterior packaged as a mark likelihood (JSON round trip is exact).

    Args:
        posterior: the event's :class:`plumax_core.Posterior` (unconstrained space).
        event_metadata: JSON-like description of the event (id, time, location, ...).
        prior: the Gaussian prior the posterior was computed under (same space); needed
            to divide it out. None = no importance correction available.
    """

    def __init__(
        self,
        posterior: Posterior,
        event_metadata: Mapping[str, Any] | None = None,
        *,
        prior: GaussianPrior | None = None,
    ):
        if not isinstance(posterior, Posterior):
            raise TypeError(f"`posterior` must be a Posterior, got {type(posterior).__name__}")
        meta = dict(event_metadata or {})
        try:
            json.dumps(meta)
        except TypeError as err:
            raise TypeError(f"`event_metadata` must be JSON-serialisable: {err}") from None
        if prior is not None:
            if not isinstance(prior, GaussianPrior):
                raise TypeError(f"`prior` must be a GaussianPrior, got {type(prior).__name__}")
            if prior.param_spec.size != posterior.dim:
                raise ValueError(
                    f"`prior` has D={prior.param_spec.size} but the posterior has D={posterior.dim}"
                )
        self.posterior = posterior
        self.event_metadata = meta
        self.prior = prior

    # -- the prior, divided out -------------------------------------------------

    def log_prior(self, z: Float[Array, "*batch D"]) -> Float[Array, "*batch"]:
        """Per-event prior log-density ``log π(z)`` in the unconstrained space."""
        if self.prior is None:
            raise ValueError("this mark likelihood has no `prior`; it cannot be divided out")
        return self.prior.log_prob_unconstrained(z)

    def importance_weights(self) -> Float[Array, " N"]:
        """Normalised weights ``∝ 1/π(z_i)`` of the (flattened) posterior samples."""
        z = self.posterior.flat_samples()
        lw = -self.log_prior(z)
        lw = lw - jnp.max(lw)
        w = jnp.exp(lw)
        return w / jnp.sum(w)

    def likelihood_gaussian(self) -> tuple[Float[Array, " D"], Float[Array, "D D"]]:
        """Mean and covariance of the Gaussian likelihood from the samples, prior divided out.

        Importance-weighted moments of the posterior draws with weights ``∝ 1/π(z_i)``;
        without samples, the exact ratio of Gaussians (module docstring).
        """
        if self.posterior.samples is None:
            return self.likelihood_gaussian_exact()
        z = self.posterior.flat_samples()
        w = self.importance_weights()
        mu = w @ z
        r = z - mu
        cov = (r * w[:, None]).T @ r / (1.0 - jnp.sum(w**2))
        return mu, cov

    def likelihood_gaussian_exact(self) -> tuple[Float[Array, " D"], Float[Array, "D D"]]:
        """``(mu_L, Lambda)`` by dividing the Gaussian posterior by the Gaussian prior."""
        if self.prior is None:
            raise ValueError("this mark likelihood has no `prior`; it cannot be divided out")
        post = self.posterior
        if post.cov is None:
            P = jnp.cov(post.flat_samples(), rowvar=False).reshape(post.dim, post.dim)
        else:
            P = post.cov.as_matrix()
        Pi = jnp.linalg.inv(P)
        Bi = linalg.inverse(self.prior.cov).as_matrix()
        prec = Pi - Bi
        if not bool(np.all(np.linalg.eigvalsh(np.asarray(0.5 * (prec + prec.T))) > 0)):
            raise ValueError(
                "P^-1 - B^-1 is not positive definite: the data do not constrain every "
                "direction, so the likelihood is not a normalisable Gaussian"
            )
        Lam = jnp.linalg.inv(prec)
        mu = Lam @ (Pi @ post.mean - Bi @ self.prior.mean)
        return mu, 0.5 * (Lam + Lam.T)

    def log_likelihood(self, z: Float[Array, "*batch D"]) -> Float[Array, "*batch"]:
        """``log p(y | z)`` up to an additive constant: ``log N(z; mu_L, Lambda)``."""
        mu, Lam = self.likelihood_gaussian()
        r = jnp.asarray(z) - mu
        sol = jnp.linalg.solve(Lam, r[..., None])[..., 0]
        return -0.5 * jnp.sum(r * sol, axis=-1) - 0.5 * jnp.linalg.slogdet(Lam)[1]

    # -- serialisation -----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (schema :data:`SCHEMA`)."""
        post = self.posterior
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "event_metadata": self.event_metadata,
            "posterior": _posterior_to_dict(post),
            "prior": None,
            "log_prior_at_mean": None,
            "log_prior_at_samples": None,
        }
        if self.prior is not None:
            out["prior"] = {
                "type": "gaussian",
                "mean": np.asarray(self.prior.mean).tolist(),
                "cov": _cov_to_dict(self.prior.cov),
                "param_spec": self.prior.param_spec.to_dict(),
            }
            out["log_prior_at_mean"] = float(self.log_prior(post.mean))
            if post.samples is not None:
                lp = self.log_prior(post.samples)
                out["log_prior_at_samples"] = np.asarray(lp).tolist()
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GaussianMarkLikelihood:
        """Inverse of :meth:`to_dict`."""
        if d.get("schema") != SCHEMA:
            raise ValueError(f"unknown mark-likelihood schema {d.get('schema')!r}; want {SCHEMA!r}")
        post = _posterior_from_dict(d["posterior"])
        prior = None
        if d.get("prior") is not None:
            p = d["prior"]
            dtype = post.mean.dtype
            prior = GaussianPrior(
                jnp.asarray(np.asarray(p["mean"], dtype=dtype)),
                _cov_from_dict(p["cov"], dtype),
                ParamSpec.from_dict(p["param_spec"]),
            )
        return cls(post, d.get("event_metadata"), prior=prior)

    @classmethod
    def from_json(cls, text: str) -> GaussianMarkLikelihood:
        return cls.from_dict(json.loads(text))
