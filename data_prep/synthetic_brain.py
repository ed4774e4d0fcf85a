"""Tiny synthetic stand-ins for LUMIR, Learn2Reg OASIS and neurite-OASIS, in their exact layouts.

Each subject is a skull-stripped brain phantom: a cerebrum whose white matter is wrapped in a
folded cortical ribbon, split into hemispheres by a midline fissure; lateral ventricles (with
inferior horns and choroid plexus), third and fourth ventricles; thalamus, caudate, putamen,
pallidum, hippocampus, amygdala, accumbens, ventral DC and a vessel in each hemisphere;
cerebellum (cortex around white matter) and brain stem. Labels follow the OASIS ``seg35``
numbering (:data:`data_prep.oasis.OASIS_SEG35_LABELS`), intensities a T1w contrast (white
matter bright, grey matter darker, CSF dark), with a smooth bias field, partial-volume blur and
noise; the background outside the brain mask is 0.

Subjects differ by a random smooth deformation of one template (scale +-4 % and shift +-1 %
per axis, plus a smooth free-form part of root-mean-square 2 % of the half field of view),
seeded per subject. The mean Dice over the 35 labels between two subjects is about 0.57
(0.3 - 0.8 over pairs; about 0.78 for cerebral and cerebellar white matter and cortex and the
brain stem), about the same at 32 x 40 x 36 and at 64 x 80 x 72. A registration can raise it:
subject ``s`` is the template pulled back through ``phi_s(x) = x + ddf_s(x)``
(:func:`brain_subject` returns ``ddf_s``), so ``phi_m^-1 o phi_f`` aligns moving to fixed.

Layouts written (``size`` is the array shape of the files; default small, ``"full"`` the real one)::

    LUMIR:           OUT/LUMIR_dataset.json {"name", "training": [{"image"}], "validation": [{"fixed", "moving"}]}
                     OUT/imagesTr/LUMIRMRI_NNNN_0000.nii.gz, OUT/imagesVal/... (uint8, 0..255, 160x224x192 full)
                     validation pairs fixed = i+1, moving = i; with annotations also
                     OUT/labelsVal/... (label values from LUMIR's evaluation list) for the first group of
                     validation images and OUT/landmarksVal/... (one value per landmark) for the second
                     group, as the LUMIR evaluation splits its validation pairs (the public release has neither).
    Learn2Reg OASIS: OUT/OASIS_dataset.json {"name", "tensorImageShape", "training": [{"image", "label", "mask"}],
                     "registration_val": [{"fixed", "moving"}], "registration_test", "test"}
                     OUT/imagesTr|labelsTr|masksTr/OASIS_NNNN_0000.nii.gz (float32 image in [0, 1], uint8 labels
                     0..35, uint8 mask), 160x224x192 full; validation = last subjects, fixed = i, moving = i+1;
                     optional unlabelled OUT/imagesTs/... for registration_test.
    neurite-OASIS:   OUT/subjects.txt, OUT/seg35_labels.txt, OUT/seg4_labels.txt, OUT/seg24_labels.txt
                     OUT/OASIS_OAS1_NNNN_MR1/aligned_norm.nii.gz (160x192x224 full), aligned_seg35.nii.gz,
                     aligned_seg4.nii.gz, slice_norm.nii.gz (coronal slice 109 of 224, 160x192),
                     slice_seg24.nii.gz; subject numbers with gaps, as in OASIS.

Orientation: neurite-OASIS volumes are FreeSurfer-conformed LIA (array axes towards Left,
Inferior, Anterior), which is why they are 160 x 192 x 224; LUMIR and Learn2Reg OASIS are
written RAS (160 x 224 x 192, the same arrays reoriented). These codes and the 1 mm spacing
are what public loaders assume (a reorientation "LIA -> RAS converts OASIS to the LUMIR
convention"); the exact header origins of the releases are not known, so the stand-ins centre
the grid on world 0. Not written: the 256^3 ``orig`` / ``norm`` scanner-space files of
neurite-OASIS and the ``aligned_orig`` images.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from data_prep.lumir import LUMIR_DICE_LABELS, LUMIR_JSON, LUMIR_SHAPE
from data_prep.oasis import OASIS_JSON, OASIS_SEG4_LABELS, OASIS_SEG24_LABELS, OASIS_SEG35_LABELS
from monai_ext.io.atomic import atomic_write_path
from monai_ext.io.nifti import save_nifti
from monai_ext.options import check_option, flag

__all__ = [
    "BrainSubject",
    "brain_subject",
    "render_brain",
    "parse_size_3d",
    "SEG35_TO_SEG4",
    "SEG35_TO_SEG24",
    "SEG35_TO_LUMIR",
    "LANDMARKS",
    "make_synthetic_lumir",
    "make_synthetic_oasis",
]

#: Array shapes of the real releases, in the orientation each one is stored.
FULL_SHAPES = {"lumir": LUMIR_SHAPE, "learn2reg": (160, 224, 192), "neurite": (160, 192, 224)}
#: Orientation codes (nibabel axis codes) of each release's arrays.
ORIENTATIONS = {"lumir": ("R", "A", "S"), "learn2reg": ("R", "A", "S"), "neurite": ("L", "I", "A")}
#: Default small RAS shape (32 x 40 x 36, the LUMIR proportions 160:224:192 rounded).
SMALL_RAS_SHAPE = (32, 40, 36)
#: The neurite-OASIS 2-D slice: coronal slice 109 of the 224 anterior-posterior voxels.
NEURITE_SLICE = (109, 224)

# --------------------------------------------------------------------------------------------
# template (normalised RAS coordinates: x towards Right, y Anterior, z Superior, in [-1, 1])
# --------------------------------------------------------------------------------------------

_CEREBRUM_CENTRE = np.array([0.0, 0.0, 0.12])
_CEREBRUM_RADII = np.array([0.80, 0.82, 0.62])
_WM_LEVEL = 0.80  # white-matter surface as a fraction of the cerebrum radius (before folding)
_FOLD = 0.07  # amplitude of the gyral folding of the white-matter surface
_CSF = 0.12  # intensity of unlabelled CSF inside the brain mask (fissure, sulci)

# (left label, right label, centre (|x|, y, z), radii, T1w intensity); painted in this order
_PAIRED = (
    (7, 26, (0.10, -0.10, 0.08), (0.085, 0.15, 0.10), 0.66),  # thalamus
    (8, 27, (0.19, 0.22, 0.20), (0.06, 0.15, 0.09), 0.56),  # caudate
    (9, 28, (0.30, 0.08, 0.08), (0.06, 0.18, 0.12), 0.60),  # putamen
    (10, 29, (0.23, 0.04, 0.05), (0.04, 0.09, 0.07), 0.70),  # pallidum
    (14, 30, (0.32, -0.22, -0.13), (0.06, 0.20, 0.06), 0.50),  # hippocampus
    (15, 31, (0.31, 0.08, -0.20), (0.07, 0.07, 0.07), 0.52),  # amygdala
    (16, 32, (0.12, 0.33, -0.02), (0.05, 0.05, 0.05), 0.55),  # accumbens
    (17, 33, (0.11, -0.16, -0.14), (0.06, 0.08, 0.08), 0.68),  # ventral DC
    (18, 34, (0.20, 0.18, -0.12), (0.02, 0.03, 0.02), 0.30),  # vessel
    (3, 22, (0.13, 0.00, 0.24), (0.08, 0.42, 0.11), 0.10),  # lateral ventricle
    (4, 23, (0.36, -0.15, -0.08), (0.035, 0.12, 0.035), 0.12),  # inferior lateral ventricle
    (19, 35, (0.17, -0.28, 0.20), (0.035, 0.06, 0.035), 0.35),  # choroid plexus
)
_MIDLINE = (
    (11, (0.0, -0.05, 0.05), (0.025, 0.16, 0.09), 0.10),  # 3rd ventricle
)
_CEREBELLUM = ((0.0, -0.55, -0.45), (0.55, 0.28, 0.25))
_BRAINSTEM = (13, (0.0, -0.22, -0.42), (0.13, 0.15, 0.38), 0.70)
_FOURTH = (12, (0.0, -0.40, -0.42), (0.06, 0.05, 0.07), 0.10)
_INTENSITY = {1: 0.78, 2: 0.48, 5: 0.74, 6: 0.52}  # cerebral WM / cortex, cerebellar WM / cortex (left labels)

#: seg35 -> seg4 (1 cortex, 2 subcortical grey matter, 3 white matter, 4 CSF): the stand-in's own mapping.
SEG35_TO_SEG4: dict[int, int] = {
    **{k: 1 for k in (2, 21, 6, 25)},
    **{k: 2 for k in (7, 8, 9, 10, 14, 15, 16, 17, 26, 27, 28, 29, 30, 31, 32, 33)},
    **{k: 3 for k in (1, 20, 5, 24, 13)},
    **{k: 4 for k in (3, 4, 11, 12, 18, 19, 22, 23, 34, 35)},
}
#: seg35 -> seg24 (the 2-D slice labels; structures without a seg24 label become 0).
SEG35_TO_SEG24: dict[int, int] = {
    1: 1, 2: 2, 3: 3, 4: 4, 7: 5, 8: 6, 9: 7, 10: 8, 11: 9, 13: 10, 14: 11, 17: 12, 19: 13,
    20: 14, 21: 15, 22: 16, 23: 17, 26: 18, 27: 19, 28: 20, 29: 21, 30: 22, 33: 23, 35: 24,
}  # fmt: skip
#: seg35 -> values of LUMIR's evaluation label list for the stand-in's labelsVal (cortex: see
#: :data:`LUMIR_CORTEX`); the values exercise the official list, no anatomical naming is implied.
SEG35_TO_LUMIR: dict[int, int] = {
    11: 4, 12: 11, 16: 30, 32: 23, 15: 32, 31: 31, 13: 35, 8: 37, 27: 36, 6: 39, 25: 38, 5: 41, 24: 40,
    1: 45, 20: 44, 14: 48, 30: 47, 4: 50, 23: 49, 3: 52, 22: 51, 19: 52, 35: 51, 10: 56, 29: 55, 9: 58, 28: 57,
    7: 60, 26: 59, 17: 62, 33: 61,
}  # fmt: skip
#: Cortex parcels of the LUMIR stand-in labels: (left, right) value per (anterior?, superior?) quadrant.
LUMIR_CORTEX: dict[tuple[bool, bool], tuple[int, int]] = {
    (True, True): (101, 100), (True, False): (103, 102), (False, True): (105, 104), (False, False): (107, 106),
}  # fmt: skip
#: Template landmarks (normalised RAS) of the LUMIR stand-in's landmarksVal; value k + 1 for row k.
LANDMARKS = np.array([
    (-0.13, 0.30, 0.24), (0.13, 0.30, 0.24), (-0.13, -0.30, 0.24), (0.13, -0.30, 0.24), (0.0, -0.05, 0.05),
    (0.0, -0.40, -0.42), (-0.30, 0.08, 0.08), (0.30, 0.08, 0.08), (-0.32, -0.22, -0.13), (0.32, -0.22, -0.13),
])  # fmt: skip

assert all(v in LUMIR_DICE_LABELS for v in SEG35_TO_LUMIR.values())
assert all(v in LUMIR_DICE_LABELS for pair in LUMIR_CORTEX.values() for v in pair)


def _level(p: np.ndarray, centre: Sequence[float], radii: Sequence[float]) -> np.ndarray:
    """Ellipsoid level ``sum(((p - c) / r)^2)``: <= 1 inside."""
    return sum(((p[i] - centre[i]) / radii[i]) ** 2 for i in range(3))


def render_brain(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (seg35, uint8), noiseless T1w intensity (float32, about 0..0.8) and brain mask
    of the template at points ``p``: ``(3, *shape)`` normalised RAS coordinates."""
    x, y, z = p
    shape = p.shape[1:]
    label = np.zeros(shape, dtype=np.uint8)
    tissue = np.zeros(shape, dtype=np.float32)
    left = x < 0
    # cerebrum: folded white matter inside a cortical ribbon
    radius = np.sqrt(_level(p, _CEREBRUM_CENTRE, _CEREBRUM_RADII))
    dy, dz = y - _CEREBRUM_CENTRE[1], z - _CEREBRUM_CENTRE[2]
    fold = _FOLD * np.sin(11.0 * np.arctan2(dz, dy)) * np.cos(9.0 * np.arctan2(x, np.hypot(dy, dz) + 1e-6))
    cerebrum = radius <= 1.0 + 0.3 * fold
    fissure = (np.abs(x) < 0.025) & (radius > 0.45)
    white = cerebrum & (radius <= _WM_LEVEL + fold) & ~fissure
    cortex = cerebrum & ~white & ~fissure
    cerebellum_level = _level(p, *_CEREBELLUM)
    brainstem = _level(p, *_BRAINSTEM[1:3]) <= 1.0
    mask = (radius <= 1.04) | (cerebellum_level <= 1.1) | brainstem
    tissue[mask] = _CSF
    for region, base in ((white, 1), (cortex, 2)):
        label[region & left], label[region & ~left] = base, base + 19
        tissue[region] = _INTENSITY[base]
    for lab_l, lab_r, (cx, cy, cz), radii, value in _PAIRED:
        for lab, sign in ((lab_l, -1.0), (lab_r, 1.0)):
            inside = _level(p, (sign * cx, cy, cz), radii) <= 1.0
            label[inside], tissue[inside] = lab, value
    for lab, centre, radii, value in _MIDLINE:
        inside = _level(p, centre, radii) <= 1.0
        label[inside], tissue[inside] = lab, value
    # cerebellum: cortex around a white-matter core, then brain stem and fourth ventricle
    centre, radii = _CEREBELLUM
    cerebellum = cerebellum_level <= 1.0
    core = _level(p, centre, np.array(radii) * 0.55) <= 1.0 + 0.15 * np.sin(
        14.0 * np.arctan2(z - centre[2], y - centre[1])
    )
    for region, base in ((cerebellum & ~core, 6), (cerebellum & core, 5)):
        label[region & left], label[region & ~left] = base, base + 19
        tissue[region] = _INTENSITY[base]
    for lab, centre, radii, value in (_BRAINSTEM, _FOURTH):
        inside = _level(p, centre, radii) <= 1.0
        label[inside], tissue[inside] = lab, value
    label[~mask] = 0
    return label, tissue, mask


# --------------------------------------------------------------------------------------------
# one subject
# --------------------------------------------------------------------------------------------


@dataclass
class BrainSubject:
    """One synthetic subject on a RAS grid ``(X, Y, Z)``.

    ``image`` float32 in [0, 1] (0 outside the brain), ``label`` seg35 uint8, ``mask`` bool,
    ``points`` the template coordinates ``phi(x)`` of every voxel (normalised RAS,
    ``(3, X, Y, Z)``) and ``ddf`` the same map as a voxel displacement ``phi(x) - x``.
    """

    image: np.ndarray
    label: np.ndarray
    mask: np.ndarray
    points: np.ndarray
    ddf: np.ndarray


def _normalised_grid(shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    half = (np.asarray(shape, dtype=float) - 1.0) / 2.0
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij"))
    return (grid - half[:, None, None, None]) / half[:, None, None, None], half


def _smooth_noise(shape: Sequence[int], rng: np.random.Generator, control: int = 4) -> np.ndarray:
    """Smooth random field of unit root-mean-square value on a grid of ``shape`` voxels.

    A ``control ** 3`` lattice of random weights over the normalised cube [-1, 1]^3, each
    spread by a separable Gaussian bump one lattice spacing wide. Separable, so it costs a few
    tensor products at any size, and the field is the same function of the normalised
    coordinates whatever the grid: a subject keeps its anatomy at every resolution.
    """
    coarse = rng.standard_normal((control,) * 3)
    centres = np.linspace(-1.0, 1.0, control)
    width = 2.0 / (control - 1)

    def basis(n: int) -> np.ndarray:
        x = np.linspace(-1.0, 1.0, n)
        return np.exp(-0.5 * ((x[:, None] - centres[None, :]) / width) ** 2)

    def evaluate(grid: Sequence[int]) -> np.ndarray:
        field = np.tensordot(basis(grid[0]), coarse, axes=(1, 0))  # (X, c, c)
        field = np.tensordot(field, basis(grid[1]), axes=(1, 1))  # (X, c, Y)
        field = np.tensordot(field, basis(grid[2]), axes=(1, 1))  # (X, Y, Z)
        return field

    reference = float(np.sqrt(np.mean(evaluate((17, 17, 17)) ** 2)))  # root mean square, offset included
    return evaluate(shape) / max(reference, 1e-6)


def brain_subject(shape: Sequence[int], seed: int = 0, index: int = 0, deform: float = 1.0) -> BrainSubject:
    """Subject ``index`` of the series seeded by ``seed`` on a RAS grid of ``shape`` voxels.

    The random stream depends on ``(seed, index)`` only, so a subject is reproducible on its
    own. ``deform`` scales the inter-subject deformation (0: every subject is the template,
    up to noise and bias).
    """
    shape = tuple(int(n) for n in shape)
    rng = np.random.default_rng([int(seed), int(index)])
    p0, half = _normalised_grid(shape)
    scale = 1.0 + deform * rng.uniform(-0.04, 0.04, 3)
    shift = deform * rng.uniform(-0.01, 0.01, 3)
    free = np.stack([_smooth_noise(shape, rng) for _ in range(3)]) * (0.02 * deform)
    points = p0 * scale[:, None, None, None] + shift[:, None, None, None] + free
    label, tissue, mask = render_brain(points)
    bias = 1.0 + 0.06 * _smooth_noise(shape, rng, control=3)
    gain = rng.uniform(0.92, 1.05)
    image = ndimage.gaussian_filter(tissue * bias * gain, sigma=0.6)
    image = image + 0.015 * rng.standard_normal(shape)
    image = np.where(mask, np.clip(image, 0.0, 1.0), 0.0).astype(np.float32)
    ddf = (points - p0) * half[:, None, None, None]
    return BrainSubject(
        image=image, label=label, mask=mask, points=points.astype(np.float32), ddf=ddf.astype(np.float32)
    )


def _landmark_map(points: np.ndarray, half: np.ndarray) -> np.ndarray:
    """uint8 map with value k + 1 at the voxel whose template point is nearest to LANDMARKS[k]."""
    out = np.zeros(points.shape[1:], dtype=np.uint8)
    flat = (points.reshape(3, -1) * half[:, None]).T  # template coordinates in voxels (isotropic)
    for k, q in enumerate(LANDMARKS):
        index = int(np.argmin(((flat - q * half) ** 2).sum(axis=1)))
        out[np.unravel_index(index, out.shape)] = k + 1
    return out


def _lumir_labels(subject: BrainSubject) -> np.ndarray:
    out = np.zeros(subject.label.shape, dtype=np.uint8)
    for src, dst in SEG35_TO_LUMIR.items():
        out[subject.label == src] = dst
    _, y, z = subject.points
    for (anterior, superior), (val_l, val_r) in LUMIR_CORTEX.items():
        quadrant = ((y >= 0) == anterior) & ((z >= _CEREBRUM_CENTRE[2]) == superior)
        out[(subject.label == 2) & quadrant] = val_l
        out[(subject.label == 21) & quadrant] = val_r
    return out


def _remap(label: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    lut = np.zeros(256, dtype=np.uint8)
    for src, dst in mapping.items():
        lut[src] = dst
    return lut[label]


# --------------------------------------------------------------------------------------------
# orientation and writing
# --------------------------------------------------------------------------------------------


def parse_size_3d(size: int | str | Sequence[int] | None, layout: str) -> tuple[int, int, int]:
    """Array shape of the written volumes: ``None`` (small default), ``"full"`` (the release's),
    one number (a cube), ``"32,40,36"`` or three numbers, in the layout's array order."""
    if size is None:
        ras = SMALL_RAS_SHAPE
        return tuple(ras[i] for i in _ras_axes(layout))  # type: ignore[return-value]
    if isinstance(size, str) and size.strip().lower() in ("full", "real"):
        return FULL_SHAPES[layout]  # type: ignore[return-value]
    if isinstance(size, str):
        values = [int(v) for v in size.replace("x", ",").split(",") if v.strip()]
    elif isinstance(size, (int, np.integer)):
        values = [int(size)]
    else:
        values = [int(v) for v in size]
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or min(values) < 16:
        raise ValueError(f"size must be 'full' or one or three integers >= 16, got {size!r}")
    return values[0], values[1], values[2]


def _ras_axes(layout: str) -> list[int]:
    """For each array axis of the layout, the RAS axis (0 x, 1 y, 2 z) it runs along."""
    import nibabel as nib

    return [int(a) for a in nib.orientations.axcodes2ornt(ORIENTATIONS[layout])[:, 0]]


def _reorient(array: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """RAS array -> the layout's orientation; returns the array and its 4 x 4 affine (1 mm,
    grid centred on world 0)."""
    import nibabel as nib

    ras_affine = np.eye(4)
    ras_affine[:3, 3] = -(np.asarray(array.shape[:3], dtype=float) - 1.0) / 2.0
    transform = nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt(("R", "A", "S")), nib.orientations.axcodes2ornt(ORIENTATIONS[layout])
    )
    out = nib.orientations.apply_orientation(array, transform)
    affine = ras_affine @ nib.orientations.inv_ornt_aff(transform, array.shape[:3])
    return np.ascontiguousarray(out), affine


def _subjects(layout: str, size: int | str | Sequence[int] | None, seed: int, count: int, deform: float):
    shape = parse_size_3d(size, layout)
    axes = _ras_axes(layout)
    ras = [0, 0, 0]
    for array_axis, ras_axis in enumerate(axes):
        ras[ras_axis] = shape[array_axis]
    for index in range(count):
        yield brain_subject(ras, seed=seed, index=index, deform=deform)


def _write_json(data: dict, path: Path) -> None:
    with atomic_write_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=4) + "\n")


def _write_lut(names: dict[str, str], path: Path, rng: np.random.Generator) -> None:
    lines = ["# FreeSurfer colour table (synthetic stand-in)", "#No. Label Name:                R   G   B   A"]
    for key, name in names.items():
        colour = (0, 0, 0) if key == "0" else tuple(int(c) for c in rng.integers(20, 256, 3))
        lines.append(
            f"{int(key):<4d} {'Unknown' if key == '0' else name:<30s} {colour[0]:3d} {colour[1]:3d} {colour[2]:3d}   0"
        )
    with atomic_write_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def make_synthetic_lumir(
    out: str | Path,
    num_train: int = 8,
    num_val: int = 6,
    size: int | str | Sequence[int] | None = None,
    seed: int = 0,
    annotations: bool = True,
    deform: float = 1.0,
) -> Path:
    """Write a synthetic LUMIR in the distributed layout under ``out``; return ``out``.

    Args:
        out: dataset root to create.
        num_train: training images ``LUMIRMRI_0000 ..`` in ``imagesTr``.
        num_val: validation images (numbered after the training ones) in ``imagesVal``; from 4
            on they form two groups, each giving consecutive pairs fixed = i+1, moving = i.
        size: array shape (default 32 x 40 x 36; ``"full"``: 160 x 224 x 192).
        seed: seed of everything random.
        annotations: also write ``labelsVal`` for the first group and ``landmarksVal`` for the
            second, if any (LUMIR keeps these for its evaluation; the public release has neither).
        deform: scale of the inter-subject deformation.
    """
    _check_counts(num_train=num_train, num_val=num_val)
    annotations = flag(annotations, "annotations")
    if num_train < 2 or num_val < 2:
        raise ValueError("need num_train >= 2 and num_val >= 2")
    out = Path(out)
    val = list(range(num_train, num_train + num_val))
    # LUMIR scores Dice on one group of validation pairs and TRE on another
    groups = [val] if num_val < 4 else [val[: (num_val + 1) // 2], val[(num_val + 1) // 2 :]]
    training, validation = [], []
    for index, subject in enumerate(_subjects("lumir", size, seed, num_train + num_val, deform)):
        name = f"LUMIRMRI_{index:04d}_0000.nii.gz"
        folder = "imagesTr" if index < num_train else "imagesVal"
        image = np.round(np.clip(subject.image / 0.9, 0.0, 1.0) * 255.0).astype(np.uint8)
        array, affine = _reorient(image, "lumir")
        save_nifti(out / folder / name, array, affine, dtype=np.uint8)
        (training if index < num_train else validation).append(f"./{folder}/{name}")
        if annotations and index >= num_train:
            if index in groups[0]:
                save_nifti(
                    out / "labelsVal" / name, _reorient(_lumir_labels(subject), "lumir")[0], affine, dtype=np.uint8
                )
            else:
                half = (np.asarray(subject.label.shape, dtype=float) - 1.0) / 2.0
                save_nifti(
                    out / "landmarksVal" / name,
                    _reorient(_landmark_map(subject.points, half), "lumir")[0],
                    affine,
                    dtype=np.uint8,
                )
    pairs = []
    for group in groups:
        for i in group[:-1]:
            pairs.append(
                {
                    "fixed": f"./imagesVal/LUMIRMRI_{i + 1:04d}_0000.nii.gz",
                    "moving": f"./imagesVal/LUMIRMRI_{i:04d}_0000.nii.gz",
                }
            )
    data = {
        "name": "LUMIR",
        "description": "synthetic stand-in of the LUMIR (Learn2Reg 2024) dataset JSON",
        "training": [{"image": p} for p in training],
        "validation": pairs,
    }
    _write_json(data, out / LUMIR_JSON)
    return out


def make_synthetic_oasis(
    out: str | Path,
    layout: str = "learn2reg",
    num_subjects: int = 10,
    num_val: int = 4,
    num_test: int = 0,
    size: int | str | Sequence[int] | None = None,
    seed: int = 0,
    deform: float = 1.0,
) -> Path:
    """Write a synthetic OASIS in the Learn2Reg or the neurite-OASIS layout; return ``out``.

    Args:
        out: dataset root to create.
        layout: ``learn2reg`` (``OASIS_dataset.json``, imagesTr / labelsTr / masksTr) or
            ``neurite`` (``subjects.txt``, ``OASIS_OAS1_NNNN_MR1/aligned_*`` and ``slice_*``).
        num_subjects: labelled subjects.
        num_val: Learn2Reg only: the last ``num_val`` subjects form ``registration_val``
            (fixed = i, moving = i+1); they stay listed under ``training``, as in the release.
        num_test: Learn2Reg only: unlabelled ``imagesTs`` subjects forming ``registration_test``.
        size: array shape (default small; ``"full"``: 160 x 224 x 192 Learn2Reg, 160 x 192 x 224 neurite).
        seed: seed of everything random.
        deform: scale of the inter-subject deformation.
    """
    layout = str(layout).lower().replace("-", "_")
    layout = {"neurite_oasis": "neurite", "l2r": "learn2reg"}.get(layout, layout)
    check_option("layout", layout, ("learn2reg", "neurite"))
    _check_counts(num_subjects=num_subjects, num_val=num_val, num_test=num_test)
    if num_subjects < 2:
        raise ValueError("need num_subjects >= 2")
    if layout == "learn2reg" and (num_val == 1 or num_val > num_subjects - 2 or num_test == 1):
        raise ValueError(
            f"num_val must be 0 or 2 .. num_subjects - 2 (two subjects stay for training) and num_test "
            f"!= 1 (pairs need two subjects), got num_subjects={num_subjects}, num_val={num_val}, "
            f"num_test={num_test}"
        )
    out = Path(out)
    if layout == "neurite":
        return _write_neurite(out, num_subjects, size, seed, deform)
    training, test_images = [], []
    for index, subject in enumerate(_subjects("learn2reg", size, seed, num_subjects + num_test, deform)):
        name = f"OASIS_{index + 1:04d}_0000.nii.gz"
        image = subject.image / max(float(subject.image.max()), 1e-6)
        arrays = {"images": image.astype(np.float32), "labels": subject.label, "masks": subject.mask.astype(np.uint8)}
        if index >= num_subjects:  # test images: no label or mask released
            array, affine = _reorient(arrays["images"], "learn2reg")
            save_nifti(out / "imagesTs" / name, array, affine, dtype=np.float32)
            test_images.append(f"./imagesTs/{name}")
            continue
        for folder, data in arrays.items():
            array, affine = _reorient(data, "learn2reg")
            save_nifti(out / f"{folder}Tr" / name, array, affine, dtype=np.float32 if folder == "images" else np.uint8)
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}", "mask": f"./masksTr/{name}"})
    val = [e["image"] for e in training[num_subjects - num_val :]]
    data = {
        "name": "OASIS",
        "description": "synthetic stand-in of the Learn2Reg OASIS dataset JSON",
        "tensorImageShape": {"0": list(parse_size_3d(size, "learn2reg"))},
        "training": training,
        "registration_val": [{"fixed": val[i], "moving": val[i + 1]} for i in range(len(val) - 1)],
        "registration_test": [
            {"fixed": test_images[i], "moving": test_images[i + 1]} for i in range(len(test_images) - 1)
        ],
        "test": [{"image": p} for p in test_images],
    }
    _write_json(data, out / OASIS_JSON)
    return out


def _write_neurite(out: Path, num_subjects: int, size, seed: int, deform: float) -> Path:
    # OASIS-1 subject numbers have gaps (scans that failed processing): skip every seventh
    numbers = [n for n in range(1, 2 * num_subjects + 8) if n % 7 != 0][:num_subjects]
    names = [f"OASIS_OAS1_{n:04d}_MR1" for n in numbers]
    for name, subject in zip(names, _subjects("neurite", size, seed, num_subjects, deform)):
        folder = out / name
        image = (subject.image / max(float(subject.image.max()), 1e-6)).astype(np.float32)
        norm, affine = _reorient(image, "neurite")
        seg35, _ = _reorient(subject.label, "neurite")
        save_nifti(folder / "aligned_norm.nii.gz", norm, affine, dtype=np.float32)
        save_nifti(folder / "aligned_seg35.nii.gz", seg35, affine, dtype=np.uint8)
        save_nifti(folder / "aligned_seg4.nii.gz", _remap(seg35, SEG35_TO_SEG4), affine, dtype=np.uint8)
        # coronal slice: along the anterior axis (array axis 2 of LIA)
        k = int(round(NEURITE_SLICE[0] * (norm.shape[2] - 1) / (NEURITE_SLICE[1] - 1)))
        slice_affine = affine @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, k], [0, 0, 0, 1]], dtype=float)
        save_nifti(folder / "slice_norm.nii.gz", norm[:, :, k], slice_affine, dtype=np.float32)
        save_nifti(folder / "slice_seg24.nii.gz", _remap(seg35[:, :, k], SEG35_TO_SEG24), slice_affine, dtype=np.uint8)
    with atomic_write_path(out / "subjects.txt") as tmp:
        Path(tmp).write_text("\n".join(names) + "\n")
    rng = np.random.default_rng([int(seed), 10**6])
    for names_map, file in (
        (OASIS_SEG35_LABELS, "seg35_labels.txt"),
        (OASIS_SEG24_LABELS, "seg24_labels.txt"),
        (OASIS_SEG4_LABELS, "seg4_labels.txt"),
    ):
        _write_lut(names_map, out / file, rng)
    return out
