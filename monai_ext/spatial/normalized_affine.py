"""Resampling an image through an affine map of normalised coordinates (GradICON's A.2 augmentation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.utils import convert_to_tensor

from monai_ext.options import check_option

__all__ = ["resample_normalized_affine", "RESAMPLE_MODES"]

RESAMPLE_MODES = ("bilinear", "nearest")


def resample_normalized_affine(image: torch.Tensor, matrix, mode: str = "bilinear") -> torch.Tensor:
    """Pull an image back through an affine map of normalised coordinates: ``out(x) = image(M [x; 1])``.

    Coordinates are normalised per axis to ``[-1, 1]`` with -1 and +1 at the centres of the first and
    last voxels (``align_corners=True``), so the origin is the centre of the field of view and
    ``diag(-1, 1, ...)`` flips axis 0 onto itself. Row ``i`` / column ``j`` of ``M`` refer to spatial
    array axis ``i`` / ``j`` (array order, not torch's reversed ``(x, y, z)`` grid order); the last
    column is the translation in normalised units. Points outside the image read zero
    (``padding_mode="zeros"``): after intensity scaling that is background intensity and label 0.

    Resampling is ``torch.nn.functional.affine_grid`` + ``grid_sample``. A matrix that is exactly a
    diagonal of +-1 without translation (no warp, only flips) is applied with ``torch.flip``: the
    same map, without interpolation round-off.

    Args:
        image: ``(C, *spatial)`` tensor, 2 or 3 spatial dims.
        matrix: ``(ndim, ndim + 1)`` array or tensor.
        mode: ``"bilinear"`` (images) or ``"nearest"`` (labels, values kept).

    Returns:
        ``(C, *spatial)`` tensor: the input's floating dtype; integer or bool input keeps its dtype
        for ``"nearest"`` and becomes float32 for ``"bilinear"``.
    """
    check_option("mode", mode, RESAMPLE_MODES)
    image = convert_to_tensor(image, track_meta=False)
    ndim = image.ndim - 1
    if ndim not in (2, 3):
        raise ValueError(f"image must have shape (C, *spatial) with 2 or 3 spatial dims, got {tuple(image.shape)}.")
    matrix = torch.as_tensor(matrix, dtype=torch.float64).cpu()
    if matrix.shape != (ndim, ndim + 1):
        raise ValueError(
            f"matrix must have shape ({ndim}, {ndim + 1}) for a {ndim}-D image, got {tuple(matrix.shape)}."
        )
    out_dtype = image.dtype if image.is_floating_point() or mode == "nearest" else torch.float32
    linear, shift = matrix[:, :ndim], matrix[:, ndim]
    signs = torch.diagonal(linear)
    if torch.all(shift == 0) and torch.equal(linear, torch.diag(signs)) and torch.all(signs.abs() == 1):
        flipped = [axis + 1 for axis in range(ndim) if signs[axis] < 0]
        return (torch.flip(image, dims=flipped) if flipped else image.clone()).to(out_dtype)
    dtype = image.dtype if image.is_floating_point() else torch.float32
    # affine_grid orders the grid's last dimension as (x, y[, z]) = reversed array axes: reverse both
    # the rows (output components) and the columns (input coordinates) of the linear part.
    order = list(range(ndim - 1, -1, -1))
    theta = torch.as_tensor(matrix, dtype=dtype, device=image.device)[order][:, order + [ndim]]
    grid = F.affine_grid(theta[None], [1, *image.shape], align_corners=True)
    out = F.grid_sample(image[None].to(dtype), grid, mode=mode, padding_mode="zeros", align_corners=True)[0]
    return out.round().to(out_dtype) if out_dtype != dtype else out
