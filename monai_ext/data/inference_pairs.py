"""The pairs an inference config registers: one pair named on the command line, or a datalist split."""

from __future__ import annotations

from pathlib import Path

from monai_ext.data.read_datalist import read_datalist
from monai_ext.errors import InputError

__all__ = ["inference_pairs"]

PAIR_KEYS = ("fixed_image", "moving_image", "fixed_label", "moving_label", "fixed_landmarks", "moving_landmarks")


def inference_pairs(
    fixed: str | None = None,
    moving: str | None = None,
    fixed_label: str | None = None,
    moving_label: str | None = None,
    fixed_landmarks: str | None = None,
    moving_landmarks: str | None = None,
    datalist: str | Path | None = None,
    split: str = "testing",
    base_dir: str | Path | None = None,
) -> list[dict]:
    """``[{fixed_image, moving_image, ...}]`` from the files given (empty ones left out) when ``fixed``
    or ``moving`` is given, else the ``split`` of the MONAI datalist ``datalist`` (paths joined to
    ``base_dir``, as ``monai.data.load_decathlon_datalist`` does).

    A pair missing its fixed or moving image is passed on as it is: the bundle's pair check
    (``CheckPaird``) names the missing key.
    """
    files = (fixed, moving, fixed_label, moving_label, fixed_landmarks, moving_landmarks)
    if fixed or moving:
        return [{key: str(value) for key, value in zip(PAIR_KEYS, files) if value}]
    if not datalist:
        raise InputError("Give a pair (--fixed and --moving) or a datalist (--datalist / --dataset_dir) to register.")
    return read_datalist(datalist, data_list_key=split, base_dir=base_dir)
