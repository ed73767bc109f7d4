"""The data of a population fit and the chunked event sum of its likelihood.

:class:`PopulationData` holds a detected catalogue: event times and mark likelihoods,
each instrument's window, overpass schedule and coverage fraction.

:func:`event_sum` evaluates the event part of the thinned marked TPP log-likelihood,
``Σ_i [log c_{k_i} + log λ(t_i) + log ∫ P_{k_i} L_i f dQ]``. For more than
:data:`EVENT_CHUNK` events it runs over chunks of events in a ``lax.scan`` whose body is
under ``jax.checkpoint``: reverse mode then stores one scalar per chunk and recomputes
the chunk's internals, so the memory of a value, gradient or Hessian is bounded by one
chunk (times the parameter count for the Hessian) however many events the catalogue
has (Griewank & Walther 2008, ch. 12, on checkpointing). Padded events (copies of the
last one, masked out) fill the last chunk.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from plumax_core.validation import as_float_array

from ._intensity import AbstractIntensity
from ._likelihood import AbstractMarkData
from ._pod import OverpassSchedule

#: Events per chunk of the likelihood's event sum (see the module docstring).
EVENT_CHUNK = 16_384


class PopulationData(eqx.Module):
    """A detected catalogue.

    Attributes:
        times: ``(n,)`` detection times (s).
        mark_data: per-event mark likelihoods (``n`` events).
        t0, t1: ``(K,)`` observation window of each instrument (s).
        instrument: ``(n,)`` integer instrument index in ``0..K−1`` per event.
        mask: ``(n,)`` bool, False for padding rows (lets catalogues of different sizes
            share one compiled fit); padded rows need valid (e.g. positive) mark values.
        coverage: ``(K,)`` fraction in (0, 1] of the events in what instrument ``k``
            observed that it could see (e.g. the share of the area it imaged); default 1.
            Its compensator is multiplied by ``coverage[k]``.
        schedules: optional, one `OverpassSchedule` (or None) per instrument. An
            instrument with a schedule only looks during its overpass windows
            ``[o - half_window, o + half_window]`` (inside ``[t0_k, t1_k]``): its
            compensator integrates λ over those windows only (a snapshot imager sees
            events active at overpass time; put the event duration into
            ``half_window``). Windows must not overlap, and every detection of the
            instrument must fall inside one.
    """

    times: Float[Array, " n"]
    mark_data: AbstractMarkData
    t0: Float[Array, " K"]
    t1: Float[Array, " K"]
    instrument: Int[Array, " n"]
    mask: Bool[Array, " n"]
    schedules: tuple[OverpassSchedule | None, ...] | None
    coverage: Float[Array, " K"]

    def __init__(
        self,
        times,
        mark_data,
        t0,
        t1,
        instrument=None,
        mask=None,
        schedules=None,
        coverage=None,
    ):
        self.schedules = None if schedules is None else tuple(schedules)
        self.times = as_float_array("times", times)
        self.mark_data = mark_data
        self.t0 = jnp.atleast_1d(as_float_array("t0", t0))
        self.t1 = jnp.atleast_1d(as_float_array("t1", t1))
        n = self.times.shape[0] if self.times.ndim == 1 else -1
        self.instrument = (
            jnp.zeros((max(n, 0),), jnp.int32) if instrument is None else jnp.asarray(instrument)
        )
        self.mask = jnp.ones((max(n, 0),), bool) if mask is None else jnp.asarray(mask, bool)
        self.coverage = (
            jnp.ones(self.t0.shape, self.t0.dtype)
            if coverage is None
            else jnp.atleast_1d(as_float_array("coverage", coverage))
        )

    def __check_init__(self):
        if self.times.ndim != 1:
            raise ValueError(f"`times` must be 1-D, got shape {self.times.shape}")
        if not isinstance(self.mark_data, AbstractMarkData):
            raise TypeError("`mark_data` must be PointMarks, GaussianMarks or SampleMarks")
        if self.mark_data.n_events != self.times.shape[0]:
            raise ValueError(
                f"`mark_data` has {self.mark_data.n_events} events but `times` has "
                f"{self.times.shape[0]}"
            )
        if self.t0.shape != self.t1.shape:
            raise ValueError("`t0` and `t1` must have the same shape (one per instrument)")
        if np.any(np.asarray(self.t1) <= np.asarray(self.t0)):
            raise ValueError("`t1` must exceed `t0`")
        if self.mask.shape != self.times.shape:
            raise ValueError("`mask` must have one entry per event")
        if self.instrument.shape != self.times.shape:
            raise ValueError("`instrument` must have one index per event")
        ins = np.asarray(self.instrument)
        if ins.size and (ins.min() < 0 or ins.max() >= self.t0.shape[0]):
            raise ValueError(f"`instrument` indices must lie in 0..{self.t0.shape[0] - 1}")
        if self.coverage.shape != self.t0.shape:
            raise ValueError(
                f"`coverage` must have one fraction per instrument {self.t0.shape}, got "
                f"{self.coverage.shape}"
            )
        c = np.asarray(self.coverage)
        if not np.all((c > 0) & (c <= 1)):
            raise ValueError(f"`coverage` fractions must lie in (0, 1], got {c.tolist()}")
        if self.schedules is not None:
            self._check_schedules(ins)

    def _check_schedules(self, ins: np.ndarray) -> None:
        k_all = self.t0.shape[0]
        if len(self.schedules) != k_all:
            raise ValueError(
                f"`schedules` has {len(self.schedules)} entries for {k_all} instruments"
            )
        times, mask = np.asarray(self.times), np.asarray(self.mask)
        for k, sched in enumerate(self.schedules):
            if sched is None:
                continue
            if not isinstance(sched, OverpassSchedule):
                raise TypeError(f"`schedules[{k}]` must be an OverpassSchedule or None")
            o = np.asarray(sched.times)
            if o.size and np.any(np.diff(o) < 2 * sched.half_window):
                raise ValueError(
                    f"`schedules[{k}]`: overpass times must be ascending and at least "
                    f"2 * half_window = {2 * sched.half_window:g} s apart (windows may not overlap)"
                )
            mine = np.flatnonzero((ins == k) & mask)
            if mine.size:
                if o.size == 0:
                    raise ValueError(f"instrument {k} has detections but no overpasses")
                # nearest overpass by bisection (o is ascending): O(n log m), not O(n m)
                j = np.searchsorted(o, times[mine])
                lo, hi = np.clip(j - 1, 0, o.size - 1), np.clip(j, 0, o.size - 1)
                gap = np.minimum(np.abs(times[mine] - o[lo]), np.abs(times[mine] - o[hi]))
                bad = mine[gap > sched.half_window]
                if bad.size:
                    raise ValueError(
                        f"{bad.size} detection(s) of instrument {k} fall outside its overpass "
                        f"windows (event indices {bad[:5].tolist()})"
                    )

    def observed_seconds(self) -> np.ndarray:
        """``(K,)`` time each instrument observes (s): ``t1 - t0`` or its overpass windows."""
        out = np.asarray(self.t1 - self.t0, np.float64).copy()
        for k, sched in enumerate(self.schedules or ()):
            if sched is not None:
                t0, t1 = float(self.t0[k]), float(self.t1[k])
                o = np.asarray(sched.times, np.float64)
                a = np.clip(o - sched.half_window, t0, t1)
                b = np.clip(o + sched.half_window, t0, t1)
                out[k] = float(np.sum(b - a))
        return out

    def exposure(self, intensity: AbstractIntensity, k: int) -> Float[Array, ""]:
        """``c_k ∫ λ dt`` over the time instrument ``k`` observes: its window
        ``[t0_k, t1_k]``, or the union of its overpass windows inside it, times its
        coverage fraction ``c_k``."""
        sched = None if self.schedules is None else self.schedules[k]
        if sched is None:
            return self.coverage[k] * intensity.integrated(self.t0[k], self.t1[k])
        a = jnp.clip(sched.times - sched.half_window, self.t0[k], self.t1[k])
        b = jnp.clip(sched.times + sched.half_window, self.t0[k], self.t1[k])
        return self.coverage[k] * jnp.sum(intensity.integrated(a, b))

    @property
    def n_events(self) -> int:
        """Number of real (unmasked) events."""
        return int(np.sum(np.asarray(self.mask)))

    @property
    def n_instruments(self) -> int:
        return self.t0.shape[0]


def _event_terms(intensity, marks, pods, log_cov, times, mark_data, instrument, mask):
    """``Σ_i mask_i [log c_k + log λ(t_i) + log ∫ P_k L_i f dQ]`` for one block of events."""
    per_pod = jnp.stack([mark_data.log_event_integral(marks, p) for p in pods])
    ev = jnp.take_along_axis(per_pod, instrument[None, :], axis=0)[0]
    terms = log_cov[instrument] + intensity.log_rate(times) + ev
    return jnp.sum(jnp.where(mask, terms, 0.0))


def event_sum(intensity, marks, pods, data: PopulationData, chunk: int = EVENT_CHUNK):
    """``Σ_i mask_i [log c_{k_i} + log λ(t_i) + log ∫ P_{k_i} L_i f dQ]``: the event part
    of the log-likelihood (module docstring), in checkpointed chunks when ``n > chunk``."""
    log_cov = jnp.log(data.coverage)
    n = data.times.shape[0]
    if n <= chunk:
        return _event_terms(
            intensity, marks, pods, log_cov, data.times, data.mark_data, data.instrument, data.mask
        )
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n

    def split(x):  # pad with copies of the last event (masked out), then (chunks, chunk, ...)
        x = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) if pad else x
        return x.reshape(n_chunks, chunk, *x.shape[1:])

    per_event = lambda x: eqx.is_array(x) and x.ndim >= 1 and x.shape[0] == n
    md_dyn, md_static = eqx.partition(data.mark_data, per_event)
    mask = jnp.concatenate([data.mask, jnp.zeros((pad,), bool)]) if pad else data.mask
    xs = (
        split(data.times),
        jax.tree.map(split, md_dyn),
        split(data.instrument),
        mask.reshape(n_chunks, chunk),
    )

    @jax.checkpoint
    def body(acc, x):
        t, md, ins, m = x
        md = eqx.combine(md, md_static)
        return acc + _event_terms(intensity, marks, pods, log_cov, t, md, ins, m), None

    first = jax.tree.map(lambda v: v[0], xs)
    dtype = jax.eval_shape(lambda: body(0.0, first)[0]).dtype
    total, _ = jax.lax.scan(body, jnp.zeros((), dtype), xs)
    return total
