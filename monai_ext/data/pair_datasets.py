"""MONAI datasets of registration pairs that also accept lists of single labelled images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monai.data import CacheDataset, Dataset

from monai_ext.data.registration_pairs import registration_pairs

__all__ = ["PairDataset", "PairCacheDataset"]


class PairDataset(Dataset):
    """``monai.data.Dataset`` over :func:`~monai_ext.data.registration_pairs` ``(data, pairing)``.

    ``data`` is either a list of pair dictionaries (a bundle's datalist) or MONAI Label's
    ``[{image, label}]`` (``BundleTrainTask`` overrides ``train#dataset#data`` and
    ``validate#dataset#data`` with it), which is paired as ``pairing`` says.
    """

    def __init__(self, data: Sequence, transform: Any = None, pairing: str = "inter_subject") -> None:
        super().__init__(registration_pairs(data, pairing), transform)


class PairCacheDataset(CacheDataset):
    """``monai.data.CacheDataset`` over :func:`~monai_ext.data.registration_pairs` ``(data, pairing)``
    (see :class:`PairDataset`); ``kwargs`` are CacheDataset's."""

    def __init__(self, data: Sequence, transform: Any = None, pairing: str = "inter_subject", **kwargs: Any) -> None:
        super().__init__(registration_pairs(data, pairing), transform, **kwargs)
