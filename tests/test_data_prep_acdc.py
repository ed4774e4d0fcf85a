"""ACDC converter on a synthetic ACDC in the distributed layout (GSMorph §3.1 preprocessing)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from data_prep.acdc import prepare_acdc
from data_prep.synthetic import make_synthetic_acdc

from helpers import cli, remove_file, rewrite_nifti, run_module

REPO = Path(__file__).resolve().parents[1]
SIZE, SLICES, FRAMES, NUM = (64, 72), 4, 8, 5
ACDC_TO_OURS = np.array([0, 3, 2, 1])  # ACDC 1 RV, 2 Myo, 3 LV -> 1 LV, 2 Myo, 3 RV
SPLITS = ("training", "validation", "testing")


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_synthetic_acdc(
        tmp_path_factory.mktemp("acdc_raw"), num_subjects=NUM, size=SIZE, slices=SLICES, frames=FRAMES, seed=1
    )


@pytest.fixture(scope="module")
def out(raw, tmp_path_factory):
    """The converted dataset's folder (the parent of the datalist ``prepare_acdc`` returns)."""
    return prepare_acdc(raw, tmp_path_factory.mktemp("acdc_out")).parent


def _info(folder):
    return dict(line.split(": ", 1) for line in (folder / "Info.cfg").read_text().splitlines())


def _entries(out):
    datalist = json.loads((out / "datalist.json").read_text())
    return datalist, [e for k in SPLITS for e in datalist[k]]


def _source_voxels(out_affine, src_affine, n):
    """Source voxel (x, y, z) of every output voxel (i, j), through world coordinates."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    points = np.stack([i, j, np.zeros_like(i), np.ones_like(i)]).reshape(4, -1).astype(float)
    src = np.linalg.solve(src_affine, out_affine @ points)[:3].reshape(3, n, n)
    index = np.round(src).astype(int)
    np.testing.assert_allclose(src, index, atol=1e-2)  # output voxels sit on source voxels
    return index


def _expected_from_source(entry_path, src_image, src_affine, z):
    """Normalised source intensities at the output voxels, and the in-image mask."""
    out_img = nib.load(entry_path)
    index = _source_voxels(out_img.affine, src_affine, out_img.shape[0])
    assert np.all(index[2] == z)
    inside = (index[0] >= 0) & (index[0] < src_image.shape[0]) & (index[1] >= 0) & (index[1] < src_image.shape[1])
    values = src_image[np.clip(index[0], 0, src_image.shape[0] - 1), np.clip(index[1], 0, src_image.shape[1] - 1), z]
    lo, hi = values[inside].min(), values[inside].max()
    return np.where(inside, (values - lo) / (hi - lo), 0.0), index, inside


def test_outputs_world_placement_labels_and_ed_es_frames(raw, out):
    datalist, entries = _entries(out)
    assert datalist["labels"] == {"0": "background", "1": "LV", "2": "Myo", "3": "RV"}
    for pid in [f"patient{i:03d}" for i in range(1, NUM + 1)]:
        folder = raw / "training" / pid
        info = _info(folder)
        ed, es = int(info["ED"]), int(info["ES"])  # 1-based frame numbers
        cine = nib.load(folder / f"{pid}_4d.nii.gz")
        frames = np.asanyarray(cine.dataobj).astype(float)
        gts = {
            p: np.asanyarray(nib.load(folder / f"{pid}_frame{t:02d}_gt.nii.gz").dataobj)
            for p, t in (("ED", ed), ("ES", es))
        }
        expected_slices = [z for z in range(SLICES) if gts["ED"][..., z].any() and gts["ES"][..., z].any()]
        mine = [e for e in entries if e["subject"] == pid]
        assert [e["slice"] for e in mine] == expected_slices and len(expected_slices) >= 2
        for e in mine:
            z = e["slice"]
            assert e["fixed_image"] == f"images/{pid}_slice{z:02d}_ED.nii.gz"
            for role, phase, frame in (("fixed", "ED", ed - 1), ("moving", "ES", es - 1)):
                image = nib.load(out / e[f"{role}_image"])
                label = nib.load(out / e[f"{role}_label"])
                assert image.shape == label.shape == (128, 128)
                assert image.get_data_dtype() == np.float32 and label.get_data_dtype() == np.uint8
                data = np.asanyarray(image.dataobj)
                assert data.min() == 0.0 and data.max() == 1.0
                np.testing.assert_allclose(label.affine, image.affine)
                np.testing.assert_allclose(image.header.get_zooms(), cine.header.get_zooms()[:2], rtol=1e-6)
                # the intensities are those of the 1-based frame number, i.e. volume frame - 1 ...
                expected, index, inside = _expected_from_source(
                    out / e[f"{role}_image"], frames[..., frame], cine.affine, z
                )
                np.testing.assert_allclose(data, expected, atol=1e-5)
                # ... and not those of the next volume
                wrong, _, _ = _expected_from_source(out / e[f"{role}_image"], frames[..., frame + 1], cine.affine, z)
                assert np.abs(data - wrong).max() > 0.1
                # labels: remapped ACDC ground truth at the same world positions, 0 in the padding
                src = ACDC_TO_OURS[gts[phase][np.clip(index[0], 0, SIZE[0] - 1), np.clip(index[1], 0, SIZE[1] - 1), z]]
                np.testing.assert_array_equal(np.asanyarray(label.dataobj), np.where(inside, src, 0))
            assert not inside.all()  # 64 x 72 images inside a 128 x 128 crop: padded


def test_lv_is_label_1_and_crop_is_centred(out):
    _, entries = _entries(out)
    for e in entries[:6]:
        image = np.asanyarray(nib.load(out / e["fixed_image"]).dataobj)
        label = np.asanyarray(nib.load(out / e["fixed_label"]).dataobj)
        assert set(np.unique(label)) <= {0, 1, 2, 3}
        assert image[label == 1].mean() > 2 * image[label == 2].mean()  # LV blood pool bright, myocardium dark
        assert np.count_nonzero(label == 1) > 0 and np.count_nonzero(label == 2) > 0
        ring = ndimage.binary_fill_holes(label == 2)
        assert np.all(ring[label == 1]) and not np.any(ring[label == 3])  # LV inside the myocardium, RV outside
    # centred on the heart: the ED foreground centroid of the basal slice lies near the middle
    basal = [e for e in entries if e["slice"] == 0]
    for e in basal:
        centroid = np.argwhere(np.asanyarray(nib.load(out / e["fixed_label"]).dataobj) > 0).mean(axis=0)
        assert np.all(np.abs(centroid - 64) < 8)


def test_patient_level_split(out):
    datalist, _ = _entries(out)
    groups = {k: {e["subject"] for e in datalist[k]} for k in SPLITS}
    assert [len(groups[k]) for k in SPLITS] == [3, 1, 1]  # 75/5/20 of 5 patients, none empty
    assert set.union(*groups.values()) == {f"patient{i:03d}" for i in range(1, NUM + 1)}
    assert sum(len(g) for g in groups.values()) == NUM  # no patient in two splits
    records = {r["subject"]: r for r in datalist["subjects"]}
    for k in SPLITS:
        assert all(records[s]["split"] == k for s in groups[k])
        assert datalist[f"num_{k}"] == len(datalist[k])
    assert records["patient001"]["ed_frame"] == int(records["patient001"]["info_cfg"]["ED"]) - 1


def test_seeded_reproducible(raw, out, tmp_path):
    again = prepare_acdc(raw, tmp_path / "again")
    assert again.read_text() == (out / "datalist.json").read_text()
    name = _entries(out)[1][0]["moving_image"]
    np.testing.assert_array_equal(nib.load(out / name).get_fdata(), nib.load(tmp_path / "again" / name).get_fdata())
    other = json.loads(prepare_acdc(raw, tmp_path / "seed7", seed=7, split="0.6,0.2,0.2").read_text())
    assert [len({e["subject"] for e in other[k]}) for k in SPLITS] == [3, 1, 1]
    assert other["split_fractions"] == [0.6, 0.2, 0.2] and other["seed"] == 7


def _clone_patient(src: Path, dst: Path, new_id: str) -> None:
    dst.mkdir(parents=True)
    for path in src.iterdir():
        shutil.copy(path, dst / path.name.replace(src.name, new_id))


def test_root_layouts(raw, tmp_path, caplog):
    # ROOT pointing at the folder of patient folders
    direct = json.loads(prepare_acdc(raw / "training", tmp_path / "a").read_text())
    assert len(direct["subjects"]) == NUM
    # newer release: ROOT/database/{training,testing}; old testing release without ground truth is skipped
    root = tmp_path / "acdc"
    shutil.copytree(raw / "training", root / "database" / "training")
    _clone_patient(raw / "training" / "patient001", root / "database" / "testing" / "patient101", "patient101")
    _clone_patient(raw / "training" / "patient002", root / "database" / "testing" / "patient102", "patient102")
    for gt in (root / "database" / "testing" / "patient102").glob("*_gt.nii.gz"):
        gt.unlink()
    with caplog.at_level(logging.INFO):
        data = json.loads(prepare_acdc(root, tmp_path / "b").read_text())
    assert [r["subject"] for r in data["subjects"]] == [f"patient{i:03d}" for i in range(1, NUM + 1)] + ["patient101"]
    assert "patient102" in caplog.text and "skipped" in caplog.text
    assert data["subjects"][-1]["source"]["fixed_image"].startswith("database/testing/patient101/")
    with pytest.raises(FileNotFoundError, match="no patientNNN folders"):
        prepare_acdc(tmp_path / "b", tmp_path / "c")


# ------------------------------------------------------------------------------------------
# bad input: each error names the file; nothing is left in the output folder
# ------------------------------------------------------------------------------------------


def _frame_path(folder, which, gt=False):
    number = int(_info(folder)[which])
    return folder / f"{folder.name}_frame{number:02d}{'_gt' if gt else ''}.nii.gz"


def _drop_ed_line(folder):
    cfg = folder / "Info.cfg"
    cfg.write_text("\n".join(line for line in cfg.read_text().splitlines() if not line.startswith("ED")))
    return cfg


def _nan(folder):
    path = _frame_path(folder, "ED")
    rewrite_nifti(path, lambda a: np.where(np.arange(a.size).reshape(a.shape) == 7, np.nan, a.astype(np.float32)))
    return path


def _bad_label(folder):
    path = _frame_path(folder, "ES", gt=True)
    rewrite_nifti(path, lambda a: np.where(a == 2, 5, a).astype(np.uint8))
    return path


def _size_mismatch(folder):
    for gt in (False, True):
        rewrite_nifti(_frame_path(folder, "ES", gt), lambda a: a[:-4])
    return _frame_path(folder, "ES")


BAD_INPUTS = {
    "missing Info.cfg": (FileNotFoundError, lambda f: remove_file(f / "Info.cfg"), r"Info.cfg not found"),
    "Info.cfg without ED": (ValueError, _drop_ed_line, r"no 'ED:' line"),
    "missing frame file": (FileNotFoundError, lambda f: remove_file(_frame_path(f, "ES")), r"file not found"),
    "frame without labels": (
        ValueError,
        lambda f: (rewrite_nifti(_frame_path(f, "ED", True), np.zeros_like), _frame_path(f, "ED", True))[1],
        r"no labelled voxels",
    ),
    "4-D frame": (
        ValueError,
        lambda f: (rewrite_nifti(_frame_path(f, "ED"), lambda a: np.stack([a, a], -1)), _frame_path(f, "ED"))[1],
        r"expected a 3-D \(X, Y, Z\) volume",
    ),
    "NaN image": (ValueError, _nan, r"image contains NaN"),
    "label outside set": (ValueError, _bad_label, r"label values \[5\] outside the expected set"),
    "image/label shape": (
        ValueError,
        lambda f: (rewrite_nifti(_frame_path(f, "ED", True), lambda a: a[:, :-2]), _frame_path(f, "ED", True))[1],
        r"image/label shape mismatch",
    ),
    "ED/ES sizes": (ValueError, _size_mismatch, r"ED/ES size mismatch"),
    "unreadable file": (
        ValueError,
        lambda f: (_frame_path(f, "ES", True).write_bytes(b"garbage"), _frame_path(f, "ES", True))[1],
        r"cannot read",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_reported_with_the_file_name(raw, tmp_path, case):
    error, mutate, message = BAD_INPUTS[case]
    root = tmp_path / "raw"
    shutil.copytree(raw, root)
    culprit = mutate(root / "training" / "patient003")
    with pytest.raises(error, match=message) as info:
        prepare_acdc(root, tmp_path / "out")
    assert str(culprit) in str(info.value)
    assert not (tmp_path / "out").exists()  # patients 1-2 were processed, but nothing is left behind


def test_failed_rerun_keeps_earlier_outputs(raw, tmp_path):
    root = tmp_path / "raw"
    shutil.copytree(raw, root)
    out = tmp_path / "out"
    prepare_acdc(root, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    _frame_path(root / "training" / "patient004", "ED").unlink()
    rewrite_nifti(_frame_path(root / "training" / "patient001", "ED"), lambda a: a // 2)  # processed before the error
    with pytest.raises(FileNotFoundError):
        prepare_acdc(root, out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_constant_slice_is_skipped(raw, tmp_path, caplog):
    root = tmp_path / "raw"
    shutil.copytree(raw, root)
    path = _frame_path(root / "training" / "patient002", "ES")

    def flatten(a):
        a = a.copy()
        a[..., 1] = 17
        return a

    rewrite_nifti(path, flatten)
    with caplog.at_level(logging.WARNING):
        datalist, entries = _entries(prepare_acdc(root, tmp_path / "out").parent)
    assert f"{path}: slice 1 is constant" in caplog.text
    assert [e["slice"] for e in entries if e["subject"] == "patient002"] == [0, 2]


@pytest.mark.slow  # two `python -m data_prep` subprocesses
def test_command_line(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    run_module(
        "data_prep", "synthetic", "acdc", *cli(out=raw, num_subjects=4, size="48,40", slices=3, frames=6, seed=2)
    )
    assert (raw / "training" / "patient004" / "Info.cfg").is_file()
    result = run_module("data_prep", "acdc", *cli(root=raw, out=out, crop_size=64, split="0.5,0.25,0.25", seed=1))
    assert result.stdout.strip() == str(out / "datalist.json")
    assert "patient004: 2 slice pairs" in result.stderr
    datalist = json.loads((out / "datalist.json").read_text())
    assert datalist["crop_size"] == 64 and datalist["split_fractions"] == [0.5, 0.25, 0.25]
    assert [len({e["subject"] for e in datalist[k]}) for k in SPLITS] == [2, 1, 1]
    assert nib.load(out / datalist["training"][0]["fixed_image"]).shape == (64, 64)
