"""Input checks that run *inside* ``jax.jit``, and how their failures reach the user.

Eagerly, every plumax check raises a ``ValueError`` naming the argument. Under a
transformation (``jit``, ``vmap``, ``grad``) the values are tracers and a check can only
be decided at run time: plumax then uses :func:`error_if` (``equinox.error_if``, which
also records the message as one of plumax's own). When such a check fails, JAX raises it
from inside compiled code, and what the user sees depends on the outermost ``jit``:

* under ``equinox.filter_jit`` (as in equinox 0.13): an ``equinox.EquinoxRuntimeError``
  (a ``RuntimeError``) whose text holds the message and a long debugging note;
* under ``jax.jit`` (as in jax 0.10): ``jax.errors.JaxRuntimeError: INTERNAL:
  CpuCallback error calling callback: ...`` with the message buried in a traceback;
* at trace time, when the failure is already certain: ``equinox.EquinoxTracetimeError``.

plumax's own entry points (the transport models' ``__call__``, the core containers) run
their jitted kernels inside :func:`clean_errors`, so an eager call gets an
:class:`InvalidInputError` — a ``ValueError`` whose message is exactly the check's
message. A call traced by the *user's* own ``jax.jit`` cannot be intercepted by the
library (the error is raised when the user's compiled function runs); wrap such code
in :func:`clean_errors` or compile it with :func:`filter_jit` to get the same clean
error. Errors that are not plumax checks (a lineax solver's, the user's own
``error_if``) pass through unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import equinox as eqx
import jax

_F = TypeVar("_F", bound=Callable[..., Any])

#: Every message given to :func:`error_if` in this process (messages are static strings
#: fixed at trace time, so the set stays small).
_MESSAGES: set[str] = set()

_RUNTIME_MARKERS = ("EquinoxRuntimeError: ",)


class _QuietCallbackFailure(logging.Filter):
    """Drop JAX's "jax.pure_callback failed" log record (the error itself is raised)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name == "jax._src.callback" and record.getMessage() == "jax.pure_callback failed"
        )


class InvalidInputError(ValueError):
    """A plumax input check failed inside compiled (jitted) code.

    Raised by :func:`clean_errors` (and so by plumax's own entry points, and by
    functions compiled with :func:`filter_jit`) in place of equinox's or XLA's wrapped
    runtime error. ``str(err)`` is the check's own message, which names the argument and
    says what was expected; being a ``ValueError``, it is caught by the same handlers as
    the eager checks.
    """


def error_if(x: Any, pred: Any, msg: str) -> Any:
    """``equinox.error_if(x, pred, msg)``, recording ``msg`` as a plumax check.

    Returns ``x`` unchanged; as with equinox, the check only runs if the returned value
    is used. Under :func:`clean_errors` a failure becomes :class:`InvalidInputError`.
    """
    _MESSAGES.add(msg)
    return eqx.error_if(x, pred, msg)


def _plumax_message(err: BaseException) -> str | None:
    """The plumax check message carried by ``err``, or None if it is not one of ours."""
    text = str(err)
    if isinstance(err, eqx.EquinoxTracetimeError):
        return text if text in _MESSAGES else None
    found = [
        msg
        for msg in _MESSAGES
        for marker in _RUNTIME_MARKERS
        if f"{marker}{msg}\n" in text or text.endswith(f"{marker}{msg}")
    ]
    # the longest match: one message may be a prefix of another
    return max(found, key=len) if found else None


_CAUGHT = (
    eqx.EquinoxRuntimeError,
    eqx.EquinoxTracetimeError,
    jax.errors.JaxRuntimeError,
    ValueError,
)


@contextlib.contextmanager
def clean_errors() -> Iterator[None]:
    """Turn a failed plumax check raised from compiled code into :class:`InvalidInputError`.

    Catches ``equinox.EquinoxRuntimeError``, ``equinox.EquinoxTracetimeError``,
    ``jax.errors.JaxRuntimeError`` and the ``ValueError("INTERNAL: CpuCallback error
    ...")`` that jax 0.10 raises for some failed callbacks; when the error carries the
    message of a check made with :func:`error_if`, re-raises it as
    ``InvalidInputError(message)``. Any other error is re-raised unchanged.

    Example::

        with plumax_core.clean_errors():
            jax.jit(lambda u: model(params, MetField(u, 0.0, stability_class=3)))(0.1)
        # InvalidInputError: `met.wind_speed` must be >= 0.5 m/s (...)
    """
    callback_logger = logging.getLogger("jax._src.callback")
    quiet = _QuietCallbackFailure()
    callback_logger.addFilter(quiet)
    try:
        yield
    except _CAUGHT as err:
        msg = None if isinstance(err, InvalidInputError) else _plumax_message(err)
        if msg is None:
            raise
        raise InvalidInputError(msg) from None
    finally:
        callback_logger.removeFilter(quiet)


def filter_jit(fun: _F) -> _F:
    """``equinox.filter_jit(fun)`` whose failed plumax checks raise :class:`InvalidInputError`.

    Use it (instead of ``jax.jit``) to compile code that calls plumax models when you
    want their input errors as plain ``ValueError``s with plumax's messages.
    """
    jitted = eqx.filter_jit(fun)

    @functools.wraps(fun)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with clean_errors():
            return jitted(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
