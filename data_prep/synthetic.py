"""Tiny synthetic stand-ins for ACDC and M&Ms, in the exact on-disk layouts of the real data.

Each subject is a short-axis cine sequence of a heart-like phantom: a bright LV blood pool
(disc), a dark myocardial ring around it, a bright RV crescent beside it with a thin dark
wall, inside a textured body with a liver-like blob, plus noise. Over the cardiac cycle the
heart contracts (smooth cosine phase, 0 at ED, 1 at ES): the LV cavity radius shrinks by 22 %,
the myocardium thickens (its area is conserved), the RV shrinks, the heart shortens toward the
base (the apical slice empties at ES) and shifts/twists slightly. Slices shrink toward the
apex (ellipsoidal profile). Each subject has its own position, RV angle, sizes, intensity
scale and an oblique voxel-to-world affine. Between the ES and ED labels the mean
(LV, Myo, RV) Dice is about 0.6 (GSMorph Table 1 reports 0.61 before registration on ACDC),
so a registration has something to learn.

Layouts written (see ``data_prep.acdc`` / ``data_prep.mnms``)::

    ACDC:  OUT/training/patient001/{Info.cfg, patient001_4d.nii.gz,
                                    patient001_frameEE.nii.gz, patient001_frameEE_gt.nii.gz,
                                    patient001_frameSS.nii.gz, patient001_frameSS_gt.nii.gz}
           ACDC label values (1 RV, 2 Myo, 3 LV), Info.cfg ED/ES 1-based.
    M&Ms:  OUT/211230_M&Ms_Dataset_information_diagnosis_opendataset.csv (0-based ED/ES)
           OUT/Training/Labeled/<code>/<code>_sa.nii.gz, <code>_sa_gt.nii.gz (4-D, gt at ED/ES only)
           OUT/Validation/<code>/..., OUT/Testing/<code>/..., OUT/Training/Unlabeled/<code>/<code>_sa.nii.gz
"""

from __future__ import annotations

import csv
import io
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from data_prep.cardiac_slices import ACDC_TO_CARDIAC, remap_labels
from data_prep.mnms import MNMS_CSV_NAMES
from monai_ext.io.atomic import atomic_write_path
from monai_ext.io.nifti import save_nifti

__all__ = ["HeartPhantom", "cardiac_phase", "make_synthetic_acdc", "make_synthetic_mnms", "parse_size"]

#: Contraction at ES (phase 1): relative decrease of the LV cavity radius.
_LV_CONTRACTION = 0.22
#: Relative decrease of the RV radius at ES.
_RV_CONTRACTION = 0.2
#: Relative shortening of the long axis at ES (the apical slice empties).
_SHORTENING = 0.1


def parse_size(size: int | str | Sequence[int]) -> tuple[int, int]:
    """In-plane size ``(X, Y)`` from ``96``, ``"96,80"`` or ``(96, 80)``."""
    if isinstance(size, str):
        parts = [p for p in size.replace("x", ",").split(",") if p.strip()]
        values = [int(p) for p in parts]
    elif isinstance(size, (int, np.integer)):
        values = [int(size)]
    else:
        values = [int(v) for v in size]
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 16:
        raise ValueError(f"size must be one or two integers >= 16 (in-plane X, Y), got {size!r}")
    return values[0], values[1]


def cardiac_phase(frame: int, ed: int, es: int, num_frames: int) -> float:
    """Contraction phase in [0, 1] of a 0-based frame: 0 at ED, 1 at ES, smooth and periodic."""
    systole = ((es - ed) % num_frames) / num_frames
    t = ((frame - ed) % num_frames) / num_frames
    if t <= systole:
        return 0.5 * (1.0 - np.cos(np.pi * t / systole))
    return 0.5 * (1.0 + np.cos(np.pi * (t - systole) / (1.0 - systole)))


@dataclass
class HeartPhantom:
    """Geometry and appearance of one synthetic subject (pixel units of its in-plane grid).

    ``render(phase, z)`` gives the noiseless image (relative intensities) and the labels
    (1 LV, 2 Myo, 3 RV) of slice ``z`` at a contraction phase in [0, 1].
    """

    shape: tuple[int, int, int]
    centre: np.ndarray
    r_endo: float
    wall: float
    rv_angle: float
    rv_scale: float
    es_shift: np.ndarray
    es_twist: float
    texture: np.ndarray
    liver_centre: np.ndarray

    @classmethod
    def random(cls, shape: tuple[int, int, int], rng: np.random.Generator) -> HeartPhantom:
        """A subject with random position, sizes, RV angle, ES motion and texture; ``shape`` (X, Y, Z)."""
        s = min(shape[:2])
        texture = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=(3, 3, 0.5))
        texture /= max(float(texture.std()), 1e-6)
        return cls(
            shape=shape,
            centre=np.array(shape[:2], dtype=float) / 2 + rng.uniform(-0.06, 0.06, 2) * s,
            r_endo=s * rng.uniform(0.105, 0.125),
            wall=s * rng.uniform(0.045, 0.055),
            rv_angle=np.deg2rad(180.0 + rng.uniform(-25.0, 25.0)),
            rv_scale=rng.uniform(1.05, 1.2),
            es_shift=rng.uniform(-0.015, 0.015, 2) * s,
            es_twist=np.deg2rad(rng.uniform(-6.0, 6.0)),
            texture=texture,
            liver_centre=np.array(shape[:2], dtype=float) * np.array([0.72, 0.74]) + rng.uniform(-0.04, 0.04, 2) * s,
        )

    def _position(self, z: int) -> float:
        """Long-axis position of slice z at ED: 0 at the base, just below 1 at the last slice."""
        num_slices = self.shape[2]
        return 0.3 if num_slices == 1 else 0.97 * z / (num_slices - 1)

    def render(self, phase: float, z: int) -> tuple[np.ndarray, np.ndarray]:
        """Noiseless image (float, about 0-1) and labels (uint8) of slice ``z``, both ``(X, Y)``."""
        nx, ny, _ = self.shape
        x, y = np.meshgrid(np.arange(nx, dtype=float), np.arange(ny, dtype=float), indexing="ij")
        s = min(nx, ny)
        # body, liver, texture
        image = np.full((nx, ny), 0.02)
        body = ((x - nx / 2) / (0.49 * nx)) ** 2 + ((y - ny / 2) / (0.47 * ny)) ** 2 <= 1.0
        image[body] = 0.30 + 0.035 * self.texture[..., z][body]
        lx, ly = self.liver_centre
        liver = ((x - lx) / (0.22 * s)) ** 2 + ((y - ly) / (0.16 * s)) ** 2 <= 1.0
        image[liver & body] = 0.42 + 0.03 * self.texture[..., z][liver & body]
        label = np.zeros((nx, ny), dtype=np.uint8)
        # heart at this phase: shortening moves the apex toward the base
        u = self._position(z) / (1.0 - _SHORTENING * phase)
        f_lv = np.sqrt(max(0.0, 1.0 - u * u))
        if f_lv > 0.0:
            cx, cy = self.centre + phase * self.es_shift
            r_in_ed = self.r_endo * f_lv
            r_out_ed = (self.r_endo + self.wall) * (0.35 + 0.65 * f_lv)
            r_in = r_in_ed * (1.0 - _LV_CONTRACTION * phase)
            r_out = np.sqrt(r_in**2 + r_out_ed**2 - r_in_ed**2)  # myocardial area conserved
            d_lv = np.hypot(x - cx, y - cy)
            fat = (d_lv <= r_out + 0.02 * s + 0.5) & body
            image[fat] = 0.55
            f_rv = np.sqrt(max(0.0, 1.0 - (u / 0.88) ** 2))
            if f_rv > 0.0:
                # RV: an ellipse (flattened along the LV-RV axis) beside the LV, minus the LV
                r_rv = self.rv_scale * r_out_ed * f_rv * (1.0 - _RV_CONTRACTION * phase)
                angle = self.rv_angle + phase * self.es_twist
                offset = r_out + 0.25 * r_rv
                dx, dy = x - cx - offset * np.cos(angle), y - cy - offset * np.sin(angle)
                radial = dx * np.cos(angle) + dy * np.sin(angle)
                tangential = -dx * np.sin(angle) + dy * np.cos(angle)
                d_rv = np.hypot(radial / 0.7, tangential / 1.25)
                rv_wall = (d_rv <= r_rv + 0.012 * s + 0.8) & (d_lv > r_out)
                rv = (d_rv <= r_rv) & (d_lv > r_out + 0.6)
                image[rv_wall] = 0.20
                image[rv] = 0.80
                label[rv] = 3
            myo = d_lv <= r_out
            image[myo] = 0.22
            label[myo] = 2
            lv = d_lv <= r_in
            image[lv] = 0.88
            label[lv] = 1
        return ndimage.gaussian_filter(image, 0.7), label


def _oblique_affine(spacing: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """A short-axis-like oblique voxel-to-world affine (RAS mm) with the given spacing."""
    angles = np.deg2rad(rng.uniform(-30.0, 30.0, 3))
    rot = np.eye(3)
    for axis, a in enumerate(angles):
        c, s = np.cos(a), np.sin(a)
        r = np.eye(3)
        i, j = [k for k in range(3) if k != axis]
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rot = rot @ r
    affine = np.eye(4)
    affine[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ rot @ np.diag(spacing)
    affine[:3, 3] = rng.uniform(-150.0, 150.0, 3)
    return affine


def _cine(phantom: HeartPhantom, ed: int, es: int, num_frames: int, rng: np.random.Generator):
    """Images ``(X, Y, Z, T)`` int16 and ED/ES labels ``(X, Y, Z)`` of one subject."""
    nx, ny, nz = phantom.shape
    scale = rng.uniform(300.0, 1200.0)
    images = np.zeros((nx, ny, nz, num_frames), dtype=np.int16)
    labels = {}
    for t in range(num_frames):
        phase = cardiac_phase(t, ed, es, num_frames)
        frame_labels = np.zeros((nx, ny, nz), dtype=np.uint8)
        for z in range(nz):
            image, frame_labels[..., z] = phantom.render(phase, z)
            noisy = (image + 0.025 * rng.standard_normal(image.shape)) * scale
            images[..., z, t] = np.clip(np.round(noisy), 0, 32767).astype(np.int16)
        if t in (ed, es):
            labels[t] = frame_labels
    return images, labels[ed], labels[es]


def _write_text(text: str, path: Path) -> None:
    with atomic_write_path(path) as tmp:
        Path(tmp).write_text(text)


def make_synthetic_acdc(
    out: str | Path,
    num_subjects: int = 10,
    size: int | str | Sequence[int] = (144, 160),
    slices: int = 5,
    frames: int = 10,
    seed: int = 0,
) -> Path:
    """Write a synthetic ACDC in the distributed layout under ``out/training``; return ``out``.

    Args:
        out: dataset root to create.
        num_subjects: patients ``patient001`` ... (all labelled, in ``training``).
        size: in-plane size (X, Y) in voxels; spacing is 1.37-1.68 mm, slices 10 mm.
        slices: short-axis slices per volume (base to just past the apex).
        frames: frames of the cine sequence (``NbFrame``).
        seed: seed of everything random.
    """
    out, nx_ny, rng = Path(out), parse_size(size), np.random.default_rng(seed)
    if num_subjects < 1 or slices < 1 or frames < 4:
        raise ValueError("need num_subjects >= 1, slices >= 1 and frames >= 4")
    for index in range(1, num_subjects + 1):
        pid = f"patient{index:03d}"
        folder = out / "training" / pid
        ed = int(rng.integers(0, 2))  # 0-based
        es = ed + int(round(0.35 * frames)) + int(rng.integers(0, 2))
        phantom = HeartPhantom.random((*nx_ny, slices), rng)
        pixel = rng.uniform(1.37, 1.68)
        affine = _oblique_affine((pixel, pixel, 10.0), rng)
        images, label_ed, label_es = _cine(phantom, ed, es, frames, rng)
        group = rng.choice(["DCM", "HCM", "MINF", "NOR", "RV"])
        height, weight = rng.uniform(150.0, 195.0), rng.uniform(50.0, 110.0)
        info = (
            f"ED: {ed + 1}\nES: {es + 1}\nGroup: {group}\nHeight: {height:.1f}\n"
            f"NbFrame: {frames}\nWeight: {weight:.1f}\n"
        )
        _write_text(info, folder / "Info.cfg")
        save_nifti(folder / f"{pid}_4d.nii.gz", images, affine)
        to_acdc = {v: k for k, v in ACDC_TO_CARDIAC.items()}
        for t, label in ((ed, label_ed), (es, label_es)):
            stem = f"{pid}_frame{t + 1:02d}"
            save_nifti(folder / f"{stem}.nii.gz", images[..., t], affine)
            save_nifti(folder / f"{stem}_gt.nii.gz", remap_labels(label, to_acdc), affine)
    return out


def _codes(count: int, rng: np.random.Generator) -> list[str]:
    alphabet = np.array(list(string.ascii_uppercase + string.digits))
    codes: list[str] = []
    while len(codes) < count:
        code = "".join(rng.choice(alphabet, 6))
        if code not in codes and code[0].isalpha():
            codes.append(code)
    return codes


def make_synthetic_mnms(
    out: str | Path,
    num_subjects: int = 10,
    num_unlabelled: int = 1,
    *,
    size: int | str | Sequence[int] = (144, 160),
    slices: int = 5,
    frames: int = 10,
    seed: int = 0,
) -> Path:
    """Write a synthetic M&Ms (2020) in the distributed layout under ``out``; return ``out``.

    Labelled subjects go to ``Training/Labeled`` (about 10 % to ``Validation`` and 20 % to
    ``Testing``), ``num_unlabelled`` more (no ``_sa_gt``) to ``Training/Unlabeled``; all are in
    the CSV (``211230_...opendataset.csv``, real column names, unnamed leading index column,
    0-based ED/ES). Spacing 1.2-1.6 mm in-plane, 8-10 mm slices. Other arguments as
    :func:`make_synthetic_acdc`.
    """
    out, nx_ny, rng = Path(out), parse_size(size), np.random.default_rng(seed)
    if num_subjects < 1 or slices < 1 or frames < 4 or num_unlabelled < 0:
        raise ValueError("need num_subjects >= 1, slices >= 1, frames >= 4 and num_unlabelled >= 0")
    total = num_subjects + num_unlabelled
    codes = _codes(total, rng)
    num_val, num_test = num_subjects // 10, num_subjects // 5
    vendors = [("Siemens", "A", 1), ("Philips", "B", 2), ("Philips", "B", 3), ("GE", "C", 4), ("Canon", "D", 5)]
    rows = []
    for index, code in enumerate(codes):
        if index >= num_subjects:
            folder = out / "Training" / "Unlabeled" / code
        elif index >= num_subjects - num_test:
            folder = out / "Testing" / code
        elif index >= num_subjects - num_test - num_val:
            folder = out / "Validation" / code
        else:
            folder = out / "Training" / "Labeled" / code
        ed = int(rng.choice([0, 0, 1, frames - 2]))
        es = (ed + int(round(0.35 * frames)) + int(rng.integers(0, 2))) % frames
        phantom = HeartPhantom.random((*nx_ny, slices), rng)
        pixel = rng.uniform(1.2, 1.6)
        affine = _oblique_affine((pixel, pixel, float(rng.choice([8.0, 9.2, 10.0]))), rng)
        images, label_ed, label_es = _cine(phantom, ed, es, frames, rng)
        save_nifti(folder / f"{code}_sa.nii.gz", images, affine)
        if index < num_subjects:
            gt = np.zeros(images.shape, dtype=np.uint8)
            gt[..., ed], gt[..., es] = label_ed, label_es
            save_nifti(folder / f"{code}_sa_gt.nii.gz", gt, affine)
        vendor_name, vendor, centre = vendors[int(rng.integers(0, len(vendors)))]
        rows.append(
            {
                "": str(index),
                "External code": code,
                "VendorName": vendor_name,
                "Vendor": vendor,
                "Centre": str(centre),
                "ED": str(ed),
                "ES": str(es),
                "Age": str(int(rng.integers(20, 80))),
                "Pathology": str(rng.choice(["NOR", "HCM", "DCM", "HHD", "ARV", "AHS", "IHD", "LVNC", "Other"])),
                "Sex": str(rng.choice(["M", "F"])),
                "Height": f"{rng.uniform(150, 195):.0f}",
                "Weight": f"{rng.uniform(50, 110):.0f}",
            }
        )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write_text(buffer.getvalue(), out / MNMS_CSV_NAMES[0])
    return out
