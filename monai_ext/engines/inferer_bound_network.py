"""The network as a training objective sees it: every call goes through the trainer's inferer."""

from __future__ import annotations

from typing import Any

import torch
from monai.inferers import Inferer

__all__ = ["InfererBoundNetwork"]


class InfererBoundNetwork:
    """``network`` seen through ``inferer``, so that ``train#inferer`` decides how a training step runs it.

    MONAI's ``SupervisedTrainer`` computes ``inferer(inputs, network)``; registration objectives call
    the network themselves (GradICON twice per pair, Eq. 13), so the trainer hands them this object:

    - ``bound(inputs)`` is ``inferer(inputs, network)`` (``SimpleInferer``: the network itself);
    - ``bound.register(fixed, moving, fixed_affine, moving_affine)`` (DIO's optimisation layer) is
      ``inferer.register(network, ...)`` when the inferer has that method (``DIOInferer``: its solver
      and settings), else ``network.register(...)``.

    Args:
        inferer: the trainer's inferer.
        network: the (unwrapped) network being trained.
    """

    def __init__(self, inferer: Inferer, network: torch.nn.Module) -> None:
        self.inferer = inferer
        self.network = network

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.inferer(inputs, self.network)

    def register(self, fixed: torch.Tensor, moving: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if hasattr(self.inferer, "register"):
            return self.inferer.register(self.network, fixed, moving, *args, **kwargs)
        return self.network.register(fixed, moving, *args, **kwargs)
