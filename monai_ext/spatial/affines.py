"""Voxel-to-world affines of images: the per-item affines of a batch and the voxel spacing they give."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["batch_affines", "affine_spacing"]


def batch_affines(image: torch.Tensor, batch_size: int) -> list[np.ndarray]:
    """Per-item affines (RAS, as MONAI's loaders report them) of a batched MetaTensor; identity if absent."""
    ndim = image.ndim - 2
    affine = getattr(image, "affine", None)
    if affine is None:
        return [np.eye(ndim + 1) for _ in range(batch_size)]
    affine = torch.as_tensor(affine).detach().cpu().double().numpy()
    if affine.ndim == 2:
        affine = np.broadcast_to(affine, (batch_size, *affine.shape))
    return [np.asarray(a) for a in affine]


def affine_spacing(affine: np.ndarray, ndim: int) -> tuple[float, ...]:
    """Voxel spacing along each of the first ``ndim`` array axes: the norms of the affine's columns
    (all world rows, so a 2-D slice stored with a 4x4 affine in an oblique plane is measured right)."""
    return tuple(float(np.linalg.norm(affine[:-1, j])) for j in range(ndim))
