"""Checking a mode argument against its valid values, with an error that names the argument."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from monai.utils import look_up_option

__all__ = ["check_option"]


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
