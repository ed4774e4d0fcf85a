"""ACDC converter: ES->ED short-axis slice pairs for 2-D registration (GSMorph, §3.1).

Reads the Automated Cardiac Diagnosis Challenge data (Bernard et al., IEEE TMI 2018) as
distributed::

    ROOT/training/patient001/Info.cfg                    "ED: 1", "ES: 12", "Group: DCM", ...
    ROOT/training/patient001/patient001_4d.nii.gz        (X, Y, Z, T), not needed here
    ROOT/training/patient001/patient001_frame01.nii.gz   ED frame (3-D), number = Info.cfg ED
    ROOT/training/patient001/patient001_frame01_gt.nii.gz
    ROOT/training/patient001/patient001_frame12.nii.gz   ES frame, number = Info.cfg ES
    ROOT/training/patient001/patient001_frame12_gt.nii.gz
    ROOT/testing/patient101/...

``ROOT`` may also be the folder that holds the ``patientNNN`` folders, or the newer release's
root with ``database/training`` and ``database/testing``. ED/ES in ``Info.cfg`` are 1-based
frame numbers, equal to the ``frameNN`` numbers of the file names. ACDC labels (1 RV, 2 Myo,
3 LV) are remapped to the shared convention (1 LV, 2 Myo, 3 RV). Patients without any
``_gt`` file (the original, unlabelled test release) are skipped with a log message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from data_prep.cardiac_slices import (
    ACDC_TO_CARDIAC,
    PhasePair,
    check_same_affine,
    convert_phase_pairs,
    load_volume,
    remap_labels,
)

__all__ = ["find_acdc_patients", "read_info_cfg", "acdc_ed_es", "load_acdc_patient", "iter_acdc_pairs", "prepare_acdc"]

logger = logging.getLogger(__name__)

_PATIENT = re.compile(r"^patient\d+$")
#: Folders searched for ``patientNNN`` folders, relative to ROOT, in this order.
_LAYOUTS = (".", "training", "testing", "database/training", "database/testing")


def find_acdc_patients(root: str | Path) -> list[Path]:
    """All ``patientNNN`` folders under ``root`` for the layouts above, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: ACDC root folder not found")
    found: dict[str, Path] = {}
    for layout in _LAYOUTS:
        folder = root / layout
        if not folder.is_dir():
            continue
        for child in folder.iterdir():
            if child.is_dir() and _PATIENT.match(child.name):
                if child.name in found and found[child.name].resolve() != child.resolve():
                    raise ValueError(f"{child}: patient {child.name} also found at {found[child.name]}")
                found[child.name] = child
    if not found:
        raise FileNotFoundError(
            f"{root}: no patientNNN folders found (looked in {', '.join(str(root / p) for p in _LAYOUTS)})"
        )
    return [found[k] for k in sorted(found)]


def read_info_cfg(path: str | Path) -> dict[str, str]:
    """``key: value`` lines of an ACDC ``Info.cfg`` as a dict of strings."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Info.cfg not found")
    info: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            info[key.strip()] = value.strip()
    return info


def acdc_ed_es(info: dict[str, str], path: str | Path) -> tuple[int, int]:
    """The 1-based ED and ES frame numbers of a parsed ``Info.cfg`` (``path`` for messages)."""
    frames = []
    for key in ("ED", "ES"):
        if key not in info:
            raise ValueError(f"{path}: no '{key}:' line (expected 'ED: <frame>' and 'ES: <frame>')")
        try:
            value = float(info[key])
        except ValueError as err:
            raise ValueError(f"{path}: {key} is not a frame number: {info[key]!r}") from err
        if value != int(value) or value < 1:
            raise ValueError(f"{path}: {key} must be a 1-based frame number, got {info[key]!r}")
        frames.append(int(value))
    nb = info.get("NbFrame")
    if nb is not None and nb.replace(".", "", 1).isdigit() and max(frames) > float(nb):
        raise ValueError(f"{path}: ED/ES frames {frames} beyond NbFrame {nb}")
    if frames[0] == frames[1]:
        raise ValueError(f"{path}: ED and ES are the same frame ({frames[0]})")
    return frames[0], frames[1]


def _nifti(folder: Path, stem: str) -> Path:
    """``stem.nii.gz`` or, if only that exists, ``stem.nii`` (the ``.nii.gz`` path otherwise)."""
    gz = folder / f"{stem}.nii.gz"
    plain = folder / f"{stem}.nii"
    return plain if not gz.exists() and plain.exists() else gz


def _relative(path: Path, root: Path | None) -> str:
    try:
        return str(path.relative_to(root)) if root is not None else str(path)
    except ValueError:
        return str(path)


def load_acdc_patient(patient_dir: str | Path, root: str | Path | None = None) -> PhasePair | None:
    """Read the ED (fixed) and ES (moving) frames and labels of one ACDC patient.

    Returns ``None`` (with a log message) when the patient has no ground truth at all.
    Raises ``FileNotFoundError`` / ``ValueError`` naming the file for a missing ``Info.cfg``
    or frame file, missing ED/ES lines, a 4-D frame, NaN intensities, label values outside
    {0, 1, 2, 3}, empty labels, or mismatched shapes.
    """
    folder = Path(patient_dir)
    root = Path(root) if root is not None else None
    pid = folder.name
    cfg = folder / "Info.cfg"
    info = read_info_cfg(cfg)
    ed, es = acdc_ed_es(info, cfg)
    paths = {
        "fixed_image": _nifti(folder, f"{pid}_frame{ed:02d}"),
        "moving_image": _nifti(folder, f"{pid}_frame{es:02d}"),
        "fixed_label": _nifti(folder, f"{pid}_frame{ed:02d}_gt"),
        "moving_label": _nifti(folder, f"{pid}_frame{es:02d}_gt"),
    }
    if not paths["fixed_label"].exists() and not paths["moving_label"].exists():
        logger.info(
            "%s: no ground truth (%s, %s), patient skipped",
            folder,
            paths["fixed_label"].name,
            paths["moving_label"].name,
        )
        return None
    arrays: dict[str, Any] = {}
    affines = {}
    for key, path in paths.items():
        is_label = key.endswith("label")
        arrays[key], affines[key] = load_volume(path, ndim=3, label=is_label)
        if is_label:
            arrays[key] = remap_labels(arrays[key], ACDC_TO_CARDIAC)
    for key in ("moving_image", "fixed_label", "moving_label"):
        if arrays[key].shape == arrays["fixed_image"].shape:
            check_same_affine(affines["fixed_image"], affines[key], str(paths["fixed_image"]), str(paths[key]))
    record: dict[str, Any] = {
        "dataset": "ACDC",
        "ed_frame": ed - 1,
        "es_frame": es - 1,
        "info_cfg": {k: info[k] for k in info},
        "source": {k: _relative(p, root) for k, p in paths.items()},
    }
    return PhasePair(
        subject=pid, affine=affines["fixed_image"], sources={k: str(p) for k, p in paths.items()}, info=record, **arrays
    )


def iter_acdc_pairs(root: str | Path) -> Iterator[PhasePair]:
    """Lazily yield one :class:`PhasePair` per labelled ACDC patient under ``root``."""
    for folder in find_acdc_patients(root):
        pair = load_acdc_patient(folder, root)
        if pair is not None:
            yield pair


def prepare_acdc(
    root: str | Path,
    out: str | Path,
    crop_size: int = 128,
    seed: int = 0,
    split: str | Sequence[float] = (0.75, 0.05, 0.2),
) -> Path:
    """Convert ACDC to ES->ED slice pairs and ``OUT/datalist.json`` (see ``cardiac_slices``).

    Args:
        root: the ACDC folder (any layout in the module docstring).
        out: output folder.
        crop_size: side of the in-plane crop centred on the heart (GSMorph: 128).
        seed: seed of the patient-level split.
        split: train/validation/test fractions (GSMorph: 0.75, 0.05, 0.2).

    Returns:
        The path of ``datalist.json``.
    """
    return convert_phase_pairs(
        iter_acdc_pairs(root),
        out,
        crop_size=crop_size,
        split=split,
        seed=seed,
        name="ACDC ES->ED short-axis slice pairs",
        description="ACDC cine-MRI (Bernard et al., IEEE TMI 2018): per patient, ES (moving) and ED "
        "(fixed) short-axis slices with labels 1 LV, 2 Myo, 3 RV (remapped from ACDC's 1 RV, 3 LV). "
        "subjects[].ed_frame / es_frame are 0-based frame indices (Info.cfg ED/ES minus 1).",
    )
