"""First-call timing with the compilation split out, for the benchmark scripts.

``jax.monitoring`` reports the lowering to MLIR and the XLA compile of every jit as it
happens, so a noisy machine does not blur compilation into the run time.
"""

from __future__ import annotations

import time

import jax

_COMPILE_EVENTS = {
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lowering_s",
    "/jax/core/compile/backend_compile_duration": "xla_compile_s",
}
_compile_log: list[tuple[str, float]] = []


def _listen(event: str, duration: float, **kwargs) -> None:
    if event in _COMPILE_EVENTS:
        _compile_log.append((_COMPILE_EVENTS[event], duration))


jax.monitoring.register_event_duration_secs_listener(_listen)


def first_call(fn) -> tuple[dict, object]:
    """Time the first call of ``fn`` (trace, compile, run, ``block_until_ready``): returns
    ``({"first_call_s", "lowering_s", "xla_compile_s", "compile_s"}, fn's output)``."""
    _compile_log.clear()
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    res = {"first_call_s": first, "lowering_s": 0.0, "xla_compile_s": 0.0}
    for name, d in _compile_log:
        res[name] += d
    res["compile_s"] = res["lowering_s"] + res["xla_compile_s"]
    return res, out
