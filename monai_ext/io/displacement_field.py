"""ITK / ANTs displacement-field files from voxel DDFs on the fixed image grid.

Our DDF ``u`` is in voxels of the fixed grid (see :mod:`monai_ext.spatial`). ITK transforms map
physical LPS points of the fixed image to physical points of the moving image,
``T(p) = p + d(p)``. With both images on the fixed grid (index ``x`` at ``p = o + D S x``),
``d(p(x)) = D S u(x)``: the linear part of the fixed image's LPS affine times ``u``. nibabel's
RAS affines are converted with ``diag(-1, -1, 1)``.

2-D images: ITK reads a 2-D NIfTI with origin = the first two LPS origin components, spacing =
pixdim (norms of the full 3-D affine columns) and direction = the top-left 2x2 block of the 3-D
LPS direction *with each column renormalised*. For in-plane geometry (rotation about the slice
normal, axis flips/permutations) that is exactly the top-left 2x2 block of the LPS affine; for
an oblique slice it differs, and this module follows ITK, so that ITK/ANTs resampling the 2-D
moving NIfTI with the written field reproduces :func:`monai_ext.spatial.warp_image`.

Formats:
- ``.h5`` / ``.hdf5`` / ``.tfm``: ``itk.DisplacementFieldTransform[itk.D, ndim]`` written with
  ``itk.transformwrite`` (``.tfm`` is plain text and large for 3-D fields).
- ``.nii`` / ``.nii.gz``: displacement-field image (float32 vector pixel, LPS mm, NIfTI intent
  ``vector``, shape ``(X, Y, Z, 1, ndim)``) as ANTs writes and reads ``*Warp.nii.gz``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.utils import convert_to_tensor, optional_import

from monai_ext.io.atomic import atomic_write_path, full_suffix
from monai_ext.spatial import check_ddf, ddf_to_world_displacement, world_displacement_to_ddf

itk, _ = optional_import("itk")

__all__ = [
    "write_itk_displacement_field",
    "read_itk_displacement_field",
    "itk_geometry_from_ras_affine",
    "ras_affine_from_itk_geometry",
    "PlaneNotInITK2DError",
    "is_oblique_plane",
]

TRANSFORM_SUFFIXES = (".h5", ".hdf5", ".tfm")
IMAGE_SUFFIXES = (".nii", ".nii.gz")
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


class PlaneNotInITK2DError(ValueError):
    """A 2-D image whose plane ITK's 2-D physical space cannot hold (a coronal or sagittal slice
    stored as 2-D, e.g. neurite-OASIS ``slice_*`` files): ITK itself refuses to read its direction."""


def _suffix_kind(path: Path) -> str:
    suffix = full_suffix(path).lower()
    if suffix in TRANSFORM_SUFFIXES:
        return "transform"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    raise ValueError(
        f"'{path}': unsupported displacement field extension {suffix!r}; "
        f"use one of {TRANSFORM_SUFFIXES + IMAGE_SUFFIXES}."
    )


def _as_affine4(affine_ras: Any, ndim: int, what: str) -> np.ndarray:
    """4x4 float64 RAS affine; a 3x3 affine of a 2-D image is embedded (z axis untouched)."""
    if isinstance(affine_ras, torch.Tensor):
        affine_ras = affine_ras.detach().cpu().numpy()
    affine = np.asarray(affine_ras, dtype=np.float64)
    if ndim == 2 and affine.shape == (3, 3):
        embedded = np.eye(4)
        embedded[:2, :2] = affine[:2, :2]
        embedded[:2, 3] = affine[:2, 2]
        affine = embedded
    if affine.shape != (4, 4):
        raise ValueError(
            f"{what}: affine must be the 4x4 (nibabel, RAS) affine of the fixed image, got shape {affine.shape}."
        )
    if not np.all(np.isfinite(affine)):
        raise ValueError(f"{what}: affine contains NaN or infinite values.")
    return affine


def itk_geometry_from_ras_affine(affine_ras: Any, ndim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ITK image geometry ``(origin (ndim,), spacing (ndim,), direction (ndim, ndim))`` in LPS.

    The geometry ITK gives a NIfTI image with this (nibabel, RAS) 4x4 affine; for ``ndim == 2``
    the geometry ITK gives a 2-D NIfTI (see the module docstring).

    Raises:
        ValueError: singular affine, or a 2-D image whose plane has no ITK 2-D representation
            (e.g. a sagittal slice: the in-plane block of the direction is singular).
    """
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, got {ndim}.")
    lps = _RAS_TO_LPS @ _as_affine4(affine_ras, ndim, "itk_geometry_from_ras_affine")
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    if np.any(spacing < 1e-12) or abs(np.linalg.det(lps[:3, :3])) < 1e-12:
        raise ValueError(f"affine linear part is singular:\n{lps[:3, :3]}")
    direction = lps[:3, :3] / spacing
    if ndim == 2:
        block = direction[:2, :2]
        norms = np.linalg.norm(block, axis=0)
        if np.any(norms < 1e-6) or abs(np.linalg.det(block / np.maximum(norms, 1e-12))) < 1e-6:
            raise PlaneNotInITK2DError(
                "the 2-D image plane cannot be represented in ITK 2-D physical space (the in-plane 2x2 block of "
                f"the direction is singular, e.g. a sagittal or coronal slice stored as 2-D):\n{direction}"
            )
        return lps[:2, 3].copy(), spacing[:2].copy(), block / norms
    return lps[:3, 3].copy(), spacing, direction


def is_oblique_plane(affine_ras: Any) -> bool:
    """Whether a 2-D slice lies in a plane tilted out of the scanner's axial plane: its first two
    voxel axes have a superior-inferior component in the 3-D affine. ITK's 2-D geometry of such a
    slice (see :func:`itk_geometry_from_ras_affine`) is a projection that a NIfTI field image
    cannot carry unchanged (ITK's NIfTI writer orthogonalises the direction and tools such as
    ANTs read it back differently), so fields of such slices are written as ITK transform files
    (``.h5``), which keep the geometry exactly."""
    affine = _as_affine4(affine_ras, 2, "is_oblique_plane")
    columns = affine[:3, :2] / np.linalg.norm(affine[:3, :2], axis=0)
    return not np.allclose(columns[2], 0.0, atol=1e-6)


def ras_affine_from_itk_geometry(origin: Any, spacing: Any, direction: Any) -> np.ndarray:
    """4x4 RAS (nibabel) affine from ITK LPS geometry; 2-D geometry gets an identity z axis."""
    origin = np.asarray(origin, dtype=np.float64)
    spacing = np.asarray(spacing, dtype=np.float64)
    direction = np.asarray(direction, dtype=np.float64)
    ndim = origin.shape[0]
    lps = np.eye(4)
    lps[:ndim, :ndim] = direction @ np.diag(spacing)
    lps[:ndim, 3] = origin
    return _RAS_TO_LPS @ lps


def _check_ddf(ddf: Any, what: str) -> np.ndarray:
    """One field ``(ndim, *spatial)`` (no batch axis) as a finite float numpy array; errors name ``what``."""
    tensor = check_ddf(convert_to_tensor(ddf, track_meta=False)[None], name=f"{what}: ddf (batch axis added)")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{what}: ddf contains NaN or infinite values.")
    return tensor[0].detach().cpu().numpy()


def _field_image(world_xyz: np.ndarray, origin, spacing, direction, component_type: str):
    """ITK vector image from a ``(*spatial, ndim)`` array indexed like our voxel axes (i, j, k)."""
    ndim = world_xyz.shape[-1]
    # ITK's numpy view is (k, j, i, component): reverse the spatial axes.
    array = np.ascontiguousarray(np.transpose(world_xyz, tuple(range(ndim - 1, -1, -1)) + (ndim,)))
    if component_type == "D":
        # itk.image_from_array cannot build Image[Vector[D, n], n] (no wrapped duplicator): fill a new one.
        image = itk.Image[itk.Vector[itk.D, ndim], ndim].New()
        image.SetRegions([int(s) for s in world_xyz.shape[:-1]])
        image.Allocate()
        itk.array_view_from_image(image)[...] = array.astype(np.float64)
    else:
        # VectorImage[F, n] is the vector type ITK Python can write to NIfTI.
        image = itk.image_from_array(array.astype(np.float32), is_vector=True)
    image.SetOrigin([float(v) for v in origin])
    image.SetSpacing([float(v) for v in spacing])
    image.SetDirection(itk.matrix_from_array(np.ascontiguousarray(direction, dtype=np.float64)))
    return image


def write_itk_displacement_field(path: str | Path, ddf: Any, affine_ras: Any) -> Path:
    """Write a voxel DDF as an ITK displacement-field transform or ANTs displacement-field image.

    Args:
        path: ``.h5``/``.hdf5``/``.tfm`` (``itk.DisplacementFieldTransform[itk.D, ndim]``) or
            ``.nii``/``.nii.gz`` (float32 vector image, LPS mm, readable by ANTs as a warp).
        ddf: ``(ndim, *spatial)`` numpy array or tensor, voxels of the fixed grid, our pull-back
            convention (channel ``c`` along array axis ``c``).
        affine_ras: 4x4 nibabel (RAS) affine of the fixed image (3x3 accepted for 2-D).

    Returns:
        ``Path(path)``. The field carries the fixed image's ITK origin/spacing/direction; the
        file is written atomically.
    """
    path = Path(path)
    kind = _suffix_kind(path)
    ddf = _check_ddf(ddf, f"'{path}'")
    ndim = ddf.shape[0]
    origin, spacing, direction = itk_geometry_from_ras_affine(_as_affine4(affine_ras, ndim, f"'{path}'"), ndim)
    linear_lps = np.eye(ndim + 1)
    linear_lps[:ndim, :ndim] = direction @ np.diag(spacing)
    world = ddf_to_world_displacement(ddf.astype(np.float64, copy=False), linear_lps)  # (*spatial, ndim), LPS mm
    with atomic_write_path(path) as tmp:
        if kind == "transform":
            field = _field_image(world, origin, spacing, direction, "D")
            transform = itk.DisplacementFieldTransform[itk.D, ndim].New()
            transform.SetDisplacementField(field)
            itk.transformwrite([transform], str(tmp))
        else:
            # An oblique 2-D slice has a non-orthogonal in-plane direction; ITK's NIfTI writer then
            # orthogonalises it with a console warning, exactly as ITK does when it reads the fixed
            # slice itself, so the field stays aligned with the image ITK/ANTs will resample.
            warnings_on = itk.Object.GetGlobalWarningDisplay()
            itk.Object.SetGlobalWarningDisplay(False)
            try:
                itk.imwrite(_field_image(world, origin, spacing, direction, "F"), str(tmp))
            finally:
                itk.Object.SetGlobalWarningDisplay(warnings_on)
    return path


def _read_field_image(path: Path, kind: str):
    if kind == "image":
        image = itk.imread(str(path))
        ndim = image.GetImageDimension()
        if image.GetNumberOfComponentsPerPixel() != ndim:
            raise ValueError(
                f"'{path}': not a displacement field: {ndim}-D image with "
                f"{image.GetNumberOfComponentsPerPixel()} components per pixel (expected {ndim})."
            )
        return image
    transforms = itk.transformread(str(path))
    if len(transforms) != 1 or transforms[0].GetNameOfClass() != "DisplacementFieldTransform":
        names = [t.GetNameOfClass() for t in transforms]
        raise ValueError(f"'{path}': expected a single DisplacementFieldTransform, found {names}.")
    return transforms[0].GetDisplacementField()


def read_itk_displacement_field(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a file written by :func:`write_itk_displacement_field` (or by ITK/ANTs).

    Returns:
        ``(ddf, affine_ras)``: ``ddf`` ``(ndim, *spatial)`` float64 in voxels of the field's grid
        (our convention), ``affine_ras`` the 4x4 nibabel (RAS) affine of that grid (for 2-D the
        in-plane geometry with an identity z axis).

    Raises:
        FileNotFoundError: missing file. ValueError: not a displacement field.
    """
    path = Path(path)
    kind = _suffix_kind(path)
    if not path.is_file():
        raise FileNotFoundError(f"displacement field file not found: '{path}'.")
    try:
        field = _read_field_image(path, kind)
    except ValueError:
        raise
    except Exception as err:  # ITK raises RuntimeError with its own message for unreadable files
        raise ValueError(f"'{path}': cannot read displacement field ({err}).") from err
    ndim = field.GetImageDimension()
    origin = np.asarray(field.GetOrigin(), dtype=np.float64)
    spacing = np.asarray(field.GetSpacing(), dtype=np.float64)
    direction = np.asarray(itk.array_from_matrix(field.GetDirection()), dtype=np.float64)
    array = np.asarray(itk.array_from_image(field), dtype=np.float64)  # (k, j, i, component)
    world = np.transpose(array, tuple(range(ndim - 1, -1, -1)) + (ndim,))
    linear_lps = np.eye(ndim + 1)
    linear_lps[:ndim, :ndim] = direction @ np.diag(spacing)
    ddf = world_displacement_to_ddf(world, linear_lps)
    return ddf, ras_affine_from_itk_geometry(origin, spacing, direction)
