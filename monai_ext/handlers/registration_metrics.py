"""Per-case registration metrics, their summary, and the results table (GSMorph Table 1 layout)."""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.utils import convert_to_tensor, min_version, optional_import

from monai_ext.handlers.case_names import pair_case_names
from monai_ext.io.atomic import atomic_write_path
from monai_ext.metrics import (
    dice_per_label,
    foreground_interior,
    hd95_per_label,
    mean_squared_error,
    negative_jacobian_fraction,
    non_diffeomorphic_volume,
    std_log_jacobian,
    tre_from_landmark_maps,
)
from monai_ext.metrics.landmarks import TRE_METHODS
from monai_ext.options import check_option
from monai_ext.spatial import affine_spacing, batch_affines, warp_moving

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")

__all__ = ["RegistrationMetricsHandler", "format_results_table", "JACOBIAN_MASKS"]

INITIAL = "Initial"

#: Regions for the Jacobian-based measures (NJD, NDV, std log|J|): None = the whole grid.
JACOBIAN_MASKS = (None, "moving_nonzero")


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    finite = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if finite.size == 0:
        return float("nan"), float("nan")
    return float(finite.mean()), float(finite.std())


class RegistrationMetricsHandler:
    """Ignite handler: per-pair Dice, HD95, MSE, NJD, NDV, std log|J| and TRE, before and after registration.

    For every pair of every iteration it computes, from ``engine.state.output`` of a
    ``RegistrationEvaluator``:

    - ``Initial`` row (identity transform): Dice / HD95 of ``moving_label`` against ``fixed_label``,
      MSE of ``moving_image`` against ``fixed_image`` and the landmark TRE;
    - the method's row: the same for ``warped_label`` / ``warped_image`` and the DDF, plus the
      percentage of negative Jacobian determinants (NJD), the non-diffeomorphic volume (NDV, %,
      Liu et al. 2024) and the std of log|J| of the DDF.

    Dice and HD95 are per structure (``label_names``) and their mean over structures; HD95 is in mm,
    from the spacing of the fixed image's affine (MONAI's edge-voxel surface distances; the
    leaderboards' HD95 in voxels is :class:`LeaderboardScoresHandler`'s). A structure absent from the
    fixed or from the original moving label map is NaN and left out of means, as the LUMIR and
    Learn2Reg evaluators count it.

    TRE (mm, mean over the landmarks of a pair) is scored when the pair carries ``fixed_landmarks``
    and ``moving_landmarks`` landmark label maps (in ``engine.state.output`` or else in
    ``engine.state.batch``; one value per landmark, on the image grid), pairing landmarks by value
    (:func:`monai_ext.metrics.tre_from_landmark_maps`; a landmark scoring NaN is left out of the
    pair's mean). Otherwise the column is NaN.

    The Jacobian-based measures cover the whole grid (``jacobian_mask=None``) or, with
    ``"moving_nonzero"``, the voxels where the moving image is > 0 (any channel) without the
    outermost voxel layer of the grid. The latter is the official LUMIR evaluation's NDV region
    (JHU-MedImage-Reg/LUMIR_L2R, ``L2R_LUMIR_Eval/evaluation.py``: ``moving image[1:-1, 1:-1, 1:-1]
    > 0``, the NDV reported as a percentage of that region). LUMIR reports neither NJD nor std
    log|J|; the same region is used for them here so that the three measures describe one volume.
    The mask is read from ``moving_image`` as the evaluator outputs it, so intensity preprocessing
    must keep the background at 0 (LUMIR's [0, 255] -> [0, 1] scaling and uniGradICON's
    min/percentile scaling of skull-stripped images do).

    When the run completes it writes ``metrics_per_case.csv`` (one row per pair and method) and
    ``metrics_summary.csv`` (mean and std per method) into ``output_dir`` (atomically), logs the
    table, and stores the summary in ``engine.state.metrics`` under ``"<method>/<column>"``. Runs
    into one ``output_dir`` accumulate: the rows already in ``metrics_per_case.csv`` are kept, a pair
    scored again replaces its own rows, and the summary covers them all; a table with other columns
    is refused rather than overwritten.

    Args:
        output_dir: folder for the CSV files.
        label_names: label value -> structure name, e.g. ``{1: "LV", 2: "Myo", 3: "RV"}``; None scores
            the non-zero values present in each pair's labels (mean Dice / HD95 only).
        method_name: name of the method's row, e.g. ``"GSMorph"``.
        include_initial: also report the identity transform ("Initial").
        logger_name: logger used for the table.
        jacobian_mask: region of NJD, NDV and std log|J|: None (whole grid) or ``"moving_nonzero"``.
        tre_method: ``"points"`` (fixed landmark centroids mapped through ``x + u(x)``) or
            ``"warped_map"`` (centroids of the nearest-neighbour warped moving landmark map, LUMIR's
            official way); see :mod:`monai_ext.metrics.landmarks`.
    """

    def __init__(
        self,
        output_dir: str | Path,
        label_names: Mapping[Any, str] | None,
        method_name: str = "registered",
        include_initial: bool = True,
        logger_name: str | None = None,
        jacobian_mask: str | None = None,
        tre_method: str = "points",
    ) -> None:
        self.output_dir = Path(output_dir)
        # None: score, per pair, every non-zero label value found in the fixed or moving label map
        self.labels = None if label_names is None else [int(k) for k in label_names]
        self.names = [] if label_names is None else [str(v) for v in label_names.values()]
        if self.labels is not None and not self.labels:
            raise ValueError("label_names is empty: give at least one label value, or None to use the labels found.")
        check_option("jacobian_mask", jacobian_mask, JACOBIAN_MASKS)
        check_option("tre_method", tre_method, TRE_METHODS)
        self.method_name = method_name
        self.include_initial = include_initial
        self.jacobian_mask = jacobian_mask
        self.tre_method = tre_method
        self.logger = logging.getLogger(logger_name or __name__)
        self.rows: list[dict[str, Any]] = []

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._finalise)

    def _reset(self, engine) -> None:
        self.rows = self._earlier_rows()

    def _earlier_rows(self) -> list[dict[str, Any]]:
        """The rows an earlier run wrote into ``output_dir`` (kept: results accumulate, a pair scored
        again replaces its rows); refused when that table has other columns."""
        path = self.output_dir / "metrics_per_case.csv"
        if not path.is_file():
            return []
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            columns = ["case", "method"] + self.columns()
            if reader.fieldnames != columns:
                raise ValueError(
                    f"{path} holds metrics with other columns ({', '.join(reader.fieldnames or [])}); "
                    "write to another output_dir, or remove the file to start a new table."
                )
            rows = [{k: v if k in ("case", "method") else float(v) for k, v in row.items()} for row in reader]
        self.logger.info(f"{path}: keeping the metrics of {len({r['case'] for r in rows})} earlier pairs.")
        return rows

    def columns(self) -> list[str]:
        dice = [f"Dice_{n}" for n in self.names] + ["Dice_mean"]
        hd95 = [f"HD95_{n}" for n in self.names] + ["HD95_mean"]
        return dice + hd95 + ["MSE", "NJD", "NDV", "std_log_jac", "TRE"]

    def _jacobian_region(self, moving: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor | None:
        """``(B, *spatial)`` boolean region of the Jacobian-based measures, or None for the whole grid."""
        if self.jacobian_mask is None:
            return None
        if tuple(moving.shape[2:]) != tuple(ddf.shape[2:]):
            raise ValueError(
                f"jacobian_mask={self.jacobian_mask!r} needs moving_image on the DDF grid, got "
                f"{tuple(moving.shape[2:])} and {tuple(ddf.shape[2:])}."
            )
        return foreground_interior(moving).to(ddf.device)

    def _landmark_tre(self, engine, ddf: torch.Tensor | None, spacings) -> np.ndarray | None:
        """Mean TRE (mm) per pair, or None when the pair has no landmark maps."""
        output, batch = engine.state.output, engine.state.batch or {}
        maps = [output.get(k, batch.get(k)) for k in ("fixed_landmarks", "moving_landmarks")]
        if any(m is None for m in maps):
            return None
        ndim = len(spacings[0])
        fixed_maps, moving_maps = (torch.as_tensor(m) for m in maps)
        for key, m in zip(("fixed_landmarks", "moving_landmarks"), (fixed_maps, moving_maps)):
            if m.ndim != ndim + 2 or m.shape[0] != len(spacings) or m.shape[1] != 1:
                raise ValueError(
                    f"{key} must be a batch of landmark label maps (B, 1, *spatial) with B = {len(spacings)} and "
                    f"{ndim} spatial dims, got shape {tuple(m.shape)}."
                )
        values = []
        for i, spacing in enumerate(spacings):
            tre = tre_from_landmark_maps(
                fixed_maps[i, 0], moving_maps[i, 0], None if ddf is None else ddf[i], spacing, method=self.tre_method
            )
            finite = tre[torch.isfinite(tre)]
            values.append(float(finite.mean()) if finite.numel() else float("nan"))
        return np.asarray(values, dtype=float)

    @staticmethod
    def _unregistered_on_fixed_grid(output: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The moving image and label before registration, read on the fixed grid.

        Pairs on one grid pass unchanged. When the moving image keeps its own grid (DIO registers
        images of different sizes and spacings, §4.3) the identity transform is applied through
        the pair's ``fixed_to_moving`` geometry (world coordinates).
        """
        fixed, moving, label = output["fixed_image"], output["moving_image"], output.get("moving_label")
        geometry = output.get("fixed_to_moving")
        if geometry is None and fixed.shape[2:] == moving.shape[2:]:
            return moving, label
        identity = torch.zeros(
            (fixed.shape[0], fixed.ndim - 2, *fixed.shape[2:]), dtype=torch.float32, device=fixed.device
        )
        warped_label = (
            None
            if label is None
            else warp_moving(convert_to_tensor(label, track_meta=False), identity, geometry, label=True)
        )
        return warp_moving(convert_to_tensor(moving, track_meta=False).float(), identity, geometry), warped_label

    def _label_metrics(
        self, pred: torch.Tensor, ref: torch.Tensor, moving: torch.Tensor, spacings, labels: Sequence[int]
    ) -> dict[str, np.ndarray]:
        # a structure missing from the fixed or the original moving map is not scored (NaN)
        dice = dice_per_label(pred, ref, labels, moving_label=moving).cpu().double().numpy()
        hd95 = hd95_per_label(pred, ref, labels, spacing=spacings, moving_label=moving).cpu().double().numpy()
        out = {f"Dice_{n}": dice[:, i] for i, n in enumerate(self.names)}
        out.update({f"HD95_{n}": hd95[:, i] for i, n in enumerate(self.names)})
        with np.errstate(invalid="ignore"):
            out["Dice_mean"] = np.array([_mean_std(row)[0] for row in dice])
            out["HD95_mean"] = np.array([_mean_std(row)[0] for row in hd95])
        return out

    def __call__(self, engine) -> None:
        output = engine.state.output
        batch = engine.state.batch
        fixed, moving, warped, ddf = (output[k] for k in ("fixed_image", "moving_image", "warped_image", "pred"))
        batch_size, ndim = fixed.shape[0], fixed.ndim - 2
        names = pair_case_names(batch, batch_size)
        spacings = [affine_spacing(a, ndim) for a in batch_affines(fixed, batch_size)]
        results: dict[str, dict[str, np.ndarray]] = {}
        has_labels = "fixed_label" in output and "warped_label" in output
        with torch.no_grad():
            region = self._jacobian_region(moving, ddf)
            registered = {"MSE": mean_squared_error(warped, fixed).cpu().double().numpy()}
            registered["NJD"] = negative_jacobian_fraction(ddf, mask=region).cpu().double().numpy()
            registered["NDV"] = non_diffeomorphic_volume(ddf, mask=region).cpu().double().numpy()
            registered["std_log_jac"] = std_log_jacobian(ddf, mask=region).cpu().double().numpy()
            tre = self._landmark_tre(engine, ddf, spacings)
            if tre is not None:
                registered["TRE"] = tre
            if has_labels:
                labels = self.labels
                if labels is None:
                    found = torch.unique(torch.cat([output["fixed_label"].flatten(), output["moving_label"].flatten()]))
                    labels = [int(v) for v in found.tolist() if v != 0]
                registered.update(
                    self._label_metrics(
                        output["warped_label"], output["fixed_label"], output["moving_label"], spacings, labels
                    )
                )
            results[self.method_name] = registered
            if self.include_initial:
                moving_on_fixed, moving_label_on_fixed = self._unregistered_on_fixed_grid(output)
                initial = {"MSE": mean_squared_error(moving_on_fixed, fixed).cpu().double().numpy()}
                if has_labels:
                    initial.update(
                        self._label_metrics(
                            moving_label_on_fixed, output["fixed_label"], output["moving_label"], spacings, labels
                        )
                    )
                if tre is not None:
                    initial["TRE"] = self._landmark_tre(engine, None, spacings)
                results[INITIAL] = initial
        new_rows = []
        for method, values in results.items():
            for i, name in enumerate(names):
                row = {"case": name, "method": method}
                for column in self.columns():
                    row[column] = float(values[column][i]) if column in values else float("nan")
                new_rows.append(row)
        scored = {(r["case"], r["method"]) for r in new_rows}
        self.rows = [r for r in self.rows if (r["case"], r["method"]) not in scored] + new_rows

    def summary(self) -> dict[str, dict[str, tuple[float, float]]]:
        """``{method: {column: (mean, std)}}`` over the cases of the table (this run's and earlier ones')."""
        methods = ([INITIAL] if self.include_initial else []) + [self.method_name]
        return {
            m: {c: _mean_std([r[c] for r in self.rows if r["method"] == m]) for c in self.columns()} for m in methods
        }

    def _finalise(self, engine) -> None:
        if not self.rows:
            self.logger.warning("RegistrationMetricsHandler saw no pairs: nothing to report.")
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        columns = ["case", "method"] + self.columns()
        with atomic_write_path(self.output_dir / "metrics_per_case.csv") as tmp:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=columns)
                writer.writeheader()
                writer.writerows(self.rows)
        summary = self.summary()
        with atomic_write_path(self.output_dir / "metrics_summary.csv") as tmp:
            with open(tmp, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["method", "statistic"] + self.columns())
                for method, stats in summary.items():
                    writer.writerow([method, "mean"] + [stats[c][0] for c in self.columns()])
                    writer.writerow([method, "std"] + [stats[c][1] for c in self.columns()])
        for method, stats in summary.items():
            for column, (mean, _) in stats.items():
                engine.state.metrics[f"{method}/{column}"] = mean
        n_cases = len({r["case"] for r in self.rows})
        self.logger.info("\n" + format_results_table(summary, self.names, n_cases))


def format_results_table(
    summary: Mapping[str, Mapping[str, tuple[float, float]]],
    names: Sequence[str],
    n_cases: int,
    max_structures: int = 8,
) -> str:
    """Text table shaped like GSMorph Table 1: Dice (%), HD95 (mm), MSE (1e-2), NJD (%), NDV (%) as
    mean±std, TRE (mm) when any method has one, then Dice per structure when there are at most
    ``max_structures`` of them."""

    def cell(stats, column, scale=1.0, digits=2):
        mean, std = stats.get(column, (float("nan"), float("nan")))
        if math.isnan(mean):
            return "-"
        return f"{mean * scale:.{digits}f}±{std * scale:.{digits}f}"

    names = list(names) if len(names) <= max_structures else []
    with_tre = any(not math.isnan(stats.get("TRE", (float("nan"),))[0]) for stats in summary.values())
    header = (
        ["Method", "Dice(%)", "HD95(mm)", "MSE(1e-2)", "NJD(%)", "NDV(%)"]
        + (["TRE(mm)"] if with_tre else [])
        + [f"Dice {n}(%)" for n in names]
    )
    lines = []
    for method, stats in summary.items():
        lines.append(
            [method, cell(stats, "Dice_mean", 100), cell(stats, "HD95_mean"), cell(stats, "MSE", 100)]
            + ([cell(stats, "NJD"), cell(stats, "NDV")] if method != INITIAL else ["-", "-"])
            + ([cell(stats, "TRE")] if with_tre else [])
            + [cell(stats, f"Dice_{n}", 100) for n in names]
        )
    widths = [max(len(str(r[i])) for r in [header] + lines) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    body = [fmt.format(*header), rule] + [fmt.format(*r) for r in lines]
    return f"Registration results over {n_cases} pairs (mean±std)\n" + "\n".join(body)
