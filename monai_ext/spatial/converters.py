"""Converters between the project's DDF convention and other representations of a transform.

Each has a round-trip test:

- ICON / uniGradICON maps ``phi``: coordinates in ``[0, 1]^d`` with axis ``c`` ordered like
  array axis ``c``; ``u = (phi - id01) * (N - 1)`` per axis (gradicon.md section 4).
- world displacements (ITK / ANTs / nibabel frames): the affine's linear part times ``u``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from monai_ext.spatial.ddf import check_ddf, identity_grid, unit_scale

__all__ = ["icon_map_to_ddf", "ddf_to_icon_map", "ddf_to_world_displacement", "world_displacement_to_ddf", "as_numpy"]


def icon_map_to_ddf(phi: torch.Tensor) -> torch.Tensor:
    """ICON map ``phi`` (coordinates in ``[0, 1]^d``) -> DDF in voxels: ``u = (phi - id01) * (N - 1)``.

    ``phi``: ``(B, ndim, *spatial)``, channel ``c`` the normalised coordinate along array axis ``c``
    (``id01 = i / (N - 1)``, ICON's identity map). Returns ``(B, ndim, *spatial)``.
    """
    check_ddf(phi, "phi")
    spatial = phi.shape[2:]
    scale = unit_scale(spatial, phi)
    return phi * scale - identity_grid(spatial, device=phi.device, dtype=phi.dtype).unsqueeze(0)


def ddf_to_icon_map(ddf: torch.Tensor) -> torch.Tensor:
    """DDF in voxels -> ICON map in ``[0, 1]^d``: ``phi = id01 + u / (N - 1)``; inverse of ``icon_map_to_ddf``."""
    check_ddf(ddf)
    spatial = ddf.shape[2:]
    scale = unit_scale(spatial, ddf)
    return (identity_grid(spatial, device=ddf.device, dtype=ddf.dtype).unsqueeze(0) + ddf) / scale


def as_numpy(array: Any) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def _linear_part(affine: Any, ndim: int) -> np.ndarray:
    affine = np.asarray(as_numpy(affine), dtype=np.float64)
    if affine.shape not in ((ndim + 1, ndim + 1), (4, 4)):
        raise ValueError(
            f"affine must be ({ndim + 1}, {ndim + 1}) or (4, 4) for {ndim}-D data, got shape {affine.shape}."
        )
    if not np.all(np.isfinite(affine)):
        raise ValueError("affine contains NaN or infinite values.")
    return affine[:ndim, :ndim]


def _result_dtype(array: np.ndarray) -> np.dtype:
    return np.result_type(array.dtype, np.float32) if array.dtype != np.float64 else np.dtype(np.float64)


def ddf_to_world_displacement(ddf: Any, affine: Any) -> np.ndarray:
    """Voxel DDF -> displacement vectors in the affine's world frame (mm).

    ``d(x) = A[:ndim, :ndim] @ u(x)``: the linear part of the voxel-to-world affine times the
    voxel displacement, valid when the moving image shares the fixed image's grid. For a 2-D
    field with a 4x4 affine the top-left 2x2 block is used.

    Args:
        ddf: ``(ndim, *spatial)`` numpy array or tensor, voxels.
        affine: ``(ndim+1, ndim+1)`` or 4x4 voxel-to-world matrix (any frame: RAS for nibabel,
            LPS for ITK).

    Returns:
        ``(*spatial, ndim)`` numpy array (float32, or float64 for float64 input).
    """
    u = as_numpy(ddf)
    if u.ndim not in (3, 4) or u.shape[0] != u.ndim - 1:
        raise ValueError(f"ddf must have shape (ndim, *spatial) with ndim 2 or 3, got shape {u.shape}.")
    ndim = u.shape[0]
    linear = _linear_part(affine, ndim)
    out = np.einsum("ij,j...->...i", linear, u.astype(np.float64, copy=False))
    return out.astype(_result_dtype(u), copy=False)


def world_displacement_to_ddf(displacement: Any, affine: Any) -> np.ndarray:
    """World displacement ``(*spatial, ndim)`` (mm) -> voxel DDF ``(ndim, *spatial)``.

    Inverse of :func:`ddf_to_world_displacement`: ``u(x) = inv(A[:ndim, :ndim]) @ d(x)``.
    """
    d = as_numpy(displacement)
    if d.ndim not in (3, 4) or d.shape[-1] != d.ndim - 1:
        raise ValueError(f"displacement must have shape (*spatial, ndim) with ndim 2 or 3, got shape {d.shape}.")
    ndim = d.shape[-1]
    linear = _linear_part(affine, ndim)
    if abs(np.linalg.det(linear)) < 1e-12:
        raise ValueError(f"affine linear part is singular:\n{linear}")
    out = np.einsum("ij,...j->i...", np.linalg.inv(linear), d.astype(np.float64, copy=False))
    return out.astype(_result_dtype(d), copy=False)
