"""Tier IV overpass pipeline: Gaussian plume -> radiance -> retrieval -> column scene.

Orchestration and file I/O only; every number comes from a library:

* :func:`simulate_radiance` — ``plumax_rtm.simulate_radiance_cube`` of a pixel-averaged
  ``GaussianPlume`` (``plumax_transport.PixelAveraged``) through a
  ``plumax_rtm.RadianceOperator`` on EMIT-like bands, with a
  ``plumax_rtm.GaussianAlbedo`` surface and ``NoiseModel`` noise drawn from explicit
  keys → :class:`RadianceScene`;
* :func:`read_radiance_scene` / :meth:`RadianceScene.to_dataset` — the radiance scene
  file (CF NetCDF), converted once, at the reader, into library types
  (``plumax_core.Observations``, ``MetField``, ``BeerLambertRTM``, ...);
* :func:`retrieve` — ``plumax_rtm.retrieve_scene`` (the two-pass, albedo-corrected
  matched filter with the plume excluded from the covariance, desaturation, noise
  inflation, plume mask, IME/CSF quick-look fluxes, optimal-estimation check) →
  :class:`Retrieval`, whose :meth:`Retrieval.observations` feeds
  :func:`plumax.pipelines.invert` and :meth:`Retrieval.scene_dataset` writes a column
  scene for ``plumax invert``;
* :meth:`Retrieval.inversion_model` — the pinned transport with the nuisance
  parameters of the map's error model (gain, offset) and of the met's wind uncertainty
  (:func:`plumax._nuisance.add_nuisances`), and their prior 1-sigmas.
"""

import dataclasses
import math
from typing import Any

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import xarray as xr
from jaxtyping import PRNGKeyArray

import plumax_rtm as pr
from plumax_core import (
    LocalFrame,
    MetField,
    Observations,
    compose,
    frame_from_dataset,
    pin,
    seconds_since_epoch,
    units,
)
from plumax_core.validation import check_coordinate, check_emission_rate, check_wind_speed
from plumax_transport import ColumnImage

from ._nuisance import WIND_ATTRS, add_nuisances, read_starts, read_wind_uncertainty
from ._scene import (
    default_geometry,
    pixel_averaged_plume,
    read_met,
    read_truth,
    scene_dataset,
)

__all__ = [
    "RADIANCE_UNITS",
    "RadianceScene",
    "Retrieval",
    "read_radiance_scene",
    "retrieve",
    "radiance_keys",
    "simulate_radiance",
]

#: Units of ``radiance`` in the radiance scene files (EMIT L1B convention).
RADIANCE_UNITS = "uW cm-2 sr-1 nm-1"


@dataclasses.dataclass(frozen=True)
class RadianceScene:
    """A radiance overpass and what is known about it (library types throughout).

    Attributes:
        radiance: ``plumax_core.Observations`` of kind ``"radiance"``, ``(ny, nx, m)``
            on dims ``("y", "x", "band")`` with coordinates ``x``, ``y`` (m) and ``band``
            (nm); ``sigma`` its 1-sigma noise (None when unknown).
        column: the noise-free true column (``column_ppm_m``, ``(ny, nx)``), or None.
        albedo: ``(ny, nx)`` per-pixel surface reflectance used (None when unknown).
        rtm, srf: the plumax-rtm forward model and instrument response.
        model: ``compose(transport, RadianceOperator)`` (None when the albedo is unknown).
        transport: the pixel-averaged plume (:func:`plumax._scene.pixel_averaged_plume`),
            ``H`` free.
        met: the met field.
        source_height: the known release height, m.
        terrain: ``"rural"`` or ``"urban"``.
        supersample: sub-samples per pixel side of ``transport`` (None when the file
            does not say: 1).
        truth: ``{"Q_kgh", "x0", "y0"}`` of a synthetic scene, else None.
        instrument: band-set name; snr: the noise model's SNR (NaN when unknown).
        sza_deg: solar zenith angle, degrees.
        rtm_range: ``(min, max)`` nm of the fine spectral grid of ``rtm``.
        wind_uncertainty: ``(wind_speed_log_std, wind_direction_std)`` of ``met`` (the
            met source's 1-sigma errors; ``(0, 0)``: exact).
        frame: the :class:`plumax_core.LocalFrame` of ``x``/``y`` (a real granule, or a
            geolocated synthetic scene), else None.
        time: the overpass time, s UTC, else None.
    """

    radiance: Observations
    column: Observations | None
    albedo: np.ndarray | None
    rtm: Any
    srf: Any
    model: Any
    transport: Any
    met: MetField
    source_height: float
    terrain: str
    supersample: int | None
    truth: dict[str, float] | None
    instrument: str
    snr: float
    sza_deg: float
    rtm_range: tuple[float, float]
    wind_uncertainty: tuple[float, float] = (0.0, 0.0)
    frame: LocalFrame | None = None
    time: float | None = None

    @property
    def wavelengths(self) -> np.ndarray:
        """``(m,)`` band centres, nm."""
        return np.asarray(self.radiance.coords["band"])

    @property
    def pixel_size(self) -> float:
        """The pixel side, m (the mean spacing of ``x``)."""
        return float(np.mean(np.diff(np.asarray(self.radiance.coords["x"]))))

    def _column_dataset(self):
        """The column-scene dataset of the truth (or of zeros when it is unknown)."""

        x, y = self.radiance.coords["x"], self.radiance.coords["y"]
        col = self.column
        if col is None:
            col = Observations(
                jnp.zeros(self.radiance.shape[:2]),
                kind="column_ppm_m",
                dims=("y", "x"),
                coords={"y": y, "x": x},
                sigma=jnp.asarray(1.0),
                instrument="unknown",
            )
        extra: dict[str, Any] = {} if self.column is None else {"noise_free": 1}
        extra.update(zip(WIND_ATTRS, map(float, self.wind_uncertainty), strict=True))
        if self.supersample is not None:
            extra["supersample"] = int(self.supersample)
        return scene_dataset(
            col,
            self.met,
            geometry=ColumnImage(np.asarray(x), np.asarray(y)),
            source_height=self.source_height,
            terrain=self.terrain,
            truth=self.truth,
            extra_attrs=extra,
            frame=self.frame,
            time=self.time,
        )

    def to_dataset(self):
        """CF ``xarray.Dataset``: ``radiance``, ``radiance_sigma`` on (y, x, band),
        ``true_column`` and ``albedo`` on (y, x), plus the column scene's attributes."""

        c = self._column_dataset()
        values = np.asarray(self.radiance.values)
        ds = xr.Dataset(
            {"radiance": (("y", "x", "band"), values, {"units": RADIANCE_UNITS})},
            coords={
                **{k: v for k, v in c.coords.items() if k in ("x", "y", "lat", "lon", "time")},
                "band": ("band", self.wavelengths, {"units": "nm"}),
            },
        )
        if "crs" in c:
            ds["crs"] = c["crs"]
            ds["radiance"].attrs["grid_mapping"] = "crs"
        if self.radiance.sigma is not None or self.radiance.noise is not None:
            ds["radiance_sigma"] = (
                ("y", "x", "band"),
                np.asarray(self.radiance.sigma_full()),
                {"units": RADIANCE_UNITS, "long_name": "1-sigma instrument noise"},
            )
        if self.column is not None:
            ds["true_column"] = (("y", "x"), c["values"].values, {"units": "ppm m"})
        if self.albedo is not None:
            ds["albedo"] = (("y", "x"), self.albedo, {"units": "1"})
        ds.attrs.update({k: v for k, v in c.attrs.items() if k not in ("noise_sigma",)})
        ds.attrs.update(
            title="plumax synthetic radiance overpass",
            instrument=self.instrument,
            snr=float(self.snr),
            pixel_size=float(self.pixel_size),
            sza_deg=float(self.sza_deg),
            rtm_wavelength_min_nm=float(self.rtm_range[0]),
            rtm_wavelength_max_nm=float(self.rtm_range[1]),
        )
        return ds


def radiance_keys(seed: int) -> tuple[PRNGKeyArray, PRNGKeyArray]:
    """``(key_surface, key_noise)`` of a synthetic overpass drawn from ``seed``.

    The first two of ``jax.random.split(jax.random.key(seed), 4)``: what ``plumax demo
    --seed N`` and ``plumax simulate --radiance --seed N`` pass to
    :func:`simulate_radiance`, so that the two make the same scene (the demo keeps the
    third key for NUTS; the fourth is unused).

    Raises:
        ValueError: ``seed`` is not an int >= 0.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"`seed` must be an int >= 0, got {seed!r}")
    keys = jr.split(jr.key(seed), 4)
    return keys[0], keys[1]


def simulate_radiance(
    *,
    q_kgh: float,
    x0: float = 0.0,
    y0: float = 0.0,
    height: float = 5.0,
    wind_speed: float = 4.0,
    wind_dir: float = 270.0,
    stability: str = "C",
    pblh: float = 800.0,
    geometry: Any = None,
    terrain: str = "rural",
    instrument: str = "EMIT",
    wl_range: tuple[float, float] = (2100.0, 2450.0),
    sza_deg: float = 30.0,
    snr: float = 300.0,
    albedo_mean: float = 0.25,
    albedo_std: float = 0.08,
    supersample: int = 4,
    key_surface: PRNGKeyArray,
    key_noise: PRNGKeyArray,
    wind_speed_log_std: float = 0.0,
    wind_direction_std: float = 0.0,
    key_met: PRNGKeyArray | None = None,
    frame: LocalFrame | None = None,
    time: Any = None,
) -> RadianceScene:
    """Simulate a radiance overpass of a Gaussian-plume point source (Tier IV).

    The pixel-averaged column image (ppm m; ``plumax_transport.PixelAveraged`` of
    ``GaussianPlume(geometry)``, each pixel the mean of ``supersample x supersample``
    point samples: a 60-m pixel integrates a plume that is only metres wide near the
    source) through a ``plumax_rtm.RadianceOperator`` (two-way Beer-Lambert with the
    shipped mag1c-derived effective CH4 absorption, ``instrument`` bands over
    ``wl_range`` nm: ``plumax_rtm.ch4_instrument_model``) by
    ``plumax_rtm.simulate_radiance_cube``. Surface: ``plumax_rtm.GaussianAlbedo(
    albedo_mean, albedo_std)`` clipped at 0.05 (``key_surface``); noise:
    ``NoiseModel(snr=snr)`` (``key_noise``). Deterministic given the keys.

    Met error: the plume blows with ``wind_speed`` and ``wind_dir``; the scene's ``met``
    (what an inversion is told) is that wind seen through the met source's error,
    ``speed · exp(wind_speed_log_std · ε₁)`` and ``dir + wind_direction_std · ε₂``
    (``ε ~ N(0, 1)`` from ``key_met``), and carries the two 1-sigmas as
    ``wind_uncertainty``; the truth then records the true wind. With both at 0 (the
    default) the met is exact and ``key_met`` is not used.

    ``frame`` (a ``plumax_core.LocalFrame``) and ``time`` place the scene on the Earth:
    its files are then geolocated (lat/lon, ``crs``, ``time``).

    Raises:
        ValueError: ``q_kgh <= 0``, a wind speed outside core's rule, ``snr <= 0``, a
            geometry that is not a ``ColumnImage`` or a ``supersample`` below 1.
    """

    check_emission_rate("q_kgh", q_kgh, units="kg/h")
    check_wind_speed("wind_speed", wind_speed)
    if not (math.isfinite(snr) and snr > 0):
        raise ValueError(f"`snr` must be > 0, got {snr}")
    geometry = default_geometry() if geometry is None else geometry
    if not isinstance(geometry, ColumnImage):
        raise ValueError("simulate_radiance needs a ColumnImage geometry")
    if not (isinstance(supersample, int) and supersample >= 1):
        raise ValueError(f"`supersample` must be an int >= 1, got {supersample!r}")
    transport = pixel_averaged_plume(geometry, supersample, terrain=terrain)
    met = MetField.uniform(
        float(wind_speed), float(wind_dir), stability=stability, pblh=pblh, source="synthetic"
    )
    wind_stds = (float(wind_speed_log_std), float(wind_direction_std))
    ws, wd = wind_stds
    add_nuisances(transport, wind_speed_log_std=ws, wind_direction_std=wd)  # checks them
    reported = met
    truth: dict[str, float] = {"Q_kgh": q_kgh, "x0": x0, "y0": y0}
    if ws > 0 or wd > 0:
        if key_met is None:
            raise ValueError("`key_met` is needed to draw the met error (a std > 0 was given)")
        e = np.asarray(jr.normal(key_met, (2,)), np.float64)
        reported = MetField.uniform(
            float(wind_speed) * math.exp(ws * e[0]),
            (float(wind_dir) + wd * e[1]) % 360.0,
            stability=stability,
            pblh=pblh,
            source="synthetic (with met error)",
        )
        truth.update(wind_speed=float(wind_speed), wind_direction=float(wind_dir))
    params = {
        "Q": jnp.asarray(units.kg_h_to_kg_s(q_kgh)),
        "x0": jnp.asarray(float(x0)),
        "y0": jnp.asarray(float(y0)),
        "H": jnp.asarray(float(height)),
    }
    rtm, srf = pr.ch4_instrument_model(instrument, wl_range, sza_deg=sza_deg, n_poly=2)
    shape = (geometry.y.shape[0], geometry.x.shape[0])
    albedo = pr.GaussianAlbedo(albedo_mean, albedo_std).sample(shape, key=key_surface)
    op = pr.RadianceOperator(
        rtm,
        srf,
        albedo=jnp.asarray(albedo),
        noise=pr.NoiseModel(snr=snr),
        instrument=f"{instrument}-like",
    )
    sim = pr.simulate_radiance_cube(transport, params, met, op, key=key_noise)
    truth_col = sim.column.replace(
        sigma=jnp.asarray(1.0, sim.column.values.dtype), instrument="truth"
    )
    return RadianceScene(
        radiance=sim.radiance,
        column=truth_col,
        albedo=albedo,
        rtm=rtm,
        srf=srf,
        model=compose(transport, op),
        transport=transport,
        met=reported,
        source_height=float(height),
        terrain=terrain,
        supersample=int(supersample),
        truth=truth,
        instrument=instrument,
        snr=float(snr),
        sza_deg=float(sza_deg),
        rtm_range=(float(rtm.wavelength[0]), float(rtm.wavelength[-1])),
        wind_uncertainty=wind_stds,
        frame=frame,
        time=None if time is None else float(seconds_since_epoch(time)),
    )


@dataclasses.dataclass(frozen=True)
class Retrieval:
    """A retrieval of a :class:`RadianceScene` (the result of :func:`retrieve`).

    Attributes:
        result: the library result, ``plumax_rtm.SceneRetrieval`` (enhancement, sigma,
            masks, quick-look fluxes in kg/s, OE check; ppm m images).
        scene: the scene it came from (met, source height, truth for the outputs).
    """

    result: Any
    scene: RadianceScene

    def observations(self) -> Observations:
        """The retrieved map as :class:`plumax_core.Observations` (``column_ppm_m``,
        per-pixel ``sigma``, invalid pixels masked): ``result.observations()``."""
        return self.result.observations()

    def scene_dataset(self):
        """The retrieved map as a column scene (``values``, per-pixel ``sigma``,
        ``mask``) with the overpass's met, source height and truth: what
        ``plumax invert`` reads."""

        sc = self.scene
        r = self.result
        extra: dict[str, Any] = {"retrieval_residual_scale": float(r.residual_scale)}
        extra.update(r.error_model.to_attrs())
        extra.update(self.start_attrs())
        extra.update(zip(WIND_ATTRS, map(float, sc.wind_uncertainty), strict=True))
        if sc.supersample is not None:
            extra["supersample"] = int(sc.supersample)
        dtype = jnp.result_type(float)
        obs = Observations(  # per-pixel sigma on file; the correlation is an attribute
            jnp.asarray(np.where(r.valid, r.enhancement, 0.0), dtype),
            kind="column_ppm_m",
            sigma=jnp.asarray(np.where(r.valid, r.sigma, 1.0), dtype),
            mask=jnp.asarray(r.valid),
            dims=("y", "x"),
            coords={"y": r.y, "x": r.x},
            instrument="matched-filter retrieval",
        )
        ds = scene_dataset(
            obs,
            sc.met,
            geometry=ColumnImage(np.asarray(obs.coords["x"]), np.asarray(obs.coords["y"])),
            source_height=sc.source_height,
            terrain=sc.terrain,
            truth=sc.truth,
            extra_attrs=extra,
            frame=sc.frame,
            time=sc.time,
        )
        ds["plume_mask"] = (
            ("y", "x"),
            np.asarray(r.mask, np.int8),
            {
                "long_name": "retrieved plume mask (1 = plume pixel)",
                "flag_values": np.array([0, 1], np.int8),
                "flag_meanings": "background plume",
                "threshold_ppm_m": float(r.threshold),
            },
        )
        if sc.frame is not None:
            ds["plume_mask"].attrs["grid_mapping"] = "crs"
        ds.attrs["title"] = "plumax retrieved column enhancement"
        return ds

    def inversion_model(self):
        """``(model, nuisance_std)``: the pixel-averaged plume with ``H`` pinned at the
        known release height, plus the nuisance parameters of the map's error model
        (``log_gain``, ``offset``) and of the met's wind uncertainty, with their prior
        1-sigmas (:func:`plumax._nuisance.add_nuisances`); what ``plumax invert`` builds
        from the retrieved file."""
        sc = self.scene
        ws, wd = sc.wind_uncertainty
        return add_nuisances(
            pin(sc.transport, H=sc.source_height),
            error_model=self.result.error_model,
            wind_speed_log_std=ws,
            wind_direction_std=wd,
        )

    def start_attrs(self) -> dict[str, float]:
        """The MAP starts' file attributes (:data:`plumax._nuisance.START_ATTRS`): the
        pixel size, and the most upwind plume pixel and IME flux when there is a plume."""
        r = self.result
        out = {"pixel_size": float(r.pixel_size)}
        if r.source_pixel is not None:
            iy, ix = r.source_pixel
            out["retrieval_source_x"] = float(np.asarray(r.x)[ix])
            out["retrieval_source_y"] = float(np.asarray(r.y)[iy])
        if r.ime is not None and r.ime.rate > 0:
            out["retrieval_ime_kg_s"] = float(r.ime.rate)
        return out

    def starts(self) -> list[dict[str, float]]:
        """Starts for the MAP search (:func:`plumax._nuisance.map_starts`: around the
        most upwind plume pixel with the IME flux, and a grid around the origin)."""
        return read_starts(self.start_attrs())

    def summary(self) -> dict[str, Any]:
        """``result.summary()`` with the quick-look fluxes in kg/h, plus ``"warnings"``
        (no plume pixel: no quick-look flux, nothing to invert)."""
        out = self.result.summary()
        for name in ("IME", "CSF"):
            f = out[name]
            if f is not None:
                out[name] = {
                    **{k: units.kg_s_to_kg_h(f[k]) for k in ("median", "std", "lo", "hi")},
                    "units": "kg/h",
                    "method": f["method"],
                }
        return out


def retrieve(
    scene: RadianceScene,
    *,
    false_alarm_rate: float = 0.01,
    dilation: int = 2,
    min_pixels: int = 5,
    optimal_estimation: bool = True,
    max_oe_pixels: int = 64,
) -> Retrieval:
    """Matched-filter retrieval of a :class:`RadianceScene`, plume mask and quick-look Q.

    ``plumax_rtm.retrieve_scene`` (its docstring has the recipe: two-pass,
    albedo-corrected classic filter with the dilated first-pass plume out of the
    covariance, Thompson et al. 2016; desaturation; noise inflation; plume mask at
    ``false_alarm_rate``; IME and CSF fluxes for any wind direction, Varon et al. 2018;
    the optional optimal-estimation check on up to ``max_oe_pixels`` plume pixels, with
    the scene's mean albedo as its reflectance prior).

    Raises:
        ValueError: implausible radiance (``plumax_rtm.check_radiance``), too few valid
            background pixels (``plumax_rtm.check_background_pixels``, saying how many
            remain) or a wind speed outside core's rule, each naming the variable.
    """
    result = pr.retrieve_scene(
        scene.radiance,
        scene.met,
        rtm=scene.rtm,
        srf=scene.srf,
        albedo=scene.albedo,
        false_alarm_rate=false_alarm_rate,
        dilation=dilation,
        min_pixels=min_pixels,
        optimal_estimation_check=optimal_estimation,
        max_oe_pixels=max_oe_pixels,
    )
    return Retrieval(result, scene)


def _pixel_axis(name: str, values) -> np.ndarray:
    """A pixel-centre coordinate as float64: at least 2 values, checked by core's one
    coordinate rule (`plumax_core.validation.check_coordinate`: finite, strictly
    ascending, evenly spaced up to the rounding of its dtype, float32 included)."""
    raw = np.asarray(values)
    if raw.ndim != 1 or raw.size < 2:
        raise ValueError(f"coordinate {name!r} must hold at least 2 pixel centres (m)")
    check_coordinate(f"coordinate {name!r}", raw, evenly_spaced=True)
    return raw.astype(np.float64)


def read_radiance_scene(ds) -> RadianceScene:
    """Check a radiance scene dataset (as written by ``RadianceScene.to_dataset``) and
    convert it, once, into library types (:class:`RadianceScene`).

    Schema (CF NetCDF):

    * ``radiance`` on ``(y, x, band)`` in ``uW cm-2 sr-1 nm-1``; coordinates ``x``, ``y``
      (m, evenly spaced; the pixel size is their spacing) and ``band`` (nm, the band
      centres of ``instrument``);
    * optional ``radiance_sigma`` (same units; without it the optimal-estimation check
      is skipped), ``albedo`` on ``(y, x)`` and ``true_column`` (ppm m);
    * global attributes: the ``met_*`` and ``source_height`` attributes of the column
      scene format (:mod:`plumax._scene`), ``instrument`` (a band set known to
      ``plumax_rtm.instrument_bands``, e.g. ``"EMIT"``), ``sza_deg``; optional
      ``rtm_wavelength_min_nm`` / ``rtm_wavelength_max_nm`` (fine grid of the
      absorption model; default the band range ± 30 nm), ``snr``, ``supersample``,
      ``terrain`` and the truth attributes of synthetic scenes.

    The Beer-Lambert model (shipped mag1c-derived CH4 absorption,
    ``plumax_rtm.ch4_instrument_model``) is rebuilt at ``sza_deg`` and the instrument's
    response functions must reproduce the file's band centres within 0.5 nm.

    The radiance must be plausible (``plumax_rtm.check_radiance``: at least 2 bands, no
    value below ``-10 radiance_sigma`` (below 0 without ``radiance_sigma``), every
    band's mean > 0 and every band varying across pixels). Pixel coordinates may be
    stored in any float precision: "evenly spaced" allows each spacing to differ from
    the mean by 16 units of round-off of the coordinate's own dtype (at least
    float32's) at its largest magnitude (a float32 axis from ``numpy.linspace`` is not
    exactly even).

    Raises:
        ValueError: a missing variable or attribute, wrong dims or units, non-finite
            or implausible radiance, uneven pixels, an unknown instrument or band centres
            that do not match it, naming what was expected.
    """

    if "radiance" not in ds.data_vars:
        raise ValueError("radiance scene has no variable 'radiance'")
    rad_da = ds["radiance"]
    if tuple(rad_da.dims) != ("y", "x", "band"):
        raise ValueError(f"variable 'radiance' must have dims (y, x, band), got {rad_da.dims}")
    if rad_da.attrs.get("units") != RADIANCE_UNITS:
        raise ValueError(
            f"variable 'radiance' has units {rad_da.attrs.get('units')!r}; "
            f"expected {RADIANCE_UNITS!r}"
        )
    for c, unit in (("x", "m"), ("y", "m"), ("band", "nm")):
        if c not in ds.coords:
            raise ValueError(f"radiance scene has no coordinate {c!r}")
        got = ds[c].attrs.get("units", unit if c != "band" else None)
        if got != unit:
            raise ValueError(f"coordinate {c!r} has units {got!r}; expected {unit!r}")
    a = ds.attrs
    missing = [k for k in ("instrument", "sza_deg", "source_height") if k not in a]
    if missing:
        raise ValueError(f"radiance scene is missing global attribute(s) {missing}")
    met = read_met(a)
    radiance = np.asarray(rad_da.values, np.float64)
    if not np.all(np.isfinite(radiance)):
        raise ValueError("variable 'radiance' holds NaN or inf values")
    sigma = None
    if "radiance_sigma" in ds.data_vars:
        s_da = ds["radiance_sigma"]
        if tuple(s_da.dims) != ("y", "x", "band") or s_da.attrs.get("units") != RADIANCE_UNITS:
            raise ValueError(
                f"variable 'radiance_sigma' must be on (y, x, band) in {RADIANCE_UNITS!r}"
            )
        sigma = np.asarray(s_da.values, np.float64)
        if not (np.all(np.isfinite(sigma)) and np.all(sigma > 0)):
            raise ValueError("variable 'radiance_sigma' must be finite and > 0")
    bands = np.asarray(ds["band"].values, float)
    pr.check_radiance(rad_da.values, sigma=sigma, wavelengths=bands, name="radiance")
    albedo = None
    if "albedo" in ds.data_vars:
        albedo = np.asarray(ds["albedo"].values, np.float64)
        if albedo.shape != radiance.shape[:2]:
            raise ValueError(f"variable 'albedo' must have shape {radiance.shape[:2]}")
    xs, ys = (_pixel_axis(c, ds[c].values) for c in ("x", "y"))
    sza = float(a["sza_deg"])
    if not 0.0 <= sza < 90.0:
        raise ValueError(f"attribute sza_deg must be in [0, 90) degrees, got {sza}")
    lo = float(a.get("rtm_wavelength_min_nm", bands.min() - 30.0))
    hi = float(a.get("rtm_wavelength_max_nm", bands.max() + 30.0))
    instrument = str(a["instrument"])
    rtm, srf = pr.ch4_instrument_model(
        instrument,
        (lo, hi),
        sza_deg=sza,
        n_poly=2,
        band_range=(bands.min() - 0.5, bands.max() + 0.5),
    )
    centers = np.asarray(srf.centers, float)
    if centers.shape != bands.shape or not np.allclose(centers, bands, atol=0.5):
        raise ValueError(
            f"the {instrument} band centres ({centers.size} bands) do not match the file's "
            f"'band' coordinate ({bands.size} bands, {bands.min():.1f}-{bands.max():.1f} nm)"
        )
    terrain = str(a.get("terrain", "rural"))
    supersample = int(a["supersample"]) if "supersample" in a else None
    if supersample is not None and supersample < 1:
        raise ValueError(f"attribute supersample must be an int >= 1, got {supersample}")
    geometry = ColumnImage(xs, ys)
    transport = pixel_averaged_plume(geometry, supersample or 1, terrain=terrain)
    coords = {"y": ys, "x": xs}
    column = None
    if "true_column" in ds.data_vars:
        column = Observations(
            np.asarray(ds["true_column"].values, np.float64),
            kind="column_ppm_m",
            dims=("y", "x"),
            coords=coords,
            sigma=1.0,
            instrument="truth",
        )
    model = None
    if albedo is not None:
        op = pr.RadianceOperator(
            rtm, srf, albedo=jnp.asarray(albedo), instrument=f"{instrument}-like"
        )
        model = compose(transport, op)
    return RadianceScene(
        radiance=Observations(
            radiance,
            kind="radiance",
            sigma=sigma,
            dims=("y", "x", "band"),
            coords={**coords, "band": bands},
            instrument=f"{instrument}-like",
        ),
        column=column,
        albedo=albedo,
        rtm=rtm,
        srf=srf,
        model=model,
        transport=transport,
        met=met,
        source_height=float(a["source_height"]),
        terrain=terrain,
        supersample=supersample,
        truth=read_truth(a),
        instrument=instrument,
        snr=float(a.get("snr", np.nan)),
        sza_deg=sza,
        rtm_range=(lo, hi),
        wind_uncertainty=read_wind_uncertainty(a),
        frame=frame_from_dataset(ds),
        time=(
            float(seconds_since_epoch(ds["time"].values))
            if "time" in ds.coords and ds["time"].ndim == 0
            else None
        ),
    )
