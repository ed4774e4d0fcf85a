"""End-to-end runs of the gradicon_brain bundle through `python -m monai.bundle`, on a synthetic LUMIR.

The real Stage1 / Stage2 networks run at 66^3 (the smallest size their quarter-resolution atom
accepts is 65), one iteration per stage, so that every config is exercised as a user runs it.
"""

from __future__ import annotations

import json
import re

import nibabel as nib
import numpy as np
import pytest
import torch

from helpers import (
    BUNDLES,
    assert_dice_row_matches_labels,
    bundle_log,
    cli,
    config_list,
    evaluator_scores,
    inference_args,
    read_rows,
    training_args,
)

pytestmark = pytest.mark.slow

BUNDLE = BUNDLES / "gradicon_brain"
CONFIGS = BUNDLE / "configs"
SIZE = "[66,66,66]"
LEARNING_RATE = 5e-5  # train.json's Adam learning rate
STAGE1_OFFSET = 0.01  # added to every Stage1 weight before Stage2, so that Stage2 can only be near it by loading it


@pytest.fixture(scope="module")
def lumir(lumir_dataset, tmp_path_factory):
    """Stage1 (1 iteration, validated) -> its weights shifted -> Stage2 from Stage1 (1 iteration)."""
    root = tmp_path_factory.mktemp("gradicon")
    common = training_args("gradicon_brain", lumir_dataset / "data", root, image_size=SIZE)
    shorten = cli(batch_size=1, num_epochs=1, iterations_per_epoch=1)
    stage1_run = ["run", "--config_file", config_list("gradicon_brain", "train.json"), *common, *shorten]
    log1 = bundle_log(*stage1_run, *cli(output_dir=root / "stage1", val_interval=1))
    stage1 = torch.load(root / "models" / "stage1.pt", weights_only=True)
    shifted = {k: v + STAGE1_OFFSET if v.is_floating_point() else v for k, v in stage1.items()}
    torch.save(shifted, root / "models" / "stage1.pt")
    stage2_run = ["run", "--config_file", config_list("gradicon_brain", "train.json", "stage2.json"), *common, *shorten]
    log2 = bundle_log(*stage2_run, *cli(output_dir=root / "stage2", val_interval=5))
    return root, common, log1, log2


def test_two_stage_training(lumir):
    root, _, log1, log2 = lumir
    assert "val_mean_dice" in log1 and "gradicon" in log1 and "gradicon" in log2
    stage1 = torch.load(root / "models" / "stage1.pt", weights_only=True)
    final = torch.load(root / "models" / "model.pt", weights_only=True)
    # Stage2 = TS{Stage1, Psi_4}: Stage1's weights live under netPhi, a fourth atom under netPsi
    assert set(final) == {f"netPhi.{k}" for k in stage1} | {k for k in final if k.startswith("netPsi.")}
    assert any(k.startswith("netPsi.") for k in final)
    # Stage2 started from the (shifted) Stage1 weights and took one Adam step (lr 5e-5) from them:
    # every weight within one step of Stage1's, some moved by a full step
    parameters = {k: v for k, v in stage1.items() if not k.split(".")[-1].startswith(("running_", "num_batches"))}
    steps = [float((final[f"netPhi.{k}"] - v).abs().max()) for k, v in parameters.items()]
    assert max(steps) == pytest.approx(LEARNING_RATE, rel=0.05)
    assert all(step <= 1.05 * LEARNING_RATE for step in steps)


def test_evaluate_with_and_without_instance_optimisation(lumir_dataset, lumir):
    root, common, _, _ = lumir
    out = root / "eval"
    log = bundle_log(
        "run",
        *cli(config_file=config_list("gradicon_brain", "train.json", "evaluate.json")),
        *common,
        *cli(output_dir=out, io_steps=1),
    )
    assert "GradICON + IO (1 steps)" in log and "NDV(%)" in log
    data = lumir_dataset / "data"
    datalist = json.loads((data / "datalist.json").read_text())
    # LUMIR's evaluation pairs: the labelled ones (Dice) and the landmark ones (TRE)
    pairs = {f"{e['fixed_subject']}__{e['moving_subject']}": e for e in datalist["validation_evaluated"]}
    assert any("fixed_landmarks" in e for e in pairs.values()) and any("fixed_label" in e for e in pairs.values())
    # LUMIR counts label 0 in its Dice
    label_names = {
        value: datalist["labels"].get(str(value), str(value)) for value in datalist["evaluation"]["dice_labels"]
    }
    assert 0 in label_names
    registered = {}
    for mode, method in (("direct", "GradICON"), ("instance_optimization", "GradICON + IO (1 steps)")):
        rows = read_rows(out / mode / "metrics_per_case.csv")
        assert sorted(r["method"] for r in rows) == sorted([method, "Initial"] * len(pairs))
        for row in rows:
            entry = pairs[row["case"]]
            if "fixed_label" not in entry:  # a landmark pair: TRE, no Dice
                assert np.isfinite(float(row["TRE"])) and np.isnan(float(row["Dice_mean"]))
                continue
            warped = out / mode / "pairs" / row["case"] / "warped_label.nii.gz"
            moving = data / entry["moving_label"] if row["method"] == "Initial" else warped
            assert_dice_row_matches_labels(
                row, data / entry["fixed_label"], moving, label_names, data / entry["moving_label"]
            )
        registered[mode] = {r["case"]: float(r["std_log_jac"]) for r in rows if r["method"] == method}
        leaderboard = json.loads((out / mode / "leaderboard_lumir.json").read_text())
        assert set(leaderboard["cases"]) == set(pairs)
        assert {"Dice", "HD95", "SDlogJ", "NDV", "TRE"} <= set(leaderboard["aggregates"])
    # instance optimisation changed every pair's field
    assert all(registered["direct"][case] != registered["instance_optimization"][case] for case in pairs)


def test_inference_on_a_pair_writes_lumir_submission(lumir_dataset, lumir, tmp_path):
    root, _, _, _ = lumir
    data = lumir_dataset / "data"
    datalist = json.loads((data / "datalist.json").read_text())
    pair = datalist["validation_labelled"][0]
    fixed, moving, fixed_label, moving_label = (
        (data / pair[k]).resolve() for k in ("fixed_image", "moving_image", "fixed_label", "moving_label")
    )
    out, submission = tmp_path / "out", tmp_path / "submission"
    bundle_log(
        *inference_args(
            "gradicon_brain",
            root / "models" / "model.pt",
            out,
            image_size=SIZE,
            fixed=fixed,
            moving=moving,
            fixed_label=fixed_label,
            moving_label=moving_label,
            submission_dir=submission,
        ),
    )
    fixed_id, moving_id = (p.name.split("_")[1] for p in (fixed, moving))
    disp_path = submission / f"disp_{fixed_id}_{moving_id}.nii.gz"
    disp = nib.load(disp_path)
    assert disp.shape == (*nib.load(fixed).shape, 3)
    case = next(p for p in out.iterdir() if p.is_dir())
    warped = nib.load(case / "warped_image.nii.gz")
    np.testing.assert_allclose(warped.affine, nib.load(fixed).affine, atol=1e-5)
    assert (case / "ddf.nii.gz").exists()
    # the ITK field (LPS mm) and the LUMIR submission (voxels) hold one transform: the images are
    # 1 mm RAS, so the ITK field is the submission with its first two components negated
    itk_field = np.asarray(nib.load(case / "ddf.nii.gz").dataobj).reshape(*disp.shape)
    np.testing.assert_allclose(itk_field, np.asarray(disp.dataobj) * np.array([-1.0, -1.0, 1.0]), atol=1e-4)
    assert np.abs(np.asarray(disp.dataobj)).max() > 0
    # the leaderboard scores of the run equal the evaluator's steps on the submission file
    (case_scores,) = json.loads((out / "leaderboard_lumir.json").read_text())["cases"].values()
    labels = sorted(
        set(np.unique(nib.load(fixed_label).get_fdata())) | set(np.unique(nib.load(moving_label).get_fdata()))
    )
    assert set(labels) <= set(datalist["evaluation"]["dice_labels"])  # the official set, label 0 included
    expected = evaluator_scores(disp_path, fixed_label, moving_label, labels)
    for score, value in expected.items():
        assert case_scores[score] == pytest.approx(value, abs=1e-4), score


def test_2d_training_lowers_the_loss_and_raises_dice(neurite_slices_dataset, tmp_path):
    """The bundle's 2-D option (``--spatial_dims 2``) on neurite-OASIS-layout coronal slices: 30
    Stage1 iterations of batch 8 at lr 5e-4 (the demo's CPU setting) lower the training loss and
    raise validation Dice above the starting network's (validated before training: identity)."""
    log = bundle_log(
        "run",
        *cli(config_file=CONFIGS / "train.json"),
        *training_args("gradicon_brain", neurite_slices_dataset / "data", tmp_path, dataset_name="oasis"),
        *cli(spatial_dims=2, image_size=[80, 80], batch_size=8, learning_rate=5e-4, output_dir=tmp_path / "out"),
        *cli(num_epochs=1, iterations_per_epoch=30, val_interval=1),
    )
    dice = [float(v) for v in re.findall(r"Epoch\[\d+\] Metrics -- val_mean_dice: ([0-9.]+)", log)]
    losses = [float(v) for v in re.findall(r"Iter: \d+/30 -- .*?loss: ([0-9.]+)", log)]
    assert len(dice) == 2 and len(losses) == 30
    assert dice[1] > dice[0] + 0.01
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:5])
