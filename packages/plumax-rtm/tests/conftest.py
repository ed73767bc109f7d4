"""Fixtures for plumax-rtm tests (the root conftest provides getkey, x64, shared_data)."""

import contextlib
import io
import shutil

import pytest


@pytest.fixture(scope="module")
def hapi_mod():
    """HAPI (a test-only peer), imported quietly; skips when absent."""
    hapi = pytest.importorskip("hapi")
    return hapi


def hapi_db(hapi, folder):
    with contextlib.redirect_stdout(io.StringIO()):
        hapi.db_begin(str(folder))


def hapi_xsec(hapi, table, grid, p_atm, T, **kw):
    with contextlib.redirect_stdout(io.StringIO()):
        return hapi.absorptionCoefficient_Voigt(
            SourceTables=table,
            WavenumberGrid=grid,
            Environment={"p": p_atm, "T": T},
            HITRAN_units=True,
            **kw,
        )


@pytest.fixture
def shared_hitran(shared_data, tmp_path):
    """A writable copy of the shared HITRAN CH4 table."""
    src = shared_data / "hitran"
    if not (src / "CH4.data").is_file():
        pytest.skip("shared HITRAN CH4 table absent")
    for f in ("CH4.data", "CH4.header"):
        shutil.copy(src / f, tmp_path / f)
    return tmp_path
