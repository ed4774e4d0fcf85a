"""The evaluators' postprocessing: moving labels warped by the predicted field."""

from __future__ import annotations

import pytest
import torch

from monai_ext.transforms import WarpMovingd


def test_postprocessing_warps_the_moving_labels_by_the_predicted_field():
    label = torch.zeros(1, 1, 6, 6, dtype=torch.uint8)
    label[0, 0, 2, 3] = 2
    ddf = torch.zeros(1, 2, 6, 6)
    ddf[:, 0] = 1.0  # pull from one voxel further along axis 0
    output = WarpMovingd("moving_label")({"moving_label": label, "pred": ddf})
    expected = torch.zeros_like(label)
    expected[0, 0, 1, 3] = 2
    assert torch.equal(output["warped_label"], expected)
    assert WarpMovingd("moving_label", allow_missing_keys=True)({"pred": ddf}).keys() == {"pred"}
    with pytest.raises(ValueError, match="one output per key"):
        WarpMovingd(["moving_label", "moving_image"], output_keys="warped_label")
