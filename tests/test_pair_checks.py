import pytest
import torch
from monai.data import MetaTensor

from monai_ext.transforms import CheckPaird


def _pair(fixed, moving, **labels):
    return {
        "fixed_image": MetaTensor(fixed, meta={"filename_or_obj": "/data/fixed_ED.nii.gz"}),
        "moving_image": MetaTensor(moving, meta={"filename_or_obj": "/data/moving_ES.nii.gz"}),
        **labels,
    }


def test_valid_pair_passes_unchanged():
    labels = {
        "fixed_label": MetaTensor(torch.tensor([[[0, 1], [2, 3]]]), meta={"filename_or_obj": "/data/ED_gt.nii.gz"}),
        "moving_label": MetaTensor(torch.tensor([[[3, 2], [1, 0]]]), meta={"filename_or_obj": "/data/ES_gt.nii.gz"}),
    }
    pair = {**_pair(torch.rand(1, 2, 2), torch.rand(1, 2, 2), **labels), "subject": "patient001"}
    before = {k: v.clone() for k, v in pair.items() if isinstance(v, torch.Tensor)}
    out = CheckPaird(spatial_dims=2, label_values=(0, 1, 2, 3))(pair)
    assert out.keys() == pair.keys()
    assert out["subject"] == "patient001"
    for key, value in before.items():  # values, dtype and metadata untouched, in the output and the input
        for tensor in (out[key], pair[key]):
            assert tensor.dtype == value.dtype and torch.equal(tensor, value)
            assert tensor.meta["filename_or_obj"] == value.meta["filename_or_obj"]
    # fixed and moving may differ in size (resolved later in world space)
    other = CheckPaird(spatial_dims=2)(_pair(torch.rand(1, 8, 8), torch.rand(1, 10, 12)))
    assert other["fixed_image"].shape == (1, 8, 8) and other["moving_image"].shape == (1, 10, 12)


@pytest.mark.parametrize(
    "fixed,moving,message",
    [
        (torch.rand(1, 8, 8, 4), torch.rand(1, 8, 8, 4), r"fixed_image \(/data/fixed_ED.nii.gz\) has 3 spatial"),
        (torch.rand(1, 8, 8), torch.full((1, 8, 8), float("nan")), r"moving_ES.nii.gz\) contains NaN"),
        (torch.ones(1, 8, 8), torch.rand(1, 8, 8), r"fixed_ED.nii.gz\) is constant"),
    ],
)
def test_bad_images_name_the_file(fixed, moving, message):
    with pytest.raises(ValueError, match=message):
        CheckPaird(spatial_dims=2)(_pair(fixed, moving))


def test_dimensionality_mismatch_without_expected_dims():
    with pytest.raises(ValueError, match="differ in dimensionality"):
        CheckPaird()(_pair(torch.rand(1, 8, 8), torch.rand(1, 8, 8, 3)))


def test_label_values_outside_set():
    label = MetaTensor(torch.tensor([[[0, 1], [4, 3]]]), meta={"filename_or_obj": "/data/ES_gt.nii.gz"})
    with pytest.raises(ValueError, match=r"ES_gt.nii.gz\) has label values \[4\]"):
        CheckPaird(label_values=(0, 1, 2, 3))(_pair(torch.rand(1, 2, 2), torch.rand(1, 2, 2), moving_label=label))
