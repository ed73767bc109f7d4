"""`GateResult`: the record every validation gate of the six-step cycle returns."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["GateResult"]


def _to_json_value(value: Any, where: str) -> Any:
    """Convert `value` to plain JSON types (dict/list/str/int/float/bool/None).

    Arrays (numpy or JAX) become (nested) lists, numpy scalars become Python scalars,
    tuples become lists and mapping keys become strings, so that a `json.dumps` /
    `json.loads` round trip returns an equal object.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str | int | float | bool):
                raise ValueError(f"`details` key {k!r} at {where} is not a str or number.")
            out[str(k)] = _to_json_value(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, list | tuple):
        return [_to_json_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "__array__"):
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"`details` value at {where} has unsupported dtype {arr.dtype}.")
        return arr.tolist()
    raise ValueError(f"`details` value at {where} of type {type(value).__name__} is not JSON-able.")


@dataclasses.dataclass(frozen=True)
class GateResult:
    """Outcome of one validation gate.

    Attributes:
        name: the gate's name, e.g. ``"sbc_uniformity"``.
        passed: whether the candidate passed the gate.
        statistic: the headline number (see each gate for its meaning and for the
            direction of the comparison with `threshold`).
        threshold: the value `statistic` is compared against.
        details: extra JSON-serialisable values (per-parameter lists, settings, the
            pass rule as text under ``"rule"``). Arrays given here are converted to
            nested lists, tuples to lists and mapping keys to strings on construction,
            so that ``GateResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r``.

    Non-finite statistics (``inf``/``nan``) are kept as floats; Python's `json` module
    writes them as ``Infinity``/``NaN``.
    """

    name: str
    passed: bool
    statistic: float
    threshold: float
    details: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` must be a non-empty string, got {self.name!r}.")
        object.__setattr__(self, "passed", bool(self.passed))
        object.__setattr__(self, "statistic", float(self.statistic))
        object.__setattr__(self, "threshold", float(self.threshold))
        if not isinstance(self.details, Mapping):
            raise ValueError(f"`details` must be a mapping, got {type(self.details).__name__}.")
        object.__setattr__(self, "details", _to_json_value(self.details, "details"))

    def to_dict(self) -> dict[str, Any]:
        """A plain-JSON dict with keys ``name, passed, statistic, threshold, details``."""
        return {
            "name": self.name,
            "passed": self.passed,
            "statistic": self.statistic,
            "threshold": self.threshold,
            "details": json.loads(json.dumps(self.details)),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateResult:
        """Inverse of `to_dict`."""
        missing = {"name", "passed", "statistic", "threshold"} - set(data)
        if missing:
            raise ValueError(f"`data` lacks the keys {sorted(missing)}.")
        return cls(
            name=data["name"],
            passed=data["passed"],
            statistic=data["statistic"],
            threshold=data["threshold"],
            details=dict(data.get("details", {})),
        )

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        text = f"[{verdict}] {self.name}: statistic={_fmt(self.statistic)}"
        text += f", threshold={_fmt(self.threshold)}"
        rule = self.details.get("rule")
        if isinstance(rule, str):
            text += f" (pass if {rule})"
        return text


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.4g}"
