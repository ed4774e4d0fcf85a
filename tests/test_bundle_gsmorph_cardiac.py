"""End-to-end runs of the gsmorph_cardiac bundle through `python -m monai.bundle`, as a user runs it:
train, evaluate and inference, once each, on a synthetic ACDC converted by data_prep."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow

from data_prep import make_synthetic_acdc, prepare_acdc

from helpers import (
    BUNDLES,
    REPO,
    assert_dice_row_matches_labels,
    cli,
    config_list,
    inference_args,
    read_rows,
    run_bundle,
    training_args,
)

pytestmark = pytest.mark.slow

BUNDLE = BUNDLES / "gsmorph_cardiac"
CONFIGS = BUNDLE / "configs"
LABEL_NAMES = {1: "LV", 2: "Myo", 3: "RV"}


@pytest.fixture(scope="module")
def trained(acdc_dataset, tmp_path_factory):
    """One training epoch (batch 4, validated) of the synthetic ACDC."""
    root = tmp_path_factory.mktemp("gsmorph")
    common = training_args("gsmorph_cardiac", acdc_dataset / "data", root, batch_size=4)
    log = run_bundle(
        "run",
        *cli(config_file=CONFIGS / "train.json"),
        *common,
        *cli(output_dir=root / "train", num_epochs=1, val_interval=1),
    )
    return root, common, log.stdout + log.stderr


def test_train_writes_checkpoints_and_logs_surgery(trained):
    root, _, log = trained
    assert (root / "models" / "model.pt").exists()
    last = torch.load(root / "models" / "checkpoint_last.pt", weights_only=True)
    assert set(last) == {"model", "optimizer", "trainer", "best_model", "random_state"}
    assert last["trainer"]["iteration"] == last["trainer"]["epoch_length"] * 1
    assert "conflict_rate" in log and "val_mean_dice" in log
    # Adam steps of lr 5e-3 moved the flow head far from its N(0, 1e-5) initialisation
    assert last["optimizer"]["state"][0]["step"] == last["trainer"]["iteration"] > 0
    assert float(last["model"]["flow.weight"].std()) > 1e-3


def test_resume_continues_from_last_checkpoint(acdc_dataset, trained, tmp_path):
    root, _, _ = trained
    models = tmp_path / "models"
    models.mkdir()
    (models / "checkpoint_last.pt").write_bytes((root / "models" / "checkpoint_last.pt").read_bytes())
    first = torch.load(models / "checkpoint_last.pt", weights_only=True)
    workflow = ConfigWorkflow(
        config_file=str(CONFIGS / "train.json"),
        workflow_type="train",
        bundle_root=str(BUNDLE),
        dataset_dir=str(acdc_dataset / "data"),
        ckpt_dir=str(models),
        output_dir=str(tmp_path / "out"),
        num_workers=0,
        batch_size=4,
        num_epochs=2,
        val_interval=5,
        resume=True,
    )
    workflow.initialize()
    workflow.run()
    last = torch.load(models / "checkpoint_last.pt", weights_only=True)
    assert last["trainer"]["max_epochs"] == 2
    # one more epoch, not two: training continued at the saved iteration
    assert last["trainer"]["iteration"] == 2 * first["trainer"]["epoch_length"]
    assert last["optimizer"]["state"][0]["step"] == 2 * first["optimizer"]["state"][0]["step"]


def test_evaluate_reports_table_and_figures(acdc_dataset, trained):
    root, common, _ = trained
    out = root / "eval"
    log = run_bundle(
        "run",
        *cli(config_file=config_list("gsmorph_cardiac", "train.json", "evaluate.json")),
        *common,
        *cli(output_dir=out, logging_file=CONFIGS / "logging.conf"),
    )
    text = log.stdout + log.stderr
    assert "Registration results over" in text and "Initial" in text and "GSMorph" in text
    rows = read_rows(out / "metrics_per_case.csv")
    data = acdc_dataset / "data"
    testing = json.loads((data / "datalist.json").read_text())["testing"]
    assert sorted(r["method"] for r in rows) == ["GSMorph"] * len(testing) + ["Initial"] * len(testing)
    entries = {f"{e['subject']}_slice{e['slice']:02d}": e for e in testing}
    for row in rows:
        entry = entries[row["case"]]
        # Initial scores the moving label as it is, GSMorph the warped label written beside the metrics
        moving = (
            data / entry["moving_label"]
            if row["method"] == "Initial"
            else out / "pairs" / row["case"] / "warped_label.nii.gz"
        )
        assert_dice_row_matches_labels(
            row, data / entry["fixed_label"], moving, LABEL_NAMES, data / entry["moving_label"]
        )
        assert float(row["HD95_mean"]) >= 0.0
    figures = sorted(out.glob("pairs/*/qc.png"))
    assert 1 <= len(figures) <= 4
    # warped outputs sit on the fixed image's grid
    entry = entries[rows[0]["case"]]
    fixed = nib.load(data / entry["fixed_image"])
    warped = nib.load(out / "pairs" / rows[0]["case"] / "warped_image.nii.gz")
    assert warped.shape == fixed.shape
    np.testing.assert_allclose(warped.affine, fixed.affine, atol=1e-5)


def test_inference_on_one_pair_of_another_size_and_spacing(acdc_dataset, trained, tmp_path):
    from monai.data import MetaTensor
    from monai.transforms import ResampleToMatch

    root, _, _ = trained
    data = acdc_dataset / "data"
    entry = json.loads((data / "datalist.json").read_text())["testing"][0]
    # the fixed image at 1.5x finer spacing on a 100x90 grid, the moving image as prepared
    src = nib.load(data / entry["fixed_image"])
    fixed_affine = src.affine.copy()
    fixed_affine[:3, :2] /= 1.5
    resampled = ResampleToMatch()(
        MetaTensor(torch.as_tensor(src.get_fdata(), dtype=torch.float32)[None], affine=torch.as_tensor(src.affine)),
        MetaTensor(torch.zeros(1, 100, 90), affine=torch.as_tensor(fixed_affine)),
    )
    nib.save(nib.Nifti1Image(resampled[0].numpy(), fixed_affine), tmp_path / "fixed.nii.gz")
    out = tmp_path / "out"
    run_bundle(
        *inference_args(
            "gsmorph_cardiac",
            root / "models" / "model.pt",
            out,
            fixed=tmp_path / "fixed.nii.gz",
            moving=data / entry["moving_image"],
        ),
    )
    case_dirs = [p for p in out.iterdir() if p.is_dir()]
    assert len(case_dirs) == 1
    warped = nib.load(case_dirs[0] / "warped_image.nii.gz")
    assert warped.shape == (100, 90)
    np.testing.assert_allclose(warped.affine, fixed_affine, atol=1e-5)
    # the synthetic slices are oblique: the field is an ITK transform file, which keeps their geometry
    assert (case_dirs[0] / "ddf.h5").exists() and (case_dirs[0] / "qc.png").exists()
    assert not (case_dirs[0] / "ddf.nii.gz").exists()


def test_inference_rejects_a_volume_with_a_clear_error(trained, tmp_path):
    root, _, _ = trained
    nib.save(nib.Nifti1Image(np.random.rand(16, 16, 4).astype(np.float32), np.eye(4)), tmp_path / "vol.nii.gz")
    result = run_bundle(
        *inference_args(
            "gsmorph_cardiac",
            root / "models" / "model.pt",
            tmp_path / "out",
            fixed=tmp_path / "vol.nii.gz",
            moving=tmp_path / "vol.nii.gz",
        ),
        check=False,
    )
    assert result.returncode != 0
    assert "vol.nii.gz) has 3 spatial dimensions" in result.stderr


def test_two_process_training_with_the_multi_gpu_overlay(tmp_path):
    # six subjects of three slices: two validation pairs, one per rank
    make_synthetic_acdc(tmp_path / "raw", num_subjects=6, size=(72, 64), slices=3, frames=4, seed=1)
    data = prepare_acdc(tmp_path / "raw", tmp_path / "data", seed=0).parent
    datalist = json.loads((data / "datalist.json").read_text())
    assert len(datalist["validation"]) == 2
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "monai.bundle",
        "run",
        *cli(
            config_file=config_list("gsmorph_cardiac", "train.json", "multi_gpu_train.json"),
            bundle_root=BUNDLE,
            dataset_dir=data,
            ckpt_dir=tmp_path / "models",
            output_dir=tmp_path / "out",
            num_workers=0,
            batch_size=2,
            num_epochs=1,
            val_interval=1,
        ),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    last = torch.load(tmp_path / "models" / "checkpoint_last.pt", weights_only=True)
    # each rank trains on its half of the training pairs (gloo on the CPU); rank 0 saves
    assert last["trainer"]["epoch_length"] == math.ceil(math.ceil(len(datalist["training"]) / 2) / 2)
    assert last["trainer"]["iteration"] == last["trainer"]["epoch_length"]
    assert (tmp_path / "models" / "model.pt").exists()
