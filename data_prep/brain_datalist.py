"""What the 3-D brain MRI converters (LUMIR, Learn2Reg OASIS, neurite-OASIS) share.

The brain datasets are distributed ready to register (skull-stripped, affinely aligned, one
grid), so their converters copy no image: they read the dataset's own index (a JSON file or a
subject list), check every file it names, and write one MONAI datalist JSON of (fixed, moving)
pairs that points at the original files. This module holds:

- reading a dataset JSON and its entries, with errors naming the file and the entry,
- checking NIfTI volumes: header (dimension, shape, spacing) and, optionally, the data (NaN,
  intensity range, label values, binary masks), several files at a time,
- seeded random inter-subject pairs (ordered, fixed != moving, no pair twice) and consecutive
  pairs (fixed = i, moving = i + 1),
- paths written relative to the output folder (or absolute), so that MONAI
  ``load_decathlon_datalist(..., base_dir=OUT)`` resolves them,
- writing ``OUT/datalist.json`` atomically, after every check has passed: a failure leaves
  earlier outputs untouched.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.array_checks import spatial_shape
from monai_ext.io.atomic import atomic_write_path
from monai_ext.options import check_option

__all__ = [
    "DATALIST_NAME",
    "VolumeInfo",
    "read_dataset_json",
    "entry_list",
    "entry_path",
    "subject_id",
    "subject_number",
    "sibling_file",
    "inspect_volume",
    "inspect_volumes",
    "check_same_grid",
    "check_same_shape",
    "random_pairs",
    "consecutive_pairs",
    "datalist_path",
    "intensity_scaling",
    "write_datalist",
    "summarise",
    "pair_entry",
    "PairDatalist",
]

logger = logging.getLogger(__name__)

#: File name of the datalist written into the output folder.
DATALIST_NAME = "datalist.json"

_KINDS = ("image", "label", "mask")
_SUBJECT = re.compile(r"^(?P<subject>.+?_(?P<number>\d+))_(?P<channel>\d{4})$")


# --------------------------------------------------------------------------------------------
# dataset JSON
# --------------------------------------------------------------------------------------------


def sibling_file(image: Path, kind: str) -> Path | None:
    """The ``kind`` file of an image in the nnU-Net-style layout the brain releases use:
    ``labelsVal/x.nii.gz`` for ``imagesVal/x.nii.gz`` with ``kind="labels"`` (as the official
    evaluations find them), or None when there is none."""
    folder = image.parent.name
    if "images" not in folder:
        return None
    candidate = image.parent.parent / folder.replace("images", kind, 1) / image.name
    return candidate if candidate.is_file() else None


def read_dataset_json(path: str | Path, required: Sequence[str] = ()) -> dict[str, Any]:
    """Read a dataset JSON file (a JSON object) and check that it holds the ``required`` keys.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not valid JSON, not an object, or a required key is missing (the message
            lists the keys found).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dataset JSON not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a valid JSON file ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")
    missing = [k for k in required if k not in data]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; keys found: {sorted(data)}")
    return data


def entry_list(data: Mapping[str, Any], key: str, fields: Sequence[str], path: str | Path) -> list[dict[str, Any]]:
    """``data[key]`` as a list of objects that each hold ``fields`` (a missing key gives ``[]``).

    Raises ``ValueError`` naming ``path``, the key and the entry index for anything else.
    """
    items = data.get(key, [])
    if not isinstance(items, list):
        raise ValueError(f"{path}: '{key}' must be a list, got {type(items).__name__}")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{path}: '{key}'[{index}] must be an object with {list(fields)}, got {item!r}")
        for name in fields:
            if not isinstance(item.get(name), str) or not item[name]:
                raise ValueError(f"{path}: '{key}'[{index}] has no '{name}' path: {item!r}")
    return items


def entry_path(root: Path, relative: str, json_path: str | Path, where: str) -> Path:
    """Resolve a path written in a dataset JSON (``./imagesTr/x.nii.gz``) against ``root``.

    Raises ``FileNotFoundError`` naming the missing file and the JSON entry that lists it.
    """
    path = Path(os.path.normpath(root / relative))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (listed in {json_path} as {where})")
    return path


def subject_id(path: str | Path) -> str:
    """``LUMIRMRI_3455`` from ``.../LUMIRMRI_3455_0000.nii.gz`` (the name without channel suffix)."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    match = _SUBJECT.match(name)
    return match.group("subject") if match else name


def subject_number(path: str | Path) -> int | None:
    """The case number of a Learn2Reg file name (``3455`` for ``LUMIRMRI_3455_0000.nii.gz``)."""
    name = Path(path).name.split(".")[0]
    match = _SUBJECT.match(name)
    return int(match.group("number")) if match else None


# --------------------------------------------------------------------------------------------
# volumes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeInfo:
    """Header facts of one NIfTI file and, when its data were read, what they hold.

    ``shape`` has ``ndim`` entries (trailing singleton axes dropped), ``spacing`` is the voxel
    size in mm along those axes (column norms of the affine). ``minimum`` / ``maximum`` are
    set for images and ``values`` (sorted distinct values) for labels and masks when the data
    were checked.
    """

    path: Path
    kind: str
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    affine: np.ndarray
    dtype: str
    minimum: float | None = None
    maximum: float | None = None
    values: tuple[int, ...] | None = None


def _describe(values: Iterable[int]) -> str:
    values = sorted(values)
    if values and values == list(range(values[0], values[-1] + 1)) and len(values) > 3:
        return f"{{{values[0]}, ..., {values[-1]}}}"
    return "{" + ", ".join(str(v) for v in values) + "}"


def inspect_volume(
    path: str | Path,
    kind: str = "image",
    ndim: int = 3,
    allowed_values: Iterable[int] | None = None,
    check_data: bool = True,
) -> VolumeInfo:
    """Read the header of a NIfTI file and, with ``check_data``, check its data.

    Args:
        path: the ``.nii`` / ``.nii.gz`` file.
        kind: ``image`` (no NaN or infinite values; its range is recorded), ``label`` (integer
            values, all in ``allowed_values`` when given) or ``mask`` (values in {0, 1}).
        ndim: expected number of spatial dimensions; trailing singleton axes are dropped.
        allowed_values: the label values allowed (labels only).
        check_data: read the voxels; otherwise only the header is read (fast).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unreadable file, wrong dimension, NaN / infinite intensities, non-integer
            or unexpected label values, a mask that is not binary. Each message names the file.
    """
    import nibabel as nib  # core dependency, imported here to keep ``import data_prep`` cheap

    check_option("kind", kind, _KINDS)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        image = nib.load(path)
        header_shape = image.shape
        affine = np.asarray(image.affine, dtype=np.float64)
        dtype = str(image.get_data_dtype())
    except Exception as err:  # nibabel raises several types for broken headers
        raise ValueError(f"{path}: cannot read NIfTI header ({err})") from err
    shape = spatial_shape(header_shape, ndim, path)
    spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0)[:ndim])
    info = dict(path=path, kind=kind, shape=shape, spacing=spacing, affine=affine, dtype=dtype)
    if not check_data:
        return VolumeInfo(**info)
    try:
        data = np.asanyarray(image.dataobj)
    except Exception as err:
        raise ValueError(f"{path}: cannot read NIfTI data ({err})") from err
    if kind == "image":
        if data.dtype.kind in "fc":
            if np.isnan(data).any():
                raise ValueError(f"{path}: image contains NaN values")
            if not np.isfinite(data).all():
                raise ValueError(f"{path}: image contains infinite values")
        return VolumeInfo(**info, minimum=float(data.min()), maximum=float(data.max()))
    values = np.unique(data)
    if data.dtype.kind == "f" and (not np.isfinite(values).all() or not np.array_equal(values, np.round(values))):
        raise ValueError(f"{path}: {kind} holds non-integer values {values[:10].tolist()}")
    found = [int(v) for v in values]
    allowed = {0, 1} if kind == "mask" else (None if allowed_values is None else set(int(v) for v in allowed_values))
    if allowed is not None:
        bad = sorted(set(found) - allowed)
        if bad:
            what = "mask" if kind == "mask" else "label"
            raise ValueError(f"{path}: {what} values {bad[:10]} outside the expected set {_describe(allowed)}")
    return VolumeInfo(**info, values=tuple(found))


def inspect_volumes(
    requests: Sequence[tuple[str | Path, str]],
    ndim: int = 3,
    allowed_values: Iterable[int] | None = None,
    check_data: bool = True,
    num_workers: int = 4,
) -> list[VolumeInfo]:
    """:func:`inspect_volume` for every ``(path, kind)``, ``num_workers`` files at a time.

    Results come back in the order of ``requests``; the first failing file (in that order)
    raises its error. Threads suffice: decompression and NumPy release the GIL.
    """
    allowed = None if allowed_values is None else tuple(allowed_values)

    def one(request: tuple[str | Path, str]) -> VolumeInfo:
        return inspect_volume(request[0], request[1], ndim=ndim, allowed_values=allowed, check_data=check_data)

    workers = max(1, int(num_workers))
    if workers == 1 or len(requests) < 2:
        return [one(r) for r in requests]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(one, r) for r in requests]
        return [f.result() for f in futures]


def check_same_shape(infos: Sequence[VolumeInfo], what: str = "image/label shape mismatch") -> None:
    """``ValueError`` naming both files when the volumes of one subject differ in shape."""
    first = infos[0]
    for other in infos[1:]:
        if other.shape != first.shape:
            raise ValueError(f"{what}: {first.path} has shape {first.shape}, {other.path} has shape {other.shape}")


def check_same_grid(infos: Sequence[VolumeInfo], dataset: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Check that all images share one shape (``ValueError`` naming the odd file); warn on spacing.

    Returns the shape and the spacing of the first image.
    """
    first = infos[0]
    for other in infos[1:]:
        if other.shape != first.shape:
            raise ValueError(
                f"{other.path}: shape {other.shape} differs from the other {dataset} images "
                f"({first.path} has shape {first.shape})"
            )
        if not np.allclose(other.spacing, first.spacing, rtol=1e-3, atol=1e-4):
            logger.warning("%s: spacing %s differs from %s (%s)", other.path, other.spacing, first.path, first.spacing)
    return first.shape, tuple(round(s, 6) for s in first.spacing)


# --------------------------------------------------------------------------------------------
# pairs
# --------------------------------------------------------------------------------------------


def random_pairs(num_items: int, num_pairs: int, seed: int = 0) -> list[tuple[int, int]]:
    """``num_pairs`` distinct ordered pairs ``(fixed, moving)`` of indices, ``fixed != moving``.

    Drawn uniformly without replacement from the ``n (n - 1)`` ordered pairs with
    ``random.Random(seed)`` (stable across NumPy versions); ``random.sample`` over a ``range``
    never builds the list of all pairs, so this stays cheap for thousands of images.
    """
    n = int(num_items)
    if isinstance(num_pairs, bool) or int(num_pairs) != num_pairs or num_pairs < 0:
        raise ValueError(f"num_pairs must be a non-negative integer, got {num_pairs!r}")
    total = n * (n - 1)
    if num_pairs > total:
        raise ValueError(f"cannot draw {num_pairs} distinct ordered pairs from {n} images (at most {total})")
    picks = random.Random(int(seed)).sample(range(total), int(num_pairs))
    pairs = []
    for k in picks:
        fixed, r = divmod(k, n - 1)
        pairs.append((fixed, r if r < fixed else r + 1))
    return pairs


def consecutive_pairs(num_items: int) -> list[tuple[int, int]]:
    """``(i, i + 1)`` for ``i = 0 .. n - 2``: the Learn2Reg OASIS order, fixed = i, moving = i + 1."""
    return [(i, i + 1) for i in range(max(0, int(num_items) - 1))]


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def datalist_path(path: str | Path, out: str | Path, absolute: bool = False) -> str:
    """The path written into the datalist: relative to ``out`` (POSIX separators) or absolute.

    A relative path keeps the datalist valid when the dataset and the output folder move
    together; where none exists (another drive) the absolute path is written.
    """
    path = Path(path).resolve()
    if absolute:
        return path.as_posix()
    try:
        return Path(os.path.relpath(path, Path(out).resolve())).as_posix()
    except ValueError:
        return path.as_posix()


def intensity_scaling(a_min: float, a_max: float, observed: tuple[float, float] | None) -> dict[str, Any]:
    """The ``ScaleIntensityRanged`` arguments a bundle uses to bring the images to [0, 1]."""
    record: dict[str, Any] = {
        "transform": "monai.transforms.ScaleIntensityRanged",
        "a_min": float(a_min),
        "a_max": float(a_max),
        "b_min": 0.0,
        "b_max": 1.0,
        "clip": True,
    }
    if observed is not None:
        record["observed_min"] = round(float(observed[0]), 6)
        record["observed_max"] = round(float(observed[1]), 6)
    return record


def write_datalist(out: str | Path, datalist: Mapping[str, Any]) -> Path:
    """Write ``OUT/datalist.json`` atomically (temporary name, then rename); return its path."""
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / DATALIST_NAME
    try:
        with atomic_write_path(path) as tmp:
            Path(tmp).write_text(json.dumps(datalist, indent=4) + "\n")
    except BaseException:
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
    return path


def summarise(datalist: Mapping[str, Any], keys: Sequence[str], log: Callable[..., None] = logger.info) -> None:
    """Log how many entries each list of the datalist holds."""
    log("%s", ", ".join(f"{k}: {len(datalist.get(k, []))}" for k in keys))


def pair_entry(
    fixed: Mapping[str, str | Path],
    moving: Mapping[str, str | Path],
    subjects: tuple[str, str],
    out: Path,
    absolute: bool,
) -> dict[str, Any]:
    """One pair of a datalist: ``fixed_<key>`` / ``moving_<key>`` for every file key given (``image``,
    ``label``, ``mask``, ``landmarks``), then ``fixed_subject`` / ``moving_subject``."""
    entry: dict[str, Any] = {}
    for key in fixed:
        entry[f"fixed_{key}"] = datalist_path(fixed[key], out, absolute)
        entry[f"moving_{key}"] = datalist_path(moving[key], out, absolute)
    entry["fixed_subject"], entry["moving_subject"] = subjects
    return entry


@dataclass
class PairDatalist:
    """The datalist of an inter-subject brain registration dataset (LUMIR, OASIS), as both converters
    write it: a description of the dataset, then ``training_images`` (drawn into pairs on the fly),
    the random ``training`` pairs and the fixed evaluation ``splits`` (``validation``, ``testing``,
    ...), each a list of :func:`pair_entry` dictionaries."""

    name: str
    description: str
    reference: str
    source: Mapping[str, Any]
    ndim: int
    shape: Sequence[int]
    spacing: Sequence[float]
    intensity: Mapping[str, Any]
    labels: Mapping[str, str]
    evaluation: Mapping[str, Any]
    pairing: Mapping[str, str]
    seed: int
    training_images: list[dict[str, Any]]
    training: list[dict[str, Any]]
    splits: dict[str, list[dict[str, Any]]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "reference": self.reference,
            "source": dict(self.source),
            "tensorImageSize": f"{self.ndim}D",
            "modality": {"0": "T1w MRI"},
            "spatial_shape": list(self.shape),
            "spacing": list(self.spacing),
            "intensity": dict(self.intensity),
            "labels": dict(self.labels),
            "evaluation": dict(self.evaluation),
            "pairing": dict(self.pairing),
            "seed": int(self.seed),
            "num_training_images": len(self.training_images),
            "num_training": len(self.training),
            "training_images": self.training_images,
            "training": self.training,
            **self.splits,
        }

    def write(self, out: str | Path) -> Path:
        """Write ``OUT/datalist.json`` atomically, log the entry counts, return its path."""
        datalist = self.as_dict()
        path = write_datalist(out, datalist)
        summarise(datalist, ("training_images", "training", *self.splits))
        logger.info("wrote %s", path)
        return path
