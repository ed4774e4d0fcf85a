"""What a training config needs to know about its dataset: from data_prep's datalist, or from the images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from monai.bundle import ConfigParser

__all__ = ["datalist_info", "evaluation_labels"]

_IMAGE_KEYS = ("image", "fixed_image", "moving_image")
_LABEL_KEYS = ("label", "fixed_label", "moving_label")


def datalist_info(datalist: str | Path | None, data: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """``datalist``'s own description when the file exists (``data_prep`` records ``labels``,
    ``intensity`` and the official ``evaluation`` label set); otherwise one derived from ``data``,
    e.g. the ``[{image, label}]`` lists MONAI Label trains with: no label names, the non-zero label
    values found in the label files (``evaluation.dice_labels``), and the observed intensity range
    mapped to [0, 1] (``intensity``, ``ScaleIntensityRanged`` arguments).

    Raises:
        ValueError: no datalist file and no images in ``data``.
    """
    if datalist and Path(datalist).is_file():
        return ConfigParser.load_config_file(str(datalist))
    entries = [e for e in data if isinstance(e, Mapping)]
    images = [e[k] for e in entries for k in _IMAGE_KEYS if e.get(k)]
    if not images:
        raise ValueError(f"{datalist}: no such datalist, and no images given to describe the data instead.")
    lows, highs = zip(*((float(np.nanmin(a)), float(np.nanmax(a))) for a in map(_array, dict.fromkeys(images))))
    labels: set[int] = set()
    for path in dict.fromkeys(e[k] for e in entries for k in _LABEL_KEYS if e.get(k)):
        labels.update(int(v) for v in np.unique(np.rint(_array(path))) if v != 0)
    intensity = {"a_min": min(lows), "a_max": max(highs), "b_min": 0.0, "b_max": 1.0, "clip": True}
    return {"labels": {}, "evaluation": {"dice_labels": sorted(labels)}, "intensity": intensity}


def evaluation_labels(datalist: str | Path | None) -> list[int] | None:
    """The label values a dataset's official evaluation scores (``evaluation.dice_labels`` of
    :func:`datalist_info`, e.g. LUMIR's, label 0 included); None without a datalist that records
    them (then the values found in each pair are scored)."""
    if not datalist or not Path(datalist).is_file():
        return None
    labels = datalist_info(datalist).get("evaluation", {}).get("dice_labels")
    return None if labels is None else [int(v) for v in labels]


def _array(path: str) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
