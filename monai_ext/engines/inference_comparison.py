"""One network evaluated on one set of pairs with several inferers: a paper's comparison table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.handlers import StatsHandler
from monai.inferers import Inferer

from monai_ext.engines.registration_evaluator import RegistrationEvaluator
from monai_ext.handlers.leaderboard_scores import LeaderboardScoresHandler
from monai_ext.handlers.method_comparison import COMPARISON_COLUMNS, write_method_comparison
from monai_ext.handlers.registration_metrics import RegistrationMetricsHandler
from monai_ext.handlers.registration_writer import RegistrationWriter

__all__ = ["InferenceComparison"]


class InferenceComparison:
    """Evaluate ``network`` on ``data_loader`` once per setting and tabulate the settings side by side.

    Each setting is a mapping with ``name`` (the row of the table), ``folder`` (under ``output_dir``:
    ``metrics_per_case.csv``, ``metrics_summary.csv`` and, with ``max_figures`` >= 0, the warped
    outputs in ``pairs/``) and ``inferer`` (a MONAI ``Inferer`` or ``DIOInferer``). Every setting
    runs a :class:`RegistrationEvaluator` with a :class:`RegistrationMetricsHandler`
    (``metrics_args`` are its other arguments, e.g. ``jacobian_mask``); then ``comparison.csv`` is
    written by :func:`write_method_comparison` and the table printed.

    Used for the instance-optimisation paper's Table 1 (direct inference, IO and IO-GP for two step
    counts) and DIO's Table 2 (the training solver and a solver switched at test time).

    Args:
        network: the registration network (weights already loaded).
        data_loader: the pairs.
        settings: the settings, in table order.
        output_dir: where each setting's folder and ``comparison.csv`` go.
        label_names: label value -> name for the Dice / HD95 columns.
        device: evaluation device.
        metrics_args: other arguments of every ``RegistrationMetricsHandler``.
        max_figures: QC figures per setting with the warped outputs written; -1 writes nothing.
        columns: columns of the comparison table.
        title: first line of the printed table.
        leaderboard: ``"lumir"`` / ``"learn2reg"``: every setting's folder also gets the challenge's
            official scores (:class:`~monai_ext.handlers.LeaderboardScoresHandler`, over the labels of
            ``label_names``); None: not scored.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        data_loader: Iterable,
        settings: Sequence[Mapping[str, Any]],
        output_dir: str | Path,
        label_names: Mapping[Any, str] | None = None,
        device: str | torch.device = "cpu",
        metrics_args: Mapping[str, Any] | None = None,
        max_figures: int = -1,
        columns: Sequence[str] = COMPARISON_COLUMNS,
        title: str | None = "Comparison of methods (mean±std over pairs)",
        leaderboard: str | None = None,
    ) -> None:
        if not settings:
            raise ValueError("settings is empty: give at least one {name, folder, inferer}.")
        for setting in settings:
            missing = {"name", "folder", "inferer"} - set(setting)
            if missing:
                raise ValueError(f"setting {dict(setting)} lacks {sorted(missing)}.")
            if not isinstance(setting["inferer"], Inferer) and not hasattr(setting["inferer"], "register_pair"):
                raise ValueError(f"setting {setting['name']!r}: inferer must be a MONAI Inferer.")
        self.network = network
        self.data_loader = data_loader
        self.settings = [dict(s) for s in settings]
        self.output_dir = Path(output_dir)
        self.label_names = label_names
        self.device = device
        self.metrics_args = dict(metrics_args or {})
        self.max_figures = int(max_figures)
        self.columns = list(columns)
        self.title = title
        self.leaderboard = leaderboard

    def evaluator(self, setting: Mapping[str, Any]) -> RegistrationEvaluator:
        """The evaluator of one setting, with its metrics handler (and writer)."""
        folder = self.output_dir / setting["folder"]
        metrics = RegistrationMetricsHandler(folder, self.label_names, method_name=setting["name"], **self.metrics_args)
        handlers: list = [StatsHandler(iteration_log=False), metrics]
        if self.leaderboard:
            labels = None if self.label_names is None else [int(v) for v in self.label_names]
            handlers.append(LeaderboardScoresHandler(folder, self.leaderboard, labels=labels))
        if self.max_figures >= 0:
            handlers.append(RegistrationWriter(folder / "pairs", max_figures=self.max_figures))
        return RegistrationEvaluator(
            device=self.device,
            val_data_loader=self.data_loader,
            network=self.network,
            inferer=setting["inferer"],
            val_handlers=handlers,
        )

    def run(self) -> str:
        """Run every setting, write ``comparison.csv``, print and return the table."""
        for setting in self.settings:
            self.evaluator(setting).run()
        summaries = {s["name"]: self.output_dir / s["folder"] / "metrics_summary.csv" for s in self.settings}
        table = write_method_comparison(
            summaries, self.output_dir / "comparison.csv", columns=self.columns, title=self.title
        )
        print(table)
        return table
