"""The LUMIR / Learn2Reg leaderboard scores of every pair an evaluator registers, in the evaluators' layout."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.utils import convert_to_numpy, min_version, optional_import

from monai_ext.handlers.case_names import pair_case_names
from monai_ext.io.atomic import atomic_write_path
from monai_ext.metrics.jacobian import foreground_interior, non_diffeomorphic_volume
from monai_ext.metrics.leaderboard import (
    case_aggregates,
    landmark_map_tre,
    leaderboard_dice,
    leaderboard_hd95,
    leaderboard_sdlogj,
    warp_label_nearest,
)
from monai_ext.options import check_option

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")

__all__ = ["LeaderboardScoresHandler", "CHALLENGES"]

#: challenge -> whether its Dice / HD95 count label 0, and whether it reports LUMIR's masked NDV
CHALLENGES = {"lumir": {"background": True, "ndv": True}, "learn2reg": {"background": False, "ndv": False}}


class LeaderboardScoresHandler:
    """Ignite handler: each pair's scores as the ``challenge``'s official evaluator computes them.

    From ``engine.state.output`` of a ``RegistrationEvaluator`` (``pred``: the voxel DDF on the fixed
    grid, ``fixed_label`` and the original ``moving_label`` on the same grid, ``moving_image``, and
    ``fixed_landmarks`` / ``moving_landmarks`` maps when the pair has them), per pair
    (:mod:`monai_ext.metrics.leaderboard`):

    - ``Dice`` and ``HD95`` (voxels, area-weighted surface distances): means over the labels present
      in both the fixed and the moving map (``labels``, default every value found; LUMIR counts 0);
      not scored (a warning) for a pair whose moving labels lie on another grid;
    - ``SDlogJ``: Learn2Reg's std of ``log(det J + 3)``;
    - ``NDV`` (LUMIR): non-diffeomorphic volume in % of the moving image's non-zero voxels without the
      outer voxel layer;
    - ``TRE`` (LUMIR, when the pair has landmark maps): centroid distance of the warped landmark maps,
      in voxels.

    At the end of the run ``leaderboard_<challenge>.json`` in ``output_dir`` holds ``cases`` (this
    run's and those an earlier run wrote there) and the evaluators' ``aggregates`` (mean, std, 30th
    percentile), the log shows the aggregates, and
    ``engine.state.metrics`` gets ``"<challenge>/<score>"`` means. The project's own figures (NJD, HD95
    in mm) stay in ``RegistrationMetricsHandler``'s tables.

    Args:
        output_dir: folder of the JSON file.
        challenge: ``"lumir"`` or ``"learn2reg"`` (OASIS).
        labels: label values to score; None: every value present in the fixed or moving map (label 0
            only for LUMIR).
        logger_name: logger for the summary line.
    """

    def __init__(
        self,
        output_dir: str | Path,
        challenge: str,
        labels: Sequence[int] | None = None,
        logger_name: str | None = None,
    ) -> None:
        self.challenge = check_option("challenge", challenge, CHALLENGES)
        self.output_dir = Path(output_dir)
        self.labels = None if labels is None else [int(v) for v in labels]
        self.logger = logging.getLogger(logger_name or __name__)
        self.cases: dict[str, dict[str, float]] = {}

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._earlier_cases)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._finalise)

    @property
    def path(self) -> Path:
        return self.output_dir / f"leaderboard_{self.challenge}.json"

    def _earlier_cases(self, engine=None) -> None:
        """Start from the cases an earlier run wrote into ``output_dir`` (results accumulate; a pair
        scored again replaces its entry)."""
        self.cases = json.loads(self.path.read_text())["cases"] if self.path.is_file() else {}

    def _labels(self, fixed: np.ndarray, moving: np.ndarray) -> list[int]:
        if self.labels is not None:
            return self.labels
        values = np.union1d(np.unique(fixed), np.unique(moving)).astype(int).tolist()
        return [v for v in values if v != 0 or CHALLENGES[self.challenge]["background"]]

    def score_pair(self, ddf: torch.Tensor, pair: dict[str, Any]) -> dict[str, float]:
        """The challenge's scores of one pair: ``ddf`` ``(ndim, *spatial)``; ``pair`` maps keys to
        ``(C, *spatial)`` arrays (``fixed_label``, ``moving_label``, ``moving_image``, landmark maps)."""
        disp = convert_to_numpy(ddf, dtype=np.float32).astype(np.float64)  # what the submission file holds
        scores = {"SDlogJ": leaderboard_sdlogj(disp)}
        if pair.get("fixed_label") is not None and pair.get("moving_label") is not None:
            fixed, moving = (np.rint(convert_to_numpy(pair[k])[0]).astype(int) for k in ("fixed_label", "moving_label"))
            if fixed.shape == moving.shape == disp.shape[1:]:
                warped = warp_label_nearest(moving, disp)
                labels = self._labels(fixed, moving)
                scores["Dice"] = float(np.nanmean(leaderboard_dice(fixed, moving, warped, labels)))
                scores["HD95"] = float(np.nanmean(leaderboard_hd95(fixed, moving, warped, labels)))
            else:  # the challenges' pairs share one grid; their evaluators cannot score another pair either
                self.logger.warning(
                    f"{self.challenge} Dice / HD95 not scored: fixed and moving labels {fixed.shape} and "
                    f"{moving.shape} are not both on the displacement grid {disp.shape[1:]}."
                )
        moving_image = pair.get("moving_image")
        if CHALLENGES[self.challenge]["ndv"] and moving_image is not None and moving_image.shape[1:] == disp.shape[1:]:
            region = foreground_interior(torch.as_tensor(convert_to_numpy(moving_image))[None])
            scores["NDV"] = float(non_diffeomorphic_volume(torch.as_tensor(disp)[None], region)[0])
        if pair.get("fixed_landmarks") is not None and pair.get("moving_landmarks") is not None:
            fixed_maps, moving_maps = (
                np.rint(convert_to_numpy(pair[k])[0]) for k in ("fixed_landmarks", "moving_landmarks")
            )
            scores["TRE"] = landmark_map_tre(warp_label_nearest(moving_maps, disp), fixed_maps)
        return scores

    def __call__(self, engine) -> None:
        output, batch = engine.state.output, engine.state.batch or {}
        ddf = output["pred"]
        names = pair_case_names({**output, **batch}, ddf.shape[0])  # the batch keeps the subjects' names
        keys = ("fixed_label", "moving_label", "moving_image", "fixed_landmarks", "moving_landmarks")
        for i, name in enumerate(names):
            pair = {k: output.get(k, batch.get(k)) for k in keys}
            self.cases[name] = self.score_pair(ddf[i], {k: None if v is None else v[i] for k, v in pair.items()})

    def aggregates(self) -> dict[str, dict[str, float]]:
        scores = sorted({k for case in self.cases.values() for k in case})
        return {s: case_aggregates([case[s] for case in self.cases.values() if s in case]) for s in scores}

    def _finalise(self, engine) -> None:
        if not self.cases:
            return
        aggregates = self.aggregates()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.path
        with atomic_write_path(path) as tmp:
            Path(tmp).write_text(
                json.dumps({"challenge": self.challenge, "aggregates": aggregates, "cases": self.cases}, indent=2)
            )
        for score, values in aggregates.items():
            engine.state.metrics[f"{self.challenge}/{score}"] = values["mean"]
        summary = ", ".join(f"{s} {v['mean']:.4f} (std {v['std']:.4f})" for s, v in aggregates.items())
        self.logger.info(
            f"{self.challenge.upper()} leaderboard scores over {len(self.cases)} pairs: {summary} -> {path}"
        )
