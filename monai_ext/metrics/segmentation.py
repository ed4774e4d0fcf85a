"""Overlap and surface-distance scores of label maps per label (Dice, HD95).

Inputs are integer label maps ``(B, 1, *spatial)`` (2-D or 3-D) on the same grid, for example the
warped moving label and the fixed label. The label set is explicit (background is scored only when
listed) and values need not be 0..L-1. Dice is counted from a joint histogram of the two maps (one
``torch.bincount``, memory O(voxels) for any number of labels) and equals MONAI's ``DiceMetric``;
HD95 is MONAI's ``compute_hausdorff_distance``, one label at a time.

Edge cases (per batch item and label):

============================  ==========  ==========
label present in              Dice        HD95
============================  ==========  ==========
both maps                     score       score (mm)
only one map                  0.0         NaN
neither map                   NaN         NaN
============================  ==========  ==========

NaN marks "undefined" so that a later ``nanmean`` skips it. HD95 has no finite value when one
surface is missing (MONAI returns NaN there too); the miss is still penalised through Dice = 0.
With ``moving_label`` (the moving map before warping, on any grid), a label absent from the
reference or from that map is NaN as well, as the LUMIR and Learn2Reg evaluators count it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import compute_hausdorff_distance
from monai.utils import convert_to_tensor
from scipy import ndimage

__all__ = ["dice_per_label", "hd95_per_label"]


def _check_label_maps(pred_label, ref_label, labels: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Validate two label maps ``(B, 1, *spatial)`` and a label set; round floating maps."""
    pred = convert_to_tensor(pred_label, track_meta=False)
    ref = convert_to_tensor(ref_label, track_meta=False)
    if pred.ndim not in (4, 5) or pred.shape[1] != 1:
        raise ValueError(
            f"pred_label must have shape (B, 1, *spatial) with 2 or 3 spatial dims, got {tuple(pred.shape)}."
        )
    if pred.shape != ref.shape:
        raise ValueError(
            f"pred_label and ref_label must have the same shape, got {tuple(pred.shape)} and {tuple(ref.shape)}."
        )
    labels = [int(v) for v in labels]
    if not labels:
        raise ValueError("labels is empty: give at least one label value to score.")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels has repeated values: {labels}.")
    # Floating label maps (e.g. after nearest-neighbour warping) are rounded to the nearest integer.
    if pred.is_floating_point():
        pred = torch.round(pred)
    if ref.is_floating_point():
        ref = torch.round(ref)
    return pred, ref, labels


def _label_index(label_map: torch.Tensor, labels: list[int]) -> torch.Tensor:
    """Map each voxel to the position of its value in ``labels`` (0..L-1), or to L for any other value.

    Returns a ``(B, N)`` int64 tensor (N voxels). A sorted search keeps memory at O(N) whatever the
    number and the magnitude of the label values (they need not be 0..L-1).
    """
    # int64 / float64 hold every label value exactly (a uint8 map may be scored for label 300)
    dtype = torch.float64 if label_map.is_floating_point() else torch.int64
    values = label_map.flatten(1).to(dtype)
    table = torch.as_tensor(labels, dtype=dtype, device=values.device)
    sorted_values, order = torch.sort(table)
    position = torch.searchsorted(sorted_values, values).clamp_(max=len(labels) - 1)
    found = sorted_values[position] == values  # NaN and values not listed are never found
    return torch.where(found, order[position], torch.full_like(position, len(labels)))


def _label_boxes(pred: torch.Tensor, ref: torch.Tensor, labels: list[int]) -> list[tuple[slice, ...]]:
    """Per label, the box holding it in ``pred`` or ``ref`` (``(*spatial)`` maps), grown by one voxel
    and clipped to the grid; an empty box where the label is in neither.

    ``compute_hausdorff_distance`` crops to the same box (one-voxel margin, zeros beyond the grid), so
    scoring the crop gives the same distances while each label costs the size of its box, not of the
    grid. ``scipy.ndimage.find_objects`` finds the boxes of every label in one pass (torch has no
    such reduction).
    """
    shape = tuple(pred.shape)
    size = len(labels)
    boxes: list[tuple[slice, ...]] = [tuple(slice(0, 0) for _ in shape)] * size
    found: list[list[tuple[slice, ...] | None]] = []
    for label_map in (pred, ref):
        # positions 1..L for the listed labels, 0 for any other value
        index = _label_index(label_map.reshape(1, -1), labels).reshape(shape)
        index = torch.where(index < size, index + 1, 0).to(torch.int32).cpu().numpy()
        found.append(ndimage.find_objects(index, max_label=size))
    for position, (in_pred, in_ref) in enumerate(zip(*found)):
        present = [box for box in (in_pred, in_ref) if box is not None]
        if present:
            boxes[position] = tuple(
                slice(max(min(b[axis].start for b in present) - 1, 0), min(max(b[axis].stop for b in present) + 1, n))
                for axis, n in enumerate(shape)
            )
    return boxes


def _joint_counts(pred: torch.Tensor, ref: torch.Tensor, labels: list[int]) -> torch.Tensor:
    """Joint histogram ``(B, L + 1, L + 1)``: voxels with pred label i and ref label j (L = any other value).

    One ``torch.bincount`` over ``b (L+1)^2 + i (L+1) + j`` instead of one binary channel per label:
    memory O(voxels) rather than O(voxels x labels) (LUMIR: 133 labels at 160 x 224 x 192).
    """
    size = len(labels) + 1
    batch = pred.shape[0]
    joint = _label_index(pred, labels) * size + _label_index(ref, labels)
    joint += torch.arange(batch, device=joint.device)[:, None] * size**2
    return torch.bincount(joint.flatten(), minlength=batch * size**2).reshape(batch, size, size)


def _scored(ref: torch.Tensor, moving_label, labels: list[int]) -> torch.Tensor | None:
    """``(B, L)``: label present in the reference and in the original moving map; None without one."""
    if moving_label is None:
        return None
    moving = convert_to_tensor(moving_label, track_meta=False)
    moving = torch.round(moving) if moving.is_floating_point() else moving
    size = len(labels)
    present = []
    for label_map in (ref, moving.to(ref.device)):
        index = _label_index(label_map, labels) + torch.arange(label_map.shape[0], device=ref.device)[:, None] * (
            size + 1
        )
        counts = torch.bincount(index.flatten(), minlength=label_map.shape[0] * (size + 1))
        present.append(counts.reshape(label_map.shape[0], size + 1)[:, :size] > 0)
    return present[0] & present[1]


def dice_per_label(pred_label, ref_label, labels: Sequence[int], moving_label=None) -> torch.Tensor:
    """Dice similarity coefficient ``2|P n R| / (|P| + |R|)`` of each listed label.

    The same numbers as ``monai.metrics.DiceMetric(include_background=True, reduction="none",
    ignore_empty=False)`` on one binary channel per label (the tests check this), except that labels
    absent from both maps are NaN (MONAI reports 1.0 there). A label present in only one map scores 0.
    Counted with one joint ``torch.bincount`` of the two label maps, so memory is O(voxels) for any
    number of labels instead of a one-hot encoding of O(voxels x labels).

    Args:
        pred_label: ``(B, 1, *spatial)`` label map (e.g. warped moving label).
        ref_label: ``(B, 1, *spatial)`` reference label map (e.g. fixed label), same shape.
        labels: label values to score, in output order (e.g. ``(1, 2, 3)`` for LV, Myo, RV).
        moving_label: ``(B, 1, *moving_spatial)`` moving map before warping: labels absent from it or
            from ``ref_label`` are NaN (None: not applied).

    Returns:
        ``(B, len(labels))`` float32 Dice in [0, 1], NaN where undefined.
    """
    pred, ref, labels = _check_label_maps(pred_label, ref_label, labels)
    counts = _joint_counts(pred, ref, labels).double()
    size = len(labels)
    intersection = torch.diagonal(counts, dim1=1, dim2=2)[:, :size]
    total = counts.sum(2)[:, :size] + counts.sum(1)[:, :size]  # |P| + |R|
    dice = torch.where(total > 0, 2 * intersection / total.clamp(min=1), torch.full_like(total, float("nan")))
    scored = _scored(ref, moving_label, labels)
    if scored is not None:
        dice = torch.where(scored, dice, torch.full_like(dice, float("nan")))
    return dice.float()


def _spacing_list(spacing, batch: int, ndim: int) -> list[tuple[float, ...]]:
    """Normalise ``spacing`` (number, per-axis sequence, per-item sequences, array or tensor)."""
    if spacing is None:
        raise ValueError(
            "spacing is required (mm per voxel): a number, one value per spatial axis, or one sequence per batch item."
        )
    if isinstance(spacing, torch.Tensor):
        spacing = spacing.detach().cpu().numpy()
    arr = np.asarray(spacing, dtype=np.float64)
    if arr.ndim == 0:
        values = arr.reshape(1, 1).repeat(batch, 0)
    elif arr.ndim == 1:
        if arr.shape[0] not in (1, ndim):
            raise ValueError(f"spacing must have 1 or {ndim} values (one per spatial axis), got {arr.tolist()}.")
        values = np.broadcast_to(arr, (batch, arr.shape[0]))
    elif arr.ndim == 2:
        if arr.shape[0] != batch or arr.shape[1] not in (1, ndim):
            raise ValueError(
                f"per-item spacing must have shape ({batch}, {ndim}) (batch, spatial axes), got {arr.shape}."
            )
        values = arr
    else:
        raise ValueError(f"spacing must be a number or a sequence (of sequences), got an array of shape {arr.shape}.")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"spacing must be positive and finite, got {np.asarray(spacing).tolist()}.")
    values = np.broadcast_to(values, (batch, ndim))
    return [tuple(float(v) for v in row) for row in values]


def hd95_per_label(
    pred_label, ref_label, labels: Sequence[int], spacing, percentile: float = 95.0, moving_label=None
) -> torch.Tensor:
    """95th-percentile symmetric Hausdorff distance (HD95) of each listed label, in millimetres.

    Computed by ``monai.metrics.compute_hausdorff_distance(include_background=True,
    percentile=percentile, spacing=spacing)``: the larger of the two directed 95th percentiles of
    the Euclidean distances between the surface voxels (voxels removed by a binary erosion) of the
    two masks, distances scaled by the voxel spacing. NaN where the label is missing from either map.

    Args:
        pred_label: ``(B, 1, *spatial)`` label map.
        ref_label: ``(B, 1, *spatial)`` reference label map, same shape.
        labels: label values to score, in output order.
        moving_label: as for :func:`dice_per_label`.
        spacing: voxel size in mm: one number (isotropic), one value per spatial axis (array order, the
            same for every item), or one such sequence per batch item (e.g. ``(B, ndim)`` pixdim).
        percentile: percentile of the surface distances (95 for HD95, 100 for the Hausdorff distance).

    Returns:
        ``(B, len(labels))`` float32 distances in mm, NaN where undefined.
    """
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}.")
    pred, ref, labels = _check_label_maps(pred_label, ref_label, labels)
    spacing_list = _spacing_list(spacing, pred.shape[0], pred.ndim - 2)
    counts = _joint_counts(pred, ref, labels)
    size = len(labels)
    both = (counts.sum(2)[:, :size] > 0) & (counts.sum(1)[:, :size] > 0)  # (B, L): label in both maps
    scored = _scored(ref, moving_label, labels)
    if scored is not None:
        both &= scored
    hd = torch.full(both.shape, float("nan"), dtype=torch.float32, device=pred.device)
    # One binary channel at a time, cropped to the label's box in either map, and only for the items
    # holding the label in both maps (the others are NaN anyway): memory O(voxels), and no pass over
    # the whole grid per label.
    for item in torch.nonzero(both.any(1)).flatten().tolist():
        boxes = _label_boxes(pred[item, 0], ref[item, 0], labels)
        for index in torch.nonzero(both[item]).flatten().tolist():
            crop = (slice(item, item + 1), slice(None)) + boxes[index]
            with warnings.catch_warnings():
                # raised by MONAI's own internal call of get_mask_edges, not by our arguments
                warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*")
                distance = compute_hausdorff_distance(
                    (pred[crop] == labels[index]).float(),
                    (ref[crop] == labels[index]).float(),
                    include_background=True,
                    percentile=percentile,
                    spacing=[spacing_list[item]],
                )
            hd[item, index] = distance[0, 0].float().to(hd.device)
    return hd
