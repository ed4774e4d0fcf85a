"""Datasets and datalists for registration: random inter-subject pairs, pairs built from labelled images,
the pairs inference registers, the MNI152 tissue atlas (a default reference for label propagation)."""

from __future__ import annotations

from .datalist_info import datalist_info, evaluation_labels
from .inference_pairs import inference_pairs
from .mni152_atlas import MNI152_LABEL_NAMES, mni152_tissue_atlas
from .pair_datasets import PairCacheDataset, PairDataset
from .random_pair_dataset import RandomPairDataset
from .read_datalist import read_datalist
from .registration_pairs import PAIRINGS, registration_pairs, series_and_phase

__all__ = [
    "RandomPairDataset",
    "PairDataset",
    "PairCacheDataset",
    "PAIRINGS",
    "registration_pairs",
    "series_and_phase",
    "inference_pairs",
    "read_datalist",
    "datalist_info",
    "evaluation_labels",
    "mni152_tissue_atlas",
    "MNI152_LABEL_NAMES",
]
