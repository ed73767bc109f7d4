"""The one check of a nuisance combinator's inputs (gain, offset, uncertain wind)."""

from collections.abc import Sequence

from ._forward import AbstractForwardModel

__all__ = ["check_nuisance"]


def check_nuisance(model, names: Sequence[str], what: str) -> None:
    """Raise unless ``model`` is a forward model and none of ``names`` (Python
    identifiers) is already one of its parameters.

    Raises:
        TypeError: ``model`` is not an :class:`AbstractForwardModel`.
        ValueError: a name that is not an identifier, or already a parameter (naming
            it and ``what`` the combinator adds).
    """
    if not isinstance(model, AbstractForwardModel):
        raise TypeError(f"`model` must be an AbstractForwardModel, got {type(model).__name__}")
    for n in names:
        if not isinstance(n, str) or not n.isidentifier():
            raise ValueError(f"`name` must be a Python identifier, got {n!r}")
    have = model.param_spec.names
    taken = [n for n in names if n in have]
    if taken:
        raise ValueError(
            f"{taken} already parameter(s) of the model {have}: choose another name for "
            f"the {what}, or do not add it twice"
        )
