"""Every fenced code block of ``README.md`` and ``docs/**/*.md`` runs in a test (STYLE 21).

Discovery: every fence (```` ``` ```` or ``~~~``) of those files, in file order. A block is
named ``file:line`` (the line of its opening fence; a shell command by its own line).

* ``python`` blocks run in a fresh Python process (the workspace's interpreter, as
  ``uv run python`` gives a user), in a fresh temporary working folder, with warnings as
  errors like the test suite. Tracebacks point at the markdown file and line.
* ``bash`` / ``sh`` / ``console`` blocks: each ``plumax ...`` or ``uv run plumax ...``
  command runs through the real CLI (``typer.testing.CliRunner`` on ``plumax._cli.app``)
  with the engine of ``packages/plumax/tests/test_plumax_help_examples.py``: the shell
  commands of one page share one working folder and run in page order, as a reader
  typing them into one terminal would; a command line that names a path an earlier one
  names runs after it (its dependencies run first, so a line can be run alone). Each
  command must exit 0, write the outputs it names, leave its inputs alone and change
  nothing it does not name. Data a user brings (a plume-list CSV, a radiance scene) is
  written by the engine's ``INPUTS`` fixtures when no earlier command made it; anything
  else a page uses, the page must make itself.
* Any other command in a shell block must match ``NOT_RUN``, a reviewed allowlist with
  the reason it is not run here.
* ``json`` blocks must parse; ``text`` blocks are diagrams, listings or synopses.

Markers, on the lines right above a fence (``<!-- docs-test: DIRECTIVE reason -->``):

* ``skip REASON``: not run (an illustrative fragment); counted in ``SKIPPED_BLOCKS``.
* ``continue``: a python block that continues the page's previous python block (same
  process, same folder), e.g. a workflow split by prose.
* ``slow REASON``: run only under ``-m slow``.

``test_every_block_is_run_or_listed`` fails when a block is none of these, so a new block
cannot slip through. Shell commands matching the engine's ``SLOW_RULES`` (full demo, the
cycle, NUTS at the default budget) and python blocks calling NUTS are ``slow`` too.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    *sorted((ROOT / "packages").glob("*/README.md")),
    ROOT / "benchmarks" / "README.md",
]


def _engine():
    """The CLI-example engine of the plumax help-example test (one copy per process)."""
    name = "_plumax_help_examples_engine"
    if name not in sys.modules:
        path = ROOT / "packages" / "plumax" / "tests" / "test_plumax_help_examples.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


E = _engine()

# Commands of shell blocks that are not run here: (regex on the command, why). Reviewed:
# every entry must match a command in the docs, and every non-plumax command must match.
NOT_RUN: list[tuple[str, str]] = [
    (
        r"uv run pytest\b",
        "the test suite itself: run from a test it would recurse; CI runs it (.ci/run)",
    ),
    (r"bash \.ci/run$", "the whole CI run (tests + ruff on a clean checkout): recursion"),
    (r"uv sync\b", "installs the workspace this test is running in"),
    (r"uv add\b", "edits a package's pyproject.toml and uv.lock"),
    (
        r"pip install\b",
        "installs from PyPI (network); tests-integration/test_install_alone.py (slow) "
        "builds every wheel and installs each library alone in a fresh environment",
    ),
    (
        r"uv run ruff (check|format) \.$",
        "lints the whole checkout (`ruff format .` rewrites files); CI runs ruff",
    ),
    (
        r"uv run python benchmarks/bench_\w+\.py( --[\w-]+)*$",
        "a benchmark: minutes of timed runs that rewrite benchmarks/results/, not a test "
        "(DESIGN 5: benchmarks/, not tests)",
    ),
    (r"git (tag|push)\b", "release steps: they change the repository and its remote"),
    (
        r"uvx --with mkdocs-material mkdocs (serve|build)$",
        "serves or builds the docs site with mkdocs-material fetched by uvx (network)",
    ),
]

# Blocks marked `<!-- docs-test: skip ... -->`. Change it in the change that adds or
# removes a marker, so that the review sees it.
SKIPPED_BLOCKS = 4

PYTHON = {"python", "py"}
SHELL = {"bash", "sh", "shell", "console"}
NOT_CODE = {"text": "a diagram, a listing or a synopsis: nothing to run"}
DIRECTIVES = {"skip", "continue", "slow"}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<directive>\S+)\s*(?P<reason>.*?)\s*-->\s*$")
PYTHON_SLOW = [(re.compile(r"""method\s*=\s*["']nuts["']"""), "NUTS with the default budget")]


@dataclasses.dataclass
class Block:
    file: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    markers: dict[str, str]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def read_blocks(path: Path) -> list[Block]:
    rel = path.relative_to(ROOT).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence = m.group("fence")
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        markers, k = {}, i - 1
        while k >= 0 and (mk := MARKER.match(lines[k])):
            markers[mk.group("directive")] = mk.group("reason")
            k -= 1
        indent = len(m.group("indent"))
        code = "\n".join(s[indent:] for s in lines[i + 1 : j])
        blocks.append(Block(rel, i + 1, m.group("lang").lower(), code, markers))
        i = j + 1
    return blocks


BLOCKS = [b for f in DOC_FILES for b in read_blocks(f)]


def shell_lines(block: Block) -> list[tuple[int, str]]:
    """``[(line number, command line)]``: continuations joined, prompts and comments out."""
    out, buf, start = [], "", None
    for n, raw in enumerate(block.code.splitlines(), start=block.line + 1):
        s = raw.strip()
        if block.lang == "console":
            if not s.startswith("$ ") and not buf:
                continue  # program output
            s = s.removeprefix("$ ")
        if not buf and (not s or s.startswith("#")):
            continue
        start = n if not buf else start
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        out.append((start, buf + s))
        buf = ""
    return out


def not_run_reason(text: str) -> list[str]:
    return [why for pattern, why in NOT_RUN if re.match(pattern, text)]


# ---------------------------------------------------------------------------------------
# what runs


def _python_chains() -> list[tuple[Block, list[Block]]]:
    """``[(block, the blocks its process runs)]`` for every python block not skipped."""
    chains, last = [], {}
    for b in BLOCKS:
        if b.lang not in PYTHON:
            continue
        chain = [b]
        if "continue" in b.markers:
            prev = last.get(b.file)
            chain = [*prev, b] if prev else chain
        last[b.file] = chain
        if "skip" not in b.markers:
            chains.append((b, chain))
    return chains


def _python_slow(chain: list[Block]) -> str | None:
    for b in chain:
        if "slow" in b.markers:
            return b.markers["slow"] or "marked slow"
        for pattern, why in PYTHON_SLOW:
            if pattern.search(b.code):
                return why
    return None


def _shell_sessions() -> dict[str, list]:
    """``{file: [engine Line]}``: the plumax command lines of each page, in page order."""
    sessions: dict[str, list] = {}
    for b in BLOCKS:
        if b.lang not in SHELL or "skip" in b.markers:
            continue
        for n, text in shell_lines(b):
            try:
                cmds = E.parse_line(text)
            except E.ShellSyntaxError:
                continue  # the inventory test reports it
            run = tuple(c for c in cmds if isinstance(c, E.Command))
            if not run:
                continue
            lines = sessions.setdefault(b.file, [])
            line = E.Line(b.file, len(lines), f"{b.file}:{n}", text, run)
            if "slow" in b.markers:
                line.slow = b.markers["slow"] or "marked slow"
            lines.append(line)
    return {f: E.link_session(lines) for f, lines in sessions.items()}


CHAINS = _python_chains()
SHELL_SESSIONS = _shell_sessions()
SHELL_LINES = [line for lines in SHELL_SESSIONS.values() for line in lines]
JSON_BLOCKS = [b for b in BLOCKS if b.lang == "json" and "skip" not in b.markers]

RUNNER = """
import json, sys
ns = {"__name__": "__main__"}
for path, line, code in json.load(open(sys.argv[1], encoding="utf-8")):
    exec(compile("\\n" * line + code, path, "exec"), ns)
"""


@pytest.mark.parametrize(
    "block, chain",
    [
        pytest.param(b, chain, id=b.where, marks=[pytest.mark.slow] if _python_slow(chain) else [])
        for b, chain in CHAINS
    ],
)
def test_python_block_runs(block: Block, chain: list[Block], tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    spec = tmp_path / "blocks.json"
    spec.write_text(json.dumps([[str(ROOT / b.file), b.line, b.code] for b in chain]))
    env = {**os.environ, "MPLBACKEND": "Agg"}
    cmd = [
        sys.executable,
        "-W",
        "error",
        "-W",
        "ignore::DeprecationWarning:netCDF4",
        "-c",
        RUNNER,
        str(spec),
    ]
    r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        also = [b.where for b in chain[:-1]]
        pytest.fail(
            f"{block.where} failed"
            + (f" (run after {', '.join(also)})" if also else "")
            + f":\n{r.stdout[-2000:]}\n{r.stderr[-6000:]}",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = E.Harness(
        tmp_path_factory.mktemp("docs-shell"),
        memo=E.memo_dir(tmp_path_factory),
        user_data_only=True,
    )
    for session, lines in SHELL_SESSIONS.items():
        h.add_session(session, lines)
    return h


@pytest.mark.parametrize("line", E.as_params(SHELL_LINES, lambda line: line.where))
def test_shell_command_runs(line, harness):
    harness.check(line)


@pytest.mark.parametrize("block", [pytest.param(b, id=b.where) for b in JSON_BLOCKS])
def test_json_block_parses(block: Block):
    try:
        json.loads(block.code)
    except json.JSONDecodeError as exc:
        pytest.fail(
            f"{block.where}: not JSON ({exc}); a sketch of a format belongs in a ```text block",
            pytrace=False,
        )


# ---------------------------------------------------------------------------------------
# nothing slips through


def test_every_block_is_run_or_listed():
    """Every block is run, parsed, not code, or marked; every other command is allowlisted."""
    problems, rows, skipped = [], [], 0
    used = set()
    ran = {b.where for b, _ in CHAINS}
    for b in BLOCKS:
        unknown = set(b.markers) - DIRECTIVES
        if unknown:
            problems.append(f"{b.where}: unknown docs-test directive(s) {sorted(unknown)}")
        if "skip" in b.markers:
            skipped += 1
            if not b.markers["skip"]:
                problems.append(f"{b.where}: a skip marker needs a reason")
            rows.append((b.where, f"skipped: {b.markers['skip']}"))
            continue
        if "continue" in b.markers:
            prev = [p for p in BLOCKS if p.file == b.file and p.line < b.line]
            prev = [p for p in prev if p.lang in PYTHON]
            if b.lang not in PYTHON or not prev:
                problems.append(f"{b.where}: `continue` needs a python block after another")
            elif "skip" in prev[-1].markers:
                problems.append(f"{b.where}: continues a skipped block, so mark it skip too")
        if b.lang in PYTHON:
            assert b.where in ran
            rows.append((b.where, "python: run"))
        elif b.lang in SHELL:
            for n, text in shell_lines(b):
                try:
                    cmds = E.parse_line(text)
                except E.ShellSyntaxError as exc:
                    problems.append(f"{b.file}:{n}: {exc}")
                    continue
                for c in cmds:
                    if isinstance(c, E.Command):
                        rows.append((f"{b.file}:{n}", f"run: {c.text}"))
                        continue
                    why = not_run_reason(c.text)
                    if len(why) != 1:
                        problems.append(
                            f"{b.file}:{n}: `{c.text}` is not plumax and matches "
                            f"{len(why)} NOT_RUN entries (need exactly one)"
                        )
                        continue
                    used.add(why[0])
                    rows.append((f"{b.file}:{n}", f"not run: {c.text} ({why[0]})"))
        elif b.lang == "json":
            rows.append((b.where, "json: parsed"))
        elif b.lang in NOT_CODE:
            rows.append((b.where, f"{b.lang}: {NOT_CODE[b.lang]}"))
        else:
            problems.append(
                f"{b.where}: a ```{b.lang or '(no language)'} block: give it a language "
                f"({', '.join(sorted(PYTHON | SHELL | {'json', *NOT_CODE}))}) or a "
                "`<!-- docs-test: skip reason -->` marker"
            )
    stale = [why for _, why in NOT_RUN if why not in used]
    if stale:
        problems.append(f"NOT_RUN entries that match no command in the docs: {stale}")
    if skipped != SKIPPED_BLOCKS:
        problems.append(f"{skipped} blocks are marked skip, SKIPPED_BLOCKS says {SKIPPED_BLOCKS}")
    print("\n".join(f"{w:40} {what}" for w, what in rows))
    assert not problems, "\n".join(problems)


def test_blocks_were_found():
    assert len(BLOCKS) >= 25 and CHAINS and SHELL_LINES
    assert all(b.code.strip() for b in BLOCKS), [b.where for b in BLOCKS if not b.code.strip()]
