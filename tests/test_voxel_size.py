"""Resampling to another voxel size in the same normalised frame (first and last voxel centres kept)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_ext.spatial import endpoint_shape, fixed_to_moving_matrix, resample_to_spacing, sample_moving


def test_endpoint_shape_by_hand():
    # 21 slices of 2 mm span 40 mm between the first and last centres: 41 slices of 1 mm
    assert endpoint_shape([21, 10], [2.0, 1.0], [1.0, 1.0]) == [41, 10]
    # 1.2 mm x 40 voxels span 46.8 mm: 48 voxels of 0.995 mm; 4 mm x 3 voxels -> 2 voxels of 8 mm
    assert endpoint_shape([40, 3], [1.2, 4.0], [1.0, 10.0]) == [48, 2]
    with pytest.raises(ValueError, match="positive"):
        endpoint_shape([4], [0.0], [1.0])


def test_upsampling_a_ramp_is_exact_and_keeps_the_end_values():
    ramp = torch.arange(6, dtype=torch.float64).reshape(1, 1, 6, 1).expand(1, 1, 6, 3) * 2.0  # value = z in mm
    out = resample_to_spacing(ramp, [2.0, 1.0], [1.0, 1.0])
    assert out.shape == (1, 1, 11, 3)
    np.testing.assert_allclose(out[0, 0, :, 1].numpy(), np.arange(11.0), atol=1e-12)


def test_the_same_normalised_coordinates_read_the_same_world_points():
    # an image sampled at 2 mm and the same function at 1 mm: read through one geometry at world points
    def image(spacing, n):
        x = torch.arange(n, dtype=torch.float64) * spacing
        return torch.sin(x / 5.0).reshape(1, 1, n, 1, 1).expand(1, 1, n, 4, 4).clone()

    coarse = image(2.0, 16)
    fine = resample_to_spacing(coarse, [2.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    assert fine.shape[2] == 31
    fixed_affine, moving_affine = np.eye(4), np.diag([2.0, 1.0, 1.0, 1.0])
    matrix = fixed_to_moving_matrix(fixed_affine, moving_affine, [31, 4, 4], [16, 4, 4], dtype=torch.float64)
    zero = torch.zeros(1, 3, 31, 4, 4, dtype=torch.float64)
    np.testing.assert_allclose(
        sample_moving(fine, zero, matrix)[0, 0, :, 0, 0].numpy(),
        sample_moving(coarse, zero, matrix)[0, 0, :, 0, 0].numpy(),
        atol=1e-12,
    )
    # and they are close to the function itself at 1 mm (linear interpolation of a smooth sine)
    np.testing.assert_allclose(fine[0, 0, :, 0, 0].numpy(), np.sin(np.arange(31) / 5.0), atol=0.02)


def test_downsampling_smooths_first_and_matching_spacings_are_left_alone():
    checker = (torch.arange(16).reshape(1, 1, 16, 1) % 2).double().expand(1, 1, 16, 5)
    out = resample_to_spacing(checker, [1.0, 1.0], [3.0, 1.0])
    assert out.shape == (1, 1, 6, 5)
    # new centres fall on old voxels 0, 3, 6, ...: unsmoothed they would read 0, 1, 0, 1 (aliasing);
    # smoothed, the interior reads the mean 0.5 (the two end voxels see the replicated border)
    np.testing.assert_allclose(out[0, 0, 1:-1].numpy(), 0.5, atol=0.02)
    assert resample_to_spacing(checker, [1.0, 1.0], [1.0005, 1.0]) is checker
