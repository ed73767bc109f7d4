"""Writing benchmark results: JSON files written whole or not at all (stdlib only).

Every benchmark writes ``benchmarks/results/<name>.json`` through these two functions,
so an interrupted run never leaves a half-written file: the JSON goes to a temporary
file in the same folder, which then replaces the old one in one rename.

* :func:`write_json_atomic` — one result per file.
* :func:`update_json_atomic` — a file of results keyed by setting and backend (e.g.
  ``"plumax cycle [gpu]"``), where a run replaces only its own entry and keeps those of
  other settings and other machines.
"""

import json
import os
import uuid


def write_json_atomic(path, payload, *, indent: int = 2) -> None:
    """Write ``payload`` as JSON to ``path`` via a temporary file and a rename.

    The temporary file is created with ``open(..., "x")`` (not ``tempfile.mkstemp``, whose
    files are mode 0600), so the result honours the umask like any file the user writes.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.json.tmp")
    try:
        with open(tmp, "x") as f:
            json.dump(payload, f, indent=indent)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def update_json_atomic(path, key: str, entry, *, indent: int = 1) -> dict:
    """Set ``key`` to ``entry`` in the JSON object stored at ``path`` (created when
    missing), keeping the other keys, and write it back atomically; returns the object.

    Raises:
        ValueError: the file holds JSON that is not an object.
    """
    previous = {}
    if os.path.isfile(path):
        with open(path) as f:
            previous = json.load(f)
        if not isinstance(previous, dict):
            raise ValueError(f"{path} holds a JSON {type(previous).__name__}, not an object")
    previous[key] = entry
    write_json_atomic(path, previous, indent=indent)
    return previous
