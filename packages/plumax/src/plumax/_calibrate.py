"""``plumax calibrate``: the whole chain over many simulated truths, and how honest it is.

For each of ``n`` truths drawn from a :class:`TruthDistribution` (emission rate,
wind speed and direction, stability class, albedo, SNR, and the met source's error),
composition only:

1. simulate an EMIT-like radiance overpass (:func:`plumax.pipelines.simulate_radiance`;
   the inversion is told the wind *with* the met error);
2. retrieve it with its error model (:func:`plumax.pipelines.retrieve`,
   ``plumax_rtm.RetrievalErrorModel``);
3. invert the retrieved map with the gain, offset and wind as nuisance parameters
   (:meth:`plumax.pipelines.Retrieval.inversion_model`, :func:`plumax.pipelines.invert`).

Then, per parameter (``Q`` in log space, ``x0``, ``y0``): how often the 50/90/95 %
equal-tailed intervals cover the truth against the binomial 95 % band of a calibrated
chain, the mean 90 % width against the empirical 90 % spread of the point estimates'
errors, and the SBC rank test of ``plumax_core.gates.sbc_uniformity`` (Talts et al.
2018) on ranks among ``L`` posterior draws. ``error_scale`` multiplies every error term
the chain assumes (the map's sigma, the gain, offset and wind priors): 0.5 is the
deliberately overconfident chain the checks must reject.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import math
import time
from pathlib import Path
from typing import Any

import jax.random as jr
import numpy as np
from matplotlib.figure import Figure
from scipy import stats

from plumax_core import units
from plumax_core.gates import sbc_ranks, sbc_uniformity

from ._invert import invert, plume_prior, summarise
from ._outputs import StagedFolder, atomic_write, write_json
from ._overpass import retrieve, simulate_radiance
from ._scene import default_geometry

__all__ = ["CalibrationResult", "TruthDistribution", "calibrate", "run_calibrate"]

LEVELS = (0.5, 0.9, 0.95)
PARAMS = ("Q", "x0", "y0")
CLASSES = "ABCDEF"


@dataclasses.dataclass(frozen=True)
class TruthDistribution:
    """Where the simulated truths come from (independent draws).

    Attributes:
        q_kgh: ``(lo, hi)`` emission rate, kg/h, log-uniform.
        wind_speed: ``(lo, hi)`` m/s, uniform.
        wind_dir: ``(lo, hi)`` degrees (from), uniform; the image lies downwind of a
            westerly (270).
        classes: Pasquill classes drawn with equal probability, e.g. ``"ABCDEF"``.
        albedo_mean: ``(lo, hi)`` scene-mean albedo, uniform (per-pixel spread 0.08).
        snr: ``(lo, hi)`` instrument SNR, uniform.
        wind_speed_log_std: the met source's 1-sigma error of log wind speed.
        wind_direction_std: its 1-sigma wind-direction error, degrees.
        position_halfwidth: the source lies uniformly within ± this of the origin in x
            and y, m (the sub-pixel position: 30 m is half a 60 m pixel).

    Raises:
        ValueError: an empty or reversed range, a non-positive bound where one must be
            positive, an unknown class or a negative met error; naming the field.
    """

    q_kgh: tuple[float, float] = (100.0, 5000.0)
    wind_speed: tuple[float, float] = (1.5, 8.0)
    wind_dir: tuple[float, float] = (255.0, 285.0)
    classes: str = CLASSES
    albedo_mean: tuple[float, float] = (0.15, 0.35)
    snr: tuple[float, float] = (200.0, 500.0)
    wind_speed_log_std: float = 0.1
    wind_direction_std: float = 5.0
    position_halfwidth: float = 30.0

    def __post_init__(self):
        for name in ("q_kgh", "wind_speed", "wind_dir", "albedo_mean", "snr"):
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(f"`{name}` must be a range (lo <= hi), got {(lo, hi)}")
        for name in ("q_kgh", "albedo_mean", "snr"):
            if getattr(self, name)[0] <= 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)}")
        if self.wind_speed[0] < 0.5:
            raise ValueError(f"`wind_speed` must be >= 0.5 m/s, got {self.wind_speed}")
        if not self.classes or any(c not in CLASSES for c in self.classes):
            raise ValueError(f"`classes` must be letters of {CLASSES!r}, got {self.classes!r}")
        for name in ("wind_speed_log_std", "wind_direction_std", "position_halfwidth"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"`{name}` must be finite and >= 0, got {v}")

    def draw(self, key) -> dict[str, Any]:
        """One truth from ``key``: ``{"q_kgh", "x0", "y0", "wind_speed", "wind_dir",
        "stability", "albedo_mean", "snr"}``; the source lies anywhere in the 60 m
        pixel around the origin (``x0``, ``y0`` uniform in ± ``position_halfwidth``: the
        sub-pixel position is unknown to the inversion)."""
        u = np.asarray(jr.uniform(key, (8,)), np.float64)
        lo, hi = np.log(self.q_kgh)

        def lin(r, v):
            return r[0] + (r[1] - r[0]) * v

        return {
            "q_kgh": float(np.exp(lo + (hi - lo) * u[0])),
            "wind_speed": float(lin(self.wind_speed, u[1])),
            "wind_dir": float(lin(self.wind_dir, u[2])),
            "stability": self.classes[min(int(u[3] * len(self.classes)), len(self.classes) - 1)],
            "albedo_mean": float(lin(self.albedo_mean, u[4])),
            "snr": float(lin(self.snr, u[5])),
            "x0": float(self.position_halfwidth * (2.0 * u[6] - 1.0)),
            "y0": float(self.position_halfwidth * (2.0 * u[7] - 1.0)),
        }

    def prior_kwargs(self) -> dict[str, float]:
        """The :func:`plumax.pipelines.plume_prior` arguments the inversions use: the
        moments of the truths' distribution (Q lognormal with the geometric mean of the
        range and log-std range / sqrt(12); positions normal around 0 with the uniform's
        std, ``2 halfwidth / sqrt(12)``), so that the prior states what the truths are,
        as simulation-based calibration assumes (Talts et al. 2018)."""
        lo, hi = np.log(self.q_kgh)
        return {
            "q_kgh": float(np.exp(0.5 * (lo + hi))),
            "q_log_std": float(max(hi - lo, 1e-3) / math.sqrt(12.0)),
            "position_std": float(max(2.0 * self.position_halfwidth, 1e-3) / math.sqrt(12.0)),
        }


@dataclasses.dataclass(frozen=True)
class CalibrationResult:
    """The outcome of :func:`calibrate`.

    Attributes:
        cases: one dict per truth (drawn truth, posterior medians and intervals per
            level, SBC ranks, timings).
        checks: per parameter ``{"coverage": {level: {"covered", "n", "band",
            "pass"}}, "width_90", "spread_90", "width_ratio", "width_pass",
            "sbc_p", "sbc_pass", "pass"}``.
        strata: coverage of the 90 % intervals per range of Q, wind and class.
        passed: every check of every parameter passed.
        settings: the distribution, ``error_scale``, ``n``, ``seed``, ``fast``.
    """

    cases: list[dict[str, Any]]
    checks: dict[str, Any]
    strata: dict[str, Any]
    passed: bool
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dataclasses.asdict(self)


def _scaled(ret, scale: float):
    """``ret`` with every error term of its model times ``scale`` (sigma, gain, offset
    and the scene's wind uncertainty)."""
    if scale == 1.0:
        return ret
    r = ret.result
    em = dataclasses.replace(
        r.error_model,
        sigma=np.asarray(r.error_model.sigma) * scale,
        offset_std=r.error_model.offset_std * scale,
        gain_log_std=r.error_model.gain_log_std * scale,
    )
    result = dataclasses.replace(r, sigma=np.asarray(r.sigma) * scale, error_model=em)
    ws, wd = ret.scene.wind_uncertainty
    scene = dataclasses.replace(ret.scene, wind_uncertainty=(ws * scale, wd * scale))
    return dataclasses.replace(ret, result=result, scene=scene)


def _one_case(i, key, dist, error_scale, fast, n_draws) -> dict[str, Any]:
    t0 = time.perf_counter()
    k_truth, k_surf, k_noise, k_met, k_draws = jr.split(key, 5)
    truth = dist.draw(k_truth)
    pixels = 24 if fast else 32
    geometry = default_geometry(pixels, extent=60.0 * pixels, upwind=180.0)
    sc = simulate_radiance(
        q_kgh=truth["q_kgh"],
        x0=truth["x0"],
        y0=truth["y0"],
        wind_speed=truth["wind_speed"],
        wind_dir=truth["wind_dir"],
        stability=truth["stability"],
        albedo_mean=truth["albedo_mean"],
        snr=truth["snr"],
        geometry=geometry,
        key_surface=k_surf,
        key_noise=k_noise,
        wind_speed_log_std=dist.wind_speed_log_std,
        wind_direction_std=dist.wind_direction_std,
        key_met=k_met,
    )
    ret = _scaled(retrieve(sc, optimal_estimation=False), error_scale)
    model, stds = ret.inversion_model()
    prior = plume_prior(model.param_spec, nuisance_std=stds, **dist.prior_kwargs())
    inv = invert(ret.observations(), sc.met, model, prior, method="laplace", start=ret.starts())
    post = inv.posterior
    true = {"Q": truth["q_kgh"], "x0": truth["x0"], "y0": truth["y0"]}
    out: dict[str, Any] = {"index": i, "truth": truth, "intervals": {}}
    for level in LEVELS:
        s = inv.summary if level == 0.9 else summarise(post, level=level)
        out["intervals"][str(level)] = {p: [s[p]["lo"], s[p]["hi"]] for p in PARAMS}
    out["median"] = {p: inv.summary[p]["median"] for p in PARAMS}
    draws = post.sample_params(k_draws, n_draws)
    d = np.stack(
        [units.kg_s_to_kg_h(np.asarray(draws["Q"], np.float64))]
        + [np.asarray(draws[p], np.float64) for p in PARAMS[1:]],
        -1,
    )
    th = np.array([true[p] for p in PARAMS])
    out["rank"] = [int(r) for r in np.asarray(sbc_ranks(th[None], d[None]))[0]]
    out["converged"] = bool(inv.summary["converged"])
    out["wall_s"] = time.perf_counter() - t0
    return out


def _band(n: int, level: float) -> tuple[int, int]:
    """The binomial 95 % band of the number of covering intervals (central)."""
    return int(stats.binom.ppf(0.025, n, level)), int(stats.binom.ppf(0.975, n, level))


def _checks(cases, n_draws: int, max_width_ratio: float) -> tuple[dict, bool]:
    checks: dict[str, Any] = {}
    n = len(cases)
    ranks = np.array([c["rank"] for c in cases])
    for j, p in enumerate(PARAMS):

        def tr(v, p=p):  # Q in log space: widths and errors are relative
            return np.log(v) if p == "Q" else np.asarray(v, np.float64)

        truth = np.array([c["truth"]["q_kgh" if p == "Q" else p] for c in cases])
        cov = {}
        for level in LEVELS:
            iv = np.array([c["intervals"][str(level)][p] for c in cases])
            k = int(np.sum((iv[:, 0] <= truth) & (truth <= iv[:, 1])))
            lo, hi = _band(n, level)
            cov[str(level)] = {"covered": k, "n": n, "band": [lo, hi], "pass": lo <= k <= hi}
        iv90 = np.array([c["intervals"]["0.9"][p] for c in cases])
        width = float(np.mean(tr(iv90[:, 1]) - tr(iv90[:, 0])))
        err = tr(np.array([c["median"][p] for c in cases])) - tr(truth)
        spread = float(np.percentile(err, 95) - np.percentile(err, 5))
        gate = sbc_uniformity(ranks[:, j : j + 1], n_draws)
        sbc_p = float(np.min(gate.details["p_values"])) if "p_values" in gate.details else None
        ratio = width / spread if spread > 0 else math.inf
        checks[p] = {
            "coverage": cov,
            "width_90": width,
            "spread_90": spread,
            "width_ratio": ratio,
            "width_pass": ratio <= max_width_ratio,
            "width_units": "log(kg/h)" if p == "Q" else "m",
            "sbc_p": sbc_p,
            "sbc_pass": bool(gate.passed),
        }
        checks[p]["pass"] = bool(
            all(c["pass"] for c in cov.values()) and checks[p]["width_pass"] and gate.passed
        )
    return checks, all(c["pass"] for c in checks.values())


def _strata(cases) -> dict[str, Any]:
    groups = {
        "Q 100-500 kg/h": lambda t: t["q_kgh"] < 500,
        "Q 500-2000 kg/h": lambda t: 500 <= t["q_kgh"] < 2000,
        "Q >= 2000 kg/h": lambda t: t["q_kgh"] >= 2000,
        "wind < 4 m/s": lambda t: t["wind_speed"] < 4,
        "wind >= 4 m/s": lambda t: t["wind_speed"] >= 4,
        "classes A-B": lambda t: t["stability"] in "AB",
        "classes C-D": lambda t: t["stability"] in "CD",
        "classes E-F": lambda t: t["stability"] in "EF",
    }
    out = {}
    for name, sel in groups.items():
        sub = [c for c in cases if sel(c["truth"])]
        row = {"n": len(sub)}
        for p in PARAMS:
            t = [c["truth"]["q_kgh" if p == "Q" else p] for c in sub]
            iv = [c["intervals"]["0.9"][p] for c in sub]
            row[p] = int(sum(lo <= v <= hi for v, (lo, hi) in zip(t, iv, strict=True)))
        out[name] = row
    return out


def calibrate(
    n: int = 40,
    *,
    seed: int = 0,
    fast: bool = False,
    distribution: TruthDistribution | None = None,
    error_scale: float = 1.0,
    n_draws: int = 99,
    max_width_ratio: float = 1.25,
    progress=None,
) -> CalibrationResult:
    """Run the chain over ``n`` simulated truths and check its intervals (module doc).

    Args:
        n: number of truths (>= 10).
        seed: truths, scenes and draws come from ``jax.random.key(seed)``.
        fast: 24 x 24 pixel scenes (else 32 x 32).
        distribution: the truths' distribution (default :class:`TruthDistribution`).
        error_scale: multiplies every error term the chain assumes (> 0; 1 = as
            estimated; 0.5 = overconfident).
        n_draws: posterior draws per truth for the SBC ranks (>= 9).
        max_width_ratio: largest mean 90 % width over the 90 % spread of the errors.
        progress: optional ``callable(i, n, case)`` after each truth.

    Raises:
        ValueError: ``n < 10``, ``n_draws < 9`` or a non-positive ``error_scale``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 10:
        raise ValueError(f"`n` must be an int >= 10 (coverage needs many truths), got {n!r}")
    if isinstance(n_draws, bool) or not isinstance(n_draws, int) or n_draws < 9:
        raise ValueError(f"`n_draws` must be an int >= 9, got {n_draws!r}")
    if not (math.isfinite(error_scale) and error_scale > 0):
        raise ValueError(f"`error_scale` must be > 0, got {error_scale}")
    dist = TruthDistribution() if distribution is None else distribution
    keys = jr.split(jr.key(seed), n)
    cases = []
    for i in range(n):
        cases.append(_one_case(i, keys[i], dist, float(error_scale), fast, n_draws))
        if progress is not None:
            progress(i, n, cases[-1])
    checks, passed = _checks(cases, n_draws, max_width_ratio)
    settings = {
        "n": n,
        "seed": seed,
        "fast": fast,
        "error_scale": error_scale,
        "n_draws": n_draws,
        "max_width_ratio": max_width_ratio,
        "distribution": dataclasses.asdict(dist),
    }
    return CalibrationResult(cases, checks, _strata(cases), passed, settings)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(res: CalibrationResult) -> str:
    fig = Figure(figsize=(11, 3.4))
    axes = fig.subplots(1, 3)
    ax = axes[0]
    for j, p in enumerate(PARAMS):
        cov = res.checks[p]["coverage"]
        x = np.array(LEVELS) + (j - 1) * 0.008
        n = cov["0.9"]["n"]
        y = [cov[str(lv)]["covered"] / n for lv in LEVELS]
        ax.plot(x, y, "o", label=p)
    for lv in LEVELS:
        lo, hi = _band(len(res.cases), lv)
        ax.plot([lv, lv], [lo / len(res.cases), hi / len(res.cases)], "k-", alpha=0.3, lw=6)
    ax.plot([0.45, 1.0], [0.45, 1.0], "k--", lw=0.8)
    ax.set(xlabel="nominal level", ylabel="fraction covering the truth", title="coverage")
    ax.legend(fontsize=7)
    ranks = np.array([c["rank"] for c in res.cases])
    ax = axes[1]
    ax.hist(ranks, bins=10, range=(0, res.settings["n_draws"] + 1), label=list(PARAMS))
    ax.axhline(len(res.cases) / 10, color="k", ls="--", lw=0.8)
    ax.set(xlabel="rank of the truth among posterior draws", title="SBC ranks")
    ax.legend(fontsize=7)
    ax = axes[2]
    q = np.array([c["truth"]["q_kgh"] for c in res.cases])
    med = np.array([c["median"]["Q"] for c in res.cases])
    iv = np.array([c["intervals"]["0.9"]["Q"] for c in res.cases])
    ax.errorbar(q, med / q, yerr=[(med - iv[:, 0]) / q, (iv[:, 1] - med) / q], fmt="o", ms=3)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel="true Q (kg/h)", ylabel="posterior Q / truth (90%)")
    return _png(fig)


def _report_html(res: CalibrationResult) -> str:
    rows = []
    for p in PARAMS:
        c = res.checks[p]
        cov = " ".join(
            f"{lv}: {c['coverage'][lv]['covered']}/{c['coverage'][lv]['n']} "
            f"[{c['coverage'][lv]['band'][0]}-{c['coverage'][lv]['band'][1]}]"
            for lv in map(str, LEVELS)
        )
        sbc = "n/a" if c["sbc_p"] is None else f"{c['sbc_p']:.3g}"
        rows.append(
            f"<tr><td>{p}</td><td>{cov}</td><td>{c['width_90']:.3g} / {c['spread_90']:.3g} "
            f"{c['width_units']} = {c['width_ratio']:.2f}</td><td>{sbc}</td>"
            f"<td>{'PASS' if c['pass'] else 'FAIL'}</td></tr>"
        )
    strata = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v['n']}</td>"
        + "".join(f"<td>{v[p]}/{v['n']}</td>" for p in PARAMS)
        + "</tr>"
        for k, v in res.strata.items()
    )
    s = res.settings
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>plumax calibrate</title>
<style>body{{font-family:sans-serif;max-width:62em;margin:auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #aaa;padding:2px 8px}}</style></head>
<body><h1>plumax calibrate: {"PASS" if res.passed else "FAIL"}</h1>
<p>{s["n"]} simulated truths (seed {s["seed"]}{", fast" if s["fast"] else ""}), error scale
{s["error_scale"]:g}; distribution: {html.escape(str(s["distribution"]))}.</p>
<h2>Checks</h2>
<table><tr><th>parameter</th><th>intervals covering the truth [binomial 95% band]</th>
<th>mean 90% width / 90% spread of errors</th><th>SBC p</th><th>verdict</th></tr>
{"".join(rows)}</table>
<p>Pass: every coverage inside its band, width ratio at most {s["max_width_ratio"]:g},
SBC p at least 0.01. Q is compared in log space.</p>
<h2>90% coverage by range</h2>
<table><tr><th>range</th><th>n</th>{"".join(f"<th>{p}</th>" for p in PARAMS)}</tr>
{strata}</table>
<img alt="calibration" src="data:image/png;base64,{_figure(res)}">
</body></html>"""


def run_calibrate(out: str | Path, *, console=None, **kwargs) -> CalibrationResult:
    """:func:`calibrate`, then write ``calibration.json`` and ``report.html`` into the
    folder ``out`` (staged and published whole, as ``plumax demo`` does)."""
    out = Path(out)
    with StagedFolder(out, command="plumax calibrate") as stage:

        def progress(i, n, case):
            if console is not None:
                t = case["truth"]
                console.print(
                    f"[{i + 1}/{n}] Q {t['q_kgh']:.0f} kg/h, wind {t['wind_speed']:.1f} m/s, "
                    f"class {t['stability']}: median {case['median']['Q']:.0f} kg/h "
                    f"({case['wall_s']:.1f} s)"
                )

        res = calibrate(progress=progress, **kwargs)
        write_json(stage.path / "calibration.json", res.to_dict())
        page = _report_html(res)
        atomic_write(stage.path / "report.html", lambda t: t.write_text(page, encoding="utf-8"))
    return res
