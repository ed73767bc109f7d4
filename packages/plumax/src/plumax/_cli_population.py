"""``plumax population``: a plume list in, population answers with intervals out."""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._cli_common import CLIError, check_out_folder, err_console, friendly, out_console

__all__ = ["population"]


def _utc_seconds(text: str | None, flag: str) -> float | None:
    import datetime

    if text is None:
        return None
    try:
        t = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise CLIError(
            f"{flag} must be an ISO 8601 date/time (e.g. 2024-01-31), got {text!r}"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.UTC)
    return t.timestamp()


@friendly
def population(
    catalog: Annotated[Path, typer.Argument(help="Plume-list CSV (header row first).")],
    schema: Annotated[
        str, typer.Option(help="Column schema: canonical, imeo, carbon_mapper or ghgsat.")
    ] = "canonical",
    out: Annotated[Path | None, typer.Option(help="Write the summary as JSON here.")] = None,
    skip_bad_rows: Annotated[
        bool, typer.Option(help="Leave malformed rows out (listed) instead of stopping.")
    ] = False,
    start: Annotated[
        str | None, typer.Option(help="Window start, ISO 8601 UTC (default: first detection).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Window end, ISO 8601 UTC (default: last detection).")
    ] = None,
    dedup_m: Annotated[float, typer.Option(help="Merge detections closer than this (m) ...")] = 0.0,
    dedup_hours: Annotated[float, typer.Option(help="... and this (h); 0 = off.")] = 0.0,
    event_hours: Annotated[float, typer.Option(help="Duration of one event, h.")] = 1.0,
    pod_q50_kgh: Annotated[
        float | None, typer.Option(help="Known detection limit Q50, kg/h (with --pod-slope).")
    ] = None,
    pod_slope: Annotated[
        float | None, typer.Option(help="Known Hill slope of the detection curve.")
    ] = None,
    q50_prior_kgh: Annotated[
        float, typer.Option(help="Prior centre of a fitted Q50, kg/h.")
    ] = 100.0,
    method: Annotated[str, typer.Option(help="laplace (MAP + Laplace) or nuts.")] = "laplace",
    level: Annotated[float, typer.Option(help="Credible level of the intervals.")] = 0.9,
    seed: Annotated[int, typer.Option(help="Seed of the posterior draws / NUTS.")] = 0,
):
    """Population answers from a plume list: event rate, sizes, what was missed, totals.

    Fits the thinned marked point process of plumax-pod (constant event rate, lognormal
    event sizes, a Hill probability of detection per instrument) and reports each
    quantity with its credible interval: true events per day, median and mean event
    size (kg/h), detection limit Q50 per instrument, the fraction of events detected,
    the total emitted mass (t) next to the naive catalogue sum, the missing-mass
    fraction, and the chance of at least one event per day. Column schemas:
    docs/pod/catalogs.md.

    Examples:

      plumax population plumes.csv --out population.json

      plumax population imeo.csv --schema imeo --dedup-m 500 --dedup-hours 2

      plumax population plumes.csv --pod-q50-kgh 300 --pod-slope 2 --method nuts
    """
    import jax.random as jr

    import plumax_pod as pp

    from ._population import METHODS, population as run_population
    from ._scene import write_json

    if not catalog.is_file():
        raise CLIError(f"input file {str(catalog)!r} does not exist")
    if schema not in pp.SCHEMAS:
        raise CLIError(f"--schema must be one of {', '.join(sorted(pp.SCHEMAS))}, got {schema!r}")
    if method not in METHODS:
        raise CLIError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if (pod_q50_kgh is None) != (pod_slope is None):
        raise CLIError("give both --pod-q50-kgh and --pod-slope (a known detection curve)")
    check_out_folder(out)
    try:
        with err_console.status(f"fitting the population model ({method})..."):
            res = run_population(
                catalog,
                schema=schema,
                errors="report" if skip_bad_rows else "raise",
                start=_utc_seconds(start, "--start"),
                end=_utc_seconds(end, "--end"),
                dedup_m=dedup_m,
                dedup_hours=dedup_hours,
                event_hours=event_hours,
                pod_q50_kgh=pod_q50_kgh,
                pod_slope=pod_slope,
                q50_prior_kgh=q50_prior_kgh,
                method=method,
                key=jr.key(seed),
                level=level,
            )
    except pp.CatalogError as exc:
        issues = exc.report.issues
        shown = "; ".join(f"line {ln}: {msg}" for ln, msg in issues[:3])
        more = f" (and {len(issues) - 3} more)" if len(issues) > 3 else ""
        raise CLIError(
            f"{catalog}: {len(exc.report.bad_lines)} malformed row(s): {shown}{more}; "
            "fix them or pass --skip-bad-rows"
        ) from None
    s = res.summary
    c = s["catalog"]
    if s["malformed"]:
        typer.echo(f"warning: left out {len(s['malformed'])} malformed row(s):", err=True)
        for m in s["malformed"]:
            typer.echo(f"  line {m['line']}: {m['problem']}", err=True)
    out_console.print(
        f"{catalog.name}: {c['events']} events ({c['rows']} rows) from "
        f"{', '.join(c['instruments'])}, {c['days']:.1f} days ({c['start']} to {c['end']})"
    )
    pct = int(round(100 * level))
    table = Table(title=f"population ({method}, detection curve {s['pod']})")
    for col in ("quantity", "median", f"{pct}% interval", "units"):
        table.add_column(col)

    def row(name, v, units, fmt="{:.4g}"):
        table.add_row(
            name, fmt.format(v["median"]), f"[{fmt.format(v['lo'])}, {fmt.format(v['hi'])}]", units
        )

    p = s["parameters"]
    row("true events", p["event_rate_per_day"], "per day")
    row("median event size", p["median_event_kgh"], "kg/h")
    row("mean event size", p["mean_event_kgh"], "kg/h")
    for name, v in p["q50_kgh"].items():
        row(f"Q50 ({name})", v, "kg/h")
    for name, v in s["detected_fraction"].items():
        row(f"detected fraction ({name})", v, "1", "{:.3f}")
    row("total emitted", s["total_t"], "t")
    table.add_row("naive catalogue sum", f"{s['naive_total_t']:.4g}", "", "t")
    row("missing-mass fraction", s["missing_mass_fraction"], "1", "{:.3f}")
    row("P(>= 1 event per day)", s["p_event_per_day"], "1", "{:.3f}")
    out_console.print(table)
    if not s["converged"]:
        typer.echo("warning: the fit did not converge; treat the numbers with care", err=True)
    if out is not None:
        write_json(out, s)
        out_console.print(f"wrote {out}")
