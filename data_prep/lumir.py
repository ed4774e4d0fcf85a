"""LUMIR (Learn2Reg 2024, large-scale unsupervised brain MRI registration) as distributed.

Layout read (``ROOT`` is the folder the dataset JSON's relative paths start from)::

    ROOT/LUMIR_dataset.json     {"name": ..., "training": [{"image": "./imagesTr/LUMIRMRI_0000_0000.nii.gz"}, ...],
                                 "validation": [{"fixed": "./imagesVal/LUMIRMRI_3455_0000.nii.gz",
                                                 "moving": "./imagesVal/LUMIRMRI_3454_0000.nii.gz"}, ...]}
    ROOT/imagesTr/LUMIRMRI_NNNN_0000.nii.gz     T1w, 160 x 224 x 192, 1 mm, intensities in [0, 255]
    ROOT/imagesVal/LUMIRMRI_NNNN_0000.nii.gz
    ROOT/labelsVal/..., ROOT/landmarksVal/...   optional (not in the public download, see below)

Facts checked against the public challenge material (JHU-MedImage-Reg/LUMIR_L2R on GitHub):

- README: images ``160 x 224 x 192``, intensities normalised to ``[0, 255]``, folders
  ``imagesTr`` / ``imagesVal``, file names ``LUMIRMRI_NNNN_0000.nii.gz``; OpenBHB T1w data,
  skull-stripped and affinely aligned by OpenBHB, then N4-corrected. The validation
  submission files are ``disp_<fixed>_<moving>.nii.gz`` voxel displacements, ``[X, Y, Z, 3]``,
  on the fixed grid (scipy ``map_coordinates`` convention, which is ours).
- The baselines' loaders (``TransMorph/data/datasets.py``, the docker template's
  ``L2RLUMIRJSONDataset``, ``uniGradICON/l2r_LUMIR_eval.py``) read ``LUMIR_dataset.json``'s
  ``validation`` entries as ``{"fixed", "moving"}`` and divide intensities by 255.
- ``L2R_LUMIR_Eval/ground-truth/LUMIR_VAL_Segmentation_evaluation_config.json``: pairs
  ``fixed = LUMIRMRI_(i+1)``, ``moving = LUMIRMRI_i`` (3455 <- 3454, ..., 3483 <- 3482); Dice and
  HD95 over 133 label values **including 0** (background is counted in the mean Dice;
  ``utils.compute_dice`` skips a label only when it is absent from the fixed or the moving
  label map and averages with ``nanmean``). NDV (non-diffeomorphic volume, Liu et al.) is
  taken inside ``moving image > 0``, cropped by one voxel.
- ``LUMIR_VAL_Landmark_evaluation_config.json``: pairs 3485 <- 3484, ..., 3493 <- 3492, TRE from
  landmark *label maps* found by replacing ``images`` with ``landmarks`` in the image path
  (``./landmarksVal/LUMIRMRI_NNNN_0000.nii.gz``); each landmark is one label value, TRE is the
  mean distance between the centroids of each value in the fixed map and in the
  nearest-neighbour-warped moving map. Label maps are found likewise (``./labelsVal/...``).

Training images are registered inter-subject: the datalist holds ``training`` pairs drawn at
random (seeded) and the ``training_images`` list, so that a bundle can instead draw fresh pairs
every epoch. Validation (and test) pairs are kept exactly as listed. Images appearing in a
validation or test pair are never used for training.

Intensities are not rewritten (that would copy 3000+ volumes): the datalist points at the
original files and records ``intensity`` = ``ScaleIntensityRanged(a_min=0, a_max=255, b_min=0,
b_max=1, clip=True)``, which the bundle applies on loading (the official baselines divide by
255). With ``check_data`` every image is read and its range checked against [0, 255].
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from data_prep.brain_datalist import (
    PairDatalist,
    check_same_grid,
    check_same_shape,
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
from monai_ext.options import flag

__all__ = [
    "LUMIR_JSON",
    "LUMIR_SHAPE",
    "LUMIR_DICE_LABELS",
    "LUMIR_INTENSITY_RANGE",
    "LumirPair",
    "read_lumir_json",
    "prepare_lumir",
]

logger = logging.getLogger(__name__)

#: Name of the dataset JSON in the LUMIR root folder.
LUMIR_JSON = "LUMIR_dataset.json"
#: Array shape of every LUMIR image (1 mm isotropic).
LUMIR_SHAPE: tuple[int, int, int] = (160, 224, 192)
#: Intensity range of the distributed images.
LUMIR_INTENSITY_RANGE: tuple[float, float] = (0.0, 255.0)
#: Label values over which the official LUMIR evaluation averages Dice and HD95 (0 included).
LUMIR_DICE_LABELS: tuple[int, ...] = (
    0, 4, 11, 23, 30, 31, 32, 35, 36, 37, 38, 39, 40, 41, 44, 45, 47, 48, 49, 50, 51, 52, 55, 56, 57, 58, 59, 60,
    61, 62, 71, 72, 73, 75, 76, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 112, 113, 114, 115, 116, 117,
    118, 119, 120, 121, 122, 123, 124, 125, 128, 129, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143,
    144, 145, 146, 147, 148, 149, 150, 151, 152, 153, 154, 155, 156, 157, 160, 161, 162, 163, 164, 165, 166, 167,
    168, 169, 170, 171, 172, 173, 174, 175, 176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 190, 191,
    192, 193, 194, 195, 196, 197, 198, 199, 200, 201, 202, 203, 204, 205, 206, 207,
)  # fmt: skip

_PAIR_SPLITS = (("validation", "validation"), ("test", "testing"))


class LumirPair:
    """One validation / test pair of resolved paths (labels and landmarks when present)."""

    __slots__ = ("fixed", "moving", "fixed_label", "moving_label", "fixed_landmarks", "moving_landmarks")

    def __init__(self, fixed: Path, moving: Path) -> None:
        self.fixed, self.moving = fixed, moving
        self.fixed_label = sibling_file(fixed, "labels")
        self.moving_label = sibling_file(moving, "labels")
        self.fixed_landmarks = sibling_file(fixed, "landmarks")
        self.moving_landmarks = sibling_file(moving, "landmarks")

    @property
    def labelled(self) -> bool:
        return self.fixed_label is not None and self.moving_label is not None

    @property
    def has_landmarks(self) -> bool:
        return self.fixed_landmarks is not None and self.moving_landmarks is not None


def _locate(root: str | Path, dataset_json: str | Path | None) -> tuple[Path, Path]:
    root = Path(root)
    if root.is_file() and root.suffix == ".json":
        return root.parent, root
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: LUMIR root folder not found")
    return root, Path(dataset_json) if dataset_json is not None else root / LUMIR_JSON


def read_lumir_json(
    root: str | Path, dataset_json: str | Path | None = None
) -> tuple[Path, list[Path], dict[str, list[LumirPair]], dict[str, Any]]:
    """Read ``LUMIR_dataset.json`` and resolve every file it names.

    Args:
        root: the LUMIR folder (or the JSON file itself).
        dataset_json: the JSON when it is not ``ROOT/LUMIR_dataset.json``.

    Returns:
        ``(json_path, training_images, pairs, raw_json)`` with ``pairs = {"validation": [...],
        "testing": [...]}``. Test pairs are read only when their images are present (the
        public release does not include them); a test list of single images is ignored.

    Raises:
        FileNotFoundError: missing root, JSON or listed image.
        ValueError: the JSON lacks ``training`` / ``validation`` or has malformed entries.
    """
    root, json_path = _locate(root, dataset_json)
    data = read_dataset_json(json_path, required=("training", "validation"))
    training = [
        entry_path(root, e["image"], json_path, f"'training'[{i}].image")
        for i, e in enumerate(entry_list(data, "training", ("image",), json_path))
    ]
    if not training:
        raise ValueError(f"{json_path}: 'training' lists no image")
    pairs: dict[str, list[LumirPair]] = {}
    for key, split in _PAIR_SPLITS:
        items = data.get(key, [])
        if key == "test" and items and not all(isinstance(e, dict) and "fixed" in e and "moving" in e for e in items):
            logger.info("%s: 'test' lists single images, not pairs; not used", json_path)
            items = []
        entries = entry_list({key: items}, key, ("fixed", "moving"), json_path)
        if key == "test" and entries:
            present = [(root / e[r]).is_file() for e in entries for r in ("fixed", "moving")]
            if not any(present):
                logger.warning(
                    "%s: none of the %d test images is present (not in the public release); 'testing' left empty",
                    json_path,
                    len(present),
                )
                entries = []
        pairs[split] = [
            LumirPair(
                entry_path(root, e["fixed"], json_path, f"'{key}'[{i}].fixed"),
                entry_path(root, e["moving"], json_path, f"'{key}'[{i}].moving"),
            )
            for i, e in enumerate(entries)
        ]
        for pair in pairs[split]:
            fixed_n, moving_n = subject_number(pair.fixed), subject_number(pair.moving)
            if fixed_n is not None and moving_n is not None and fixed_n != moving_n + 1:
                logger.warning(
                    "%s: %s pair fixed %s / moving %s does not follow LUMIR's fixed = i+1, moving = i",
                    json_path,
                    split,
                    pair.fixed.name,
                    pair.moving.name,
                )
    if not pairs["validation"]:
        logger.warning("%s: 'validation' lists no pair", json_path)
    return json_path, training, pairs, data


def _pair(pair: LumirPair, out: Path, absolute: bool, kind: str | None = None) -> dict[str, Any]:
    """The datalist entry of a pair: images, plus its labels or landmarks for ``kind``."""
    fixed: dict[str, Path] = {"image": pair.fixed}
    moving: dict[str, Path] = {"image": pair.moving}
    if kind == "label":
        fixed["label"], moving["label"] = pair.fixed_label, pair.moving_label  # type: ignore[assignment]
    elif kind == "landmarks":
        fixed["landmarks"], moving["landmarks"] = pair.fixed_landmarks, pair.moving_landmarks  # type: ignore[assignment]
    return pair_entry(fixed, moving, (subject_id(pair.fixed), subject_id(pair.moving)), out, absolute)


def _training_images(training: list[Path], pairs: dict[str, list[LumirPair]], json_path: Path) -> list[Path]:
    """The training images, without those that appear in validation / test pairs."""
    held_out = {p.resolve() for split in pairs.values() for pair in split for p in (pair.fixed, pair.moving)}
    kept = [p for p in training if p.resolve() not in held_out]
    if len(kept) < len(training):
        logger.warning(
            "%s: %d training image(s) also appear in validation/test pairs and are left out of training",
            json_path,
            len(training) - len(kept),
        )
    return list(dict.fromkeys(kept))


def _check_volumes(
    training: list[Path], pairs: dict[str, list[LumirPair]], check_data: bool, num_workers: int
) -> tuple[tuple[int, ...], tuple[float, ...], tuple[float, float] | None]:
    """Read (headers, or all data) every image and annotation once: LUMIR's intensity range, one
    grid for all images, annotations on their image's grid. Returns the grid's shape and spacing
    and the observed intensity range (None without ``check_data``)."""
    paired = [p for split in pairs.values() for pair in split for p in (pair.fixed, pair.moving)]
    images = list(dict.fromkeys(training + paired))
    infos = inspect_volumes([(p, "image") for p in images], check_data=check_data, num_workers=num_workers)
    by_path = {info.path: info for info in infos}
    lo, hi = LUMIR_INTENSITY_RANGE
    for info in infos:
        if info.minimum is not None and not lo - 1e-3 <= info.minimum <= info.maximum <= hi + 1e-3:  # type: ignore
            raise ValueError(
                f"{info.path}: intensities in [{info.minimum:g}, {info.maximum:g}] outside LUMIR's "
                f"[{lo:g}, {hi:g}] (the datalist scales 0..255 to 0..1)"
            )
    shape, spacing = check_same_grid(infos, "LUMIR")
    if shape != LUMIR_SHAPE:
        logger.info("images are %s, not LUMIR's %s (a stand-in or a resampled copy?)", shape, LUMIR_SHAPE)
    # annotations (labels / landmarks): checked as integer maps on the image grid
    annotations = list(
        dict.fromkeys(
            (getattr(pair, f"{role}_{kind}"), getattr(pair, role))
            for s in pairs.values()
            for pair in s
            for role in ("fixed", "moving")
            for kind in ("label", "landmarks")
            if getattr(pair, f"{role}_{kind}") is not None
        )
    )
    label_infos = inspect_volumes(
        [(a, "label") for a, _ in annotations], check_data=check_data, num_workers=num_workers
    )
    for (_, image), info in zip(annotations, label_infos):
        check_same_shape([by_path[image], info])
    observed = None
    if check_data:
        observed = (min(i.minimum for i in infos), max(i.maximum for i in infos))  # type: ignore[type-var]
    return shape, spacing, observed


def prepare_lumir(
    root: str | Path,
    out: str | Path,
    num_pairs: int | None = None,
    seed: int = 0,
    absolute_paths: bool = False,
    check_data: bool = True,
    num_workers: int = 4,
    dataset_json: str | Path | None = None,
) -> Path:
    """Check LUMIR as distributed and write ``OUT/datalist.json``; return its path.

    Args:
        root: the LUMIR folder holding ``LUMIR_dataset.json``, ``imagesTr`` and ``imagesVal``.
        out: output folder (only ``datalist.json`` is written; images stay where they are).
        num_pairs: random training pairs to list (default: as many as training images).
        seed: seed of the training pairs.
        absolute_paths: write absolute paths (default: relative to ``out``).
        check_data: read every volume (NaN, intensity range, integer labels); ``False`` checks
            headers only, much faster on the full dataset.
        num_workers: files read at a time.
        dataset_json: the JSON when it is not ``ROOT/LUMIR_dataset.json``.

    Output ``datalist.json`` (paths relative to ``out``)::

        training_images       [{"image", "subject"}]           for pairs drawn on the fly
        training              [{"fixed_image", "moving_image", "fixed_subject", "moving_subject"}]
        validation, testing   the same keys, as listed (fixed = i+1, moving = i)
        validation_labelled   pairs with "fixed_label" / "moving_label" (labelsVal present)
        validation_landmarks  pairs with "fixed_landmarks" / "moving_landmarks" (landmarksVal present)
        validation_evaluated  both of them: the pairs LUMIR's evaluation scores (Dice / HD95, TRE)
        testing_labelled, testing_landmarks, testing_evaluated   likewise

    plus ``intensity`` (the ``ScaleIntensityRanged`` arguments), ``spatial_shape``, ``spacing``
    and ``evaluation`` (the official Dice label set, label 0 included).
    """
    out = Path(out)
    absolute, check_data = flag(absolute_paths, "absolute_paths"), flag(check_data, "check_data")
    json_path, training, pairs, raw = read_lumir_json(root, dataset_json)
    training = _training_images(training, pairs, json_path)
    shape, spacing, observed = _check_volumes(training, pairs, check_data, num_workers)
    drawn = random_pairs(len(training), len(training) if num_pairs is None else num_pairs, seed)
    splits: dict[str, list[dict[str, Any]]] = {}
    for split in ("validation", "testing"):
        splits[split] = [_pair(p, out, absolute) for p in pairs[split]]
        splits[f"{split}_labelled"] = [_pair(p, out, absolute, "label") for p in pairs[split] if p.labelled]
        splits[f"{split}_landmarks"] = [_pair(p, out, absolute, "landmarks") for p in pairs[split] if p.has_landmarks]
        # what LUMIR's evaluation scores: Dice / HD95 on the labelled pairs, TRE on the landmark pairs
        splits[f"{split}_evaluated"] = splits[f"{split}_labelled"] + splits[f"{split}_landmarks"]
    datalist = PairDatalist(
        name="LUMIR inter-subject brain MRI pairs",
        description="LUMIR (Learn2Reg 2024) T1w brain MRI, OpenBHB, skull-stripped and affinely aligned. "
        "Paths point at the original files; scale intensities with 'intensity' on loading. Validation and "
        "test pairs as listed in the dataset JSON (fixed = i+1, moving = i); training pairs drawn at random "
        "among the training images (fixed != moving), or draw new ones from 'training_images'.",
        reference="https://github.com/JHU-MedImage-Reg/LUMIR_L2R ; Learn2Reg 2024",
        source={"dataset_json": json_path.resolve().as_posix(), "name": raw.get("name")},
        ndim=3,
        shape=shape,
        spacing=spacing,
        intensity=intensity_scaling(*LUMIR_INTENSITY_RANGE, observed),
        labels={},
        evaluation={
            "dice_labels": list(LUMIR_DICE_LABELS),
            "hd95_labels": list(LUMIR_DICE_LABELS),
            "background_counted": True,
            "note": "official LUMIR evaluation: Dice/HD95 averaged (nanmean) over these label values, 0 "
            "included, skipping a value absent from the fixed or moving map; TRE between centroids of each "
            "landmark value; NDV inside moving image > 0",
        },
        pairing={"training": "random", "validation": "fixed = i+1, moving = i (as listed)"},
        seed=seed,
        training_images=[{"image": datalist_path(p, out, absolute), "subject": subject_id(p)} for p in training],
        training=[
            pair_entry(
                {"image": training[f]},
                {"image": training[m]},
                (subject_id(training[f]), subject_id(training[m])),
                out,
                absolute,
            )
            for f, m in drawn
        ],
        splits=splits,
    )
    path = datalist.write(out)
    return path
