"""``Posterior``: what every inference in plumax returns.

The seed contract: ``mean`` (always), ``cov`` (a lineax operator or None), ``samples``
(``(B, M, D)`` — B chains/batches of M draws — or None) and ``provenance``. All three
live in one flat parameter space of dimension D: the *unconstrained* coordinates of
``param_spec`` when one is attached (so a Gaussian over log Q is a lognormal over Q),
or raw coordinates when ``param_spec`` is None. :meth:`Posterior.sample_params` and
:meth:`Posterior.credible_interval` map back to physical units.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._params import ParamSpec
from ._provenance import Provenance
from ._validation import (
    as_float_array,
    check_covariance,
    check_finite,
    covariance_error_if,
    is_concrete,
    positive_error_if,
)


class Posterior(eqx.Module):
    """A posterior over a flat parameter vector of size D.

    Attributes:
        mean: ``(D,)`` posterior mean.
        cov: ``D x D`` covariance as a lineax operator (never materialised unless
            asked), or None when only samples are available.
        samples: ``(B, M, D)`` draws (B chains or batches of M draws), or None.
        provenance: a :class:`~plumax_core.Provenance` (a plain mapping is validated
            and converted).
        param_spec: the parameter layout; the space of ``mean`` / ``cov`` / ``samples``
            is ``param_spec``'s unconstrained space. None = raw coordinates.

    ``cov`` must be a covariance: symmetric positive definite with finite entries. It
    is checked at construction by :func:`plumax_core.validation.check_covariance`: in
    full (materialised in float64: symmetry and a Cholesky factorisation, with
    tolerances set by the dtype's resolution) up to ``D = DENSE_CHECK_MAX`` (512); for
    larger, typically lazy operators by three matrix-vector probes (finite, ``vᵀCv > 0``,
    symmetric), so that constructing a large posterior never materialises its
    covariance. A ``cov`` holding tracers (a posterior built inside ``jax.jit``) is
    checked at run time when it is diagonal or dense (finite, positive variances);
    other traced operators are not checked there. Whatever slipped through (a large
    lazy operator with a defect the probes missed) is caught by :meth:`variance` /
    :meth:`std`, which raise rather than return NaN.

    Raises:
        ValueError: non-1-D or non-finite mean, non-square or wrongly sized ``cov``, a
            ``cov`` that is not symmetric positive definite or holds NaN/inf,
            ``samples`` not ``(B, M, D)`` or non-finite, fewer than 2 samples without
            ``cov`` (no spread), ``param_spec`` size != D, missing mandatory
            provenance keys, or neither ``cov`` nor ``samples`` (a point estimate with
            no spread is not a posterior).
    """

    mean: Float[Array, " D"]
    cov: lx.AbstractLinearOperator | None
    samples: Float[Array, "B M D"] | None
    provenance: Provenance = eqx.field(static=True, converter=Provenance)
    param_spec: ParamSpec | None = None

    def __init__(self, mean, cov=None, samples=None, *, provenance, param_spec=None):
        self.mean = as_float_array("mean", mean)
        if cov is not None and not isinstance(cov, lx.AbstractLinearOperator):
            arr = as_float_array("cov", cov)
            if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
                raise ValueError(f"`cov` must be a square matrix, got shape {arr.shape}")
            cov = lx.MatrixLinearOperator(arr, lx.positive_semidefinite_tag)
        if cov is not None and isinstance(cov, lx.AbstractLinearOperator):
            cov = covariance_error_if("cov", cov)
        self.cov = cov
        self.samples = None if samples is None else as_float_array("samples", samples)
        self.provenance = provenance
        self.param_spec = param_spec

    def __check_init__(self):
        if self.mean.ndim != 1:
            raise ValueError(f"`mean` must be 1-D (D,), got shape {self.mean.shape}")
        check_finite("mean", self.mean)
        d = self.mean.shape[0]
        if self.cov is None and self.samples is None:
            raise ValueError("a Posterior needs `cov` or `samples` (or both), got neither")
        if self.cov is not None:
            if self.cov.in_size() != self.cov.out_size():
                raise ValueError(
                    f"`cov` must be square, got {self.cov.out_size()}x{self.cov.in_size()}"
                )
            if self.cov.in_size() != d:
                raise ValueError(f"`cov` must be {d}x{d} to match `mean`, got {self.cov.in_size()}")
            check_covariance("cov", self.cov)
        if self.samples is not None:
            if self.samples.ndim != 3 or self.samples.shape[-1] != d:
                raise ValueError(
                    f"`samples` must have shape (B, M, {d}) (chains, draws, D), got "
                    f"{self.samples.shape}"
                )
            check_finite("samples", self.samples)
            if self.cov is None and self.samples.shape[0] * self.samples.shape[1] < 2:
                raise ValueError(
                    "a Posterior without `cov` needs at least 2 `samples` (one draw has no "
                    f"spread), got shape {self.samples.shape}"
                )
        if self.param_spec is not None:
            if not isinstance(self.param_spec, ParamSpec):
                raise TypeError("`param_spec` must be a ParamSpec or None")
            if self.param_spec.size != d:
                raise ValueError(
                    f"`param_spec` has size {self.param_spec.size} but `mean` has D={d}"
                )

    # -- summaries ---------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    @property
    def names(self) -> tuple[str, ...]:
        """Labels of the flat coordinates (``param_spec.flat_names`` or ``theta[i]``)."""
        if self.param_spec is not None:
            return self.param_spec.flat_names
        return tuple(f"theta[{i}]" for i in range(self.dim))

    def flat_samples(self) -> Float[Array, "N D"]:
        if self.samples is None:
            raise ValueError("this Posterior has no `samples`")
        return self.samples.reshape(-1, self.dim)

    def variance(self) -> Float[Array, " D"]:
        """Marginal variances: the diagonal of ``cov``, else of the sample covariance.

        Raises:
            ValueError: (at run time under ``jax.jit``) if a variance from ``cov`` is
                NaN, inf or <= 0: never a silent NaN standard deviation.
        """
        if self.cov is None:
            return jnp.var(self.flat_samples(), axis=0, ddof=1)
        var = lx.diagonal(self.cov)
        return positive_error_if("cov diagonal (the variances)", var)

    def std(self) -> Float[Array, " D"]:
        """Marginal standard deviations."""
        return jnp.sqrt(self.variance())

    def sample(self, key: PRNGKeyArray, n: int) -> Float[Array, "n D"]:
        """``n`` draws in the posterior's flat space.

        With ``cov``: ``mean + L z`` with ``L Lᵀ = cov`` (structured Cholesky from
        :func:`plumax_core.linalg.cholesky`). Without: draws with replacement from
        ``samples``.
        """
        if self.cov is not None:
            from .linalg import cholesky

            z = jr.normal(key, (n, self.dim), dtype=self.mean.dtype)
            chol = cholesky(self.cov)
            return self.mean + jax.vmap(chol.mv)(z)
        flat = self.flat_samples()
        idx = jr.randint(key, (n,), 0, flat.shape[0])
        return flat[idx]

    def sample_params(self, key: PRNGKeyArray, n: int) -> dict[str, Array]:
        """``n`` draws as a params dict in physical units (leading axis n)."""
        spec = self._require_spec()
        return spec.from_unconstrained(self.sample(key, n))

    def credible_interval(self, level: float = 0.9) -> dict[str, tuple[Array, Array]]:
        """Equal-tailed marginal interval per parameter, in physical units.

        Marginal quantiles are computed in the flat space (Gaussian quantiles from
        ``cov`` when there are no samples; empirical otherwise) and mapped through the
        elementwise monotone transform of ``param_spec`` — exact, since monotone maps
        preserve quantiles.
        """
        if not 0.0 < level < 1.0:
            raise ValueError(f"`level` must be in (0, 1), got {level}")
        lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
        if self.samples is not None:
            flat = self.flat_samples()
            lo, hi = jnp.quantile(flat, lo_q, axis=0), jnp.quantile(flat, hi_q, axis=0)
        else:
            zq = jax.scipy.special.ndtri(jnp.asarray(hi_q, self.mean.dtype))
            s = self.std()
            lo, hi = self.mean - zq * s, self.mean + zq * s
        if self.param_spec is None:
            return {name: (lo[i], hi[i]) for i, name in enumerate(self.names)}
        lo_p = self.param_spec.forward_transform(lo)[0]
        hi_p = self.param_spec.forward_transform(hi)[0]
        lo_d, hi_d = self.param_spec.unflatten(lo_p), self.param_spec.unflatten(hi_p)
        return {k: (lo_d[k], hi_d[k]) for k in self.param_spec.names}

    def _require_spec(self) -> ParamSpec:
        if self.param_spec is None:
            raise ValueError("this Posterior has no `param_spec`; physical units are unknown")
        return self.param_spec

    # -- serialisation -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict; exact round trip through :meth:`from_dict`.

        ``cov`` is stored as its diagonal for a diagonal operator and as a dense
        matrix otherwise.
        """
        if not is_concrete(self.mean):
            raise ValueError("cannot serialise a Posterior holding tracers (call outside jit)")
        out: dict[str, Any] = {
            "dtype": str(self.mean.dtype),
            "mean": np.asarray(self.mean).tolist(),
            "cov": None,
            "samples": None if self.samples is None else np.asarray(self.samples).tolist(),
            "provenance": self.provenance.to_dict(),
            "param_spec": None if self.param_spec is None else self.param_spec.to_dict(),
        }
        if self.cov is not None:
            if isinstance(self.cov, lx.DiagonalLinearOperator):
                out["cov"] = {
                    "type": "diagonal",
                    "diagonal": np.asarray(lx.diagonal(self.cov)).tolist(),
                }
            else:
                out["cov"] = {"type": "dense", "matrix": np.asarray(self.cov.as_matrix()).tolist()}
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Posterior:
        """Inverse of :meth:`to_dict`."""
        for key in ("mean", "provenance"):
            if key not in d:
                raise ValueError(f"posterior dict has no {key!r} entry")
        dtype = np.dtype(d.get("dtype", "float64"))
        arr = lambda x: jnp.asarray(np.asarray(x, dtype=dtype))
        cov = None
        c = d.get("cov")
        if c is not None:
            if c.get("type") == "diagonal":
                cov = lx.DiagonalLinearOperator(arr(c["diagonal"]))
            elif c.get("type") == "dense":
                cov = lx.MatrixLinearOperator(arr(c["matrix"]), lx.positive_semidefinite_tag)
            else:
                raise ValueError(f"unknown covariance type {c.get('type')!r} in posterior dict")
        samples = None if d.get("samples") is None else arr(d["samples"])
        spec = None if d.get("param_spec") is None else ParamSpec.from_dict(d["param_spec"])
        prov = {
            k: (float(v) if v in ("inf", "-inf", "nan") else v) for k, v in d["provenance"].items()
        }
        return cls(arr(d["mean"]), cov, samples, provenance=prov, param_spec=spec)
