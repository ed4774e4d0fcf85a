"""Intensities scaled to [0, 1] before registration: a fixed range, or uniGradICON's rule per modality."""

from __future__ import annotations

from collections.abc import Sequence

from monai.transforms import (
    MapTransform,
    ScaleIntensityRange,
    ScaleIntensityRanged,
    ScaleIntensityRangePercentiles,
    ScaleIntensityRangePercentilesd,
    Transform,
)
from monai.utils import look_up_option

__all__ = ["MODALITIES", "CT_WINDOW", "MRI_PERCENTILES", "modality_intensity_transform", "unit_intensity_transformd"]

MODALITIES = ("mri", "ct")
# uniGradICON's intensity preprocessing (io_gradient_projection.md §3.1)
CT_WINDOW = (-1000.0, 1000.0)
MRI_PERCENTILES = (0.0, 99.0)


def modality_intensity_transform(modality: str) -> Transform:
    """MONAI transform scaling one image's intensities to [0, 1] as uniGradICON does.

    - ``"mri"``: ``ScaleIntensityRangePercentiles(lower=0, upper=99, b_min=0, b_max=1, clip=True)``,
      i.e. the image minimum -> 0 and its 99th percentile -> 1, clipped;
    - ``"ct"``: ``ScaleIntensityRange(-1000, 1000 -> 0, 1, clip=True)`` (Hounsfield units).

    Apply it to each image on its own grid, before any resampling, so that padding added by the
    resampling does not change the percentiles.
    """
    if look_up_option(modality.lower() if isinstance(modality, str) else modality, MODALITIES) == "ct":
        return ScaleIntensityRange(a_min=CT_WINDOW[0], a_max=CT_WINDOW[1], b_min=0.0, b_max=1.0, clip=True)
    return ScaleIntensityRangePercentiles(
        lower=MRI_PERCENTILES[0], upper=MRI_PERCENTILES[1], b_min=0.0, b_max=1.0, clip=True, relative=False
    )


def unit_intensity_transformd(
    keys: Sequence[str] | str, intensity_range: Sequence[float] | None = None, modality: str = "mri"
) -> MapTransform:
    """The dictionary version for the images ``keys``: ``intensity_range = (a_min, a_max)`` -> [0, 1],
    clipped (a dataset's known range, e.g. LUMIR's 0-255), or, without a range, the rule of
    :func:`modality_intensity_transform` for ``modality``."""
    if intensity_range:
        a_min, a_max = (float(v) for v in intensity_range)
        return ScaleIntensityRanged(keys=keys, a_min=a_min, a_max=a_max, b_min=0.0, b_max=1.0, clip=True)
    if look_up_option(modality.lower() if isinstance(modality, str) else modality, MODALITIES) == "ct":
        return ScaleIntensityRanged(keys=keys, a_min=CT_WINDOW[0], a_max=CT_WINDOW[1], b_min=0.0, b_max=1.0, clip=True)
    lower, upper = MRI_PERCENTILES
    return ScaleIntensityRangePercentilesd(
        keys=keys, lower=lower, upper=upper, b_min=0.0, b_max=1.0, clip=True, relative=False
    )
