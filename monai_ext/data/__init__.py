"""Datasets and datalists for registration: random inter-subject pairs, the pairs inference registers."""

from __future__ import annotations

from .inference_pairs import inference_pairs
from .random_pair_dataset import RandomPairDataset

__all__ = ["RandomPairDataset", "inference_pairs"]
