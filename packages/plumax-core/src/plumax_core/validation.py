"""Eager argument checks shared by every plumax library.

Each check runs on concrete values at construction time and is skipped for tracers
(inside ``jax.jit`` use ``equinox.error_if``); every failure is a ``ValueError`` or
``TypeError`` that names the offending argument.
"""

from ._validation import (
    MAX_WIND_SPEED as MAX_WIND_SPEED,
    MIN_WIND_SPEED as MIN_WIND_SPEED,
    as_array as as_array,
    as_finite_float_array as as_finite_float_array,
    as_float_array as as_float_array,
    check_finite as check_finite,
    check_ndim as check_ndim,
    check_not_nan as check_not_nan,
    check_positive as check_positive,
    check_positive_int as check_positive_int,
    check_probability as check_probability,
    check_square_operator as check_square_operator,
    check_value as check_value,
    check_wind_speed as check_wind_speed,
    is_concrete as is_concrete,
)
