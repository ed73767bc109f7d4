"""Detection times in plume lists: one explicit rule, a plausible range, no guessing.

A :class:`TimeRule` says how the text of a time column becomes Unix seconds (UTC):

* default: ISO 8601 (ISO 8601-1:2019; the forms Python's ``datetime.fromisoformat``
  reads, extended ``2024-01-31T10:00:00Z`` and basic ``20240131`` alike). A time
  without a zone is UTC; ``Z`` or an offset (``+02:00``, ``+00``) is honoured.
  A bare number is *not* taken for a Unix epoch: ``20240131`` is 31 January 2024 (ISO
  8601 basic format), and ``1706659200`` is an error unless an epoch unit is given;
* ``time_format="%d/%m/%Y %H:%M"``: a :func:`datetime.datetime.strptime` format (UTC
  unless the format has ``%z``);
* ``epoch_unit="s"`` or ``"ms"``: numbers counted from 1970-01-01T00:00:00Z in seconds
  or milliseconds.

Every parsed time must lie in the plausible window ``years=(first, last)`` (default
1970-2100: [1970-01-01T00:00Z, 2101-01-01T00:00Z)), checked before any fit; a time that
does not parse, or falls outside, is a malformed row.
"""

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence

import numpy as np

EPOCH_UNITS = {"s": 1.0, "ms": 1e-3}
DEFAULT_YEARS = (1970, 2100)


def _year_start(year: int) -> float:
    return dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp()


@dataclasses.dataclass(frozen=True)
class TimeRule:
    """How a time column is read (see the module docstring).

    Attributes:
        time_format: a ``strptime`` format, or None.
        epoch_unit: ``"s"`` or ``"ms"`` (numbers since 1970-01-01Z), or None.
        years: ``(first, last)`` plausible calendar years, inclusive (UTC).
    """

    time_format: str | None = None
    epoch_unit: str | None = None
    years: tuple[int, int] = DEFAULT_YEARS

    def __post_init__(self):
        if self.time_format is not None and self.epoch_unit is not None:
            raise ValueError("give `time_format` or `epoch_unit`, not both")
        if self.time_format is not None and (
            not isinstance(self.time_format, str) or "%" not in self.time_format
        ):
            raise ValueError(
                f"`time_format` must be a strptime format such as '%Y-%m-%d %H:%M', "
                f"got {self.time_format!r}"
            )
        if self.epoch_unit is not None and self.epoch_unit not in EPOCH_UNITS:
            raise ValueError(
                f"`epoch_unit` must be one of {sorted(EPOCH_UNITS)}, got {self.epoch_unit!r}"
            )
        y = tuple(self.years)
        if not (
            len(y) == 2
            and all(isinstance(v, int) for v in y)
            and dt.MINYEAR < y[0] <= y[1] < dt.MAXYEAR
        ):
            raise ValueError(f"`years` must be two increasing calendar years, got {self.years!r}")
        object.__setattr__(self, "years", y)

    @property
    def bounds(self) -> tuple[float, float]:
        """``[lo, hi)`` in Unix seconds."""
        return _year_start(self.years[0]), _year_start(self.years[1] + 1)

    def describe(self) -> str:
        """One phrase for messages and summaries."""
        if self.epoch_unit is not None:
            return f"Unix epoch in {self.epoch_unit}"
        if self.time_format is not None:
            return f"strptime format {self.time_format!r}"
        return "ISO 8601"

    def parse_one(self, text: str) -> float:
        """Unix seconds of one time; ``ValueError`` (with a hint) if it does not parse."""
        s = text.strip()
        if not s:
            raise ValueError("missing time")
        if self.epoch_unit is not None:
            return float(s) * EPOCH_UNITS[self.epoch_unit]
        if self.time_format is not None:
            t = dt.datetime.strptime(s, self.time_format)
        else:
            try:
                t = dt.datetime.fromisoformat(s)
            except ValueError:
                hint = ""
                if s.lstrip("+-").replace(".", "", 1).isdigit():
                    hint = " (a number: if it is a Unix epoch, give epoch_unit 's' or 'ms')"
                raise ValueError(f"not ISO 8601{hint}") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        return t.timestamp()

    def parse(self, texts: Sequence[str]) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """Parse a column: ``(seconds, problems)``; ``seconds`` is NaN where a problem
        (position, message) was found: unparsable, non-finite or out of range."""
        out = np.empty(len(texts), np.float64)
        bad: list[tuple[int, str]] = []
        cache: dict[str, float | str] = {}  # text -> seconds, or the problem's message
        how = self.describe()
        for i, s in enumerate(texts):
            v = cache.get(s)
            if v is None:
                try:
                    v = self.parse_one(s)
                except (ValueError, OverflowError, OSError) as exc:
                    reason = str(exc) if str(exc).startswith(("not ISO", "missing")) else how
                    v = f"unparsable time {s!r} ({reason})"
                cache[s] = v
            if isinstance(v, str):
                bad.append((i, v))
                v = math.nan
            out[i] = v
        lo, hi = self.bounds
        with np.errstate(invalid="ignore"):
            outside = np.flatnonzero(~((out >= lo) & (out < hi)) & ~np.isnan(out))
        seen = {i for i, _ in bad}
        for i in outside:
            if i in seen:
                continue
            v = out[i]
            when = _iso(v) if math.isfinite(v) and -6e10 < v < 2.5e11 else repr(float(v))
            bad.append(
                (
                    int(i),
                    f"time {texts[i].strip()!r} ({how}) is {when}, outside the plausible "
                    f"years {self.years[0]}-{self.years[1]}",
                )
            )
            out[i] = math.nan
        return out, bad


def _iso(t: float) -> str:
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=float(t))).isoformat(
        timespec="seconds"
    )


def iso_utc(t: float) -> str:
    """Unix seconds -> ``YYYY-MM-DDTHH:MM:SSZ``."""
    return _iso(t).replace("+00:00", "Z")


def parse_time(
    text: str,
    *,
    time_format: str | None = None,
    epoch_unit: str | None = None,
    years: tuple[int, int] = DEFAULT_YEARS,
) -> float:
    """One time -> Unix seconds (UTC) under the rule of :class:`TimeRule`.

    Raises:
        ValueError: unparsable (naming the rule) or outside ``years``.
    """
    rule = TimeRule(time_format, epoch_unit, years)
    v, bad = rule.parse([text])
    if bad:
        raise ValueError(bad[0][1])
    return float(v[0])
