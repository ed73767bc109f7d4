"""A string enum shared by the registry and the cycle contracts."""

from __future__ import annotations

import enum
from typing import Any


class LowerStrEnum(enum.StrEnum):
    """A ``StrEnum`` with lower-case values that accepts its strings in any case.

    ``coerce(value, argname)`` converts a member or string, raising a ``ValueError``
    that names the argument and lists the choices.
    """

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, str):
            lowered = value.strip().lower()
            for member in cls:
                if member.value == lowered:
                    return member
        return None

    @classmethod
    def coerce(cls, value: Any, argname: str) -> Any:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise ValueError(
                f"{argname} must be one of {choices} (a {cls.__name__}); got {value!r}"
            ) from None
