import nibabel as nib
import numpy as np
import pytest

from monai_ext.io.submission import read_submission_displacement, submission_filename, write_submission_displacement


@pytest.mark.parametrize(
    "fixed,moving,expected",
    [
        ("imagesVal/LUMIRMRI_3455_0000.nii.gz", "imagesVal/LUMIRMRI_3454_0000.nii.gz", "disp_3455_3454.nii.gz"),
        ("OASIS_0438_0000.nii.gz", "OASIS_0439_0000.nii.gz", "disp_0438_0439.nii.gz"),
        ("LUMIRMRI_3455", "LUMIRMRI_3454", "disp_3455_3454.nii.gz"),
    ],
)
def test_lumir_names(fixed, moving, expected):
    assert submission_filename(fixed, moving) == expected


@pytest.mark.parametrize(
    "fixed,moving,expected",
    [
        ("imagesTr/OASIS_0438_0000.nii.gz", "imagesTr/OASIS_0439_0000.nii.gz", "disp_0438_0000_0439_0000.nii.gz"),
        ("OASIS_OAS1_0438_MR1/aligned_norm.nii.gz", "OASIS_OAS1_0439_MR1/aligned_norm.nii.gz",
         "disp_0438_0000_0439_0000.nii.gz"),
        ("AbdomenMRCT_0001_0001.nii.gz", "AbdomenMRCT_0001_0000.nii.gz", "disp_0001_0001_0001_0000.nii.gz"),
    ],
)  # fmt: skip
def test_learn2reg_names_carry_the_modalities(fixed, moving, expected):
    assert submission_filename(fixed, moving, "learn2reg") == expected
    short = f"disp_{expected[5:9]}_{expected[15:19]}.nii.gz"  # the older rule, given as a template
    assert submission_filename(fixed, moving, "disp_{fixed}_{moving}.nii.gz") == short


def test_name_without_number_is_an_error():
    with pytest.raises(ValueError, match="case number"):
        submission_filename("fixed.nii.gz", "moving_0001.nii.gz")


def test_round_trip_layout_is_xyz3(tmp_path):
    ddf = np.random.default_rng(0).normal(size=(3, 6, 7, 5)).astype(np.float32)
    path = write_submission_displacement(tmp_path / "disp_0001_0002.nii.gz", ddf, np.diag([1.0, 1.0, 1.0, 1.0]))
    stored = np.asarray(nib.load(path).dataobj)
    assert stored.shape == (6, 7, 5, 3)  # LUMIR / Learn2Reg read [X, Y, Z, 3]
    np.testing.assert_array_equal(stored[2, 3, 4], ddf[:, 2, 3, 4])
    np.testing.assert_array_equal(read_submission_displacement(path), ddf)
