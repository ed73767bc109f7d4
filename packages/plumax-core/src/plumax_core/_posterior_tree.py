"""A :class:`~plumax_core.Posterior` as an ``xarray.DataTree`` (NetCDF groups).

The layout follows ArviZ's ``InferenceData`` (ArviZ >= 1.0 holds it as an
``xarray.DataTree``; the group and dimension names are those of the ArviZ schema,
https://python.arviz.org/en/stable/schema/schema.html): draws go in the group
``posterior`` with dims ``(chain, draw)`` and one variable per parameter *in physical
units* (its ``units`` attribute from the :class:`~plumax_core.ParamSpec`), so
``arviz.from_netcdf`` / ``xarray.open_datatree`` read the file as they read any
sampler's output. A posterior without draws (a Laplace approximation) has no
``posterior`` group: it has the group ``gaussian`` instead.

Groups:

* ``/`` attributes: ``schema`` (``"plumax/posterior/1"``), ``provenance`` and
  ``param_spec`` (JSON), ``dtype``;
* ``unconstrained``: ``mean`` ``(param,)`` and, when present, ``cov``
  ``(param, param_)`` and ``samples`` ``(chain, draw, param)``: the exact flat state of
  the Posterior in the unconstrained space (what :func:`posterior_from_datatree`
  reads back: the values round-trip exactly; a covariance comes back as a dense matrix);
* ``posterior`` (with draws): physical-unit draws, ``(chain, draw[, {name}_dim_k...])``;
* ``gaussian`` (without draws): per-parameter ``median``, ``lower_5``/``upper_95``
  quantiles of the Gaussian in the unconstrained space mapped to physical units.
"""

from __future__ import annotations

import json
from typing import Any

import jax.numpy as jnp
import numpy as np

from ._params import ParamSpec
from ._posterior import Posterior

__all__ = ["POSTERIOR_SCHEMA", "posterior_from_datatree", "posterior_to_datatree"]

#: ``schema`` attribute of the root group.
POSTERIOR_SCHEMA = "plumax/posterior/1"


def _physical(spec: ParamSpec, flat: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in spec.from_unconstrained(jnp.asarray(flat)).items()}


def posterior_to_datatree(posterior: Posterior):
    """The groups of the module docstring, as an ``xarray.DataTree``.

    Raises:
        ValueError: a posterior holding tracers (build it outside ``jax.jit``).
    """
    import xarray as xr

    d = posterior.to_dict()  # checks concreteness; the JSON forms of spec and provenance
    names = list(posterior.names)
    dim = len(names)
    unc: dict[str, Any] = {
        "mean": (("param",), np.asarray(posterior.mean), {"long_name": "posterior mean"})
    }
    if posterior.cov is not None:
        unc["cov"] = (
            ("param", "param_"),
            np.asarray(posterior.cov.as_matrix()),
            {"long_name": "posterior covariance"},
        )
    if posterior.samples is not None:
        unc["samples"] = (("chain", "draw", "param"), np.asarray(posterior.samples))
    groups = {
        "unconstrained": xr.Dataset(
            unc,
            coords={"param": names, "param_": names}
            if posterior.cov is not None
            else {"param": names},
            attrs={"description": "flat parameters in the unconstrained space of param_spec"},
        )
    }
    spec = posterior.param_spec
    if spec is not None and posterior.samples is not None:
        b, m = posterior.samples.shape[:2]
        phys = _physical(spec, np.asarray(posterior.samples).reshape(b * m, dim))
        data = {}
        for p in spec.params:
            arr = phys[p.name].reshape((b, m, *p.shape))
            dims = ("chain", "draw", *(f"{p.name}_dim_{k}" for k in range(len(p.shape))))
            data[p.name] = (dims, arr, {"units": p.units, "long_name": p.description or p.name})
        groups["posterior"] = xr.Dataset(data, coords={"chain": np.arange(b), "draw": np.arange(m)})
    elif spec is not None:
        ci = posterior.credible_interval(0.9)
        med = spec.unflatten(spec.forward_transform(posterior.mean)[0])
        data = {}
        for p in spec.params:
            dims = tuple(f"{p.name}_dim_{k}" for k in range(len(p.shape)))
            for key, val in (
                ("median", med[p.name]),
                ("lower_5", ci[p.name][0]),
                ("upper_95", ci[p.name][1]),
            ):
                data[f"{p.name}_{key}"] = (dims, np.asarray(val), {"units": p.units})
        groups["gaussian"] = xr.Dataset(
            data,
            attrs={"description": "Gaussian (Laplace) posterior in the unconstrained space"},
        )
    root = xr.Dataset(
        attrs={
            "schema": POSTERIOR_SCHEMA,
            "dtype": d["dtype"],
            "provenance": json.dumps(d["provenance"]),
            "param_spec": json.dumps(d["param_spec"]),
        }
    )
    return xr.DataTree.from_dict({"/": root, **{f"/{k}": v for k, v in groups.items()}})


def posterior_from_datatree(tree) -> Posterior:
    """The :class:`Posterior` of :func:`posterior_to_datatree` (values exact; the
    covariance comes back as a dense matrix operator).

    Raises:
        ValueError: a tree without the ``schema`` attribute or the ``unconstrained``
            group.
    """
    attrs = tree.attrs
    if attrs.get("schema") != POSTERIOR_SCHEMA:
        raise ValueError(
            f"not a plumax posterior file (schema {attrs.get('schema')!r}, "
            f"expected {POSTERIOR_SCHEMA!r})"
        )
    if "unconstrained" not in tree.children:
        raise ValueError("posterior file has no 'unconstrained' group")
    unc = tree["unconstrained"].to_dataset()
    d: dict[str, Any] = {
        "dtype": attrs.get("dtype", "float64"),
        "mean": unc["mean"].values,
        "cov": None if "cov" not in unc else {"type": "dense", "matrix": unc["cov"].values},
        "samples": None if "samples" not in unc else unc["samples"].values,
        "provenance": json.loads(attrs["provenance"]),
        "param_spec": json.loads(attrs["param_spec"]),
    }
    return Posterior.from_dict(d)
