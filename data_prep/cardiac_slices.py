"""Short-axis ES->ED slice pairs for 2-D cardiac registration (GSMorph, §3.1).

GSMorph registers the End-Systole (ES) frame of a cine-MRI sequence (moving) to the
End-Diastole (ED) frame (fixed), slice by slice, on 128 x 128 crops centred on the heart
with intensities normalised to [0, 1]. This module holds what the ACDC and M&Ms converters
share once a dataset reader has produced the ED/ES volumes of one subject:

- reading and checking NIfTI volumes (dimension, NaN, label values),
- the label convention (0 background, 1 LV, 2 Myo, 3 RV; ACDC stores 1 RV, 3 LV),
- the crop (centred in-plane on the ED label centroid of the whole volume, zero padded),
- min-max normalisation of each 2-D slice,
- the world placement of a cropped slice (4 x 4 affine of the 2-D NIfTI),
- a seeded patient-level train/validation/test split,
- writing slices and ``datalist.json`` so that a failure leaves earlier outputs intact.

Output layout (paths relative to ``OUT``)::

    images/<subject>_slice<SS>_{ED,ES}.nii.gz   2-D float32 in [0, 1], crop_size x crop_size
    labels/<subject>_slice<SS>_{ED,ES}.nii.gz   2-D uint8, values in {0, 1, 2, 3}
    datalist.json                               MONAI decathlon-style datalist, written last

``<SS>`` is the zero-based index of the slice along the third array axis of the source
volume, zero padded to two digits. The split is recorded in ``datalist.json`` twice: by the
``training`` / ``validation`` / ``testing`` lists of pairs and by the ``subjects`` list, one
record per subject with its split, frames, spacing and source files.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from monai.transforms import MapLabelValue

from data_prep.array_checks import spatial_shape
from monai_ext.io.atomic import atomic_write_path
from monai_ext.io.nifti import load_nifti, save_nifti

__all__ = [
    "CARDIAC_LABELS",
    "ACDC_TO_CARDIAC",
    "SPLIT_NAMES",
    "PhasePair",
    "SlicePair",
    "load_volume",
    "check_image",
    "check_label",
    "remap_labels",
    "check_same_affine",
    "crop_start",
    "crop_pad_2d",
    "normalise_min_max",
    "slice_affine",
    "extract_slice_pairs",
    "parse_split",
    "split_counts",
    "split_subjects",
    "convert_phase_pairs",
]

logger = logging.getLogger(__name__)

#: Label names of the shared cardiac convention (M&Ms order), as written to ``datalist.json``.
CARDIAC_LABELS: dict[str, str] = {"0": "background", "1": "LV", "2": "Myo", "3": "RV"}
#: ACDC stores 1 RV, 2 Myo, 3 LV: swap 1 and 3.
ACDC_TO_CARDIAC: dict[int, int] = {0: 0, 1: 3, 2: 2, 3: 1}
#: Keys of the three lists of pairs in ``datalist.json``, in the order of the split fractions.
SPLIT_NAMES: tuple[str, str, str] = ("training", "validation", "testing")
_VALID_LABELS = frozenset(int(k) for k in CARDIAC_LABELS)


# --------------------------------------------------------------------------------------------
# reading and checking
# --------------------------------------------------------------------------------------------


def load_volume(path: str | Path, ndim: int, label: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI volume (``monai_ext.io.nifti.load_nifti``) and check it.

    Args:
        path: the ``.nii`` / ``.nii.gz`` file.
        ndim: the expected number of dimensions (3 for one frame, 4 for a cine sequence);
            trailing singleton axes beyond ``ndim`` are dropped.
        label: check as a label map (:func:`check_label`, uint8) rather than as an image
            (:func:`check_image`, float32).

    Returns:
        ``(array, affine)``: the data, shape ``(X, Y, Z[, T])``, and the 4 x 4 voxel-to-world
        affine (nibabel, RAS millimetres).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unreadable file, wrong number of dimensions, NaN, or bad label values.
    """
    data, affine = load_nifti(path)
    data = data.reshape(spatial_shape(data.shape, ndim, str(path)))
    data = check_label(data, path) if label else check_image(data, path)
    return data, affine


def check_image(array: np.ndarray, name: str | Path) -> np.ndarray:
    """Return the image as float32; ``ValueError`` naming ``name`` if it holds NaN or inf."""
    array = np.asarray(array, dtype=np.float32)
    if np.isnan(array).any():
        raise ValueError(f"{name}: image contains NaN values")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: image contains infinite values")
    return array


def check_label(array: np.ndarray, name: str | Path) -> np.ndarray:
    """Return the label map as uint8 after checking that every value is one of 0, 1, 2, 3."""
    array = np.asarray(array)
    values = np.unique(array)
    if array.dtype.kind == "f":
        if not np.isfinite(values).all() or not np.array_equal(values, np.round(values)):
            raise ValueError(f"{name}: label map holds non-integer values {values[:10].tolist()}")
    bad = sorted({int(v) for v in values} - _VALID_LABELS)
    if bad:
        raise ValueError(f"{name}: label values {bad} outside the expected set {{0, 1, 2, 3}}")
    return array.astype(np.uint8)


def remap_labels(label: np.ndarray, mapping: Mapping[int, int]) -> np.ndarray:
    """Map label values (e.g. :data:`ACDC_TO_CARDIAC`) with MONAI ``MapLabelValue``; uint8 out."""
    keys = sorted(mapping)
    transform = MapLabelValue(orig_labels=keys, target_labels=[mapping[k] for k in keys], dtype=np.uint8)
    return np.asarray(transform(np.asarray(label)), dtype=np.uint8)


def check_same_affine(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Warn when two files that must share one grid have different affines."""
    if not np.allclose(a, b, atol=1e-3, rtol=1e-4):
        logger.warning("%s and %s have different affines; the image affine is used", name_a, name_b)


# --------------------------------------------------------------------------------------------
# one subject: ED (fixed) and ES (moving) volumes
# --------------------------------------------------------------------------------------------


@dataclass
class PhasePair:
    """ED (fixed) and ES (moving) short-axis volumes of one subject.

    Images are float32 ``(X, Y, Z)``, labels uint8 ``(X, Y, Z)`` already in the shared
    convention (1 LV, 2 Myo, 3 RV); ``affine`` is the 4 x 4 voxel-to-world matrix (RAS mm)
    of the ED image. ``sources`` names where each array came from (used in messages), and
    ``info`` is recorded in the ``subjects`` list of ``datalist.json``.
    Construction checks shapes and that both label maps hold foreground.
    """

    subject: str
    fixed_image: np.ndarray
    moving_image: np.ndarray
    fixed_label: np.ndarray
    moving_label: np.ndarray
    affine: np.ndarray
    sources: dict[str, str]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        src = self.sources
        for key in ("fixed_image", "moving_image", "fixed_label", "moving_label"):
            array = getattr(self, key)
            if array.ndim != 3:
                raise ValueError(f"{src[key]}: expected a 3-D (X, Y, Z) volume, got shape {array.shape}")
        for phase in ("fixed", "moving"):
            image, label = getattr(self, f"{phase}_image"), getattr(self, f"{phase}_label")
            if image.shape != label.shape:
                raise ValueError(
                    f"image/label shape mismatch: {src[phase + '_image']} has shape {image.shape}, "
                    f"{src[phase + '_label']} has shape {label.shape}"
                )
        if self.fixed_image.shape != self.moving_image.shape:
            raise ValueError(
                f"ED/ES size mismatch: {src['fixed_image']} has shape {self.fixed_image.shape}, "
                f"{src['moving_image']} has shape {self.moving_image.shape}"
            )
        for phase in ("fixed", "moving"):
            if not getattr(self, f"{phase}_label").any():
                raise ValueError(f"{src[phase + '_label']}: no labelled voxels (expected 1 LV, 2 Myo, 3 RV)")
        if src["fixed_image"] == src["moving_image"] or np.array_equal(self.fixed_image, self.moving_image):
            raise ValueError(
                f"{src['moving_image']}: the ES frame is the ED frame ({src['fixed_image']}); "
                "there is no motion to register"
            )
        # ED is the frame of largest LV cavity, by definition: a smaller one means the frames are swapped
        lv_ed, lv_es = (int(np.count_nonzero(getattr(self, f"{p}_label") == 1)) for p in ("fixed", "moving"))
        if lv_ed < lv_es:
            raise ValueError(
                f"{src['fixed_label']}: the LV (label 1) is smaller at ED ({lv_ed} voxels) than at ES "
                f"({src['moving_label']}, {lv_es} voxels); ED and ES look swapped in the dataset's frame list"
            )
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"{src['fixed_image']}: expected a 4 x 4 affine, got {self.affine.shape}")

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the three array axes (column norms of the affine)."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]


@dataclass
class SlicePair:
    """One cropped, normalised ES->ED slice pair (``crop_size`` x ``crop_size``).

    ``z`` is the slice index in the source volume, ``start`` the source voxel of output
    voxel (0, 0), ``affine`` the 4 x 4 affine of the 2-D output (see :func:`slice_affine`).
    """

    z: int
    fixed_image: np.ndarray
    moving_image: np.ndarray
    fixed_label: np.ndarray
    moving_label: np.ndarray
    affine: np.ndarray
    start: tuple[int, int]


# --------------------------------------------------------------------------------------------
# crop, normalise, place
# --------------------------------------------------------------------------------------------


def crop_start(fixed_label: np.ndarray, crop_size: int) -> tuple[int, int]:
    """First in-plane voxel ``(x0, y0)`` of the crop centred on the ED label centroid.

    The centroid of all foreground voxels of the whole ``(X, Y, Z)`` volume, projected
    in-plane and rounded, becomes voxel ``crop_size // 2`` of the crop; the same window is
    used for every slice and for ES.
    """
    points = np.argwhere(np.asarray(fixed_label) > 0)
    if points.size == 0:
        raise ValueError("the ED label map has no foreground to centre the crop on")
    centre = points[:, :2].mean(axis=0)
    return tuple(int(np.floor(c + 0.5)) - crop_size // 2 for c in centre)  # type: ignore[return-value]


def crop_pad_2d(image: np.ndarray, start: Sequence[int], crop_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``image[x0:x0+crop, y0:y0+crop]``, zero padded where the window leaves the image.

    Hand-written rather than MONAI ``SpatialCrop`` + ``SpatialPad``: those clip the window at
    the border or pad symmetrically, whereas the window here must keep its exact offset so
    that the output affine is a pure translation of the source one.

    Returns:
        ``(crop, inside)``: the crop and a boolean mask of the voxels that lie in the image.
    """
    out = np.zeros((crop_size, crop_size), dtype=image.dtype)
    inside = np.zeros((crop_size, crop_size), dtype=bool)
    src, dst = [], []
    for axis in range(2):
        lo = max(start[axis], 0)
        hi = min(start[axis] + crop_size, image.shape[axis])
        if hi <= lo:
            return out, inside
        src.append(slice(lo, hi))
        dst.append(slice(lo - start[axis], hi - start[axis]))
    out[dst[0], dst[1]] = image[src[0], src[1]]
    inside[dst[0], dst[1]] = True
    return out, inside


def normalise_min_max(image: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray | None:
    """Min-max normalise a 2-D image to [0, 1] (GSMorph §3.1), float32.

    The minimum and maximum are taken over ``inside`` (the voxels of the crop that lie in the
    source image); voxels outside it (padding) are set to 0. Returns ``None`` for a constant
    image, which cannot be normalised.
    """
    image = np.asarray(image, dtype=np.float64)
    inside = np.ones(image.shape, dtype=bool) if inside is None else inside
    if not inside.any():
        return None
    lo, hi = float(image[inside].min()), float(image[inside].max())
    if hi <= lo:
        return None
    out = np.where(inside, (image - lo) / (hi - lo), 0.0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def slice_affine(affine: np.ndarray, start: Sequence[int], z: int) -> np.ndarray:
    """4 x 4 affine of the 2-D crop starting at source voxel ``(x0, y0)`` of slice ``z``.

    Output voxel ``(i, j)`` is source voxel ``(x0 + i, y0 + j, z)``, so the new affine is the
    source affine times a voxel translation: the in-plane spacing and direction are kept and the
    origin moves to the world position of source voxel ``(x0, y0, z)``. The third column (slice
    direction and thickness) is kept so that the 2-D NIfTI still records the slice thickness.
    """
    shift = np.eye(4)
    shift[:3, 3] = (start[0], start[1], z)
    return np.asarray(affine, dtype=np.float64) @ shift


def extract_slice_pairs(pair: PhasePair, crop_size: int = 128) -> list[SlicePair]:
    """Crop and normalise every slice where both ED and ES labels have foreground.

    A slice whose (cropped) ED or ES image is constant is skipped with a warning naming the
    file and slice. Foreground cut off by the crop is reported as a warning.
    """
    crop_size = _check_crop_size(crop_size)
    start = crop_start(pair.fixed_label, crop_size)
    pairs: list[SlicePair] = []
    for z in range(pair.fixed_label.shape[2]):
        if not (pair.fixed_label[..., z].any() and pair.moving_label[..., z].any()):
            continue
        arrays: dict[str, np.ndarray] = {}
        skip = False
        for key in ("fixed_image", "moving_image"):
            crop, inside = crop_pad_2d(getattr(pair, key)[..., z], start, crop_size)
            norm = normalise_min_max(crop, inside)
            if norm is None:
                logger.warning("%s: slice %d is constant inside the crop, slice skipped", pair.sources[key], z)
                skip = True
                break
            arrays[key] = norm
        if skip:
            continue
        for key in ("fixed_label", "moving_label"):
            label = getattr(pair, key)[..., z]
            crop, _ = crop_pad_2d(label, start, crop_size)
            lost = int(np.count_nonzero(label)) - int(np.count_nonzero(crop))
            if lost:
                logger.warning(
                    "%s: slice %d loses %d labelled voxels to the %d x %d crop",
                    pair.sources[key],
                    z,
                    lost,
                    crop_size,
                    crop_size,
                )
            arrays[key] = crop.astype(np.uint8)
        pairs.append(SlicePair(z=z, affine=slice_affine(pair.affine, start, z), start=start, **arrays))
    return pairs


def _check_crop_size(crop_size: int) -> int:
    if isinstance(crop_size, bool) or int(crop_size) != crop_size or int(crop_size) < 1:
        raise ValueError(f"crop_size must be a positive integer, got {crop_size!r}")
    return int(crop_size)


# --------------------------------------------------------------------------------------------
# patient-level split
# --------------------------------------------------------------------------------------------


def parse_split(split: str | Sequence[float]) -> tuple[float, float, float]:
    """Train/validation/test fractions from ``"0.75,0.05,0.2"`` or a sequence of 3 numbers.

    Non-negative; normalised to sum to 1 (so ``"75,5,20"`` works too).
    """
    if isinstance(split, str):
        parts = [p for p in split.replace(";", ",").split(",") if p.strip()]
        try:
            values = [float(p) for p in parts]
        except ValueError as err:
            raise ValueError(f"split must be three numbers such as '0.75,0.05,0.2', got {split!r}") from err
    else:
        values = [float(v) for v in split]
    if len(values) != 3 or any(not np.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise ValueError(f"split must be three non-negative numbers (train, validation, test), got {split!r}")
    total = sum(values)
    return tuple(v / total for v in values)  # type: ignore[return-value]


def split_counts(num_subjects: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Subjects per split: largest-remainder rounding of ``num_subjects * fraction``.

    Every split with a positive fraction gets at least one subject when there are enough
    subjects (taken from the largest split), so a small dataset still has a validation set.
    """
    fractions = parse_split(fractions)
    exact = [num_subjects * f for f in fractions]
    counts = [int(np.floor(e)) for e in exact]
    order = sorted(range(3), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: num_subjects - sum(counts)]:
        counts[i] += 1
    if num_subjects >= sum(f > 0 for f in fractions):
        for i in range(3):
            if fractions[i] > 0 and counts[i] == 0:
                donor = max(range(3), key=lambda k: counts[k])
                counts[donor] -= 1
                counts[i] += 1
    return tuple(counts)  # type: ignore[return-value]


def split_subjects(
    subjects: Iterable[str], fractions: str | Sequence[float] = (0.75, 0.05, 0.2), seed: int = 0
) -> dict[str, list[str]]:
    """Seeded patient-level split (GSMorph §3.1: 75 % / 5 % / 20 %).

    The sorted subject names are shuffled with ``random.Random(seed)`` (stable across NumPy
    versions) and cut by :func:`split_counts`. Returns ``{"training": [...], "validation":
    [...], "testing": [...]}``, each list sorted.
    """
    names = sorted(set(subjects))
    random.Random(int(seed)).shuffle(names)
    counts = split_counts(len(names), fractions)
    out: dict[str, list[str]] = {}
    begin = 0
    for key, count in zip(SPLIT_NAMES, counts):
        out[key] = sorted(names[begin : begin + count])
        begin += count
    return out


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _slice_name(subject: str, z: int, phase: str) -> str:
    return f"{subject}_slice{z:02d}_{phase}.nii.gz"


def _write_slice_pair(subject: str, pair: SlicePair, folder: Path) -> dict[str, Any]:
    """Write the four 2-D files of one slice pair under ``folder``; return the datalist entry."""
    entry: dict[str, Any] = {}
    for role, phase in (("fixed", "ED"), ("moving", "ES")):
        name = _slice_name(subject, pair.z, phase)
        save_nifti(folder / "images" / name, getattr(pair, f"{role}_image"), pair.affine, dtype=np.float32)
        save_nifti(folder / "labels" / name, getattr(pair, f"{role}_label"), pair.affine, dtype=np.uint8)
        entry[f"{role}_image"] = f"images/{name}"
        entry[f"{role}_label"] = f"labels/{name}"
    entry = {k: entry[k] for k in ("fixed_image", "moving_image", "fixed_label", "moving_label")}
    entry.update(subject=subject, slice=int(pair.z))
    return entry


PAIR_FILE_KEYS = ("fixed_image", "moving_image", "fixed_label", "moving_label")


def _files_of_previous_datalist(out: Path) -> set[str]:
    """The slice files (relative to ``out``, under ``images/`` or ``labels/``) that an earlier
    conversion's ``datalist.json`` lists: those not listed again are removed after this conversion,
    so that no orphan slice of a larger earlier run stays beside the new datalist. Files the
    earlier datalist does not list (the user's own) are never touched."""
    path = out / "datalist.json"
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return set()
    files = set()
    for key in SPLIT_NAMES:
        for entry in previous.get(key, []) if isinstance(previous, dict) else []:
            for k in PAIR_FILE_KEYS:
                value = entry.get(k) if isinstance(entry, dict) else None
                if isinstance(value, str) and Path(value).parts[:1] in (("images",), ("labels",)) and ".." not in value:
                    files.add(value)
    return files


def convert_phase_pairs(
    pairs: Iterable[PhasePair],
    out: str | Path,
    crop_size: int = 128,
    split: str | Sequence[float] = (0.75, 0.05, 0.2),
    seed: int = 0,
    name: str = "cardiac ES->ED slice pairs",
    description: str = "",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write the slice pairs of every subject and ``OUT/datalist.json``; return its path.

    All files are first written to a hidden staging folder inside ``out``; only when every
    subject has been read and written are they moved into ``out/images`` and ``out/labels``
    (``os.replace``) and ``datalist.json`` written (atomically, last). An error in any subject
    removes the staging folder and leaves earlier outputs in ``out`` untouched.

    Args:
        pairs: one :class:`PhasePair` per subject, typically a generator reading lazily.
        out: the output folder (created if needed).
        crop_size: side of the square in-plane crop (GSMorph: 128).
        split: train/validation/test fractions, see :func:`parse_split`.
        seed: seed of the patient-level shuffle.
        name, description: written at the top of ``datalist.json``.
        extra: further top-level items for ``datalist.json``.
    """
    crop_size = _check_crop_size(crop_size)
    fractions = parse_split(split)
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".data_prep-staging-", dir=out))
    try:
        for sub in ("images", "labels"):
            (staging / sub).mkdir()
        entries: dict[str, list[dict[str, Any]]] = {}
        records: dict[str, dict[str, Any]] = {}
        for pair in pairs:
            if pair.subject in records:
                raise ValueError(f"subject {pair.subject} found twice ({pair.sources['fixed_image']})")
            slices = extract_slice_pairs(pair, crop_size)
            if not slices:
                logger.warning("%s: no slice with ED and ES labels, subject skipped", pair.subject)
                continue
            entries[pair.subject] = [_write_slice_pair(pair.subject, s, staging) for s in slices]
            records[pair.subject] = {
                "subject": pair.subject,
                "num_slices": len(slices),
                "slices": [s.z for s in slices],
                "shape": [int(v) for v in pair.fixed_image.shape],
                "spacing": [round(v, 6) for v in pair.spacing],
                **pair.info,
            }
            logger.info("%s: %d slice pairs", pair.subject, len(slices))
        if not entries:
            raise ValueError(f"no subject with labelled ED and ES slices to write to {out}")
        groups = split_subjects(entries, fractions, seed)
        datalist: dict[str, Any] = {
            "name": name,
            "description": description,
            "reference": "GSMorph (MICCAI 2023) section 3.1: ES (moving) to ED (fixed), "
            f"{crop_size}x{crop_size} crops centred on the heart, intensities in [0, 1]",
            "tensorImageSize": "2D",
            "modality": {"0": "cine-MRI"},
            "labels": dict(CARDIAC_LABELS),
            "crop_size": crop_size,
            "split_fractions": [round(f, 6) for f in fractions],
            "seed": int(seed),
            **(dict(extra) if extra else {}),
        }
        for key in SPLIT_NAMES:
            datalist[f"num_{key}"] = sum(len(entries[s]) for s in groups[key])
        split_of = {s: key for key in SPLIT_NAMES for s in groups[key]}
        datalist["subjects"] = [{**records[s], "split": split_of[s]} for s in sorted(records)]
        for key in SPLIT_NAMES:
            datalist[key] = [e for s in groups[key] for e in entries[s]]
        # everything is read and written: move into place, datalist last
        previous = _files_of_previous_datalist(out)
        for sub in ("images", "labels"):
            (out / sub).mkdir(exist_ok=True)
            for path in sorted((staging / sub).iterdir()):
                os.replace(path, out / sub / path.name)
        datalist_path = out / "datalist.json"
        with atomic_write_path(datalist_path) as tmp:
            Path(tmp).write_text(json.dumps(datalist, indent=4) + "\n")
        current = {e[k] for key in SPLIT_NAMES for e in datalist[key] for k in PAIR_FILE_KEYS}
        orphans = sorted(previous - current)
        for relative in orphans:
            (out / relative).unlink(missing_ok=True)
        if orphans:
            logger.info(
                "removed %d slice files of the previous conversion in %s that this one does not list", len(orphans), out
            )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
    shutil.rmtree(staging, ignore_errors=True)
    logger.info(
        "wrote %s (%s)",
        datalist_path,
        ", ".join(f"{k}: {len(groups[k])} subjects / {datalist['num_' + k]} pairs" for k in SPLIT_NAMES),
    )
    return datalist_path
