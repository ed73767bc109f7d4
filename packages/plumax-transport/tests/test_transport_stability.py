"""Pasquill class: Pasquill (1961) / Turner (1970) Table 1 key and Golder (1972)."""

import jax
import numpy as np
import pytest

from plumax_transport import GOLDER_COEFFICIENTS, pasquill_class, pasquill_class_from_obukhov


@pytest.mark.parametrize(
    "u,kw,expected",
    [
        (1.5, dict(daytime=True, insolation="strong"), "A"),
        (2.5, dict(daytime=True, insolation="strong"), "A"),  # A-B -> unstable letter
        (2.5, dict(daytime=True, insolation="strong", intermediate="stable"), "B"),
        (4.0, dict(daytime=True, insolation="moderate"), "B"),
        (4.0, dict(daytime=True, insolation="moderate", intermediate="stable"), "C"),
        (4.0, dict(daytime=True, insolation="slight"), "C"),
        (5.5, dict(daytime=True, insolation="strong"), "C"),
        (7.0, dict(daytime=True, insolation="strong"), "C"),
        (7.0, dict(daytime=True, insolation="slight"), "D"),
        (1.0, dict(daytime=True, insolation="overcast"), "D"),
        (2.5, dict(daytime=False, cloud_cover=0.2), "F"),
        (2.5, dict(daytime=False, cloud_cover=0.6), "E"),
        (4.0, dict(daytime=False, cloud_cover=0.2), "E"),
        (4.0, dict(daytime=False, cloud_cover=0.6), "D"),
        (8.0, dict(daytime=False, cloud_cover=0.0), "D"),
        (2.5, dict(daytime=False, cloud_cover=1.0), "D"),
        (1.0, dict(daytime=False, cloud_cover=0.0), "F"),
    ],
)
def test_pasquill_table(u, kw, expected):
    assert pasquill_class(u, **kw) == expected


@pytest.mark.parametrize(
    "u,kw,match",
    [
        (-1.0, dict(daytime=True, insolation="strong"), "wind_speed"),
        (float("nan"), dict(daytime=True, insolation="strong"), "wind_speed"),
        (3.0, dict(daytime=True, insolation="bright"), "insolation"),
        (3.0, dict(daytime=False), "cloud_cover"),
        (3.0, dict(daytime=False, cloud_cover=1.5), "cloud_cover"),
        (3.0, dict(daytime=True, insolation="strong", intermediate="x"), "intermediate"),
    ],
)
def test_pasquill_bad_input(u, kw, match):
    with pytest.raises(ValueError, match=match):
        pasquill_class(u, **kw)


@pytest.mark.parametrize("z0", [0.01, 0.1, 0.5])
def test_golder_class_centres(z0):
    for idx, (a, b) in enumerate(GOLDER_COEFFICIENTS):
        inv = a + b * np.log10(z0)
        L = np.inf if inv == 0 else 1.0 / inv
        assert int(pasquill_class_from_obukhov(L, z0)) == idx


def test_golder_limits_and_monotone():
    assert int(pasquill_class_from_obukhov(-2.0)) == 0  # strongly unstable: A
    assert int(pasquill_class_from_obukhov(2.0)) == 5  # strongly stable: F
    assert int(pasquill_class_from_obukhov(np.inf)) == 3
    assert int(pasquill_class_from_obukhov(-1e6)) == 3
    inv = np.linspace(-0.3, 0.3, 301)
    inv = inv[inv != 0]
    cls = np.asarray(jax.jit(pasquill_class_from_obukhov)(1.0 / inv, 0.1))
    assert np.all(np.diff(cls) >= 0) and cls[0] == 0 and cls[-1] == 5


def test_golder_bad_input():
    with pytest.raises(ValueError, match="obukhov_length"):
        pasquill_class_from_obukhov(np.nan)
    with pytest.raises(ValueError, match="obukhov_length"):
        pasquill_class_from_obukhov(0.0)
    with pytest.raises(ValueError, match="z0"):
        pasquill_class_from_obukhov(-50.0, 5.0)
