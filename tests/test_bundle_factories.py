"""The small factories bundle configs name with ``_target_``: their values, computed by hand."""

from __future__ import annotations

import json

import pytest
import torch

from monai_ext.data import inference_pairs
from monai_ext.solvers import solver_setting_name
from monai_ext.transforms import unit_intensity_transformd


def test_inference_pairs_from_the_command_line_or_a_datalist(tmp_path):
    # a pair named on the command line, empty options left out
    assert inference_pairs(fixed="f.nii.gz", moving="m.nii.gz", fixed_label="", moving_label="ml.nii.gz") == [
        {"fixed_image": "f.nii.gz", "moving_image": "m.nii.gz", "moving_label": "ml.nii.gz"}
    ]
    # else the datalist split, paths of existing files joined to base_dir (as MONAI's loader does)
    (tmp_path / "images").mkdir()
    for name in ("a", "b"):
        (tmp_path / "images" / f"{name}.nii.gz").touch()
    entry = {"fixed_image": "images/a.nii.gz", "moving_image": "images/b.nii.gz", "fixed_subject": "a"}
    (tmp_path / "datalist.json").write_text(json.dumps({"testing": [entry]}))
    pairs = inference_pairs(datalist=tmp_path / "datalist.json", split="testing", base_dir=tmp_path)
    assert pairs == [
        {**entry, "fixed_image": str(tmp_path / "images/a.nii.gz"), "moving_image": str(tmp_path / "images/b.nii.gz")}
    ]
    with pytest.raises(ValueError, match="--fixed and --moving"):
        inference_pairs()


def test_unit_intensity_transform():
    image = torch.tensor([[0.0, 51.0, 255.0, 300.0]])
    # a fixed range (LUMIR's 0..255), clipped
    scaled = unit_intensity_transformd("image", intensity_range=(0.0, 255.0))({"image": image})["image"]
    torch.testing.assert_close(torch.as_tensor(scaled), torch.tensor([[0.0, 0.2, 1.0, 1.0]]))
    # CT: -1000..1000 HU
    ct = unit_intensity_transformd("image", modality="CT")({"image": torch.tensor([[-1000.0, 0.0, 2000.0]])})["image"]
    torch.testing.assert_close(torch.as_tensor(ct), torch.tensor([[0.0, 0.5, 1.0]]))
    # MRI: the minimum -> 0, the 99th percentile -> 1
    mri = torch.arange(101.0)[None]
    scaled = torch.as_tensor(unit_intensity_transformd("image")({"image": mri})["image"])
    assert float(scaled[0, 0]) == 0.0 and float(scaled[0, 99]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="(?i)available options"):
        unit_intensity_transformd("image", modality="pet")


@pytest.mark.parametrize(
    "args,name",
    [
        (dict(optimizer="sgd", transform="freeform"), "SGD (free-form)"),
        (
            dict(optimizer="adam", transform="svf", label_prompt_weight=1.0, prefix="DIO "),
            "DIO Adam (svf) + label prompt",
        ),
        (dict(optimizer="sgd", transform="freeform", same_as="SGD (free-form)"), "SGD (free-form), test-time"),
        (dict(optimizer="adam", transform="diffeomorphic", same_as="SGD (free-form)"), "Adam (diffeomorphic)"),
    ],
)
def test_solver_setting_name(args, name):
    assert solver_setting_name(**args) == name
