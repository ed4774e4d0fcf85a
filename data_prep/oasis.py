"""OASIS brain MRI for inter-subject registration: the Learn2Reg and the neurite-OASIS layouts.

Learn2Reg layout (``ROOT/OASIS_dataset.json``)::

    {"training": [{"image": "./imagesTr/OASIS_0001_0000.nii.gz", "label": "./labelsTr/OASIS_0001_0000.nii.gz",
                   "mask": "./masksTr/OASIS_0001_0000.nii.gz"}, ...],
     "registration_val": [{"fixed": "./imagesTr/OASIS_0438_0000.nii.gz",
                           "moving": "./imagesTr/OASIS_0439_0000.nii.gz"}, ...],
     "registration_test": [...], "test": [...]}       (test images are not in the public release)

neurite-OASIS layout (``neurite-oasis.v1.0``, Hoopes et al., HyperMorph)::

    ROOT/subjects.txt, ROOT/seg35_labels.txt, ROOT/seg24_labels.txt, ROOT/seg4_labels.txt
    ROOT/OASIS_OAS1_0001_MR1/aligned_norm.nii.gz    160 x 192 x 224, skull-stripped, in [0, 1]
                             aligned_seg35.nii.gz   35 labels, aligned_seg4.nii.gz  4 tissue classes
                             slice_norm.nii.gz      160 x 192 coronal slice, slice_seg24.nii.gz  24 labels

Facts checked against public material:

- ``adalca/medical-datasets/neurite-oasis.md``: 414 subjects listed in ``subjects.txt``; per
  subject ``orig`` / ``norm`` (256^3, scanner space), ``aligned_orig`` / ``aligned_norm``
  (160 x 192 x 224, affinely aligned to FreeSurfer's Talairach space, intensities scaled to
  [0, 1]), ``slice_*`` (coronal slice 109, 160 x 192); 35-label, 4-label (3-D) and 24-label (2-D)
  segmentations named in ``seg35_labels.txt`` / ``seg4_labels.txt`` / ``seg24_labels.txt``
  (FreeSurfer colour-table format).
- ``MDL-UzL/L2R/evaluation/evaluation_configs/OASIS_VAL_evaluation_config.json``: the Learn2Reg
  OASIS pairs are ``fixed = OASIS_i``, ``moving = OASIS_(i+1)`` (0395 <- 0396 ... 0413 <- 0414 in
  that version), Dice and HD95 over labels **1 .. 35 (background not counted)**, SDlogJ; the
  displacement fields are expected with shape ``[160, 224, 192, 3]``, i.e. the Learn2Reg
  release stores its images as 160 x 224 x 192 (the neurite arrays reoriented), not
  160 x 192 x 224. Nothing here depends on the size: every image must simply share one grid.
- Public Learn2Reg OASIS loaders read ``OASIS_dataset.json``'s ``training[].image``,
  ``registration_val`` / ``registration_test`` ``{"fixed", "moving"}`` and find labels by
  replacing ``images`` with ``labels`` in the path; the validation images sit in ``imagesTr``
  (one loader drops the last 20 ``imagesTr`` files from training for that reason), so any
  subject of a validation or test pair is removed from the training subjects here.
- Label numbering of ``seg35`` / ``seg24`` / ``seg4`` (1 Left-Cerebral-White-Matter,
  2 Left-Cerebral-Cortex, ..., 35 Right-choroid-plexus; see :data:`OASIS_SEG35_LABELS`) as in
  public neurite-OASIS loaders; names are FreeSurfer colour-table spellings, and the dataset's
  own ``seg*_labels.txt`` names are used when the file is present.

The datalist points at the original files. Images are already in [0, 1]; ``intensity``
records the ``ScaleIntensityRanged`` range observed (identity for [0, 1] data).
Training pairs are drawn at random (seeded, fixed != moving) among the training subjects,
which never include a validation or test subject; ``training_images`` lists them for pairs
drawn on the fly. Validation pairs are Learn2Reg's ``registration_val`` as listed, or for
neurite-OASIS consecutive pairs (fixed = i, moving = i + 1) of the last ``num_val`` subjects of
``subjects.txt`` (Learn2Reg 2021's choice); ``num_test`` holds out further subjects as labelled
test pairs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_prep.brain_datalist import (
    PairDatalist,
    VolumeInfo,
    check_same_grid,
    check_same_shape,
    consecutive_pairs,
    datalist_path,
    entry_list,
    entry_path,
    inspect_volumes,
    intensity_scaling,
    pair_entry,
    random_pairs,
    read_dataset_json,
    sibling_file,
    subject_id,
    subject_number,
)
from monai_ext.options import check_option, flag

__all__ = [
    "OASIS_JSON",
    "OASIS_SEG35_LABELS",
    "OASIS_SEG24_LABELS",
    "OASIS_SEG4_LABELS",
    "NEURITE_VARIANTS",
    "OasisSubject",
    "read_freesurfer_lut",
    "detect_oasis_layout",
    "read_learn2reg_oasis",
    "find_neurite_root",
    "read_neurite_oasis",
    "prepare_oasis",
]

logger = logging.getLogger(__name__)

#: Name of the Learn2Reg dataset JSON.
OASIS_JSON = "OASIS_dataset.json"

_SIDES = ("Left", "Right")
_SEG35_PER_SIDE = (
    "Cerebral-White-Matter", "Cerebral-Cortex", "Lateral-Ventricle", "Inf-Lat-Vent", "Cerebellum-White-Matter",
    "Cerebellum-Cortex", "Thalamus", "Caudate", "Putamen", "Pallidum",
)  # fmt: skip
_SEG35_LEFT_TAIL = ("Hippocampus", "Amygdala", "Accumbens-area", "VentralDC", "vessel", "choroid-plexus")


def _seg35() -> dict[str, str]:
    names = ["background"]
    names += [f"Left-{n}" for n in _SEG35_PER_SIDE]
    names += ["3rd-Ventricle", "4th-Ventricle", "Brain-Stem"]
    names += [f"Left-{n}" for n in _SEG35_LEFT_TAIL]
    names += [f"Right-{n}" for n in _SEG35_PER_SIDE + _SEG35_LEFT_TAIL]
    return {str(i): n for i, n in enumerate(names)}


def _seg24() -> dict[str, str]:
    per_side = (
        "Cerebral-White-Matter",
        "Cerebral-Cortex",
        "Lateral-Ventricle",
        "Inf-Lat-Vent",
        "Thalamus",
        "Caudate",
        "Putamen",
        "Pallidum",
    )
    tail = ("Hippocampus", "VentralDC", "choroid-plexus")
    names = ["background"] + [f"Left-{n}" for n in per_side] + ["3rd-Ventricle", "Brain-Stem"]
    names += [f"Left-{n}" for n in tail] + [f"Right-{n}" for n in per_side + tail]
    return {str(i): n for i, n in enumerate(names)}


#: neurite-OASIS ``seg35`` / Learn2Reg OASIS label names (0 background, 1 .. 35 structures).
OASIS_SEG35_LABELS: dict[str, str] = _seg35()
#: neurite-OASIS ``slice_seg24`` label names of the 2-D coronal slice.
OASIS_SEG24_LABELS: dict[str, str] = _seg24()
#: neurite-OASIS ``seg4`` tissue classes.
OASIS_SEG4_LABELS: dict[str, str] = {
    "0": "background", "1": "Cortex", "2": "Subcortical-Gray-Matter", "3": "White-Matter", "4": "CSF",
}  # fmt: skip

#: neurite-OASIS variants: image file, label file, spatial dims, label names, colour table.
NEURITE_VARIANTS: dict[str, tuple[str, str, int, dict[str, str], str]] = {
    "seg35": ("aligned_norm.nii.gz", "aligned_seg35.nii.gz", 3, OASIS_SEG35_LABELS, "seg35_labels.txt"),
    "seg4": ("aligned_norm.nii.gz", "aligned_seg4.nii.gz", 3, OASIS_SEG4_LABELS, "seg4_labels.txt"),
    "seg24": ("slice_norm.nii.gz", "slice_seg24.nii.gz", 2, OASIS_SEG24_LABELS, "seg24_labels.txt"),
}

_NEURITE_SUBJECT = re.compile(r"^(OASIS_)?OAS1_\d{4}_MR\d$")
_SPLITS = ("training", "validation", "testing")


@dataclass(frozen=True)
class OasisSubject:
    """One OASIS subject: its image and, when present, its label map and brain mask."""

    subject: str
    image: Path
    label: Path | None = None
    mask: Path | None = None


# --------------------------------------------------------------------------------------------
# label names
# --------------------------------------------------------------------------------------------


def read_freesurfer_lut(path: str | Path) -> dict[str, str]:
    """``{"index": "name"}`` from a FreeSurfer colour table (``index name R G B A`` lines).

    Blank lines and ``#`` comments are skipped. ``ValueError`` naming the file and line for a
    line that does not start with an integer index and a name.
    """
    path = Path(path)
    names: dict[str, str] = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) < 2 or not parts[0].lstrip("-").isdigit():
            raise ValueError(f"{path}: line {number} is not 'index name R G B A': {line!r}")
        names[str(int(parts[0]))] = parts[1]
    return names


def _label_names(default: Mapping[str, str], lut: Path | None) -> dict[str, str]:
    names = dict(default)
    if lut is not None and lut.is_file():
        found = read_freesurfer_lut(lut)
        for key in names:
            if key != "0" and key in found:
                names[key] = found[key]
        extra = sorted(set(found) - set(names), key=int)
        if extra:
            logger.warning("%s: indices %s are not in the expected label set; ignored", lut, extra)
    return names


# --------------------------------------------------------------------------------------------
# Learn2Reg layout
# --------------------------------------------------------------------------------------------


def detect_oasis_layout(root: str | Path, dataset_json: str | Path | None = None) -> str:
    """``learn2reg`` when ``OASIS_dataset.json`` is there (or given), ``neurite`` for a neurite-OASIS
    folder (``subjects.txt`` or ``OASIS_OAS1_*_MR1`` folders, possibly one level down)."""
    root = Path(root)
    if dataset_json is not None or (root.is_file() and root.suffix == ".json") or (root / OASIS_JSON).is_file():
        return "learn2reg"
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: OASIS root folder not found")
    try:
        find_neurite_root(root)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{root}: neither {OASIS_JSON} (Learn2Reg layout) nor subjects.txt / OASIS_OAS1_*_MR1 folders "
            "(neurite-OASIS layout) found"
        ) from None
    return "neurite"


def read_learn2reg_oasis(
    root: str | Path, dataset_json: str | Path | None = None
) -> tuple[Path, list[OasisSubject], dict[str, list[tuple[str, str]]], dict[str, OasisSubject]]:
    """Read ``OASIS_dataset.json`` and resolve every file it names.

    Returns:
        ``(json_path, training_subjects, pairs, subjects)``: the subjects of ``training`` in
        JSON order, ``pairs = {"validation": [(fixed, moving), ...], "testing": [...]}`` as
        subject names (``registration_val`` / ``registration_test``; test pairs only when their
        images are present), and every subject by name (including pair images not listed
        under ``training``, with ``labels*`` / ``masks*`` files found next to them).

    Raises:
        FileNotFoundError: missing root, JSON or listed file.
        ValueError: the JSON lacks ``training`` / ``registration_val`` or has malformed entries.
    """
    root = Path(root)
    if root.is_file() and root.suffix == ".json":
        root, json_path = root.parent, root
    else:
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: OASIS root folder not found")
        json_path = Path(dataset_json) if dataset_json is not None else root / OASIS_JSON
    data = read_dataset_json(json_path, required=("training", "registration_val"))
    subjects: dict[str, OasisSubject] = {}
    training: list[OasisSubject] = []
    for i, entry in enumerate(entry_list(data, "training", ("image",), json_path)):
        where = f"'training'[{i}]"
        image = entry_path(root, entry["image"], json_path, f"{where}.image")
        extra = {}
        for key in ("label", "mask"):
            if entry.get(key) is not None:
                if not isinstance(entry[key], str):
                    raise ValueError(f"{json_path}: {where}.{key} must be a path, got {entry[key]!r}")
                extra[key] = entry_path(root, entry[key], json_path, f"{where}.{key}")
        subject = OasisSubject(subject_id(image), image, **extra)
        if subject.subject in subjects:
            raise ValueError(f"{json_path}: {where}: subject {subject.subject} listed twice")
        subjects[subject.subject] = subject
        training.append(subject)
    if not training:
        raise ValueError(f"{json_path}: 'training' lists no image")
    pairs: dict[str, list[tuple[str, str]]] = {}
    for key, split in (("registration_val", "validation"), ("registration_test", "testing")):
        entries = entry_list(data, key, ("fixed", "moving"), json_path)
        if key == "registration_test" and entries:
            if not any((root / e[r]).is_file() for e in entries for r in ("fixed", "moving")):
                logger.warning(
                    "%s: none of the 'registration_test' images is present (not in the public release); not used",
                    json_path,
                )
                entries = []
        pairs[split] = []
        for i, entry in enumerate(entries):
            names = []
            for role in ("fixed", "moving"):
                image = entry_path(root, entry[role], json_path, f"'{key}'[{i}].{role}")
                name = subject_id(image)
                if name not in subjects:
                    subjects[name] = OasisSubject(
                        name, image, sibling_file(image, "labels"), sibling_file(image, "masks")
                    )
                elif subjects[name].image.resolve() != image.resolve():
                    raise ValueError(
                        f"{json_path}: '{key}'[{i}].{role} {image} and {subjects[name].image} are both subject {name}"
                    )
                names.append(name)
            fixed_n, moving_n = (subject_number(subjects[n].image) for n in names)
            if fixed_n is not None and moving_n is not None and moving_n != fixed_n + 1:
                logger.warning(
                    "%s: %s pair fixed %s / moving %s does not follow OASIS's fixed = i, moving = i+1",
                    json_path,
                    key,
                    names[0],
                    names[1],
                )
            pairs[split].append((names[0], names[1]))
    if not pairs["validation"]:
        logger.warning("%s: 'registration_val' lists no pair", json_path)
    return json_path, training, pairs, subjects


# --------------------------------------------------------------------------------------------
# neurite-OASIS layout
# --------------------------------------------------------------------------------------------


def find_neurite_root(root: str | Path) -> Path:
    """The folder holding ``subjects.txt`` / the subject folders: ``root`` or its one
    ``neurite-oasis*`` sub-folder (as the tar file unpacks)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: neurite-OASIS root folder not found")

    def looks_like(folder: Path) -> bool:
        return (folder / "subjects.txt").is_file() or any(
            p.is_dir() and _NEURITE_SUBJECT.match(p.name) for p in folder.iterdir()
        )

    if looks_like(root):
        return root
    nested = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("neurite-oasis") and looks_like(p)]
    if len(nested) == 1:
        return nested[0]
    raise FileNotFoundError(f"{root}: no subjects.txt and no OASIS_OAS1_*_MR1 folders (neurite-OASIS layout)")


def read_neurite_oasis(root: str | Path, variant: str = "seg35") -> tuple[Path, list[OasisSubject]]:
    """Subjects of a neurite-OASIS folder in ``subjects.txt`` order (or sorted folder names).

    Args:
        root: the ``neurite-oasis.v1.0`` folder (or its parent).
        variant: ``seg35`` (3-D, 35 labels), ``seg4`` (3-D, 4 tissue classes) or ``seg24``
            (2-D coronal slices, 24 labels).

    Raises:
        FileNotFoundError: no such folder, a subject folder or file missing.
        ValueError: unknown variant, a ``subjects.txt`` line naming no subject, a duplicate.
    """
    check_option("variant", variant, NEURITE_VARIANTS)
    image_name, label_name = NEURITE_VARIANTS[variant][:2]
    root = find_neurite_root(root)
    listing = root / "subjects.txt"
    if listing.is_file():
        names = []
        for number, line in enumerate(listing.read_text(errors="replace").splitlines(), start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            name = Path(text).name
            if not _NEURITE_SUBJECT.match(name):
                raise ValueError(f"{listing}: line {number} is not a subject such as OASIS_OAS1_0001_MR1: {line!r}")
            names.append(name if name.startswith("OASIS_") else f"OASIS_{name}")
    else:
        logger.info("%s: no subjects.txt; using the OASIS_OAS1_*_MR1 folders in name order", root)
        names = sorted(p.name for p in root.iterdir() if p.is_dir() and _NEURITE_SUBJECT.match(p.name))
    if len(set(names)) != len(names):
        duplicate = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{listing}: subject(s) {duplicate} listed twice")
    subjects = []
    for name in names:
        folder = root / name
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: subject folder not found (listed in {listing})")
        image, label = folder / image_name, folder / label_name
        for path in (image, label):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: file not found")
        subjects.append(OasisSubject(name, image, label))
    if not subjects:
        raise FileNotFoundError(f"{root}: no neurite-OASIS subject found")
    return root, subjects


# --------------------------------------------------------------------------------------------
# conversion
# --------------------------------------------------------------------------------------------


def _pair_entry(
    fixed: OasisSubject, moving: OasisSubject, keys: Sequence[str], out: Path, absolute: bool
) -> dict[str, Any]:
    files = [{key: getattr(subject, key) for key in keys} for subject in (fixed, moving)]
    return pair_entry(files[0], files[1], (fixed.subject, moving.subject), out, absolute)


def _keys(subjects: Sequence[OasisSubject], split: str) -> list[str]:
    """Which of label / mask every subject of a split has (all or none for labels)."""
    if not subjects:
        return ["image", "label"]
    keys = ["image"]
    labelled = [s for s in subjects if s.label is not None]
    if labelled and len(labelled) < len(subjects):
        missing = next(s for s in subjects if s.label is None)
        raise ValueError(
            f"{missing.image}: no label map, while other {split} subjects have one (e.g. {labelled[0].label})"
        )
    if labelled:
        keys.append("label")
    masked = [s for s in subjects if s.mask is not None]
    if masked and len(masked) < len(subjects):
        logger.warning(
            "%s: only %d of %d subjects have a brain mask; masks left out", split, len(masked), len(subjects)
        )
    elif masked:
        keys.append("mask")
    return keys


def _split_neurite(subjects: list[OasisSubject], num_val: int, num_test: int):
    for name, value in (("num_val", num_val), ("num_test", num_test)):
        if isinstance(value, bool) or int(value) != value or value < 0 or value == 1:
            raise ValueError(
                f"{name} must be 0 or an integer >= 2 (consecutive pairs need two subjects), got {value!r}"
            )
    if num_val + num_test + 2 > len(subjects):
        raise ValueError(
            f"{len(subjects)} subjects cannot hold {num_val} validation + {num_test} test subjects "
            "and two training subjects"
        )
    end = len(subjects) - num_val
    validation = subjects[end:]
    testing = subjects[end - num_test : end]
    training = subjects[: end - num_test]
    return training, validation, testing


def _learn2reg_splits(
    root: str | Path, dataset_json: str | Path | None, variant: str, num_test: int
) -> tuple[list[OasisSubject], dict[str, list[tuple[OasisSubject, OasisSubject]]], dict[str, Any]]:
    """Training subjects and validation / test pairs of Learn2Reg OASIS (``registration_val``,
    ``registration_test`` or ``num_test`` held-out training subjects), and the source record."""
    if variant != "seg35":
        logger.warning("variant=%r applies to neurite-OASIS only; Learn2Reg OASIS has the 35 labels", variant)
    json_path, training, pairs, subjects = read_learn2reg_oasis(root, dataset_json)
    held = {n for split in pairs.values() for pair in split for n in pair}
    kept = [s for s in training if s.subject not in held]
    if len(kept) < len(training):
        logger.info("%d subject(s) of the validation/test pairs left out of training", len(training) - len(kept))
    training = kept
    split_pairs = {k: [(subjects[f], subjects[m]) for f, m in v] for k, v in pairs.items()}
    if num_test:
        if split_pairs["testing"]:
            logger.info("num_test=%d: held-out subjects replace 'registration_test' as testing", num_test)
        if num_test + 2 > len(training):
            raise ValueError(f"{len(training)} training subjects cannot hold {num_test} test subjects")
        tests = training[-num_test:]
        training = training[:-num_test]
        split_pairs["testing"] = [(tests[f], tests[m]) for f, m in consecutive_pairs(len(tests))]
    return training, split_pairs, {"layout": "learn2reg", "dataset_json": json_path.resolve().as_posix()}


def _neurite_splits(
    root: str | Path, variant: str, num_val: int, num_test: int
) -> tuple[list[OasisSubject], dict[str, list[tuple[OasisSubject, OasisSubject]]], dict[str, Any], Path]:
    """Training subjects and validation / test pairs of neurite-OASIS (the last subjects), the
    source record and the lookup table of the variant."""
    check_option("variant", variant, NEURITE_VARIANTS)
    lut_name = NEURITE_VARIANTS[variant][4]
    base, all_subjects = read_neurite_oasis(root, variant)
    training, validation, tests = _split_neurite(all_subjects, num_val, num_test)
    split_pairs = {
        "validation": [(validation[f], validation[m]) for f, m in consecutive_pairs(len(validation))],
        "testing": [(tests[f], tests[m]) for f, m in consecutive_pairs(len(tests))],
    }
    source = {"layout": "neurite", "root": base.resolve().as_posix(), "variant": variant}
    return training, split_pairs, source, base / lut_name


def _check_volumes(
    split_subjects: dict[str, list[OasisSubject]], ndim: int, allowed: list[int], check_data: bool, num_workers: int
) -> tuple[tuple[int, ...], tuple[float, ...], tuple[float, float] | None]:
    """Read every image, label and mask once (label values in ``allowed``, binary masks, one grid)
    and return the grid's shape and spacing and the observed intensity range (None without
    ``check_data``)."""
    everyone = list(dict.fromkeys(s for v in split_subjects.values() for s in v))
    requests = [(s.image, "image") for s in everyone]
    requests += [(s.label, "label") for s in everyone if s.label is not None]
    requests += [(s.mask, "mask") for s in everyone if s.mask is not None]
    infos: dict[Path, VolumeInfo] = {
        i.path: i
        for i in inspect_volumes(
            requests, ndim=ndim, allowed_values=allowed, check_data=check_data, num_workers=num_workers
        )
    }
    for s in everyone:
        check_same_shape([infos[p] for p in (s.image, s.label, s.mask) if p is not None])
        if check_data and s.label is not None and infos[s.label].values == (0,):
            raise ValueError(f"{s.label}: label map holds no structure (only background 0)")
    images = [infos[s.image] for s in everyone]
    shape, spacing = check_same_grid(images, "OASIS")
    observed = None
    if check_data:
        observed = (min(i.minimum for i in images), max(i.maximum for i in images))  # type: ignore[type-var]
        if observed[0] < -1e-3:
            logger.warning("OASIS images hold negative intensities (min %g); they are clipped at 0", observed[0])
    return shape, spacing, observed


def prepare_oasis(
    root: str | Path,
    out: str | Path,
    layout: str = "auto",
    variant: str = "seg35",
    dataset_json: str | Path | None = None,
    num_pairs: int | None = None,
    seed: int = 0,
    num_val: int = 20,
    num_test: int = 0,
    absolute_paths: bool = False,
    check_data: bool = True,
    num_workers: int = 4,
) -> Path:
    """Check an OASIS release and write ``OUT/datalist.json``; return its path.

    Args:
        root: the Learn2Reg OASIS folder (holding ``OASIS_dataset.json``) or the neurite-OASIS
            folder (holding ``subjects.txt``).
        out: output folder (only ``datalist.json`` is written).
        layout: ``auto``, ``learn2reg`` or ``neurite``.
        variant: neurite-OASIS only: ``seg35`` (default), ``seg4`` or ``seg24`` (2-D slices).
        dataset_json: Learn2Reg only: the JSON when it is not ``ROOT/OASIS_dataset.json``.
        num_pairs: random training pairs to list (default: as many as training subjects).
        seed: seed of the training pairs.
        num_val: neurite-OASIS only: the last ``num_val`` subjects give the validation pairs
            (fixed = i, moving = i + 1); Learn2Reg uses ``registration_val``.
        num_test: hold out the last ``num_test`` training subjects (before the validation
            ones) as labelled test pairs (fixed = i, moving = i + 1). With 0, Learn2Reg's
            ``registration_test`` pairs are used when their images are present.
        absolute_paths: write absolute paths (default: relative to ``out``).
        check_data: read every volume (NaN, label values in the expected set, binary masks);
            ``False`` checks headers only.
        num_workers: files read at a time.

    Each pair entry holds ``fixed_image``, ``moving_image``, ``fixed_label``, ``moving_label``
    (and ``fixed_mask`` / ``moving_mask`` where every subject of the split has a mask) plus
    ``fixed_subject`` / ``moving_subject``; ``training_images`` holds ``image``, ``label``,
    ``mask``, ``subject``. The datalist also records ``labels`` (names), ``spatial_shape``,
    ``spacing``, ``intensity`` and ``evaluation`` (Dice over labels 1 .. N, background not counted).
    """
    out = Path(out)
    absolute, check_data = flag(absolute_paths, "absolute_paths"), flag(check_data, "check_data")
    layout = str(layout).lower()
    if layout == "auto":
        layout = detect_oasis_layout(root, dataset_json)
    check_option("layout", layout, ("learn2reg", "neurite"))
    if isinstance(num_test, bool) or int(num_test) != num_test or num_test < 0 or num_test == 1:
        raise ValueError(f"num_test must be 0 or an integer >= 2, got {num_test!r}")
    if layout == "learn2reg":
        ndim, names, lut = 3, OASIS_SEG35_LABELS, None
        training, split_pairs, source = _learn2reg_splits(root, dataset_json, variant, num_test)
    else:
        training, split_pairs, source, lut = _neurite_splits(root, variant, num_val, num_test)
        ndim, names = NEURITE_VARIANTS[variant][2:4]
    if len(training) < 2:
        raise ValueError(f"{root}: {len(training)} training subject(s) left; need at least two for pairs")
    names = _label_names(names, lut)
    split_subjects = {
        "training": training,
        **{k: list(dict.fromkeys(s for pair in v for s in pair)) for k, v in split_pairs.items()},
    }
    keys = {k: _keys(v, k) for k, v in split_subjects.items()}
    shape, spacing, observed = _check_volumes(split_subjects, ndim, [int(k) for k in names], check_data, num_workers)
    a_max = 1.0
    if observed is not None:
        a_max = 1.0 if observed[1] <= 1.0 + 1e-3 else 255.0 if observed[1] <= 255.0 + 1e-3 else observed[1]
    drawn = random_pairs(len(training), len(training) if num_pairs is None else num_pairs, seed)
    structures = [int(k) for k in names if k != "0"]
    title = "Learn2Reg OASIS" if layout == "learn2reg" else f"neurite-OASIS ({variant})"
    datalist = PairDatalist(
        name=f"{title} inter-subject brain MRI pairs",
        description="OASIS-1 T1w brain MRI (Marcus et al. 2007) processed with FreeSurfer/SAMSEG by Hoopes "
        "and Dalca (HyperMorph): skull-stripped, bias-corrected, affinely aligned, intensities in [0, 1]. "
        "Paths point at the original files. Validation/test pairs fixed = i, moving = i+1; training pairs "
        "drawn at random among training subjects (fixed != moving), or draw new ones from 'training_images'.",
        reference="https://github.com/adalca/medical-datasets/blob/master/neurite-oasis.md ; Learn2Reg "
        "(https://learn2reg.grand-challenge.org)",
        source=source,
        ndim=ndim,
        shape=shape,
        spacing=spacing,
        intensity=intensity_scaling(0.0, a_max, observed),
        labels=names,
        evaluation={
            "dice_labels": structures,
            "hd95_labels": structures,
            "background_counted": False,
            "note": "as the Learn2Reg OASIS evaluation (labels 1..35, background not counted; also HD95 and "
            "SDlogJ of the displacement), applied to this label set",
        },
        pairing={"training": "random", "validation": "fixed = i, moving = i+1", "testing": "fixed = i, moving = i+1"},
        seed=seed,
        training_images=[
            {**{k: datalist_path(getattr(s, k), out, absolute) for k in keys["training"]}, "subject": s.subject}
            for s in training
        ],
        training=[_pair_entry(training[f], training[m], keys["training"], out, absolute) for f, m in drawn],
        splits={
            split: [_pair_entry(f, m, keys[split], out, absolute) for f, m in split_pairs[split]]
            for split in ("validation", "testing")
        },
    )
    path = datalist.write(out)
    return path
