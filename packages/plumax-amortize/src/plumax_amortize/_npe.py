"""The amortized posterior estimator: observations -> Posterior in one forward pass.

Neural posterior estimation (NPE; Papamakarios & Murray 2016, "Fast ε-free inference of
simulation models with Bayesian conditional density estimation"; Greenberg, Nonnenmacher
& Macke 2019, "Automatic posterior transformation for likelihood-free inference"): a
conditional density ``q_phi(theta | y)`` trained by maximising ``E log q_phi(theta_i |
y_i)`` over ``(theta_i, y_i) ~ p(theta) p(y | theta)`` converges to the exact posterior
``p(theta | y)`` (the expected KL divergence from the posterior is minimised) when the
family is rich enough.

Here ``theta`` is the *unconstrained* flat vector of the forward model's ``param_spec``,
standardised by the training bank's mean and standard deviation; ``y`` is standardised
over valid entries (per element, or with one location and scale for a whole image, as
the embedding's ``element_ndim`` says) and filled with 0 where invalid, then summarised
by an :class:`AbstractEmbedding`. Samples are mapped back with ``ParamSpec.from_unconstrained``
so no draw leaves the prior support.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import paramax
from flowjax.distributions import AbstractDistribution
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from plumax_core import Observations, ParamSpec, Posterior, Provenance, make_provenance

from ._checkpoint_format import checkpoint_hash
from ._correction import ProposalCorrection
from ._embeddings import AbstractEmbedding
from ._flows import FlowConfig


class NPE(eqx.Module):
    """A trained conditional flow ``q(theta | y)``: the amortized posterior.

    Build it with :func:`plumax_amortize.fit_npe` (or :func:`load_npe`).

    Attributes:
        flow: the flowjax conditional flow over standardised unconstrained parameters.
        embedding: the summary network ``y -> e`` (``e`` conditions the flow).
        param_spec: the forward model's parameter layout.
        flow_config: the flow's static recipe (used to rebuild it from a checkpoint).
        theta_loc, theta_scale: ``(D,)`` standardisation of the unconstrained parameters.
        obs_loc, obs_scale: per-element standardisation of the observations (shape of
            one element, see ``AbstractEmbedding.element_ndim``).
        simulator_id, simulator_hash: the forward model the training bank came from.
        dataset_hash: content hash of the training bank.
        correction: when the flow learned a proposal posterior, the
            :class:`ProposalCorrection` that resamples its draws into the prior's
            posterior (applied by every sampling method); None otherwise.
        artifact_hash: content hash of this estimator's checkpoint (weights + recipe);
            the hash under which :func:`save_npe` stores it.
    """

    flow: AbstractDistribution
    embedding: AbstractEmbedding
    param_spec: ParamSpec
    theta_loc: Float[Array, " D"]
    theta_scale: Float[Array, " D"]
    obs_loc: Float[Array, "..."]
    obs_scale: Float[Array, "..."]
    flow_config: FlowConfig = eqx.field(static=True)
    simulator_id: str = eqx.field(static=True)
    simulator_hash: str = eqx.field(static=True)
    dataset_hash: str = eqx.field(static=True)
    correction: ProposalCorrection | None
    artifact_hash: str = eqx.field(static=True)

    def __init__(
        self,
        flow: AbstractDistribution,
        embedding: AbstractEmbedding,
        param_spec: ParamSpec,
        *,
        theta_loc,
        theta_scale,
        obs_loc,
        obs_scale,
        flow_config: FlowConfig,
        simulator_id: str = "none",
        simulator_hash: str = "",
        dataset_hash: str = "",
        correction: ProposalCorrection | None = None,
    ):
        self.flow = flow
        self.embedding = embedding
        self.param_spec = param_spec
        self.theta_loc = jnp.asarray(theta_loc, dtype=float)
        self.theta_scale = jnp.asarray(theta_scale, dtype=float)
        self.obs_loc = jnp.asarray(obs_loc, dtype=float)
        self.obs_scale = jnp.asarray(obs_scale, dtype=float)
        self.flow_config = flow_config
        self.simulator_id = str(simulator_id)
        self.simulator_hash = str(simulator_hash)
        self.dataset_hash = str(dataset_hash)
        self.correction = correction
        self.artifact_hash = checkpoint_hash(self)

    def __check_init__(self):
        if not isinstance(self.param_spec, ParamSpec):
            raise TypeError("`param_spec` must be a ParamSpec")
        if not isinstance(self.embedding, AbstractEmbedding):
            raise TypeError("`embedding` must be an AbstractEmbedding")
        if self.correction is not None:
            if not isinstance(self.correction, ProposalCorrection):
                raise TypeError("`correction` must be a ProposalCorrection or None")
            if self.correction.prior.param_spec != self.param_spec:
                raise ValueError("`correction.prior.param_spec` differs from `param_spec`")
        d = self.param_spec.size
        if self.theta_loc.shape != (d,) or self.theta_scale.shape != (d,):
            raise ValueError(f"`theta_loc`/`theta_scale` must have shape ({d},)")
        if self.flow.shape != (d,) or self.flow.cond_shape != (self.embedding.out_dim,):
            raise ValueError(
                f"`flow` must be a conditional flow over ({d},) given "
                f"({self.embedding.out_dim},), got {self.flow.shape} given {self.flow.cond_shape}"
            )
        el = self.embedding.obs_shape[len(self.embedding.obs_shape) - self.embedding.element_ndim :]
        if self.obs_loc.shape != el or self.obs_scale.shape != el:
            raise ValueError(f"`obs_loc`/`obs_scale` must have shape {el}")

    # -- shapes --------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """D, the number of flat parameters."""
        return self.param_spec.size

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Shape of one observation the estimator accepts."""
        return self.embedding.obs_shape

    # -- traced core -----------------------------------------------------------------

    def standardise(
        self, values: Float[Array, "*S"], mask: Bool[Array, "*S"]
    ) -> Float[Array, "*S"]:
        """Standardised values, 0 where invalid (NaN there is harmless)."""
        x = (values - self.obs_loc) / self.obs_scale
        return jnp.where(mask, x, 0.0)

    def embed(self, values: Float[Array, "*S"], mask: Bool[Array, "*S"]) -> Float[Array, " E"]:
        """The flow's conditioning vector for one observation."""
        return self.embedding(self.standardise(values, mask), mask)

    def sample_unconstrained(
        self,
        values: Float[Array, "*S"],
        mask: Bool[Array, "*S"],
        n: int,
        *,
        key: PRNGKeyArray,
    ) -> Float[Array, "n D"]:
        """``n`` posterior draws of the unconstrained flat parameters (traceable).

        With a ``correction``, ``oversample * n`` flow draws are resampled to ``n``."""
        flow = paramax.unwrap(self.flow)
        e = self.embed(values, mask)
        if self.correction is None:
            z = flow.sample(key, (n,), condition=e)
            return self.theta_loc + self.theta_scale * z
        k_flow, k_pick = jr.split(key)
        z = flow.sample(k_flow, (self.correction.oversample * n,), condition=e)
        return self.correction.resample(self.theta_loc + self.theta_scale * z, n, key=k_pick)

    def log_prob_unconstrained(
        self,
        theta: Float[Array, "*batch D"],
        values: Float[Array, "*S"],
        mask: Bool[Array, "*S"],
    ) -> Float[Array, "*batch"]:
        """``log q(theta | y)`` with respect to the unconstrained flat parameters (the
        flow's density: with a ``correction``, that of the proposal posterior)."""
        flow = paramax.unwrap(self.flow)
        e = self.embed(values, mask)
        z = (theta - self.theta_loc) / self.theta_scale
        e = jnp.broadcast_to(e, z.shape[:-1] + e.shape)
        return flow.log_prob(z, e) - jnp.sum(jnp.log(self.theta_scale))

    # -- host-side API -----------------------------------------------------------------

    def sample_batch(
        self, observations, mask=None, *, key: PRNGKeyArray, n_samples: int = 1000
    ) -> Float[Array, "B M D"]:
        """Posterior draws for a batch of observations, shape ``(B, n_samples, D)``.

        Args:
            observations: ``(B, *obs_shape)`` array (NaN allowed where masked), or a
                sequence of :class:`~plumax_core.Observations`.
            mask: ``(B, *obs_shape)`` validity mask (default: all valid).
            key: PRNG key (split per observation).
            n_samples: draws per observation, M.

        Raises:
            ValueError: wrong shape, NaN where valid, or an entirely masked observation.
        """
        values, valid = self._check_batch(observations, mask)
        n = _check_n(n_samples)
        keys = jr.split(key, values.shape[0])
        return _sample_batch(self, values, valid, keys, n)

    def posterior(
        self, observations, mask=None, *, key: PRNGKeyArray, n_samples: int = 1000
    ) -> Posterior:
        """The amortized posterior of ONE observation, in a single forward pass.

        Args:
            observations: an :class:`~plumax_core.Observations` (its ``mask`` is used)
                or an array of shape ``obs_shape`` (NaN allowed where ``mask`` is False).
            mask: validity mask for an array input (default: all valid).
            key: PRNG key.
            n_samples: number of draws M.

        Returns:
            A :class:`~plumax_core.Posterior` in the unconstrained space of
            ``param_spec``: ``samples`` of shape ``(1, M, D)``, ``mean`` their average,
            ``cov=None``, provenance with ``method="npe"`` and the flow's hash.

        Raises:
            ValueError: wrong shape, NaN where valid, or all elements masked.
        """
        values, valid = self._check_batch(
            _as_batch(observations), _as_batch_mask(mask), single=True
        )
        n = _check_n(n_samples)
        samples = _sample_batch(self, values, valid, key[None], n)
        return self._to_posterior(samples[0])

    def posteriors(
        self, observations, mask=None, *, key: PRNGKeyArray, n_samples: int = 1000
    ) -> list[Posterior]:
        """One :class:`~plumax_core.Posterior` per observation of a batch (vmapped)."""
        samples = self.sample_batch(observations, mask, key=key, n_samples=n_samples)
        return [self._to_posterior(s) for s in samples]

    def provenance(self, n_samples: int) -> Provenance:
        """The provenance record attached to every posterior this estimator returns."""
        prov = make_provenance(
            n_iter=n_samples,
            method="npe",
            flow_hash=self.artifact_hash,
            flow_kind=self.flow_config.kind,
            embedding=type(self.embedding).__name__,
            training_dataset_hash=self.dataset_hash or None,
        ).to_dict()
        prov["forward_model_id"] = self.simulator_id
        prov["forward_model_hash"] = self.simulator_hash or None
        prov["model_hash"] = self.artifact_hash
        if self.correction is not None:
            prov["proposal_correction"] = {
                "method": "sampling-importance-resampling",
                "oversample": self.correction.oversample,
            }
        return Provenance(prov)

    def _to_posterior(self, samples: Float[Array, "M D"]) -> Posterior:
        return Posterior(
            jnp.mean(samples, axis=0),
            None,
            samples[None],
            provenance=self.provenance(int(samples.shape[0])),
            param_spec=self.param_spec,
        )

    def _check_batch(self, observations, mask, single: bool = False) -> tuple[Array, Array]:
        values, valid = _unpack(observations, mask)
        shape = self.obs_shape
        if values.ndim != len(shape) + 1 or tuple(values.shape[1:]) != shape:
            want = f"{shape}" if single else f"(B, *{shape})"
            got = values.shape[1:] if single else values.shape
            raise ValueError(f"`observations` must have shape {want}, got {got}")
        if valid.shape != values.shape:
            raise ValueError(f"`mask` must have the shape of `observations`, got {valid.shape}")
        v, m = np.asarray(values), np.asarray(valid)
        bad = ~np.isfinite(v) & m
        if bad.any():
            raise ValueError(
                f"`observations` has {int(bad.sum())} non-finite value(s) where `mask` is "
                "True; mask them (mask=np.isfinite(values))"
            )
        empty = ~m.reshape(m.shape[0], -1).any(axis=1)
        if empty.any():
            raise ValueError(
                f"`observations` {np.flatnonzero(empty).tolist()} are entirely masked: "
                "there is nothing to condition on"
            )
        return values, valid


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"`n_samples` must be a positive int, got {n!r}")
    return int(n)


def _as_batch(observations):
    if isinstance(observations, Observations):
        return [observations]
    try:
        return jnp.asarray(observations, dtype=float)[None]
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"`observations` must be an array or Observations, got {type(observations).__name__}"
        ) from err


def _as_batch_mask(mask):
    return None if mask is None else jnp.asarray(mask, dtype=bool)[None]


def _unpack(observations, mask) -> tuple[Array, Array]:
    if (
        isinstance(observations, list | tuple)
        and observations
        and all(isinstance(o, Observations) for o in observations)
    ):
        if mask is not None:
            raise ValueError("`mask` must be None for Observations input (their mask is used)")
        shapes = {o.values.shape for o in observations}
        if len(shapes) != 1:
            raise ValueError(f"`observations` have different shapes {sorted(shapes)}")
        values = jnp.stack([o.values for o in observations])
        valid = jnp.stack([o.valid() for o in observations])
        return values, valid
    if isinstance(observations, Observations):
        raise TypeError("pass one Observations to `posterior`, or a list to `sample_batch`")
    try:
        values = jnp.asarray(observations, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"`observations` must be an array or Observations, got {type(observations).__name__}"
        ) from err
    valid = jnp.ones(values.shape, bool) if mask is None else jnp.asarray(mask, dtype=bool)
    return values, valid


@eqx.filter_jit
def _sample_batch(npe: NPE, values, valid, keys, n: int):
    return jax.vmap(lambda v, m, k: npe.sample_unconstrained(v, m, n, key=k))(values, valid, keys)


def _scale_of(x: Array) -> Array:
    return jnp.where(jnp.isfinite(x) & (x > 0), x, 1.0)


def standardisation(
    values: Float[Array, "N ..."], mask: Bool[Array, "N ..."], element_ndim: int
) -> tuple[Array, Array]:
    """Per-element mean and std over valid entries (pooled over leading axes)."""
    axes = tuple(range(values.ndim - element_ndim))
    m = mask.astype(float)
    x = jnp.where(mask, values, 0.0)
    count = jnp.sum(m, axis=axes)
    loc = jnp.sum(x, axis=axes) / jnp.maximum(count, 1.0)
    var = jnp.sum(m * (x - loc) ** 2, axis=axes) / jnp.maximum(count - 1.0, 1.0)
    return loc, _scale_of(jnp.sqrt(var))


def theta_standardisation(theta: Float[Array, "N D"]) -> tuple[Array, Array]:
    """Mean and std of the unconstrained parameters of a bank."""
    return jnp.mean(theta, axis=0), _scale_of(jnp.std(theta, axis=0))
