"""The inferer a registration bundle runs: direct inference, or instance optimisation first."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.utils import look_up_option

from monai_ext.inferers.instance_optimization import InstanceOptimizationInferer
from monai_ext.inferers.network_grid_inferer import NetworkGridInferer
from monai_ext.surgery import GradientSurgery

__all__ = ["IO_MODES", "IO_SURGERY", "registration_inferer", "io_method_name"]

IO_MODES = ("none", "vanilla", "projected")
# vanilla IO minimises the weighted sum; projected IO projects conflicting gradients
# (io_gradient_projection.md §2.4: one of the two, drawn at random, over the whole network)
IO_SURGERY = {"vanilla": "weighted_sum", "projected": "random"}
IO_METHOD_SUFFIX = {"none": "", "vanilla": " + IO", "projected": " + IO-GP"}


def registration_inferer(
    objective: Callable | None = None,
    io_mode: str = "none",
    steps: int = 0,
    spatial_size: Sequence[int] | None = None,
    optimizer: str = "adam",
    learning_rate: float = 2e-5,
    weight_decay: float = 0.0,
    regularization_weight: float = 1.5,
    batchnorm: str = "eval",
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> NetworkGridInferer:
    """A :class:`NetworkGridInferer` for ``io_mode="none"`` or ``steps == 0``; else an
    :class:`InstanceOptimizationInferer` taking ``steps`` optimiser steps on ``objective`` per pair,
    the two loss terms combined as ``IO_SURGERY[io_mode]`` says (``generator`` draws the gradient
    the projected mode projects). The other arguments are the inferer's (GradICON §4.2: Adam,
    lr 2e-5; io_gradient_projection.md §3.2: AMSGrad, lr 2e-5, weight decay 1e-3)."""
    io_mode = look_up_option(io_mode, IO_MODES)
    if io_mode == "none" or int(steps) == 0:
        return NetworkGridInferer(spatial_size=spatial_size)
    if objective is None:
        raise ValueError(f"io_mode {io_mode!r} with {steps} steps needs the objective to optimise.")
    return InstanceOptimizationInferer(
        objective,
        steps=int(steps),
        optimizer=optimizer,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        surgery=GradientSurgery.from_mode(IO_SURGERY[io_mode], weight=regularization_weight, generator=generator),
        batchnorm=batchnorm,
        spatial_size=spatial_size,
        progress=progress,
    )


def io_method_name(base: str, io_mode: str = "none", steps: int = 0) -> str:
    """``base`` with `` + IO`` or `` + IO-GP`` when instance optimisation runs (``steps > 0``)."""
    return base + IO_METHOD_SUFFIX[look_up_option(io_mode, IO_MODES) if int(steps) > 0 else "none"]
