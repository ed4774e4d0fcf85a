"""The best model by the validation key metric, kept across interrupted and resumed training runs."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events

from monai_ext.io.atomic import atomic_write_path

__all__ = ["BestModelSaver"]


class BestModelSaver:
    """Save ``network``'s weights to ``save_path`` whenever the evaluator's key metric beats the best
    so far (higher is better, as MONAI's ``CheckpointSaver(save_key_metric=True)``).

    The record of the best metric is checkpointable (``state_dict`` / ``load_state_dict``): put this
    handler in the trainer's checkpoint, and a resumed run only replaces the best model when it does
    better than every validation before the interruption, not merely better than the ones after it.
    Loading the record also restores the evaluator's ``best_metric`` / ``best_metric_epoch``, which
    MONAI logs. The file is replaced atomically, so the best model is never lost or half-written.

    Args:
        save_path: the weights file (a plain ``state_dict``), e.g. ``models/model.pt``.
        network: the network whose ``state_dict()`` is saved.
        key_metric_name: metric to compare; default the evaluator's ``state.key_metric_name``.
    """

    def __init__(self, save_path: str | Path, network: torch.nn.Module, key_metric_name: str | None = None) -> None:
        self.save_path = Path(save_path)
        self.network = network
        self.key_metric_name = key_metric_name
        self.best_metric = -math.inf
        self.best_epoch = -1
        self.engine: Engine | None = None
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        self.engine = engine
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        name = self.key_metric_name or getattr(engine.state, "key_metric_name", None)
        if name is None or name not in engine.state.metrics:
            raise ValueError(f"BestModelSaver: the evaluator computed no key metric {name!r}.")
        value = float(engine.state.metrics[name])
        if not math.isfinite(value) or value <= self.best_metric:
            return
        with atomic_write_path(self.save_path) as tmp:
            torch.save(self.network.state_dict(), tmp)
        self.best_metric, self.best_epoch = value, int(engine.state.epoch)
        self.logger.info(
            f"saved the best model so far ({name} {value:.4f}, epoch {self.best_epoch}) to {self.save_path}"
        )

    def state_dict(self) -> dict[str, Any]:
        return {"best_metric": self.best_metric, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_metric = float(state["best_metric"])
        self.best_epoch = int(state["best_epoch"])
        if self.engine is not None and math.isfinite(self.best_metric):
            self.engine.state.best_metric = self.best_metric
            self.engine.state.best_metric_epoch = self.best_epoch
