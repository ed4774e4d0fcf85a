"""Names of the pairs in a batch, read from the batch's keys and MONAI metadata."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["pair_case_names"]


def _strip_extension(name: str) -> str:
    for ext in (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".png"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return os.path.splitext(name)[0]


def pair_case_names(batch: dict[str, Any], batch_size: int) -> list[str]:
    """One readable name per pair: ``<fixed subject>__<moving subject>`` or ``<subject>_slice<NN>``
    when the datalist records them, else ``<fixed file>__<moving file>``, else ``case<index>``."""
    subjects, slices = batch.get("subject"), batch.get("slice")
    fixed_subjects, moving_subjects = batch.get("fixed_subject"), batch.get("moving_subject")
    if fixed_subjects is not None and moving_subjects is not None:
        return [f"{f}__{m}" for f, m in zip(fixed_subjects, moving_subjects)]
    if subjects is not None:
        names = [str(s) for s in subjects]
        if slices is not None:
            names = [f"{n}_slice{int(s):02d}" for n, s in zip(names, slices)]
        return names
    fixed, moving = batch.get("fixed_image"), batch.get("moving_image")
    meta = getattr(fixed, "meta", None)
    if meta is not None and "filename_or_obj" in meta and getattr(moving, "meta", None) is not None:
        fixed_files, moving_files = meta["filename_or_obj"], moving.meta["filename_or_obj"]
        if isinstance(fixed_files, str):
            fixed_files, moving_files = [fixed_files], [moving_files]
        return [
            f"{_strip_extension(os.path.basename(f))}__{_strip_extension(os.path.basename(m))}"
            for f, m in zip(fixed_files, moving_files)
        ]
    return [f"case{i:04d}" for i in range(batch_size)]
