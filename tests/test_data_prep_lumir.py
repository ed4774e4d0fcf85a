"""LUMIR reader on a synthetic LUMIR in the distributed layout: pair order (fixed = i+1, moving = i),
random inter-subject training pairs, intensity scaling recorded, annotations, errors naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from data_prep.__main__ import synthetic as synthetic_command
from data_prep.brain_datalist import random_pairs, subject_number
from data_prep.lumir import LUMIR_DICE_LABELS, LUMIR_JSON, prepare_lumir
from data_prep.synthetic_brain import LANDMARKS, make_synthetic_lumir

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
NUM_TRAIN, NUM_VAL, SIZE = 6, 6, (24, 28, 26)


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_synthetic_lumir(
        tmp_path_factory.mktemp("lumir_raw"), num_train=NUM_TRAIN, num_val=NUM_VAL, size=SIZE, seed=3
    )


@pytest.fixture(scope="module")
def datalist(raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("lumir_out")
    path = prepare_lumir(raw, out)
    return out, json.loads(path.read_text())


def _resolve(out, relative):
    return (Path(out) / relative).resolve()


def test_stand_in_has_the_lumir_layout(raw):
    data = json.loads((raw / LUMIR_JSON).read_text())
    assert {"name", "training", "validation"} <= set(data)
    assert [e["image"] for e in data["training"]] == [f"./imagesTr/LUMIRMRI_{i:04d}_0000.nii.gz" for i in range(6)]
    # two groups of validation images (Dice group, landmark group), consecutive pairs fixed = i+1, moving = i
    assert [(subject_number(p["fixed"]), subject_number(p["moving"])) for p in data["validation"]] == [
        (7, 6),
        (8, 7),
        (10, 9),
        (11, 10),
    ]
    image = nib.load(raw / "imagesVal" / "LUMIRMRI_0006_0000.nii.gz")
    assert image.shape == SIZE and image.get_data_dtype() == np.uint8
    assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
    np.testing.assert_allclose(image.header.get_zooms(), (1.0, 1.0, 1.0))
    values = np.asanyarray(image.dataobj)
    assert values.min() == 0 and 150 < values.max() <= 255
    assert sorted(p.name for p in (raw / "labelsVal").iterdir()) == [f"LUMIRMRI_{i:04d}_0000.nii.gz" for i in (6, 7, 8)]
    assert sorted(p.name for p in (raw / "landmarksVal").iterdir()) == [
        f"LUMIRMRI_{i:04d}_0000.nii.gz" for i in (9, 10, 11)
    ]
    labels = np.asanyarray(nib.load(raw / "labelsVal" / "LUMIRMRI_0006_0000.nii.gz").dataobj)
    assert set(np.unique(labels)) <= set(LUMIR_DICE_LABELS) and len(np.unique(labels)) > 20
    landmarks = np.asanyarray(nib.load(raw / "landmarksVal" / "LUMIRMRI_0009_0000.nii.gz").dataobj)
    assert sorted(np.unique(landmarks)) == list(range(len(LANDMARKS) + 1))


def test_validation_pairs_are_kept_as_listed(raw, datalist):
    out, data = datalist
    listed = json.loads((raw / LUMIR_JSON).read_text())["validation"]
    assert len(data["validation"]) == len(listed) == 4
    for entry, pair in zip(data["validation"], listed):
        assert _resolve(out, entry["fixed_image"]) == (raw / pair["fixed"]).resolve()
        assert _resolve(out, entry["moving_image"]) == (raw / pair["moving"]).resolve()
        assert subject_number(entry["fixed_image"]) == subject_number(entry["moving_image"]) + 1  # fixed = i+1
    assert [e["fixed_subject"] for e in data["validation"]] == [
        "LUMIRMRI_0007",
        "LUMIRMRI_0008",
        "LUMIRMRI_0010",
        "LUMIRMRI_0011",
    ]
    # labels for the first group, landmarks for the second, found as the official evaluation finds them
    assert [(e["fixed_subject"], e["moving_subject"]) for e in data["validation_labelled"]] == [
        ("LUMIRMRI_0007", "LUMIRMRI_0006"),
        ("LUMIRMRI_0008", "LUMIRMRI_0007"),
    ]
    assert (
        _resolve(out, data["validation_labelled"][0]["fixed_label"])
        == (raw / "labelsVal" / "LUMIRMRI_0007_0000.nii.gz").resolve()
    )
    assert [e["moving_landmarks"].split("/")[-2:] for e in data["validation_landmarks"]] == [
        ["landmarksVal", "LUMIRMRI_0009_0000.nii.gz"],
        ["landmarksVal", "LUMIRMRI_0010_0000.nii.gz"],
    ]
    assert data["testing"] == [] and data["testing_labelled"] == []


def test_training_pairs_are_inter_subject_and_exclude_validation(raw, datalist):
    out, data = datalist
    training_files = {(raw / "imagesTr" / f"LUMIRMRI_{i:04d}_0000.nii.gz").resolve() for i in range(NUM_TRAIN)}
    assert {_resolve(out, e["image"]) for e in data["training_images"]} == training_files
    pairs = [(e["fixed_image"], e["moving_image"]) for e in data["training"]]
    assert len(pairs) == NUM_TRAIN == data["num_training"]  # default: as many pairs as images
    assert len(set(pairs)) == len(pairs) and all(f != m for f, m in pairs)
    used = {_resolve(out, p) for pair in pairs for p in pair}
    assert used <= training_files
    validation = {_resolve(out, e[k]) for e in data["validation"] for k in ("fixed_image", "moving_image")}
    assert not validation & used and not validation & training_files


def test_seeded_reproducible(raw, datalist, tmp_path):
    out, data = datalist
    again = prepare_lumir(raw, tmp_path / "again", check_data=False)
    same = json.loads(again.read_text())
    assert [(e["fixed_subject"], e["moving_subject"]) for e in same["training"]] == [
        (e["fixed_subject"], e["moving_subject"]) for e in data["training"]
    ]
    other = json.loads(prepare_lumir(raw, tmp_path / "other", seed=1, num_pairs=30).read_text())
    assert len(other["training"]) == 30 == NUM_TRAIN * (NUM_TRAIN - 1)  # every ordered pair once
    assert len({(e["fixed_subject"], e["moving_subject"]) for e in other["training"]}) == 30
    with pytest.raises(ValueError, match="cannot draw 31 distinct ordered pairs from 6 images"):
        prepare_lumir(raw, tmp_path / "too_many", num_pairs=31)
    assert not (tmp_path / "too_many").exists()


def test_random_pairs():
    pairs = random_pairs(4, 12, seed=0)
    assert sorted(pairs) == [(f, m) for f in range(4) for m in range(4) if f != m]
    assert random_pairs(50, 7, seed=5) == random_pairs(50, 7, seed=5) != random_pairs(50, 7, seed=6)
    assert random_pairs(3, 0) == []


def test_geometry_intensity_and_evaluation_recorded(datalist):
    _, data = datalist
    assert data["spatial_shape"] == list(SIZE) and data["spacing"] == [1.0, 1.0, 1.0]
    intensity = data["intensity"]
    assert (intensity["a_min"], intensity["a_max"], intensity["b_min"], intensity["b_max"]) == (0.0, 255.0, 0.0, 1.0)
    assert intensity["clip"] and intensity["observed_min"] == 0.0 and intensity["observed_max"] <= 255.0
    evaluation = data["evaluation"]
    assert len(evaluation["dice_labels"]) == 133 and evaluation["dice_labels"][0] == 0  # background counted
    assert evaluation["background_counted"] is True


def test_monai_loads_the_datalist(datalist):
    from monai.data import load_decathlon_datalist
    from monai.transforms import Compose, LoadImaged, ScaleIntensityRanged

    out, data = datalist
    keys = ["fixed_image", "moving_image"]
    scale = {k: data["intensity"][k] for k in ("a_min", "a_max", "b_min", "b_max", "clip")}
    load = Compose([LoadImaged(keys=keys, ensure_channel_first=True), ScaleIntensityRanged(keys=keys, **scale)])
    entry = load(load_decathlon_datalist(out / "datalist.json", data_list_key="training", base_dir=out)[0])
    assert tuple(entry["fixed_image"].shape) == (1, *SIZE)
    assert float(entry["fixed_image"].min()) == 0.0 and 0.5 < float(entry["fixed_image"].max()) <= 1.0
    labelled = load_decathlon_datalist(out / "datalist.json", data_list_key="validation_landmarks", base_dir=out)[0]
    marks = LoadImaged(keys=["fixed_landmarks", "moving_landmarks"])(labelled)
    for key in ("fixed_landmarks", "moving_landmarks"):
        assert sorted(np.unique(np.asarray(marks[key])).tolist()) == list(range(len(LANDMARKS) + 1))


# ------------------------------------------------------------------------------------------
# bad input: each error names the file; nothing is written
# ------------------------------------------------------------------------------------------


BAD_INPUTS = {
    **dataset_json_errors(LUMIR_JSON, "validation", ("training", 2, "image")),
    "not JSON": (ValueError, lambda r: ((r / LUMIR_JSON).write_text("{oops"), r / LUMIR_JSON)[1], "not a valid JSON"),
    "missing image file": (
        FileNotFoundError,
        lambda r: remove_file(r / "imagesTr" / "LUMIRMRI_0003_0000.nii.gz"),
        r"file not found \(listed in .* as 'training'\[3\].image\)",
    ),
    "missing validation image": (
        FileNotFoundError,
        lambda r: remove_file(r / "imagesVal" / "LUMIRMRI_0009_0000.nii.gz"),
        r"'validation'\[2\].moving",
    ),
    "4-D image": (
        ValueError,
        lambda r: rewrite_nifti(r / "imagesTr" / "LUMIRMRI_0002_0000.nii.gz", lambda a: np.stack([a, a], -1)),
        r"expected a 3-D \(X, Y, Z\) volume",
    ),
    "NaN image": (
        ValueError,
        lambda r: rewrite_nifti(r / "imagesVal" / "LUMIRMRI_0008_0000.nii.gz", with_nan),
        "image contains NaN",
    ),
    "intensity beyond 255": (
        ValueError,
        lambda r: rewrite_nifti(r / "imagesTr" / "LUMIRMRI_0001_0000.nii.gz", lambda a: a.astype(np.float32) * 2.0),
        r"outside LUMIR's \[0, 255\]",
    ),
    "image of another size": (
        ValueError,
        lambda r: rewrite_nifti(r / "imagesTr" / "LUMIRMRI_0004_0000.nii.gz", lambda a: a[:-2]),
        "differs from the other LUMIR images",
    ),
    "image/label shape": (
        ValueError,
        lambda r: rewrite_nifti(r / "labelsVal" / "LUMIRMRI_0007_0000.nii.gz", lambda a: a[:, :-1]),
        "image/label shape mismatch",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_reported_with_the_file_name(raw, tmp_path, case):
    assert_bad_input_is_named(prepare_lumir, raw, tmp_path, BAD_INPUTS[case], num_workers=2)


def test_failed_rerun_keeps_earlier_datalist(raw, tmp_path):
    root = tmp_path / "raw"
    shutil.copytree(raw, root)
    before = prepare_lumir(root, tmp_path / "out").read_bytes()
    (root / "imagesTr" / "LUMIRMRI_0000_0000.nii.gz").unlink()
    with pytest.raises(FileNotFoundError):
        prepare_lumir(root, tmp_path / "out", seed=9)
    assert (tmp_path / "out" / "datalist.json").read_bytes() == before
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["datalist.json"]


def test_command_line(tmp_path):
    # the synthetic command in process (its writer imports torch, slow to start in a subprocess) ...
    raw, out = tmp_path / "raw", tmp_path / "out"
    assert synthetic_command("lumir", str(raw), num_subjects=4, num_val=3, size=(20, 24, 22), seed=1) == str(raw)
    # ... and the converter's entry point as a user runs it
    result = run_module("data_prep", "lumir", *cli(root=raw, out=out, num_pairs=5, seed=2), "--absolute_paths")
    assert result.stdout.strip() == str(out / "datalist.json")
    data = json.loads((out / "datalist.json").read_text())
    assert len(data["training"]) == 5 and data["seed"] == 2 and data["spatial_shape"] == [20, 24, 22]
    assert len(data["validation"]) == 2 and len(data["validation_labelled"]) == 2  # one group below 4 images
    assert Path(data["training"][0]["fixed_image"]).is_absolute()


def test_command_line_flags_read_as_typed(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    synthetic_command("lumir", str(raw), num_subjects=4, num_val=3, size=(20, 24, 22), seed=1, annotations="false")
    assert not (raw / "labelsVal").exists()  # annotations "false" is false
    run_module("data_prep", "lumir", *cli(root=raw, out=out, absolute_paths="false", check_data="False"))
    data = json.loads((out / "datalist.json").read_text())
    assert not Path(data["training"][0]["fixed_image"]).is_absolute()
    assert "observed_min" not in data["intensity"]  # headers only: no intensity range was read
    result = run_module("data_prep", "lumir", *cli(root=raw, out=tmp_path / "x", check_data="maybe"), check=False)
    assert result.returncode != 0 and "check_data must be true or false" in result.stderr
