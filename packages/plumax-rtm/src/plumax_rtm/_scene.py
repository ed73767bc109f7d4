"""Scenes as xarray ``(y, x, band)``; chunk-wise matched filtering with dask.

Two passes over the chunks: (1) background mean and covariance from chunk-wise sums
``Σ x`` and ``Σ x xᵀ`` (dask reductions, memory ``O(m²)`` per chunk); (2) the filter
applied block by block with ``xarray.map_blocks``. A NumPy-backed array runs the same
code in memory.
"""

import numpy as np


def scene_matched_filter(radiance, target, *, ridge: float = 1e-6):
    """Classic matched filter on an ``xarray.DataArray`` with dims ``(y, x, band)``.

    Works on dask-backed (chunked in y/x, one chunk in band) or in-memory arrays; returns
    a lazy (or eager) ``DataArray`` ``(y, x)`` of enhancement in ppm·m with CF attributes;
    coordinates on ``(y, x)`` other than ``y``/``x`` (2-D lat/lon) are carried over.
    Pixels with non-finite radiance are NaN; the count is in ``attrs['n_masked']``.
    """
    import xarray as xr

    if not isinstance(radiance, xr.DataArray):
        raise TypeError("`radiance` must be an xarray.DataArray with dims (y, x, band)")
    if tuple(radiance.dims) != ("y", "x", "band"):
        raise ValueError(f"`radiance` dims must be ('y', 'x', 'band'), got {radiance.dims}")
    k = np.asarray(target, np.float64)
    m = radiance.sizes["band"]
    if k.shape != (m,):
        raise ValueError(f"`target` has {k.size} bands but `radiance` has {m}")
    if "band" in radiance.coords and np.any(np.diff(radiance["band"].values) <= 0):
        raise ValueError("`radiance` band coordinate must be strictly ascending")
    if radiance.chunks is not None and len(radiance.chunks[2]) != 1:
        radiance = radiance.chunk({"band": -1})
    # non-index coordinates (2-D lat/lon, a scalar time of a geolocated grid) are set
    # aside for the block-wise pass and put back on the (y, x) result
    carried = {
        k: c for k, c in radiance.coords.items() if k not in radiance.dims and "band" not in c.dims
    }
    radiance = radiance.reset_coords(drop=True)
    x = radiance.astype(np.float64)
    valid = np.isfinite(x).all("band")
    xf = x.where(valid, 0.0)
    n = valid.sum()
    s1 = xf.sum(("y", "x"))
    data = xf.data.reshape(-1, m)
    s2 = data.T @ data
    if hasattr(s2, "compute"):
        import dask

        n, s1, s2 = dask.compute(n, s1, s2)
    n = float(n)
    mu = np.asarray(s1) / n
    cov = (np.asarray(s2) - n * np.outer(mu, mu)) / (n - 1)
    cov += ridge * np.trace(cov) / m * np.eye(m)
    t = mu * k
    ct = np.linalg.solve(cov, t)
    norm = float(t @ ct)

    def block(b):
        arr = b.values.astype(np.float64)
        ok = np.isfinite(arr).all(-1)
        a = np.where(ok, (np.nan_to_num(arr) - mu) @ ct / norm, np.nan)
        return xr.DataArray(
            a.astype(np.float32),
            dims=("y", "x"),
            coords={d: b[d] for d in ("y", "x") if d in b.coords},
        )

    template = xr.DataArray(np.empty((0, 0), np.float32), dims=("y", "x"))
    if radiance.chunks is not None:
        template = radiance.isel(band=0, drop=True).astype(np.float32)
        out = xr.map_blocks(block, radiance, template=template)
    else:
        out = block(radiance)
    out = out.assign_coords(carried)
    n_masked = int(valid.size - n)
    out.attrs.update(
        {
            "units": "ppm m",
            "long_name": "methane column enhancement (matched filter)",
            "n_masked": n_masked,
            "uncertainty_ppm_m": 1.0 / np.sqrt(norm),
        }
    )
    return out.rename("enhancement")
