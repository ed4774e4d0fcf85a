"""M&Ms converter on a synthetic M&Ms in the distributed layout: CSV by column name, 0-based ED/ES
cross-checked with the labelled frames, unlabelled subjects skipped, errors naming the file."""

from __future__ import annotations

import csv
import json
import logging
import shutil

import nibabel as nib
import numpy as np
import pytest

from data_prep.mnms import MNMS_CSV_NAMES, prepare_mnms, read_mnms_csv, resolve_ed_es
from data_prep.synthetic import make_synthetic_mnms

from helpers import rewrite_nifti

SIZE, SLICES, FRAMES, NUM = (64, 56), 4, 8, 5
SPLITS = ("training", "validation", "testing")


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_synthetic_mnms(
        tmp_path_factory.mktemp("mnms_raw"),
        num_subjects=NUM,
        size=SIZE,
        slices=SLICES,
        frames=FRAMES,
        seed=4,
        num_unlabelled=1,
    )


@pytest.fixture(scope="module")
def out(raw, tmp_path_factory):
    """The converted dataset's folder (the parent of the datalist ``prepare_mnms`` returns)."""
    return prepare_mnms(raw, tmp_path_factory.mktemp("mnms_out")).parent


def _csv_rows(root):
    with open(root / MNMS_CSV_NAMES[0], newline="") as f:
        return list(csv.DictReader(f))


def _write_csv(path, rows, fields=None):
    fields = fields or list(rows[0])
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _subject_dirs(root):
    return {p.parent.name: p.parent for p in root.rglob("*_sa_gt.nii.gz")}


def _normalised_crop(out_path, sequence, src_affine, frame, z):
    """Normalised source frame at the output voxels (through world coordinates), 0 in the padding."""
    out_img = nib.load(out_path)
    n = out_img.shape[0]
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    points = np.stack([i, j, np.zeros_like(i), np.ones_like(i)]).reshape(4, -1).astype(float)
    src = np.linalg.solve(src_affine, out_img.affine @ points)[:3].reshape(3, n, n)
    index = np.round(src).astype(int)
    np.testing.assert_allclose(src, index, atol=1e-2)
    assert np.all(index[2] == z)
    inside = (index[0] >= 0) & (index[0] < SIZE[0]) & (index[1] >= 0) & (index[1] < SIZE[1])
    values = sequence[np.clip(index[0], 0, SIZE[0] - 1), np.clip(index[1], 0, SIZE[1] - 1), z, frame]
    lo, hi = values[inside].min(), values[inside].max()
    return np.where(inside, (values - lo) / (hi - lo), 0.0), index, inside


def _check_subject(out, entries, folder, ed, es):
    code = folder.name
    image = nib.load(folder / f"{code}_sa.nii.gz")
    sequence = np.asanyarray(image.dataobj).astype(float)
    gt = np.asanyarray(nib.load(folder / f"{code}_sa_gt.nii.gz").dataobj)
    mine = [e for e in entries if e["subject"] == code]
    assert [e["slice"] for e in mine] == [z for z in range(SLICES) if gt[..., z, ed].any() and gt[..., z, es].any()]
    for e in mine:
        for role, frame in (("fixed", ed), ("moving", es)):
            data = np.asanyarray(nib.load(out / e[f"{role}_image"]).dataobj)
            assert data.shape == (128, 128) and data.min() == 0.0 and data.max() == 1.0
            expected, index, inside = _normalised_crop(
                out / e[f"{role}_image"], sequence, image.affine, frame, e["slice"]
            )
            np.testing.assert_allclose(data, expected, atol=1e-5)
            # M&Ms labels are kept as they are (1 LV, 2 Myo, 3 RV)
            src = gt[np.clip(index[0], 0, SIZE[0] - 1), np.clip(index[1], 0, SIZE[1] - 1), e["slice"], frame]
            np.testing.assert_array_equal(
                np.asanyarray(nib.load(out / e[f"{role}_label"]).dataobj), np.where(inside, src, 0)
            )
    return mine


def test_ed_es_are_zero_based_csv_frames(raw, out):
    datalist = json.loads((out / "datalist.json").read_text())
    entries = [e for k in SPLITS for e in datalist[k]]
    rows = {r["External code"]: r for r in _csv_rows(raw)}
    dirs = _subject_dirs(raw)
    assert sorted({e["subject"] for e in entries}) == sorted(dirs)  # the unlabelled subject is not there
    records = {r["subject"]: r for r in datalist["subjects"]}
    for code, folder in dirs.items():
        ed, es = int(rows[code]["ED"]), int(rows[code]["ES"])
        assert len(_check_subject(out, entries, folder, ed, es)) >= 2
        assert (records[code]["ed_frame"], records[code]["es_frame"]) == (ed, es)
        assert records[code]["vendor"] == rows[code]["Vendor"] and records[code]["centre"] == rows[code]["Centre"]
    groups = {k: {e["subject"] for e in datalist[k]} for k in SPLITS}
    assert [len(groups[k]) for k in SPLITS] == [3, 1, 1] and set.union(*groups.values()) == set(dirs)


def test_unlabelled_subject_is_skipped_with_a_log(raw, tmp_path, caplog):
    unlabelled = next((raw / "Training" / "Unlabeled").iterdir()).name
    with caplog.at_level(logging.INFO):
        prepare_mnms(raw, tmp_path / "out")
    assert f"{unlabelled}: no {unlabelled}_sa_gt.nii.gz, subject skipped" in caplog.text


def test_wrong_csv_frame_is_corrected_from_the_labels(raw, tmp_path, caplog):
    root = tmp_path / "raw"
    shutil.copytree(raw, root)
    rows = _csv_rows(root)
    dirs = _subject_dirs(root)
    victim = next(r for r in rows if r["External code"] in dirs)
    true_ed, true_es = int(victim["ED"]), int(victim["ES"])
    unlabelled_frame = next(t for t in range(FRAMES) if t not in (true_ed, true_es))
    victim["ED"] = str(unlabelled_frame)
    # the older release's CSV name, columns in another order, no index column: read by name
    fields = ["External code", "ED", "ES", "Vendor", "VendorName", "Centre"]
    (root / MNMS_CSV_NAMES[0]).unlink()
    _write_csv(root / MNMS_CSV_NAMES[1], rows, fields)
    with caplog.at_level(logging.WARNING):
        datalist = json.loads(prepare_mnms(root, tmp_path / "out").read_text())
    code = victim["External code"]
    assert f"{code}: CSV gives ED={unlabelled_frame}, ES={true_es}" in caplog.text
    entries = [e for k in SPLITS for e in datalist[k]]
    _check_subject(tmp_path / "out", entries, dirs[code], true_ed, true_es)
    record = next(r for r in datalist["subjects"] if r["subject"] == code)
    assert record["csv_ed_es"] == [unlabelled_frame, true_es] and record["ed_frame"] == true_ed


def test_resolve_ed_es():
    gt = np.zeros((4, 4, 2, 6), dtype=np.uint8)
    gt[:3, :3, :, 1] = 1  # large LV: ED
    gt[:2, :2, :, 4] = 1
    assert resolve_ed_es(gt, 1, 4, "gt.nii.gz", "X") == (1, 4)
    assert resolve_ed_es(gt, 0, 4, "gt.nii.gz", "X") == (1, 4)
    assert resolve_ed_es(gt, 0, 3, "gt.nii.gz", "X") == (1, 4)  # ED by LV size
    gt[:1, :1, :, 5] = 1
    with pytest.raises(ValueError, match=r"gt\.nii\.gz: CSV gives ED=0, ES=4 .* labelled frames are \[1, 4, 5\]"):
        resolve_ed_es(gt, 0, 4, "gt.nii.gz", "X")
    with pytest.raises(ValueError, match=r"gt\.nii\.gz: no labelled frame"):
        resolve_ed_es(np.zeros_like(gt), 0, 4, "gt.nii.gz", "X")


def _third_labelled_frame(root, code, rows):
    """CSV ES points at an unlabelled frame and three frames hold labels: no way to resolve."""
    row = next(r for r in rows if r["External code"] == code)
    ed, es = int(row["ED"]), int(row["ES"])
    unlabelled, extra = [t for t in range(FRAMES) if t not in (ed, es)][:2]
    row["ES"] = str(unlabelled)
    _write_csv(root / MNMS_CSV_NAMES[0], rows)
    path = _subject_dirs(root)[code] / f"{code}_sa_gt.nii.gz"

    def add(a):
        a = a.copy()
        a[..., extra] = a[..., es]
        return a

    rewrite_nifti(path, add)
    return path


def _missing_row(root, code, rows):
    _write_csv(root / MNMS_CSV_NAMES[0], [r for r in rows if r["External code"] != code])
    return root / MNMS_CSV_NAMES[0]


def _three_d(root, code, rows):
    path = _subject_dirs(root)[code] / f"{code}_sa.nii.gz"
    rewrite_nifti(path, lambda a: a[..., 0])
    return path


def _nan(root, code, rows):
    path = _subject_dirs(root)[code] / f"{code}_sa.nii.gz"
    rewrite_nifti(path, lambda a: np.where(np.arange(a.size).reshape(a.shape) == 11, np.nan, a.astype(np.float32)))
    return path


def _bad_label(root, code, rows):
    path = _subject_dirs(root)[code] / f"{code}_sa_gt.nii.gz"
    rewrite_nifti(path, lambda a: np.where(a == 3, 9, a).astype(np.uint8))
    return path


def _shape(root, code, rows):
    path = _subject_dirs(root)[code] / f"{code}_sa_gt.nii.gz"
    rewrite_nifti(path, lambda a: a[:-1])
    return path


BAD_INPUTS = {
    "unresolvable ED/ES": (_third_labelled_frame, r"cannot tell ED and ES apart"),
    "missing CSV row": (_missing_row, r"no row for subject"),
    "3-D sequence": (_three_d, r"expected a 4-D \(X, Y, Z, T\) volume"),
    "NaN image": (_nan, r"image contains NaN"),
    "label outside set": (_bad_label, r"label values \[9\] outside"),
    "image/label shape": (_shape, r"image/label shape mismatch"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_reported_with_the_file_name(raw, tmp_path, case):
    mutate, message = BAD_INPUTS[case]
    root = tmp_path / "raw"
    shutil.copytree(raw, root)
    rows = _csv_rows(root)
    code = sorted(_subject_dirs(root))[2]
    culprit = mutate(root, code, rows)
    with pytest.raises(ValueError, match=message) as info:
        prepare_mnms(root, tmp_path / "out")
    assert str(culprit) in str(info.value)
    if case == "missing CSV row":
        assert code in str(info.value)
    assert not (tmp_path / "out").exists()


def test_csv_lookup(raw, tmp_path):
    root = tmp_path / "raw"
    shutil.copytree(raw, root)
    moved = tmp_path / "info.csv"
    (root / MNMS_CSV_NAMES[0]).rename(moved)
    with pytest.raises(FileNotFoundError, match="M&Ms information CSV not found"):
        prepare_mnms(root, tmp_path / "out")
    assert json.loads(prepare_mnms(root, tmp_path / "out", csv=moved).read_text())["num_training"] > 0
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        prepare_mnms(root, tmp_path / "out2", csv=tmp_path / "nope.csv")
    _write_csv(tmp_path / "bad.csv", [{"code": "A", "ED": 0}])
    with pytest.raises(ValueError, match=r"bad\.csv: missing column\(s\) \['External code', 'ES'\]"):
        read_mnms_csv(tmp_path / "bad.csv")
