"""The registry of cycle tiers: the names ``plumax cycle --tier NAME`` accepts.

A tier is registered under its name, either as a `CycleTier` or as a zero-argument
function that returns one, with a one-line description: the function runs on the first
lookup, so listing the tiers (``plumax cycle --help``) imports no JAX. The Gaussian tier
(Tier I, :mod:`plumax._cycle_gaussian`) is registered that way as ``"gaussian"``.
"""

from collections.abc import Callable

from ._cycle_base import CycleTier

__all__ = ["cycle_tier", "cycle_tiers", "register_cycle_tier", "unregister_cycle_tier"]

# name -> (tier, or a function that makes it; one-line description)
_TIERS: dict[str, tuple[CycleTier | Callable[[], CycleTier], str]] = {}


def register_cycle_tier(
    name: str,
    tier: CycleTier | Callable[[], CycleTier],
    *,
    description: str | None = None,
    replace: bool = False,
) -> None:
    """Register a tier's cycle under ``name`` for `run_cycle` and ``plumax cycle --tier``.

    Args:
        name: the tier's name; a `CycleTier` must carry the same ``name`` (it prefixes
            the tier's artifacts).
        tier: a `CycleTier`, or a zero-argument function returning one, called on the
            first lookup (so that registering and listing tiers import nothing heavy).
        description: one line for ``plumax cycle --help``; default the tier's own
            (required with a function).
        replace: allow replacing a registered tier of the same name.

    Raises:
        ValueError: ``name`` is registered already (and not ``replace``), differs from
            the tier's name, or a function comes without a ``description``.
        TypeError: ``tier`` is neither a `CycleTier` nor callable.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string, got {name!r}")
    if name in _TIERS and not replace:
        raise ValueError(
            f"a cycle tier {name!r} is registered already (pass replace=True to replace it)"
        )
    if isinstance(tier, CycleTier):
        if tier.name != name:
            raise ValueError(f"`name` {name!r} differs from the tier's name {tier.name!r}")
        description = tier.description if description is None else description
    elif callable(tier):
        if description is None:
            raise ValueError("`description` is required when `tier` is a function")
    else:
        raise TypeError(
            f"`tier` must be a CycleTier or a function returning one, got {type(tier).__name__}"
        )
    if not isinstance(description, str) or not description.strip():
        raise ValueError("`description` must be a non-empty string")
    _TIERS[name] = (tier, description)


def unregister_cycle_tier(name: str) -> None:
    """Remove a registered tier (e.g. one a test registered).

    Raises:
        ValueError: no tier of that name is registered.
    """
    if name not in _TIERS:
        raise ValueError(_unknown(name))
    del _TIERS[name]


def cycle_tiers() -> dict[str, str]:
    """The registered tiers: name -> one-line description, in registration order."""
    return {name: description for name, (_, description) in _TIERS.items()}


def cycle_tier(name: str) -> CycleTier:
    """The registered tier called ``name`` (made on first use if registered lazily).

    Raises:
        ValueError: no tier of that name is registered (the message lists those that
            are), or its function did not return a `CycleTier` of that name.
    """
    if not isinstance(name, str) or name not in _TIERS:
        raise ValueError(_unknown(name))
    tier, description = _TIERS[name]
    if not isinstance(tier, CycleTier):
        made = tier()
        if not isinstance(made, CycleTier) or made.name != name:
            raise ValueError(
                f"the function registered for cycle tier {name!r} returned "
                f"{made!r:.80}, not a CycleTier named {name!r}"
            )
        _TIERS[name] = (made, description)
        tier = made
    return tier


def _unknown(name: object) -> str:
    return f"unknown cycle tier {name!r}; registered tiers: {', '.join(_TIERS) or 'none'}"


def _gaussian() -> CycleTier:
    from ._cycle_gaussian import GAUSSIAN_TIER

    return GAUSSIAN_TIER


register_cycle_tier("gaussian", _gaussian, description="Tier I Gaussian plume, column images")
