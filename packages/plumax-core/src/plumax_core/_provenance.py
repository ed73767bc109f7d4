"""Provenance: where a posterior came from, in a fixed, validated schema.

Every :class:`~plumax_core.Posterior` carries a :class:`Provenance`, an immutable,
hashable, JSON-friendly mapping with at least the keys in
:data:`REQUIRED_PROVENANCE_KEYS`:

=====================  ===========================================================
``forward_model_id``   ``"module.Class"`` of the forward model (or ``"none"``)
``forward_model_hash`` content hash of the forward-model pytree (sha256 hex)
``obs_ops_used``       identifiers of the observation operators applied
``n_iter``             iterations (optimiser) or draws (sampler) used
``J_star``             cost function at the solution (None for samplers)
``converged``          whether the method reported convergence
``model_hash``         content hash of the inference configuration (the analysis)
``gaussx_op_hash``     content hash of the prior/error covariance operators (B, R)
``met_source``         ``MetField.source`` of the met used
``package_versions``   installed versions of jax and the plumax packages
=====================  ===========================================================
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

REQUIRED_PROVENANCE_KEYS: tuple[str, ...] = (
    "forward_model_id",
    "forward_model_hash",
    "obs_ops_used",
    "n_iter",
    "J_star",
    "converged",
    "model_hash",
    "gaussx_op_hash",
    "met_source",
    "package_versions",
)

_PACKAGES = (
    "plumax-core",
    "plumax-transport",
    "plumax-rtm",
    "vardax-lite",
    "plumax-emulate",
    "plumax-amortize",
    "plumax-pod",
    "plumax",
    "jax",
    "jaxlib",
    "equinox",
    "lineax",
)


def _freeze(value: Any, key: str) -> Any:
    """Convert to an immutable JSON-like value (tuples for lists, Provenance for dicts)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, Mapping):
        return _FrozenDict({str(k): _freeze(v, f"{key}.{k}") for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v, key) for v in value)
    arr = np.asarray(value) if hasattr(value, "__array__") else None
    if arr is not None and arr.dtype.kind in "biuf":
        if arr.ndim == 0:
            return _freeze(arr.item(), key)
        return tuple(_freeze(v, key) for v in arr.tolist())
    raise TypeError(
        f"provenance value for {key!r} must be JSON-like (str, number, bool, None, list, "
        f"dict), got {type(value).__name__}; values computed inside jit must be made "
        "concrete before building provenance"
    )


def _thaw(value: Any) -> Any:
    if isinstance(value, _FrozenDict):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # "inf", "-inf", "nan": JSON has no literal for these
    return value


class _FrozenDict(Mapping[str, Any]):
    """An immutable, hashable dict (insertion order kept; equality ignores order)."""

    __slots__ = ("_d", "_hash")

    def __init__(self, data: Mapping[str, Any]):
        self._d = dict(data)
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset((k, _hashable(v)) for k, v in self._d.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._d) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._d!r})"


def _hashable(v: Any) -> Any:
    return ("nan",) if isinstance(v, float) and math.isnan(v) else v


class Provenance(_FrozenDict):
    """Validated, immutable provenance record (see the module docstring for the schema).

    Construct from any mapping containing the required keys; extra keys are kept.

    Raises:
        ValueError: if a required key is missing (the message lists which).
        TypeError: if a value is not JSON-like.
    """

    def __init__(self, data: Mapping[str, Any]):
        if isinstance(data, Provenance):
            super().__init__(data._d)
            return
        if not isinstance(data, Mapping):
            raise TypeError(f"`provenance` must be a mapping, got {type(data).__name__}")
        missing = [k for k in REQUIRED_PROVENANCE_KEYS if k not in data]
        if missing:
            raise ValueError(
                f"`provenance` is missing mandatory key(s) {missing}; build it with "
                "plumax_core.make_provenance(...)"
            )
        super().__init__({str(k): _freeze(v, str(k)) for k, v in data.items()})

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict."""
        return _thaw(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@functools.cache
def package_versions() -> dict[str, str]:
    """Installed versions of jax, equinox, lineax and every plumax package present."""
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _hash_or_none(obj: Any) -> str | None:
    """Content hash (`tree_hash`); objects that cannot be serialised (e.g. a model class
    defined inside a function) get a ``"structural:"``-prefixed fingerprint instead."""
    if obj is None:
        return None
    from ._serialise import structural_hash, tree_hash

    try:
        return tree_hash(obj)
    except TypeError:
        return "structural:" + structural_hash(obj)


def make_provenance(
    *,
    forward_model: Any = None,
    obs_ops_used: Sequence[str] = (),
    n_iter: int = 0,
    J_star: float | None = None,
    converged: bool | None = None,
    analysis: Any = None,
    B: Any = None,
    R: Any = None,
    met: Any = None,
    **extra: Any,
) -> Provenance:
    """Build a complete :class:`Provenance`, hashing what it is given.

    Args:
        forward_model: the model inverted (its id and content hash are recorded).
        obs_ops_used: identifiers of observation operators applied.
        n_iter: iterations / draws.
        J_star: cost at the solution.
        converged: solver convergence flag.
        analysis: the inference configuration object (hashed into ``model_hash``).
        B, R: prior and observation-error covariance operators (hashed together).
        met: the :class:`~plumax_core.MetField` used (its ``source`` is recorded).
        **extra: any additional JSON-like entries (e.g. ``method="laplace"``).
    """
    ops = (B, R) if (B is not None or R is not None) else None
    data = {
        "forward_model_id": getattr(forward_model, "model_id", None)
        if forward_model is not None
        else "none",
        "forward_model_hash": _hash_or_none(forward_model),
        "obs_ops_used": tuple(obs_ops_used),
        "n_iter": int(n_iter),
        "J_star": None if J_star is None else float(J_star),
        "converged": None if converged is None else bool(converged),
        "model_hash": _hash_or_none(analysis),
        "gaussx_op_hash": _hash_or_none(ops),
        "met_source": getattr(met, "source", None) if met is not None else None,
        "package_versions": package_versions(),
    }
    if forward_model is not None and data["forward_model_id"] is None:
        cls = type(forward_model)
        data["forward_model_id"] = f"{cls.__module__}.{cls.__qualname__}"
    overlap = set(extra) & set(data)
    if overlap:
        raise ValueError(f"extra provenance keys clash with the schema: {sorted(overlap)}")
    data.update(extra)
    return Provenance(data)
