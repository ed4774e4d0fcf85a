"""Checking a mode argument against its valid values, and reading a yes/no flag, with errors that
name the argument."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from monai.utils import look_up_option

__all__ = ["check_option", "flag"]

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def check_option(name: str, value: Any, valid: Collection, lower: bool = False) -> Any:
    """``value`` when it is one of ``valid`` (MONAI ``look_up_option``; the keys of a mapping),
    lower-cased first with ``lower``; else ``ValueError: <name> must be one of 'a', 'b'; got 'x'.``"""
    choices = tuple(valid)
    if lower and isinstance(value, str):
        value = value.lower()
    try:
        return look_up_option(value, choices)
    except (ValueError, TypeError):
        raise ValueError(f"{name} must be one of {', '.join(repr(v) for v in choices)}; got {value!r}.") from None


def flag(value: Any, name: str = "flag") -> bool:
    """A yes/no option as a bool, as a user may type it on a ``monai.bundle`` command line:
    ``True``/``False``, ``1``/``0`` or the strings ``true``/``false``, ``yes``/``no``, ``on``/``off``,
    ``1``/``0`` (any case). Anything else is refused (``ValueError`` naming ``name``): a bare
    ``"false"`` string would otherwise count as true."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{name} must be true or false (or 1 / 0); got {value!r}.")
