"""The machine a benchmark ran on, recorded beside its numbers (one definition)."""

from __future__ import annotations

import os
import platform


def machine_facts() -> dict:
    """Backend, device, CPU count and model, platform, Python and ``XLA_FLAGS``.

    jax is imported here, not at module level, so that a parent process that only
    spawns measured children need not initialise it.
    """
    import jax

    model = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if "model name" in ln), None)
    except OSError:
        pass
    dev = jax.devices()[0]
    return {
        "backend": jax.default_backend(),
        "device": str(dev),
        "device_kind": dev.device_kind,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "xla_flags": os.environ.get("XLA_FLAGS"),
    }
