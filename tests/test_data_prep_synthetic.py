"""Synthetic ACDC / M&Ms stand-ins: exact on-disk layouts, label conventions, cardiac motion."""

from __future__ import annotations

import csv
import re

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from data_prep.synthetic import cardiac_phase, make_synthetic_acdc, make_synthetic_mnms, parse_size

SIZE = (64, 72)
SLICES = 4
FRAMES = 8


@pytest.fixture(scope="module")
def acdc_raw(tmp_path_factory):
    return make_synthetic_acdc(
        tmp_path_factory.mktemp("acdc"), num_subjects=4, size=SIZE, slices=SLICES, frames=FRAMES, seed=3
    )


@pytest.fixture(scope="module")
def mnms_raw(tmp_path_factory):
    return make_synthetic_mnms(
        tmp_path_factory.mktemp("mnms"),
        num_subjects=5,
        size=SIZE,
        slices=SLICES,
        frames=FRAMES,
        seed=3,
        num_unlabelled=1,
    )


def _info(path):
    return dict(line.split(": ", 1) for line in path.read_text().splitlines())


def _dice(a, b):
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def test_acdc_layout_and_info_cfg(acdc_raw):
    patients = sorted(p.name for p in (acdc_raw / "training").iterdir())
    assert patients == ["patient001", "patient002", "patient003", "patient004"]
    for pid in patients:
        folder = acdc_raw / "training" / pid
        info = _info(folder / "Info.cfg")
        assert set(info) == {"ED", "ES", "Group", "Height", "NbFrame", "Weight"}
        ed, es = int(info["ED"]), int(info["ES"])
        assert 1 <= ed < es <= FRAMES and int(info["NbFrame"]) == FRAMES
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted(
            ["Info.cfg", f"{pid}_4d.nii.gz"]
            + [f"{pid}_frame{t:02d}{gt}.nii.gz" for t in (ed, es) for gt in ("", "_gt")]
        )
        cine = nib.load(folder / f"{pid}_4d.nii.gz")
        assert cine.shape == (*SIZE, SLICES, FRAMES)
        for t in (ed, es):
            frame = nib.load(folder / f"{pid}_frame{t:02d}.nii.gz")
            assert frame.shape == (*SIZE, SLICES)
            # frame number t (1-based) is volume t - 1 of the 4-D sequence
            np.testing.assert_array_equal(np.asanyarray(frame.dataobj), np.asanyarray(cine.dataobj)[..., t - 1])
            zooms = frame.header.get_zooms()
            assert 1.37 <= zooms[0] == zooms[1] <= 1.68 and zooms[2] == pytest.approx(10.0)
            np.testing.assert_allclose(frame.affine, cine.affine)


def test_acdc_label_values_follow_acdc_convention(acdc_raw):
    """ACDC stores 1 RV, 2 Myo, 3 LV: the LV cavity (3) is enclosed by the myocardium (2)."""
    folder = acdc_raw / "training" / "patient001"
    info = _info(folder / "Info.cfg")
    gt = np.asanyarray(nib.load(folder / f"patient001_frame{int(info['ED']):02d}_gt.nii.gz").dataobj)
    assert set(np.unique(gt)) == {0, 1, 2, 3}
    z = 0
    filled = ndimage.binary_fill_holes(gt[..., z] == 2)
    assert np.all(filled[gt[..., z] == 3])  # LV inside the ring
    assert not np.any(filled[gt[..., z] == 1])  # RV outside it


def test_acdc_heart_contracts_and_registration_is_learnable(acdc_raw):
    dices, lv_ratio = [], []
    for folder in sorted((acdc_raw / "training").iterdir()):
        info = _info(folder / "Info.cfg")
        ed = np.asanyarray(nib.load(folder / f"{folder.name}_frame{int(info['ED']):02d}_gt.nii.gz").dataobj)
        es = np.asanyarray(nib.load(folder / f"{folder.name}_frame{int(info['ES']):02d}_gt.nii.gz").dataobj)
        image = np.asanyarray(nib.load(folder / f"{folder.name}_frame{int(info['ED']):02d}.nii.gz").dataobj)
        assert image[ed == 3].mean() > 2 * image[ed == 2].mean()  # bright LV blood pool, dark myocardium
        assert image[ed == 1].mean() > 2 * image[ed == 2].mean()  # bright RV blood pool
        lv_ratio.append(np.count_nonzero(es == 3) / np.count_nonzero(ed == 3))
        # myocardial wall thickens: ES myocardium has about the same area but a smaller cavity
        assert np.count_nonzero(es == 2) == pytest.approx(np.count_nonzero(ed == 2), rel=0.2)
        # the heart shrinks toward the apex
        lv_area = [np.count_nonzero(ed[..., z] > 0) for z in range(SLICES)]
        assert lv_area == sorted(lv_area, reverse=True) and lv_area[0] > lv_area[-1]
        for z in range(SLICES):
            if (ed[..., z] > 0).any() and (es[..., z] > 0).any():
                dices.append(
                    np.mean(
                        [
                            _dice(ed[..., z] == k, es[..., z] == k)
                            for k in (1, 2, 3)
                            if (ed[..., z] == k).any() or (es[..., z] == k).any()
                        ]
                    )
                )
    assert 0.45 < np.mean(lv_ratio) < 0.75
    assert 0.5 < np.mean(dices) < 0.8, np.mean(dices)


def test_mnms_layout_csv_and_labelled_frames(mnms_raw):
    csv_path = mnms_raw / "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv"
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == [
            "",
            "External code",
            "VendorName",
            "Vendor",
            "Centre",
            "ED",
            "ES",
            "Age",
            "Pathology",
            "Sex",
            "Height",
            "Weight",
        ]
        rows = {r["External code"]: r for r in reader}
    assert len(rows) == 6
    labelled = sorted(mnms_raw.glob("*/*/*_sa_gt.nii.gz")) + sorted(mnms_raw.glob("*/*/*/*_sa_gt.nii.gz"))
    unlabelled = sorted((mnms_raw / "Training" / "Unlabeled").iterdir())
    assert len(labelled) == 5 and len(unlabelled) == 1
    assert not list(unlabelled[0].glob("*_gt*"))
    assert (mnms_raw / "Testing").is_dir() and any((mnms_raw / "Training" / "Labeled").iterdir())
    for gt_path in labelled:
        code = gt_path.parent.name
        assert re.fullmatch(r"[A-Z0-9]{6}", code)
        image = nib.load(gt_path.parent / f"{code}_sa.nii.gz")
        gt = np.asanyarray(nib.load(gt_path).dataobj)
        assert image.shape == gt.shape == (*SIZE, SLICES, FRAMES)
        ed, es = int(rows[code]["ED"]), int(rows[code]["ES"])  # 0-based
        assert [t for t in range(FRAMES) if gt[..., t].any()] == sorted({ed, es})
        # M&Ms order: 1 LV inside 2 Myo; LV larger at ED
        assert np.count_nonzero(gt[..., ed] == 1) > np.count_nonzero(gt[..., es] == 1)
        filled = ndimage.binary_fill_holes(gt[..., 0, ed] == 2)
        assert np.all(filled[gt[..., 0, ed] == 1]) and not np.any(filled[gt[..., 0, ed] == 3])


def test_seeded(tmp_path):
    a = make_synthetic_acdc(tmp_path / "a", num_subjects=1, size=32, slices=2, frames=4, seed=5)
    b = make_synthetic_acdc(tmp_path / "b", num_subjects=1, size=32, slices=2, frames=4, seed=5)
    c = make_synthetic_acdc(tmp_path / "c", num_subjects=1, size=32, slices=2, frames=4, seed=6)
    name = "training/patient001/patient001_4d.nii.gz"
    load = lambda root: np.asanyarray(nib.load(root / name).dataobj)  # noqa: E731
    np.testing.assert_array_equal(load(a), load(b))
    np.testing.assert_allclose(nib.load(a / name).affine, nib.load(b / name).affine)
    assert not np.array_equal(load(a), load(c))


def test_cardiac_phase_and_size():
    assert cardiac_phase(2, 2, 6, 10) == 0.0 and cardiac_phase(6, 2, 6, 10) == pytest.approx(1.0)
    assert 0.0 < cardiac_phase(4, 2, 6, 10) < 1.0 and 0.0 < cardiac_phase(0, 2, 6, 10) < 1.0
    assert cardiac_phase(1, 8, 2, 10) == pytest.approx(cardiac_phase(11, 8, 12, 10))  # wraps around
    assert parse_size(96) == (96, 96) and parse_size("96,80") == (96, 80) and parse_size((64, 72)) == (64, 72)
    with pytest.raises(ValueError, match="size"):
        parse_size((64, 72, 3))
