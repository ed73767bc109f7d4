"""The NetCDF scene format written by ``plumax simulate`` and read by ``plumax invert``.

One file, one ``xarray.Dataset`` (CF-1.8):

* variables from :meth:`plumax_core.Observations.to_xarray`: ``values`` (units from
  ``kind``, e.g. ``"ppm m"``), optional ``sigma`` (same units) and ``mask``;
* column images: dims ``(y, x)`` with coordinates ``x``, ``y`` (m, east/north of the
  scene origin); point receptors: dim ``receptor`` with variables ``receptor_x``,
  ``receptor_y``, ``receptor_z`` (m);
* global attributes: ``kind``, ``instrument``, ``geometry`` (``"column_image"`` or
  ``"point_receptors"``), the steady uniform met ``met_wind_speed`` (m s-1),
  ``met_wind_direction`` (degree, from), ``met_stability_class`` (A-F), ``met_pblh`` (m),
  ``met_temperature`` (K), ``met_pressure`` (Pa), and the known source height
  ``source_height`` (m) and ``terrain``; synthetic scenes also record the truth
  ``true_emission_rate_kg_h``, ``true_x0``, ``true_y0`` (m) and the ``noise_seed``;
  a column image whose pixels average ``supersample x supersample`` point samples of
  the plume (a retrieved map of a real sensor's pixels) records ``supersample``, and
  is then inverted with :func:`pixel_averaged_plume` (``plumax_transport.PixelAveraged``).

This module also holds the scene defaults the pipelines share: :func:`default_geometry`
and :func:`pixel_averaged_plume`. It imports no other plumax module but ``_outputs``.
"""

import dataclasses
from typing import Any

import numpy as np

import plumax_rtm as pr
from plumax_core import (
    MET_ATTR_UNITS,
    LocalFrame,
    MetField,
    Observations,
    add_geolocation,
    frame_from_dataset,
    pin,
    seconds_since_epoch,
)
from plumax_transport import ColumnImage, GaussianPlume, PixelAveraged, PointReceptors

# the output writers live in `_outputs` (standard library only); re-exported here
from ._nuisance import add_nuisances, read_starts, read_wind_uncertainty
from ._outputs import atomic_write as atomic_write, write_json as write_json

__all__ = [
    "Scene",
    "atomic_write",
    "default_geometry",
    "met_attrs",
    "pixel_averaged_plume",
    "read_scene",
    "scene_dataset",
    "write_json",
]


# the met_* attributes and their units are core's (`MetField.to_attrs` / `from_attrs`)
MET_ATTRS: dict[str, str] = {f"met_{k}": v for k, v in MET_ATTR_UNITS.items()}
GEOMETRIES = ("column_image", "point_receptors")


@dataclasses.dataclass(frozen=True)
class Scene:
    """Observations plus everything needed to invert them.

    Attributes:
        observations: the data.
        met: steady uniform met.
        model: the transport model that produced (or explains) them, ``H`` pinned.
        truth: ``{"Q_kgh", "x0", "y0"}`` for synthetic scenes, else None.
        nuisance_std: the prior 1-sigma of each nuisance parameter ``model`` carries
            (:func:`plumax._nuisance.add_nuisances`: wind, retrieval gain and offset),
            empty when it has none.
        starts: MAP starts recorded by a retrieval (:func:`plumax._nuisance.read_starts`),
            else empty.
        frame: the local frame of ``x``/``y`` (a geolocated scene: a ``crs`` grid
            mapping), else None.
        time: the observation time, s UTC (a scene with a ``time`` coordinate), else None.
    """

    observations: Observations
    met: MetField
    model: Any
    truth: dict[str, float] | None
    nuisance_std: dict[str, float] = dataclasses.field(default_factory=dict)
    starts: list[dict[str, float]] = dataclasses.field(default_factory=list)
    frame: LocalFrame | None = None
    time: float | None = None


def default_geometry(n: int = 32, *, extent: float = 1200.0, upwind: float = 100.0):
    """A square ``n x n`` column image (ppm m) from ``-upwind`` to ``extent - upwind`` in
    x and ``±extent/2`` in y (m): a point source at the origin with a westerly wind."""

    return ColumnImage(
        np.linspace(-upwind, extent - upwind, n), np.linspace(-extent / 2, extent / 2, n)
    )


def pixel_averaged_plume(geometry, supersample: int = 4, *, terrain: str = "rural"):
    """The Gaussian plume on ``geometry``'s pixels, each the mean of ``supersample**2``
    point samples: ``plumax_transport.PixelAveraged(GaussianPlume(geometry), supersample)``
    (parameters ``Q, x0, y0, H``).

    The plume is built with ``check_upwind=False`` and ``strict=False``, so that under
    tracing (NUTS) a proposal outside the support gives NaN observations, which the
    sampler rejects, instead of aborting; eager calls still raise on bad parameters."""

    plume = GaussianPlume(geometry, terrain=terrain, check_upwind=False, strict=False)
    return PixelAveraged(plume, int(supersample))


def met_attrs(met: MetField) -> dict[str, Any]:
    """The ``met_*`` global attributes of a steady uniform met: ``met.to_attrs()``."""
    return met.to_attrs(prefix="met_")


def scene_dataset(
    obs: Observations,
    met: MetField,
    *,
    geometry: Any,
    source_height: float,
    terrain: str,
    truth: dict[str, float] | None = None,
    extra_attrs: dict[str, Any] | None = None,
    frame: LocalFrame | None = None,
    time: Any = None,
):
    """The CF ``xarray.Dataset`` of a scene (see the module docstring for the schema).

    With a ``frame`` (:class:`plumax_core.LocalFrame`) a column image is geolocated
    (:func:`plumax_core.add_geolocation`: 2-D ``lat``/``lon``, the ``crs`` grid
    mapping, and the ``time`` coordinate when ``time`` is given)."""

    ds = obs.to_xarray()
    if isinstance(geometry, ColumnImage):
        gname = "column_image"
        for c in ("x", "y"):
            ds[c].attrs.update(units="m", long_name=f"{c} distance from the scene origin")
    elif isinstance(geometry, PointReceptors):
        gname = "point_receptors"
        for c in ("x", "y", "z"):
            ds[f"receptor_{c}"] = (
                (obs.dims[0],),
                np.asarray(getattr(geometry, c)),
                {"units": "m", "long_name": f"receptor {c} coordinate"},
            )
    else:
        raise ValueError(f"geometry must be ColumnImage or PointReceptors, got {type(geometry)}")
    attrs = {
        "title": "plumax synthetic scene",
        "geometry": gname,
        **met_attrs(met),
        "source_height": float(source_height),
        "terrain": terrain,
        "met_units": "; ".join(f"{k}: {v}" for k, v in MET_ATTRS.items()),
    }
    if truth is not None:
        attrs["true_emission_rate_kg_h"] = float(truth["Q_kgh"])
        attrs["true_x0"] = float(truth["x0"])
        attrs["true_y0"] = float(truth["y0"])
        for k in ("wind_speed", "wind_direction"):
            if k in truth:  # the true wind, when the met attributes carry an error
                attrs[f"true_{k}"] = float(truth[k])
    if met.source:
        attrs["met_source"] = met.source
    attrs.update(extra_attrs or {})
    ds.attrs.update(attrs)
    if frame is not None:
        if gname != "column_image":
            raise ValueError("only a column_image scene can be geolocated by a local frame")
        ds = add_geolocation(ds, frame, time=time)
    return ds


def read_scene(ds) -> Scene:
    """Check a scene dataset and rebuild observations, met and transport model.

    Raises:
        ValueError: a missing variable or attribute, wrong units, an unknown geometry,
            observations without ``sigma``, or a non-physical met value.
    """

    for name in ("values", "sigma"):
        if name not in ds.data_vars:
            raise ValueError(f"scene has no variable {name!r} (was it written by plumax simulate?)")
    need = ["kind", "geometry", "source_height", *MET_ATTRS]
    missing = [a for a in need if a not in ds.attrs]
    if missing:
        raise ValueError(f"scene is missing global attribute(s) {missing}")
    gname = ds.attrs["geometry"]
    if gname not in GEOMETRIES:
        raise ValueError(f"scene attribute geometry={gname!r}; expected one of {GEOMETRIES}")
    obs = Observations.from_xarray(ds)  # checks kind and the units of `values`
    if "units" not in ds["values"].attrs:
        raise ValueError(f"variable 'values' has no units attribute (expected {obs.units!r})")
    sig_units = ds["sigma"].attrs.get("units")
    if sig_units != obs.units:
        raise ValueError(f"variable 'sigma' has units {sig_units!r}; expected {obs.units!r}")
    units = "ppm_m" if obs.kind == "column_ppm_m" else None
    if gname == "column_image":
        if obs.dims != ("y", "x") or "x" not in obs.coords or "y" not in obs.coords:
            raise ValueError("a column_image scene needs 'values' on dims (y, x) with x, y coords")
        for c in ("x", "y"):
            if ds[c].attrs.get("units", "m") != "m":
                raise ValueError(f"coordinate {c!r} has units {ds[c].attrs['units']!r}; need 'm'")
        unit_map = {"column_ppm_m": "ppm_m", "column_mol_m2": "mol_m2", "column_kg_m2": "kg_m2"}
        if obs.kind not in unit_map:
            raise ValueError(f"a column_image scene needs a column kind, got {obs.kind!r}")
        units = unit_map[obs.kind]
        geometry = ColumnImage(
            np.asarray(obs.coords["x"]), np.asarray(obs.coords["y"]), units=units
        )
    else:
        for c in ("x", "y", "z"):
            if f"receptor_{c}" not in ds:
                raise ValueError(f"a point_receptors scene needs variable 'receptor_{c}'")
            if ds[f"receptor_{c}"].attrs.get("units") != "m":
                raise ValueError(f"variable 'receptor_{c}' must have units 'm'")
        unit_map = {"concentration_ppm": "ppm", "concentration_kg_m3": "kg_m3"}
        if obs.kind not in unit_map:
            raise ValueError(
                f"a point_receptors scene needs a concentration kind, got {obs.kind!r}"
            )
        geometry = PointReceptors(
            ds["receptor_x"].values,
            ds["receptor_y"].values,
            ds["receptor_z"].values,
            units=unit_map[obs.kind],
        )
    a = ds.attrs
    met = read_met(a)
    terrain = str(a.get("terrain", "rural"))
    # check_upwind=False: samplers may propose a source downwind of every pixel; the
    # likelihood then simply sees an empty plume. strict=False: under tracing a proposal
    # outside the support gives NaN (rejected by NUTS) instead of aborting the run.
    if gname == "column_image" and "supersample" in a:
        f = int(a["supersample"])
        if f < 1:
            raise ValueError(f"scene attribute supersample must be an int >= 1, got {f}")
        plume = pixel_averaged_plume(geometry, f, terrain=terrain)
    else:
        plume = GaussianPlume(geometry, terrain=terrain, check_upwind=False, strict=False)
    model = pin(plume, H=float(a["source_height"]))
    error_model = None
    if "retrieval_variance_factor" in a:
        if gname != "column_image":
            raise ValueError("a retrieval error model needs a column_image scene")
        error_model = pr.RetrievalErrorModel.from_attrs(
            a, ds["sigma"].values, float(np.mean(np.diff(ds["x"].values)))
        )
        if error_model.correlated and bool(np.all(np.asarray(obs.valid()))):
            obs = obs.replace(sigma=None, mask=None, noise=error_model.noise_operator())
    ws, wd = read_wind_uncertainty(a)
    model, stds = add_nuisances(
        model, error_model=error_model, wind_speed_log_std=ws, wind_direction_std=wd
    )
    starts = [] if error_model is None else read_starts(a)  # a retrieval's file only
    time = None
    if "time" in ds.coords and ds["time"].ndim == 0:
        time = float(seconds_since_epoch(ds["time"].values))
    frame = frame_from_dataset(ds)
    return Scene(obs, met, model, read_truth(a), stds, starts, frame, time)


def read_met(attrs) -> MetField:
    """The steady uniform met of a scene's global attributes (``met_*``, see above):
    ``MetField.from_attrs(attrs, "met_")``.

    Raises:
        ValueError: a missing ``met_*`` attribute, a value that is not a number, or a
            ``met_wind_speed`` that breaks the one wind-speed rule
            (:func:`plumax_core.validation.check_wind_speed`: finite, 0.5-120 m/s).
    """
    return MetField.from_attrs(attrs, "met_", source=str(attrs.get("met_source", "scene-file")))


def read_truth(attrs) -> dict[str, float] | None:
    """``{"Q_kgh", "x0", "y0"}`` of a synthetic scene's attributes, else None."""
    if "true_emission_rate_kg_h" not in attrs:
        return None
    return {
        "Q_kgh": float(attrs["true_emission_rate_kg_h"]),
        "x0": float(attrs.get("true_x0", np.nan)),
        "y0": float(attrs.get("true_y0", np.nan)),
        **{
            k: float(attrs[f"true_{k}"])
            for k in ("wind_speed", "wind_direction")
            if f"true_{k}" in attrs
        },
    }
