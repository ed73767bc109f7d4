"""The cycle's composition types: a stage, the context the stages share, a tier.

A **stage** (:class:`AbstractCycleStage`) is one step of the six-step cycle: it declares
its step number and name, the values it ``needs`` from earlier stages and ``produces``
for later ones, the registry ``artifacts`` it stores (each with its lineage), and the
`plumax_core.CycleStageBenchmark` gates it contributes to the step-6 report. Its
``run(ctx)`` only calls library functions; the metrics its gates read go into
``ctx.metrics``.

A **tier** (:class:`CycleTier`) is a named composition: a ``setup`` (the step-1 problem:
forward model, met and prior), the observation noise, and the sequence of stages. A tier
checks its composition when it is built (every need met by an earlier stage, each value
and artifact made once, the report last), before any numerics.

A **context** (:class:`CycleContext`) carries what the stages share in one run: the
registry, the budget, the tags of every artifact, the PRNG keys, the progress callback,
the timings, the artifacts stored so far and the gate metrics.

No JAX here: the command line lists the registered tiers without importing it.
"""

import abc
import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ._cycle_budget import CycleBudget

if TYPE_CHECKING:
    from plumax_core import (
        AbstractForwardModel,
        AbstractPrior,
        ArtifactLineage,
        ArtifactRegistry,
        CycleStageBenchmark,
        MetField,
        ModelRole,
    )

__all__ = [
    "CYCLE_KEYS",
    "REPORT_VALUES",
    "AbstractCycleStage",
    "CycleContext",
    "CycleTier",
    "TierSetup",
]

#: Names of the PRNG keys of a cycle, in the order ``jax.random.split(key(seed), 9)``
#: makes them. Fixed: every tier gets the same nine keys, so a stage draws the same
#: numbers in every tier that uses it (a stage needing a new stream derives it from one of
#: these with ``jax.random.fold_in``; appending a name would change all nine).
CYCLE_KEYS = (
    "heldout",
    "oracle",
    "emulator_data",
    "emulator_test",
    "emulator_fit",
    "jacobian",
    "npe_data",
    "npe_fit",
    "amortized",
)

#: The values the last stage of every tier produces (what `plumax.pipelines.CycleRun`
#: holds): see `plumax.pipelines.ReportStage`.
REPORT_VALUES = ("report", "previous", "diff", "report_path", "diff_path")

#: A tier's setup: ``setup(budget) -> (model, met, prior)``, the step-1 problem.
TierSetup = Callable[[CycleBudget], "tuple[AbstractForwardModel, MetField, AbstractPrior]"]

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


class AbstractCycleStage(abc.ABC):
    """One step of the six-step cycle.

    Final stages are frozen dataclasses (their fields are the step's hyperparameters)
    and set these class attributes:

    Attributes:
        step: the cycle step (1-6) it implements.
        name: short name; ``label`` (``"<step>-<name>"``, e.g. ``"3-emulator"``) keys
            its wall-clock time in `CycleRun.seconds` and its progress messages.
        needs: names of the values it reads (``ctx[name]``) from earlier stages.
        produces: names of the values its ``run`` returns, for later stages.
        artifacts: the registry artifacts it stores, without the ``"<tier>-"`` prefix
            (``"emulator"`` is stored as ``"gaussian-emulator"`` in the Gaussian tier).
        report_parents: those of its artifacts that the cycle report lists as parents in
            its lineage (the candidates the gates judge).
    """

    step: ClassVar[int]
    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    produces: ClassVar[tuple[str, ...]] = ()
    artifacts: ClassVar[tuple[str, ...]] = ()
    report_parents: ClassVar[tuple[str, ...]] = ()

    @property
    def label(self) -> str:
        """``"<step>-<name>"``, e.g. ``"2-oracle"``."""
        return f"{self.step}-{self.name}"

    @abc.abstractmethod
    def describe(self, ctx: "CycleContext") -> str:
        """One line for the progress messages, e.g. ``"nuts oracle posteriors on 5 cases"``.

        Called before ``run``; reads only the tier and the budget.
        """

    @abc.abstractmethod
    def run(self, ctx: "CycleContext") -> Mapping[str, Any]:
        """Do the step: call library functions, store artifacts, record gate metrics.

        Contract, for any implementation: reads earlier values only as ``ctx[name]`` for
        ``name`` in ``needs``; stores each of ``artifacts`` once with
        :meth:`CycleContext.store` (or records the hash of one a library stored with
        :meth:`CycleContext.record`); puts the metrics of the gates it contributes in
        ``ctx.metrics[gate name]``; draws randomness only from ``ctx.keys``; returns
        exactly the values named in ``produces``. ``run_cycle`` checks the names
        returned and the artifacts stored.
        """

    def gates(self, ctx: "CycleContext") -> "tuple[CycleStageBenchmark, ...]":
        """The gates it contributes to the report (none by default).

        Called by the report stage after every stage has run, so that a gate can name
        the oracle artifact it is judged against (``ctx.hash(...)``) and a tolerance
        that the run measured. Each gate's metrics are ``ctx.metrics[gate.name]``.
        """
        return ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class CycleTier:
    """A named cycle: a problem (``setup``, noise) and the stages run on it, in order.

    Attributes:
        name: the name of ``plumax cycle --tier NAME`` (lowercase letters, digits, ``-``
            and ``_``); it prefixes every artifact (``<name>-simulator``) and the report.
        description: one line for ``plumax cycle --help`` and the docs.
        setup: ``setup(budget) -> (model, met, prior)``: the step-1 forward model, its
            meteorology and the prior over ``model.param_spec``.
        noise_sigma: 1-sigma observation noise of the held-out and training simulations,
            in ``noise_units``.
        noise_units: units of the observations (``"ppm m"`` for column images); the
            setup artifact records the noise as ``noise_<units>`` (``noise_ppm_m``).
        stages: the stages, in cycle order (steps non-decreasing, the report last).

    Raises:
        ValueError: a bad name or noise, or a composition that cannot run: a stage
            needing a value no earlier stage produces, a value, artifact or label made
            twice, steps out of order, or a last stage that does not produce the report.
    """

    name: str
    description: str
    setup: TierSetup
    noise_sigma: float
    noise_units: str = "ppm m"
    stages: tuple[AbstractCycleStage, ...]

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(
                "`name` must be lowercase letters, digits, '-' or '_' (starting with a "
                f"letter or digit), got {self.name!r}"
            )
        if not isinstance(self.description, str) or not self.description.strip():
            raise ValueError("`description` must be a non-empty string")
        if not callable(self.setup):
            raise ValueError(f"`setup` must be callable, got {type(self.setup).__name__}")
        sigma = self.noise_sigma
        if isinstance(sigma, bool) or not isinstance(sigma, int | float):
            raise ValueError(f"`noise_sigma` must be a number, got {sigma!r}")
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"`noise_sigma` must be finite and > 0, got {sigma!r}")
        if not isinstance(self.noise_units, str) or not self.noise_units.strip():
            raise ValueError("`noise_units` must be a non-empty string")
        if isinstance(self.stages, AbstractCycleStage) or not isinstance(self.stages, tuple | list):
            raise ValueError("`stages` must be a sequence of cycle stages")
        stages = tuple(self.stages)
        object.__setattr__(self, "stages", stages)
        _check_composition(self.name, stages)

    @property
    def noise_key(self) -> str:
        """The noise's key in the setup artifact: ``noise_<units>`` (``noise_ppm_m``)."""
        return "noise_" + re.sub(r"\W+", "_", self.noise_units.strip())

    @property
    def labels(self) -> tuple[str, ...]:
        """The stages' labels, in order (``("1-simulator", ..., "6-report")``)."""
        return tuple(s.label for s in self.stages)


def _check_composition(tier: str, stages: tuple[AbstractCycleStage, ...]) -> None:
    if not stages:
        raise ValueError(f"tier {tier!r}: `stages` must not be empty")
    made: dict[str, str] = {}  # value -> label of the stage that produces it
    stored: dict[str, str] = {}  # artifact -> label
    labels: set[str] = set()
    last_step = 0
    for stage in stages:
        if not isinstance(stage, AbstractCycleStage):
            raise ValueError(
                f"tier {tier!r}: stages must be AbstractCycleStage instances, "
                f"got {type(stage).__name__}"
            )
        step = getattr(stage, "step", None)
        if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= 6:
            raise ValueError(
                f"tier {tier!r}: {type(stage).__name__}.step must be 1-6, got {step!r}"
            )
        label = stage.label
        if step < last_step:
            raise ValueError(f"tier {tier!r}: stage {label} comes after step {last_step}")
        last_step = step
        if label in labels:
            raise ValueError(f"tier {tier!r}: two stages are labelled {label!r}")
        labels.add(label)
        missing = [n for n in stage.needs if n not in made]
        if missing:
            raise ValueError(
                f"tier {tier!r}: stage {label} needs {missing}, which no earlier stage "
                f"produces (earlier stages produce {sorted(made)})"
            )
        for n in stage.produces:
            if n in made:
                raise ValueError(f"tier {tier!r}: {n!r} is produced by {made[n]} and {label}")
            made[n] = label
        for a in stage.artifacts:
            if a in stored:
                raise ValueError(
                    f"tier {tier!r}: artifact {a!r} is stored by {stored[a]} and {label}"
                )
            stored[a] = label
        extra = [a for a in stage.report_parents if a not in stage.artifacts]
        if extra:
            raise ValueError(
                f"tier {tier!r}: stage {label} lists report parents {extra} that are not "
                "among its artifacts"
            )
    if not set(REPORT_VALUES) <= set(stages[-1].produces):
        raise ValueError(
            f"tier {tier!r}: the last stage must produce the cycle report "
            f"{list(REPORT_VALUES)} (end the stages with ReportStage()), "
            f"got {stages[-1].label}"
        )


@dataclasses.dataclass(kw_only=True, eq=False)
class CycleContext:
    """What the stages of one cycle run share (built by ``run_cycle``).

    Attributes:
        tier: the `CycleTier` being run.
        budget: the `CycleBudget`.
        seed: the seed every key derives from.
        root: the registry folder (reports go to ``root/reports``).
        registry: the `plumax_core.ArtifactRegistry` at ``root``.
        tags: tags of every artifact of the run (tier, seed, fast); ``step_tags`` adds
            the step and a stage's own.
        keys: PRNG key per name of `CYCLE_KEYS`.
        say: progress callback (one line at a time).
        values: what the stages produced so far, by name (read with ``ctx[name]``).
        artifacts: full artifact name -> registry hash, of every artifact stored so far.
        metrics: gate name -> metric name -> value, for the report.
        seconds: stage label -> wall-clock seconds.
        completed: the stages that have run, in order (the report gathers their gates).
    """

    tier: CycleTier
    budget: CycleBudget
    seed: int
    root: Path
    registry: "ArtifactRegistry"
    tags: dict[str, Any]
    keys: Mapping[str, Any]
    say: Callable[[str], None]
    values: dict[str, Any] = dataclasses.field(default_factory=dict)
    artifacts: dict[str, str] = dataclasses.field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    completed: list[AbstractCycleStage] = dataclasses.field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        """A value an earlier stage produced."""
        try:
            return self.values[name]
        except KeyError:
            raise KeyError(
                f"no stage of tier {self.tier.name!r} has produced {name!r} yet; "
                f"produced so far: {sorted(self.values)}"
            ) from None

    def artifact_name(self, artifact: str) -> str:
        """``"<tier>-<artifact>"``: the registry name of a stage's artifact."""
        return f"{self.tier.name}-{artifact}"

    def hash(self, artifact: str) -> str:
        """The registry hash of an artifact stored earlier in this run."""
        name = self.artifact_name(artifact)
        try:
            return self.artifacts[name]
        except KeyError:
            raise KeyError(
                f"{name!r} has not been stored in this run; stored: {sorted(self.artifacts)}"
            ) from None

    def has(self, artifact: str) -> bool:
        """Whether an artifact was stored earlier in this run."""
        return self.artifact_name(artifact) in self.artifacts

    def step_tags(self, step: int, **extra: Any) -> dict[str, Any]:
        """The run's tags, then ``step``, then a stage's own (in that order)."""
        return {**self.tags, "step": step, **extra}

    def store(
        self,
        obj: Any,
        artifact: str,
        role: "ModelRole",
        *,
        step: int,
        lineage: "ArtifactLineage | None" = None,
        tags: Mapping[str, Any] | None = None,
    ) -> str:
        """Store ``obj`` as ``<tier>-<artifact>`` with its lineage; returns its hash."""
        name = self.artifact_name(artifact)
        h = self.registry.store(
            obj, name, role, lineage=lineage, tags=self.step_tags(step, **(tags or {}))
        )
        self.artifacts[name] = h
        return h

    def record(self, artifact: str, h: str) -> str:
        """Record the hash of an artifact a library function stored (e.g. ``save_npe``)."""
        self.artifacts[self.artifact_name(artifact)] = h
        return h
