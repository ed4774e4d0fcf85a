"""Datasets and datalists for registration: random inter-subject pairs, the pairs inference registers, the
MNI152 tissue atlas (a default reference for label propagation)."""

from __future__ import annotations

from .inference_pairs import inference_pairs
from .mni152_atlas import MNI152_LABEL_NAMES, mni152_tissue_atlas
from .random_pair_dataset import RandomPairDataset

__all__ = ["RandomPairDataset", "inference_pairs", "mni152_tissue_atlas", "MNI152_LABEL_NAMES"]
