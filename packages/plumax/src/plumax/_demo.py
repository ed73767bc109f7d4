"""``plumax demo``: the main job on a built-in scene, with a one-page HTML report.

Transport-only for now (plumax-rtm's radiance and retrieval stage joins later):

1. a synthetic column-image overpass of a point source (:func:`plumax.pipelines.simulate`);
2. MAP + Laplace and NUTS inversions (:func:`plumax.pipelines.invert`);
3. ``report.html`` (figures embedded as base64 PNG), ``scene.nc``, ``summary.json``,
   the posteriors as JSON and an artifact registry with their lineage.

Deterministic given ``seed``.
"""

import base64
import html
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEMO_TRUTH", "run_demo"]

#: The built-in source: 360 kg/h (0.1 kg/s) at (0, 0), 5 m release, 4 m/s westerly, class C.
DEMO_TRUTH = {"q_kgh": 360.0, "x0": 0.0, "y0": 0.0, "height": 5.0}
DEMO_MET = {"wind_speed": 4.0, "wind_dir": 270.0, "stability": "C", "pblh": 800.0}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _scene_figure(ds) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 4.2))
    ax = fig.add_subplot()
    x, y = ds["x"].values, ds["y"].values
    im = ax.pcolormesh(x, y, ds["values"].values, cmap="magma", shading="auto")
    fig.colorbar(im, ax=ax, label="column enhancement (ppm m)")
    ax.plot(ds.attrs["true_x0"], ds.attrs["true_y0"], "c*", ms=12, label="true source")
    ax.set(xlabel="x (m)", ylabel="y (m)", title="synthetic overpass (observed)", aspect="equal")
    ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


def _marginals_figure(laplace, nuts, truth: dict[str, float]) -> str:
    from matplotlib.figure import Figure
    from scipy import stats

    spec = nuts.posterior.param_spec
    draws = spec.from_unconstrained(nuts.posterior.flat_samples())
    fig = Figure(figsize=(10, 3.2))
    axes = fig.subplots(1, 3)
    mean, std = np.asarray(laplace.posterior.mean), np.asarray(laplace.posterior.std())
    for i, (name, ax) in enumerate(zip(("Q", "x0", "y0"), axes, strict=True)):
        scale = 3600.0 if name == "Q" else 1.0
        d = np.asarray(draws[name]) * scale
        ax.hist(d, bins=40, density=True, color="0.75", label="NUTS")
        grid = np.linspace(d.min(), d.max(), 200)
        if name == "Q":  # Laplace is Gaussian in log Q (kg/s)
            dens = stats.norm.pdf(np.log(grid / scale), mean[i], std[i]) / grid
        else:
            dens = stats.norm.pdf(grid, mean[i], std[i])
        ax.plot(grid, dens, "C0", label="MAP + Laplace")
        s = nuts.summary[name]
        ax.axvspan(s["lo"], s["hi"], color="C1", alpha=0.15, label="NUTS 90%")
        ax.axvline(truth[name], color="k", ls="--", label="truth")
        units = "kg/h" if name == "Q" else "m"
        ax.set(xlabel=f"{name} ({units})", yticks=[])
    axes[0].legend(fontsize=7)
    fig.suptitle("posterior marginals")
    return _png(fig)


def _row(name: str, s: dict[str, Any], truth: float) -> str:
    inside = s["lo"] <= truth <= s["hi"]
    return (
        f"<tr><td>{html.escape(name)}</td><td>{s['median']:.4g}</td>"
        f"<td>[{s['lo']:.4g}, {s['hi']:.4g}]</td><td>{truth:.4g}</td>"
        f"<td>{'yes' if inside else 'NO'}</td><td>{html.escape(s['units'])}</td></tr>"
    )


def _report(path: Path, ds, laplace, nuts, truth, timings, seed, fast) -> None:
    from ._scene import atomic_write

    rows = []
    for label, inv in (("MAP + Laplace", laplace), ("NUTS", nuts)):
        rows.append(f"<tr><th colspan=6>{label}</th></tr>")
        rows += [_row(n, inv.summary[n], truth[n]) for n in ("Q", "x0", "y0")]
    steps = "".join(f"<li>{html.escape(k)}: {v:.1f} s</li>" for k, v in timings.items())
    met = ", ".join(
        f"{k.removeprefix('met_')}={ds.attrs[k]}"
        for k in ds.attrs
        if k.startswith("met_") and k != "met_units"
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>plumax demo</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #aaa;padding:2px 8px}}</style></head>
<body><h1>plumax demo (transport-only)</h1>
<p>A synthetic column-image overpass of a point source (Gaussian plume, plumax-transport),
inverted for the emission rate Q and the source position with vardax-lite (MAP + Laplace,
and NUTS). The radiance / matched-filter retrieval stage joins when plumax-rtm lands.</p>
<p>seed {seed}{" (fast)" if fast else ""}; {ds.sizes["x"]}x{ds.sizes["y"]} pixels;
noise {ds.attrs["noise_sigma"]:g} ppm m; {html.escape(met)}.</p>
<h2>Emission rate and source position</h2>
<table><tr><th>parameter</th><th>median</th><th>90% interval</th><th>truth</th>
<th>truth inside</th><th>units</th></tr>{"".join(rows)}</table>
<h2>Scene</h2><img alt="scene" src="data:image/png;base64,{_scene_figure(ds)}">
<h2>Posterior marginals</h2>
<img alt="marginals" src="data:image/png;base64,{_marginals_figure(laplace, nuts, truth)}">
<h2>Timings</h2><ul>{steps}</ul>
</body></html>"""
    atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))


def run_demo(out: str | Path, *, seed: int = 0, fast: bool = False, console=None) -> dict:
    """Run the demo into folder ``out``; return the summaries, paths and wall time.

    Returns:
        ``{"laplace": summary, "nuts": summary, "truth": {...}, "report": path,
        "wall_s": seconds, "timings": {step: seconds}}`` (Q in kg/h).
    """
    import jax.random as jr
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from plumax_core import ArtifactLineage, ArtifactRegistry, ModelRole

    from . import pipelines as pl
    from ._scene import atomic_write, read_scene

    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pixels = 24 if fast else 40
    nuts_budget = (200, 200) if fast else (500, 500)
    truth = {"Q": DEMO_TRUTH["q_kgh"], "x0": DEMO_TRUTH["x0"], "y0": DEMO_TRUTH["y0"]}
    key_noise, key_nuts = jr.split(jr.key(seed))
    timings: dict[str, float] = {}
    steps = ["simulate the overpass", "MAP + Laplace", "NUTS", "report"]
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(steps[0], total=len(steps))

        def step(i: int, fn):
            progress.update(task, description=steps[i])
            t = time.perf_counter()
            res = fn()
            timings[steps[i]] = time.perf_counter() - t
            progress.advance(task)
            return res

        ds = step(
            0,
            lambda: pl.simulate(
                **DEMO_TRUTH,
                **DEMO_MET,
                noise=20.0,
                key=key_noise,
                geometry=pl.default_geometry(pixels),
            ),
        )
        ds.attrs["noise_seed"] = int(seed)
        atomic_write(out / "scene.nc", lambda tmp: ds.to_netcdf(tmp, format="NETCDF4"))
        scene = read_scene(ds)
        laplace = step(1, lambda: pl.invert(scene, method="laplace"))
        nuts = step(
            2,
            lambda: pl.invert(
                scene,
                method="nuts",
                key=key_nuts,
                num_warmup=nuts_budget[0],
                num_samples=nuts_budget[1],
            ),
        )
        report = out / "report.html"
        step(3, lambda: _report(report, ds, laplace, nuts, truth, timings, seed, fast))
        progress.update(task, description="done")

    for name, inv in (("laplace", laplace), ("nuts", nuts)):
        atomic_write(
            out / f"posterior-{name}.json",
            lambda tmp, inv=inv: tmp.write_text(json.dumps(inv.to_dict()), encoding="utf-8"),
        )
    reg = ArtifactRegistry(out / "registry")
    h_scene = reg.store(scene.observations, "demo-scene", ModelRole.BASELINE, tags={"seed": seed})
    for name, inv in (("laplace", laplace), ("nuts", nuts)):
        reg.store(
            inv.storable_posterior(),
            f"demo-posterior-{name}",
            ModelRole.ORACLE,
            lineage=ArtifactLineage(parent_hashes=(h_scene,)),
            tags={"method": name, "seed": seed},
        )
    wall = time.perf_counter() - t_start
    result = {
        "laplace": laplace.summary,
        "nuts": nuts.summary,
        "truth": truth,
        "report": str(report),
        "wall_s": wall,
        "timings": timings,
        "seed": seed,
        "fast": fast,
        "transport_only": True,
    }
    atomic_write(
        out / "summary.json", lambda tmp: tmp.write_text(json.dumps(result, indent=1), "utf-8")
    )
    return result
