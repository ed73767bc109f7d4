"""Training banks for neural posterior estimation: the core simulation bank, with noise.

``theta ~ prior``, ``y ~ noise(forward(theta, met))``; or ``theta ~ proposal`` with the
importance log-weights ``log prior(theta) - log proposal(theta)`` stored beside the
simulations, so that an estimator trained on them can still target the prior's
posterior (a proposal puts more simulations where the prior has few, e.g. strong
sources). The bank is :class:`plumax_core.SimulationBank`, built by
:func:`plumax_core.simulate_bank`; :func:`simulate` is that builder with the noise model
required (NPE learns ``p(theta | y)`` only for the observation process it was trained
on). Works with ANY :class:`plumax_core.AbstractForwardModel`, physics or emulator.
"""

from collections.abc import Sequence

from jaxtyping import PRNGKeyArray

from plumax_core import (
    AbstractForwardModel,
    AbstractNoiseModel,
    AbstractPrior,
    MetField,
    SimulationBank,
    simulate_bank,
)


def simulate(
    model: AbstractForwardModel,
    prior: AbstractPrior,
    met: MetField | Sequence[MetField],
    noise: AbstractNoiseModel,
    n: int,
    *,
    key: PRNGKeyArray,
    chunk_size: int = 1024,
    min_repeats: int | None = None,
    proposal: AbstractPrior | None = None,
) -> SimulationBank:
    """Simulate ``n`` pairs ``theta ~ prior``, ``y ~ noise(model(theta, met))``.

    ``plumax_core.simulate_bank(model, prior, met, n, key=key, noise=noise,
    batch_size=chunk_size, min_repeats=min_repeats, proposal=proposal)``: use that for
    its further options (an on-disk cache of resumable shards, device sharding, a
    progress callback).

    With a ``proposal``, ``theta ~ proposal`` instead and the bank carries the
    importance log-weights ``log prior(theta) - log proposal(theta)``;
    :func:`fit_npe` minimises the weighted loss, whose expectation is the prior's, so
    the estimator still learns the prior's posterior while seeing more simulations
    where the proposal puts more mass (the importance-weighted loss of Lueckmann et al.
    2017). Alternatively ``fit_npe(..., correction=ProposalCorrection(prior, proposal))``
    learns the proposal's posterior and resamples its draws. Use a defensive mixture
    ``plumax_core.MixturePrior((prior, q), (alpha, 1 - alpha))`` (Hesterberg 1995) so
    that every weight is at most ``1 / alpha``.

    Args:
        model: any forward model (physics or emulator).
        prior: prior over ``model.param_spec`` (its ``sample`` must stay in the support).
        met: the meteorology; a sequence of K ``MetField`` simulates K repeated
            observations (overpasses) of the same source, giving ``values`` of shape
            ``(n, K, *S1)``.
        noise: the observation noise model.
        n: number of simulations, >= 1.
        key: PRNG key; the same key gives the same bank.
        chunk_size: simulations per vmapped batch (bounds memory).
        min_repeats: with a sequence of met, draw the number of overpasses of each
            simulation uniformly in ``[min_repeats, K]`` and mask the missing ones
            entirely (padding), so a deep-set estimator learns variable counts.
            None = always K.
        proposal: where to draw ``theta`` from instead of the prior (same
            ``param_spec``; its support must cover the prior's). None = the prior.

    Returns:
        A :class:`plumax_core.SimulationBank` (with ``log_weight`` when a proposal was
        used).

    Raises:
        TypeError, ValueError: wrong types or shapes; a proposal on another layout, or
            non-finite importance weights.
    """
    if not isinstance(noise, AbstractNoiseModel):
        raise TypeError(f"`noise` must be an AbstractNoiseModel, got {type(noise).__name__}")
    if not isinstance(model, AbstractForwardModel):
        raise TypeError(f"`model` must be an AbstractForwardModel, got {type(model).__name__}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be a positive int, got {chunk_size!r}")
    return simulate_bank(
        model,
        prior,
        met,
        n,
        key=key,
        noise=noise,
        proposal=proposal,
        min_repeats=min_repeats,
        batch_size=chunk_size,
    )
