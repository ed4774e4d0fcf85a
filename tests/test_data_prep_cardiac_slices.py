"""Shared cardiac slice preparation: crop, normalisation, slice affine, split, checks, atomic output."""

from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pytest

from data_prep.cardiac_slices import (
    ACDC_TO_CARDIAC,
    PhasePair,
    check_image,
    check_label,
    convert_phase_pairs,
    crop_pad_2d,
    crop_start,
    extract_slice_pairs,
    load_volume,
    normalise_min_max,
    parse_split,
    remap_labels,
    slice_affine,
    split_counts,
    split_subjects,
)


def test_crop_pad_2d_keeps_offset_and_pads_with_zeros():
    image = np.arange(1, 21, dtype=float).reshape(4, 5)  # image[x, y] = 5 x + y + 1
    crop, inside = crop_pad_2d(image, (-1, 2), 4)
    expected = np.array([[0, 0, 0, 0], [3, 4, 5, 0], [8, 9, 10, 0], [13, 14, 15, 0]], dtype=float)
    np.testing.assert_array_equal(crop, expected)
    np.testing.assert_array_equal(inside, expected > 0)
    crop, inside = crop_pad_2d(image, (10, 10), 3)
    assert not crop.any() and not inside.any()


def test_normalise_min_max():
    image = np.array([[2.0, 4.0], [6.0, 100.0]])
    inside = np.array([[True, True], [True, False]])
    np.testing.assert_allclose(normalise_min_max(image, inside), [[0.0, 0.5], [1.0, 0.0]])
    np.testing.assert_allclose(normalise_min_max(image), [[0.0, 2 / 98], [4 / 98, 1.0]], rtol=1e-6)
    assert normalise_min_max(np.full((3, 3), 7.0)) is None
    assert normalise_min_max(image, np.array([[True, False], [False, False]])) is None


def test_crop_start_centres_on_ed_centroid():
    label = np.zeros((20, 30, 3), dtype=np.uint8)
    label[4:7, 10:13, 0] = 1  # centroid (5, 11)
    label[4:7, 14:17, 2] = 2  # centroid (5, 15) -> whole volume (5, 13)
    assert crop_start(label, 8) == (5 - 4, 13 - 4)


def test_slice_affine_maps_output_voxels_onto_source_voxels():
    rng = np.random.default_rng(0)
    affine = np.eye(4)
    affine[:3, :3] = np.linalg.qr(rng.standard_normal((3, 3)))[0] @ np.diag([1.4, 1.6, 8.0])
    affine[:3, 3] = [10.0, -20.0, 30.0]
    out = slice_affine(affine, (-3, 7), 2)
    for i, j in [(0, 0), (5, 1), (3, 9)]:
        np.testing.assert_allclose(out @ [i, j, 0, 1], affine @ [i - 3, j + 7, 2, 1])
    np.testing.assert_allclose(np.linalg.norm(out[:3, :2], axis=0), [1.4, 1.6])


def test_split_counts_and_patient_level_split():
    assert split_counts(100, (0.75, 0.05, 0.2)) == (75, 5, 20)
    assert split_counts(10, (0.75, 0.05, 0.2)) == (7, 1, 2)
    assert split_counts(5, (0.75, 0.05, 0.2)) == (3, 1, 1)  # validation never empty
    assert split_counts(1, (0.75, 0.05, 0.2)) == (1, 0, 0)
    assert split_counts(10, (1, 0, 0)) == (10, 0, 0)
    assert parse_split("75,5,20") == pytest.approx((0.75, 0.05, 0.2))
    names = [f"patient{i:03d}" for i in range(1, 101)]
    split = split_subjects(names, (0.75, 0.05, 0.2), seed=0)
    assert [len(split[k]) for k in ("training", "validation", "testing")] == [75, 5, 20]
    assert sorted(sum(split.values(), [])) == names
    assert split == split_subjects(list(reversed(names)), "0.75,0.05,0.2", seed=0)  # order-independent
    assert split != split_subjects(names, (0.75, 0.05, 0.2), seed=1)
    for bad in ("0.5,0.5", "a,b,c", (-1, 1, 1), (0, 0, 0)):
        with pytest.raises(ValueError, match="split"):
            parse_split(bad)


def test_label_checks_and_remap():
    label = np.array([0, 1, 2, 3], dtype=np.uint8)
    np.testing.assert_array_equal(remap_labels(label, ACDC_TO_CARDIAC), [0, 3, 2, 1])
    assert remap_labels(label, ACDC_TO_CARDIAC).dtype == np.uint8
    assert check_label(np.array([0.0, 3.0]), "x").dtype == np.uint8
    with pytest.raises(ValueError, match=r"lab\.nii\.gz: label values \[4\] outside"):
        check_label(np.array([0, 4]), "lab.nii.gz")
    with pytest.raises(ValueError, match="non-integer"):
        check_label(np.array([0.0, 1.5]), "lab.nii.gz")
    with pytest.raises(ValueError, match=r"img\.nii\.gz: image contains NaN"):
        check_image(np.array([0.0, np.nan]), "img.nii.gz")


def test_load_volume_dimension_checks(tmp_path):
    path3, path4 = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 3, 1), dtype=np.int16), np.eye(4)), path3)
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 3, 2), dtype=np.int16), np.eye(4)), path4)
    assert load_volume(path3, 3)[0].shape == (4, 5, 3)  # trailing singleton dropped
    with pytest.raises(ValueError, match=r"b\.nii\.gz: expected a 3-D"):
        load_volume(path4, 3)
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 3), dtype=np.int16), np.eye(4)), tmp_path / "e.nii.gz")
    with pytest.raises(ValueError, match=r"e\.nii\.gz: expected a 4-D"):
        load_volume(tmp_path / "e.nii.gz", 4)
    with pytest.raises(FileNotFoundError, match=r"c\.nii\.gz"):
        load_volume(tmp_path / "c.nii.gz", 3)
    (tmp_path / "d.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(ValueError, match=r"d\.nii\.gz'?: cannot read"):
        load_volume(tmp_path / "d.nii.gz", 3)


def _pair(subject="s1", shape=(40, 36, 3)):
    rng = np.random.default_rng(0)
    label = np.zeros(shape, dtype=np.uint8)
    label[15:25, 10:20, :] = 2
    label[18:22, 13:17, :] = 1
    sources = {k: f"{subject}_{k}.nii.gz" for k in ("fixed_image", "moving_image", "fixed_label", "moving_label")}
    return PhasePair(
        subject=subject,
        fixed_image=rng.random(shape, dtype=np.float32) * 50,
        moving_image=rng.random(shape, dtype=np.float32) * 50,
        fixed_label=label,
        moving_label=label.copy(),
        affine=np.diag([1.5, 1.5, 8.0, 1.0]),
        sources=sources,
    )


def test_phase_pair_checks():
    pair = _pair()
    with pytest.raises(ValueError, match="image/label shape mismatch: s1_fixed_image.nii.gz .* s1_fixed_label"):
        PhasePair(**{**pair.__dict__, "fixed_label": pair.fixed_label[:-1]})
    with pytest.raises(ValueError, match="ED/ES size mismatch: s1_fixed_image.nii.gz .* s1_moving_image"):
        PhasePair(**{**pair.__dict__, "moving_image": pair.moving_image[:-1], "moving_label": pair.moving_label[:-1]})
    with pytest.raises(ValueError, match="s1_moving_label.nii.gz: no labelled voxels"):
        PhasePair(**{**pair.__dict__, "moving_label": np.zeros_like(pair.moving_label)})
    with pytest.raises(ValueError, match="s1_moving_image.nii.gz: the ES frame is the ED frame"):
        PhasePair(**{**pair.__dict__, "moving_image": pair.fixed_image.copy()})
    same_file = {**pair.sources, "moving_image": pair.sources["fixed_image"]}
    with pytest.raises(ValueError, match="the ES frame is the ED frame"):
        PhasePair(**{**pair.__dict__, "sources": same_file})
    larger_at_es = pair.moving_label.copy()
    larger_at_es[larger_at_es == 2] = 1  # the LV cavity grows from ED to ES
    with pytest.raises(
        ValueError,
        match=r"s1_fixed_label.nii.gz: the LV \(label 1\) is smaller at ED \(48 voxels\) "
        r"than at ES \(s1_moving_label.nii.gz, 300 voxels\); ED and ES look swapped",
    ):
        PhasePair(**{**pair.__dict__, "moving_label": larger_at_es})


def test_constant_slice_is_skipped_with_warning(caplog):
    pair = _pair()
    pair.moving_image[..., 1] = 3.0
    with caplog.at_level(logging.WARNING):
        slices = extract_slice_pairs(pair, crop_size=32)
    assert [s.z for s in slices] == [0, 2]
    assert "s1_moving_image.nii.gz: slice 1 is constant" in caplog.text
    for s in slices:
        assert s.fixed_image.shape == (32, 32) and s.fixed_image.dtype == np.float32
        assert s.fixed_image.min() == 0.0 and s.fixed_image.max() == 1.0


def test_failure_leaves_output_untouched(tmp_path):
    out = tmp_path / "out"
    convert_phase_pairs([_pair("s1"), _pair("s2")], out, crop_size=32, split=(1, 0, 0))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def failing():
        yield _pair("s3")
        raise ValueError("broken.nii.gz: bad")

    with pytest.raises(ValueError, match="broken"):
        convert_phase_pairs(failing(), out, crop_size=32)
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # nothing from s3, no temporary files, same datalist
    assert sorted(p.name for p in out.iterdir()) == ["datalist.json", "images", "labels"]
    fresh = tmp_path / "fresh"
    with pytest.raises(ValueError, match="broken"):
        convert_phase_pairs(failing(), fresh, crop_size=32)
    assert not fresh.exists()


def test_rerun_with_fewer_subjects_leaves_no_orphan_slices(tmp_path):
    out = tmp_path / "out"
    convert_phase_pairs([_pair("s1"), _pair("s2")], out, crop_size=32, split=(1, 0, 0))
    (out / "images" / "my_notes.nii.gz").write_bytes(b"the user's own file")
    convert_phase_pairs([_pair("s2")], out, crop_size=32, split=(1, 0, 0))
    listed = {
        e[k]
        for e in json.loads((out / "datalist.json").read_text())["training"]
        for k in e
        if "_" in k and k.endswith(("image", "label"))
    }
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*.nii.gz")}
    # s1's slices are gone; s2's are listed; a file the earlier datalist did not list stays
    assert on_disk == listed | {"images/my_notes.nii.gz"}
    assert not any("s1_" in name for name in on_disk)
