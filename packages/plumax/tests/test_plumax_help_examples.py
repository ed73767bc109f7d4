"""Every example in every ``plumax ... --help`` text runs, and does what it names.

Discovery. The pages are the help texts of the Typer app, walked recursively (the top-level
quick start, every command and every sub-command, including any added later). An example
is any help line that starts with ``plumax `` (``&&`` chains allowed, ``# comments``
dropped). Each example is one test, named after its page and position.

Running. Each page gets a working folder; its examples run there, in the order of the
page, through the real CLI in-process (``typer.testing.CliRunner`` on
``plumax._cli.app``). The values of the path-valued options and arguments of a command
(given on the command line or by default) are the paths it *names*. An example depends
on an earlier example of its page when they name overlapping paths (the same path, or
one inside the other); its dependencies run first, so an example can be run alone
(``-k``). It runs even when a dependency failed (its failure then names that one).
After each command the test asserts

* exit status 0;
* every output it names explicitly was written (created or changed);
* no input changed, and nothing changed in the working folder outside the paths the
  command names.

Inputs (``INPUTS``): a path-valued parameter listed there is an input; every other one is
an output. When an input an example names does not exist yet (no earlier example of the
page wrote it), the fixture listed for it writes one (see each provider's docstring).

Cost. Examples whose commands match ``SLOW_RULES`` (and examples that depend on them)
are marked ``slow``. A command run before in the same pytest session with the same
arguments and the same named paths in the same state is not run again:
the files it wrote and its output are copied from that run (the CLI is deterministic
given its seed). So ``plumax demo --fast`` runs once for the help and docs tests
together (and for the xdist workers of one run, unless two start it at once), and
``plumax demo --fast --out demo`` once more.

The engine (``Harness``, ``parse_line``, ``Line``, ``INPUTS``, ``SLOW_RULES``) is also
used by ``tests-integration/test_docs_examples.py`` for the shell blocks of the docs.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import shlex
import shutil
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath

import pytest

from plumax._cli import app

# ---------------------------------------------------------------------------------------
# the command tree


def command_tree():
    """The click command of ``app`` (typer's own click: groups have ``commands``)."""
    import typer.main

    return typer.main.get_command(app)


def help_pages() -> list[tuple[tuple[str, ...], str]]:
    """``[(command path, help text)]`` for the app and every (sub-)command, depth first."""
    pages = []

    def walk(cmd, path):
        pages.append((path, cmd.help or ""))
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, (*path, name))

    walk(command_tree(), ())
    return pages


def leaf_commands() -> list[tuple[str, ...]]:
    """Paths of every command that runs something (not a group)."""
    leaves = []

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, (*path, name))
        else:
            leaves.append(path)

    walk(command_tree(), ())
    return leaves


# ---------------------------------------------------------------------------------------
# command lines


@dataclasses.dataclass(frozen=True)
class Command:
    """One ``plumax ...`` invocation of an example.

    ``argv`` excludes ``plumax``; ``path`` is the command path (``("registry", "show")``);
    ``params`` the parsed parameter values (None when the line does not parse: it is run
    anyway and fails as a user would see it fail); ``paths`` the path-valued parameters
    (name -> normalised relative path, defaults included) and ``explicit`` the names given
    on the command line.
    """

    argv: tuple[str, ...]
    path: tuple[str, ...]
    params: dict | None
    paths: dict[str, PurePosixPath]
    explicit: frozenset[str]

    @property
    def text(self) -> str:
        return shlex.join(("plumax", *self.argv))


@dataclasses.dataclass(frozen=True)
class Foreign:
    """A command of a docs block that is not ``plumax`` (see the docs test's allowlist)."""

    argv: tuple[str, ...]

    @property
    def text(self) -> str:
        return shlex.join(self.argv)


def _norm(p: os.PathLike | str) -> PurePosixPath:
    return PurePosixPath(os.path.normpath(os.fspath(p)))


def parse_command(argv: Sequence[str]) -> Command:
    """Resolve ``argv`` (without ``plumax``) against the app, as the CLI would parse it."""
    cmd, path, rest = command_tree(), [], list(argv)
    while getattr(cmd, "commands", None) and rest and rest[0] in cmd.commands:
        path.append(rest[0])
        cmd = cmd.commands[rest.pop(0)]
    params, paths, explicit = None, {}, set()
    if not getattr(cmd, "commands", None):
        try:
            ctx = cmd.make_context(" ".join(["plumax", *path]), list(rest))
        except Exception:  # noqa: BLE001 - a usage error: the run shows it
            ctx = None
        if ctx is not None:
            params = dict(ctx.params)
            for name, value in params.items():
                src = ctx.get_parameter_source(name)
                if src is not None and src.name == "COMMANDLINE":
                    explicit.add(name)
                if isinstance(value, os.PathLike):
                    paths[name] = _norm(value)
    return Command(tuple(argv), tuple(path), params, paths, frozenset(explicit))


class ShellSyntaxError(ValueError):
    """A line uses shell syntax the harness does not run (pipes, redirections, ...)."""


def split_line(text: str) -> list[list[str]]:
    """Split one shell line into commands (``&&`` and ``;``), dropping ``# comments``."""
    lex = shlex.shlex(text, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    lex.commenters = "#"
    commands, cur = [], []
    for tok in lex:
        if tok in ("&&", ";"):
            commands.append(cur)
            cur = []
        elif tok and set(tok) <= set("();<>|&"):
            raise ShellSyntaxError(f"unsupported shell syntax {tok!r} in {text!r}")
        else:
            cur.append(tok)
    commands.append(cur)
    return [c for c in commands if c]


def parse_line(text: str) -> tuple[Command | Foreign, ...]:
    """The commands of a shell line; ``uv run plumax`` is ``plumax``."""
    out = []
    for argv in split_line(text):
        if argv[:2] == ["uv", "run"] and argv[2:3] == ["plumax"]:
            argv = argv[2:]
        if argv[0] == "plumax":
            out.append(parse_command(argv[1:]))
        else:
            out.append(Foreign(tuple(argv)))
    return tuple(out)


# ---------------------------------------------------------------------------------------
# cost

# (predicate on a Command, why it is slow). Everything else runs in the default run.
SLOW_RULES: list[tuple[Callable[[Command], bool], str]] = [
    (
        lambda c: c.path[:1] == ("demo",) and not (c.params or {}).get("fast"),
        "`plumax demo` without --fast (~1.5 min on 2 cores)",
    ),
    (
        lambda c: c.path[:1] == ("cycle",),
        "`plumax cycle` trains an emulator and a flow (minutes, even with --fast)",
    ),
    (lambda c: (c.params or {}).get("method") == "nuts", "NUTS with the default budget"),
    (
        lambda c: c.path[:1] == ("calibrate",),
        "`plumax calibrate` runs the chain on many scenes (minutes)",
    ),
]


def slow_reason(cmd: Command | Foreign) -> str | None:
    if isinstance(cmd, Foreign):
        return None
    for rule, why in SLOW_RULES:
        if rule(cmd):
            return why
    return None


# ---------------------------------------------------------------------------------------
# lines and sessions


@dataclasses.dataclass
class Line:
    """An example (help) or a command line (docs), run in its session's folder.

    ``where`` names it in messages (``plumax retrieve --help #2``, ``docs/x.md:12``).
    ``deps`` are the earlier lines of the session it depends on (transitively, in order),
    ``slow`` says why it is slow (its own commands or a dependency), or None.
    """

    session: str
    index: int
    where: str
    text: str
    commands: tuple[Command | Foreign, ...]
    deps: tuple[int, ...] = ()
    slow: str | None = None

    @property
    def named(self) -> list[PurePosixPath]:
        return [p for c in self.commands if isinstance(c, Command) for p in c.paths.values()]


def _overlap(a: PurePosixPath, b: PurePosixPath) -> bool:
    return a == b or a in b.parents or b in a.parents


def link_session(lines: list[Line]) -> list[Line]:
    """Fill ``deps`` and ``slow`` of the lines of one session (in session order); a
    ``slow`` already set (a docs marker) is kept."""
    for i, line in enumerate(lines):
        direct = {
            j for j in range(i) if any(_overlap(a, b) for a in line.named for b in lines[j].named)
        }
        deps = set(direct)
        for j in direct:
            deps |= set(lines[j].deps)
        line.deps = tuple(sorted(deps))
        own = [r for r in (line.slow, *map(slow_reason, line.commands)) if r]
        via = [lines[j].where for j in line.deps if lines[j].slow]
        if own:
            line.slow = own[0]
        elif via:
            line.slow = f"depends on the slow {via[0]}"
    return lines


# ---------------------------------------------------------------------------------------
# inputs


@dataclasses.dataclass(frozen=True)
class Input:
    """How the harness writes an input that no earlier example wrote.

    ``user_data``: data a user brings (a plume list, a radiance scene); the docs test
    provides only these, everything else a docs page must make itself. ``read_only``:
    whether the command must leave the input unchanged.
    """

    what: str
    provide: Callable[[Harness, Command, Path], None]
    user_data: bool
    read_only: Callable[[Command], bool] = lambda cmd: True


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dest)
    else:
        shutil.copy2(src, dest)


def column_scene(h: Harness, cmd: Command, dest: Path) -> None:
    """What ``plumax simulate scene.nc`` writes (the first `simulate` example)."""
    d = h.fixture_dir("column-scene", ["plumax simulate scene.nc"])
    _copy(d / "scene.nc", dest)


def radiance_scene(h: Harness, cmd: Command, dest: Path) -> None:
    """``scene.nc`` of ``plumax demo --fast --out demo`` (the `retrieve` example): an
    EMIT-like radiance overpass; a name starting ``EMIT_L1B_RAD`` gets the radiance file
    of the synthetic EMIT granule (:func:`emit_granule_file`)."""
    if dest.name.startswith("EMIT_L1B_RAD"):
        emit_granule_file(h, cmd, dest)
        return
    d = h.fixture_dir("radiance-scene", ["plumax demo --fast --out demo"])
    _copy(d / "demo" / "scene.nc", dest)


def emit_granule_file(h: Harness, cmd: Command, dest: Path) -> None:
    """A file of :func:`plumax.pipelines.write_synthetic_granule` (written once per
    harness): the EMIT L1B radiance granule for a name starting ``EMIT_L1B_RAD``, its OBS
    file for ``EMIT_L1B_OBS``, its ERA5 single-levels file otherwise."""
    key = "fixture:emit-granule"
    if key not in h._fixtures:
        from plumax import pipelines as pl

        d = h._fresh("fixture-emit-granule")
        pl.write_synthetic_granule(d)
        h._fixtures[key] = d
    d = h._fixtures[key]
    for prefix in ("EMIT_L1B_RAD", "EMIT_L1B_OBS"):
        if dest.name.startswith(prefix):
            (src,) = d.glob(f"{prefix}*.nc")
            break
    else:
        src = d / "era5_single_levels.nc"
    _copy(src, dest)


def plume_registry(h: Harness, cmd: Command, dest: Path) -> None:
    """A registry holding ``observations-scene`` and ``posterior-scene-laplace``: what
    ``plumax simulate scene.nc`` then ``plumax invert scene.nc --registry plumax-runs``
    store."""
    d = h.fixture_dir(
        "registry",
        ["plumax simulate scene.nc", "plumax invert scene.nc --registry plumax-runs"],
    )
    _copy(d / "plumax-runs", dest)


def plume_list(h: Harness, cmd: Command, dest: Path) -> None:
    """A synthetic plume list in the example's ``--schema``: 60 days of events (10 per
    day, lognormal sizes around 180 kg/h) seen through a Hill detection curve (Q50 288
    kg/h, slope 2); ISO 8601 times, a 20% ``q_sigma``, one instrument."""
    import numpy as np

    import plumax_pod as pp

    schema = pp.SCHEMAS[(cmd.params or {}).get("schema") or "canonical"]
    cols = schema.columns
    rng = np.random.default_rng(3)
    days, t0 = 60, dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    n = rng.poisson(10 * days)
    t = np.sort(rng.uniform(0, days * 86400.0, n))
    q = 180.0 * np.exp(rng.standard_normal(n))  # kg/h
    seen = np.flatnonzero(rng.uniform(size=n) < q**2 / (q**2 + 288.0**2))
    units = "kg/h" if "units" in cols else schema.rate_units
    rate = np.asarray(pp.kg_s_to(q / 3600.0, units))
    values = {
        "id": [f"p{i}" for i in seen],
        "time": [(t0 + dt.timedelta(seconds=float(t[i]))).isoformat() for i in seen],
        "lat": [f"{32.0 + 1e-3 * rng.standard_normal():.5f}" for _ in seen],
        "lon": ["-103.0"] * len(seen),
        "q": [f"{rate[i]:.6g}" for i in seen],
        "q_sigma": [f"{0.2 * rate[i]:.6g}" for i in seen],
        "wind": ["3.0"] * len(seen),
        "instrument": ["EMIT"] * len(seen),
        "units": [units] * len(seen),
    }
    fields = [f for f in values if f in cols]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([cols[f] for f in fields])
        w.writerows(zip(*(values[f] for f in fields), strict=True))


# (command path prefix, parameter name) -> Input. Every other path-valued parameter is an
# output. Reviewed list: add a command's inputs here when it gains one.
INPUTS: dict[tuple[tuple[str, ...], str], Input] = {
    (("invert",), "obs"): Input("column scene", column_scene, user_data=False),
    (("retrieve",), "scene"): Input("radiance scene", radiance_scene, user_data=True),
    (("retrieve",), "obs"): Input("EMIT L1B OBS file", emit_granule_file, user_data=True),
    (("retrieve",), "met"): Input("ERA5 file", emit_granule_file, user_data=True),
    (("retrieve",), "met_pressure_levels"): Input(
        "ERA5 pressure-level file", emit_granule_file, user_data=True
    ),
    (("population",), "catalog"): Input("plume list CSV", plume_list, user_data=True),
    (("registry",), "root"): Input(
        "artifact registry",
        plume_registry,
        user_data=False,
        read_only=lambda cmd: not (cmd.params or {}).get("repair"),
    ),
}


def input_of(cmd: Command, name: str) -> Input | None:
    for (prefix, param), inp in INPUTS.items():
        if param == name and cmd.path[: len(prefix)] == prefix:
            return inp
    return None


# ---------------------------------------------------------------------------------------
# running


def _tree(root: Path, *, content_only: bool = False) -> dict[str, tuple]:
    """``{relative path: state}`` of everything under ``root``, links not followed.

    A file's state is its sha256 and, unless ``content_only``, its inode and mtime, so
    that a file written again with the same bytes counts as written.
    """
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                state[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                state[rel] = ("dir",)
            else:
                sha = hashlib.sha256(p.read_bytes()).hexdigest()
                st = p.stat()
                state[rel] = (
                    ("file", sha) if content_only else ("file", sha, st.st_ino, st.st_mtime_ns)
                )
    return state


def _changes(before: dict, after: dict) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


@dataclasses.dataclass
class Outcome:
    ok: bool
    log: str


class Harness:
    """Runs the lines of sessions, one working folder per session, under ``base``.

    ``user_data_only``: provide only the ``user_data`` ``INPUTS`` (the docs test).
    ``memo``: the folder of recorded runs (see :meth:`run_command`); harnesses given the
    same one (the help and docs tests, through ``memo_dir``) share them.
    """

    def __init__(self, base: Path, *, memo: Path | None = None, user_data_only: bool = False):
        from typer.testing import CliRunner

        self.base = Path(base)
        self.memo = Path(memo) if memo is not None else self.base / "memo"
        self.runner = CliRunner()
        self.user_data_only = user_data_only
        self.sessions: dict[str, list[Line]] = {}
        self.done: dict[tuple[str, int], Outcome] = {}
        self._fixtures: dict[str, Path] = {}
        self._n = 0

    # -- folders
    def _fresh(self, label: str) -> Path:
        self._n += 1
        d = self.base / f"{self._n:03d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)[:40]}"
        d.mkdir(parents=True)
        return d

    def session_dir(self, session: str) -> Path:
        key = f"session:{session}"
        if key not in self._fixtures:
            self._fixtures[key] = self._fresh(session)
        return self._fixtures[key]

    def fixture_dir(self, name: str, lines: Iterable[str]) -> Path:
        """A folder where ``lines`` ran (once per harness); raises if one failed."""
        key = f"fixture:{name}"
        if key not in self._fixtures:
            d = self._fresh(f"fixture-{name}")
            for text in lines:
                for cmd in parse_line(text):
                    log = self.run_command(cmd, d)
                    if log is not None:
                        raise RuntimeError(f"input fixture {name!r}: {log}")
            self._fixtures[key] = d
        return self._fixtures[key]

    # -- one command
    def _invoke(self, argv: Sequence[str], cwd: Path) -> tuple[int, str]:
        old = os.getcwd()
        os.chdir(cwd)
        try:
            r = self.runner.invoke(app, list(argv), catch_exceptions=True)
        finally:
            os.chdir(old)
        out = r.output
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            out += "".join(traceback.format_exception(*r.exc_info))
        return r.exit_code, out

    def _key(self, cmd: Command, cwd: Path) -> str:
        state = []
        for p in sorted(set(cmd.paths.values())):
            q = cwd / p
            if q.is_dir():
                state.append([str(p), sorted(_tree(q, content_only=True).items())])
            elif q.exists():
                state.append([str(p), hashlib.sha256(q.read_bytes()).hexdigest()])
        text = json.dumps([list(cmd.argv), state], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def run_command(self, cmd: Command | Foreign, cwd: Path) -> str | None:
        """Run one command in ``cwd``; None when every check passed, else the log."""
        if isinstance(cmd, Foreign):
            return f"{cmd.text!r} is not a plumax command"
        for name, rel in cmd.paths.items():
            inp = input_of(cmd, name)
            if inp is None or (cwd / rel).exists():
                continue
            if self.user_data_only and not inp.user_data:
                continue  # the docs must make it themselves
            inp.provide(self, cmd, cwd / rel)
        before = _tree(cwd)
        entry = self.memo / self._key(cmd, cwd)
        if (entry / "result.json").is_file():  # the same command on the same inputs ran
            rec = json.loads((entry / "result.json").read_text(encoding="utf-8"))
            code, out = rec["exit_code"], rec["output"]
            for rel in rec["removed"]:
                p = cwd / rel
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
            shutil.copytree(entry / "files", cwd, dirs_exist_ok=True, symlinks=True)
            out = f"(same command, same inputs as a run before: its files copied)\n{out}"
        else:
            code, out = self._invoke(cmd.argv, cwd)
            after = _tree(cwd)
            changed = _changes(before, after)
            staging = self.memo / f".{entry.name}.{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            (staging / "files").mkdir(parents=True)
            for rel in changed:
                if rel in after and after[rel][0] == "file":
                    _copy(cwd / rel, staging / "files" / rel)
                elif rel in after and after[rel][0] == "dir":
                    (staging / "files" / rel).mkdir(parents=True, exist_ok=True)
            rec = {
                "argv": list(cmd.argv),
                "exit_code": code,
                "output": out,
                "removed": [r for r in changed if r not in after],
            }
            (staging / "result.json").write_text(json.dumps(rec), encoding="utf-8")
            try:
                staging.rename(entry)  # published whole: other xdist workers read it
            except OSError:  # another worker published the same run first
                shutil.rmtree(staging, ignore_errors=True)
        after = _tree(cwd)
        changed = _changes(before, after)
        problems = []
        if code != 0:
            problems.append(f"exit status {code}")
        for name, rel in cmd.paths.items():
            inp = input_of(cmd, name)
            if inp is not None:
                if not inp.read_only(cmd):
                    continue
                touched = [c for c in changed if _overlap(PurePosixPath(c), rel)]
                if touched:
                    problems.append(f"it changed its input {str(rel)!r}: {touched[:5]}")
            elif name in cmd.explicit and not any(_overlap(PurePosixPath(c), rel) for c in changed):
                problems.append(f"it did not write {str(rel)!r}, which it names")
        stray = [
            c for c in changed if not any(_overlap(PurePosixPath(c), p) for p in cmd.paths.values())
        ]
        if stray:
            problems.append(f"it changed paths it does not name: {stray[:5]}")
        if not problems:
            return None
        tail = out if len(out) < 4000 else "...\n" + out[-4000:]
        return f"`{cmd.text}` in {cwd}: {'; '.join(problems)}\n{tail}"

    # -- lines
    def add_session(self, session: str, lines: list[Line]) -> None:
        self.sessions[session] = lines

    def _run_line(self, line: Line) -> Outcome:
        key = (line.session, line.index)
        if key in self.done:
            return self.done[key]
        cwd = self.session_dir(line.session)
        lines = self.sessions[line.session]
        failed = [lines[j].where for j in line.deps if not self._run_line(lines[j]).ok]
        self.done[key] = Outcome(True, "")
        for cmd in line.commands:
            try:
                log = self.run_command(cmd, cwd)
            except Exception:  # noqa: BLE001 - a fixture failed: report it as the line's
                log = traceback.format_exc()
            if log is not None:
                note = f" (after {', '.join(failed)}, which failed)" if failed else ""
                self.done[key] = Outcome(False, f"{line.where}{note}: `{line.text}`\n{log}")
                break
        return self.done[key]

    def check(self, line: Line) -> None:
        """Run ``line`` (after its dependencies) and fail the test with its log if needed."""
        out = self._run_line(line)
        if not out.ok:
            pytest.fail(out.log, pytrace=False)


def as_params(lines: Iterable[Line], id_of: Callable[[Line], str]) -> list:
    """``pytest.param`` per line, marked ``slow`` when it is."""
    return [
        pytest.param(line, id=id_of(line), marks=[pytest.mark.slow] if line.slow else [])
        for line in lines
    ]


# ---------------------------------------------------------------------------------------
# the help examples

EXAMPLE_LINE = re.compile(r"^\s*(?:\$\s+)?(plumax\s.*?)\s*$")


def page_name(path: tuple[str, ...]) -> str:
    return " ".join(("plumax", *path, "--help"))


def help_examples() -> dict[str, list[Line]]:
    """``{page: [Line]}``: every help line starting with ``plumax `` is an example."""
    sessions = {}
    for path, text in help_pages():
        page = page_name(path)
        found = [m.group(1) for m in map(EXAMPLE_LINE.match, text.splitlines()) if m]
        lines = [
            Line(page, i, f"{page} #{i + 1}", ex, parse_line(ex)) for i, ex in enumerate(found)
        ]
        sessions[page] = link_session(lines)
    return sessions


SESSIONS = help_examples()
EXAMPLES = [line for lines in SESSIONS.values() for line in lines]


def memo_dir(tmp_path_factory) -> Path:
    """The session's folder of recorded CLI runs, shared by the help and docs tests and
    by the xdist workers of one run (each worker's base folder is a child of the run's)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    return base / "plumax-cli-runs"


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = Harness(tmp_path_factory.mktemp("help-examples"), memo=memo_dir(tmp_path_factory))
    for page, lines in SESSIONS.items():
        h.add_session(page, lines)
    return h


def _example_id(line: Line) -> str:
    return f"{line.where}: " + " && ".join(c.text for c in line.commands)


@pytest.mark.parametrize("example", as_params(EXAMPLES, _example_id))
def test_help_example_runs(example: Line, harness: Harness):
    harness.check(example)


def test_examples_were_found():
    """The quick start and the command pages have examples, all of them ``plumax`` lines."""
    assert SESSIONS[page_name(())], "the top-level --help lost its quick start"
    assert len(EXAMPLES) >= 10
    for line in EXAMPLES:
        assert all(isinstance(c, Command) for c in line.commands), line.text


def test_every_command_has_an_example():
    """Each runnable command is exercised by at least one example in some help text."""
    used = {c.path for line in EXAMPLES for c in line.commands if isinstance(c, Command)}
    missing = [" ".join(("plumax", *p)) for p in leaf_commands() if p not in used]
    assert not missing, f"commands without an example in any --help: {missing}"


@pytest.mark.parametrize("page", list(SESSIONS))
def test_examples_are_shown_in_help(page: str):
    """What ``--help`` prints (on a wide terminal) contains each example verbatim."""
    from typer.testing import CliRunner

    path = page.split()[1:-1]
    r = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "400"})
    assert r.exit_code == 0, r.output
    shown = " ".join(r.output.split())
    for line in SESSIONS[page]:
        assert " ".join(line.text.split()) in shown, (line.text, r.output)


def test_engine_parses_links_and_classifies():
    """The engine's own contract: shell splitting, paths named, dependencies, cost."""
    assert split_line("plumax demo --fast --out d && plumax retrieve d/scene.nc  # x") == [
        ["plumax", "demo", "--fast", "--out", "d"],
        ["plumax", "retrieve", "d/scene.nc"],
    ]
    with pytest.raises(ShellSyntaxError):
        split_line("plumax simulate scene.nc > log.txt")
    (sim,) = parse_line("uv run plumax simulate ./scene.nc --seed 7")
    assert sim.path == ("simulate",) and sim.paths == {"out": PurePosixPath("scene.nc")}
    assert sim.explicit >= {"out", "seed"} and slow_reason(sim) is None
    (ls,) = parse_line("plumax registry ls")
    assert ls.paths == {"root": PurePosixPath("plumax-runs")} and "root" not in ls.explicit
    texts = [
        "plumax simulate scene.nc",
        "plumax invert scene.nc --method nuts --registry runs",
        "plumax registry ls --root runs",
        "plumax demo --fast",
    ]
    lines = link_session([Line("s", i, f"s#{i}", t, parse_line(t)) for i, t in enumerate(texts)])
    assert [line.deps for line in lines] == [(), (0,), (0, 1), ()]
    assert [bool(line.slow) for line in lines] == [False, True, True, False]
    assert "depends on the slow s#1" in lines[2].slow


def test_engine_reports_a_failing_example(tmp_path):
    """A command that fails, and one that writes outside what it names, fail their line."""
    h = Harness(tmp_path / "h", user_data_only=True)
    texts = ["plumax invert missing.nc", "plumax simulate scene.nc --pixels 2"]
    lines = link_session([Line("s", i, f"s#{i}", t, parse_line(t)) for i, t in enumerate(texts)])
    h.add_session("s", lines)
    for line, needle in zip(lines, ("missing.nc", "--pixels"), strict=True):
        out = h._run_line(line)
        assert not out.ok and "exit status 1" in out.log and needle in out.log, out.log
