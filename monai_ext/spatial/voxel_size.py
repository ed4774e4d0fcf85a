"""An image resampled to another voxel size over the same normalised coordinates.

The project's normalised coordinates put -1 and 1 on the first and last voxel centres
(``grid_sample`` with ``align_corners=True``). Resampling an image so that those two centres stay
where they are keeps every normalised coordinate on the same world point, so a fixed -> moving
geometry computed for the original grid (``fixed_to_moving_matrix``) also reads the resampled one.
MONAI's ``Spacing`` keeps the first centre only and rounds the field of view, which would shift the
normalised frame; hence this small helper.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.layers.convutils import gaussian_1d

from .filtering import replicate_separable_filtering

__all__ = ["endpoint_shape", "resample_to_spacing"]


def endpoint_shape(shape: Sequence[int], spacing: Sequence[float], target_spacing: Sequence[float]) -> list[int]:
    """Grid size whose first and last voxel centres are those of ``shape``, at about ``target_spacing``:
    ``round((n - 1) * s / t) + 1`` per axis (at least 2)."""
    if not len(shape) == len(spacing) == len(target_spacing):
        raise ValueError(f"shape {tuple(shape)}, spacing {tuple(spacing)} and target {tuple(target_spacing)} differ.")
    if min(spacing) <= 0 or min(target_spacing) <= 0:
        raise ValueError(f"spacings must be positive, got {tuple(spacing)} and {tuple(target_spacing)}.")
    return [max(2, round((int(n) - 1) * float(s) / float(t)) + 1) for n, s, t in zip(shape, spacing, target_spacing)]


def resample_to_spacing(
    image: torch.Tensor, spacing: Sequence[float], target_spacing: Sequence[float], rtol: float = 1e-3
) -> torch.Tensor:
    """``image`` ``(B, C, *spatial)`` with voxel ``spacing`` resampled to about ``target_spacing``,
    keeping its first and last voxel centres (see :func:`endpoint_shape`).

    Linear interpolation; along axes that shrink by a factor ``f > 1`` a Gaussian of ``sigma = 0.5 f``
    voxels is applied first (anti-aliasing, as in the intensity pyramid). Returns ``image`` itself
    when no axis changes size or the spacings agree within ``rtol``.
    """
    ndim = image.ndim - 2
    if ndim not in (2, 3) or len(spacing) != ndim:
        raise ValueError(
            f"image {tuple(image.shape)} must be (B, C, *spatial) with {len(spacing)} spacings, 2-D or 3-D."
        )
    if all(abs(float(s) - float(t)) <= rtol * float(t) for s, t in zip(spacing, target_spacing)):
        return image
    size = endpoint_shape(image.shape[2:], spacing, target_spacing)
    if size == list(image.shape[2:]):
        return image
    factors = [(n - 1) / (m - 1) for n, m in zip(image.shape[2:], size)]
    if any(f > 1.0 for f in factors):
        kernels = [
            gaussian_1d(torch.tensor(0.5 * f), truncated=4.0, normalize=True).to(image)
            if f > 1.0
            else torch.ones(1).to(image)
            for f in factors
        ]
        image = replicate_separable_filtering(image, kernels)
    return F.interpolate(image, size=size, mode="bilinear" if ndim == 2 else "trilinear", align_corners=True)
