"""Displacement chains: a transform held as the list of fields that act on coordinates in turn.

ICON's Down / TwoStep operators (gradicon.md §4.1) compose fields predicted on grids of different
sizes. The chain ``[D_1, ..., D_K]`` is the transform ``x -> T_K(... T_1(x))`` with
``T_k(x) = x + interpolate(D_k, x)``; every field covers the same field of view with corners
aligned, whatever its grid size (a field on a grid of size ``M`` is in voxels of that grid).
Evaluating the chain at the fine points directly, rather than resampling each field first, is
ICON's numerics exactly. TorchScript-compatible (networks call it in ``forward``).
"""

from __future__ import annotations

from typing import List, Optional

import torch

from monai_ext.spatial.sampling import normalized_identity, normalized_scale, sample_at_points

__all__ = ["evaluate_displacement_chain", "chain_displacement"]


def chain_displacement(
    chain: List[torch.Tensor], spatial_shape: List[int], points: Optional[torch.Tensor]
) -> torch.Tensor:
    """Displacement in normalised units of the chain at normalised ``points`` ``(B | 1, ndim, *P)``,
    or on the grid ``spatial_shape`` when ``points`` is None."""
    if len(chain) == 0:
        raise ValueError("a displacement chain needs at least one field.")
    base = points if points is not None else normalized_identity(spatial_shape, chain[0])
    total: Optional[torch.Tensor] = None
    for field in chain:
        field_shape = list(field.shape[2:])
        field = field * normalized_scale(field_shape, field)
        if total is None and points is None and field_shape == spatial_shape:
            # first field on the output grid: its values at the grid points, no interpolation needed
            step = field
        elif total is None:
            step = sample_at_points(field, base)
        else:
            step = sample_at_points(field, base + total)
        total = step if total is None else total + step
    assert total is not None
    return total


def evaluate_displacement_chain(
    chain: List[torch.Tensor], spatial_shape: List[int], points: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Evaluate a displacement chain on a grid (a DDF) or at given points.

    Args:
        chain: DDFs ``(B, ndim, *M_k)``, in the order they act on coordinates.
        spatial_shape: the output grid ``N`` (``ndim`` sizes).
        points: optional ``(B, ndim, *P)`` voxel coordinates on the ``N`` grid at which to evaluate;
            default: the grid points themselves.

    Returns:
        displacement ``(B, ndim, *N)`` (or ``(B, ndim, *P)``) in voxels of the ``N`` grid:
        a DDF in the ``monai_ext.spatial`` convention.
    """
    shape = [int(s) for s in spatial_shape]
    if len(chain) == 0:
        raise ValueError("a displacement chain needs at least one field.")
    scale = normalized_scale(shape, chain[0])
    normalised_points: Optional[torch.Tensor] = None
    if points is not None:
        normalised_points = points * scale - 1.0
    return chain_displacement(chain, shape, normalised_points) / scale
