"""Shared pytest fixtures for every plumax package and the integration tests.

* ``getkey`` — a fresh, deterministic ``jax.random`` key on each call (equinox style).
* ``x64`` — run one test with 64-bit floats enabled, restoring the default afterwards.
* ``shared_data`` — the ``../shared/data`` folder beside the checkout, or a skip with a
  clear reason when it is absent (a user's clone has no ``../shared``).
"""

from __future__ import annotations

import pathlib

import jax
import jax.random as jr
import pytest

_ROOT = pathlib.Path(__file__).resolve().parent


@pytest.fixture
def getkey():
    """Return a function producing a new key each call, from a fixed seed per test."""
    state = {"key": jr.key(0)}

    def _getkey():
        state["key"], sub = jr.split(state["key"])
        return sub

    return _getkey


@pytest.fixture
def x64():
    """Enable float64 for the duration of one test."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    path = _ROOT.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip("../shared/data is absent (only the project checkout has it)")
    return path
