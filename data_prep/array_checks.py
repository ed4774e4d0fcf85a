"""Checks shared by the converters on the arrays they read."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["spatial_shape"]

_KINDS = {2: "2-D (X, Y)", 3: "3-D (X, Y, Z)", 4: "4-D (X, Y, Z, T)"}


def spatial_shape(shape: Sequence[int], ndim: int, name: str | Path) -> tuple[int, ...]:
    """``shape`` without trailing singleton axes beyond ``ndim``; ``ValueError`` naming ``name``
    when it does not have ``ndim`` dimensions then."""
    shape = tuple(int(s) for s in shape)
    while len(shape) > ndim and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != ndim:
        raise ValueError(f"{name}: expected a {_KINDS.get(ndim, f'{ndim}-D')} volume, got shape {shape}")
    return shape
