"""Deterministic pytree serialisation and content hashing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import equinox as eqx
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from plumax_core._serialise import SerialisationError, deserialise, serialise, tree_hash


def _assert_tree_identical(a, b):
    """Same treedef, same leaf types and dtypes, bit-for-bit equal arrays."""
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        assert type(x) is type(y) or (isinstance(x, jax.Array) and isinstance(y, jax.Array))
        if isinstance(x, np.ndarray | jax.Array):
            if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
                assert x.dtype == y.dtype
                x, y = jax.random.key_data(x), jax.random.key_data(y)
            assert isinstance(y, jax.Array) == isinstance(x, jax.Array)
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        else:
            assert x == y


def _mixed_tree():
    return {
        "f32": np.linspace(0, 1, 7, dtype=np.float32),
        "f64": np.array([[1.5, -2.25], [np.inf, np.nan]], dtype=np.float64),
        "i8": np.arange(-4, 4, dtype=np.int8),
        "u64": np.array([2**63 + 5], dtype=np.uint64),
        "bool": np.array([True, False, True]),
        "c64": np.array([1 + 2j], dtype=np.complex64),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "scalar0d": np.array(3.0),
        "jax_f": jnp.arange(6.0).reshape(2, 3),
        "jax_i": jnp.array([1, 2, 3], dtype=jnp.int32),
        "jax_b": jnp.array([True, False]),
        "bf16": jnp.array([1.0, 2.5], dtype=jnp.bfloat16),
        "key": jax.random.key(7),
        "raw_key": jax.random.PRNGKey(3),
        "nested": ({"a": 1, "b": 2.5, "c": "text"}, [None, True, (1, 2)]),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    }


def test_round_trip_mixed_tree():
    tree = _mixed_tree()
    back = deserialise(serialise(tree))
    _assert_tree_identical(tree, back)
    assert isinstance(back["key"], jax.Array)
    assert jax.dtypes.issubdtype(back["key"].dtype, jax.dtypes.prng_key)
    # A restored key draws the same numbers.
    np.testing.assert_array_equal(
        jax.random.normal(tree["key"], (3,)), jax.random.normal(back["key"], (3,))
    )
    assert isinstance(back["f32"], np.ndarray) and isinstance(back["jax_f"], jax.Array)


def test_round_trip_mlp(getkey):
    mlp = eqx.nn.MLP(3, 2, width_size=8, depth=2, activation=jax.nn.tanh, key=getkey())
    back = deserialise(serialise(mlp))
    assert isinstance(back, eqx.nn.MLP)
    _assert_tree_identical(mlp, back)
    x = jnp.linspace(-1, 1, 3)
    np.testing.assert_array_equal(mlp(x), back(x))
    assert tree_hash(back) == tree_hash(mlp)


def test_float64_round_trip(x64):
    tree = {"a": jnp.array([1.0, 1.0 + 2**-40], dtype=jnp.float64)}
    back = deserialise(serialise(tree))
    assert back["a"].dtype == jnp.float64
    np.testing.assert_array_equal(back["a"], tree["a"])


def test_hash_is_sha256_of_bytes_and_repeatable(getkey):
    tree = {"w": jax.random.normal(getkey(), (4, 4)), "name": "x"}
    data = serialise(tree)
    assert tree_hash(tree) == hashlib.sha256(data).hexdigest()
    assert serialise(tree) == data
    assert len(tree_hash(tree)) == 64


def test_hash_sensitive_to_content_dtype_and_structure():
    base = {"a": np.array([1.0, 2.0], dtype=np.float32)}
    hashes = {
        tree_hash(base),
        tree_hash({"a": np.array([1.0, 2.5], dtype=np.float32)}),
        tree_hash({"a": np.array([1.0, 2.0], dtype=np.float64)}),
        tree_hash({"a": np.array([[1.0, 2.0]], dtype=np.float32)}),
        tree_hash({"b": np.array([1.0, 2.0], dtype=np.float32)}),
        tree_hash({"a": jnp.array([1.0, 2.0], dtype=jnp.float32)}),  # jax vs numpy
    }
    assert len(hashes) == 6


_SUBPROCESS_SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, equinox as eqx
    from plumax_core._serialise import tree_hash
    mlp = eqx.nn.MLP(3, 2, width_size=8, depth=2, key=jax.random.key(0))
    tree = {"mlp": mlp, "x": np.arange(5, dtype=np.int16), "b": jnp.array([True]),
            "meta": ("run", 3, None, 2.5)}
    print(tree_hash(tree))
    """
)


def test_same_hash_in_new_process():
    mlp = eqx.nn.MLP(3, 2, width_size=8, depth=2, key=jax.random.key(0))
    tree = {
        "mlp": mlp,
        "x": np.arange(5, dtype=np.int16),
        "b": jnp.array([True]),
        "meta": ("run", 3, None, 2.5),
    }
    env = {**os.environ, "PYTHONHASHSEED": "12345", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    assert out.stdout.strip().splitlines()[-1] == tree_hash(tree)


def test_truncated_stream_refused():
    data = serialise(_mixed_tree())
    for cut in (0, 5, 20, len(data) // 2, len(data) - 1):
        with pytest.raises(SerialisationError):
            deserialise(data[:cut])


def test_edited_stream_refused():
    data = bytearray(serialise({"a": np.arange(100.0)}))
    for pos in (3, 15, 40, len(data) // 2, len(data) - 40, len(data) - 1):
        edited = bytearray(data)
        edited[pos] ^= 0x01
        with pytest.raises(SerialisationError, match="invalid serialised pytree"):
            deserialise(bytes(edited))
    with pytest.raises(SerialisationError):
        deserialise(bytes(data) + b"\x00")


def test_error_is_value_error():
    assert issubclass(SerialisationError, ValueError)
    with pytest.raises(ValueError, match="magic"):
        deserialise(b"x" * 100)


def test_unserialisable_inputs_raise_type_error():
    with pytest.raises(TypeError, match="lambda"):
        serialise({"f": lambda x: x})
    with pytest.raises(TypeError, match="object dtype"):
        serialise(np.array([object()], dtype=object))

    @jax.jit
    def f(x):
        serialise(x)
        return x

    with pytest.raises(TypeError, match="traced"):
        f(jnp.ones(2))


def test_shared_array_stored_once():
    a = np.arange(1000.0)
    once = serialise({"x": a})
    twice = serialise({"x": a, "y": a})
    assert len(twice) - len(once) < 200  # the second reference is a pointer, not a copy
    back = deserialise(twice)
    np.testing.assert_array_equal(back["y"], a)


_DTYPES = st.sampled_from(
    [
        np.bool_,
        np.int8,
        np.int32,
        np.int64,
        np.uint8,
        np.uint16,
        np.float16,
        np.float32,
        np.float64,
        np.complex128,
    ]
)


@st.composite
def _array_trees(draw):
    keys = draw(st.lists(st.text(min_size=1, max_size=6), min_size=0, max_size=4, unique=True))
    tree = {}
    for k in keys:
        dtype = draw(_DTYPES)
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
        arr = draw(hnp.arrays(dtype, shape))
        if draw(st.booleans()) and arr.dtype not in (np.float64, np.int64, np.complex128):
            arr = jnp.asarray(arr)
        tree[k] = arr
    if draw(st.booleans()):
        tree = {"outer": tree, "extra": (draw(st.integers()), draw(st.none()))}
    return tree


@settings(max_examples=30, deadline=None)
@given(_array_trees())
def test_round_trip_property(tree):
    data = serialise(tree)
    back = deserialise(data)
    _assert_tree_identical(tree, back)
    assert serialise(back) == data
