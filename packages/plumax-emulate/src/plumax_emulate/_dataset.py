"""Simulation datasets: prior draws pushed through a forward model, cached on disk.

A :class:`SimulationDataset` draws ``n`` parameter vectors from a prior and one met per
draw (or uses one fixed `MetField`), runs the forward model in ``jit`` + ``vmap``
batches, optionally sharded over local devices, and caches the results as NetCDF
shards.

Cache layout (``cache_dir/<dataset_id>/``)::

    manifest.json        identity (hashes, key, n, shard size) + one sha256 per shard;
                         rewritten atomically (temp file + os.replace) after each shard
    template.bin         the Observations of draw 0 (plumax_core.serialise)
    shard_00000.nc ...   theta (sample, param), values (sample, *dims), met_features

``dataset_id`` is derived from the identity: the forward model's `tree_hash`, the
prior's `tree_hash`, the met sampler's hash, the met-feature extractor's hash, the key,
``n``, the shard size and the dtype. A cache is reused only when all of them match.
A shard is used only if its file hashes to the sha256 recorded in the manifest; a
missing, truncated or edited shard is regenerated (with a `CorruptedShardWarning`), never
silently used. Because every draw is fixed by the key before simulation starts, an
interrupted run resumes where it stopped and produces the same data as an uninterrupted
one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from plumax_core import (
    AbstractForwardModel,
    AbstractPrior,
    MetField,
    Observations,
    deserialise,
    serialise,
    tree_hash,
)

from ._features import AbstractMetFeatures

_FORMAT = "plumax-emulate-dataset"
_FORMAT_VERSION = 1


class CorruptedShardWarning(UserWarning):
    """A cached shard failed its checksum (or is missing) and is being regenerated."""


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


def _hash_or_none(obj: Any) -> str | None:
    try:
        return tree_hash(obj)
    except TypeError:
        return None


def _key_data(key: PRNGKeyArray) -> list[int]:
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        data = jr.key_data(key)
    else:
        data = jnp.asarray(key)
        if data.dtype != jnp.uint32:
            raise TypeError(f"`key` must be a jax.random key, got dtype {data.dtype}")
    return [int(v) for v in np.asarray(data).ravel()]


def _simulate_one(forward, spec, met_source, features, theta, met_key):
    met = met_source if isinstance(met_source, MetField) else met_source(met_key)
    obs = forward(spec.from_unconstrained(theta), met)
    feats = jnp.zeros((0,), theta.dtype) if features is None else jnp.asarray(features(met), float)
    return obs.values, feats


@eqx.filter_jit
def _split_data(key, n: int):
    return jr.key_data(jr.split(key, n))


@eqx.filter_jit
def _draw(prior, key, n: int):
    params = prior.sample(key, n)
    return params, prior.param_spec.to_unconstrained(params)


@eqx.filter_jit
def _template(forward, theta, met):
    return forward(forward.param_spec.from_unconstrained(theta), met)


@eqx.filter_jit
def _simulate_batch(forward, met_source, features, theta, met_keys):
    spec = forward.param_spec

    def one(th, mk):
        return _simulate_one(forward, spec, met_source, features, th, mk)

    return jax.vmap(one)(theta, jr.wrap_key_data(met_keys))


class SimulationDataset:
    """``n`` simulations ``(theta_i, met_i) -> values_i`` of a forward model.

    Args:
        forward: the model to emulate (any `plumax_core.AbstractForwardModel`).
        prior: a `plumax_core.AbstractPrior` on ``forward.param_spec``; params are drawn
            with ``prior.sample`` and stored in the spec's *unconstrained* flat space.
        met_sampler: a fixed `MetField`, or a traceable callable ``key -> MetField``
            (vmapped over per-draw keys; an `equinox.Module` or a module-level function
            if the dataset is cached, so that it can be hashed).
        n: number of simulations, >= 1.
        key: PRNG key; the same key gives the same dataset.
        met_features: an `AbstractMetFeatures` whose features are stored per draw (for
            emulators taking met as input). Default: none.
        cache_dir: directory of the on-disk cache; ``None`` keeps everything in memory.
        shard_size: draws per cache shard (a shard is the unit of resumption).
        batch_size: draws per ``jit(vmap(forward))`` call; rounded up to a multiple of
            the number of devices.
        devices: devices to shard each batch over (`jax.sharding.NamedSharding` along
            the batch axis); default ``jax.local_devices()``. Every draw is computed
            with the same program whatever the device count, so results agree with one
            device (up to XLA's vectorisation, bitwise in our tests).
        progress: show a tqdm progress bar.

    Attributes:
        theta: ``(n, D)`` unconstrained params (numpy).
        values: ``(n, *S)`` simulated observation values (numpy).
        features: ``(n, F)`` met features (``F = 0`` without ``met_features``).
        template: the `Observations` of draw 0 (kind, units, dims, coords, sigma, mask).
        model_hash, prior_hash, met_hash: the identity hashes (`plumax_core.tree_hash`;
            None for an object that cannot be serialised, allowed only without a cache).
        hash: a sha256 of the identity and the data (the dataset's artifact hash).
        shards_loaded, shards_generated: cache statistics of this construction.
        path: the cache directory of this dataset, or None.

    Raises:
        TypeError: wrong argument types.
        ValueError: bad sizes, non-finite simulations, or a met sampler that cannot be
            hashed while ``cache_dir`` is set.
    """

    def __init__(
        self,
        forward: AbstractForwardModel,
        prior: AbstractPrior,
        met_sampler: MetField | Callable[[PRNGKeyArray], MetField],
        n: int,
        key: PRNGKeyArray,
        *,
        met_features: AbstractMetFeatures | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        shard_size: int = 1024,
        batch_size: int = 256,
        devices: Sequence[jax.Device] | None = None,
        progress: bool = True,
    ):
        if not isinstance(forward, AbstractForwardModel):
            raise TypeError(
                f"`forward` must be an AbstractForwardModel, got {type(forward).__name__}"
            )
        if not isinstance(prior, AbstractPrior):
            raise TypeError(f"`prior` must be an AbstractPrior, got {type(prior).__name__}")
        if prior.param_spec != forward.param_spec:
            raise ValueError("`prior.param_spec` differs from `forward.param_spec`")
        if not (isinstance(met_sampler, MetField) or callable(met_sampler)):
            raise TypeError("`met_sampler` must be a MetField or a callable key -> MetField")
        if met_features is not None and not isinstance(met_features, AbstractMetFeatures):
            raise TypeError("`met_features` must be an AbstractMetFeatures or None")
        for name, v in (("n", n), ("shard_size", shard_size), ("batch_size", batch_size)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"`{name}` must be a positive int, got {v!r}")
        self.forward = forward
        self.prior = prior
        self.param_spec = forward.param_spec
        self.met_sampler = met_sampler
        self.met_features = met_features
        self.n = int(n)
        self.shard_size = int(shard_size)
        self.devices = tuple(jax.local_devices() if devices is None else devices)
        if not self.devices:
            raise ValueError("`devices` must not be empty")
        nd = len(self.devices)
        self.batch_size = -(-int(batch_size) // nd) * nd
        self.progress = bool(progress)
        self.key_data = _key_data(key)

        k_params, k_met = jr.split(key)
        params, theta = _draw(prior, k_params, self.n)
        self.param_spec.check_in_support(params)
        theta = np.asarray(theta)
        if not np.all(np.isfinite(theta)):
            raise ValueError(
                "prior draws map to non-finite unconstrained values (a draw on a bound?)"
            )
        self._theta_all = theta
        self._met_keys = np.asarray(_split_data(k_met, self.n))

        self.model_hash = _hash_or_none(forward)
        self.prior_hash = _hash_or_none(prior)
        self.met_hash = _hash_or_none(met_sampler)
        self.features_hash = None if met_features is None else _hash_or_none(met_features)
        unhashable = [
            name
            for name, h, given in (
                ("forward", self.model_hash, True),
                ("prior", self.prior_hash, True),
                ("met_sampler", self.met_hash, True),
                ("met_features", self.features_hash, met_features is not None),
            )
            if given and h is None
        ]
        if cache_dir is not None and unhashable:
            raise ValueError(
                f"{unhashable} must be hashable by plumax_core.tree_hash to be cached (a "
                "MetField, an equinox Module of importable classes or a module-level "
                "function; a lambda, closure or locally defined class is not)"
            )
        self.identity = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "model_hash": self.model_hash,
            "model_id": forward.model_id,
            "prior_hash": self.prior_hash,
            "met_hash": self.met_hash,
            "features_hash": self.features_hash,
            "key": self.key_data,
            "n": self.n,
            "shard_size": self.shard_size,
            "dtype": str(theta.dtype),
        }
        ident = json.dumps(self.identity, sort_keys=True).encode()
        self.dataset_id = hashlib.sha256(ident).hexdigest()[:24]
        self.path = None if cache_dir is None else Path(cache_dir) / self.dataset_id
        self.shards_loaded = 0
        self.shards_generated = 0
        self._build()

    # ------------------------------------------------------------------ properties

    @property
    def n_shards(self) -> int:
        return -(-self.n // self.shard_size)

    @property
    def met(self) -> MetField | None:
        """The fixed met, or None when met is sampled per draw."""
        return self.met_sampler if isinstance(self.met_sampler, MetField) else None

    def met_at(self, i: int) -> MetField:
        """The met of draw ``i``."""
        if self.met is not None:
            return self.met
        return self.met_sampler(jr.wrap_key_data(jnp.asarray(self._met_keys[i])))

    def params_at(self, i: int) -> dict[str, jax.Array]:
        """The params dict (physical units) of draw ``i``."""
        return self.param_spec.from_unconstrained(jnp.asarray(self.theta[i]))

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return (
            f"SimulationDataset(n={self.n}, D={self.theta.shape[1]}, "
            f"output={self.values.shape[1:]}, id={self.dataset_id})"
        )

    # ------------------------------------------------------------------ generation

    def _simulate(self, start: int, stop: int, bar) -> tuple[np.ndarray, np.ndarray]:
        theta = self._theta_all[start:stop]
        keys = self._met_keys[start:stop]
        outs_v, outs_f = [], []
        bs = self.batch_size
        sharding = None
        if len(self.devices) > 1:
            mesh = jax.sharding.Mesh(np.array(self.devices), ("batch",))
            sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
        for b0 in range(0, len(theta), bs):
            th, ks = theta[b0 : b0 + bs], keys[b0 : b0 + bs]
            m = len(th)
            if m < bs:  # pad to a fixed batch (one compilation); padding is dropped
                th = np.concatenate([th, np.repeat(th[:1], bs - m, 0)])
                ks = np.concatenate([ks, np.repeat(ks[:1], bs - m, 0)])
            th, ks = jnp.asarray(th), jnp.asarray(ks)
            if sharding is not None:
                th, ks = jax.device_put(th, sharding), jax.device_put(ks, sharding)
            else:
                th, ks = jax.device_put(th, self.devices[0]), jax.device_put(ks, self.devices[0])
            v, f = _simulate_batch(self.forward, self.met_sampler, self.met_features, th, ks)
            outs_v.append(np.asarray(v)[:m])
            outs_f.append(np.asarray(f)[:m])
            if bar is not None:
                bar.update(m)
        values = np.concatenate(outs_v)
        if not np.all(np.isfinite(values)):
            bad = int(np.argmax(~np.all(np.isfinite(values.reshape(len(values), -1)), axis=1)))
            raise ValueError(
                f"the forward model returned non-finite values for draw {start + bad}; "
                "an emulator cannot learn them (mask-free finite outputs are required)"
            )
        return values, np.concatenate(outs_f)

    def _make_template(self) -> Observations:
        return _template(self.forward, jnp.asarray(self._theta_all[0]), self.met_at(0))

    def _build(self) -> None:
        from tqdm.auto import tqdm

        shards: list[tuple[np.ndarray, np.ndarray] | None] = [None] * self.n_shards
        manifest: dict[str, Any] | None = None
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            manifest = self._read_manifest()
        template = None
        if manifest is not None:
            template = self._load_template(manifest)
        if template is None:
            template = self._make_template()
            if self.path is not None:
                data = serialise(template)
                _atomic_write_bytes(self.path / "template.bin", data)
                manifest = self._fresh_manifest() if manifest is None else manifest
                manifest["template"] = hashlib.sha256(data).hexdigest()
                self._write_manifest(manifest)
        self.template = template
        if manifest is not None:
            for i in range(self.n_shards):
                shards[i] = self._load_shard(manifest, i)
        todo = [i for i, s in enumerate(shards) if s is None]
        self.shards_loaded = self.n_shards - len(todo)
        n_todo = sum(min(self.shard_size, self.n - i * self.shard_size) for i in todo)
        bar = None
        if todo:
            bar = tqdm(total=n_todo, unit="sim", desc="simulating", disable=not self.progress)
        try:
            for i in todo:
                start, stop = i * self.shard_size, min(self.n, (i + 1) * self.shard_size)
                values, feats = self._simulate(start, stop, bar)
                shards[i] = (values, feats)
                if self.path is not None:
                    self._write_shard(manifest, i, start, stop, values, feats)
                self.shards_generated += 1
        finally:
            if bar is not None:
                bar.close()
        self.theta = self._theta_all
        self.values = np.concatenate([s[0] for s in shards])
        self.features = np.concatenate([s[1] for s in shards])
        if self.values.shape[1:] != tuple(self.template.values.shape):
            raise ValueError(
                f"simulated values {self.values.shape[1:]} do not match the template "
                f"{tuple(self.template.values.shape)}"
            )
        h = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode())
        for arr in (self.theta, self.values, self.features):
            h.update(np.ascontiguousarray(arr).tobytes())
        self.hash = h.hexdigest()

    # ------------------------------------------------------------------ cache I/O

    def _fresh_manifest(self) -> dict[str, Any]:
        return {"identity": self.identity, "template": None, "shards": {}}

    def _read_manifest(self) -> dict[str, Any] | None:
        path = self.path / "manifest.json"
        if not path.exists():
            return None
        try:
            manifest = json.loads(path.read_text())
            ok = manifest.get("identity") == json.loads(json.dumps(self.identity))
        except (ValueError, AttributeError):
            ok, manifest = False, None
        if not ok:
            warnings.warn(
                f"cache manifest {path} is unreadable or belongs to another dataset; regenerating",
                CorruptedShardWarning,
                stacklevel=4,
            )
            return self._fresh_manifest()
        manifest.setdefault("shards", {})
        return manifest

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        _atomic_write_bytes(self.path / "manifest.json", data)

    def _load_template(self, manifest: dict[str, Any]) -> Observations | None:
        path = self.path / "template.bin"
        want = manifest.get("template")
        if want is None or not path.exists():
            return None
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != want:
            warnings.warn(
                f"{path} fails its checksum; regenerating", CorruptedShardWarning, stacklevel=4
            )
            return None
        return deserialise(data)

    def _shard_path(self, i: int) -> Path:
        return self.path / f"shard_{i:05d}.nc"

    def _load_shard(self, manifest: dict[str, Any], i: int):
        entry = manifest["shards"].get(str(i))
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
            feats = np.asarray(ds["met_features"].values)
            theta = np.asarray(ds["theta"].values)
        start, stop = i * self.shard_size, min(self.n, (i + 1) * self.shard_size)
        if not np.array_equal(theta, self._theta_all[start:stop]):
            warnings.warn(
                f"cache shard {path} holds other parameter draws; regenerating it",
                CorruptedShardWarning,
                stacklevel=4,
            )
            return None
        return values, feats

    def _write_shard(self, manifest, i, start, stop, values, feats) -> None:
        import xarray as xr

        t = self.template
        dims = tuple(f"obs_{d}" for d in t.dims)
        coords = {f"obs_{k}": (f"obs_{k}", np.asarray(v)) for k, v in t.coords.items()}
        ds = xr.Dataset(
            {
                "theta": xr.Variable(
                    ("sample", "param"),
                    self._theta_all[start:stop],
                    attrs={"long_name": "parameters in the prior's unconstrained space"},
                ),
                "values": xr.Variable(
                    ("sample", *dims),
                    values,
                    attrs={"units": t.units, "long_name": f"simulated {t.kind}"},
                ),
                "met_features": xr.Variable(
                    ("sample", "feature"), feats, attrs={"long_name": "met features"}
                ),
            },
            coords={
                "sample": ("sample", np.arange(start, stop)),
                "param": ("param", list(self.param_spec.flat_names)),
                **coords,
            },
            attrs={
                "Conventions": "CF-1.8",
                "title": "plumax-emulate simulation shard",
                "dataset_id": self.dataset_id,
                "shard": i,
                "model_hash": self.model_hash,
                "model_id": self.identity["model_id"],
                "prior_hash": self.prior_hash,
                "met_hash": self.met_hash or "",
                "key": json.dumps(self.key_data),
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
        manifest["shards"][str(i)] = {
            "file": path.name,
            "sha256": digest,
            "start": start,
            "stop": stop,
        }
        self._write_manifest(manifest)
