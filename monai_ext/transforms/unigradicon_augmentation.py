"""The random augmentation of the uniGradICON fine-tuning recipe (io_gradient_projection.md §3.2)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from monai.transforms import RandAdjustContrastd, RandAffined, RandFlipd, RandomizableTransform

__all__ = ["unigradicon_augmentation"]


def unigradicon_augmentation(keys: Sequence[str]) -> list[RandomizableTransform]:
    """Independently for each image of ``keys`` (3-D): a random affine with probability 0.5
    (rotation +-10 degrees, translation +-5 voxels (1 mm voxels: +-5 mm), scaling +-3 %), a flip of
    the last axis with probability 0.5, and a gamma change of +-0.2 with probability 0.1 (§3.2).

    The transforms are returned as a list so that ``AugmentationSchedule`` can switch them on after
    the paper's first 50 epochs."""
    keys = list(keys)
    affine = [
        RandAffined(
            keys=key,
            prob=0.5,
            rotate_range=[np.deg2rad(10)] * 3,
            translate_range=[5, 5, 5],
            scale_range=[0.03] * 3,
            mode="bilinear",
            padding_mode="zeros",
        )
        for key in keys
    ]
    flips = [RandFlipd(keys=key, prob=0.5, spatial_axis=2) for key in keys]
    gamma = [RandAdjustContrastd(keys=key, prob=0.1, gamma=(0.8, 1.2)) for key in keys]
    return [*affine, *flips, *gamma]
