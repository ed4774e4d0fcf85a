"""M&Ms converter: ES->ED short-axis slice pairs for 2-D registration (GSMorph, §3.1).

Reads the first Multi-Centre, Multi-Vendor & Multi-Disease Cardiac Segmentation challenge
data (M&Ms 2020, Campello et al., IEEE TMI 2021) as distributed::

    ROOT/211230_M&Ms_Dataset_information_diagnosis_opendataset.csv
         (older releases: 201014_M&Ms_Dataset_Information_-_opendataset.csv)
    ROOT/Training/Labeled/A0S9V9/A0S9V9_sa.nii.gz      cine sequence (X, Y, Z, T)
    ROOT/Training/Labeled/A0S9V9/A0S9V9_sa_gt.nii.gz   (X, Y, Z, T), labelled at ED and ES only
    ROOT/Training/Unlabeled/<code>/<code>_sa.nii.gz    no ground truth: skipped
    ROOT/Validation/<code>/..., ROOT/Testing/<code>/...

Subjects are found wherever ``<code>/<code>_sa.nii.gz`` lies under ROOT. The CSV is read by
column name (``External code``, ``ED``, ``ES``, ``VendorName``, ``Vendor``, ``Centre``,
``Pathology``, ...); its ED/ES are 0-based frame indices. They are cross-checked with the
frames of ``_sa_gt`` that hold labels: when a CSV frame is unlabelled and exactly two frames are
labelled, those are used (ED = the one with the larger LV) and a warning names the subject.
Labels are already 1 LV, 2 Myo, 3 RV.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.cardiac_slices import PhasePair, check_same_affine, convert_phase_pairs, load_volume

__all__ = [
    "MNMS_CSV_NAMES",
    "find_mnms_csv",
    "read_mnms_csv",
    "find_mnms_subjects",
    "resolve_ed_es",
    "load_mnms_subject",
    "iter_mnms_pairs",
    "prepare_mnms",
]

logger = logging.getLogger(__name__)

#: Names of the information CSV in the known releases, newest first.
MNMS_CSV_NAMES: tuple[str, ...] = (
    "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv",
    "201014_M&Ms_Dataset_Information_-_opendataset.csv",
)
_CODE = "External code"
#: CSV columns copied into the subject records of ``datalist.json`` when present.
_META = ("VendorName", "Vendor", "Centre", "Pathology", "Sex", "Age", "Height", "Weight")


def find_mnms_csv(root: str | Path) -> Path:
    """The M&Ms information CSV in ``root``: a known name, else the one ``*M&Ms*.csv``."""
    root = Path(root)
    for name in MNMS_CSV_NAMES:
        if (root / name).is_file():
            return root / name
    candidates = sorted(p for p in root.glob("*.csv") if "m&ms" in p.name.lower())
    if candidates:
        if len(candidates) > 1:
            logger.warning("several M&Ms CSV files in %s, using %s", root, candidates[-1].name)
        return candidates[-1]  # names start with the release date (YYMMDD): the last is newest
    raise FileNotFoundError(f"{root}: M&Ms information CSV not found (expected {MNMS_CSV_NAMES[0]}); pass --csv")


def _frame_index(value: str, column: str, code: str, path: Path) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: subject {code}: column {column!r} is not a frame index: {value!r}") from err
    if number != int(number) or number < 0:
        raise ValueError(f"{path}: subject {code}: column {column!r} must be a 0-based frame index, got {value!r}")
    return int(number)


def read_mnms_csv(path: str | Path) -> dict[str, dict[str, str]]:
    """Rows of the M&Ms CSV keyed by ``External code`` (column names stripped of spaces)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: M&Ms information CSV not found")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = [(name or "").strip() for name in (reader.fieldnames or [])]
        missing = [c for c in (_CODE, "ED", "ES") if c not in fields]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing} (found {fields})")
        rows: dict[str, dict[str, str]] = {}
        for raw in reader:
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if isinstance(v, str)}
            code = row.get(_CODE, "")
            if code:
                rows[code] = row
    return rows


def find_mnms_subjects(root: str | Path) -> list[Path]:
    """Folders ``<code>`` holding ``<code>_sa.nii.gz`` anywhere under ``root``, sorted by code."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: M&Ms root folder not found")
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*_sa.nii*")):
        code = path.parent.name
        if path.name not in (f"{code}_sa.nii.gz", f"{code}_sa.nii"):
            continue
        if code in found and found[code] != path.parent:
            raise ValueError(f"{path.parent}: subject {code} also found at {found[code]}")
        found[code] = path.parent
    if not found:
        raise FileNotFoundError(f"{root}: no M&Ms subjects (<code>/<code>_sa.nii.gz) found")
    return [found[k] for k in sorted(found)]


def resolve_ed_es(gt: np.ndarray, ed: int, es: int, gt_path: str | Path, subject: str) -> tuple[int, int]:
    """Check the CSV's 0-based ED/ES against the labelled frames of ``gt`` ``(X, Y, Z, T)``.

    If both CSV frames hold labels they are returned. Otherwise, if exactly two frames are
    labelled, those are returned (ED = the frame with more LV voxels, label 1) with a warning
    naming the subject; else ``ValueError`` naming ``gt_path``.
    """
    num_frames = gt.shape[3]
    labelled = [t for t in range(num_frames) if gt[..., t].any()]
    if not labelled:
        raise ValueError(f"{gt_path}: no labelled frame")
    if ed != es and ed in labelled and es in labelled:
        return ed, es
    if len(labelled) == 2:
        lv = {t: int(np.count_nonzero(gt[..., t] == 1)) for t in labelled}
        new_ed, new_es = sorted(labelled, key=lambda t: (-lv[t], t))
        logger.warning(
            "%s: CSV gives ED=%d, ES=%d (0-based) but the labelled frames of %s are %s; using ED=%d, ES=%d",
            subject,
            ed,
            es,
            gt_path,
            labelled,
            new_ed,
            new_es,
        )
        return new_ed, new_es
    raise ValueError(
        f"{gt_path}: CSV gives ED={ed}, ES={es} (0-based) for {subject} but the labelled frames are "
        f"{labelled}; cannot tell ED and ES apart"
    )


def load_mnms_subject(
    subject_dir: str | Path, rows: dict[str, dict[str, str]], csv_path: str | Path, root: str | Path | None = None
) -> PhasePair | None:
    """Read the ED (fixed) and ES (moving) frames and labels of one M&Ms subject.

    Returns ``None`` (with a log message) when the subject has no ``_sa_gt`` file. Raises
    ``ValueError`` naming the file for a missing CSV row, a 3-D sequence, NaN intensities,
    label values outside {0, 1, 2, 3}, mismatched shapes, or ED/ES frames that cannot be resolved.
    """
    folder = Path(subject_dir)
    code = folder.name
    image_path = folder / f"{code}_sa.nii.gz"
    if not image_path.exists() and (folder / f"{code}_sa.nii").exists():
        image_path = folder / f"{code}_sa.nii"
    gt_path = image_path.with_name(image_path.name.replace("_sa.nii", "_sa_gt.nii"))
    if not gt_path.exists():
        logger.info("%s: no %s, subject skipped", code, gt_path.name)
        return None
    if code not in rows:
        raise ValueError(f"{csv_path}: no row for subject {code} (column {_CODE!r}; images in {folder})")
    row = rows[code]
    csv_ed = _frame_index(row.get("ED", ""), "ED", code, Path(csv_path))
    csv_es = _frame_index(row.get("ES", ""), "ES", code, Path(csv_path))
    gt, gt_affine = load_volume(gt_path, ndim=4, label=True)
    ed, es = resolve_ed_es(gt, csv_ed, csv_es, gt_path, code)
    sequence, affine = load_volume(image_path, ndim=4)
    if sequence.shape != gt.shape:
        raise ValueError(
            f"image/label shape mismatch: {image_path} has shape {sequence.shape}, {gt_path} has shape {gt.shape}"
        )
    check_same_affine(affine, gt_affine, str(image_path), str(gt_path))
    rel = {}
    for key, path in (("image", image_path), ("label", gt_path)):
        try:
            rel[key] = str(path.relative_to(root)) if root is not None else str(path)
        except ValueError:
            rel[key] = str(path)
    record: dict[str, Any] = {
        "dataset": "M&Ms",
        "ed_frame": ed,
        "es_frame": es,
        "csv_ed_es": [csv_ed, csv_es],
        **{key.lower(): row[key] for key in _META if key in row},
        "source": rel,
    }
    sources = {
        "fixed_image": f"{image_path} (frame {ed})",
        "moving_image": f"{image_path} (frame {es})",
        "fixed_label": f"{gt_path} (frame {ed})",
        "moving_label": f"{gt_path} (frame {es})",
    }
    return PhasePair(
        subject=code,
        fixed_image=np.ascontiguousarray(sequence[..., ed]),
        moving_image=np.ascontiguousarray(sequence[..., es]),
        fixed_label=np.ascontiguousarray(gt[..., ed]),
        moving_label=np.ascontiguousarray(gt[..., es]),
        affine=affine,
        sources=sources,
        info=record,
    )


def iter_mnms_pairs(root: str | Path, csv_path: str | Path | None = None) -> Iterator[PhasePair]:
    """Lazily yield one :class:`PhasePair` per labelled M&Ms subject under ``root``."""
    csv_path = Path(csv_path) if csv_path is not None else find_mnms_csv(root)
    rows = read_mnms_csv(csv_path)
    for folder in find_mnms_subjects(root):
        pair = load_mnms_subject(folder, rows, csv_path, root)
        if pair is not None:
            yield pair


def prepare_mnms(
    root: str | Path,
    out: str | Path,
    csv: str | Path | None = None,
    crop_size: int = 128,
    seed: int = 0,
    split: str | Sequence[float] = (0.75, 0.05, 0.2),
) -> Path:
    """Convert M&Ms to ES->ED slice pairs and ``OUT/datalist.json`` (see ``cardiac_slices``).

    Args:
        root: the M&Ms folder (``Training``, ``Validation``, ``Testing`` and the CSV).
        out: output folder.
        csv: the information CSV; found in ``root`` when not given.
        crop_size: side of the in-plane crop centred on the heart (GSMorph: 128).
        seed: seed of the patient-level split.
        split: train/validation/test fractions (GSMorph: 0.75, 0.05, 0.2).

    Returns:
        The path of ``datalist.json``.
    """
    csv_path = Path(csv) if csv is not None else find_mnms_csv(root)
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: M&Ms information CSV not found")
    return convert_phase_pairs(
        iter_mnms_pairs(root, csv_path),
        out,
        crop_size=crop_size,
        split=split,
        seed=seed,
        name="M&Ms ES->ED short-axis slice pairs",
        description="M&Ms 2020 cine-MRI (Campello et al., IEEE TMI 2021): per subject, ES (moving) and "
        "ED (fixed) short-axis slices with labels 1 LV, 2 Myo, 3 RV. subjects[].ed_frame / es_frame "
        "are 0-based frame indices (the CSV's, checked against the labelled frames).",
    )
