"""Argument checks shared by every plumax library.

Each ``check_*`` runs on concrete values at construction time and is skipped for tracers;
every failure is a ``ValueError`` or ``TypeError`` that names the offending argument.
Inside ``jax.jit`` use :func:`error_if` (``equinox.error_if`` that records the message as
a plumax check) or the ``*_error_if`` helpers, which apply the same rules at run time;
:func:`clean_errors` and :func:`filter_jit` turn such a failure into
:class:`InvalidInputError` (a ``ValueError``) carrying the check's message.
"""

from ._errors import (
    InvalidInputError as InvalidInputError,
    clean_errors as clean_errors,
    error_if as error_if,
    filter_jit as filter_jit,
)
from ._validation import (
    DENSE_CHECK_MAX as DENSE_CHECK_MAX,
    MAX_WIND_SPEED as MAX_WIND_SPEED,
    METRE_UNITS as METRE_UNITS,
    MIN_WIND_SPEED as MIN_WIND_SPEED,
    as_array as as_array,
    as_finite_float_array as as_finite_float_array,
    as_float_array as as_float_array,
    check_coordinate as check_coordinate,
    check_covariance as check_covariance,
    check_emission_rate as check_emission_rate,
    check_finite as check_finite,
    check_length_units as check_length_units,
    check_ndim as check_ndim,
    check_not_nan as check_not_nan,
    check_positive as check_positive,
    check_positive_int as check_positive_int,
    check_probability as check_probability,
    check_square_operator as check_square_operator,
    check_value as check_value,
    check_wind_speed as check_wind_speed,
    covariance_error_if as covariance_error_if,
    is_concrete as is_concrete,
    positive_error_if as positive_error_if,
    wind_speed_error_if as wind_speed_error_if,
    wind_speed_messages as wind_speed_messages,
    wind_speed_violations as wind_speed_violations,
)

__all__ = [
    "DENSE_CHECK_MAX",
    "MAX_WIND_SPEED",
    "METRE_UNITS",
    "MIN_WIND_SPEED",
    "InvalidInputError",
    "as_array",
    "as_finite_float_array",
    "as_float_array",
    "check_coordinate",
    "check_covariance",
    "check_emission_rate",
    "check_finite",
    "check_length_units",
    "check_ndim",
    "check_not_nan",
    "check_positive",
    "check_positive_int",
    "check_probability",
    "check_square_operator",
    "check_value",
    "check_wind_speed",
    "clean_errors",
    "covariance_error_if",
    "error_if",
    "filter_jit",
    "is_concrete",
    "positive_error_if",
    "wind_speed_error_if",
    "wind_speed_messages",
    "wind_speed_violations",
]
