"""The options of ``monai-register``, checked before any file is read (errors name the option)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from monai_ext.errors import InputError, InputFileNotFoundError
from monai_ext.inferers.instance_optimization import BATCHNORM_MODES
from monai_ext.inferers.registration_inferer import IO_MODES
from monai_ext.io.atomic import full_suffix
from monai_ext.io.displacement_field import IMAGE_SUFFIXES, TRANSFORM_SUFFIXES
from monai_ext.options import check_option, flag
from monai_ext.transforms import MODALITIES

__all__ = ["RegisterOptions", "OFFICIAL_WEIGHTS_URL", "IMAGE_OUTPUT_SUFFIXES"]

OFFICIAL_WEIGHTS_URL = "https://github.com/uncbiag/uniGradICON/releases/download/unigradicon_weights/Step_2_final.trch"
IMAGE_OUTPUT_SUFFIXES = (".nii", ".nii.gz")


def _check_output(path: str | Path | None, name: str, suffixes: Sequence[str], inputs: Sequence[Path]) -> Path | None:

    if path is None or path == "":
        return None
    path = Path(path)
    if full_suffix(path).lower() not in suffixes:
        raise InputError(f"{name} '{path}': unsupported extension; use one of {', '.join(suffixes)}.")
    if any(path.resolve() == source.resolve() for source in inputs):
        raise InputError(f"{name} '{path}' is one of the input files; refusing to overwrite it.")
    if path.is_dir():
        raise InputError(f"{name} '{path}' is a folder; give a file name.")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # the folders still to create
        folder = folder.parent
    try:  # before the registration runs, rather than failing on the first file written after it
        if not folder.is_dir():
            raise NotADirectoryError(folder)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        raise InputError(f"{name} '{path}': cannot write into '{folder}' (not a writable folder).") from None
    return path


def _network_size(network_size: int | Sequence[int]) -> tuple[int, int, int]:
    size = (network_size,) * 3 if isinstance(network_size, int) else tuple(network_size)
    if len(size) != 3 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size):
        raise InputError(f"network_size must be three positive integers, got {network_size!r}.")
    return tuple(int(s) for s in size)  # type: ignore[return-value]


def _io_steps(io_iterations: Any) -> int:
    if io_iterations is None:
        return 0
    if isinstance(io_iterations, bool) or not isinstance(io_iterations, (int, float, np.integer)):
        raise InputError(f"io_iterations must be a non-negative integer (or None), got {io_iterations!r}.")
    if not float(io_iterations).is_integer() or io_iterations < 0:
        raise InputError(f"io_iterations must be a non-negative integer (or None), got {io_iterations!r}.")
    return int(io_iterations)


@dataclass
class RegisterOptions:
    """``register``'s arguments, checked: choices lower-cased, files found, outputs allowed."""

    sources: dict[str, Path]
    fixed_modality: str
    moving_modality: str
    io_mode: str
    batchnorm: str
    steps: int
    size: tuple[int, int, int]
    transform_path: Path | None
    warped_path: Path | None
    label_path: Path | None
    device: torch.device

    @classmethod
    def check(
        cls,
        fixed: str,
        moving: str,
        weights: str | None,
        fixed_modality: str,
        moving_modality: str,
        io_iterations: Any,
        io_mode: str,
        transform_out: str | None,
        warped_moving_out: str | None,
        fixed_label: str | None,
        moving_label: str | None,
        warped_label_out: str | None,
        device: str | None,
        seed: Any,
        batchnorm: str,
        network_size: int | Sequence[int],
        allow_random_weights: bool,
        network: nn.Module | None,
    ) -> RegisterOptions:
        """Check every argument of :func:`monai_ext.cli.register.register` (see there)."""
        allow_random_weights = flag(allow_random_weights, "allow_random_weights")
        fixed_modality = check_option("fixed_modality", fixed_modality, MODALITIES, lower=True)
        moving_modality = check_option("moving_modality", moving_modality, MODALITIES, lower=True)
        io_mode = check_option("io_mode", io_mode, IO_MODES, lower=True)
        batchnorm = check_option("batchnorm", batchnorm, BATCHNORM_MODES, lower=True)
        steps = _io_steps(io_iterations)
        size = _network_size(network_size)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise InputError(f"seed must be an integer, got {seed!r}.")
        if network is not None and not isinstance(network, nn.Module):
            raise InputError(
                f"network must be a torch.nn.Module (Python API only), got {type(network).__name__}; "
                "on the command line give --weights."
            )
        if network is not None and weights is not None:
            raise InputError("give either weights (a weight file) or network (a ready module), not both.")
        if network is None and weights is None and not allow_random_weights:
            raise InputError(
                "no network weights given: pass weights=<path to Step_2_final.trch> (the official uniGradICON weights: "
                f"{OFFICIAL_WEIGHTS_URL}); allow_random_weights=True runs a random network, for testing only."
            )
        if weights is not None and not Path(weights).is_file():
            raise InputFileNotFoundError(f"weights file not found: '{weights}'.")
        if warped_label_out and not moving_label:
            raise InputError("warped_label_out needs moving_label (the label map to warp).")
        if fixed_label and not moving_label:
            raise InputError("fixed_label is only used with moving_label (Dice before and after registration).")
        sources = {"fixed": fixed, "moving": moving, "fixed_label": fixed_label, "moving_label": moving_label}
        sources = {key: Path(value) for key, value in sources.items() if value}
        for key, path in sources.items():
            if not path.is_file():
                raise InputFileNotFoundError(f"{key} not found: '{path}'.")
        inputs = list(sources.values())
        transform_path = _check_output(transform_out, "transform_out", TRANSFORM_SUFFIXES + IMAGE_SUFFIXES, inputs)
        warped_path = _check_output(warped_moving_out, "warped_moving_out", IMAGE_OUTPUT_SUFFIXES, inputs)
        label_path = _check_output(warped_label_out, "warped_label_out", IMAGE_OUTPUT_SUFFIXES, inputs)
        if network is not None:
            expected = getattr(network, "input_shape", None)
            if expected is not None and list(expected) != list(size):
                raise InputError(f"network expects inputs of size {list(expected)}, but network_size is {list(size)}.")
            if device is None:
                first = next(network.parameters(), None)
                device = first.device if first is not None else "cpu"
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(
            sources=sources,
            fixed_modality=fixed_modality,
            moving_modality=moving_modality,
            io_mode=io_mode,
            batchnorm=batchnorm,
            steps=steps,
            size=size,
            transform_path=transform_path,
            warped_path=warped_path,
            label_path=label_path,
            device=torch.device(device),
        )
