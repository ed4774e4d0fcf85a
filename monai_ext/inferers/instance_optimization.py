"""Test-time instance optimisation of a registration network on each pair."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from monai.data import MetaTensor
from torch import nn

from monai_ext.engines.surgery_step import set_surgery_gradients
from monai_ext.inferers.network_grid_inferer import NetworkGridInferer
from monai_ext.options import check_option
from monai_ext.surgery import GradientSurgery

__all__ = ["InstanceOptimizationInferer"]

OPTIMIZERS = ("adam", "amsgrad", "sgd")
BATCHNORM_MODES = ("eval", "train")


class InstanceOptimizationInferer(NetworkGridInferer):
    """Fine-tune a copy of the network on the pair being registered, then predict with it.

    GradICON §4.2: "we optionally optimize the loss of Eq. (13) for 50 iterations at test time";
    the instance-optimisation paper (io_gradient_projection.md §2.4, §3.2) does the same with the
    similarity and GradICON gradients combined by gradient projection (``surgery="random"``).

    For each call (one batch of pairs, normally one pair): the network is deep-copied, so neither
    its weights nor its BatchNorm statistics change and nothing leaks from one pair to the next;
    ``steps`` optimiser steps are taken on ``objective(copy, moving, fixed)`` with the two terms
    combined by ``surgery`` (``"weighted_sum"`` with ``regularization_weight`` = lambda is plain
    instance optimisation); the copy then predicts the DDF, which is returned (mapped back to the
    input grid when ``spatial_size`` differs, as :class:`NetworkGridInferer`).

    BatchNorm: ``batchnorm="eval"`` (default) keeps the copy's BatchNorm layers in evaluation mode,
    using the running statistics learnt in training both while optimising and when predicting, so
    that the optimised network is the deployed one; ``"train"`` normalises with the statistics of
    the pair itself (and updates the copy's running statistics), as a network left in training mode
    would. Dropout is always off.

    Args:
        objective: ``(network, moving, fixed) -> RegistrationTerms``, e.g.
            ``InverseConsistentObjective(LNCCLoss(5), GradICONLoss())``.
        steps: optimisation steps per pair (GradICON: 50).
        optimizer: ``"adam"``, ``"amsgrad"`` (Adam with the AMSGrad variant) or ``"sgd"``.
        learning_rate: step size (icon_registration's default for fine-tuning: 2e-5).
        weight_decay: L2 weight decay of the optimiser.
        surgery: a ``GradientSurgery`` or a mode string (``"weighted_sum"``, ``"random"``, ...).
        regularization_weight: lambda, used when ``surgery`` is a string.
        batchnorm: ``"eval"`` or ``"train"``, see above.
        spatial_size: the network grid (see :class:`NetworkGridInferer`).
        progress: show a progress bar per pair.
        fuse_weighted_sum: with ``weighted_sum``, take one gradient of the sum (plain IO) rather than
            two (which would only serve to report the conflict rate).
    """

    def __init__(
        self,
        objective: Callable,
        steps: int = 50,
        optimizer: str = "adam",
        learning_rate: float = 2e-5,
        weight_decay: float = 0.0,
        surgery: GradientSurgery | str = "weighted_sum",
        regularization_weight: float = 1.5,
        batchnorm: str = "eval",
        spatial_size: Sequence[int] | None = None,
        progress: bool = True,
        fuse_weighted_sum: bool = True,
    ) -> None:
        super().__init__(spatial_size)
        check_option("optimizer", optimizer, OPTIMIZERS)
        check_option("batchnorm", batchnorm, BATCHNORM_MODES)
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}.")
        self.objective = objective
        self.steps = int(steps)
        self.optimizer = optimizer
        self.learning_rate = float(learning_rate)
        self.weight_decay = float(weight_decay)
        self.surgery = (
            GradientSurgery.from_mode(surgery, weight=regularization_weight) if isinstance(surgery, str) else surgery
        )
        self.batchnorm = batchnorm
        self.progress = progress
        self.fuse_weighted_sum = fuse_weighted_sum
        # per step of the last pair: ``similarity + weight * regularization`` and the conflict rate
        self.last_losses: list[float] = []
        self.last_conflict_rates: list[float] = []

    def _make_optimizer(self, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.learning_rate, weight_decay=self.weight_decay)
        return torch.optim.Adam(
            params, lr=self.learning_rate, weight_decay=self.weight_decay, amsgrad=self.optimizer == "amsgrad"
        )

    def _set_mode(self, model: nn.Module) -> None:
        model.eval()
        if self.batchnorm == "train":
            for module in model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.train()

    def predict(self, inputs: torch.Tensor, network, *args, **kwargs) -> torch.Tensor:
        if inputs.shape[1] % 2:
            raise ValueError(f"inputs must hold [moving, fixed] with equal channels, got {inputs.shape[1]} channels.")
        channels = inputs.shape[1] // 2
        # plain tensors: MONAI metadata tracking (batched MetaTensors) would follow every operation of
        # the optimisation, gradients included, at a large cost in time and memory
        inputs = inputs.as_tensor() if isinstance(inputs, MetaTensor) else inputs
        moving, fixed = inputs[:, :channels].detach(), inputs[:, channels:].detach()
        model = copy.deepcopy(network)
        self._set_mode(model)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = self._make_optimizer(params)
        self.last_losses, self.last_conflict_rates = [], []
        steps = range(self.steps)
        if self.progress:
            from tqdm import tqdm

            steps = tqdm(steps, desc="instance optimisation", leave=False)
        with torch.enable_grad():
            for _ in steps:
                optimizer.zero_grad(set_to_none=True)
                terms = self.objective(model, moving, fixed)
                rate = set_surgery_gradients(
                    terms.similarity,
                    terms.regularization,
                    params,
                    self.surgery,
                    fuse_weighted_sum=self.fuse_weighted_sum,
                    reduce_distributed=False,
                )
                self.last_losses.append(
                    float(terms.similarity.detach() + self.surgery.weight * terms.regularization.detach())
                )
                self.last_conflict_rates.append(rate)
                optimizer.step()
        with torch.no_grad():
            return model(inputs, *args, **kwargs)
