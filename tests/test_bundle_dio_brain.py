"""End-to-end runs of the dio_brain bundle through `python -m monai.bundle`, on a synthetic Learn2Reg OASIS.

A tiny large-kernel U-Net (encoder maps 4-4-8, 4 feature channels per level) and 3 solver
iterations per level on 24 x 28 x 24 volumes, so that every config runs as a user runs it in seconds.
"""

from __future__ import annotations

import json
import math

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

BUNDLE = BUNDLES / "dio_brain"
CONFIGS = BUNDLE / "configs"
SIZE = (24, 28, 24)
TINY_NET_ARGS = cli(unet_channels=[4, 4, 8], feature_channels=4)
TINY = [*TINY_NET_ARGS, *cli(iterations=[3, 3, 3])]
TINY_NET = {"unet_channels": [4, 4, 8], "feature_channels": 4}
LEARNING_RATE = 3e-4  # train.json's outer Adam learning rate
MOVING_SPACING = (1.4, 1.2, 1.6)  # mm; the synthetic OASIS volumes are 1 mm isotropic


@pytest.fixture(scope="module")
def oasis(oasis_dataset, tmp_path_factory):
    """One training iteration (validated) on the synthetic Learn2Reg OASIS."""
    root = tmp_path_factory.mktemp("dio")
    common = [*training_args("dio_brain", oasis_dataset / "data", root), *TINY]
    log = bundle_log(
        "run",
        *cli(config_file=CONFIGS / "train.json"),
        *common,
        *cli(output_dir=root / "train", num_epochs=1, iterations_per_epoch=1, val_interval=1),
    )
    return root, common, log


@pytest.fixture(scope="module")
def resampled_pair(oasis_dataset, oasis):
    """A validation pair whose moving image and labels are resampled to another voxel size (and so
    another array size), written with their own affine; fixed stays as released."""
    from monai.data import MetaTensor
    from monai.transforms import Spacing

    root, _, _ = oasis
    pair = json.load(open(oasis_dataset / "data" / "datalist.json"))["validation"][0]
    files = {
        k: (oasis_dataset / "data" / pair[k]).resolve()
        for k in ("fixed_image", "fixed_label", "moving_image", "moving_label")
    }
    out = root / "resampled"
    out.mkdir(exist_ok=True)
    for key, mode, dtype in (("moving_image", "bilinear", np.float32), ("moving_label", "nearest", np.uint8)):
        image = nib.load(files[key])
        array = torch.as_tensor(np.asarray(image.dataobj), dtype=torch.float32)[None]
        data = MetaTensor(array, affine=torch.as_tensor(image.affine))
        resampled = Spacing(pixdim=MOVING_SPACING, mode=mode)(data)
        files[f"resampled_{key}"] = out / f"{key}.nii.gz"
        nib.save(
            nib.Nifti1Image(resampled[0].numpy().astype(dtype), resampled.affine.numpy()), files[f"resampled_{key}"]
        )
    moving = nib.load(files["resampled_moving_image"])
    assert moving.shape != nib.load(files["fixed_image"]).shape
    np.testing.assert_allclose(nib.affines.voxel_sizes(moving.affine), MOVING_SPACING, atol=1e-5)
    return files


def _infer(oasis, files, out, *extra, iterations=[3, 3, 3]):
    root, _, _ = oasis
    log = bundle_log(
        *inference_args("dio_brain", root / "models" / "model.pt", out),
        *TINY_NET_ARGS,
        *cli(
            iterations=iterations,
            fixed=files["fixed_image"],
            fixed_label=files["fixed_label"],
            moving=files["resampled_moving_image"],
            moving_label=files["resampled_moving_label"],
            max_figures=1,
        ),
        *extra,
    )
    case_dirs = [p for p in out.iterdir() if p.is_dir()]
    assert len(case_dirs) == 1
    fixed = nib.load(files["fixed_image"])
    for name in ("warped_image.nii.gz", "warped_label.nii.gz"):
        warped = nib.load(case_dirs[0] / name)
        assert warped.shape == fixed.shape
        np.testing.assert_allclose(warped.affine, fixed.affine, atol=1e-5)
    assert (case_dirs[0] / "ddf.nii.gz").exists() and (case_dirs[0] / "qc.png").exists()
    return case_dirs[0], read_rows(out / "metrics_per_case.csv"), log


def test_training_step_moves_the_weights_by_one_adam_step(oasis):
    root, _, log = oasis
    from monai.utils import set_determinism

    from monai_ext.networks import DIORegistration, build_feature_network

    assert "loss:" in log and "val_mean_dice" in log
    for name in ("model.pt", "checkpoint_last.pt", "model_best.pt"):
        assert (root / "models" / name).exists()
    resume = torch.load(root / "models" / "checkpoint_last.pt", weights_only=True)
    assert {"model", "optimizer", "lr_scheduler", "trainer"} <= set(resume)
    trained = torch.load(root / "models" / "model.pt", weights_only=True)
    # the bundle seeds with set_determinism(0) and builds the network first: the same initialisation
    set_determinism(seed=0)
    initial = DIORegistration(
        build_feature_network(
            "lku", spatial_dims=3, in_channels=1, feature_channels=4, scales=[4, 2, 1], channels=[4, 4, 8]
        )
    ).state_dict()
    set_determinism(seed=None)
    assert set(trained) == set(initial)
    step = max(
        float((trained[k].float() - initial[k].float()).abs().max()) for k in initial if initial[k].is_floating_point()
    )
    # Adam's first step moves every parameter with a non-zero gradient by lr * g / (|g| + eps) ~ lr
    assert step == pytest.approx(LEARNING_RATE, rel=0.02)


def test_evaluation_compares_the_training_solver_with_a_switched_one(oasis_dataset, oasis):
    root, common, _ = oasis
    out = root / "eval"
    log = bundle_log(
        "run",
        *cli(config_file=config_list("dio_brain", "train.json", "evaluate.json")),
        *common,
        *cli(output_dir=out, eval_iterations=[3, 2, 2], max_figures=1),
    )
    assert "training solver vs solver switched at test time" in log
    data = oasis_dataset / "data"
    datalist = json.loads((data / "datalist.json").read_text())
    pairs = {f"{e['fixed_subject']}__{e['moving_subject']}": e for e in datalist["validation"]}
    label_names = {value: datalist["labels"][str(value)] for value in range(1, 36)}
    methods = {"trained_solver": "SGD (free-form)", "switched_solver": "Adam (diffeomorphic)"}
    for setting, method in methods.items():
        per_case = read_rows(out / setting / "metrics_per_case.csv")
        assert sorted(r["method"] for r in per_case) == sorted([method, "Initial"] * len(pairs))
        for row in per_case:  # Initial: the labels as they are; the solver: the warped labels written beside
            entry = pairs[row["case"]]
            written = out / setting / "pairs" / row["case"] / "warped_label.nii.gz"
            moving = data / entry["moving_label"] if row["method"] == "Initial" else written
            assert_dice_row_matches_labels(
                row, data / entry["fixed_label"], moving, label_names, data / entry["moving_label"]
            )
        assert len(list((out / setting / "pairs").glob("*/ddf.nii.gz"))) == len(pairs)
    rows = {r["method"]: r for r in read_rows(out / "comparison.csv")}
    assert list(rows) == list(methods.values())
    for setting, method in methods.items():  # the table's means are the per-case means
        registered = [r for r in read_rows(out / setting / "metrics_per_case.csv") if r["method"] == method]
        assert float(rows[method]["Dice_mean"]) == pytest.approx(np.mean([float(r["Dice_mean"]) for r in registered]))
        assert math.isfinite(float(rows[method]["HD95_mean"])) and float(rows[method]["HD95_mean"]) >= 0.0
    # the greedy diffeomorphic model does not fold
    assert float(rows["Adam (diffeomorphic)"]["NJD"]) == 0.0


def test_inference_keeps_each_image_on_its_own_grid(oasis, resampled_pair, tmp_path):
    # no solver iteration: the transform is the identity in world coordinates, so the moving image,
    # read through the two affines, must come back onto the fixed grid as it was before resampling
    case, rows, _ = _infer(oasis, resampled_pair, tmp_path / "out", iterations=[0, 0, 0])
    assert sorted(r["method"] for r in rows) == ["DIO Adam (diffeomorphic)", "Initial"]
    assert 0.0 <= float(rows[0]["Dice_mean"]) <= 1.0
    # the Initial row reads the unregistered moving image through the same world geometry
    assert float(rows[0]["Dice_mean"]) == pytest.approx(float(rows[1]["Dice_mean"]), abs=1e-6)
    warped = nib.load(case / "warped_image.nii.gz").get_fdata()
    original = nib.load(resampled_pair["moving_image"]).get_fdata()
    fixed = nib.load(resampled_pair["fixed_image"]).get_fdata()
    assert np.corrcoef(warped.ravel(), original.ravel())[0, 1] > 0.97
    assert np.abs(warped - original).mean() < np.abs(fixed - original).mean()
    assert float(np.abs(nib.load(case / "ddf.nii.gz").get_fdata()).max()) == 0.0


def test_inference_switches_solver_and_adds_a_label_prompt(oasis, resampled_pair, tmp_path):
    case, rows, _ = _infer(
        oasis,
        resampled_pair,
        tmp_path / "out",
        "--transform",
        "svf",
        "--optimizer",
        "adam",
        "--label_prompt_weight",
        "1.0",
    )
    assert sorted(r["method"] for r in rows) == ["DIO Adam (svf) + label prompt", "Initial"]
    assert 0.0 <= float(rows[0]["Dice_mean"]) <= 1.0 and math.isfinite(float(rows[0]["NJD"]))
    assert float(np.abs(nib.load(case / "ddf.nii.gz").get_fdata()).max()) > 0.0


def test_2d_pair_registers_with_intensity_features(neurite_slices_dataset, tmp_path):
    """The solver is dimension-agnostic: ``--spatial_dims 2`` registers a pair of neurite-OASIS
    coronal slices (stored L-I, registered in RAS order) with intensities as features, raising
    Dice above Initial without folds; the field of a plane ITK cannot hold is kept in voxels."""
    pair = json.load(open(neurite_slices_dataset / "data" / "datalist.json"))["validation"][0]
    files = {
        k: (neurite_slices_dataset / "data" / v).resolve() for k, v in pair.items() if k.endswith(("image", "label"))
    }
    bundle_log(
        *inference_args("dio_brain", tmp_path / "none.pt", tmp_path / "out"),
        *cli(spatial_dims=2, feature_network="intensity", dataset_name="oasis", iterations=[100, 50, 25]),
        *cli(fixed=files["fixed_image"], moving=files["moving_image"]),
        *cli(fixed_label=files["fixed_label"], moving_label=files["moving_label"]),
    )
    rows = {r["method"]: r for r in read_rows(tmp_path / "out" / "metrics_per_case.csv")}
    assert float(rows["DIO Adam (diffeomorphic)"]["Dice_mean"]) > float(rows["Initial"]["Dice_mean"]) + 0.03
    assert float(rows["DIO Adam (diffeomorphic)"]["NJD"]) == 0.0
    (case,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    assert nib.load(case / "ddf_voxels.nii.gz").shape[-1] == 2


def test_inference_writes_a_learn2reg_submission_scored_as_its_evaluator_scores(oasis_dataset, oasis, tmp_path):
    root, _, _ = oasis
    data = oasis_dataset / "data"
    datalist = json.loads((data / "datalist.json").read_text())
    pair = datalist["validation"][0]
    files = {k: (data / pair[k]).resolve() for k in ("fixed_image", "moving_image", "fixed_label", "moving_label")}
    out, submission = tmp_path / "out", tmp_path / "submission"
    bundle_log(
        *inference_args("dio_brain", root / "models" / "model.pt", out),
        *TINY_NET_ARGS,
        *cli(iterations=[3, 3, 3], max_figures=0, submission_dir=submission),
        *cli(**{k.replace("_image", ""): v for k, v in files.items()}),
    )
    fixed_id, moving_id = (files[k].name.split("_")[1] for k in ("fixed_image", "moving_image"))
    disp_path = submission / f"disp_{fixed_id}_0000_{moving_id}_0000.nii.gz"  # the current Learn2Reg name
    assert [p.name for p in submission.iterdir()] == [disp_path.name]
    (case_scores,) = json.loads((out / "leaderboard_learn2reg.json").read_text())["cases"].values()
    labels = datalist["evaluation"]["dice_labels"]
    assert 0 not in labels
    expected = evaluator_scores(disp_path, files["fixed_label"], files["moving_label"], labels)
    for score, value in expected.items():
        assert case_scores[score] == pytest.approx(value, abs=1e-4), score
