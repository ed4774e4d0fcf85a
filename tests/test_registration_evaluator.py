import csv

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.handlers import MeanDice, from_engine

from monai_ext.engines import RegistrationEvaluator
from monai_ext.handlers import RegistrationMetricsHandler, RegistrationWriter
from monai_ext.inferers import NetworkGridInferer
from monai_ext.io.displacement_field import read_itk_displacement_field
from monai_ext.io.nifti import load_nifti


class ConstantShift(torch.nn.Module):
    """A 'network' that always predicts a fixed displacement of `shift` voxels along axis 1."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift = shift
        self.dummy = torch.nn.Parameter(torch.zeros(()))
        self.calls = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        ddf = torch.zeros(x.shape[0], 2, *x.shape[2:])
        ddf[:, 1] = self.shift
        return ddf + 0 * self.dummy


def _square_label(size, top, left, width=6, value=1):
    label = torch.zeros(1, *size)
    label[0, top : top + width, left : left + width] = value
    return label


def _pair_batch(shift=2, size=(16, 16), spacing=(1.5, 2.0)):
    affine = torch.diag(torch.tensor([spacing[0], spacing[1], 8.0, 1.0], dtype=torch.float64))
    fixed_label = _square_label(size, 5, 5)
    moving_label = _square_label(size, 5, 5 + shift)  # the structure sits `shift` voxels further along axis 1
    fixed = fixed_label * 0.8 + 0.1
    moving = moving_label * 0.8 + 0.1

    def meta(t, name):
        return MetaTensor(t[None], affine=affine[None], meta={"filename_or_obj": [name]})

    return {
        "fixed_image": meta(fixed, "/d/p1_ED.nii.gz"),
        "moving_image": meta(moving, "/d/p1_ES.nii.gz"),
        "fixed_label": meta(fixed_label, "/d/p1_ED_gt.nii.gz"),
        "moving_label": meta(moving_label, "/d/p1_ES_gt.nii.gz"),
        "subject": ["p1"],
        "slice": torch.tensor([3]),
    }


def test_evaluator_metrics_and_outputs(tmp_path):
    batch = _pair_batch(shift=2)
    network = ConstantShift(2.0)
    metrics = RegistrationMetricsHandler(tmp_path / "metrics", label_names={1: "LV"}, method_name="shift")
    writer = RegistrationWriter(tmp_path / "pairs", max_figures=1)
    evaluator = RegistrationEvaluator(
        device="cpu",
        val_data_loader=[batch],
        network=network,
        key_val_metric={
            "val_mean_dice": MeanDice(
                include_background=False, num_classes=2, output_transform=from_engine(["warped_label", "fixed_label"])
            )
        },
        val_handlers=[metrics, writer],
    )
    evaluator.run()
    # pull-back: warped(x) = moving(x + 2 e_1) brings the moving square exactly onto the fixed one
    out = evaluator.state.output
    assert torch.equal(out["warped_label"][0, 0, :, :-2], batch["fixed_label"][0, 0, :, :-2])
    assert evaluator.state.metrics["val_mean_dice"] == pytest.approx(1.0)
    assert evaluator.state.metrics["shift/Dice_LV"] == pytest.approx(1.0)
    # Initial: squares of 36 pixels overlapping in 6x4 = 24 -> Dice 2*24/72
    assert evaluator.state.metrics["Initial/Dice_LV"] == pytest.approx(2 * 24 / 72)
    # Initial HD95 in mm: boundary points are at most 2 voxels apart along axis 1 (2.0 mm spacing) -> 4 mm
    assert evaluator.state.metrics["Initial/HD95_LV"] == pytest.approx(4.0)
    assert evaluator.state.metrics["shift/NJD"] == 0.0
    rows = list(csv.DictReader(open(tmp_path / "metrics" / "metrics_per_case.csv")))
    assert {(r["case"], r["method"]) for r in rows} == {("p1_slice03", "shift"), ("p1_slice03", "Initial")}
    case_dir = tmp_path / "pairs" / "p1_slice03"
    warped, affine = load_nifti(case_dir / "warped_image.nii.gz")
    np.testing.assert_allclose(affine, batch["fixed_image"].affine[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(warped, out["warped_image"][0, 0].numpy(), atol=1e-6)
    label, _ = load_nifti(case_dir / "warped_label.nii.gz")
    assert set(np.unique(label)) <= {0, 1}
    ddf, ddf_affine = read_itk_displacement_field(case_dir / "ddf.nii.gz")
    np.testing.assert_allclose(ddf[1], 2.0, atol=1e-5)
    np.testing.assert_allclose(ddf[0], 0.0, atol=1e-5)
    assert (case_dir / "qc.png").stat().st_size > 1000


def test_writer_keeps_a_coronal_slice_field_in_voxels(tmp_path, caplog):
    """A 2-D slice whose plane ITK's 2-D space cannot hold (neurite-OASIS coronal slices: the array
    axes map to x and z): the field is written in voxels, channel last, on the fixed affine."""
    batch = _pair_batch(shift=2)
    coronal = torch.tensor([[-1.0, 0, 0, 31.5], [0, 0, 1, -0.5], [0, -1, 0, 35.5], [0, 0, 0, 1]], dtype=torch.float64)
    for key in ("fixed_image", "moving_image", "fixed_label", "moving_label"):
        batch[key].affine = coronal[None]
    writer = RegistrationWriter(tmp_path / "pairs", max_figures=0)
    evaluator = RegistrationEvaluator(device="cpu", val_data_loader=[batch], network=ConstantShift(2.0))
    writer.attach(evaluator)
    with caplog.at_level("WARNING"):
        evaluator.run()
    case_dir = tmp_path / "pairs" / "p1_slice03"
    assert not (case_dir / "ddf.nii.gz").exists()
    ddf, affine = load_nifti(case_dir / "ddf_voxels.nii.gz")
    assert ddf.shape == (16, 16, 1, 1, 2)
    np.testing.assert_allclose(ddf[..., 0, 0, 1], 2.0) and np.testing.assert_allclose(ddf[..., 0, 0, 0], 0.0)
    np.testing.assert_allclose(affine, coronal.numpy())
    assert sum("ITK cannot represent" in r.message for r in caplog.records) == 1


def test_network_grid_inferer_maps_field_back():
    network = ConstantShift(2.0)
    inferer = NetworkGridInferer(spatial_size=(16, 16))
    ddf = inferer(torch.rand(1, 2, 31, 46), network)
    assert network.calls == [(1, 2, 16, 16)]
    assert ddf.shape == (1, 2, 31, 46)
    # 2 voxels on a 16-grid span 2/15 of the field of view: (46 - 1) * 2 / 15 = 6 voxels on the input grid
    torch.testing.assert_close(ddf[:, 1], torch.full((1, 31, 46), 6.0))
    torch.testing.assert_close(ddf[:, 0], torch.zeros(1, 31, 46))
    # inputs on the network grid are passed straight through
    assert torch.equal(inferer(torch.rand(1, 2, 16, 16), network)[:, 1], torch.full((1, 16, 16), 2.0))


def test_evaluator_rejects_pair_on_different_grids():
    batch = _pair_batch()
    batch["moving_image"] = batch["moving_image"][..., :12]
    evaluator = RegistrationEvaluator(device="cpu", val_data_loader=[batch], network=ConstantShift(0.0))
    with pytest.raises(ValueError, match="share a grid"):
        evaluator.run()
