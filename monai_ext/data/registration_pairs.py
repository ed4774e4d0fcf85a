"""Registration pairs built from a list of labelled images (MONAI Label's ``[{image, label}]`` form)."""

from __future__ import annotations

import logging
import re
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_ext.options import check_option

__all__ = ["PAIRINGS", "frame_series", "registration_pairs", "series_and_phase"]

logger = logging.getLogger(__name__)

PAIRINGS = ("inter_subject", "within_subject")

# the cardiac phase in a file name: "_ED" / "_ES" (this project's slices, M&Ms) or ACDC's "_frame01"
_PHASE = re.compile(r"[_-](ED|ES|frame\d+)(?=$|[_-])", re.IGNORECASE)
_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".dcm")


def series_and_phase(path: str) -> tuple[str, str]:
    """``(series, phase)`` of an image file name: ``patient001_slice00_ED.nii.gz`` ->
    ``("patient001_slice00", "ED")``, ``patient001_frame12.nii.gz`` -> ``("patient001", "frame12")``;
    a name without a phase is its own series with phase ``""``."""
    name = Path(str(path)).name
    for suffix in _IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    match = None
    for match in _PHASE.finditer(name):
        pass
    if match is None:
        return name, ""
    phase = match.group(1)
    return name[: match.start()] + name[match.end() :], phase.upper() if phase.upper() in ("ED", "ES") else phase


def frame_series(entries: Sequence[Mapping], image_key: str = "image") -> dict[str, list[tuple[str, Mapping]]]:
    """The series with two frames or more: series name -> ``[(phase, entry)]`` in ``entries`` order
    (:func:`series_and_phase` of each entry's image); series with a single frame are left out, and a
    warning names them."""
    series: dict[str, list[tuple[str, Mapping]]] = {}
    for entry in entries:
        name, phase = series_and_phase(entry[image_key])
        series.setdefault(name, []).append((phase, entry))
    single = [name for name, frames in series.items() if len(frames) < 2]
    if single:
        logger.warning(f"{len(single)} series with one labelled frame left out of the pairs: {single[:5]}")
    return {name: frames for name, frames in series.items() if len(frames) > 1}


def _pair(fixed: Mapping, moving: Mapping, image_key: str, label_key: str) -> dict:
    pair = {"fixed_image": fixed[image_key], "moving_image": moving[image_key]}
    if fixed.get(label_key) is not None and moving.get(label_key) is not None:
        pair.update(fixed_label=fixed[label_key], moving_label=moving[label_key])
    return pair


def registration_pairs(
    data: Sequence[Mapping[Hashable, Any]],
    pairing: str = "inter_subject",
    image_key: str = "image",
    label_key: str = "label",
) -> list[dict]:
    """Pair dictionaries (``fixed_image``, ``moving_image``, ``fixed_label``, ``moving_label``) for ``data``.

    Entries that already are pairs (they have ``fixed_image``) are returned unchanged, so a bundle's
    own datalists and MONAI Label's lists of single images go through the same dataset.

    - ``"inter_subject"`` (brain): each image is registered to the next one, ``moving = data[k + 1]``
      onto ``fixed = data[k]``, as Learn2Reg's OASIS validation pairs consecutive subjects.
    - ``"within_subject"`` (cardiac): frames of one series (same file name apart from the phase,
      :func:`series_and_phase`) are registered to the series' ED frame, or to its first frame when
      no frame is named ED, so ES -> ED when both are there (GSMorph's direction). Series with a
      single frame are left out (a warning names them).

    Raises:
        ValueError: an unknown pairing, an entry without ``image_key``, or no pair at all.
    """
    check_option("pairing", pairing, PAIRINGS)
    entries = list(data)
    if entries and all(isinstance(e, Mapping) and "fixed_image" in e for e in entries):
        return [dict(e) for e in entries]
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or entry.get(image_key) is None:
            raise ValueError(f"entry {i} has no {image_key!r} to pair (expected {{'image', 'label'}}): {entry!r}.")
    if pairing == "inter_subject":
        pairs = [_pair(entries[k], entries[k + 1], image_key, label_key) for k in range(len(entries) - 1)]
    else:
        pairs = []
        for frames in frame_series(entries, image_key).values():
            frames = sorted(frames, key=lambda f: (f[0] != "ED", f[0]))
            fixed = frames[0][1]
            pairs += [_pair(fixed, moving, image_key, label_key) for _, moving in frames[1:]]
    if not pairs:
        what = "two images" if pairing == "inter_subject" else "two labelled frames of one series"
        raise ValueError(
            f"cannot build registration pairs ({pairing}): the list of {len(entries)} images has no {what}."
        )
    return pairs
