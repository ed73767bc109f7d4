"""From a plume catalogue to the data of a population fit.

:func:`catalog_population_data` turns a :class:`~plumax_pod.PlumeCatalog` and a
statement of what each instrument observed (:mod:`plumax_pod._coverage`) into
:class:`~plumax_pod.PopulationData`:

* times relative to the window start (s); one instrument index per event;
* mark likelihoods from the catalogue's uncertainty rule
  (:func:`catalog_mark_data`): ``GaussianMarks`` in log Q with ``sd(log Q) = σ_Q / Q``
  (delta method) where a row has a sigma, exact rates (``sd = 0``) where it has none —
  each row on its own, never all rows switched together;
* per instrument, its window, overpass schedule and coverage fraction.

The pooling rule: with several instrument names and no stated coverage, the instruments
are pooled into one (one detection curve, observing the whole window), and the result
says so (``pooled``, ``note``): a catalogue lists what was seen, not when each instrument
looked, and assuming that each watched the whole window biases the rate and can make
the missing-mass fraction negative. State each instrument's coverage to fit them apart.
"""

import dataclasses
from collections.abc import Mapping

import numpy as np

from ._catalog import PlumeCatalog
from ._catalog_times import iso_utc
from ._coverage import InstrumentCoverage
from ._likelihood import AbstractMarkData, GaussianMarks, PointMarks
from ._pod import OverpassSchedule
from ._population_data import PopulationData

Coverage = float | InstrumentCoverage | Mapping[str, float | InstrumentCoverage] | None


def catalog_mark_data(catalog: PlumeCatalog) -> AbstractMarkData:
    """Mark likelihoods of a catalogue, row by row (module docstring).

    Returns :class:`~plumax_pod.PointMarks` when no row has a ``q_sigma``, else
    :class:`~plumax_pod.GaussianMarks` in log Q (kg/s) with ``std = q_sigma / q`` and
    ``std = 0`` (exact) for rows without one.
    """
    has = np.isfinite(catalog.q_sigma)
    if not has.any():
        return PointMarks(catalog.q)
    std = np.where(has, catalog.q_sigma / catalog.q, 0.0)
    return GaussianMarks(np.log(catalog.q), std)


def mark_likelihood_kind(catalog: PlumeCatalog) -> str:
    """``"gaussian"`` (every row has a sigma), ``"point"`` (none) or ``"mixed"``."""
    has = np.isfinite(catalog.q_sigma)
    return "gaussian" if has.all() and has.size else ("point" if not has.any() else "mixed")


@dataclasses.dataclass(frozen=True)
class CatalogPopulationData:
    """A catalogue made ready for a population fit.

    Attributes:
        data: the :class:`~plumax_pod.PopulationData` (times in s since ``start``).
        instruments: names of the fitted instruments (one detection curve each); for a
            pooled fit one label, ``"pooled (A, B)"``.
        catalog_instruments: the instrument names in the catalogue.
        events: detections per fitted instrument.
        coverage: one :class:`InstrumentCoverage` per fitted instrument.
        coverage_stated: False when coverage was assumed (whole window, fraction 1).
        pooled: True when several catalogue instruments were fitted as one.
        note: a sentence on how coverage was set (for summaries and terminals).
        start, end: the window, Unix seconds (UTC).
        detected_q: ``(n,)`` the catalogue's emission rates (kg/s).
        mark_likelihood: ``"gaussian"``, ``"point"`` or ``"mixed"``.
    """

    data: PopulationData
    instruments: tuple[str, ...]
    catalog_instruments: tuple[str, ...]
    events: tuple[int, ...]
    coverage: tuple[InstrumentCoverage, ...]
    coverage_stated: bool
    pooled: bool
    note: str
    start: float
    end: float
    detected_q: np.ndarray
    mark_likelihood: str

    @property
    def span_s(self) -> float:
        return self.end - self.start

    def rate_scale(self) -> float:
        """Detections per second of covered observation, ``n / Σ_k c_k T_k`` (events/s):
        a scale for the rate prior (a lower bound on the true rate's typical size)."""
        eff = self.data.observed_seconds() * np.asarray(self.data.coverage, np.float64)
        return max(len(self.detected_q), 1) / float(np.sum(eff))

    def describe(self) -> dict:
        """JSON-ready description of the instruments, their coverage and the pooling."""
        return {
            "pooled": self.pooled,
            "stated": self.coverage_stated,
            "note": self.note,
            "instruments": {
                name: {"events": int(n), **cov.describe()}
                for name, n, cov in zip(self.instruments, self.events, self.coverage, strict=True)
            },
        }


def catalog_population_data(
    catalog: PlumeCatalog,
    *,
    start: float | None = None,
    end: float | None = None,
    coverage: Coverage = None,
    pool: bool | None = None,
) -> CatalogPopulationData:
    """Population-fit data from a catalogue and its instruments' coverage.

    Args:
        catalog: the detections (de-duplicate first if instruments overlap).
        start, end: the window, Unix seconds; default the first and last detection.
        coverage: what the instruments observed: None (not stated), one fraction or
            :class:`InstrumentCoverage` (all instruments together, pooled), or a mapping
            ``{instrument: fraction | InstrumentCoverage}`` naming every instrument of
            the catalogue (more names = instruments that looked and saw nothing).
        pool: True pools the instruments into one; False refuses to (an error unless
            every instrument's coverage is stated); None (default) pools only when
            several instruments have no stated coverage.

    Returns:
        A :class:`CatalogPopulationData`. Build it under ``jax.enable_x64(True)`` for
        windows longer than a few months (times are seconds since ``start``).

    Raises:
        ValueError: an empty catalogue, a bad window, detections outside it (by line),
            coverage that misses an instrument, contradicts ``pool``, or an overpass
            schedule that misses a detection (by line).
    """
    n = len(catalog)
    if n == 0:
        raise ValueError("`catalog` has no detections")
    t_start = float(catalog.time.min()) if start is None else float(start)
    t_end = float(catalog.time.max()) if end is None else float(end)
    if not (np.isfinite(t_start) and np.isfinite(t_end) and t_end > t_start):
        raise ValueError(
            f"the window end ({iso_utc(t_end)}) must be after its start ({iso_utc(t_start)})"
        )
    outside = (catalog.time < t_start) | (catalog.time > t_end)
    if outside.any():
        lines = ", ".join(str(int(x)) for x in catalog.lines[outside][:5])
        raise ValueError(
            f"{int(outside.sum())} detection(s) fall outside the window "
            f"{iso_utc(t_start)} - {iso_utc(t_end)} (lines {lines})"
        )
    names = tuple(str(s) for s in np.unique(catalog.instrument))
    shown = ", ".join(repr(s) for s in names)
    if isinstance(coverage, int | float) and not isinstance(coverage, bool):
        coverage = InstrumentCoverage(float(coverage))
    if coverage is None:
        if len(names) == 1:
            fit_names, covs, stated, pooled = names, (InstrumentCoverage(),), False, False
            note = (
                f"one instrument ({shown}), assumed to observe the whole window "
                "(coverage not stated)"
            )
        elif pool is False:
            raise ValueError(
                f"the catalogue names {len(names)} instruments ({shown}) but their observing "
                "coverage is not stated: give a coverage fraction or overpass schedule for "
                "each, or pool them"
            )
        else:
            fit_names, covs, stated, pooled = (
                (f"pooled ({', '.join(names)})",),
                (InstrumentCoverage(),),
                False,
                True,
            )
            note = (
                f"the catalogue names {len(names)} instruments ({shown}) without their "
                "observing coverage: pooled into one instrument with one detection curve, "
                "assumed to observe the whole window; state each instrument's coverage to "
                "fit them apart"
            )
    elif isinstance(coverage, InstrumentCoverage):
        if len(names) > 1 and pool is False:
            raise ValueError(
                f"one coverage for {len(names)} instruments ({shown}) describes them pooled; "
                "give one per instrument (a mapping) or pool them"
            )
        pooled = len(names) > 1
        fit_names = (f"pooled ({', '.join(names)})",) if pooled else names
        covs, stated = (coverage,), True
        note = (
            f"{len(names)} instruments ({shown}) pooled into one with the stated coverage"
            if pooled
            else f"one instrument ({shown}) with the stated coverage"
        )
    elif isinstance(coverage, Mapping):
        if pool:
            raise ValueError("`coverage` per instrument cannot be combined with `pool=True`")
        missing = [s for s in names if s not in coverage]
        if missing:
            raise ValueError(
                f"`coverage` states no coverage for instrument(s) {missing} of the catalogue "
                f"(it has {sorted(coverage)})"
            )
        extra = sorted(set(coverage) - set(names))
        fit_names = names + tuple(extra)
        covs = tuple(
            c if isinstance(c, InstrumentCoverage) else InstrumentCoverage(float(c))
            for c in (coverage[s] for s in fit_names)
        )
        stated, pooled = True, False
        note = f"{len(fit_names)} instrument(s) with stated coverage"
        if extra:
            note += f" ({', '.join(repr(s) for s in extra)} looked and detected nothing)"
    else:
        raise TypeError(
            "`coverage` must be None, a fraction, an InstrumentCoverage or a mapping "
            f"instrument -> fraction | InstrumentCoverage; got {type(coverage).__name__}"
        )
    if pooled:
        idx = np.zeros(n, np.int64)
    else:
        idx = np.searchsorted(np.asarray(fit_names[: len(names)]), catalog.instrument)
    times = catalog.time - t_start
    schedules = []
    for k, cov in enumerate(covs):
        if cov.overpasses is None:
            schedules.append(None)
            continue
        o = cov.overpasses - t_start
        mine = np.flatnonzero(idx == k)
        if mine.size:
            j = np.searchsorted(o, times[mine])
            lo, hi = np.clip(j - 1, 0, o.size - 1), np.clip(j, 0, o.size - 1)
            gap = np.minimum(np.abs(times[mine] - o[lo]), np.abs(times[mine] - o[hi]))
            bad = mine[gap > cov.half_window_s]
            if bad.size:
                lines = ", ".join(str(int(x)) for x in catalog.lines[bad][:5])
                raise ValueError(
                    f"{bad.size} detection(s) of {fit_names[k]!r} fall outside its overpass "
                    f"windows (+-{cov.half_window_s:g} s; lines {lines})"
                )
        schedules.append(OverpassSchedule(o, half_window=float(cov.half_window_s)))
    k_all = len(fit_names)
    data = PopulationData(
        times,
        catalog_mark_data(catalog),
        np.zeros(k_all),
        np.full(k_all, t_end - t_start),
        instrument=idx,
        schedules=None if all(s is None for s in schedules) else schedules,
        coverage=np.asarray([c.fraction for c in covs]),
    )
    events = tuple(int(np.sum(idx == k)) for k in range(k_all))
    return CatalogPopulationData(
        data=data,
        instruments=tuple(fit_names),
        catalog_instruments=names,
        events=events,
        coverage=tuple(covs),
        coverage_stated=stated,
        pooled=pooled,
        note=note,
        start=t_start,
        end=t_end,
        detected_q=np.asarray(catalog.q, np.float64),
        mark_likelihood=mark_likelihood_kind(catalog),
    )
