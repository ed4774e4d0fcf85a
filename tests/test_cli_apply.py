"""``python -m monai_ext.cli apply``: a written displacement field applied to other images of the moving subject."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from monai_ext.cli.apply_transform import apply_transform, label_dice
from monai_ext.io.displacement_field import write_itk_displacement_field

from helpers import run_module

FIXED_SHAPE = (10, 12, 8)


@pytest.fixture()
def case(tmp_path):
    """A 1 mm fixed grid, a field shifting every point by +2.5 mm along x, and moving images at 2 mm along x."""
    ddf = np.zeros((3, *FIXED_SHAPE))
    ddf[0] = 2.5  # voxels of the fixed grid = mm
    write_itk_displacement_field(tmp_path / "ddf.nii.gz", ddf, np.eye(4))
    moving_affine = np.diag([2.0, 1.0, 1.0, 1.0])
    x = np.arange(8) * 2.0  # world x of the moving voxel centres
    image = np.broadcast_to((x**2)[:, None, None], (8, *FIXED_SHAPE[1:])).astype(np.float32)
    nib.save(nib.Nifti1Image(image, moving_affine), tmp_path / "moving.nii.gz")
    label = np.zeros((8, *FIXED_SHAPE[1:]), np.uint8)
    label[2:5, 2:8, 1:6] = 1  # x in [4, 8] mm
    label[5:7, 2:8, 1:6] = 2  # x in [10, 12] mm
    nib.save(nib.Nifti1Image(label, moving_affine), tmp_path / "moving_label.nii.gz")
    fixed_label = np.zeros(FIXED_SHAPE, np.uint8)
    fixed_label[1:6, 2:8, 1:6] = 1
    fixed_label[6:10, 2:8, 1:6] = 2
    nib.save(nib.Nifti1Image(fixed_label, np.eye(4)), tmp_path / "fixed_label.nii.gz")
    return tmp_path


def test_an_image_on_another_grid_is_read_at_the_displaced_world_points(case):
    warped, affine = apply_transform(case / "ddf.nii.gz", case / "moving.nii.gz")
    assert warped.shape == FIXED_SHAPE and np.allclose(affine, np.eye(4))
    # fixed voxel i reads world x = i + 2.5: linear interpolation of x^2 between 2 mm samples
    expected = []
    for i in range(FIXED_SHAPE[0]):
        world = min(i + 2.5, 14.0)  # the last moving centre is at 14 mm: border values beyond
        low = 2.0 * np.floor(world / 2.0)
        high = min(low + 2.0, 14.0)
        t = 0.0 if high == low else (world - low) / 2.0
        expected.append((1 - t) * low**2 + t * high**2)
    np.testing.assert_allclose(warped[:, 5, 4], expected, rtol=1e-5)


def test_labels_keep_their_values_and_the_command_prints_dice(case):
    warped, _ = apply_transform(case / "ddf.nii.gz", case / "moving_label.nii.gz", "nearest")
    assert warped.dtype == np.uint8 and set(np.unique(warped)) == {0, 1, 2}
    fixed_label = np.asarray(nib.load(case / "fixed_label.nii.gz").dataobj)
    # fixed voxel i reads moving voxel (i + 2.5) / 2 = i / 2 + 1.25 (no ties): moving voxels 2..4
    # (label 1) for i = 1..6 and 5..6 (label 2) for i = 7..9
    expected = np.zeros(FIXED_SHAPE[0], np.uint8)
    expected[1:7], expected[7:10] = 1, 2
    assert np.array_equal(warped[:, 4, 3], expected)
    dice = label_dice(warped, fixed_label)
    # label 1: 5 fixed slices (1..5) against 6 warped (1..6); label 2: 4 fixed (6..9) against 3 warped
    assert dice == pytest.approx({1: 2 * 5 / 11, 2: 2 * 3 / 7})
    result = run_module(
        "monai_ext.cli",
        "apply",
        "--transform", case / "ddf.nii.gz",
        "--moving", case / "moving_label.nii.gz",
        "--interpolation", "nearest",
        "--fixed_label", case / "fixed_label.nii.gz",
        "--out", case / "warped_label.nii.gz",
        "--verbose", "true",
    )  # fmt: skip
    assert f"mean Dice over 2 labels: {np.mean([dice[1], dice[2]]):.4f}" in result.stdout
    assert np.array_equal(np.asarray(nib.load(case / "warped_label.nii.gz").dataobj), warped)


def test_a_label_score_needs_nearest_neighbour(case):
    result = run_module(
        "monai_ext.cli", "apply", "--transform", case / "ddf.nii.gz", "--moving", case / "moving_label.nii.gz",
        "--fixed_label", case / "fixed_label.nii.gz", check=False,
    )  # fmt: skip
    assert result.returncode != 0 and "give --interpolation nearest" in result.stderr
