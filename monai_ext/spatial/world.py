"""World geometry between a fixed and a moving image: reading the moving image (or its features,
or labels) through a transform defined on the fixed grid, without resampling one image onto the other.

DIO registers images of different sizes and voxel spacings without resampling one onto the other
(dio.md §4.3): the transform lives on the fixed grid, and the moving image is read at the mapped
points through the fixed-to-moving geometry. Every pyramid level of an image covers the image's
field of view with corner voxels aligned (``align_corners=True``), so a point is described by
*normalised* coordinates ``n in [-1, 1]^d`` that are the same at every level:
``n = 2 * x / (N - 1) - 1`` for voxel ``x`` of a level with ``N`` voxels along the axis.

The geometry between the two images is one homogeneous matrix ``T`` taking fixed normalised to
moving normalised coordinates, built from the images' voxel-to-world affines
(:func:`fixed_to_moving_matrix`) or the identity (both images span the same field of view).
With ``T = I`` and equal sizes, :func:`sample_moving` is exactly ``monai_ext.spatial.warp_image``
(MONAI ``Warp``): ``warped(x) = moving(x + u(x))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from monai_ext.spatial.ddf import identity_grid
from monai_ext.spatial.sampling import grid_sample_at, normalized_to_voxel, voxel_to_normalized

__all__ = [
    "fixed_to_moving_matrix",
    "sample_moving",
    "warp_moving",
    "transform_points",
]


def _normalization_matrix(shape: Sequence[int]) -> np.ndarray:
    """Homogeneous matrix taking normalised coordinates to voxel coordinates of ``shape``."""
    ndim = len(shape)
    matrix = np.eye(ndim + 1)
    for axis, n in enumerate(shape):
        half = max(int(n) - 1, 1) / 2.0
        matrix[axis, axis] = half
        matrix[axis, ndim] = half
    return matrix


def _as_affine(affine: Any, ndim: int, name: str) -> np.ndarray:
    array = np.asarray(affine.detach().cpu() if isinstance(affine, torch.Tensor) else affine, dtype=np.float64)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.shape == (4, 4) and ndim == 2:
        # A 2-D image's NIfTI affine: keep the in-plane part, as ITK reads a 2-D NIfTI.
        array = np.array([[array[0, 0], array[0, 1], array[0, 3]], [array[1, 0], array[1, 1], array[1, 3]], [0, 0, 1]])
    if array.shape != (ndim + 1, ndim + 1):
        raise ValueError(f"{name} must be a {(ndim + 1, ndim + 1)} voxel-to-world affine, got shape {array.shape}.")
    if not np.all(np.isfinite(array)) or abs(np.linalg.det(array[:ndim, :ndim])) < 1e-12:
        raise ValueError(f"{name} is not an invertible affine: {array.tolist()}.")
    return array


def _slice_voxel_map(fixed_affine: Any, moving_affine: Any) -> np.ndarray | None:
    """Fixed -> moving voxel map ``(3, 3)`` of two 2-D slices whose 4x4 NIfTI affines place them in
    3-D (any plane: coronal and sagittal slices have a singular in-plane 2x2 block, so the reduction
    of :func:`_as_affine` does not apply): ``x_m = pinv(R_m) (R_f x_f + t_f - t_m)`` with ``R`` the two
    in-plane columns. None unless both affines are 4x4."""
    arrays = [
        np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64)
        for a in (fixed_affine, moving_affine)
    ]
    arrays = [a[0] if a.ndim == 3 and a.shape[0] == 1 else a for a in arrays]
    if any(a.shape != (4, 4) for a in arrays):
        return None
    a_f, a_m = arrays
    for name, a in (("fixed_affine", a_f), ("moving_affine", a_m)):
        if not np.all(np.isfinite(a)) or np.linalg.svd(a[:3, :2], compute_uv=False)[-1] < 1e-6:
            raise ValueError(f"{name} does not span a plane with its first two axes: {a.tolist()}.")
    inverse = np.linalg.pinv(a_m[:3, :2])
    voxel_map = np.eye(3)
    voxel_map[:2, :2] = inverse @ a_f[:3, :2]
    voxel_map[:2, 2] = inverse @ (a_f[:3, 3] - a_m[:3, 3])
    return voxel_map


def fixed_to_moving_matrix(
    fixed_affine: Any,
    moving_affine: Any,
    fixed_shape: Sequence[int],
    moving_shape: Sequence[int],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``T = V_m^-1 A_m^-1 A_f V_f``: fixed normalised -> moving normalised coordinates (world-aligned).

    ``A_f``, ``A_m`` are the images' voxel-to-world affines (e.g. nibabel's RAS affines, or a
    MetaTensor's ``affine``), ``V`` the normalised-to-voxel matrices of the full-resolution grids.
    The matrix is the same at every pyramid level, because levels share the field of view.

    Args:
        fixed_affine, moving_affine: ``(ndim + 1)`` square affines (a 4x4 affine of a 2-D image is
            reduced to its in-plane part), numpy or torch.
        fixed_shape, moving_shape: full-resolution spatial shapes.

    Returns:
        ``(ndim + 1, ndim + 1)`` tensor.
    """
    ndim = len(fixed_shape)
    if len(moving_shape) != ndim:
        raise ValueError(f"fixed and moving images must have the same dimension, got {fixed_shape} and {moving_shape}.")
    voxel_map = _slice_voxel_map(fixed_affine, moving_affine) if ndim == 2 else None
    if voxel_map is None:
        voxel_map = np.linalg.inv(_as_affine(moving_affine, ndim, "moving_affine")) @ _as_affine(
            fixed_affine, ndim, "fixed_affine"
        )
    matrix = np.linalg.inv(_normalization_matrix(moving_shape)) @ voxel_map @ _normalization_matrix(fixed_shape)
    return torch.as_tensor(matrix, dtype=dtype, device=device)


def _apply_matrix(normalized: torch.Tensor, matrix: torch.Tensor | None) -> torch.Tensor:
    """Apply ``(ndim+1)`` square matrices (``(ndim+1, ndim+1)`` or ``(B, ndim+1, ndim+1)``) to ``(B, ..., ndim)``."""
    if matrix is None:
        return normalized
    ndim = normalized.shape[-1]
    matrix = matrix.to(dtype=normalized.dtype, device=normalized.device)
    if matrix.ndim == 2:
        matrix = matrix.unsqueeze(0)
    if matrix.shape[-2:] != (ndim + 1, ndim + 1):
        raise ValueError(f"fixed_to_moving must be ({ndim + 1}, {ndim + 1}) matrices, got {tuple(matrix.shape)}.")
    batch = normalized.shape[0]
    flat = normalized.reshape(batch, -1, ndim)
    linear, offset = matrix[:, :ndim, :ndim], matrix[:, :ndim, ndim]
    mapped = flat @ linear.transpose(1, 2) + offset[:, None, :]
    return mapped.reshape(normalized.shape)


def transform_points(
    points: torch.Tensor,
    fixed_shape: Sequence[int],
    moving_shape: Sequence[int],
    fixed_to_moving: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fixed voxel coordinates ``(B, ..., ndim)`` (grid ``fixed_shape``) -> moving voxel coordinates
    (grid ``moving_shape``)."""
    moving = _apply_matrix(voxel_to_normalized(points, list(fixed_shape)), fixed_to_moving)
    return normalized_to_voxel(moving, list(moving_shape))


def sample_moving(
    moving: torch.Tensor,
    ddf: torch.Tensor,
    fixed_to_moving: torch.Tensor | None = None,
    mode: str = "bilinear",
    padding_mode: str = "border",
) -> torch.Tensor:
    """Read ``moving`` at ``T(x + u(x))`` for every voxel ``x`` of the grid ``u`` lives on.

    Args:
        moving: ``(B, C, *moving_spatial)`` image or features (any size).
        ddf: ``(B, ndim, *grid)`` displacement in voxels of ``grid`` (a fixed pyramid level).
        fixed_to_moving: normalised-coordinate matrix from :func:`fixed_to_moving_matrix`, or
            None when the two images span the same field of view.
        mode: ``"bilinear"`` or ``"nearest"`` (torch ``grid_sample``; its second derivatives
            with respect to both the image and the grid exist, as DIO's backward needs).
        padding_mode: ``grid_sample`` padding outside the moving image (``"border"`` as
            ``warp_image``; ``"zeros"`` for one-hot labels).

    Returns:
        ``(B, C, *grid)``.
    """
    ndim = ddf.shape[1]
    if ddf.ndim != ndim + 2 or moving.ndim != ndim + 2:
        raise ValueError(
            f"moving {tuple(moving.shape)} and ddf {tuple(ddf.shape)} must be (B, C, *spatial) of {ndim}-D."
        )
    if moving.shape[0] != ddf.shape[0] and moving.shape[0] != 1:
        raise ValueError(f"batch sizes differ: moving {moving.shape[0]}, ddf {ddf.shape[0]}.")
    grid_shape = list(ddf.shape[2:])
    identity = identity_grid(grid_shape, device=ddf.device, dtype=ddf.dtype)
    points = torch.movedim(identity.unsqueeze(0) + ddf, 1, -1)
    normalized = _apply_matrix(voxel_to_normalized(points, grid_shape), fixed_to_moving)
    # grid_sample's last grid axis indexes the *last* input axis first (x = W, y = H, z = D).
    grid = normalized.flip(-1)
    if moving.shape[0] != grid.shape[0]:
        moving = moving.expand(grid.shape[0], *moving.shape[1:])
    return grid_sample_at(moving, grid.to(moving.dtype), mode=mode, padding_mode=padding_mode)


def warp_moving(
    moving: torch.Tensor, ddf: torch.Tensor, fixed_to_moving: torch.Tensor | None = None, label: bool = False
) -> torch.Tensor:
    """The moving image (linear) or label map (nearest neighbour, values kept, border padding as
    ``monai_ext.spatial.warp_label``) on the fixed grid."""
    if label:
        dtype = torch.promote_types(ddf.dtype, torch.float32)
        warped = sample_moving(moving.to(dtype), ddf.to(dtype), fixed_to_moving, mode="nearest")
        return warped.to(moving.dtype) if moving.is_floating_point() else warped.round().to(moving.dtype)
    return sample_moving(moving, ddf, fixed_to_moving)
