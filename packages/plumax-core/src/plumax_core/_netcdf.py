"""Reading a NetCDF file with ``netCDF4`` directly, safely beside xarray and dask.

HDF5 is not thread-safe. xarray serialises its own netCDF4/HDF5 calls with a lock, and
dask may run xarray reads in worker threads at any time; a reader that calls
``netCDF4.Dataset`` itself must hold the same lock so that its HDF5 calls never overlap
theirs. (A related hazard, seen in the tests of the EMIT reader: an xarray dataset of a
group left to the garbage collector, and so closed at an arbitrary later moment while
other handles on the files were open, crashed HDF5. Close group datasets explicitly.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["open_netcdf"]


@contextlib.contextmanager
def open_netcdf(path: Any) -> Iterator[Any]:
    """``netCDF4.Dataset(path, "r")`` under xarray's netCDF-C/HDF5 lock, closed on exit.

    Keep the body short and free of dask computations of xarray-backed arrays: the lock
    is not re-entrant, and such a computation would wait for it.
    """
    import netCDF4
    from xarray.backends.locks import HDF5_LOCK, NETCDFC_LOCK, combine_locks

    with combine_locks([NETCDFC_LOCK, HDF5_LOCK]):
        with netCDF4.Dataset(path, "r") as nc:
            yield nc
