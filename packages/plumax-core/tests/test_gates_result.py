"""`GateResult`: JSON round trip, validation and printing."""

import dataclasses
import json

import hypothesis.strategies as st
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

from plumax_core.gates import GateResult


def _roundtrip(result: GateResult) -> GateResult:
    return GateResult.from_dict(json.loads(json.dumps(result.to_dict())))


def test_roundtrip_converts_arrays_tuples_and_keys():
    result = GateResult(
        name="demo",
        passed=np.bool_(True),
        statistic=np.float32(0.25),
        threshold=jnp.asarray(0.5),
        details={
            "z": np.array([0.1, 0.2]),
            "counts": jnp.arange(6).reshape(2, 3),
            "pair": (1, 2.5),
            "strata": {3: {"p": np.float64(0.3)}},
            "flag": np.bool_(False),
            "rule": "statistic <= threshold",
            "missing": None,
        },
    )
    assert isinstance(result.passed, bool)
    assert isinstance(result.statistic, float) and result.statistic == 0.25
    assert result.details["z"] == [0.1, 0.2]
    assert result.details["counts"] == [[0, 1, 2], [3, 4, 5]]
    assert result.details["pair"] == [1, 2.5]
    assert result.details["strata"] == {"3": {"p": 0.3}}
    assert type(result.details["flag"]) is bool
    back = _roundtrip(result)
    assert back == result
    assert back.to_dict() == result.to_dict()


@given(
    statistic=st.floats(allow_nan=False),
    threshold=st.floats(allow_nan=False, allow_infinity=False),
    passed=st.booleans(),
    values=st.lists(st.floats(allow_nan=False), max_size=5),
)
def test_roundtrip_is_exact(statistic, threshold, passed, values):
    result = GateResult("g", passed, statistic, threshold, {"values": values, "n": len(values)})
    assert _roundtrip(result) == result


def test_frozen_and_str():
    result = GateResult("sbc_uniformity", False, 1e-5, 0.01, {"rule": "every p-value >= 0.01"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.passed = True  # type: ignore[misc]
    text = str(result)
    assert text.startswith("[FAIL] sbc_uniformity")
    assert "1e-05" in text and "0.01" in text and "every p-value" in text
    assert str(GateResult("x", True, 0.0, 1.0)).startswith("[PASS] x")


def test_bad_input():
    with pytest.raises(ValueError, match="name"):
        GateResult("", True, 0.0, 1.0)
    with pytest.raises(ValueError, match="details"):
        GateResult("x", True, 0.0, 1.0, details={"f": object()})
    with pytest.raises(ValueError, match="details"):
        GateResult("x", True, 0.0, 1.0, details=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="statistic"):
        GateResult.from_dict({"name": "x", "passed": True, "threshold": 1.0})
