"""The cycle as stages composed per tier (issue 18): composition, lookup, errors, a run.

The fast tests build tiers from the stage classes and check what a tier must refuse
before any numerics (a need no earlier stage meets, steps out of order, no report),
the registry (lookup, unknown names, replacing), and the runner on a tier whose one
gated stage is a cheap stand-in (``ProbeStage``, defined here: a new stage is a small
class): keys, timings, artifacts with lineage, a report made of the gates of the stages
that ran, a diff on the second run, and ``plumax cycle --tier NAME`` for a registered
name. The slow test runs a real second tier made of the library stages (point
receptors instead of an image, MAP + Laplace oracle, no emulator) at a tiny budget.
"""

import dataclasses
import json
import math

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from plumax import pipelines as pl
from plumax_core import (
    ArtifactLineage,
    ArtifactRegistry,
    CycleStageBenchmark,
    GaussianPrior,
    MetField,
    ModelRole,
    OracleStrength,
    Tolerance,
    pin,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProbeStage(pl.AbstractCycleStage):
    """A cheap step-3 stand-in: one artifact, one metric, one gate (``value`` ≤ 1)."""

    step = 3
    name = "probe"
    needs = ("model",)
    produces = ("probe_keys",)
    artifacts = ("probe",)
    report_parents = ("probe",)

    value: float = 0.5

    def describe(self, ctx):
        return f"probe with value {self.value}"

    def run(self, ctx):
        ctx.store(
            {"value": jnp.asarray(self.value)},
            "probe",
            ModelRole.BASELINE,
            step=3,
            lineage=ArtifactLineage(oracle_hash=ctx.hash("simulator")),
        )
        ctx.metrics["probe"] = {"value": self.value}
        return {"probe_keys": dict(ctx.keys)}

    def gates(self, ctx):
        return (
            CycleStageBenchmark(
                name="probe",
                target_step=3,
                oracle_step=1,
                l_transition="L4->L2",
                oracle_strength=OracleStrength.EXACT,
                metrics=("value",),
                tolerances={"value": Tolerance(max=1.0)},
                oracle_artifact_hash=ctx.hash("simulator"),
            ),
        )


def _small_image(budget):
    return pl.gaussian_tier(8)


def _probe_tier(name="probe-tier", value=0.5, stages=None):
    return pl.CycleTier(
        name=name,
        description="an 8x8 image and a stand-in gate",
        setup=_small_image,
        noise_sigma=30.0,
        stages=stages or (pl.SimulatorStage(), ProbeStage(value=value), pl.ReportStage()),
    )


@pytest.fixture
def registered():
    """Register tiers for one test and remove them afterwards."""
    names = []

    def register(tier, **kw):
        pl.register_cycle_tier(tier.name, tier, **kw)
        names.append(tier.name)
        return tier

    yield register
    for name in names:
        pl.unregister_cycle_tier(name)


# --- composition and lookup (no numerics) -------------------------------------------------


def test_gaussian_tier_is_registered_with_its_six_stages():
    assert "gaussian" in pl.cycle_tiers()
    tier = pl.cycle_tier("gaussian")
    assert tier is pl.GAUSSIAN_TIER
    assert pl.cycle_tiers()["gaussian"] == tier.description
    assert tier.labels == (
        "1-simulator",
        "2-oracle",
        "3-emulator",
        "4-emulator-inference",
        "5-amortized",
        "6-report",
    )
    assert tier.noise_key == "noise_ppm_m" and tier.noise_sigma == 30.0


def test_unknown_tier_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"unknown cycle tier 'lagrangian'.*gaussian"):
        pl.run_cycle(tmp_path / "runs", tier="lagrangian")
    with pytest.raises(ValueError, match="unknown cycle tier"):
        pl.cycle_tier("nope")
    assert not (tmp_path / "runs").exists()


def test_a_tier_without_an_emulator_composes():
    tier = pl.CycleTier(
        name="no-emulator",
        description="steps 1, 2, 5, 6",
        setup=_small_image,
        noise_sigma=30.0,
        stages=(pl.SimulatorStage(), pl.OracleStage(), pl.AmortizedStage(), pl.ReportStage()),
    )
    assert tier.labels == ("1-simulator", "2-oracle", "5-amortized", "6-report")


@pytest.mark.parametrize(
    "stages, match",
    [
        (
            (pl.SimulatorStage(), pl.EmulatorInferenceStage(), pl.ReportStage()),
            r"stage 4-emulator-inference needs \['inference', 'emulator', 'cases'",
        ),
        ((pl.SimulatorStage(), pl.AmortizedStage(), pl.ReportStage()), "needs"),
        ((pl.SimulatorStage(), pl.OracleStage()), "last stage must produce the cycle report"),
        (
            (pl.SimulatorStage(), pl.EmulatorStage(), pl.OracleStage(), pl.ReportStage()),
            "comes after step 3",
        ),
        ((pl.SimulatorStage(), pl.SimulatorStage(), pl.ReportStage()), "two stages"),
        ((pl.SimulatorStage(), pl.ReportStage(), pl.ReportStage()), "two stages"),
        ((), "must not be empty"),
        ((pl.SimulatorStage(), "report"), "AbstractCycleStage"),
    ],
)
def test_a_composition_that_cannot_run_is_refused(stages, match):
    with pytest.raises(ValueError, match=match):
        pl.CycleTier(
            name="bad", description="x", setup=_small_image, noise_sigma=1.0, stages=stages
        )


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"name": "Bad Name"}, "`name`"),
        ({"name": ""}, "`name`"),
        ({"noise_sigma": 0.0}, "noise_sigma"),
        ({"noise_sigma": math.nan}, "noise_sigma"),
        ({"noise_sigma": True}, "noise_sigma"),
        ({"description": " "}, "description"),
        ({"setup": None}, "setup"),
    ],
)
def test_a_bad_tier_is_refused(kw, match):
    args = {
        "name": "ok",
        "description": "x",
        "setup": _small_image,
        "noise_sigma": 1.0,
        "stages": (pl.SimulatorStage(), ProbeStage(), pl.ReportStage()),
    }
    with pytest.raises(ValueError, match=match):
        pl.CycleTier(**{**args, **kw})


def test_stages_are_frozen_configurations():
    stage = pl.EmulatorStage()
    smaller = dataclasses.replace(stage, n_components=8, width=32)
    assert (smaller.n_components, smaller.width, smaller.depth) == (8, 32, stage.depth)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stage.width = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        pl.AbstractCycleStage()  # abstract


def test_register_lookup_replace_and_errors(registered):
    tier = registered(_probe_tier("probe-a"))
    assert pl.cycle_tier("probe-a") is tier
    assert pl.cycle_tiers()["probe-a"] == tier.description
    with pytest.raises(ValueError, match="registered already"):
        pl.register_cycle_tier("probe-a", tier)
    other = _probe_tier("probe-a", value=0.25)
    pl.register_cycle_tier("probe-a", other, replace=True)
    assert pl.cycle_tier("probe-a") is other
    with pytest.raises(ValueError, match="differs from the tier's name"):
        pl.register_cycle_tier("probe-b", tier)
    with pytest.raises(ValueError, match="description"):
        pl.register_cycle_tier("probe-b", lambda: tier)
    with pytest.raises(TypeError, match="CycleTier"):
        pl.register_cycle_tier("probe-b", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown cycle tier"):
        pl.unregister_cycle_tier("probe-b")


def test_a_lazily_registered_tier_is_made_on_first_lookup(registered):
    made = []

    def make():
        made.append(1)
        return _probe_tier("probe-lazy")

    pl.register_cycle_tier("probe-lazy", make, description="made when first used")
    try:
        assert pl.cycle_tiers()["probe-lazy"] == "made when first used" and not made
        assert pl.cycle_tier("probe-lazy") is pl.cycle_tier("probe-lazy") and made == [1]
        pl.register_cycle_tier("probe-lazy", lambda: "oops", description="x", replace=True)
        with pytest.raises(ValueError, match="not a CycleTier named 'probe-lazy'"):
            pl.cycle_tier("probe-lazy")
    finally:
        pl.unregister_cycle_tier("probe-lazy")


# --- the runner on a cheap tier -----------------------------------------------------------


def test_run_a_tier_of_stages_report_lineage_and_diff(tmp_path):
    tier = _probe_tier()
    msgs = []
    run = pl.run_cycle(tmp_path / "runs", tier=tier, seed=3, say=msgs.append)
    # the report holds the gates of the stages that ran, and only those
    assert [s.name for s in run.report.stages] == ["probe"] and run.report.passed
    assert run.report.benchmark == "probe-tier-cycle"
    assert set(run.artifacts) == {
        "probe-tier-simulator",
        "probe-tier-setup",
        "probe-tier-probe",
        "probe-tier-cycle-report",
    }
    assert list(run.seconds) == ["1-simulator", "3-probe", "6-report"]
    assert (
        msgs[0] == "step 1-simulator: simulator" and msgs[2] == "step 3-probe: probe with value 0.5"
    )
    assert run.previous is None and run.diff is None and run.diff_path is None
    assert run.report_path.parent == tmp_path / "runs" / "reports"
    assert json.loads(run.report_path.read_text())["benchmark"] == "probe-tier-cycle"

    reg = ArtifactRegistry(tmp_path / "runs")
    record = reg.list(name="probe-tier-cycle-report")[-1]
    assert record.lineage.parent_hashes == (run.artifacts["probe-tier-probe"],)
    assert record.lineage.oracle_hash is None  # no oracle stage in this tier
    assert record.tags["step"] == 6 and record.tags["tier"] == "probe-tier"
    setup = reg.load("probe-tier-setup")
    assert setup["noise_ppm_m"] == 30.0

    again = pl.run_cycle(tmp_path / "runs", tier=tier, seed=3)
    assert again.previous is not None and again.diff_path.is_file()
    assert {k: v for k, v in again.artifacts.items() if "report" not in k} == {
        k: v for k, v in run.artifacts.items() if "report" not in k
    }


def test_keys_are_the_nine_of_the_seed_in_order(tmp_path):
    tier = _probe_tier()
    pl.run_cycle(tmp_path / "runs", tier=tier, seed=7)
    # the keys are what they were before stages: split(key(seed), 9), named in order
    ctx_keys = _last_keys(tmp_path, tier, seed=7)
    expected = jr.split(jr.key(7), 9)
    assert list(ctx_keys) == list(pl.CYCLE_KEYS)
    for k, e in zip(ctx_keys.values(), expected, strict=True):
        np.testing.assert_array_equal(jr.key_data(k), jr.key_data(e))


def _last_keys(tmp_path, tier, seed):
    seen = {}

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Spy(ProbeStage):
        def run(self, ctx):
            out = super().run(ctx)
            seen.update(out["probe_keys"])
            return out

    spy = dataclasses.replace(tier, stages=(pl.SimulatorStage(), Spy(), pl.ReportStage()))
    pl.run_cycle(tmp_path / "spy", tier=spy, seed=seed)
    return seen


def test_a_failing_gate_fails_the_report(tmp_path):
    run = pl.run_cycle(tmp_path / "runs", tier=_probe_tier(value=2.0))
    assert not run.report.passed and not run.report.stage("probe").passed


def test_the_runner_holds_stages_to_their_declarations(tmp_path):
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Forgetful(ProbeStage):
        def run(self, ctx):
            return {"probe_keys": {}}  # stores nothing

    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Overeager(ProbeStage):
        def run(self, ctx):
            return {**super().run(ctx), "extra": 1}

    for stage, match in ((Forgetful(), "did not store"), (Overeager(), "must return the values")):
        tier = _probe_tier(stages=(pl.SimulatorStage(), stage, pl.ReportStage()))
        with pytest.raises(RuntimeError, match=match):
            pl.run_cycle(tmp_path / type(stage).__name__, tier=tier)
    tier = _probe_tier(stages=(pl.SimulatorStage(), pl.ReportStage()))
    with pytest.raises(ValueError, match="no stage contributes a gate"):
        pl.run_cycle(tmp_path / "nogate", tier=tier)


def test_cli_runs_a_registered_tier(tmp_path, plumax_cli, registered):
    registered(_probe_tier("probe-cli"))
    r = plumax_cli(
        "cycle", "--tier", "probe-cli", "--root", "runs", root=tmp_path, outputs=["runs"]
    )
    assert r.exit_code == 0, r.output
    assert "cycle report probe-cli-cycle: PASS" in r.stdout and "probe (3 vs 1)" in r.stdout
    assert "steps: 1-simulator" in r.stdout and "3-probe" in r.stdout
    r = plumax_cli("cycle", "--tier", "nope", "--root", "runs", root=tmp_path)
    assert r.exit_code == 1 and "gaussian" in r.stderr and "probe-cli" in r.stderr


def test_cli_help_lists_the_registered_tiers(plumax_cli, tmp_path):
    r = plumax_cli("cycle", "--help", root=tmp_path)
    assert r.exit_code == 0
    for name in pl.cycle_tiers():
        assert name in r.output


# --- a second real tier made of the library stages ----------------------------------------


def _receptor_setup(budget):
    """Nine point receptors 2 m above ground, 300-900 m downwind (ppm)."""
    from plumax_transport import GaussianPlume, PointReceptors

    x = jnp.repeat(jnp.array([300.0, 600.0, 900.0]), 3)
    y = jnp.array([-60.0, 0.0, 60.0, -90.0, 0.0, 90.0, -120.0, 0.0, 120.0])
    model = pin(GaussianPlume(PointReceptors(x, y, 2.0), check_upwind=False, strict=False), H=10.0)
    met = MetField.uniform(4.0, 270.0, stability="B")
    prior = GaussianPrior.from_std(
        model.param_spec, jnp.array([math.log(0.05), 0.0, 0.0]), jnp.array([0.5, 15.0, 20.0])
    )
    return model, met, prior


RECEPTOR_TIER = pl.CycleTier(
    name="receptors",
    description="Gaussian plume at nine point receptors, no emulator",
    setup=_receptor_setup,
    noise_sigma=0.05,
    noise_units="ppm",
    stages=(
        pl.SimulatorStage(what="Gaussian plume at point receptors"),
        pl.OracleStage(),
        pl.AmortizedStage(summary_dim=8, flow_layers=2, nn_width=32, calibration_samples=49),
        pl.ReportStage(),
    ),
)
TINY = pl.CycleBudget(
    pixels=8,
    n_cases=2,
    n_calibration=20,
    oracle="laplace",
    n_npe_train=512,
    npe_epochs=3,
    n_posterior_samples=100,
)


@pytest.mark.slow
def test_a_second_tier_of_library_stages_runs(tmp_path, registered):
    registered(RECEPTOR_TIER)
    run = pl.run_cycle(tmp_path / "runs", tier="receptors", budget=TINY)
    # Laplace oracle (no convergence gate) and no emulator: the two step-5 gates only
    assert [s.name for s in run.report.stages] == ["amortized-calibration", "amortized-inference"]
    for stage in run.report.stages:
        assert stage.error is None
        assert all(m.value is not None and np.isfinite(m.value) for m in stage.metrics)
    assert set(run.artifacts) == {
        f"receptors-{a}"
        for a in (
            "simulator",
            "setup",
            "heldout-cases",
            "oracle-posteriors",
            "npe-training-set",
            "npe",
            "npe-posteriors",
            "cycle-report",
        )
    }
    assert list(run.seconds) == ["1-simulator", "2-oracle", "5-amortized", "6-report"]
    reg = ArtifactRegistry(tmp_path / "runs")
    assert reg.load("receptors-setup")["noise_ppm"] == 0.05
    cases = reg.load("receptors-heldout-cases")  # a bank, stored as itself
    assert np.asarray(cases.values).shape == (2, 9)
    assert cases.content_hash() == run.artifacts["receptors-heldout-cases"]
    node = reg.lineage("receptors-cycle-report")
    assert not node.problems
