"""Displacement files in the Learn2Reg / LUMIR submission format."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_ext.io.nifti import save_nifti

__all__ = [
    "SUBMISSION_TEMPLATES",
    "submission_filename",
    "write_submission_displacement",
    "read_submission_displacement",
]

#: the challenges' current file-name rules: LUMIR reads ``disp_FFFF_MMMM``; Learn2Reg's evaluator
#: accepts that short form only for pairs of modalities 0000 -> 0001 and reads the full
#: ``disp_FFFF_0000_MMMM_0000`` for OASIS (give the short template for the older evaluators)
SUBMISSION_TEMPLATES = {
    "lumir": "disp_{fixed}_{moving}.nii.gz",
    "learn2reg": "disp_{fixed}_{fixed_modality}_{moving}_{moving_modality}.nii.gz",
}

# "<anything>_<case>_<modality>.nii.gz" (Learn2Reg / LUMIR images) or "<anything><case>.nii.gz"
_CASE_AND_MODALITY = re.compile(r"(\d+)_(\d{4})(?:\.nii(?:\.gz)?)?$")
_CASE = re.compile(r"(\d+)(?:\.nii(?:\.gz)?)?$")
_FOUR_DIGITS = re.compile(r"(?<!\d)(\d{4})(?!\d)")


def _case_and_modality(name: str) -> tuple[str, str]:
    """``(case, modality)`` of a Learn2Reg file or subject name: ``LUMIRMRI_3455_0000.nii.gz`` ->
    ``("3455", "0000")``; ``OASIS_0438`` -> ``("0438", "0000")``; a neurite-OASIS file named after
    its folder, ``OASIS_OAS1_0438_MR1/aligned_norm.nii.gz`` -> ``("0438", "0000")``."""
    path = Path(str(name))
    match = _CASE_AND_MODALITY.search(path.name)
    if match:
        return match.group(1).zfill(4), match.group(2)
    match = _CASE.search(path.name)
    if match:
        return match.group(1).zfill(4), "0000"
    for folder in path.parents:
        match = _FOUR_DIGITS.search(folder.name)
        if match:
            return match.group(1), "0000"
    raise ValueError(
        f"cannot find a case number in {name!r} (expected e.g. 'LUMIRMRI_3455_0000.nii.gz' or "
        "'OASIS_OAS1_0438_MR1/aligned_norm.nii.gz')."
    )


def submission_filename(fixed: str, moving: str, template: str = "lumir") -> str:
    """File name of a pair's displacement in a Learn2Reg / LUMIR submission.

    ``fixed`` and ``moving`` are file or subject names; their case numbers and modalities fill
    ``template``, a name of :data:`SUBMISSION_TEMPLATES` (``"lumir"``: ``disp_3455_3454.nii.gz``;
    ``"learn2reg"``: ``disp_0438_0000_0439_0000.nii.gz``) or a format string with ``{fixed}``,
    ``{moving}``, ``{fixed_modality}`` and ``{moving_modality}``.
    """
    fixed_case, fixed_modality = _case_and_modality(fixed)
    moving_case, moving_modality = _case_and_modality(moving)
    return SUBMISSION_TEMPLATES.get(template, template).format(
        fixed=fixed_case, moving=moving_case, fixed_modality=fixed_modality, moving_modality=moving_modality
    )


def write_submission_displacement(path: str | Path, ddf: Any, affine: Any | None = None) -> Path:
    """Write a DDF as a Learn2Reg / LUMIR displacement file (atomically).

    The challenges read ``[X, Y, Z, 3]`` (2-D: ``[X, Y, 2]``) arrays of voxel displacements on
    the fixed image grid with the same pull-back convention as ``monai_ext.spatial``
    (``warped(x) = moving(x + u(x))``), stored as float32 NIfTI.

    Args:
        path: output ``.nii.gz`` path.
        ddf: ``(ndim, *spatial)`` voxel displacement.
        affine: the fixed image's 4x4 affine (identity if None).
    """
    ddf = ddf.detach().cpu().numpy() if isinstance(ddf, torch.Tensor) else np.asarray(ddf)
    if ddf.ndim < 3 or ddf.shape[0] != ddf.ndim - 1:
        raise ValueError(f"ddf must have shape (ndim, *spatial), got {ddf.shape}.")
    array = np.moveaxis(ddf.astype(np.float32), 0, -1)
    # a plain (X, Y, Z, 3) array, as the challenges' evaluation scripts read it (not a 5-D NIfTI vector)
    return save_nifti(path, array, np.eye(4) if affine is None else np.asarray(affine), dtype=np.float32)


def read_submission_displacement(path: str | Path) -> np.ndarray:
    """Read a Learn2Reg / LUMIR displacement file back as ``(ndim, *spatial)`` voxels."""
    import nibabel as nib

    array = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
    if array.ndim == 5:  # (X, Y, Z, 1, 3) NIfTI vector layout
        array = array[..., 0, :]
    if array.shape[-1] != array.ndim - 1:
        raise ValueError(f"'{path}': expected an (X, Y[, Z], ndim) displacement array, got shape {array.shape}.")
    return np.moveaxis(array, -1, 0)
