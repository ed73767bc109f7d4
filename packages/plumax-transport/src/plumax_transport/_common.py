"""Checks and met extraction shared by the Tier I models."""

from __future__ import annotations

from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from plumax_core import MetField, ParamSpec, clean_errors
from plumax_core.validation import (
    MAX_WIND_SPEED,
    check_wind_speed,
    error_if,
    wind_speed_violations,
)

from ._stability import pasquill_class_from_obukhov

#: How the models name the wind speed they read (``met.wind_speed = hypot(u, v)``, m/s)
#: in their error messages. The rule is core's one wind-speed rule
#: (:func:`plumax_core.validation.check_wind_speed`): finite and in
#: ``[min_wind_speed, MAX_WIND_SPEED]``, ``min_wind_speed`` defaulting to core's
#: ``MIN_WIND_SPEED`` (0.5 m/s: below it the Gaussian models' neglect of along-wind
#: diffusion fails, Turner 1970; Hanna, Briggs & Hosker 1982, ch. 4). A wind outside the
#: rule raises; it is never clipped.
WIND_NAME = "met.wind_speed"

#: Irwin (1979) power-law wind-profile exponents by class A-F (as used in US EPA ISC3).
WIND_EXPONENTS = {
    "rural": (0.07, 0.07, 0.10, 0.15, 0.35, 0.55),
    "urban": (0.15, 0.15, 0.20, 0.25, 0.30, 0.30),
}


def is_concrete(*xs) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(xs))


def guard(x: Array, bad, msg: str) -> Array:
    """Raise ``ValueError(msg)`` now if ``bad`` is concretely true, else a run-time check.

    The run-time check is :func:`plumax_core.validation.error_if`, so under
    :func:`plumax_core.clean_errors` (which every model call uses) it surfaces as
    :class:`plumax_core.InvalidInputError` with ``msg``.
    """
    if is_concrete(bad):
        if bool(np.any(np.asarray(bad))):
            raise ValueError(msg)
        return x
    return error_if(x, jnp.any(bad), msg)


def check_params(spec: ParamSpec, params: Mapping[str, Array]) -> dict[str, Array]:
    """Validate names/shapes; concrete NaN or out-of-support values raise here."""
    spec.validate(params)
    out = {k: jnp.asarray(params[k]) for k in spec.names}
    out = {
        k: (v if jnp.issubdtype(v.dtype, jnp.floating) else v.astype(float)) for k, v in out.items()
    }
    if is_concrete(out):
        spec.check_in_support(out)
    # traced values are checked inside the jitted core by check_support (which honours
    # the model's `strict` setting)
    return out


def one(name: str, val) -> Array:
    """A met field that must be a single value (steady, uniform) as a 0-d array."""
    arr = jnp.asarray(val)
    if arr.size != 1:
        raise ValueError(
            f"`met.{name}` must be steady and uniform (one value) for this model, got shape "
            f"{arr.shape}; use met.at(t) or GaussianPuff for time-varying met"
        )
    return arr.reshape(())


def stability_of(met: MetField, at=lambda a: a) -> Array:
    """Class index 0-5 from ``met.stability_class`` or, failing that, the Obukhov length."""
    if met.stability_class is not None:
        sc = one("stability_class", at(met.stability_class)).astype(jnp.int32)
        return guard(sc, (sc < 0) | (sc > 5), "`met.stability_class` must be in 0-5 (A-F)")
    if met.obukhov_length is not None:
        return pasquill_class_from_obukhov(
            one("obukhov_length", at(met.obukhov_length)), one("z0", at(met.z0))
        )
    raise ValueError(
        "`met` has neither `stability_class` nor `obukhov_length`: the Pasquill class "
        "is needed for the dispersion curves"
    )


def check_min_wind_speed(min_wind_speed: float) -> float:
    """``min_wind_speed`` (m/s) as a float in ``(0, MAX_WIND_SPEED)``, else ``ValueError``."""
    value = float(min_wind_speed)
    if not 0.0 < value < MAX_WIND_SPEED:
        raise ValueError(
            f"`min_wind_speed` must be > 0 and < {MAX_WIND_SPEED:g} m/s, got {min_wind_speed!r}"
        )
    return value


def check_wind(check: Checks, x: Array, speed: Array, minimum: float) -> Array:
    """``x``, with core's wind-speed rule applied to ``speed`` (m/s) through ``check``.

    Eagerly the rule has already been applied by :func:`run_checked`; traced, each part
    of it (not finite, below ``minimum``, above ``MAX_WIND_SPEED``) is an ``error_if``
    (or a NaN flag with ``strict=False``) carrying core's message word for word.
    """
    for bad, msg in wind_speed_violations(WIND_NAME, speed, minimum=minimum):
        x = check(x, bad, msg)
    return x


def profile_speed(speed, height, stability, terrain: str, reference_height: float | None):
    """Power-law wind at ``max(height, z_ref)`` (Irwin 1979), or ``speed`` if disabled."""
    if reference_height is None:
        return speed
    p = jnp.asarray(WIND_EXPONENTS[terrain], dtype=speed.dtype)[stability]
    zr = jnp.asarray(reference_height, dtype=speed.dtype)
    return speed * (jnp.maximum(height, zr) / zr) ** p


class Checks:
    """Collects input checks inside a jitted core.

    With ``inside=True`` (the caller is itself being traced) and ``strict=True`` each
    check is an ``equinox.error_if``; otherwise the flags are returned as
    ``{message: bool}``: eagerly, :meth:`raise_flags` turns a true one into a
    ``ValueError`` after the jitted call; traced with ``strict=False``,
    :func:`run_checked` turns the observations into NaN instead (so a sampler sees a
    non-finite likelihood and rejects the proposal rather than aborting).
    """

    def __init__(self, inside: bool, strict: bool = True):
        self.inside = inside
        self.strict = strict
        self.flags: dict[str, Array] = {}

    def __call__(self, x: Array, bad, msg: str) -> Array:
        if self.inside and self.strict:
            return error_if(x, jnp.any(bad), msg)
        prev = self.flags.get(msg)
        flag = jnp.any(bad)
        self.flags[msg] = flag if prev is None else prev | flag
        return x

    @staticmethod
    def raise_flags(flags: dict[str, Array]) -> None:
        for msg, flag in flags.items():
            if bool(flag):
                raise ValueError(msg)


def run_checked(core, model, params: Mapping[str, Array], met: MetField):
    """Validate ``params``, run the jitted ``core(model, p, met, inside)``, raise its flags.

    ``inside`` is True when the caller is itself traced (checks become
    :func:`plumax_core.validation.error_if`, or NaN observations when ``model.strict``
    is False); eagerly, the wind speed is checked first by core's rule
    (:func:`plumax_core.validation.check_wind_speed`, ``ValueError``), the flags
    ``core`` returns become ``ValueError``s, and a run-time check that fails inside the
    jitted core surfaces as :class:`plumax_core.InvalidInputError` (a ``ValueError``
    with the check's message), never as equinox's or XLA's wrapped runtime error.
    """
    p = check_params(model.param_spec, params)
    # the model's own arrays count too: a model holding a key or coordinates is traced
    # under eqx.filter_jit / filter_vmap over models (an ensemble over keys)
    inside = not is_concrete(p, met, eqx.filter(model, eqx.is_array))
    if not inside:
        check_wind_speed(WIND_NAME, met.wind_speed, minimum=model.min_wind_speed)
        with clean_errors():
            obs, flags = core(model, p, met, inside)
        Checks.raise_flags(flags)
        return obs
    obs, flags = core(model, p, met, inside)
    if flags:
        bad = jnp.any(jnp.stack([jnp.any(f) for f in flags.values()]))
        obs = obs.replace(values=jnp.where(bad, jnp.nan, obs.values))
    return obs


def check_support(spec: ParamSpec, p: dict[str, Array], check: Checks) -> dict[str, Array]:
    """Under tracing, guard that every parameter lies in its support (NaN included)."""
    if check.inside:
        ok = spec.in_support(p)
        p = dict(p, Q=check(p["Q"], ~ok, "params contain NaN or a value outside the support"))
    return p
