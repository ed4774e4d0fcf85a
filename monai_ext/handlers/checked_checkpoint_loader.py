"""MONAI's ``CheckpointLoader`` with one clear error for a checkpoint that cannot be used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine
from monai.handlers import CheckpointLoader

from monai_ext.errors import CheckpointError
from monai_ext.io.checkpoint import check_checkpoint_file, unreadable_checkpoint

__all__ = ["CheckedCheckpointLoader"]


def _listed(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _fit_problem(load_dict: dict[str, Any], checkpoint: dict, strict: bool) -> str | None:
    """Why ``checkpoint`` cannot be loaded into ``load_dict`` (missing entries, other keys or shapes)."""
    if len(load_dict) == 1 and next(iter(load_dict)) not in checkpoint:
        checkpoint = {next(iter(load_dict)): checkpoint}
    missing_entries = [name for name in load_dict if name not in checkpoint]
    if missing_entries and strict:
        return f"it has no {_listed(missing_entries)} (it holds {_listed(sorted(map(str, checkpoint)))})"
    for name, obj in load_dict.items():
        if not isinstance(obj, torch.nn.Module) or name not in checkpoint:
            continue
        saved, expected = checkpoint[name], obj.state_dict()
        if not isinstance(saved, dict):
            return f"its {name!r} is a {type(saved).__name__}, not weights"
        saved = {k.removeprefix("module."): v for k, v in saved.items()}
        missing = [k for k in expected if k not in saved]
        unexpected = [k for k in saved if k not in expected]
        shapes = [
            f"{k} {tuple(saved[k].shape)} instead of {tuple(expected[k].shape)}"
            for k in expected
            if k in saved and hasattr(saved[k], "shape") and tuple(saved[k].shape) != tuple(expected[k].shape)
        ]
        if shapes:
            return f"weights of another architecture: {_listed(shapes)}"
        if strict and (missing or unexpected):
            parts = [f"missing {_listed(missing)}"] if missing else []
            parts += [f"unexpected {_listed(unexpected)}"] if unexpected else []
            return f"weights of another architecture: {'; '.join(parts)}"
    return None


class CheckedCheckpointLoader(CheckpointLoader):
    """``monai.handlers.CheckpointLoader`` that ends with one :class:`monai_ext.errors.CheckpointError`
    naming the file when it is missing, empty, truncated, not a PyTorch checkpoint, or holds weights
    of another architecture (missing / unexpected keys, other shapes), instead of ``EOFError`` with a
    blank message or ``KeyError: 101``.

    Args:
        missing_ok: when ``load_path`` does not exist yet, log a warning and load nothing (resuming a
            training run that was stopped before its first checkpoint starts it from the beginning).
        args, kwargs: as ``monai.handlers.CheckpointLoader``.
    """

    def __init__(self, *args: Any, missing_ok: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.missing_ok = bool(missing_ok)

    def __call__(self, engine: Engine) -> None:
        file = Path(self.load_path)
        if self.missing_ok and not file.exists():
            self.logger.warning(f"there is no checkpoint {file} yet: training starts from the beginning.")
            return
        check_checkpoint_file(file)
        try:  # memory-mapped: reads the archive's index and shapes, not the weights
            checkpoint = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:
            raise unreadable_checkpoint(file, e) from e
        if not isinstance(checkpoint, dict):
            raise CheckpointError(f"checkpoint {file} holds a {type(checkpoint).__name__}, not a dict of weights.")
        problem = _fit_problem(self.load_dict, checkpoint, self.strict) if self.strict_shape else None
        if problem is not None:
            raise CheckpointError(f"checkpoint {file} does not fit this bundle: {problem}.")
        del checkpoint
        try:
            super().__call__(engine)
        except ValueError as e:
            if "Epoch count" not in str(e):
                raise
            raise CheckpointError(
                f"checkpoint {file} is already past the {engine.state.max_epochs} epochs asked for; "
                "raise num_epochs to train further."
            ) from e
