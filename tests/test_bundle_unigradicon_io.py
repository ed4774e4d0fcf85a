"""End-to-end runs of the unigradicon_io bundle on a synthetic LUMIR with a randomly initialised
uniGradICON-architecture model (66^3 grid, 1-2 IO steps), as a user runs them."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_ext.networks import unigradicon_network

from helpers import (
    BUNDLES,
    assert_dice_row_matches_labels,
    bundle_log,
    cli,
    config_list,
    inference_args,
    read_rows,
    training_args,
)

pytestmark = pytest.mark.slow

BUNDLE = BUNDLES / "unigradicon_io"
CONFIGS = BUNDLE / "configs"
SIZE = "[66,66,66]"
TABLE1 = ["Direct Inference", "IO (n=1)", "IO-GP (n=1)", "IO (n=2)", "IO-GP (n=2)"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """'Official' weights: a random uniGradICON state dict saved as Step_2_final.trch is, and one with
    every weight zero (its field is exactly the identity)."""
    root = tmp_path_factory.mktemp("unigradicon")
    torch.manual_seed(0)
    net = unigradicon_network(input_shape=None)
    for p in net.parameters():  # non-zero last layers, so the field is not the identity
        p.data.add_(1e-3 * torch.randn_like(p))
    torch.save(net.state_dict(), root / "Step_2_final.trch")
    torch.save({k: torch.zeros_like(v) for k, v in net.state_dict().items()}, root / "zero.trch")
    return root


def test_fine_tuning_from_official_weights(lumir_dataset, weights):
    root = weights
    bundle_log(
        "run",
        *cli(config_file=CONFIGS / "train.json"),
        *training_args(
            "unigradicon_io",
            lumir_dataset / "data",
            root,
            output_dir=root / "train",
            pretrained_weights=root / "Step_2_final.trch",
            image_size=SIZE,
            batch_size=1,
            pairs_per_epoch=1,
            num_epochs=1,
            val_interval=5,
            augmentation_start_epoch=0,
        ),
    )
    official = torch.load(root / "Step_2_final.trch", weights_only=True)
    tuned = torch.load(root / "models" / "model.pt", weights_only=True)
    assert set(tuned) == set(official)
    # one Adam step (lr 5e-5) away from the official weights
    key = next(k for k in official if official[k].dtype.is_floating_point and official[k].numel() > 100)
    assert not torch.equal(tuned[key], official[key]) and torch.allclose(tuned[key], official[key], atol=1e-3)


def test_table1_evaluation(lumir_dataset, weights):
    out = weights / "eval"
    data = lumir_dataset / "data"
    log = bundle_log(
        "run",
        *cli(
            config_file=config_list("unigradicon_io", "train.json", "evaluate.json"),
            bundle_root=BUNDLE,
            dataset_dir=data,
            ckpt_path=weights / "Step_2_final.trch",
            output_dir=out,
            image_size=SIZE,
            num_workers=0,
            io_steps_short=1,
            io_steps_long=2,
        ),
    )
    for name in TABLE1:
        assert name in log
    assert [r["method"] for r in read_rows(out / "comparison.csv")] == TABLE1
    datalist = json.loads((data / "datalist.json").read_text())
    pairs = {f"{e['fixed_subject']}__{e['moving_subject']}": e for e in datalist["validation_evaluated"]}
    label_names = {
        value: datalist["labels"].get(str(value), str(value)) for value in datalist["evaluation"]["dice_labels"]
    }
    summary = {r["method"]: r for r in read_rows(out / "comparison.csv")}
    smoothness = {}
    for folder, method in zip(("direct", "io_short", "io_gp_short", "io_long", "io_gp_long"), TABLE1):
        rows = read_rows(out / folder / "metrics_per_case.csv")
        assert sorted(r["method"] for r in rows) == sorted([method, "Initial"] * len(pairs))
        for row in rows:
            entry = pairs[row["case"]]
            if "fixed_label" not in entry:  # a landmark pair of LUMIR's evaluation: TRE, no Dice
                assert np.isfinite(float(row["TRE"])) and np.isnan(float(row["Dice_mean"]))
            elif row["method"] == "Initial":  # the unregistered pair, scored from the label files (label 0 counted)
                assert_dice_row_matches_labels(
                    row, data / entry["fixed_label"], data / entry["moving_label"], label_names
                )
        registered = [r for r in rows if r["method"] == method]
        smoothness[method] = [float(r["std_log_jac"]) for r in registered]
        # the table holds each method's mean over the pairs
        for column in ("Dice_mean", "HD95_mean"):
            assert float(summary[method][column]) == pytest.approx(np.nanmean([float(r[column]) for r in registered]))
        assert {"Dice", "HD95", "SDlogJ", "NDV", "TRE"} <= set(
            json.loads((out / folder / "leaderboard_lumir.json").read_text())["aggregates"]
        )
    # instance optimisation changed every pair's field (and more with more steps)
    direct = smoothness.pop("Direct Inference")
    for method, values in smoothness.items():
        assert all(a != b for a, b in zip(values, direct)), method
    assert smoothness["IO (n=1)"] != smoothness["IO (n=2)"]


def _infer(lumir_dataset, weights, tmp_path, checkpoint, io_mode):
    data = lumir_dataset / "data"
    pair = json.loads((data / "datalist.json").read_text())["validation"][0]
    fixed, moving = (data / pair[k] for k in ("fixed_image", "moving_image"))
    out, submission = tmp_path / io_mode / checkpoint / "out", tmp_path / io_mode / checkpoint / "submission"
    bundle_log(
        *inference_args(
            "unigradicon_io",
            weights / checkpoint,
            out,
            image_size=SIZE,
            fixed=fixed,
            moving=moving,
            io_mode=io_mode,
            io_steps=1,
            submission_dir=submission,
        ),
    )
    files = list(submission.glob("disp_*_*.nii.gz"))
    assert len(files) == 1 and nib.load(files[0]).shape == (*nib.load(fixed).shape, 3)
    methods = {r["method"] for r in read_rows(out / "metrics_per_case.csv")}
    return np.asarray(nib.load(files[0]).dataobj), methods


def test_inference_one_pair_with_official_weights(lumir_dataset, weights, tmp_path):
    direct, methods = _infer(lumir_dataset, weights, tmp_path, "Step_2_final.trch", "none")
    assert methods == {"uniGradICON", "Initial"}
    # the weights in the file are the ones that predict: all-zero weights give exactly the identity
    zero, _ = _infer(lumir_dataset, weights, tmp_path, "zero.trch", "none")
    assert np.abs(zero).max() == 0.0 and np.abs(direct).max() > 1e-3
    # one projected IO step (AMSGrad, lr 2e-5) moves the field a little away from the direct one
    projected, methods = _infer(lumir_dataset, weights, tmp_path, "Step_2_final.trch", "projected")
    assert methods == {"uniGradICON + IO-GP", "Initial"}
    assert 0.0 < np.abs(projected - direct).max() < 0.5 * np.abs(direct).max()
