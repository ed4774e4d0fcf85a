"""Reading weight files with errors that name the file and the problem."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from monai_ext.errors import CheckpointError

__all__ = ["read_checkpoint", "check_checkpoint_file", "unreadable_checkpoint"]


def unreadable_checkpoint(file: Path, error: BaseException) -> CheckpointError:
    """The error for a checkpoint ``torch.load`` could not read."""
    if isinstance(error, pickle.UnpicklingError):
        return CheckpointError(
            f"checkpoint {file} holds pickled Python objects besides weights; only weights are loaded "
            "(save the network's state_dict())."
        )
    return CheckpointError(f"checkpoint {file} is truncated or not a PyTorch checkpoint written by torch.save.")


def check_checkpoint_file(file: Path) -> None:
    """:class:`CheckpointError` when ``file`` is missing or empty."""
    if not file.is_file():
        raise CheckpointError(f"checkpoint {file} does not exist.")
    if file.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {file} is empty.")


def read_checkpoint(path: str | Path, map_location: torch.device | str | None = "cpu") -> dict:
    """``torch.load(path, weights_only=True)``, or :class:`CheckpointError` naming ``path`` when the
    file is missing, empty, truncated, not a PyTorch checkpoint or holds pickled code."""
    file = Path(path)
    check_checkpoint_file(file)
    try:
        checkpoint = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as e:
        raise unreadable_checkpoint(file, e) from e
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {file} holds a {type(checkpoint).__name__}, not a dict of weights.")
    return checkpoint
