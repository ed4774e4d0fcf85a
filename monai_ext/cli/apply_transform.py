"""``python -m monai_ext.cli apply``: warp an image or label map with a written displacement field.

What ``antsApplyTransforms`` does for ANTs users: the bundles write each registration as an ITK
displacement field on the fixed grid (``ddf.nii.gz`` / ``ddf.h5``, world coordinates), and this
command reads any image of the moving subject (another contrast, a label map at another
resolution) through it onto the fixed grid. With ``--fixed_label`` it also prints the Dice of the
warped label map against it, per label and mean, as the bundles' metrics count it (the non-zero
labels of either map).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from monai_ext.errors import InputError
from monai_ext.io.displacement_field import read_itk_displacement_field
from monai_ext.io.nifti import load_nifti, save_nifti
from monai_ext.metrics.segmentation import dice_per_label
from monai_ext.options import check_option, flag
from monai_ext.spatial import fixed_to_moving_matrix, warp_moving

__all__ = ["apply_transform", "apply_command"]

INTERPOLATIONS = ("linear", "nearest")


def apply_transform(
    transform: str | Path, moving: str | Path, interpolation: str = "linear"
) -> tuple[np.ndarray, np.ndarray]:
    """The ``moving`` image read through ``transform`` on the transform's (fixed) grid.

    Args:
        transform: a displacement field written by the bundles or by ITK / ANTs.
        moving: a NIfTI image in the moving image's world space (any grid).
        interpolation: ``"linear"`` for images, ``"nearest"`` for label maps (values kept).

    Returns:
        ``(warped, affine)``: the warped array on the fixed grid and that grid's RAS affine.
    """
    check_option("interpolation", interpolation, INTERPOLATIONS)
    ddf, fixed_affine = read_itk_displacement_field(transform)
    array, moving_affine = load_nifti(moving)
    ndim = ddf.shape[0]
    if array.ndim != ndim:
        raise InputError(f"{moving}: a {array.ndim}-D image, but the transform {transform} is {ndim}-D.")
    matrix = fixed_to_moving_matrix(fixed_affine, moving_affine, ddf.shape[1:], array.shape, dtype=torch.float64)
    label = interpolation == "nearest"
    image = torch.as_tensor(np.asarray(array, dtype=np.float64))[None, None]
    warped = warp_moving(image, torch.as_tensor(ddf)[None], matrix, label=label)[0, 0].numpy()
    return (np.rint(warped).astype(array.dtype) if label else warped.astype(np.float32)), fixed_affine


def label_dice(warped_label: np.ndarray, fixed_label: np.ndarray) -> dict[int, float]:
    """Dice per label over the non-zero values of either map (the bundles' default label set)."""
    if warped_label.shape != fixed_label.shape:
        raise InputError(f"the warped label {warped_label.shape} and fixed label {fixed_label.shape} grids differ.")
    labels = [int(v) for v in np.union1d(np.unique(warped_label), np.unique(fixed_label)) if v != 0]
    dice = dice_per_label(torch.as_tensor(warped_label)[None, None], torch.as_tensor(fixed_label)[None, None], labels)
    return dict(zip(labels, dice[0].double().tolist()))


def apply_command(
    transform: str,
    moving: str,
    out: str = "",
    interpolation: str = "linear",
    fixed_label: str = "",
    verbose: bool | str = False,
) -> None:
    """Warp ``moving`` with ``transform`` onto the fixed grid, write it to ``out``; with
    ``fixed_label`` (and ``--interpolation nearest``) print the Dice against it (per label with
    ``--verbose true``)."""
    verbose = flag(verbose, "verbose")
    warped, affine = apply_transform(transform, moving, interpolation)
    if out:
        save_nifti(out, warped, affine)
        print(f"warped {moving} -> {out}")
    if not fixed_label:
        return
    if interpolation != "nearest":
        raise InputError("--fixed_label scores a label map: give --interpolation nearest.")
    reference, _ = load_nifti(fixed_label)
    dice = label_dice(warped, reference)
    if verbose:
        for value, score in dice.items():
            print(f"label {value}: Dice {score:.4f}")
    mean = float(np.nanmean(list(dice.values()))) if dice else float("nan")
    print(f"mean Dice over {len(dice)} labels: {mean:.4f}")
