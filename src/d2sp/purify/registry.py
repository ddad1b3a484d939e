"""Purifier registry: a plain dict from a mode name to its :class:`~d2sp.purify.base.Purifier`
subclass.

>>> from d2sp.purify import create_purifier, list_modes
>>> purifier = create_purifier("paper", labels, num_classes=7, lam=0.6, model=model)

A new mode is one module with a subclass decorated by :func:`register_purifier`, imported
by :mod:`d2sp.purify` (or by the user's own code before it is named in a config).
"""

from __future__ import annotations

from collections.abc import Callable

from d2sp.purify.base import Purifier

PURIFIERS: dict[str, type[Purifier]] = {}


def register_purifier(name: str) -> Callable[[type[Purifier]], type[Purifier]]:
    """Class decorator registering a purifier mode under ``name`` (sets its ``mode``)."""

    def decorator(cls: type[Purifier]) -> type[Purifier]:
        if name in PURIFIERS and PURIFIERS[name] is not cls:
            raise ValueError(f"purifier mode {name!r} is already registered")
        if not (isinstance(cls, type) and issubclass(cls, Purifier)):
            raise TypeError(f"register_purifier({name!r}): expected a Purifier subclass, got {cls!r}")
        cls.mode = name
        PURIFIERS[name] = cls
        return cls

    return decorator


def list_modes() -> list[str]:
    """Names of the registered purifier modes, in registration order."""
    return list(PURIFIERS)


def purifier_class(mode: str) -> type[Purifier]:
    """The class registered as ``mode``; ValueError listing the known modes otherwise."""
    try:
        return PURIFIERS[mode]
    except KeyError:
        raise ValueError(
            f"purify.mode: expected one of {', '.join(PURIFIERS)}, got {mode!r}"
        ) from None


def create_purifier(mode: str, labels, *, num_classes: int, **options) -> Purifier:
    """A purifier of ``mode`` over the annotation ``labels (N,)``.

    ``options`` are the mode's options (its ``defaults``) and the common keyword arguments of
    :class:`~d2sp.purify.base.Purifier` (``model``, ``device``, ``keep_ledger``). Every mode
    has the same public API; see :mod:`d2sp.purify.base` for the loop.
    """
    return purifier_class(mode)(labels, num_classes=num_classes, **options)
