"""Target registration error (TRE) of landmarks, in millimetres.

Landmarks come either as point lists or as landmark *label maps* (one integer value per landmark,
0 = background), the form LUMIR distributes (``landmarksVal/LUMIRMRI_NNNN_0000.nii.gz``). A
landmark's position is the centroid of the voxels holding its value, in voxel coordinates along
the array axes.

Two ways to score a displacement field ``u`` (DDF convention of ``monai_ext.spatial``: pull-back,
a fixed voxel ``x`` corresponds to the moving voxel ``x + u(x)``):

- ``"points"``: each fixed landmark ``p`` is mapped to ``p + u(p)`` (``u`` interpolated linearly at
  ``p``) and compared with its moving landmark ``q``: ``TRE = |(p + u(p) - q) * spacing|``. This is
  the keypoint TRE of the Learn2Reg evaluation (``compute_tre`` in MDL-UzL/L2R
  ``evaluation/utils.py``, which samples ``u`` with ``scipy.ndimage.map_coordinates``' cubic
  spline instead of linearly).
- ``"warped_map"``: the moving landmark map is warped onto the fixed grid with ``u`` (nearest
  neighbour, zero outside) and each landmark's centroid there is compared with its fixed centroid.
  This is what the official LUMIR evaluation does for its landmark label maps
  (JHU-MedImage-Reg/LUMIR_L2R ``L2R_LUMIR_Eval/evaluation.py`` ``tre`` metric and ``utils.calc_TRE``;
  it reports voxels, which are millimetres on LUMIR's 1 mm grid). A landmark that no fixed voxel
  maps into vanishes from the warped map and scores NaN.

For a translation both give the same value; for small landmarks and smooth fields they agree to
within the sub-voxel effects of nearest-neighbour resampling.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.utils import convert_to_tensor

from monai_ext.options import check_option
from monai_ext.spatial import evaluate_displacement_chain, warp_image

__all__ = ["TRE_METHODS", "landmark_centroids", "target_registration_error", "tre_from_landmark_maps"]

TRE_METHODS = ("points", "warped_map")


def _as_label_map(label_map, spatial_dims: int | None, name: str) -> torch.Tensor:
    """Return a ``(*spatial)`` tensor (2 or 3 dims), leading singleton (batch / channel) axes dropped."""
    array = convert_to_tensor(label_map, track_meta=False).detach()
    if spatial_dims is None:
        while array.ndim > 3 and array.shape[0] == 1:
            array = array[0]
    else:
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        while array.ndim > spatial_dims and array.shape[0] == 1:
            array = array[0]
    if array.ndim not in (2, 3) or (spatial_dims is not None and array.ndim != spatial_dims):
        raise ValueError(
            f"{name} must be one landmark label map of shape (*spatial) or (1, *spatial) with 2 or 3 spatial "
            f"dims, got shape {tuple(convert_to_tensor(label_map, track_meta=False).shape)}."
        )
    if array.is_floating_point():
        if not torch.isfinite(array).all():
            raise ValueError(f"{name} holds NaN or infinite values; a landmark label map holds integers.")
        array = torch.round(array)  # nibabel's get_fdata and resampling give floats holding integers
    return array.to(torch.int64)


def landmark_centroids(
    label_map, values: Sequence[int] | None = None, spatial_dims: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroid of each landmark of a landmark label map (one value per landmark).

    Args:
        label_map: ``(*spatial)`` (2-D or 3-D) integer map, or with leading singleton axes such as
            ``(1, *spatial)``; floating maps are rounded. 0 is background.
        values: landmark values to locate, in output order; default: every non-zero value present,
            ascending. A listed value absent from the map gets a NaN centroid.
        spatial_dims: 2 or 3 to resolve ``(1, H, W)`` as a 2-D map with a channel axis (by default a
            3-dim array is read as a 3-D map).

    Returns:
        ``values`` ``(K,)`` int64 and ``points`` ``(K, ndim)`` float64: mean voxel coordinates along
        the array axes (voxel centres at integers ``0 .. N-1``).
    """
    labels = _as_label_map(label_map, spatial_dims, "label_map")
    if values is None:
        wanted = torch.unique(labels)
        wanted = wanted[wanted != 0]
    else:
        wanted = torch.as_tensor([int(v) for v in values], dtype=torch.int64)
        if wanted.unique().numel() != wanted.numel():
            raise ValueError(f"values has repeated entries: {wanted.tolist()}.")
    wanted = wanted.to(labels.device)
    points = torch.full((wanted.numel(), labels.ndim), float("nan"), dtype=torch.float64, device=labels.device)
    if wanted.numel() == 0:
        return wanted.cpu(), points.cpu()
    # Only the voxels of the wanted landmarks are visited (landmarks are a tiny part of the volume).
    sorted_values, order = torch.sort(wanted)
    coords = torch.nonzero(torch.isin(labels, wanted))  # (N, ndim) voxel indices
    slot = order[torch.searchsorted(sorted_values, labels[tuple(coords.T)])]
    sums = torch.zeros_like(points).index_add_(0, slot, coords.to(torch.float64))
    counts = torch.bincount(slot, minlength=wanted.numel()).to(torch.float64)
    present = counts > 0
    points[present] = sums[present] / counts[present, None]
    return wanted.cpu(), points.cpu()


def _spacing_vector(spacing, ndim: int) -> torch.Tensor:
    if spacing is None:
        raise ValueError("spacing is required (mm per voxel): a number or one value per spatial axis.")
    if isinstance(spacing, torch.Tensor):
        spacing = spacing.detach().cpu().numpy()
    arr = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if arr.size not in (1, ndim):
        raise ValueError(f"spacing must have 1 or {ndim} values (one per spatial axis), got {arr.tolist()}.")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"spacing must be positive and finite, got {arr.tolist()}.")
    return torch.from_numpy(np.broadcast_to(arr, (ndim,)).copy())


def _points(points, name: str) -> torch.Tensor:
    array = torch.as_tensor(convert_to_tensor(points, track_meta=False), dtype=torch.float64)
    if array.ndim != 2 or array.shape[1] not in (2, 3):
        raise ValueError(f"{name} must have shape (K, ndim) with ndim 2 or 3, got {tuple(array.shape)}.")
    return array


def _single_ddf(ddf, ndim: int) -> torch.Tensor:
    """Return ``(1, ndim, *spatial)`` from ``(ndim, *spatial)`` or ``(1, ndim, *spatial)``."""
    field = convert_to_tensor(ddf, track_meta=False)
    if field.ndim == ndim + 1:
        field = field[None]
    if field.ndim != ndim + 2 or field.shape[:2] != (1, ndim):
        raise ValueError(
            f"ddf must be one displacement field of shape ({ndim}, *spatial) or (1, {ndim}, *spatial) for "
            f"{ndim}-D points, got {tuple(field.shape)}."
        )
    if not field.is_floating_point():
        field = field.float()
    return field


def _sample_displacement(ddf, points: torch.Tensor) -> torch.Tensor:
    """Displacement ``u(p)`` (voxels) at points ``(K, ndim)``, interpolated (bi/tri)linearly.

    Reuses ``monai_ext.spatial.evaluate_displacement_chain``, the project's point
    sampler (``grid_sample`` with ``align_corners=True``; points outside the grid take the value at
    the nearest border voxel). Returns ``(K, ndim)`` float64.
    """
    ndim = points.shape[1]
    field = _single_ddf(ddf, ndim)
    if points.shape[0] == 0:
        return torch.zeros(0, ndim, dtype=torch.float64)
    # grid_sample needs a point grid with ndim axes: K points laid out as (K, 1[, 1])
    grid = points.T.reshape(1, ndim, points.shape[0], *([1] * (ndim - 1)))
    dtype = torch.promote_types(field.dtype, torch.float32)
    values = evaluate_displacement_chain(
        [field.to(dtype)], list(field.shape[2:]), grid.to(device=field.device, dtype=dtype)
    )
    return values.reshape(ndim, -1).T.to(device="cpu", dtype=torch.float64)


def target_registration_error(fixed_points, moving_points, ddf, spacing) -> torch.Tensor:
    """TRE of corresponding landmarks: ``|(p + u(p) - q) * spacing|`` per landmark, in mm.

    ``p`` is a fixed landmark and ``q`` its moving counterpart, both in voxel coordinates along the
    array axes; ``u`` is the DDF on the fixed grid (pull-back: fixed voxel ``x`` corresponds to
    moving voxel ``x + u(x)``), interpolated linearly at ``p``. ``ddf=None`` scores the identity
    (the initial TRE).

    Args:
        fixed_points: ``(K, ndim)`` fixed landmark coordinates (voxels), ndim 2 or 3.
        moving_points: ``(K, ndim)`` corresponding moving landmark coordinates (voxels).
        ddf: ``(ndim, *spatial)`` or ``(1, ndim, *spatial)`` displacement in voxels, or None.
        spacing: voxel size in mm along the array axes (a number, or ``ndim`` values): the moving
            grid's, which in the DDF convention is the fixed grid's too.

    Returns:
        ``(K,)`` float64 distances in mm (NaN where a point is NaN).
    """
    fixed = _points(fixed_points, "fixed_points")
    moving = _points(moving_points, "moving_points")
    if fixed.shape != moving.shape:
        raise ValueError(
            f"fixed_points and moving_points must have the same shape, got {tuple(fixed.shape)} and "
            f"{tuple(moving.shape)}."
        )
    mapped = fixed if ddf is None else fixed + _sample_displacement(ddf, fixed)
    scale = _spacing_vector(spacing, fixed.shape[1])
    return torch.linalg.vector_norm((mapped - moving) * scale, dim=1)


def tre_from_landmark_maps(
    fixed_map,
    moving_map,
    ddf,
    spacing,
    method: str = "points",
    return_values: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """TRE of the landmarks of two landmark label maps, paired by value, in mm.

    Landmarks are the non-zero values present in *both* maps (a value missing from either has no
    pair and is left out), ascending. See the module docstring for the two methods.

    Args:
        fixed_map: fixed landmark label map ``(*spatial)`` or ``(1, *spatial)``.
        moving_map: moving landmark label map on the same grid.
        ddf: ``(ndim, *spatial)`` or ``(1, ndim, *spatial)`` displacement in voxels on that grid, or
            None for the identity.
        spacing: voxel size in mm along the array axes (a number or ``ndim`` values).
        method: ``"points"`` (fixed centroids mapped through ``x + u(x)``) or ``"warped_map"``
            (centroids in the nearest-neighbour warped moving map, as LUMIR's official evaluation).
        return_values: also return the landmark values.

    Returns:
        ``(K,)`` float64 TRE per landmark (``(values, tre)`` with ``return_values``); empty when the
        maps share no landmark.
    """
    check_option("method", method, TRE_METHODS)
    fixed = _as_label_map(fixed_map, None, "fixed_map")
    moving = _as_label_map(moving_map, fixed.ndim, "moving_map")
    if fixed.shape != moving.shape:
        raise ValueError(
            f"fixed_map and moving_map must share a grid, got {tuple(fixed.shape)} and {tuple(moving.shape)}."
        )
    fixed_values, fixed_points = landmark_centroids(fixed)
    moving_values = torch.unique(moving)
    values = fixed_values[torch.isin(fixed_values, moving_values.cpu())]
    fixed_points = fixed_points[torch.isin(fixed_values, values)]
    if ddf is not None:
        field = _single_ddf(ddf, fixed.ndim)
        if tuple(field.shape[2:]) != tuple(fixed.shape):
            raise ValueError(
                f"ddf grid {tuple(field.shape[2:])} differs from the landmark maps' grid {tuple(fixed.shape)}."
            )
    if method == "points" or ddf is None:
        _, moving_points = landmark_centroids(moving, values.tolist())
        tre = target_registration_error(fixed_points, moving_points, ddf, spacing)
    else:
        # Nearest-neighbour pull-back of the moving map, zero outside (map_coordinates order=0,
        # mode="constant" in the official evaluation); float64 holds any landmark value exactly.
        warped = warp_image(
            moving[None, None].to(device=field.device, dtype=torch.float64),
            field.to(torch.float64),
            mode="nearest",
            padding_mode="zeros",
        )
        _, warped_points = landmark_centroids(warped[0, 0], values.tolist())
        tre = target_registration_error(fixed_points, warped_points, None, spacing)
    return (values, tre) if return_values else tre
