"""RegistrationMetricsHandler's LUMIR-style options (Jacobian region, landmark TRE) and the
method comparison table (io_gradient_projection.md, Table 1)."""

from __future__ import annotations

import csv
import math
from types import SimpleNamespace

import pytest
import torch
from monai.data import MetaTensor

from monai_ext.engines import RegistrationEvaluator
from monai_ext.handlers import (
    RegistrationMetricsHandler,
    format_method_comparison,
    format_results_table,
    read_metrics_summary,
    write_method_comparison,
)
from monai_ext.metrics import non_diffeomorphic_volume


class FixedField(torch.nn.Module):
    """A 'network' returning one given DDF (1, ndim, *spatial) for every pair."""

    def __init__(self, ddf: torch.Tensor) -> None:
        super().__init__()
        self.ddf = ddf
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return self.ddf.expand(x.shape[0], *self.ddf.shape[1:]) + 0 * self.dummy


def _pair(spatial, spacing, moving=None, landmarks=None):
    affine = torch.eye(4, dtype=torch.float64)
    affine[[0, 1, 2], [0, 1, 2]] = torch.tensor(list(spacing) + [1.0] * (3 - len(spacing)), dtype=torch.float64)

    def meta(t):
        return MetaTensor(t[None, None].float(), affine=affine[None], meta={"filename_or_obj": ["/d/x.nii.gz"]})

    fixed = torch.ones(spatial)
    batch = {
        "fixed_image": meta(fixed),
        "moving_image": meta(fixed if moving is None else moving),
        "fixed_subject": ["f"],
        "moving_subject": ["m"],
    }
    if landmarks is not None:
        batch["fixed_landmarks"] = meta(landmarks[0])
        batch["moving_landmarks"] = meta(landmarks[1])
    return batch


def _run(tmp_path, ddf, batch, **kwargs):
    handler = RegistrationMetricsHandler(tmp_path, label_names=None, method_name="m", **kwargs)
    evaluator = RegistrationEvaluator(
        device="cpu", val_data_loader=[batch], network=FixedField(ddf), val_handlers=[handler]
    )
    evaluator.run()
    return handler, evaluator.state.metrics


def _folded_ddf(spatial, fold_at):
    """DDF whose axis-0 component folds the grid between slices fold_at and fold_at + 1 (phi_0 decreases there)."""
    ddf = torch.zeros(1, len(spatial), *spatial, dtype=torch.float64)
    ddf[0, 0, fold_at + 1] = -3.0  # phi_0(fold_at + 1) = fold_at - 2 < phi_0(fold_at)
    return ddf


def test_jacobian_mask_none_is_the_whole_grid(tmp_path):
    spatial = (8, 9, 7)
    ddf = _folded_ddf(spatial, 3)
    _, metrics = _run(tmp_path, ddf, _pair(spatial, (1.0, 1.0, 1.0)))
    expected = float(non_diffeomorphic_volume(ddf)[0])
    assert expected > 0
    assert metrics["m/NDV"] == pytest.approx(expected)
    assert metrics["m/NJD"] > 0


def test_moving_nonzero_region_crops_the_border_and_keeps_foreground(tmp_path):
    spatial = (8, 9, 7)
    ddf = _folded_ddf(spatial, 3)
    # foreground: every voxel but the last two slices along axis 2; inside the one-voxel border crop
    # that leaves 6 x 7 x 4 voxels (axis 2: slices 1..4)
    moving = torch.ones(spatial)
    moving[:, :, 5:] = 0.0
    region = 6 * 7 * 4
    batch = _pair(spatial, (1.0, 1.0, 1.0), moving=moving)
    _, metrics = _run(tmp_path / "masked", ddf, batch, jacobian_mask="moving_nonzero")
    _, whole = _run(tmp_path / "whole", ddf, _pair(spatial, (1.0, 1.0, 1.0), moving=moving))
    # the fold only touches slices 3 and 4 along axis 0 and is uniform along axes 1 and 2: the folded
    # volume per (axis 1, axis 2) column is the same, so the masked NDV counts the same folded
    # volume per column over 7 * 4 columns and divides by the region instead of the grid
    per_column = whole["m/NDV"] / 100 * 8 * 9 * 7 / (9 * 7)
    assert metrics["m/NDV"] == pytest.approx(100 * per_column * 7 * 4 / region)
    # NJD: the central-difference determinant is negative on whole (axis 1, axis 2) columns too
    per_column_njd = whole["m/NJD"] / 100 * 8 * 9 * 7 / (9 * 7)
    assert metrics["m/NJD"] == pytest.approx(100 * per_column_njd * 7 * 4 / region)


def test_moving_nonzero_excludes_a_fold_in_the_background(tmp_path):
    spatial = (10, 6, 6)
    ddf = _folded_ddf(spatial, 6)  # folds slices 5..8 along axis 0
    moving = torch.zeros(spatial)
    moving[:4] = 1.0  # foreground: axis-0 slices 0..3 only
    _, metrics = _run(tmp_path, ddf, _pair(spatial, (1.0, 1.0, 1.0), moving=moving), jacobian_mask="moving_nonzero")
    assert metrics["m/NDV"] == 0.0
    assert metrics["m/NJD"] == 0.0
    assert metrics["m/std_log_jac"] == pytest.approx(0.0)


def test_jacobian_mask_is_checked():
    with pytest.raises(ValueError, match="jacobian_mask"):
        RegistrationMetricsHandler("out", label_names=None, jacobian_mask="fixed_nonzero")
    with pytest.raises(ValueError, match="tre_method"):
        RegistrationMetricsHandler("out", label_names=None, tre_method="nearest")


@pytest.mark.parametrize("tre_method", ["points", "warped_map"])
def test_tre_columns_from_landmark_maps(tmp_path, tre_method):
    spatial = (12, 14)
    fixed = torch.zeros(spatial)
    moving = torch.zeros(spatial)
    fixed[5, 5], moving[5, 7] = 1, 1  # matched exactly by u = (0, 2)
    fixed[9, 3], moving[9, 6] = 2, 2  # one voxel off after u = (0, 2)
    fixed[2, 2] = 3  # no moving counterpart: not scored
    ddf = torch.zeros(1, 2, *spatial)
    ddf[0, 1] = 2.0
    batch = _pair(spatial, (1.5, 2.0), landmarks=(fixed, moving))
    handler, metrics = _run(tmp_path, ddf, batch, tre_method=tre_method)
    # after: (0 + 1 voxel * 2.0 mm) / 2 landmarks; initial: (2 + 3 voxels) * 2.0 mm / 2
    assert metrics["m/TRE"] == pytest.approx(1.0, abs=1e-5)
    assert metrics["Initial/TRE"] == pytest.approx(5.0)
    rows = list(csv.DictReader(open(tmp_path / "metrics_per_case.csv")))
    assert {r["method"]: float(r["TRE"]) for r in rows} == pytest.approx({"m": 1.0, "Initial": 5.0}, abs=1e-5)
    assert "TRE(mm)" in format_results_table(handler.summary(), [], 1)


def test_no_landmarks_leaves_tre_empty(tmp_path):
    handler, metrics = _run(tmp_path, torch.zeros(1, 2, 6, 6), _pair((6, 6), (1.0, 1.0)))
    assert math.isnan(metrics["m/TRE"])
    assert "TRE" not in format_results_table(handler.summary(), [], 1)


# ----------------------------------------------------------------------------- method comparison

# Table 1 of the paper: Dice (%), HD95 (mm), NDV (1e-4) as mean ± std, stored as the handler stores
# them (Dice as a fraction, NDV in percent)
TABLE1 = {
    "Direct Inference": {"Dice_mean": (0.7457, 0.0265), "HD95_mean": (3.58, 0.30), "NDV": (0.00106, 0.00136)},
    "IO (n=50)": {"Dice_mean": (0.7523, 0.0255), "HD95_mean": (3.51, 0.30), "NDV": (0.00405, 0.00343)},
    "IO-GP (n=50)": {"Dice_mean": (0.7526, 0.0256), "HD95_mean": (3.50, 0.29), "NDV": (0.00400, 0.00351)},
}


def test_format_method_comparison_reproduces_table1_rows():
    text = format_method_comparison(TABLE1, title=None)
    lines = text.splitlines()
    assert lines[0].split() == ["Method", "Dice(%)", "HD95(mm)", "NDV(1e-4)", "TRE(mm)"]
    assert set(lines[1]) == {"-"}
    assert lines[2].split() == ["Direct", "Inference", "74.57±2.65", "3.58±0.30", "0.106±0.136", "-"]
    assert lines[4].split() == ["IO-GP", "(n=50)", "75.26±2.56", "3.50±0.29", "0.400±0.351", "-"]
    # columns are chosen and ordered by the caller
    assert format_method_comparison(TABLE1, columns=["NDV"], title=None).splitlines()[2].split()[-1] == "0.106±0.136"


def _write_summary(folder, method, stats, cases=2):
    """metrics_summary.csv written by RegistrationMetricsHandler itself, from per-case rows."""
    handler = RegistrationMetricsHandler(folder, label_names=None, method_name=method)
    for i in range(cases):
        sign = 1 if i % 2 == 0 else -1  # two cases mean +- std give mean and (population) std exactly
        for name in (method, "Initial"):
            row = {"case": f"c{i}", "method": name}
            row.update({c: float("nan") for c in handler.columns()})
            row.update({c: m + sign * s for c, (m, s) in stats.items()} if name == method else {"TRE": 7.0})
            handler.rows.append(row)
    handler._finalise(SimpleNamespace(state=SimpleNamespace(metrics={})))
    return folder / "metrics_summary.csv"


def test_write_method_comparison_from_handler_summaries(tmp_path):
    paths = {}
    for k, (name, stats) in enumerate(TABLE1.items()):
        row_name = "registered" if k == 1 else name
        paths[name] = _write_summary(tmp_path / f"run{k}", row_name, {**stats, "TRE": (2.3 + k, 0.1)})
    text = write_method_comparison(paths, tmp_path / "cmp" / "comparison.csv", include_initial=True)
    lines = text.splitlines()
    assert lines[0].startswith("Comparison of methods")
    assert [line.split("  ")[0] for line in lines[3:]] == ["Initial", "Direct Inference", "IO (n=50)", "IO-GP (n=50)"]
    # the file named its row "registered": its only non-Initial row is used, under the given name
    assert lines[5].split()[2:] == ["75.23±2.55", "3.51±0.30", "0.405±0.343", "3.30±0.10"]
    assert lines[3].split()[1:] == ["-", "-", "-", "7.00±0.00"]
    # one row per method, mean and std of each column, in the summaries' units
    with open(tmp_path / "cmp" / "comparison.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = {r["method"]: r for r in reader}
    assert reader.fieldnames == [
        "method",
        "Dice_mean",
        "Dice_mean_std",
        "HD95_mean",
        "HD95_mean_std",
        "NDV",
        "NDV_std",
        "TRE",
        "TRE_std",
    ]
    assert list(rows) == ["Initial", "Direct Inference", "IO (n=50)", "IO-GP (n=50)"]
    assert float(rows["IO-GP (n=50)"]["Dice_mean"]) == pytest.approx(0.7526)
    assert float(rows["IO-GP (n=50)"]["Dice_mean_std"]) == pytest.approx(0.0256)
    assert float(rows["Direct Inference"]["NDV"]) == pytest.approx(0.00106)
    assert math.isnan(float(rows["Initial"]["Dice_mean"]))
    # the handler's own summary file reads back as {method: {column: (mean, std)}}
    summary = read_metrics_summary(paths["IO (n=50)"])
    assert list(summary) == ["Initial", "registered"]
    assert summary["registered"]["HD95_mean"] == pytest.approx((3.51, 0.30))


def test_write_method_comparison_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        write_method_comparison({"A": tmp_path / "missing.csv"}, tmp_path / "out.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="bad.csv"):
        write_method_comparison({"A": bad}, tmp_path / "out.csv")
    # a file holding two methods needs the row named
    two = tmp_path / "two.csv"
    two.write_text("method,statistic,NDV\nX,mean,1\nX,std,0\nY,mean,2\nY,std,0\n")
    with pytest.raises(ValueError, match="name the row"):
        write_method_comparison({"Z": two}, tmp_path / "out.csv")
    text = write_method_comparison({"Y": two}, tmp_path / "out.csv", columns=["NDV"], title=None)
    assert text.splitlines()[2].split() == ["Y", "200.000±0.000"]  # 2 % = 200 x 1e-4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "out.csv", "two.csv"]


def test_runs_into_one_output_dir_accumulate_and_a_rescored_pair_replaces_its_rows(tmp_path):
    spatial = (8, 9, 7)
    first, second = _pair(spatial, (1.0, 1.0, 1.0)), _pair(spatial, (1.0, 1.0, 1.0))
    second["fixed_subject"], second["moving_subject"] = ["g"], ["n"]
    _run(tmp_path, torch.zeros(1, 3, *spatial), first)
    _, metrics = _run(tmp_path, _folded_ddf(spatial, 3), second)
    rows = list(csv.DictReader(open(tmp_path / "metrics_per_case.csv")))
    assert sorted((r["case"], r["method"]) for r in rows) == [
        ("f__m", "Initial"),
        ("f__m", "m"),
        ("g__n", "Initial"),
        ("g__n", "m"),
    ]
    folded = float(non_diffeomorphic_volume(_folded_ddf(spatial, 3))[0])
    assert metrics["m/NDV"] == pytest.approx(folded / 2)  # the mean over both pairs
    _run(tmp_path, _folded_ddf(spatial, 3), first)  # the first pair scored again: its rows replaced
    rows = list(csv.DictReader(open(tmp_path / "metrics_per_case.csv")))
    assert len(rows) == 4 and all(float(r["NDV"]) == pytest.approx(folded) for r in rows if r["method"] == "m")
    # a table with other columns is refused, the file left as it was
    before = (tmp_path / "metrics_per_case.csv").read_bytes()
    with pytest.raises(ValueError, match="holds metrics with other columns"):
        RegistrationMetricsHandler(tmp_path, label_names={1: "a"}, method_name="m")._reset(None)
    assert (tmp_path / "metrics_per_case.csv").read_bytes() == before
