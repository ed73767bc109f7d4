"""The on-disk cache of a simulation bank: checksummed NetCDF shards, resumable.

Layout (``cache_dir/<bank_id>/``)::

    manifest.json        identity (hashes, key, n, shard size) + one sha256 per shard;
                         rewritten atomically (temp file + os.replace) after each shard
    template.bin         the Observations of draw 0 (plumax_core.serialise)
    shard_00000.nc ...   theta (sample, param), values and mask (sample, *dims),
                         met_features (sample, feature); CF-1.8 attributes

``bank_id`` is derived from the identity (:func:`plumax_core.simulate_bank` fills it:
the forward model's, prior's, proposal's, met's, feature extractor's and noise model's
`tree_hash`, the key, ``n``, the shard size and the dtype), so a cache is reused only
when all of them match. A shard is used only if its file hashes to the sha256 recorded
in the manifest and holds the parameter draws the key implies; a missing, truncated or
edited shard is regenerated (with a :class:`CorruptedShardWarning`), never silently
used. Because every draw is fixed by the key before simulation starts, an interrupted
run resumes where it stopped and produces the same bank as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ._observations import Observations
from ._serialise import deserialise, serialise

FORMAT = "plumax-core-bank"
FORMAT_VERSION = 1


class CorruptedShardWarning(UserWarning):
    """A cached shard (or the manifest or template) failed its checksum or is missing,
    and is being regenerated."""


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Shard:
    """What one shard holds: ``values``, ``mask`` and ``features`` of draws
    ``start:stop`` (numpy arrays)."""

    def __init__(self, values: np.ndarray, mask: np.ndarray, features: np.ndarray):
        self.values, self.mask, self.features = values, mask, features


class BankCache:
    """The cache folder of one bank identity.

    Args:
        root: the user's ``cache_dir``.
        identity: a JSON-serialisable dict naming everything the bank depends on.
        theta: ``(n, D)`` the unconstrained draws the key implies (checked per shard).
        shard_size: draws per shard.
        param_names: flat parameter names (the shards' ``param`` coordinate).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        identity: dict[str, Any],
        theta: np.ndarray,
        shard_size: int,
        param_names: tuple[str, ...],
    ):
        self.identity = json.loads(json.dumps(identity, sort_keys=True))
        ident = json.dumps(self.identity, sort_keys=True).encode()
        self.bank_id = hashlib.sha256(ident).hexdigest()[:24]
        self.path = Path(root) / self.bank_id
        self.theta = theta
        self.shard_size = shard_size
        self.param_names = param_names
        self.path.mkdir(parents=True, exist_ok=True)
        self.manifest = self._read_manifest()

    # ------------------------------------------------------------------ manifest

    def _fresh_manifest(self) -> dict[str, Any]:
        return {"identity": self.identity, "template": None, "shards": {}}

    def _read_manifest(self) -> dict[str, Any]:
        path = self.path / "manifest.json"
        if not path.exists():
            return self._fresh_manifest()
        try:
            manifest = json.loads(path.read_text())
            ok = manifest.get("identity") == self.identity
        except (ValueError, AttributeError):
            ok, manifest = False, None
        if not ok:
            warnings.warn(
                f"cache manifest {path} is unreadable or belongs to another bank; regenerating",
                CorruptedShardWarning,
                stacklevel=4,
            )
            return self._fresh_manifest()
        manifest.setdefault("shards", {})
        return manifest

    def _write_manifest(self) -> None:
        data = json.dumps(self.manifest, indent=1, sort_keys=True).encode()
        _atomic_write_bytes(self.path / "manifest.json", data)

    # ------------------------------------------------------------------ template

    def load_template(self) -> Observations | None:
        """The cached template, or None (absent, or failing its checksum: warned)."""
        path = self.path / "template.bin"
        want = self.manifest.get("template")
        if want is None or not path.exists():
            return None
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != want:
            warnings.warn(
                f"{path} fails its checksum; regenerating", CorruptedShardWarning, stacklevel=4
            )
            return None
        return deserialise(data)

    def write_template(self, template: Observations) -> None:
        data = serialise(template)
        _atomic_write_bytes(self.path / "template.bin", data)
        self.manifest["template"] = hashlib.sha256(data).hexdigest()
        self._write_manifest()

    # ------------------------------------------------------------------ shards

    def _shard_path(self, i: int) -> Path:
        return self.path / f"shard_{i:05d}.nc"

    def _bounds(self, i: int) -> tuple[int, int]:
        n = self.theta.shape[0]
        return i * self.shard_size, min(n, (i + 1) * self.shard_size)

    def load_shard(self, i: int) -> Shard | None:
        """Shard ``i`` if it is recorded, intact and holds the expected draws; else None
        (a damaged one is warned about)."""
        entry = self.manifest["shards"].get(str(i))
        path = self._shard_path(i)
        if entry is None:
            return None  # never finished (e.g. interrupted): generate it
        if not path.exists() or _sha256_file(path) != entry["sha256"]:
            warnings.warn(
                f"cache shard {path} is missing or fails its sha256 check; regenerating it",
                CorruptedShardWarning,
                stacklevel=4,
            )
            return None
        import xarray as xr

        with xr.open_dataset(path, engine="netcdf4") as ds:
            values = np.asarray(ds["values"].values)
            mask = np.asarray(ds["mask"].values).astype(bool)
            feats = np.asarray(ds["met_features"].values)
            theta = np.asarray(ds["theta"].values)
        start, stop = self._bounds(i)
        if not np.array_equal(theta, self.theta[start:stop]):
            warnings.warn(
                f"cache shard {path} holds other parameter draws; regenerating it",
                CorruptedShardWarning,
                stacklevel=4,
            )
            return None
        return Shard(values, mask, feats)

    def write_shard(self, i: int, shard: Shard, template: Observations) -> None:
        """Write shard ``i`` (temp file + rename), then record its sha256."""
        import xarray as xr

        start, stop = self._bounds(i)
        t = template
        obs_dims = tuple(f"obs_{d}" for d in t.dims)
        repeat = ("repeat",) if shard.values.ndim == len(obs_dims) + 2 else ()
        dims = ("sample", *repeat, *obs_dims)
        coords = {f"obs_{k}": (f"obs_{k}", np.asarray(v)) for k, v in t.coords.items()}
        ident = self.identity
        ds = xr.Dataset(
            {
                "theta": xr.Variable(
                    ("sample", "param"),
                    self.theta[start:stop],
                    attrs={"long_name": "parameters in the prior's unconstrained space"},
                ),
                "values": xr.Variable(
                    dims, shard.values, attrs={"units": t.units, "long_name": f"simulated {t.kind}"}
                ),
                "mask": xr.Variable(
                    dims,
                    shard.mask.astype(np.int8),
                    attrs={
                        "long_name": "validity of the simulated values",
                        "flag_values": np.array([0, 1], np.int8),
                        "flag_meanings": "invalid valid",
                    },
                ),
                "met_features": xr.Variable(
                    ("sample", "feature"), shard.features, attrs={"long_name": "met features"}
                ),
            },
            coords={
                "sample": ("sample", np.arange(start, stop)),
                "param": ("param", list(self.param_names)),
                **coords,
            },
            attrs={
                "Conventions": "CF-1.8",
                "title": "plumax simulation bank shard",
                "bank_id": self.bank_id,
                "shard": i,
                "simulator_hash": ident["simulator_hash"],
                "model_id": ident["model_id"],
                "prior_hash": ident["prior_hash"],
                "met_hash": ident["met_hash"],
                "noise_hash": ident["noise_hash"] or "",
                "key": json.dumps(ident["key"]),
                "kind": t.kind,
            },
        )
        path = self._shard_path(i)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".nc", dir=self.path)
        os.close(fd)
        try:
            ds.to_netcdf(tmp, engine="netcdf4")
            digest = _sha256_file(Path(tmp))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.manifest["shards"][str(i)] = {
            "file": path.name,
            "sha256": digest,
            "start": start,
            "stop": stop,
        }
        self._write_manifest()
