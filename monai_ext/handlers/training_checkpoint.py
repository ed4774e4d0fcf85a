"""The trainer's resumable checkpoint, written whole at the end of every epoch."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events

from monai_ext.io.atomic import atomic_write_path

__all__ = ["TrainingCheckpoint"]


class TrainingCheckpoint:
    """Save ``save_dict`` (model, optimiser, scheduler, trainer, best-model record, random state) to
    one file at the end of every epoch and when training completes (only then with ``epoch_level``
    False, e.g. for the final model). With a single object the file holds its ``state_dict()``
    itself, as MONAI's and ignite's savers write it.

    Unlike MONAI's ``CheckpointSaver``, which writes the interval checkpoint in place after deleting
    the previous one and writes ``checkpoint_last.pt`` only on completion or on an exception, the file
    here is replaced atomically (:func:`monai_ext.io.atomic.atomic_write_path`): a run killed at any
    moment leaves the checkpoint of its last finished epoch, which ``--resume true`` continues from.
    Nothing is written on an exception, so a run stopped by a bad batch keeps its last good state.

    Attach it after every other epoch handler (the bundles attach it in ``run``): the state saved
    then includes the epoch's validation and the random state the next epoch starts from.

    Args:
        save_path: the checkpoint file, e.g. ``models/checkpoint_last.pt``.
        save_dict: name -> object with ``state_dict()`` (``load_dict`` of the matching loader).
        interval: epochs between saves.
        epoch_level: save during training (every ``interval`` epochs), not only on completion.
    """

    def __init__(
        self, save_path: str | Path, save_dict: Mapping[str, Any], interval: int = 1, epoch_level: bool = True
    ) -> None:
        if not save_dict:
            raise ValueError("TrainingCheckpoint needs at least one object to save.")
        if interval < 1:
            raise ValueError(f"interval must be at least 1, got {interval}.")
        self.save_path = Path(save_path)
        self.save_dict = dict(save_dict)
        self.interval = int(interval)
        self.epoch_level = bool(epoch_level)
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        if self.epoch_level:
            engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if getattr(self, "_saved_iteration", None) == engine.state.iteration:
            return  # COMPLETED right after the last epoch's save
        state = {name: obj.state_dict() for name, obj in self.save_dict.items()}
        if len(state) == 1:
            (state,) = state.values()
        with atomic_write_path(self.save_path) as tmp:
            torch.save(state, tmp)
        self._saved_iteration = engine.state.iteration
        self.logger.debug(f"epoch {engine.state.epoch}: saved {self.save_path}")
