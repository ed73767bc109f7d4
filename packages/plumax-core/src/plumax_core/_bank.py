"""The simulation bank: ``(theta_i, met_i) -> y_i`` pairs of a forward model.

One type carries every set of simulations of the six-step cycle: the training and
held-out sets of an emulator (clean values, optionally met features), the training
banks of an amortized estimator (noisy values, validity masks, importance weights when
drawn from a proposal) and the truths of a simulation-based calibration. It is built by
:func:`plumax_core.simulate_bank` (or by hand), and it is an artifact like any other:

* parameters are stored in the *unconstrained* flat space of the forward model's
  ``param_spec`` (what emulators, flows and samplers work in; mapped back with
  ``ParamSpec.from_unconstrained``, so no draw can leave the prior support);
* its identity is its content: ``content_hash()`` is ``tree_hash(bank)``, the hash
  under which ``ArtifactRegistry.store(bank, ...)`` stores it, and the hash that
  everything trained on it records (``training_artifact`` in its lineage).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import equinox as eqx
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from ._importance import kish_effective_sample_size
from ._met import MetField
from ._noise import AbstractNoiseModel
from ._observations import Observations
from ._params import ParamSpec
from ._serialise import tree_hash

#: what a bank's ``met`` may be: one met, K mets (repeated observations), or a sampler
MetSource = MetField | tuple[MetField, ...] | Callable[[PRNGKeyArray], MetField]


class SimulationBank(eqx.Module):
    """A bank of simulations ``(theta_i, y_i)``, ``i = 1..N``.

    Attributes:
        theta: ``(N, D)`` parameters in the unconstrained space of ``param_spec``.
        values: ``(N, *S)`` simulated observations (noisy when ``noise`` is set; NaN
            allowed where ``mask`` is False). For repeated observations (several
            overpasses, ``met`` a tuple of K mets) ``S = (K, *S1)``.
        mask: ``(N, *S)`` validity mask.
        param_spec: the parameter layout.
        template: the forward model's (clean) ``Observations`` for draw 0 under the
            first met: kind, units, dims, coords, sigma, instrument. None for a bank
            built by hand.
        kind: observation kind (``Observations.kind``) of the simulator.
        simulator_id: ``model_id`` of the forward model that made the bank.
        simulator_hash: content hash of the forward model (``tree_hash``).
        log_weight: ``(N,)`` importance log-weights ``log prior(theta) - log
            proposal(theta)`` when the bank was simulated from a proposal, else None
            (every weight 1).
        features: ``(N, F)`` met features of each draw (``met_features(met_i)``), or
            None.
        met: the met the simulations ran under: a `MetField`, a tuple of K `MetField`
            (repeated observations), or the sampler ``key -> MetField`` of a met drawn
            per simulation; None for a bank built by hand.
        met_keys: ``(N,)`` PRNG keys of a sampled met (``met(met_keys[i])`` is the met of
            draw ``i``), else None.
        met_features: the extractor ``MetField -> (F,)`` that made ``features``, or None.
        noise: the noise model applied to the clean simulations, or None (clean).
    """

    theta: Float[Array, "N D"]
    values: Float[Array, "N ..."]
    mask: Bool[Array, "N ..."]
    param_spec: ParamSpec
    template: Observations | None = None
    kind: str = eqx.field(static=True, default="generic")
    simulator_id: str = eqx.field(static=True, default="none")
    simulator_hash: str = eqx.field(static=True, default="")
    log_weight: Float[Array, " N"] | None = None
    features: Float[Array, "N F"] | None = None
    met: MetSource | None = None
    met_keys: PRNGKeyArray | None = None
    met_features: Callable[[MetField], Float[Array, " F"]] | None = None
    noise: AbstractNoiseModel | None = None

    def __check_init__(self):
        if not isinstance(self.param_spec, ParamSpec):
            raise TypeError("`param_spec` must be a ParamSpec")
        if self.theta.ndim != 2 or self.theta.shape[1] != self.param_spec.size:
            raise ValueError(
                f"`theta` must have shape (N, {self.param_spec.size}), got {self.theta.shape}"
            )
        n = self.theta.shape[0]
        if self.values.ndim < 1 or self.values.shape[0] != n:
            raise ValueError(
                f"`values` has {self.values.shape[:1]} simulations but `theta` has {n}"
            )
        if self.mask.shape != self.values.shape:
            raise ValueError(
                f"`mask` must have the shape of `values` {self.values.shape}, got {self.mask.shape}"
            )
        if self.log_weight is not None and self.log_weight.shape != (n,):
            raise ValueError(f"`log_weight` must have shape ({n},), got {self.log_weight.shape}")
        if self.features is not None and (self.features.ndim != 2 or self.features.shape[0] != n):
            raise ValueError(f"`features` must have shape ({n}, F), got {self.features.shape}")
        if self.noise is not None and not isinstance(self.noise, AbstractNoiseModel):
            raise TypeError("`noise` must be an AbstractNoiseModel or None")
        self._check_met(n)
        if self.template is not None:
            if not isinstance(self.template, Observations):
                raise TypeError("`template` must be Observations or None")
            if self.template.kind != self.kind:
                raise ValueError(
                    f"`kind` {self.kind!r} differs from the template's {self.template.kind!r}"
                )
            want = (*self._repeat_axis(), *self.template.values.shape)
            if self.obs_shape != want:
                raise ValueError(
                    f"`values` must have shape (N, *{want}) to match the template, got "
                    f"{self.values.shape}"
                )

    def _check_met(self, n: int) -> None:
        met = self.met
        if isinstance(met, tuple):
            if not met or not all(isinstance(m, MetField) for m in met):
                raise TypeError(
                    "`met` must be a MetField, a non-empty tuple of MetField or a sampler"
                )
            if self.values.ndim < 2 or self.values.shape[1] != len(met):
                raise ValueError(
                    f"`values` must have {len(met)} repeats on axis 1 (one per met), got "
                    f"shape {self.values.shape}"
                )
        sampled = met is not None and not isinstance(met, MetField | tuple)
        if sampled and not callable(met):
            raise TypeError("`met` must be a MetField, a non-empty tuple of MetField or a sampler")
        if sampled != (self.met_keys is not None):
            raise ValueError("`met_keys` must be given exactly when `met` is a sampler")
        if self.met_keys is not None and self.met_keys.shape[:1] != (n,):
            raise ValueError(f"`met_keys` must have shape ({n},), got {self.met_keys.shape}")

    def _repeat_axis(self) -> tuple[int, ...]:
        return (len(self.met),) if isinstance(self.met, tuple) else ()

    # -- shapes ----------------------------------------------------------------------

    @property
    def n(self) -> int:
        """N, the number of simulations."""
        return int(self.theta.shape[0])

    def __len__(self) -> int:
        return self.n

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """Shape ``S`` of one simulated observation."""
        return tuple(self.values.shape[1:])

    @property
    def repeats(self) -> int | None:
        """K for repeated observations (``met`` a tuple of K mets), else None."""
        return len(self.met) if isinstance(self.met, tuple) else None

    @property
    def weighted(self) -> bool:
        """True when the bank was simulated from a proposal (it carries importance
        weights); such a bank is for training, not for calibration checks."""
        return self.log_weight is not None

    def check_prior_draws(self, purpose: str, *, name: str = "bank") -> None:
        """Raise unless the draws come from the prior (no importance weights): what a
        calibration check (SBC, TARP, coverage) needs, since a proposal's draws are not
        truths from the prior.

        Args:
            purpose: what needs prior draws, for the message (e.g. ``"SBC"``).
            name: the argument's name, for the message.

        Raises:
            ValueError: the bank was simulated from a proposal.
        """
        if self.weighted:
            raise ValueError(
                f"`{name}` was simulated from a proposal (it carries importance weights); "
                f"{purpose} needs draws from the prior: simulate it without `proposal`"
            )

    @property
    def fixed_met(self) -> MetField | None:
        """The one met every simulation ran under, or None (repeated or sampled met)."""
        return self.met if isinstance(self.met, MetField) else None

    def effective_sample_size(self) -> float:
        """Kish's effective sample size ``(sum w)^2 / sum w^2`` (``n`` when unweighted):
        how many prior simulations the weighted bank is worth for an average over the
        prior."""
        if self.log_weight is None:
            return float(self.n)
        return float(kish_effective_sample_size(self.log_weight))

    # -- one draw --------------------------------------------------------------------

    def params(self) -> dict[str, Array]:
        """The parameters in physical units (a params dict with leading axis N)."""
        return self.param_spec.from_unconstrained(self.theta)

    def params_at(self, i: int) -> dict[str, Array]:
        """The params dict (physical units) of draw ``i``."""
        return self.param_spec.from_unconstrained(self.theta[i])

    def met_at(self, i: int) -> MetField:
        """The met of draw ``i`` (a sampled met is rebuilt from its key).

        Raises:
            ValueError: the bank has no met, or K mets (repeated observations).
        """
        if isinstance(self.met, MetField):
            return self.met
        if self.met is None or isinstance(self.met, tuple):
            what = "no met" if self.met is None else f"{len(self.met)} mets (repeated)"
            raise ValueError(f"the bank has {what}: there is no single met of draw {i}")
        return self.met(self.met_keys[i])

    def observation(self, i: int, *, sigma=None) -> Observations:
        """Simulated observation ``i`` as :class:`Observations` (the template's kind,
        dims, coords and instrument, with the draw's values and mask).

        Args:
            i: the draw.
            sigma: its 1-sigma error; default the noise model's (`AbstractNoiseModel.std`
                given the template's sigma; e.g. ``GaussianNoise.scale``), or the
                template's own error model for a clean bank. ``ObservationNoise`` gives
                the forward model's sigma *of draw 0*: pass ``sigma`` when the forward
                model's errors depend on the parameters.

        Raises:
            ValueError: a bank without a template, or with repeated observations.
        """
        if self.template is None:
            raise ValueError("the bank has no `template` (built by hand): give one")
        if self.repeats is not None:
            raise ValueError(
                f"the bank holds {self.repeats} repeated observations per draw; "
                "`observation` returns single ones"
            )
        t = self.template
        noise_op = None
        if sigma is None:
            own = t.sigma_full() if (t.sigma is not None or t.noise is not None) else None
            if self.noise is not None:
                sigma = self.noise.std(own)
            elif t.noise is not None:
                noise_op = t.noise
            else:
                sigma = t.sigma
        return Observations(
            self.values[i],
            kind=t.kind,
            sigma=sigma,
            noise=noise_op,
            mask=self.mask[i],
            coords=t.coords,
            dims=t.dims,
            instrument=t.instrument,
        )

    # -- sub-banks and identity --------------------------------------------------------

    def take(self, index) -> SimulationBank:
        """A sub-bank: ``index`` is a slice or an integer index array."""

        def pick(a):
            return None if a is None else a[index]

        return dataclasses.replace(
            self,
            theta=self.theta[index],
            values=self.values[index],
            mask=self.mask[index],
            log_weight=pick(self.log_weight),
            features=pick(self.features),
            met_keys=pick(self.met_keys),
        )

    def split(self, n_first: int) -> tuple[SimulationBank, SimulationBank]:
        """``(first n_first, rest)``, e.g. training and held-out simulations."""
        if isinstance(n_first, bool) or not isinstance(n_first, int) or not 0 < n_first < self.n:
            raise ValueError(f"`n_first` must be an int in (0, {self.n}), got {n_first!r}")
        return self.take(slice(0, n_first)), self.take(slice(n_first, None))

    def content_hash(self) -> str:
        """``tree_hash(self)``: the hash under which ``ArtifactRegistry.store`` stores
        the bank, and the training-data lineage of everything trained on it.

        Raises:
            TypeError: the bank holds an object `plumax_core.serialise` cannot store
                (a lambda or locally defined met sampler or feature extractor).
        """
        try:
            return tree_hash(self)
        except TypeError as err:
            raise TypeError(
                f"the bank cannot be hashed (nor stored): {err}; a met sampler, feature "
                "extractor or noise model must be an equinox Module of importable classes "
                "or a module-level function"
            ) from err
