"""The moving image of a pair on the fixed image's grid, for 2-D slices in any plane as well.

MONAI's ``ResampleToMatchd`` reduces a 2-D image's 4x4 NIfTI affine to its top-left in-plane block,
which is singular for coronal and sagittal slices ("src affine is not invertible"). This subclass
keeps MONAI's resampling wherever it applies and, for such slices only, maps the fixed grid into the
moving one through the two in-plane columns of the affines (``monai_ext.spatial.fixed_to_moving_matrix``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import ResampleToMatchd

from monai_ext.spatial import fixed_to_moving_matrix, sample_moving

__all__ = ["ResampleToFixedd"]


def _singular_plane(image: Any) -> bool:
    """A 2-D image whose 4x4 affine has a singular top-left 2x2 block (a coronal or sagittal slice)."""
    if not isinstance(image, MetaTensor) or image.ndim != 3:
        return False
    affine = np.asarray(torch.as_tensor(image.affine).detach().cpu(), dtype=np.float64)
    return affine.shape == (4, 4) and abs(np.linalg.det(affine[:2, :2])) < 1e-6


class ResampleToFixedd(ResampleToMatchd):
    """``ResampleToMatchd`` (same arguments) that also resamples 2-D slices in a coronal or sagittal plane."""

    def __call__(self, data: Mapping[Hashable, Any], lazy: bool | None = None) -> dict[Hashable, Any]:  # type: ignore[override]
        d = dict(data)
        dst = d[self.key_dst]
        if not any(_singular_plane(d[k]) for k in (self.key_dst, *self.key_iterator(d))):
            return super().__call__(d, lazy=lazy)
        for key, mode, padding_mode in self.key_iterator(d, self.mode, self.padding_mode):
            src = d[key]
            if tuple(src.shape[1:]) == tuple(dst.shape[1:]) and torch.allclose(
                torch.as_tensor(src.affine).double(), torch.as_tensor(dst.affine).double()
            ):
                continue
            matrix = fixed_to_moving_matrix(dst.affine, src.affine, dst.shape[1:], src.shape[1:], dtype=torch.float64)
            zero = torch.zeros(1, 2, *dst.shape[1:], dtype=torch.float64)
            mode_name = "nearest" if str(mode).lower().endswith("nearest") else "bilinear"
            padding = "border" if str(padding_mode).lower() in ("border", "edge", "replicate") else "zeros"
            values = src.as_tensor().double()[None]
            sampled = sample_moving(values, zero, matrix, mode=mode_name, padding_mode=padding)[0]
            meta = {k: v for k, v in src.meta.items() if k != "affine"}
            meta["spatial_shape"] = dst.meta.get("spatial_shape", np.asarray(dst.shape[1:]))
            d[key] = MetaTensor(sampled.to(src.dtype), affine=dst.affine.clone(), meta=meta)
        return d
