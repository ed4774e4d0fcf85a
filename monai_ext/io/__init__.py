"""Writers and readers: atomic file writing, NIfTI images, ITK/ANTs displacement fields, QC figures.

Names are imported on first access, so ``monai_ext.io.atomic`` does not pull in ITK or matplotlib.
"""

from __future__ import annotations

from monai_ext.lazy_exports import lazy_exports

__all__ = [
    "atomic_write_path",
    "full_suffix",
    "save_nifti",
    "load_nifti",
    "write_itk_displacement_field",
    "read_itk_displacement_field",
    "itk_geometry_from_ras_affine",
    "ras_affine_from_itk_geometry",
    "save_registration_figure",
    "read_checkpoint",
]

_LOCATIONS = {
    "atomic_write_path": "monai_ext.io.atomic",
    "full_suffix": "monai_ext.io.atomic",
    "save_nifti": "monai_ext.io.nifti",
    "load_nifti": "monai_ext.io.nifti",
    "write_itk_displacement_field": "monai_ext.io.displacement_field",
    "read_itk_displacement_field": "monai_ext.io.displacement_field",
    "itk_geometry_from_ras_affine": "monai_ext.io.displacement_field",
    "ras_affine_from_itk_geometry": "monai_ext.io.displacement_field",
    "save_registration_figure": "monai_ext.io.qc_figure",
    "read_checkpoint": "monai_ext.io.checkpoint",
}


__getattr__, __dir__ = lazy_exports(__name__, _LOCATIONS, __all__)
