"""OASIS reader on synthetic Learn2Reg and neurite-OASIS stand-ins: pair order (fixed = i, moving = i+1),
validation subjects kept out of training, the 35-label set, brain-like stand-ins that registration can
align, and errors naming the file."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from data_prep.__main__ import synthetic as synthetic_command
from data_prep.brain_datalist import subject_number
from data_prep.oasis import (
    OASIS_JSON,
    OASIS_SEG4_LABELS,
    OASIS_SEG24_LABELS,
    OASIS_SEG35_LABELS,
    prepare_oasis,
    read_freesurfer_lut,
)
from data_prep.synthetic_brain import SEG35_TO_SEG24, brain_subject, make_synthetic_oasis
from monai_ext.spatial import warp_image, warp_label

from helpers import (
    assert_bad_input_is_named,
    cli,
    dataset_json_errors,
    remove_file,
    rewrite_nifti,
    run_module,
    with_nan,
)

REPO = Path(__file__).resolve().parents[1]
NUM, NUM_VAL, NUM_TEST = 8, 3, 2
L2R_SIZE = (24, 28, 26)  # RAS, as the Learn2Reg release
NEURITE_SIZE = (24, 26, 28)  # LIA, as neurite-OASIS (160 x 192 x 224)


@pytest.fixture(scope="module")
def l2r(tmp_path_factory):
    return make_synthetic_oasis(
        tmp_path_factory.mktemp("l2r_raw"), num_subjects=NUM, num_val=NUM_VAL, num_test=NUM_TEST, size=L2R_SIZE, seed=2
    )


@pytest.fixture(scope="module")
def neurite(tmp_path_factory):
    return make_synthetic_oasis(
        tmp_path_factory.mktemp("neurite_raw"), layout="neurite", num_subjects=NUM, size=NEURITE_SIZE, seed=2
    )


@pytest.fixture(scope="module")
def l2r_list(l2r, tmp_path_factory):
    out = tmp_path_factory.mktemp("l2r_out")
    return out, json.loads(prepare_oasis(l2r, out).read_text())


def _resolve(out, relative):
    return (Path(out) / relative).resolve()


def _load(path):
    return np.asanyarray(nib.load(path).dataobj)


def _dice(a, b, labels):
    scores = [
        2.0 * np.count_nonzero((a == k) & (b == k)) / (np.count_nonzero(a == k) + np.count_nonzero(b == k))
        for k in labels
        if (a == k).any() or (b == k).any()
    ]
    return float(np.mean(scores))


# ------------------------------------------------------------------------------------------
# stand-ins
# ------------------------------------------------------------------------------------------


def test_learn2reg_stand_in_layout(l2r):
    data = json.loads((l2r / OASIS_JSON).read_text())
    assert {"training", "registration_val", "registration_test", "test"} <= set(data)
    assert data["training"][0] == {
        "image": "./imagesTr/OASIS_0001_0000.nii.gz",
        "label": "./labelsTr/OASIS_0001_0000.nii.gz",
        "mask": "./masksTr/OASIS_0001_0000.nii.gz",
    }
    assert len(data["training"]) == NUM  # validation subjects stay listed under training, as in the release
    assert data["registration_val"] == [
        {"fixed": f"./imagesTr/OASIS_{i:04d}_0000.nii.gz", "moving": f"./imagesTr/OASIS_{i + 1:04d}_0000.nii.gz"}
        for i in (6, 7)
    ]
    image = nib.load(l2r / "imagesTr" / "OASIS_0001_0000.nii.gz")
    assert image.shape == L2R_SIZE and nib.aff2axcodes(image.affine) == ("R", "A", "S")
    np.testing.assert_allclose(image.header.get_zooms(), (1.0, 1.0, 1.0))
    values = np.asanyarray(image.dataobj)
    assert image.get_data_dtype() == np.float32 and values.min() == 0.0 and values.max() == pytest.approx(1.0)
    label, mask = _load(l2r / "labelsTr" / "OASIS_0001_0000.nii.gz"), _load(l2r / "masksTr" / "OASIS_0001_0000.nii.gz")
    assert set(np.unique(label)) <= set(range(36)) and len(np.unique(label)) >= 30
    assert set(np.unique(mask)) == {0, 1} and np.all(mask[label > 0] == 1) and np.all(values[mask == 0] == 0)
    # T1w contrast: white matter brighter than cortex, cortex brighter than the ventricles
    wm, cortex, ventricle = (values[np.isin(label, k)].mean() for k in ((1, 20), (2, 21), (3, 22)))
    assert wm > cortex > ventricle
    assert not (l2r / "labelsTs").exists() and len(list((l2r / "imagesTs").iterdir())) == NUM_TEST


def test_neurite_stand_in_layout(neurite):
    names = (neurite / "subjects.txt").read_text().split()
    assert names[:3] == ["OASIS_OAS1_0001_MR1", "OASIS_OAS1_0002_MR1", "OASIS_OAS1_0003_MR1"]
    assert "OASIS_OAS1_0007_MR1" not in names and len(names) == NUM  # numbers with gaps, as OASIS
    folder = neurite / names[0]
    norm = nib.load(folder / "aligned_norm.nii.gz")
    assert norm.shape == NEURITE_SIZE and nib.aff2axcodes(norm.affine) == ("L", "I", "A")
    seg35, seg4 = _load(folder / "aligned_seg35.nii.gz"), _load(folder / "aligned_seg4.nii.gz")
    assert set(np.unique(seg4)) == {0, 1, 2, 3, 4} and np.array_equal(seg4 > 0, seg35 > 0)
    # the 2-D slice is coronal slice 109 of 224 (array axis 2 of LIA runs posterior -> anterior)
    k = round(109 * (NEURITE_SIZE[2] - 1) / 223)
    np.testing.assert_array_equal(_load(folder / "slice_norm.nii.gz"), np.asanyarray(norm.dataobj)[:, :, k])
    lut = np.zeros(256, dtype=np.uint8)
    for src, dst in SEG35_TO_SEG24.items():
        lut[src] = dst
    np.testing.assert_array_equal(_load(folder / "slice_seg24.nii.gz"), lut[seg35[:, :, k]])
    assert read_freesurfer_lut(neurite / "seg35_labels.txt")["35"] == OASIS_SEG35_LABELS["35"]


def test_layouts_store_one_subject_in_their_own_orientation(l2r, neurite):
    """neurite-OASIS (LIA, 160 x 192 x 224) brought to RAS is the Learn2Reg array (RAS, 160 x 224 x 192)."""
    lia = nib.load(neurite / "OASIS_OAS1_0001_MR1" / "aligned_seg35.nii.gz")
    ras = nib.as_closest_canonical(lia)
    l2r_label = nib.load(l2r / "labelsTr" / "OASIS_0001_0000.nii.gz")  # same seed and subject index
    np.testing.assert_array_equal(np.asanyarray(ras.dataobj), np.asanyarray(l2r_label.dataobj))
    np.testing.assert_allclose(ras.affine, l2r_label.affine)
    # left-hemisphere labels lie at negative world x (towards the left) in both files
    for image in (lia, l2r_label):
        points = np.argwhere(np.asanyarray(image.dataobj) == 1)  # Left-Cerebral-White-Matter
        assert (nib.affines.apply_affine(image.affine, points)[:, 0] < 0).mean() > 0.95


def test_subjects_differ_smoothly_and_registration_can_align_them():
    """Inter-subject Dice is well below 1; pulling the moving labels back through the known
    template maps (phi_m^-1 o phi_f, inverted by fixed-point iteration) raises it."""
    shape = (64, 80, 72)  # fine enough for nearest-neighbour resampling of the small structures
    fixed, moving = brain_subject(shape, seed=0, index=1), brain_subject(shape, seed=0, index=2)
    structures, large = range(1, 36), (1, 2, 20, 21)  # all labels; cerebral white matter and cortex
    before = _dice(moving.label, fixed.label, structures)
    assert 0.3 < before < 0.7 and _dice(moving.label, fixed.label, large) < 0.85
    assert brain_subject(shape, seed=0, index=1).label.tobytes() == fixed.label.tobytes()  # per-subject seed
    # v(x) = phi_m^-1(phi_f(x)) - x with phi(x) = x + ddf(x):  y = x + ddf_f(x) - ddf_m(y)
    ddf_f, ddf_m = torch.from_numpy(fixed.ddf)[None].double(), torch.from_numpy(moving.ddf)[None].double()
    v = ddf_f.clone()
    for _ in range(8):
        v = ddf_f - warp_image(ddf_m, v)
    warped = warp_label(torch.from_numpy(moving.label)[None, None].float(), v.float())[0, 0].numpy()
    after = _dice(warped, fixed.label, structures)
    assert after > before + 0.2 and after > 0.75 and _dice(warped, fixed.label, large) > 0.9


def test_seeded_stand_ins(tmp_path):
    a = make_synthetic_oasis(tmp_path / "a", num_subjects=2, num_val=0, size=20, seed=5)
    b = make_synthetic_oasis(tmp_path / "b", num_subjects=2, num_val=0, size=20, seed=5)
    c = make_synthetic_oasis(tmp_path / "c", num_subjects=2, num_val=0, size=20, seed=6)
    name = "imagesTr/OASIS_0002_0000.nii.gz"
    np.testing.assert_array_equal(_load(a / name), _load(b / name))
    assert not np.array_equal(_load(a / name), _load(c / name))


# ------------------------------------------------------------------------------------------
# Learn2Reg layout
# ------------------------------------------------------------------------------------------


def test_learn2reg_pairs_and_splits(l2r, l2r_list):
    out, data = l2r_list
    # validation: registration_val as listed, fixed = i, moving = i+1
    assert [(e["fixed_subject"], e["moving_subject"]) for e in data["validation"]] == [
        ("OASIS_0006", "OASIS_0007"),
        ("OASIS_0007", "OASIS_0008"),
    ]
    for e in data["validation"]:
        assert subject_number(e["moving_image"]) == subject_number(e["fixed_image"]) + 1
        assert _resolve(out, e["fixed_label"]) == (l2r / "labelsTr" / f"{e['fixed_subject']}_0000.nii.gz").resolve()
        assert _resolve(out, e["moving_mask"]) == (l2r / "masksTr" / f"{e['moving_subject']}_0000.nii.gz").resolve()
    # training: the other five subjects only
    training = {f"OASIS_{i:04d}" for i in range(1, 6)}
    assert {e["subject"] for e in data["training_images"]} == training
    pairs = [(e["fixed_subject"], e["moving_subject"]) for e in data["training"]]
    assert len(pairs) == 5 and len(set(pairs)) == 5 and all(f != m for f, m in pairs)
    assert {s for p in pairs for s in p} <= training
    assert set(data["training"][0]) == {
        "fixed_image",
        "moving_image",
        "fixed_label",
        "moving_label",
        "fixed_mask",
        "moving_mask",
        "fixed_subject",
        "moving_subject",
    }
    # testing: registration_test (images only: the release has no test labels)
    assert [(e["fixed_subject"], e["moving_subject"]) for e in data["testing"]] == [("OASIS_0009", "OASIS_0010")]
    assert "fixed_label" not in data["testing"][0]


def test_label_set_geometry_and_evaluation(l2r, l2r_list):
    _, data = l2r_list
    assert data["labels"] == OASIS_SEG35_LABELS and len(data["labels"]) == 36
    assert data["labels"]["1"] == "Left-Cerebral-White-Matter" and data["labels"]["35"] == "Right-choroid-plexus"
    assert data["evaluation"]["dice_labels"] == list(range(1, 36)) and not data["evaluation"]["background_counted"]
    assert data["spatial_shape"] == list(L2R_SIZE) and data["spacing"] == [1.0, 1.0, 1.0]
    assert data["intensity"]["a_max"] == 1.0 and data["intensity"]["observed_max"] == pytest.approx(1.0)
    for e in data["training_images"]:
        assert set(np.unique(_load(_resolve(l2r_list[0], e["label"])))) <= set(range(36))


def test_held_out_test_subjects_and_seed(l2r, l2r_list, tmp_path):
    _, data = l2r_list
    held = json.loads(prepare_oasis(l2r, tmp_path / "held", num_test=2, seed=4, num_pairs=6).read_text())
    assert [(e["fixed_subject"], e["moving_subject"]) for e in held["testing"]] == [("OASIS_0004", "OASIS_0005")]
    assert "fixed_label" in held["testing"][0]
    assert {e["subject"] for e in held["training_images"]} == {"OASIS_0001", "OASIS_0002", "OASIS_0003"}
    assert len(held["training"]) == 6  # all ordered pairs of three subjects

    def pairs(datalist):
        return [(e["fixed_subject"], e["moving_subject"]) for e in datalist["training"]]

    again = json.loads(prepare_oasis(l2r, tmp_path / "again", check_data=False).read_text())
    assert pairs(again) == pairs(data)
    assert pairs(json.loads(prepare_oasis(l2r, tmp_path / "other", seed=1).read_text())) != pairs(data)


def test_missing_test_images_leave_testing_empty(l2r, tmp_path, caplog):
    root = tmp_path / "raw"
    shutil.copytree(l2r, root)
    shutil.rmtree(root / "imagesTs")
    with caplog.at_level(logging.WARNING):
        data = json.loads(prepare_oasis(root, tmp_path / "out").read_text())
    assert data["testing"] == [] and "not in the public release" in caplog.text


def test_monai_loads_the_datalist(l2r_list):
    from monai.data import load_decathlon_datalist
    from monai.transforms import LoadImaged

    out, _ = l2r_list
    keys = ["fixed_image", "moving_image", "fixed_label", "moving_label", "fixed_mask", "moving_mask"]
    entry = LoadImaged(keys=keys, ensure_channel_first=True)(
        load_decathlon_datalist(out / "datalist.json", data_list_key="validation", base_dir=out)[0]
    )
    assert all(tuple(entry[k].shape) == (1, *L2R_SIZE) for k in keys)


# ------------------------------------------------------------------------------------------
# neurite-OASIS layout
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant, names, ndim",
    [("seg35", OASIS_SEG35_LABELS, 3), ("seg4", OASIS_SEG4_LABELS, 3), ("seg24", OASIS_SEG24_LABELS, 2)],
)
def test_neurite_variants_and_splits(neurite, tmp_path, variant, names, ndim):
    out = tmp_path / "out"
    data = json.loads(prepare_oasis(neurite, out, variant=variant, num_val=3, num_test=2).read_text())
    subjects = (neurite / "subjects.txt").read_text().split()
    assert data["source"]["layout"] == "neurite" and data["labels"] == names
    assert data["tensorImageSize"] == f"{ndim}D" and len(data["spatial_shape"]) == ndim
    # validation: the last three subjects of subjects.txt, fixed = i, moving = i+1; testing: the two before
    assert [(e["fixed_subject"], e["moving_subject"]) for e in data["validation"]] == [
        (subjects[5], subjects[6]),
        (subjects[6], subjects[7]),
    ]
    assert [(e["fixed_subject"], e["moving_subject"]) for e in data["testing"]] == [(subjects[3], subjects[4])]
    assert {e["subject"] for e in data["training_images"]} == set(subjects[:3])
    file = {"seg35": "aligned_seg35", "seg4": "aligned_seg4", "seg24": "slice_seg24"}[variant]
    assert data["validation"][0]["fixed_label"].endswith(f"{subjects[5]}/{file}.nii.gz")
    assert "fixed_mask" not in data["validation"][0]
    assert data["evaluation"]["dice_labels"] == list(range(1, len(names)))


# ------------------------------------------------------------------------------------------
# bad input: each error names the file; nothing is written
# ------------------------------------------------------------------------------------------


IMG, LAB, MSK = "imagesTr/OASIS_0003_0000.nii.gz", "labelsTr/OASIS_0003_0000.nii.gz", "masksTr/OASIS_0003_0000.nii.gz"
BAD_INPUTS = {
    **dataset_json_errors(OASIS_JSON, "registration_val", ("registration_val", 1, "moving")),
    "missing label file": (FileNotFoundError, lambda r: remove_file(r / LAB), r"'training'\[2\].label"),
    "missing image file": (FileNotFoundError, lambda r: remove_file(r / IMG), r"'training'\[2\].image"),
    "2-D image": (
        ValueError,
        lambda r: rewrite_nifti(r / IMG, lambda a: a[:, :, 5]),
        r"expected a 3-D \(X, Y, Z\) volume",
    ),
    "NaN image": (ValueError, lambda r: rewrite_nifti(r / IMG, with_nan), "image contains NaN"),
    "label outside 0..35": (
        ValueError,
        lambda r: rewrite_nifti(r / LAB, lambda a: np.where(a == 13, 40, a)),
        r"label values \[40\] outside the expected set \{0, \.\.\., 35\}",
    ),
    "non-integer label": (
        ValueError,
        lambda r: rewrite_nifti(r / LAB, lambda a: a.astype(np.float32) * 0.5),
        "non-integer values",
    ),
    "empty label": (ValueError, lambda r: rewrite_nifti(r / LAB, np.zeros_like), "no structure"),
    "image/label shape": (
        ValueError,
        lambda r: rewrite_nifti(r / LAB, lambda a: a[:, :-1]),
        "image/label shape mismatch",
    ),
    "mask not binary": (ValueError, lambda r: rewrite_nifti(r / MSK, lambda a: a * 2), r"mask values \[2\]"),
    "image of another size": (
        ValueError,
        lambda r: (
            rewrite_nifti(r / LAB, lambda a: a[:-2]),
            rewrite_nifti(r / MSK, lambda a: a[:-2]),
            rewrite_nifti(r / IMG, lambda a: a[:-2]),
        )[2],
        "differs from the other OASIS images",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_learn2reg_input_is_reported_with_the_file_name(l2r, tmp_path, case):
    assert_bad_input_is_named(prepare_oasis, l2r, tmp_path, BAD_INPUTS[case], layout="learn2reg", num_workers=2)


def test_bad_neurite_input(neurite, tmp_path):
    root = tmp_path / "raw"
    shutil.copytree(neurite, root)
    with pytest.raises(FileNotFoundError, match="neither OASIS_dataset.json .* nor subjects.txt"):
        prepare_oasis(tmp_path, tmp_path / "out")  # a folder holding neither layout
    first = root / "OASIS_OAS1_0002_MR1" / "aligned_seg35.nii.gz"
    first.unlink()
    with pytest.raises(FileNotFoundError, match="file not found") as info:
        prepare_oasis(root, tmp_path / "out", num_val=3)
    assert str(first) in str(info.value)
    (root / "subjects.txt").write_text("OASIS_OAS1_0001_MR1\nOASIS_OAS1_0099_MR1\n")
    with pytest.raises(FileNotFoundError, match="OASIS_OAS1_0099_MR1: subject folder not found"):
        prepare_oasis(root, tmp_path / "out", num_val=0)
    (root / "subjects.txt").write_text("OASIS_OAS1_0001_MR1\nnot a subject\n")
    with pytest.raises(ValueError, match="line 2 is not a subject"):
        prepare_oasis(root, tmp_path / "out")
    with pytest.raises(ValueError, match="variant must be one of"):
        prepare_oasis(neurite, tmp_path / "out", variant="seg36")
    with pytest.raises(ValueError, match="cannot hold 20 validation"):
        prepare_oasis(neurite, tmp_path / "out")  # default num_val=20 > 8 subjects
    assert not (tmp_path / "out").exists()


def test_command_line(neurite, tmp_path):
    # the synthetic command's OASIS dispatch, in process (the subprocess below covers the entry point)
    made = synthetic_command("oasis", str(tmp_path / "made"), num_subjects=4, num_val=2, size="20,22,24")
    assert json.loads((Path(made) / OASIS_JSON).read_text())["registration_val"] == [
        {"fixed": "./imagesTr/OASIS_0003_0000.nii.gz", "moving": "./imagesTr/OASIS_0004_0000.nii.gz"}
    ]
    assert nib.load(Path(made) / "imagesTr" / "OASIS_0001_0000.nii.gz").shape == (20, 22, 24)
    out = tmp_path / "out"
    result = run_module(
        "data_prep", "oasis", *cli(root=neurite, out=out, variant="seg24", num_val=2, num_pairs=4, seed=3)
    )
    assert result.stdout.strip() == str(out / "datalist.json")
    data = json.loads((out / "datalist.json").read_text())
    assert data["source"]["variant"] == "seg24" and len(data["training"]) == 4 and len(data["validation"]) == 1
    assert data["spatial_shape"] == [NEURITE_SIZE[0], NEURITE_SIZE[1]]
