"""Registration networks: each maps a ``[moving, fixed]`` image pair to a displacement field
(DIO's feature extractors map one image to its multi-scale features)."""

from .dio_features import (
    FEATURE_NETWORKS,
    DIOFeatureUNet,
    IntensityPyramid,
    LargeKernelBlock,
    build_feature_network,
    dio_lku,
    dio_lku_encoder,
    dio_unet,
    dio_unet_encoder,
)
from .dio_registration import DIORegistration, image_affine
from .gsmorph_unet import GSMorphUNet
from .icon_composition import (
    UNIGRADICON_INPUT_SHAPE,
    DisplacementFieldRegistration,
    DownsampleRegistration,
    RegistrationStep,
    TwoStepRegistration,
    gradicon_stage1,
    gradicon_stage2,
    load_icon_state_dict,
    load_unigradicon_weights,
    unigradicon_network,
)
from .icon_unet import TallUNet2
from .sync_batchnorm import sync_batchnorm_on_cuda

__all__ = [
    "GSMorphUNet",
    "TallUNet2",
    "RegistrationStep",
    "DisplacementFieldRegistration",
    "DownsampleRegistration",
    "TwoStepRegistration",
    "gradicon_stage1",
    "gradicon_stage2",
    "unigradicon_network",
    "UNIGRADICON_INPUT_SHAPE",
    "load_icon_state_dict",
    "load_unigradicon_weights",
    "DIOFeatureUNet",
    "LargeKernelBlock",
    "IntensityPyramid",
    "dio_unet",
    "dio_lku",
    "dio_unet_encoder",
    "dio_lku_encoder",
    "build_feature_network",
    "FEATURE_NETWORKS",
    "DIORegistration",
    "image_affine",
    "sync_batchnorm_on_cuda",
]
