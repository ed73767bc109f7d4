"""Shared pytest fixtures for every plumax package and the integration tests.

* ``getkey`` — a fresh, deterministic ``jax.random`` key on each call (equinox style).
* ``x64`` — run one test with 64-bit floats enabled, restoring the default afterwards.
* ``shared_data`` — the ``../shared/data`` folder beside the checkout, or a skip with a
  clear reason when it is absent (a user's clone has no ``../shared``).
* ``plumax_cli`` / ``cli_guard`` — the CLI harness (below), for the plumax tests and the
  integration tests.

The CLI harness: every CLI test runs its command through ``plumax_cli`` (or wraps other
writing code in ``cli_guard``): before and after the command the harness records every
entry under a root folder (type, permission bits, sha256 of files, link targets) and the
sha256 of each declared input, then asserts that

* no input changed (content or mode), wherever it lives;
* nothing was created, removed or changed under the root except at or below the
  declared output locations.

```python
def test_x(plumax_cli, tmp_path):
    r = plumax_cli("invert", "scene.nc", "--out", "post.json",
                   root=tmp_path, inputs=["scene.nc"], outputs=["post.json"])
```

Relative paths are taken relative to ``root``, which is also the working directory
while the command runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
from collections.abc import Iterable, Iterator
from pathlib import Path

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


# ------------------------------------------------------------------ the CLI harness
PathLike = str | os.PathLike[str]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_state(root: Path) -> dict[str, tuple]:
    """``{relative path: (kind, mode bits, sha256 or link target)}`` of everything under
    ``root`` (symbolic links are recorded, never followed)."""
    state: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            st = p.lstat()
            mode = st.st_mode & 0o7777
            if p.is_symlink():
                state[rel] = ("link", mode, os.readlink(p))
            elif p.is_dir():
                state[rel] = ("dir", mode, None)
            elif p.is_file():
                state[rel] = ("file", mode, _sha256(p))
            else:
                state[rel] = ("other", mode, None)
    return state


def _abs(root: Path, p: PathLike) -> Path:
    p = Path(p)
    return p if p.is_absolute() else root / p


def _input_state(p: Path) -> tuple | None:
    if not p.exists():
        return None
    return (p.stat().st_mode & 0o7777, _sha256(p) if p.is_file() else None)


@contextlib.contextmanager
def guard(
    root: PathLike, *, inputs: Iterable[PathLike] = (), outputs: Iterable[PathLike] = ()
) -> Iterator[None]:
    """Assert that the block changes no input and nothing under ``root`` but ``outputs``.

    ``outputs`` are files or folders (relative to ``root`` or absolute); an output
    folder may change in any way inside. Inputs outside ``root`` are hashed too.
    """
    root = Path(root).resolve()
    ins = [_abs(root, p) for p in inputs]
    outs = [_abs(root, p).resolve() for p in outputs]
    before_inputs = {p: _input_state(p) for p in ins}
    before = tree_state(root)
    yield
    after = tree_state(root)
    for p, was in before_inputs.items():
        assert _input_state(p) == was, f"input {p} changed"
        assert was is not None or not p.exists(), f"input {p} was created"

    def allowed(rel: str) -> bool:
        q = root / rel
        return any(q == o or o in q.parents for o in outs)

    changed = sorted(
        rel for rel in before.keys() | after.keys() if before.get(rel) != after.get(rel)
    )
    stray = [rel for rel in changed if not allowed(rel)]
    created = [r for r in stray if r not in before]
    removed = [r for r in stray if r not in after]
    modified = [r for r in stray if r in before and r in after]
    assert not stray, (
        f"outside the outputs {[str(o) for o in outs]}: created {created}, removed {removed}, "
        f"changed {modified}"
    )


@pytest.fixture(scope="session")
def cli_guard():
    """The harness's context manager: ``with cli_guard(root, inputs=..., outputs=...):``."""
    return guard


@pytest.fixture(scope="session")
def plumax_cli():
    """Run ``plumax ARGS`` in-process with the harness (see the module docstring).

    Call as ``plumax_cli(*args, root=..., inputs=(...), outputs=(...))``; returns the
    ``click.testing.Result`` (``exit_code``, ``stdout``, ``stderr``, ``output``).
    """
    from typer.testing import CliRunner

    from plumax._cli import app

    runner = CliRunner()

    def run(
        *args: str,
        root: PathLike,
        inputs: Iterable[PathLike] = (),
        outputs: Iterable[PathLike] = (),
    ):
        cwd = os.getcwd()
        with guard(root, inputs=inputs, outputs=outputs):
            os.chdir(root)
            try:
                return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
            finally:
                os.chdir(cwd)

    return run
