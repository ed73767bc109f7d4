"""``plumax population``: a plume list in, population answers with intervals out."""

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._cli_common import (
    CLIError,
    check_outputs,
    err_console,
    friendly,
    out_console,
    print_warnings,
    warn,
)

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


def _coverage_option(items: list[str] | None) -> float | dict[str, float] | None:
    """``--coverage F`` (one fraction, instruments pooled) or ``--coverage NAME=F`` ..."""
    if not items:
        return None

    def fraction(text: str, item: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if not (math.isfinite(v) and 0 < v <= 1):
            raise CLIError(
                f"--coverage {item!r}: the fraction must be a number in (0, 1], e.g. "
                "--coverage EMIT=0.3"
            )
        return v

    named = [i for i in items if "=" in i]
    if not named:
        if len(items) > 1:
            raise CLIError(
                "--coverage without a name gives one fraction for all instruments; "
                "give it once, or name each instrument (--coverage EMIT=0.3)"
            )
        return fraction(items[0], items[0])
    if len(named) != len(items):
        raise CLIError("--coverage: name every instrument (NAME=FRACTION) or give one fraction")
    out: dict[str, float] = {}
    for item in items:
        name, _, value = item.partition("=")
        name = name.strip()
        if not name:
            raise CLIError(f"--coverage {item!r}: the instrument name is empty")
        if name in out:
            raise CLIError(f"--coverage names {name!r} twice")
        out[name] = fraction(value, item)
    return out


@friendly
def population(
    catalog: Annotated[Path, typer.Argument(help="Plume-list CSV (UTF-8, header row first).")],
    schema: Annotated[
        str, typer.Option(help="Column schema: canonical, imeo, carbon_mapper or ghgsat.")
    ] = "canonical",
    out: Annotated[Path | None, typer.Option(help="Write the summary as JSON here.")] = None,
    skip_bad_rows: Annotated[
        bool,
        typer.Option(help="Leave malformed rows and exact duplicates out (listed) instead."),
    ] = False,
    blank_sigma: Annotated[
        str,
        typer.Option(
            help="A blank q_sigma in a file with that column: error (a malformed row) or "
            "point (an exact rate)."
        ),
    ] = "error",
    time_format: Annotated[
        str | None,
        typer.Option(help="strptime format of the time column (default: ISO 8601)."),
    ] = None,
    epoch_unit: Annotated[
        str | None, typer.Option(help="The time column holds Unix epochs in s or ms.")
    ] = None,
    min_year: Annotated[int, typer.Option(help="Earliest plausible detection year.")] = 1970,
    max_year: Annotated[int, typer.Option(help="Latest plausible detection year.")] = 2100,
    start: Annotated[
        str | None, typer.Option(help="Window start, ISO 8601 UTC (default: first detection).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Window end, ISO 8601 UTC (default: last detection).")
    ] = None,
    coverage: Annotated[
        list[str] | None,
        typer.Option(
            help="Observing coverage in (0, 1]: NAME=FRACTION per instrument (repeat), "
            "or one FRACTION for all (pooled)."
        ),
    ] = None,
    coverage_file: Annotated[
        Path | None,
        typer.Option(
            help="CSV of coverage: instrument,coverage (fractions) or instrument,time (overpasses)."
        ),
    ] = None,
    overpass_half_window_h: Annotated[
        float | None,
        typer.Option(help="Half-width of an overpass window, h (default: event-hours / 2)."),
    ] = None,
    pool_instruments: Annotated[
        bool | None,
        typer.Option(
            "--pool-instruments/--separate-instruments",
            help="Fit all instruments as one, or refuse to pool (default: pool only when "
            "coverage is not stated, with a warning).",
        ),
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
    the total emitted mass (t: the detected mass plus the expected missed mass) next to
    the naive catalogue sum, the missing-mass fraction, and the chance of at least one
    event per day. Times are ISO 8601 unless --time-format or --epoch-unit says
    otherwise. Several instruments need their observing coverage (--coverage,
    --coverage-file); without it they are pooled into one, with a warning. Column
    schemas and rules: docs/pod/catalogs.md.

    Examples:

      plumax population plumes.csv --out population.json

      plumax population imeo.csv --schema imeo --dedup-m 500 --dedup-hours 2

      plumax population plumes.csv --coverage EMIT=0.4 --coverage PRISMA=0.1

      plumax population plumes.csv --pod-q50-kgh 300 --pod-slope 2 --method nuts
    """
    import jax.random as jr

    import plumax_pod as pp

    from ._outputs import write_json
    from ._population import METHODS, population as run_population

    if not catalog.is_file():
        raise CLIError(f"input file {str(catalog)!r} does not exist")
    if coverage_file is not None and not coverage_file.is_file():
        raise CLIError(f"--coverage-file {str(coverage_file)!r} does not exist")
    if schema not in pp.SCHEMAS:
        raise CLIError(f"--schema must be one of {', '.join(sorted(pp.SCHEMAS))}, got {schema!r}")
    if method not in METHODS:
        raise CLIError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if blank_sigma not in ("error", "point"):
        raise CLIError(f"--blank-sigma must be error or point, got {blank_sigma!r}")
    if epoch_unit is not None and epoch_unit not in ("s", "ms"):
        raise CLIError(f"--epoch-unit must be s or ms, got {epoch_unit!r}")
    if time_format is not None and epoch_unit is not None:
        raise CLIError("give --time-format or --epoch-unit, not both")
    if time_format is not None and "%" not in time_format:
        raise CLIError(
            f"--time-format must be a strptime format like '%Y-%m-%d', got {time_format!r}"
        )
    if not 1 <= min_year <= max_year <= 9998:
        raise CLIError(
            f"--min-year/--max-year must be increasing years, got {min_year}, {max_year}"
        )
    if (pod_q50_kgh is None) != (pod_slope is None):
        raise CLIError("give both --pod-q50-kgh and --pod-slope (a known detection curve)")
    cov = _coverage_option(coverage)
    if cov is not None and coverage_file is not None:
        raise CLIError("give --coverage or --coverage-file, not both")
    if isinstance(cov, dict) and pool_instruments:
        raise CLIError(
            "--coverage NAME=FRACTION describes the instruments apart: drop --pool-instruments"
        )
    check_outputs(inputs=[catalog, coverage_file], files={"--out": out})
    try:
        with err_console.status(f"fitting the population model ({method})..."):
            res = run_population(
                catalog,
                schema=schema,
                errors="report" if skip_bad_rows else "raise",
                blank_sigma=blank_sigma,
                time_format=time_format,
                epoch_unit=epoch_unit,
                years=(min_year, max_year),
                start=_utc_seconds(start, "--start"),
                end=_utc_seconds(end, "--end"),
                dedup_m=dedup_m,
                dedup_hours=dedup_hours,
                event_hours=event_hours,
                coverage=cov,
                coverage_file=coverage_file,
                overpass_half_window_h=overpass_half_window_h,
                pool=pool_instruments,
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
        is_catalog = Path(exc.report.path) == catalog
        hint = "fix them or pass --skip-bad-rows" if is_catalog else "fix them"
        raise CLIError(
            f"{exc.report.path}: {len(exc.report.bad_lines)} malformed row(s): {shown}{more}; "
            f"{hint}"
        ) from None
    s = res.summary
    c = s["catalog"]
    if s["malformed"]:
        warn(f"left out {len(s['malformed'])} malformed row(s):")
        for m in s["malformed"]:
            typer.echo(f"  line {m['line']}: {m['problem']}", err=True)
    print_warnings(s, what="the population fit")
    out_console.print(
        f"{catalog.name}: {c['events']} events ({c['rows']} rows) from "
        f"{', '.join(c['instruments'])}, {c['days']:.1f} days ({c['start']} to {c['end']}); "
        f"times {c['time_rule']}, marks {c['mark_likelihood']}"
    )
    pct = int(round(100 * level))
    pooled = ", instruments pooled" if s["coverage"]["pooled"] else ""
    table = Table(title=f"population ({method}, detection curve {s['pod']}{pooled})")
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
    row("  of which missed", s["missed_t"], "t")
    table.add_row("naive catalogue sum", f"{s['naive_total_t']:.4g}", "", "t")
    row("missing-mass fraction", s["missing_mass_fraction"], "1", "{:.3f}")
    row("P(>= 1 event per day)", s["p_event_per_day"], "1", "{:.3f}")
    out_console.print(table)
    if out is not None:
        write_json(out, s)
        out_console.print(f"wrote {out}")
