"""The ``plumax`` command line: a thin layer over :mod:`plumax.pipelines`.

Every command reads and writes documented files (NetCDF scenes, JSON posteriors, an
artifact registry). Emission rates are kg/h here and kg/s inside. Bad input prints one
line starting with ``error:`` to stderr and exits with status 1 (2 for a usage error).
No command writes over one of its inputs (:func:`check_outputs`); each output file is
written to a temporary file and renamed, and ``plumax demo`` publishes its folder whole
(:mod:`plumax._outputs`), so a failed run leaves no partial output behind. Set
``PLUMAX_DEBUG=1`` to see full tracebacks.
"""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._cli_common import (
    CLIError,
    check_outputs,
    err_console,
    friendly,
    open_scene,
    out_console,
    print_warnings,
    warn,
)
from ._cli_population import population
from ._cli_registry import registry_app
from ._cycle_tiers import cycle_tiers

app = typer.Typer(
    name="plumax",
    help=(
        "plumax: simulate methane plumes and infer their sources, with posteriors.\n\n"
        "Quick start:\n\n"
        "  plumax demo --fast                      # the whole job on a built-in scene\n\n"
        "  plumax simulate scene.nc --q-kgh 300    # a synthetic column image\n\n"
        "  plumax invert scene.nc --out post.json  # MAP + Laplace posterior, Q in kg/h\n\n"
        "  plumax retrieve radiance.nc             # matched filter -> column scene\n\n"
        "  plumax cycle --fast                     # the six-step cycle with its gates\n\n"
        "  plumax population plumes.csv            # event rate, sizes, missed mass, total\n\n"
        "Units: emission rates in kg/h, distances in m, wind in m/s (direction it blows "
        "FROM, degrees), column enhancements in ppm m."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)
app.add_typer(registry_app, name="registry")


@app.command()
@friendly
def simulate(
    out: Annotated[Path, typer.Argument(help="NetCDF file to write (e.g. scene.nc).")],
    q_kgh: Annotated[float, typer.Option(help="True emission rate, kg/h.")] = 360.0,
    x0: Annotated[float, typer.Option(help="Source easting, m.")] = 0.0,
    y0: Annotated[float, typer.Option(help="Source northing, m.")] = 0.0,
    height: Annotated[float, typer.Option(help="Release height, m (known).")] = 5.0,
    wind_speed: Annotated[float, typer.Option(help="Wind speed, m/s (0.5 to 120).")] = 4.0,
    wind_dir: Annotated[float, typer.Option(help="Wind direction it blows FROM, deg.")] = 270.0,
    stability: Annotated[str, typer.Option(help="Pasquill stability class A-F.")] = "C",
    pblh: Annotated[float, typer.Option(help="Boundary-layer height, m.")] = 800.0,
    noise: Annotated[
        float | None, typer.Option(help="1-sigma pixel noise of a column image, ppm m [20].")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the noise (same seed, same file).")] = 0,
    pixels: Annotated[int, typer.Option(help="Image size: pixels per side.")] = 32,
    extent: Annotated[float, typer.Option(help="Image side length, m.")] = 1200.0,
    upwind: Annotated[
        float | None, typer.Option(help="Image length upwind of x = 0, m [extent / 12].")
    ] = None,
    radiance: Annotated[
        bool,
        typer.Option(
            "--radiance",
            help="Write a radiance overpass (the input of `plumax retrieve`) instead.",
        ),
    ] = False,
    snr: Annotated[float, typer.Option(help="Radiance: signal-to-noise ratio.")] = 300.0,
    albedo_mean: Annotated[float, typer.Option(help="Radiance: mean surface albedo.")] = 0.25,
    albedo_std: Annotated[float, typer.Option(help="Radiance: albedo std across pixels.")] = 0.08,
    sza: Annotated[float, typer.Option(help="Radiance: solar zenith angle, deg.")] = 30.0,
    supersample: Annotated[
        int, typer.Option(help="Radiance: plume samples per pixel side (pixel averaging).")
    ] = 4,
    lon: Annotated[
        float | None, typer.Option(help="Place the scene: longitude of x = y = 0, deg.")
    ] = None,
    lat: Annotated[
        float | None, typer.Option(help="Place the scene: latitude of x = y = 0, deg.")
    ] = None,
    time: Annotated[
        str | None, typer.Option(help="Observation time of a placed scene (ISO 8601, UTC).")
    ] = None,
):
    """Simulate a Gaussian-plume column image (ppm m), or with --radiance an EMIT-like
    radiance overpass, and write it as CF NetCDF.

    A column image holds `values` and `sigma` on (y, x) with x, y in m; a radiance
    overpass holds `radiance` and `radiance_sigma` on (y, x, band), the albedo and the
    true column. Both record the met, the release height and the true source as global
    attributes (see docs/plumax/cli.md). With --lon and --lat (and optionally --time) the
    scene is placed on the Earth: x, y are metres of a local frame centred there, and the
    file carries 2-D lat/lon, the CF grid mapping `crs` and the time. A radiance overpass
    from `--seed N` is the scene `plumax demo --seed N` simulates when the source, met and
    image agree.

    Examples:

      plumax simulate scene.nc

      plumax simulate scene.nc --q-kgh 150 --wind-speed 3 --wind-dir 250 --stability D --seed 7

      plumax simulate overpass.nc --radiance --q-kgh 1000 --pixels 16 --extent 960 --upwind 180

      plumax simulate placed.nc --lon -103.9 --lat 32.1 --time 2024-06-01T18:00:00Z
    """
    import jax.random as jr

    from plumax_core.validation import check_wind_speed

    from . import pipelines as pl
    from ._outputs import atomic_write

    if pixels < 4:
        raise CLIError(f"--pixels must be >= 4, got {pixels}")
    if not extent > 0:
        raise CLIError(f"--extent must be > 0 m, got {extent}")
    upwind = extent / 12 if upwind is None else upwind
    if not 0 <= upwind < extent:
        raise CLIError(f"--upwind must be in [0, --extent), got {upwind}")
    if radiance and noise is not None:
        raise CLIError("--noise is a column image's noise; a radiance overpass's is --snr")
    check_wind_speed("--wind-speed", wind_speed)
    check_outputs(files={"OUT": out})
    frame = None
    if (lon is None) != (lat is None):
        raise CLIError("--lon and --lat place the scene together: give both or neither")
    if lon is not None:
        from plumax_core import LocalFrame, seconds_since_epoch

        try:
            frame = LocalFrame(lon, lat)
            if time is not None:
                seconds_since_epoch(time)
        except ValueError as err:
            msg = str(err).replace("`lon0`", "--lon").replace("`lat0`", "--lat")
            raise CLIError(msg) from None
    elif time is not None:
        raise CLIError("--time goes with --lon and --lat (a placed scene)")
    geometry = pl.default_geometry(pixels, extent=extent, upwind=upwind)
    common = dict(
        q_kgh=q_kgh,
        x0=x0,
        y0=y0,
        height=height,
        wind_speed=wind_speed,
        wind_dir=wind_dir,
        stability=stability.upper(),
        pblh=pblh,
        geometry=geometry,
    )
    with err_console.status("simulating the plume..."):
        if radiance:
            key_surface, key_noise = pl.radiance_keys(seed)
            ds = pl.simulate_radiance(
                **common,
                snr=snr,
                albedo_mean=albedo_mean,
                albedo_std=albedo_std,
                sza_deg=sza,
                supersample=supersample,
                key_surface=key_surface,
                key_noise=key_noise,
                frame=frame,
                time=time,
            ).to_dataset()
            what = f"EMIT-like radiance overpass, SNR {snr:g}"
        else:
            noise = 20.0 if noise is None else noise
            ds = pl.simulate(**common, noise=noise, key=jr.key(seed), frame=frame, time=time)
            what = f"column image, noise {noise:g} ppm m"
        ds.attrs["noise_seed"] = int(seed)
        atomic_write(out, lambda tmp: ds.to_netcdf(tmp, format="NETCDF4"))
    out_console.print(f"wrote {out}: {pixels}x{pixels} {what}, Q = {q_kgh:g} kg/h (seed {seed})")


def _print_summary(summary: dict, title: str) -> None:
    table = Table(title=title)
    level = int(round(100 * summary["level"]))
    for col in ("parameter", "median", f"{level}% interval", "units", "truth"):
        table.add_column(col)
    truth = summary.get("truth") or {}
    tmap = {"Q": truth.get("Q_kgh"), "x0": truth.get("x0"), "y0": truth.get("y0")}
    for name, s in summary.items():
        if not isinstance(s, dict) or "median" not in s:
            continue
        t = tmap.get(name)
        table.add_row(
            name,
            f"{s['median']:.4g}",
            f"[{s['lo']:.4g}, {s['hi']:.4g}]",
            s["units"],
            "" if t is None else f"{t:.4g}",
        )
    out_console.print(table)


@app.command()
@friendly
def invert(
    obs: Annotated[Path, typer.Argument(help="Scene NetCDF written by `plumax simulate`.")],
    method: Annotated[str, typer.Option(help="laplace (MAP + Laplace) or nuts (MCMC).")] = (
        "laplace"
    ),
    out: Annotated[
        Path | None, typer.Option(help="Write the posterior + summary as JSON here.")
    ] = None,
    netcdf: Annotated[
        Path | None,
        typer.Option(help="Write the posterior + summary as NetCDF groups here (ArviZ layout)."),
    ] = None,
    level: Annotated[float, typer.Option(help="Credible level of the intervals.")] = 0.9,
    seed: Annotated[int, typer.Option(help="Seed for NUTS.")] = 0,
    prior_q_kgh: Annotated[float, typer.Option(help="Prior median of Q, kg/h.")] = 100.0,
    num_warmup: Annotated[int, typer.Option(help="NUTS warm-up steps per chain.")] = 300,
    num_samples: Annotated[int, typer.Option(help="NUTS draws per chain.")] = 300,
    registry: Annotated[
        Path | None,
        typer.Option(help="Also store the scene and posterior in this artifact registry."),
    ] = None,
):
    """Infer the source (Q in kg/h, x0, y0 in m) of a scene, with credible intervals.

    Reads `values`, `sigma` (ppm m) and the met attributes; the release height is taken
    as known. The JSON output holds {"summary": ..., "posterior": ...}; the posterior is
    in the unconstrained space (log Q with Q in kg/s). `--netcdf` writes the same
    posterior as NetCDF groups (`posterior`: ArviZ draws in physical units when there
    are draws, `gaussian` otherwise; `summary`; `unconstrained`). A geolocated scene (a
    `plumax retrieve` of a real granule) also gets the source in longitude/latitude.

    Examples:

      plumax invert scene.nc

      plumax invert scene.nc --out posterior.json --registry ./plumax-runs

      plumax invert scene.nc --method nuts --out posterior-nuts.json --netcdf posterior-nuts.nc
    """
    import json

    import jax.random as jr

    from plumax_core.validation import check_emission_rate

    from . import pipelines as pl
    from ._outputs import write_files
    from ._scene import read_scene

    if method not in pl.METHODS:
        raise CLIError(f"--method must be one of {', '.join(pl.METHODS)}, got {method!r}")
    if not 0 < level < 1:
        raise CLIError(f"--level must be in (0, 1), got {level}")
    check_emission_rate("--prior-q-kgh", prior_q_kgh, units="kg/h")
    check_outputs(
        inputs=[obs], files={"--out": out, "--netcdf": netcdf}, folders={"--registry": registry}
    )
    scene = read_scene(open_scene(obs))
    prior = pl.plume_prior(
        scene.model.param_spec, q_kgh=prior_q_kgh, nuisance_std=scene.nuisance_std
    )
    label = "MAP + Laplace" if method == "laplace" else "NUTS"
    with err_console.status(f"inverting with {label}..."):
        inv = pl.invert(
            scene,
            prior=prior,
            method=method,
            key=jr.key(seed),
            level=level,
            num_warmup=num_warmup,
            num_samples=num_samples,
        )
    _print_summary(inv.summary, f"{obs.name}: {label} posterior")
    src = inv.summary.get("source")
    if src is not None:
        level_pct = int(round(100 * inv.summary["level"]))
        out_console.print(
            f"source: lon {src['lon']['median']:.5f} [{src['lon']['lo']:.5f}, "
            f"{src['lon']['hi']:.5f}], lat {src['lat']['median']:.5f} "
            f"[{src['lat']['lo']:.5f}, {src['lat']['hi']:.5f}] ({level_pct}% intervals)"
        )
    print_warnings(inv.summary, what=f"the {label} inversion")
    if registry is not None:
        from plumax_core import ArtifactLineage, ArtifactRegistry, ModelRole

        reg = ArtifactRegistry(registry)
        stem = obs.stem
        h_obs = reg.store(
            scene.observations, f"observations-{stem}", ModelRole.BASELINE, tags={"file": str(obs)}
        )
        h_post = reg.store(
            inv.storable_posterior(),
            f"posterior-{stem}-{method}",
            ModelRole.ORACLE,
            lineage=ArtifactLineage(parent_hashes=(h_obs,)),
            tags={"method": method, "Q_kgh_median": inv.summary["Q"]["median"]},
        )
        out_console.print(f"stored posterior {h_post[:12]} (scene {h_obs[:12]}) in {registry}")
    writers = {}  # last: the files on disk mean every output was written
    if netcdf is not None:
        tree = inv.to_datatree()
        writers[netcdf] = lambda tmp: tree.to_netcdf(tmp, format="NETCDF4")
    if out is not None:
        text = json.dumps(inv.to_dict(), indent=1)
        writers[out] = lambda tmp: tmp.write_text(text, encoding="utf-8")
    if writers:
        write_files(writers)  # all written before any is renamed into place
        out_console.print("wrote " + " and ".join(str(p) for p in writers))


@app.command()
@friendly
def retrieve(
    scene: Annotated[Path, typer.Argument(help="Radiance scene NetCDF (see docs/plumax/cli.md).")],
    out: Annotated[
        Path, typer.Option(help="Retrieved column scene to write (input to `plumax invert`).")
    ] = Path("retrieved.nc"),
    summary: Annotated[
        Path | None, typer.Option(help="Also write the retrieval summary as JSON here.")
    ] = None,
    false_alarm_rate: Annotated[
        float, typer.Option(help="Plume-mask false-alarm rate per background pixel.")
    ] = 0.01,
    oe: Annotated[
        bool, typer.Option(help="Run the optimal-estimation check on plume pixels.")
    ] = True,
    obs: Annotated[
        Path | None,
        typer.Option(help="EMIT L1B OBS file of the granule (SCENE an EMIT L1B RAD file)."),
    ] = None,
    met: Annotated[
        Path | None,
        typer.Option(help="Met file of a granule: ERA5 single levels (CDS NetCDF) or wrfout."),
    ] = None,
    met_pressure_levels: Annotated[
        Path | None, typer.Option(help="ERA5 pressure-level file beside an ERA5 --met.")
    ] = None,
    source_height: Annotated[
        float, typer.Option(help="Known release height of a granule's source, m.")
    ] = 5.0,
    bbox: Annotated[
        str | None,
        typer.Option(help="Window of a granule: LON_MIN,LAT_MIN,LON_MAX,LAT_MAX (degrees)."),
    ] = None,
    pixel_size: Annotated[
        float, typer.Option(help="Grid spacing of a granule's local metric grid, m.")
    ] = 60.0,
    stability: Annotated[
        str | None,
        typer.Option(help="Pasquill class A-F instead of the one the met file implies."),
    ] = None,
):
    """Retrieve methane (ppm m) from a radiance scene: matched filter, plume mask, IME/CSF.

    SCENE is a plumax radiance scene (`radiance` (y, x, band) in uW cm-2 sr-1 nm-1 with
    band centres in nm, the instrument name, solar zenith angle and the met attributes)
    or an EMIT L1B radiance granule with `--obs` (its OBS file) and `--met` (ERA5 or
    WRF): the granule is resampled through its lookup table onto a local metric grid
    (`--pixel-size`, optionally only the `--bbox` window) and retrieved with its own
    band centres and widths, at the OBS sun and view angles, with the wind at
    `--source-height` from the met file. Runs the two-pass matched filter (plume
    excluded from the covariance), corrects saturation, masks the plume and estimates
    quick-look fluxes. Writes a column scene with `values`, per-pixel `sigma`, `mask`
    and `plume_mask` that `plumax invert` reads; a granule's also carries 2-D lat/lon,
    the CF grid mapping `crs`, the time and the wind used.

    Examples:

      plumax demo --fast --out demo && plumax retrieve demo/scene.nc --out retrieved.nc

      plumax retrieve demo/scene.nc --out retrieved.nc --summary retrieval.json --no-oe

      plumax retrieve EMIT_L1B_RAD.nc --obs EMIT_L1B_OBS.nc --met era5.nc --out granule.nc
    """
    import json

    from . import pipelines as pl
    from ._outputs import write_files

    if not 0 < false_alarm_rate < 0.5:
        raise CLIError(f"--false-alarm-rate must be in (0, 0.5), got {false_alarm_rate}")
    check_outputs(
        inputs=[scene, obs, met, met_pressure_levels], files={"--out": out, "--summary": summary}
    )
    sc = _read_radiance_input(
        scene,
        obs=obs,
        met=met,
        met_pressure_levels=met_pressure_levels,
        source_height=source_height,
        bbox=bbox,
        pixel_size=pixel_size,
        stability=stability,
    )
    with err_console.status("matched-filter retrieval..."):
        ret = pl.retrieve(sc, false_alarm_rate=false_alarm_rate, optimal_estimation=oe)
        ds = ret.scene_dataset()
        ds.attrs["source_file"] = scene.name
        for name, path in (("obs_file", obs), ("met_file", met)):
            if path is not None:
                ds.attrs[name] = path.name
    info = ret.summary()
    writers = {out: lambda tmp: ds.to_netcdf(tmp, format="NETCDF4")}
    if summary is not None:
        text = json.dumps(info, indent=1)
        writers[summary] = lambda tmp: tmp.write_text(text, encoding="utf-8")
    write_files(writers)  # both written before either is renamed into place
    ny, nx = ret.result.enhancement.shape
    out_console.print(
        f"{scene.name}: {ny}x{nx} pixels, {sc.wavelengths.size} {sc.instrument} bands; "
        f"plume mask {info['mask_pixels']} pixels above {info['threshold_ppm_m']:.4g} ppm m; "
        f"noise inflation {info['residual_scale']:.3g}"
    )
    for name in ("IME", "CSF"):
        f = info.get(name)
        if f is not None:
            out_console.print(f"{name} quick-look: {f['median']:.4g} ± {f['std']:.2g} kg/h")
    if info["OE"] is not None:
        out_console.print(
            f"optimal-estimation check: OE / matched filter = {info['OE']['mean_ratio_oe_mf']:.3g}"
            f" on {info['OE']['n']} plume pixels"
        )
    print_warnings(info, what="the retrieval")
    out_console.print(f"wrote {out}" + ("" if summary is None else f" and {summary}"))


def _read_radiance_input(
    scene: Path,
    *,
    obs: Path | None,
    met: Path | None,
    met_pressure_levels: Path | None,
    source_height: float,
    bbox: str | None,
    pixel_size: float,
    stability: str | None,
):
    """The RadianceScene of `plumax retrieve`'s input: a plumax radiance scene file, or
    an EMIT L1B granule with its OBS and met files (:mod:`plumax._granule`)."""
    from . import pipelines as pl
    from ._granule import is_emit_l1b, read_granule

    granule_opts = {
        "--obs": obs,
        "--met": met,
        "--met-pressure-levels": met_pressure_levels,
        "--bbox": bbox,
        "--stability": stability,
    }
    for opt, path in granule_opts.items():
        if isinstance(path, Path) and not path.is_file():
            raise CLIError(f"{opt} file {str(path)!r} does not exist")
    if not scene.is_file():
        raise CLIError(f"input file {str(scene)!r} does not exist")
    if not is_emit_l1b(scene):
        given = [k for k, v in granule_opts.items() if v is not None]
        if given:
            raise CLIError(
                f"{', '.join(given)} apply to an EMIT L1B granule; {scene.name} is not one "
                "(no radiance on (downtrack, crosstrack, bands))"
            )
        return pl.read_radiance_scene(open_scene(scene))
    if obs is None or met is None:
        raise CLIError(
            f"{scene.name} is an EMIT L1B granule: give its OBS file (--obs) and a met file "
            "(--met, ERA5 or WRF)"
        )
    box = None
    if bbox is not None:
        try:
            box = tuple(float(v) for v in bbox.split(","))
        except ValueError:
            box = ()
        if len(box) != 4:
            raise CLIError(f"--bbox must be LON_MIN,LAT_MIN,LON_MAX,LAT_MAX, got {bbox!r}")
    return read_granule(
        scene,
        obs,
        met,
        met_pressure_levels=met_pressure_levels,
        source_height=source_height,
        pixel_size=pixel_size,
        bbox=box,
        stability=stability,
    )


app.command()(population)


@app.command()
@friendly
def calibrate(
    out: Annotated[Path, typer.Option(help="Folder for report.html and calibration.json.")] = Path(
        "plumax-calibration"
    ),
    n: Annotated[int, typer.Option(help="Number of simulated truths (>= 10).")] = 40,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same numbers.")] = 0,
    fast: Annotated[bool, typer.Option(help="24 x 24 pixel scenes (else 32 x 32).")] = False,
    q_range: Annotated[
        tuple[float, float], typer.Option(help="Emission rates, kg/h (log-uniform).")
    ] = (100.0, 5000.0),
    wind_range: Annotated[tuple[float, float], typer.Option(help="Wind speeds, m/s.")] = (
        1.5,
        8.0,
    ),
    dir_range: Annotated[
        tuple[float, float], typer.Option(help="Wind directions (from), degrees.")
    ] = (255.0, 285.0),
    classes: Annotated[str, typer.Option(help="Pasquill classes drawn, e.g. ABCDEF.")] = "ABCDEF",
    albedo_range: Annotated[
        tuple[float, float], typer.Option(help="Scene-mean surface albedo.")
    ] = (0.15, 0.35),
    snr_range: Annotated[tuple[float, float], typer.Option(help="Instrument SNR.")] = (
        200.0,
        500.0,
    ),
    wind_speed_error: Annotated[
        float, typer.Option(help="Met source's 1-sigma error of log wind speed.")
    ] = 0.1,
    wind_dir_error: Annotated[
        float, typer.Option(help="Met source's 1-sigma wind-direction error, degrees.")
    ] = 5.0,
    error_scale: Annotated[
        float, typer.Option(help="Multiply every assumed error (0.5: an overconfident chain).")
    ] = 1.0,
    fail_on_check: Annotated[
        bool, typer.Option(help="Exit with status 1 when a calibration check fails.")
    ] = False,
):
    """Check how far the chain's posteriors can be trusted, over many simulated truths.

    For each truth (Q, wind speed and direction, stability class, albedo, SNR and the met
    source's wind error drawn at random): simulate an EMIT-like radiance overpass,
    retrieve it with its error model, invert the map with the gain, offset and wind as
    nuisance parameters. Reports, for Q, x0 and y0, how often the 50/90/95% intervals
    cover the truth (against the binomial 95% band), the mean 90% width against the
    spread of the point estimates, and the SBC rank test; report.html has the table,
    coverage by range and the figure (docs/plumax/calibration.md).

    Examples:

      plumax calibrate --n 40 --fast

      plumax calibrate --n 20 --fast --classes CD --error-scale 0.5 --out overconfident
    """
    from ._calibrate import TruthDistribution, run_calibrate
    from ._outputs import check_output_folder

    check_outputs(folders={"--out": out})
    check_output_folder(out, "--out")
    try:
        dist = TruthDistribution(
            q_kgh=tuple(q_range),
            wind_speed=tuple(wind_range),
            wind_dir=tuple(dir_range),
            albedo_mean=tuple(albedo_range),
            snr=tuple(snr_range),
            classes=classes,
            wind_speed_log_std=wind_speed_error,
            wind_direction_std=wind_dir_error,
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    res = run_calibrate(
        out,
        console=err_console,
        n=n,
        seed=seed,
        fast=fast,
        distribution=dist,
        error_scale=error_scale,
    )
    for p, c in res.checks.items():
        cov = ", ".join(
            f"{lv}: {v['covered']}/{v['n']} [{v['band'][0]}-{v['band'][1]}]"
            for lv, v in c["coverage"].items()
        )
        sbc = "n/a" if c["sbc_p"] is None else f"{c['sbc_p']:.3g}"
        out_console.print(
            f"{p}: coverage {cov}; width/spread {c['width_ratio']:.2f}; SBC p {sbc}; "
            f"{'PASS' if c['pass'] else 'FAIL'}"
        )
    out_console.print(f"{'PASS' if res.passed else 'FAIL'}: report {out / 'report.html'}")
    if fail_on_check and not res.passed:
        raise typer.Exit(1)


@app.command()
@friendly
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the report and artifacts.")] = Path(
        "plumax-demo"
    ),
    seed: Annotated[int, typer.Option(help="Seed: same seed, same numbers.")] = 0,
    fast: Annotated[bool, typer.Option(help="Smaller image and NUTS budget.")] = False,
):
    """Run the main job on a built-in scene and write an HTML report.

    The full chain: a synthetic EMIT-like radiance overpass of a 1000 kg/h point source
    (Gaussian plume composed with the plumax-rtm radiance operator, 60 m pixels,
    ~2100-2450 nm), an albedo-corrected matched-filter retrieval (plume excluded from the
    covariance, saturation-corrected, optimal-estimation check), plume mask and IME/CSF
    quick-look fluxes, then MAP + Laplace and NUTS inversions of the retrieved map: Q in kg/h with
    its 90% interval next to the truth. Writes report.html (scene, radiance band,
    retrieved enhancement, plume mask, posterior marginals), scene.nc, retrieved.nc,
    summary.json, posteriors and a registry. Under 3 minutes on 2 CPU cores.

    The folder appears whole, with a plumax-manifest.json. A re-run replaces it only if
    it holds nothing but a previous run's unchanged outputs; otherwise it stops before
    any work (docs/plumax/cli.md, Outputs).

    Examples:

      plumax demo --fast

      plumax demo --out ./my-demo --seed 3
    """
    from ._demo import run_demo
    from ._outputs import check_output_folder, describe_leftover, find_leftovers

    check_outputs(folders={"--out": out})
    check_output_folder(out, "--out")
    before = find_leftovers(out)
    for p in before:
        warn(describe_leftover(p))
    err_console.print(
        "[bold]plumax demo[/bold]: EMIT-like radiance overpass -> matched-filter "
        "retrieval (plumax-rtm) -> source inversion (MAP + Laplace, NUTS)"
    )
    result = run_demo(out, seed=seed, fast=fast, console=err_console)
    for p in find_leftovers(out):
        if p not in before:  # e.g. an old folder that gained files during the run
            warn(describe_leftover(p))
    _print_summary(result["laplace"], "MAP + Laplace")
    _print_summary(result["nuts"], "NUTS")
    print_warnings(result["retrieval"], what="the retrieval")
    print_warnings(result["laplace"], what="the MAP + Laplace inversion")
    print_warnings(result["nuts"], what="the NUTS inversion")
    r = result["retrieval"]
    for name in ("IME", "CSF"):
        f = r.get(name)
        if f is not None:
            out_console.print(
                f"{name} quick-look: {f['median']:.4g} ± {f['std']:.2g} kg/h "
                f"(truth {result['truth']['Q']:.4g})"
            )
    out_console.print(f"report: {result['report']}  ({result['wall_s']:.1f} s)")


@app.command()
@friendly
def cycle(
    tier: Annotated[
        str,
        typer.Option(
            help="Which registered tier: "
            + "; ".join(f"{name} ({what})" for name, what in cycle_tiers().items())
            + "."
        ),
    ] = "gaussian",
    root: Annotated[Path, typer.Option(help="Artifact registry folder.")] = Path("plumax-runs"),
    fast: Annotated[bool, typer.Option(help="Reduced budget: a few minutes on 2 cores.")] = False,
    oracle: Annotated[
        str | None, typer.Option(help="Oracle inference: nuts (default) or laplace.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same artifacts.")] = 0,
    fail_on_gate: Annotated[
        bool, typer.Option(help="Exit with status 3 when a gate fails (for CI).")
    ] = False,
):
    """Run the six-step cycle of a tier and report every gate.

    The tier (--tier) is a problem and its stages, one per step; for the Gaussian tier:
    1 simulator (Gaussian plume), 2 oracle posteriors on held-out cases (NUTS, or MAP +
    Laplace with --oracle laplace), 3 neural emulator, 4 the same inference on the emulator,
    5 amortized conditional flow, 6 a cycle report: emulator accuracy and Jacobian
    probe, posterior agreement of steps 4 and 5 with step 2, SBC and TARP, each value
    next to its tolerance (a tier without some steps reports the gates of those it
    runs). Every artifact goes into the registry with its lineage; the report is written
    to ROOT/reports/ and compared with the previous one in the same registry (the diff
    is printed and written beside it).

    Examples:

      plumax cycle --fast

      plumax cycle --tier gaussian --root ./plumax-runs --oracle nuts

      plumax registry lineage gaussian-cycle-report --root ./plumax-runs
    """
    import dataclasses

    from ._cycle_budget import CycleBudget

    tiers = cycle_tiers()
    if tier not in tiers:
        raise CLIError(f"--tier must be one of {', '.join(tiers)}, got {tier!r}")
    if oracle is not None and oracle not in ("laplace", "nuts"):
        raise CLIError(f"--oracle must be laplace or nuts, got {oracle!r}")
    if seed < 0:
        raise CLIError(f"--seed must be >= 0, got {seed}")
    check_outputs(folders={"--root": root})
    budget = CycleBudget.fast() if fast else CycleBudget()
    if oracle is not None:
        budget = dataclasses.replace(budget, oracle=oracle)
    err_console.print(
        f"[bold]plumax cycle[/bold] --tier {tier}{' --fast' if fast else ''}: "
        f"registry {root}, {budget.oracle} oracle on {budget.n_cases} held-out cases"
    )
    from ._cycle import run_cycle  # JAX and the libraries: after the checks of the input

    with err_console.status("running the cycle...") as status:
        run = run_cycle(root, tier=tier, budget=budget, seed=seed, say=status.update)
    _print_report(run)
    if fail_on_gate and not run.report.passed:
        raise typer.Exit(3)


def _print_report(run) -> None:
    report = run.report
    table = Table(title=f"cycle report {report.benchmark}: {'PASS' if report.passed else 'FAIL'}")
    table.add_column("stage (step vs oracle step)")
    for col in ("metric", "value", "tolerance", "result"):
        table.add_column(col, no_wrap=True)
    for s in report.stages:
        stage = f"{s.name} ({s.target_step} vs {s.oracle_step})"
        if s.error:
            table.add_row(stage, "-", "-", "-", f"[red]ERROR: {s.error}[/red]")
        for m in s.metrics:
            result = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: "-"}[m.passed]
            value = "-" if m.value is None else f"{m.value:.4g}"
            tol = "-" if m.tolerance is None else str(m.tolerance)
            table.add_row(stage, m.name, value, tol, result)
    out_console.print(table)
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in run.seconds.items())
    out_console.print(f"steps: {timing}")
    if run.diff is None:
        out_console.print("first report in this registry: nothing to diff against")
    else:
        typer.echo(str(run.diff))
        out_console.print(f"diff: {run.diff_path}")
    out_console.print(f"report: {run.report_path}")


def main() -> None:  # pragma: no cover - console entry point
    app()
