"""Deterministic serialisation and content hashing of pytrees.

A pytree (an `equinox.Module`, nested dicts/tuples/lists, numpy and JAX arrays, python
scalars, strings, ``None``, importable callables such as ``jax.nn.relu``) is split into

* its **array leaves** — every `numpy.ndarray` and `jax.Array` met anywhere in the object,
  JAX PRNG key arrays included — written as raw C-order bytes; and
* its **skeleton** — the object with each array replaced by a numbered placeholder,
  pickled with a fixed protocol.

Byte layout of the stream (all integers little-endian)::

    magic      b"PLUMAXTREE\\x00"           11 bytes
    version    uint16                        format version (currently 1)
    hlen       uint64                        length of the JSON header
    header     hlen bytes of canonical JSON  {"skeleton": [offset, length],
                                              "arrays": [{"kind", "dtype", "shape",
                                                          "offset", "nbytes", ...}],
                                              "data_length": N, ...}
    data       N bytes                       skeleton pickle, then each array's bytes
    digest     32 bytes                      sha256 of everything above

The stream carries no timestamps, paths or archive metadata, so the same object gives
the same bytes, and so the same `tree_hash`, in any process. `tree_hash(x)` is the hex
sha256 of `serialise(x)`.

!!! warning
    `deserialise` unpickles the skeleton, and unpickling can run arbitrary code. Only
    load streams (and open artifact registries) that you trust.

Known limits: JAX "weak types" are not recorded (a weakly typed array comes back strongly
typed with the same dtype); arrays come back on the default device, unsharded; structured
and object dtypes are refused; sets of strings pickle in hash-seed-dependent order, so a
skeleton holding a `set` is not guaranteed to hash the same in a new process.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import math
import pickle
import struct
import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["SerialisationError", "deserialise", "serialise", "tree_hash"]

_MAGIC = b"PLUMAXTREE\x00"
_VERSION = 1
_PICKLE_PROTOCOL = 4
_PREFIX = struct.Struct("<HQ")  # version, header length
_DIGEST_SIZE = 32
_MIN_SIZE = len(_MAGIC) + _PREFIX.size + _DIGEST_SIZE
_MAX_HEADER = 1 << 30


class SerialisationError(ValueError):
    """A byte stream is not a valid (complete, unedited) serialised pytree."""


# --------------------------------------------------------------------------- helpers


def _resolve_global(module: str, qualname: str) -> Any:
    """Import ``module`` and follow the dotted ``qualname`` inside it (unpickling hook)."""
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _lookup(module: str | None, qualname: str | None) -> Any:
    if not isinstance(module, str) or not isinstance(qualname, str) or "<locals>" in qualname:
        return None
    try:
        return _resolve_global(module, qualname)
    except Exception:
        return None


def _global_reference(obj: Any) -> tuple[str, str] | None:
    """Find an importable ``(module, name)`` that evaluates to exactly ``obj``, if any."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if _lookup(module, qualname) is obj:
        return module, qualname
    if isinstance(module, str):
        # A module-level lambda or wrapped function bound to some other global name.
        try:
            namespace = vars(importlib.import_module(module))
        except Exception:
            return None
        names = sorted(k for k, v in list(namespace.items()) if v is obj)
        if names:
            return module, names[0]
    return None


def _is_key_array(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _dtype_name(dtype: np.dtype) -> str:
    """A string from which `_dtype_from_name` rebuilds ``dtype`` exactly."""
    if dtype.fields is not None or dtype.subdtype is not None or dtype.hasobject:
        raise TypeError(f"cannot serialise arrays of structured or object dtype {dtype!r}")
    if dtype.kind in "biufcmMSU":
        return dtype.str
    # Extension float types (bfloat16, float8_*, int4, ...) registered by ml_dtypes.
    try:
        if jnp.dtype(dtype.name) == dtype:
            return "ext:" + dtype.name
    except TypeError:
        pass
    raise TypeError(f"cannot serialise arrays of dtype {dtype!r}")


def _dtype_from_name(name: str) -> np.dtype:
    if name.startswith("ext:"):
        return np.dtype(jnp.dtype(name[4:]))
    return np.dtype(name)


class _Pickler(pickle.Pickler):
    """Pickler that lifts arrays out of the stream and pickles callables by reference."""

    def __init__(self, file: io.BytesIO):
        super().__init__(file, protocol=_PICKLE_PROTOCOL)
        self.arrays: list[tuple[dict[str, Any], bytes]] = []
        self._seen: dict[int, tuple[int, Any]] = {}

    def persistent_id(self, obj: Any) -> int | None:  # noqa: D401 - pickle hook
        if not isinstance(obj, np.ndarray | jax.Array):
            return None
        if isinstance(obj, jax.core.Tracer):
            raise TypeError(
                "cannot serialise a traced JAX value; call serialise/tree_hash outside jit/vmap"
            )
        seen = self._seen.get(id(obj))
        if seen is not None and seen[1] is obj:
            return seen[0]
        entry: dict[str, Any]
        if _is_key_array(obj):
            data = np.asarray(jax.random.key_data(obj))
            entry = {"kind": "jax_key", "impl": str(jax.random.key_impl(obj))}
        elif isinstance(obj, jax.Array):
            data = np.asarray(obj)
            entry = {"kind": "jax"}
        else:
            data = obj
            entry = {"kind": "numpy"}
        entry["dtype"] = _dtype_name(data.dtype)
        entry["shape"] = [int(s) for s in data.shape]
        index = len(self.arrays)
        self.arrays.append((entry, np.ascontiguousarray(data).tobytes(order="C")))
        # Keep ``obj`` alive in the memo so its id cannot be reused during this dump.
        self._seen[id(obj)] = (index, obj)
        return index

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type):
            return NotImplemented
        if isinstance(obj, types.FunctionType) or (
            callable(obj) and hasattr(obj, "__qualname__") and hasattr(obj, "__module__")
        ):
            ref = _global_reference(obj)
            if ref is not None:
                if isinstance(obj, types.FunctionType | types.BuiltinFunctionType) and (
                    ref[1] == obj.__qualname__
                ):
                    return NotImplemented  # ordinary pickling by reference works
                return _resolve_global, ref
            if isinstance(obj, types.FunctionType):
                raise TypeError(
                    f"cannot serialise the function {obj.__qualname__!r}: only functions "
                    "importable from a module (no lambdas or closures) can be stored"
                )
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, arrays: list[Any]):
        super().__init__(file)
        self._arrays = arrays

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, int) or not 0 <= pid < len(self._arrays):
            raise SerialisationError(f"skeleton refers to unknown array #{pid!r}")
        return self._arrays[pid]


def _canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


# --------------------------------------------------------------------------- public API


def serialise(tree: Any) -> bytes:
    """Serialise a pytree to a deterministic byte stream.

    Args:
        tree: any picklable pytree; numpy and JAX arrays (PRNG key arrays included) may
            appear anywhere in it. Callables must be importable module globals
            (``jax.nn.relu``, a top-level function), not lambdas or closures.

    Returns:
        The byte stream described in this module's docstring; equal inputs built the same
        way give identical bytes in any process.

    Raises:
        TypeError: the object holds something that cannot be stored (a lambda, a traced
            value, an object-dtype array, an unpicklable object).
    """
    buffer = io.BytesIO()
    pickler = _Pickler(buffer)
    try:
        pickler.dump(tree)
    except TypeError:
        raise
    except (pickle.PicklingError, AttributeError) as err:
        raise TypeError(f"cannot serialise object of type {type(tree).__name__}: {err}") from err
    skeleton = buffer.getvalue()

    chunks = [skeleton]
    offset = len(skeleton)
    entries = []
    for entry, raw in pickler.arrays:
        entries.append({**entry, "offset": offset, "nbytes": len(raw)})
        chunks.append(raw)
        offset += len(raw)
    header = _canonical_json(
        {
            "format": "plumax-pytree",
            "pickle_protocol": _PICKLE_PROTOCOL,
            "skeleton": [0, len(skeleton)],
            "arrays": entries,
            "data_length": offset,
        }
    )
    body = b"".join([_MAGIC, _PREFIX.pack(_VERSION, len(header)), header, *chunks])
    return body + hashlib.sha256(body).digest()


def tree_hash(tree: Any) -> str:
    """Content hash of a pytree: the hex sha256 of `serialise(tree)` (64 characters)."""
    return hashlib.sha256(serialise(tree)).hexdigest()


def structural_hash(tree: Any) -> str:
    """A fingerprint of a pytree that needs no pickling (for provenance only).

    Hashes the pytree structure (``str`` of the treedef: class names and static
    fields) and every leaf (array dtype, shape and bytes; other leaves by ``repr``).
    Works for objects `serialise` refuses (a model class defined inside a function,
    a lambda in a static field), but unlike `tree_hash` it is not guaranteed to be
    stable across processes (reprs may contain memory addresses) and cannot be
    loaded back: never use it to address artifacts.
    """
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    digest = hashlib.sha256(str(treedef).encode())
    for leaf in leaves:
        if isinstance(leaf, jax.core.Tracer):
            raise TypeError("cannot fingerprint a traced value; call outside jit")
        if isinstance(leaf, (np.ndarray, jax.Array)) and not _is_key_array(leaf):
            arr = np.ascontiguousarray(np.asarray(leaf))
            digest.update(f"{arr.dtype.str}{arr.shape}".encode())
            digest.update(arr.tobytes())
        else:
            digest.update(repr(leaf).encode())
    return digest.hexdigest()


def _fail(msg: str) -> SerialisationError:
    return SerialisationError(f"invalid serialised pytree: {msg}")


def _parse_header(data: bytes) -> tuple[dict[str, Any], int]:
    if len(data) < _MIN_SIZE:
        raise _fail(f"stream is {len(data)} bytes, shorter than the minimum {_MIN_SIZE}")
    if not data.startswith(_MAGIC):
        raise _fail("bad magic bytes (not a plumax pytree stream)")
    version, hlen = _PREFIX.unpack_from(data, len(_MAGIC))
    if version != _VERSION:
        raise _fail(f"unsupported format version {version} (this reader knows {_VERSION})")
    start = len(_MAGIC) + _PREFIX.size
    if hlen > _MAX_HEADER or start + hlen + _DIGEST_SIZE > len(data):
        raise _fail(f"header length {hlen} runs past the end of a {len(data)}-byte stream")
    body, digest = data[:-_DIGEST_SIZE], data[-_DIGEST_SIZE:]
    if hashlib.sha256(body).digest() != digest:
        raise _fail("checksum mismatch: the stream is truncated or was edited")
    try:
        header = json.loads(data[start : start + hlen])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(f"header is not valid JSON ({err})") from err
    if not isinstance(header, dict) or header.get("format") != "plumax-pytree":
        raise _fail("header does not describe a plumax pytree")
    return header, start + hlen


def deserialise(data: bytes) -> Any:
    """Rebuild the pytree written by `serialise`.

    Arrays come back with the same dtype, shape and exact values; JAX arrays (and PRNG
    key arrays) come back as JAX arrays, numpy arrays as numpy arrays.

    A float64/int64 JAX array read back while 64-bit mode is off is truncated by JAX, as
    any `jnp.asarray` would be (numpy arrays always keep their dtype).

    Raises:
        SerialisationError: (a `ValueError`) the stream is truncated, edited, or not a
            plumax pytree stream.

    !!! warning
        This unpickles the skeleton; only call it on trusted data.
    """
    data = bytes(data)
    header, data_start = _parse_header(data)
    data_end = len(data) - _DIGEST_SIZE
    try:
        data_length = int(header["data_length"])
        entries = list(header["arrays"])
        sk_offset, sk_length = (int(v) for v in header["skeleton"])
    except (KeyError, TypeError, ValueError) as err:
        raise _fail(f"header is missing a field ({err})") from err
    if data_start + data_length != data_end:
        raise _fail(
            f"data section is {data_end - data_start} bytes but the header says {data_length}"
        )
    if sk_offset < 0 or sk_length < 0 or sk_offset + sk_length > data_length:
        raise _fail("skeleton lies outside the data section")
    payload = memoryview(data)[data_start:data_end]

    arrays: list[Any] = []
    for i, entry in enumerate(entries):
        try:
            dtype = _dtype_from_name(entry["dtype"])
            shape = tuple(int(s) for s in entry["shape"])
            offset, nbytes, kind = int(entry["offset"]), int(entry["nbytes"]), entry["kind"]
        except (KeyError, TypeError, ValueError) as err:
            raise _fail(f"array #{i} has a malformed description ({err})") from err
        expected = math.prod(shape) * dtype.itemsize
        if nbytes != expected or offset < 0 or offset + nbytes > data_length:
            raise _fail(
                f"array #{i} ({dtype}, shape {shape}) claims {nbytes} bytes at offset {offset}; "
                f"expected {expected} bytes inside a {data_length}-byte data section"
            )
        arr = np.frombuffer(payload[offset : offset + nbytes], dtype=dtype).reshape(shape).copy()
        if kind == "numpy":
            arrays.append(arr)
        elif kind == "jax":
            arrays.append(jnp.asarray(arr, dtype=arr.dtype))
        elif kind == "jax_key":
            arrays.append(jax.random.wrap_key_data(jnp.asarray(arr), impl=entry["impl"]))
        else:
            raise _fail(f"array #{i} has unknown kind {kind!r}")

    skeleton = bytes(payload[sk_offset : sk_offset + sk_length])
    try:
        return _Unpickler(io.BytesIO(skeleton), arrays).load()
    except SerialisationError:
        raise
    except Exception as err:  # unpickling errors come in many types
        raise _fail(f"skeleton could not be unpickled ({type(err).__name__}: {err})") from err
