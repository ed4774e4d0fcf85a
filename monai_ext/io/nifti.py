"""NIfTI-1 reading and atomic writing through nibabel.

Arrays are in nibabel's (RAS) voxel order: array axis ``c`` is voxel index ``c`` of the 4x4
affine, which is stored as both qform and sform (code 1, scanner), so ITK, ANTs, FSL and
nibabel agree on the geometry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from monai_ext.io.atomic import atomic_write_path, full_suffix
from monai_ext.spatial import as_numpy

__all__ = ["save_nifti", "load_nifti"]

_NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _check_affine(affine: Any, what: str) -> np.ndarray:
    affine = np.asarray(as_numpy(affine), dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"{what}: affine must be a 4x4 matrix, got shape {affine.shape}.")
    if not np.all(np.isfinite(affine)):
        raise ValueError(f"{what}: affine contains NaN or infinite values.")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ValueError(f"{what}: affine linear part is singular:\n{affine}")
    return affine


def _storage_dtype(array: np.ndarray, dtype: Any, what: str) -> np.dtype:
    """Pick a NIfTI-1 storable dtype (NIfTI has no bool/float16; int64 upsets many readers)."""
    if dtype is not None:
        return np.dtype(dtype)
    kind = array.dtype
    if kind == np.bool_:
        return np.dtype(np.uint8)
    if kind == np.float16:
        return np.dtype(np.float32)
    if kind in (np.int64, np.uint64):
        if array.size == 0:
            return np.dtype(np.int32)
        lo, hi = array.min(), array.max()
        for candidate in (np.uint8, np.int16, np.int32):
            info = np.iinfo(candidate)
            if info.min <= lo and hi <= info.max:
                return np.dtype(candidate)
        raise ValueError(f"{what}: integer values in [{lo}, {hi}] do not fit int32; pass dtype explicitly.")
    return kind


def save_nifti(path: str | Path, array: Any, affine: Any, dtype: Any = None, *, channel_last: bool = False) -> Path:
    """Write ``array`` as a NIfTI-1 file atomically (temporary file, then rename).

    Args:
        path: output file, ``.nii`` or ``.nii.gz``.
        array: numpy array or tensor, ``(*spatial)`` with 2 to 4 spatial axes, or with
            ``channel_last=True`` ``(*spatial, C)`` with 2 or 3 spatial axes; stored as a
            NIfTI vector image ``(X, Y, Z, 1, C)`` (intent ``vector``) as ITK and ANTs expect.
        affine: 4x4 voxel-to-world (RAS mm) matrix, written as qform and sform (code 1).
            For a 2-D array the in-plane part is what 2-D readers use.
        dtype: stored data type; default keeps the array's type (bool -> uint8,
            float16 -> float32, 64-bit integers -> the smallest of uint8/int16/int32 that fits).
        channel_last: whether the last array axis holds channels (vector components).

    Returns:
        ``Path(path)``.
    """
    import nibabel as nib  # nibabel is a core dependency; imported here to keep imports light

    path = Path(path)
    if full_suffix(path).lower() not in _NIFTI_SUFFIXES:
        raise ValueError(f"'{path}': NIfTI output must end with .nii or .nii.gz.")
    array = as_numpy(array)
    affine = _check_affine(affine, f"'{path}'")
    if channel_last:
        if array.ndim not in (3, 4):
            raise ValueError(
                f"'{path}': channel_last array must be (*spatial, C) with 2 or 3 spatial axes, got shape {array.shape}."
            )
        spatial = array.shape[:-1]
        array = array.reshape(tuple(spatial) + (1,) * (3 - len(spatial)) + (1, array.shape[-1]))
    elif array.ndim not in (2, 3, 4):
        raise ValueError(f"'{path}': array must have 2 to 4 spatial axes, got shape {array.shape}.")
    stored = _storage_dtype(array, dtype, f"'{path}'")
    image = nib.Nifti1Image(np.asarray(array, dtype=stored), affine, dtype=stored)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm", "sec")
    if channel_last:
        image.header.set_intent("vector")
    with atomic_write_path(path) as tmp:
        nib.save(image, tmp)
    return path


def load_nifti(path: str | Path, dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI file; return ``(array, affine)`` with the 4x4 RAS affine (float64).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the header cannot be read.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NIfTI file not found: '{path}'.")
    try:
        image = nib.load(path)
        array = np.asanyarray(image.dataobj)
    except Exception as err:  # nibabel raises several types for broken headers/data
        raise ValueError(f"'{path}': cannot read NIfTI file ({err}).") from err
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    return array, np.asarray(image.affine, dtype=np.float64)
