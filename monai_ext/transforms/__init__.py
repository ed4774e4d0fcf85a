"""Dictionary transforms for fixed/moving pairs: checks, augmentation (flips and affines, thick-slice
resampling), intensity scaling to [0, 1], and the moving labels warped by the predicted field."""

from .checked_load_image import CheckedLoadImaged
from .pair_checks import CheckPaird
from .rand_anisotropic_resample import RandAnisotropicResampled
from .rand_pair_flip_affine import RandPairFlipAffined
from .resample_to_fixed import ResampleToFixedd
from .unigradicon_augmentation import unigradicon_augmentation
from .unit_intensity import MODALITIES, modality_intensity_transform, unit_intensity_transformd
from .warp_moving import WarpMovingd

__all__ = [
    "CheckPaird",
    "CheckedLoadImaged",
    "RandPairFlipAffined",
    "RandAnisotropicResampled",
    "ResampleToFixedd",
    "MODALITIES",
    "modality_intensity_transform",
    "unit_intensity_transformd",
    "unigradicon_augmentation",
    "WarpMovingd",
]
