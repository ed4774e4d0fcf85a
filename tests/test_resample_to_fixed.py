"""The moving image on the fixed grid, also for coronal 2-D slices that MONAI's ResampleToMatchd refuses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import ResampleToMatchd

from monai_ext.transforms import ResampleToFixedd

# a coronal slice: array axis 0 along world -x, axis 1 along world -z (plane y = -0.5)
CORONAL = np.array([[-1.0, 0, 0, 31.5], [0, 0, 1.0, -0.5], [0, -1.0, 0, 35.5], [0, 0, 0, 1]])


def test_a_coronal_moving_slice_at_2_mm_is_read_at_the_fixed_voxels():
    moving_affine = CORONAL.copy()
    moving_affine[:3, 1] *= 2.0  # 2 mm along the slice's second axis
    ramp = torch.arange(18, dtype=torch.float32) * 2.0  # value = distance in mm along that axis
    moving = MetaTensor(ramp.expand(1, 8, 18).clone(), affine=torch.as_tensor(moving_affine))
    label = MetaTensor((ramp >= 10).float().expand(1, 8, 18).clone(), affine=torch.as_tensor(moving_affine))
    fixed = MetaTensor(torch.zeros(1, 8, 36), affine=torch.as_tensor(CORONAL))
    data = {"fixed_image": fixed, "moving_image": moving, "moving_label": label}
    with pytest.raises((RuntimeError, ValueError)):
        ResampleToMatchd(["moving_image"], key_dst="fixed_image")(dict(data))
    out = ResampleToFixedd(
        ["moving_image", "moving_label"], key_dst="fixed_image", mode=["bilinear", "nearest"], padding_mode="border"
    )(data)
    assert out["moving_image"].shape == (1, 8, 36)
    np.testing.assert_allclose(np.asarray(out["moving_image"].affine), CORONAL)
    # fixed voxel j lies j mm along the axis: the ramp's value there, up to its last sample (34 mm)
    np.testing.assert_allclose(out["moving_image"][0, 3].numpy(), np.minimum(np.arange(36.0), 34.0), atol=1e-5)
    assert set(torch.unique(out["moving_label"]).tolist()) == {0.0, 1.0}
    assert out["moving_label"][0, 3, :10].sum() == 0 and out["moving_label"][0, 3, 10:].min() == 1


def test_other_images_are_resampled_by_monai_as_before():
    fixed = MetaTensor(torch.rand(1, 10, 12), affine=torch.eye(4, dtype=torch.float64))
    moving = MetaTensor(
        torch.rand(1, 5, 12), affine=torch.diag(torch.tensor([2.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    )
    ours = ResampleToFixedd(["moving_image"], key_dst="fixed_image")({"fixed_image": fixed, "moving_image": moving})
    monai = ResampleToMatchd(["moving_image"], key_dst="fixed_image")({"fixed_image": fixed, "moving_image": moving})
    assert torch.equal(ours["moving_image"].as_tensor(), monai["moving_image"].as_tensor())
