"""The scores of the LUMIR and Learn2Reg leaderboards, defined as their official evaluation scripts define them.

Both evaluators (Learn2Reg: MDL-UzL/L2R ``evaluation/``; LUMIR: JHU-MedImage-Reg/LUMIR_L2R
``L2R_LUMIR_Eval/``) read a displacement ``u`` in voxels on the fixed grid and score:

- **labels warped** by ``scipy.ndimage.map_coordinates(moving, x + u(x), order=0)``: nearest
  neighbour with half a voxel rounded up, 0 outside the moving grid (:func:`warp_label_nearest`);
- **Dice** per label, NaN (left out of the mean) when the label is absent from the fixed map or from
  the original moving map; the case's Dice is the ``nanmean`` over the listed labels (LUMIR lists
  label 0 too);
- **HD95** per label with the same NaN rule, as the 95th percentile of DeepMind's area-weighted
  surface distances (``surface_distance.compute_robust_hausdorff``) with spacing 1, i.e. in voxels;
  a label the warp lost is ``inf``;
- **SDlogJ**: ``std(log(clip(det(I + grad u) + 3, 1e-9, 1e9)))`` with central differences, zero
  padding and a 2-voxel crop of every border (optionally inside a mask);
- **TRE**: LUMIR warps the moving landmark map like the labels and takes the mean distance between
  the landmark centroids of the warped and the fixed maps (in voxels); Learn2Reg samples ``u`` at the
  fixed keypoints with cubic splines (``map_coordinates`` order 3) and scales ``p + u(p) - q`` by the
  moving image's spacing.

Case aggregates are the evaluators': mean, standard deviation (``ddof=0``) and 30th percentile of
the per-case values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import map_coordinates
from surface_distance import compute_robust_hausdorff, compute_surface_distances

__all__ = [
    "warp_label_nearest",
    "leaderboard_dice",
    "leaderboard_hd95",
    "leaderboard_sdlogj",
    "landmark_map_tre",
    "keypoint_tre",
    "case_aggregates",
]


def _displacement(disp: np.ndarray, shape: Sequence[int] | None = None) -> np.ndarray:
    disp = np.asarray(disp, dtype=np.float64)
    if disp.ndim < 3 or disp.shape[0] != disp.ndim - 1:
        raise ValueError(f"the displacement must be (ndim, *spatial) in voxels, got shape {disp.shape}.")
    if shape is not None and tuple(disp.shape[1:]) != tuple(shape):
        raise ValueError(f"the displacement grid {disp.shape[1:]} is not the fixed grid {tuple(shape)}.")
    return disp


def warp_label_nearest(moving: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """``moving(x + u(x))`` on the fixed grid as the evaluators warp label and landmark maps
    (``map_coordinates`` order 0: half a voxel rounds up, outside the moving grid is 0)."""
    disp = _displacement(disp)
    grid = np.meshgrid(*[np.arange(s) for s in disp.shape[1:]], indexing="ij")
    return map_coordinates(np.asarray(moving), np.stack(grid) + disp, order=0)


def _scored(fixed: np.ndarray, moving: np.ndarray, label: int) -> bool:
    return bool((fixed == label).any() and (moving == label).any())


def leaderboard_dice(fixed: np.ndarray, moving: np.ndarray, warped: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """Dice of ``warped == l`` against ``fixed == l`` per label; NaN where ``l`` is absent from ``fixed``
    or from the original ``moving`` map."""
    dice = []
    for label in labels:
        if not _scored(fixed, moving, label):
            dice.append(np.nan)
            continue
        a, b = fixed == label, warped == label
        dice.append(2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))
    return np.asarray(dice, dtype=np.float64)


def leaderboard_hd95(
    fixed: np.ndarray, moving: np.ndarray, warped: np.ndarray, labels: Sequence[int], spacing: float = 1.0
) -> np.ndarray:
    """95th percentile of the area-weighted surface distances per label (NaN rule of
    :func:`leaderboard_dice`; ``inf`` when the warp lost the label); ``spacing`` 1: voxels, as both
    evaluators score."""
    spacing_mm = np.full(fixed.ndim, float(spacing))
    hd95 = []
    for label in labels:
        if not _scored(fixed, moving, label):
            hd95.append(np.nan)
            continue
        if not (warped == label).any():
            # the package's answer for an empty surface, given here: its own code for it spells
            # np.Inf, which numpy 2 removed
            hd95.append(np.inf)
            continue
        distances = compute_surface_distances(fixed == label, warped == label, spacing_mm)
        hd95.append(compute_robust_hausdorff(distances, 95.0))
    return np.asarray(hd95, dtype=np.float64)


def _central_difference(values: np.ndarray, axis: int) -> np.ndarray:
    """``(v[i + 1] - v[i - 1]) / 2`` with zeros outside the grid (``scipy.ndimage.correlate`` with
    ``[-0.5, 0, 0.5]``, ``mode="constant"``)."""
    padded = np.pad(values, [(1, 1) if a == axis else (0, 0) for a in range(values.ndim)])
    ahead = np.take(padded, np.arange(2, values.shape[axis] + 2), axis=axis)
    behind = np.take(padded, np.arange(0, values.shape[axis]), axis=axis)
    return 0.5 * (ahead - behind)


def leaderboard_sdlogj(disp: np.ndarray, mask: np.ndarray | None = None) -> float:
    """``std(log(clip(det(I + grad u) + 3, 1e-9, 1e9)))`` over the grid cropped by 2 voxels on every side
    (inside ``mask``, given on the full grid, when set)."""
    disp = _displacement(disp)
    ndim = disp.shape[0]
    crop = tuple(slice(2, -2) for _ in range(ndim))
    jacobian = np.empty((ndim, ndim, *disp.shape[1:]))
    for component in range(ndim):
        for axis in range(ndim):
            jacobian[component, axis] = _central_difference(disp[component], axis) + (component == axis)
    jacobian = np.moveaxis(jacobian[(slice(None), slice(None), *crop)], (0, 1), (-2, -1))
    log_jacobian = np.log(np.clip(np.linalg.det(jacobian) + 3.0, 1e-9, 1e9))
    if mask is not None:
        return float(log_jacobian[np.asarray(mask)[crop] > 0].std())
    return float(log_jacobian.std())


def landmark_map_tre(warped_moving_landmarks: np.ndarray, fixed_landmarks: np.ndarray, spacing: float = 1.0) -> float:
    """LUMIR's TRE: mean distance between the centroids of each landmark (the non-zero values of the
    fixed map) in the warped moving map and in the fixed map, times ``spacing`` (1: voxels). NaN when
    a landmark is missing from the warped map."""
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in fixed_landmarks.shape], indexing="ij")).reshape(
        fixed_landmarks.ndim, -1
    )
    errors = []
    for value in np.unique(fixed_landmarks):
        if value == 0:
            continue
        centroids = []
        for landmark_map in (warped_moving_landmarks, fixed_landmarks):
            weight = (landmark_map == value).reshape(-1).astype(np.float64)
            centroids.append((grid * weight).sum(1) / weight.sum() if weight.sum() else np.full(grid.shape[0], np.nan))
        errors.append(np.linalg.norm((centroids[0] - centroids[1]) * spacing))
    return float(np.mean(errors))


def keypoint_tre(
    fixed_points: np.ndarray, moving_points: np.ndarray, disp: np.ndarray, moving_spacing: Sequence[float]
) -> np.ndarray:
    """Learn2Reg's TRE per keypoint: ``|(p + u(p) - q) * spacing_moving|`` with ``u`` sampled at the fixed
    keypoints ``p`` (voxels, ``(K, ndim)``) by cubic splines; ``q`` are the moving keypoints."""
    disp = _displacement(disp)
    points = np.asarray(fixed_points, dtype=np.float64)
    sampled = np.stack([map_coordinates(disp[c], points.T) for c in range(disp.shape[0])], axis=1)
    return np.linalg.norm((points + sampled - np.asarray(moving_points)) * np.asarray(moving_spacing), axis=1)


def case_aggregates(values: Sequence[float]) -> dict[str, float]:
    """``mean``, ``std`` and ``30`` (30th percentile) of per-case values, as the evaluators aggregate."""
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std()), "30": float(np.quantile(array, 0.3))}
