"""Exact reordering of array axes into one canonical (RAS) storage order and back.

A convolutional network is not equivariant to axis flips and permutations, and neither are the
one-sided derivatives of bilinear sampling at grid points that drive an optimiser's forces, so the
same image stored in LPS and in RAS order would register differently. DIO (dio.md §4.3) therefore
registers the arrays reordered to RAS and puts the result back in the stored order. Only flips and
transpositions are used: no resampling, exact and invertible. (MONAI's ``Orientation`` does the
same on MetaTensors but changes the grid the outputs live on; here the outputs stay on the grid
the image was given on, as a Learn2Reg submission needs.)

The axis codes come from nibabel's ``io_orientation``: for each array axis ``i``, the world axis
``ornt[i, 0]`` (0 = R/L, 1 = A/P, 2 = S/I) it runs closest to and ``ornt[i, 1] = -1`` when it runs
towards L, P or I.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from nibabel.orientations import io_orientation

__all__ = [
    "canonical_axes",
    "to_canonical",
    "from_canonical",
    "canonical_to_stored_matrix",
    "canonical_affine",
    "ddf_from_canonical",
    "points_to_canonical",
]


def canonical_axes(affine: Any, ndim: int = 3) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(flipped, order)`` that bring an ``ndim``-D array with voxel-to-world ``affine`` (4x4, or
    ``(ndim + 1)``-square) into RAS order: flip the spatial axes ``flipped`` (indices into the
    spatial axes), then put spatial axis ``order[j]`` at position ``j``. A 2-D slice keeps its two
    axes in the order of the world axes they follow (a coronal slice: R/L, then S/I)."""
    affine = np.asarray(torch.as_tensor(affine, dtype=torch.float64).cpu())
    if affine.ndim != 2 or affine.shape[0] != affine.shape[1] or affine.shape[0] < ndim + 1:
        raise ValueError(f"affine must be square with at least {ndim + 1} rows for {ndim}-D data, got {affine.shape}.")
    ornt = io_orientation(affine)[:ndim]
    flipped = tuple(int(i) for i in np.flatnonzero(ornt[:, 1] < 0))
    order = tuple(int(i) for i in np.argsort(ornt[:, 0], kind="stable"))
    return flipped, order


def _spatial_axes(x: torch.Tensor, axes: tuple[int, ...]) -> list[int]:
    return [2 + a for a in axes]


def to_canonical(x: torch.Tensor, flipped: tuple[int, ...], order: tuple[int, ...]) -> torch.Tensor:
    """``x`` ``(B, C, *spatial)`` reordered by :func:`canonical_axes`' ``(flipped, order)``."""
    if flipped:
        x = torch.flip(x, _spatial_axes(x, flipped))
    return x.permute(0, 1, *_spatial_axes(x, order))


def from_canonical(x: torch.Tensor, flipped: tuple[int, ...], order: tuple[int, ...]) -> torch.Tensor:
    """The inverse of :func:`to_canonical`: ``x`` ``(B, C, *spatial)`` of any spatial size (a
    coarser pyramid level on a corner-aligned grid reorders the same way) back in stored order."""
    inverse = tuple(int(i) for i in np.argsort(order))
    x = x.permute(0, 1, *_spatial_axes(x, inverse))
    return torch.flip(x, _spatial_axes(x, flipped)) if flipped else x


def canonical_to_stored_matrix(flipped: tuple[int, ...], order: tuple[int, ...], shape: Sequence[int]) -> torch.Tensor:
    """``(ndim + 1)``-square matrix taking a voxel index of the canonical array to the index of the
    same voxel in the stored array of spatial ``shape``: ``stored_affine @ M`` is the canonical
    array's voxel-to-world affine."""
    ndim = len(order)
    matrix = torch.zeros(ndim + 1, ndim + 1, dtype=torch.float64)
    matrix[ndim, ndim] = 1.0
    for j, axis in enumerate(order):
        if axis in flipped:
            matrix[axis, j], matrix[axis, ndim] = -1.0, float(shape[axis] - 1)
        else:
            matrix[axis, j] = 1.0
    return matrix


def canonical_affine(affine: torch.Tensor, flipped: tuple[int, ...], order: tuple[int, ...], shape) -> torch.Tensor:
    """The voxel-to-world affine(s) (``(..., 4, 4)`` or ``(..., ndim + 1, ndim + 1)``) of the array
    reordered by :func:`to_canonical`; a 2-D image's 4x4 affine keeps its third axis."""
    matrix = canonical_to_stored_matrix(flipped, order, shape)
    ndim = len(order)
    size = affine.shape[-1]
    full = torch.eye(size, dtype=torch.float64)
    full[:ndim, :ndim], full[:ndim, size - 1] = matrix[:ndim, :ndim], matrix[:ndim, ndim]
    return (affine.double() @ full).to(affine.dtype)


def ddf_from_canonical(ddf: torch.Tensor, flipped: tuple[int, ...], order: tuple[int, ...]) -> torch.Tensor:
    """A displacement field ``(B, ndim, *spatial)`` computed on the canonical array, in voxels of
    its axes, as the field of the stored array: voxels put back and components reordered, the
    components of flipped axes negated."""
    ddf = from_canonical(ddf, flipped, order)
    components = [None] * len(order)
    for j, axis in enumerate(order):
        components[axis] = -ddf[:, j] if axis in flipped else ddf[:, j]
    return torch.stack(components, dim=1)


def points_to_canonical(points: torch.Tensor, flipped: tuple[int, ...], order: tuple[int, ...], shape) -> torch.Tensor:
    """Voxel coordinates ``(..., ndim)`` (array-axis order) in the stored array of spatial ``shape``
    as coordinates in the canonical array."""
    points = points.clone()
    for axis in flipped:
        points[..., axis] = shape[axis] - 1 - points[..., axis]
    return points[..., list(order)]
