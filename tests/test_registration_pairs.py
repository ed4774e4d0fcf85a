"""Registration pairs from lists of single labelled images (MONAI Label's training lists)."""

from __future__ import annotations

import pytest

from monai_ext.data import PairCacheDataset, PairDataset, registration_pairs, series_and_phase


def _entries(*names: str) -> list[dict]:
    return [{"image": f"/store/{n}.nii.gz", "label": f"/store/labels/final/{n}.nii.gz"} for n in names]


@pytest.mark.parametrize(
    "path,expected",
    [
        ("/d/patient001_slice00_ED.nii.gz", ("patient001_slice00", "ED")),
        ("patient001_slice00_es.nii", ("patient001_slice00", "ES")),
        ("/d/patient012_frame07.nii.gz", ("patient012", "frame07")),
        ("A0S9V9_ED_slice03.nii.gz", ("A0S9V9_slice03", "ED")),
        ("OASIS_0007_0000.nii.gz", ("OASIS_0007_0000", "")),
    ],
)
def test_series_and_phase_from_file_names(path, expected):
    assert series_and_phase(path) == expected


def test_within_subject_pairs_register_es_onto_ed_and_leave_single_frames_out(caplog):
    data = _entries("p1_slice00_ES", "p1_slice00_ED", "p2_slice00_ED", "p3_frame01", "p3_frame09", "p3_frame12")
    pairs = registration_pairs(data, "within_subject")
    assert [(p["fixed_image"][7:-7], p["moving_image"][7:-7]) for p in pairs] == [
        ("p1_slice00_ED", "p1_slice00_ES"),
        ("p3_frame01", "p3_frame09"),
        ("p3_frame01", "p3_frame12"),
    ]
    assert pairs[0]["fixed_label"] == "/store/labels/final/p1_slice00_ED.nii.gz"
    assert pairs[0]["moving_label"] == "/store/labels/final/p1_slice00_ES.nii.gz"
    assert "p2_slice00" in caplog.text


def test_inter_subject_pairs_are_consecutive_and_datalist_pairs_pass_unchanged():
    pairs = registration_pairs(_entries("s1", "s2", "s3"), "inter_subject")
    assert [(p["fixed_image"][7:9], p["moving_image"][7:9]) for p in pairs] == [("s1", "s2"), ("s2", "s3")]
    datalist = [{"fixed_image": "a", "moving_image": "b", "subject": "x"}]
    assert registration_pairs(datalist, "within_subject") == datalist
    unlabelled = registration_pairs([{"image": "a"}, {"image": "b"}])
    assert unlabelled == [{"fixed_image": "a", "moving_image": "b"}]


def test_no_pair_and_bad_entries_are_clear_errors():
    with pytest.raises(ValueError, match="two labelled frames of one series"):
        registration_pairs(_entries("p1_slice00_ED", "p2_slice00_ES"), "within_subject")
    with pytest.raises(ValueError, match="two images"):
        registration_pairs(_entries("s1"), "inter_subject")
    with pytest.raises(ValueError, match="entry 1 has no 'image'"):
        registration_pairs([{"image": "a"}, {"label": "b"}])
    with pytest.raises(ValueError, match="pairing must be one of"):
        registration_pairs(_entries("s1", "s2"), "random")


def test_pair_datasets_pair_before_loading():
    data = _entries("p1_ED", "p1_ES")
    assert PairDataset(data, pairing="within_subject")[0]["moving_image"] == "/store/p1_ES.nii.gz"
    cached = PairCacheDataset(data, pairing="within_subject", cache_rate=1.0, progress=False)
    assert len(cached) == 1 and cached[0]["fixed_label"] == "/store/labels/final/p1_ED.nii.gz"


def test_datalist_info_describes_images_when_there_is_no_datalist(tmp_path):
    import nibabel as nib
    import numpy as np

    from monai_ext.data import datalist_info

    entries = []
    for i, (values, top) in enumerate((([0, 3, 7], 2.0), ([0, 7, 9], 5.0))):
        image, label = tmp_path / f"s{i}.nii.gz", tmp_path / f"s{i}_label.nii.gz"
        nib.save(nib.Nifti1Image(np.linspace(-1.0, top, 24, dtype=np.float32).reshape(2, 3, 4), np.eye(4)), image)
        nib.save(nib.Nifti1Image(np.resize(np.asarray(values, np.uint8), (2, 3, 4)), np.eye(4)), label)
        entries.append({"image": str(image), "label": str(label)})
    info = datalist_info(tmp_path / "missing.json", entries)
    assert info["evaluation"]["dice_labels"] == [3, 7, 9] and info["labels"] == {}
    assert info["intensity"]["a_min"] == -1.0 and info["intensity"]["a_max"] == 5.0
    (tmp_path / "datalist.json").write_text('{"labels": {"1": "x"}}')
    assert datalist_info(tmp_path / "datalist.json", entries) == {"labels": {"1": "x"}}
    with pytest.raises(ValueError, match="no such datalist"):
        datalist_info(tmp_path / "missing.json", [])
    # the official label set of an evaluation, when the datalist records one
    from monai_ext.data import evaluation_labels

    (tmp_path / "lumir.json").write_text('{"evaluation": {"dice_labels": [0, 4, 11]}}')
    assert evaluation_labels(tmp_path / "lumir.json") == [0, 4, 11]
    assert (
        evaluation_labels(tmp_path / "datalist.json") is None and evaluation_labels(tmp_path / "missing.json") is None
    )
