"""DIO's training loss (dio.md Eq. 2): image and label alignment through the optimised warp."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.losses import DiceLoss, LocalNormalizedCrossCorrelationLoss
from torch import nn

from monai_ext.objectives.registration_terms import RegistrationTerms
from monai_ext.spatial import sample_moving

__all__ = ["DIOObjective", "one_hot_labels"]


def one_hot_labels(label: torch.Tensor, labels: Sequence[int]) -> torch.Tensor:
    """``(B, 1, *spatial)`` label map -> ``(B, len(labels), *spatial)`` float one-hot of ``labels``."""
    if label.ndim < 3 or label.shape[1] != 1:
        raise ValueError(f"label maps must be (B, 1, *spatial), got {tuple(label.shape)}.")
    values = torch.as_tensor(list(labels), device=label.device, dtype=label.dtype).reshape(
        1, -1, *([1] * (label.ndim - 2))
    )
    return (label == values).float()


class DIOObjective(nn.Module):
    """``T = w_img L(I_f, I_m o phi) + w_dice D(S_f, S_m o phi) + R(phi)`` (Eq. 2), summed over levels.

    ``network.register(fixed, moving)`` runs the features and the solver; every level's warp
    (Algorithm 2 keeps them all "for backpropagation"), resized to the fixed grid, warps the moving
    image (linear) and the one-hot moving labels (linear, so the Dice term is differentiable).
    Gradients reach the feature network through the solver's implicit backward (§3.2).

    Defaults follow the official DIO OASIS configuration: LNCC image loss with weight 0.25, Dice
    loss with weight 1 and squared denominators ("dice order 2"); ``R`` off. The LNCC window is
    9 voxels (VoxelMorph's).

    Args:
        labels: label values in the Dice term (e.g. OASIS 1..35); empty/None: image term only.
        image_loss: ``(warped, fixed) -> scalar``; default MONAI ``LocalNormalizedCrossCorrelationLoss``.
        image_weight, dice_weight: term weights.
        regularization_loss: optional ``ddf -> scalar`` on the finest field.
        regularization_weight: its weight.
        spatial_dims: 2 or 3 (for the default LNCC).
    """

    requires_labels = True
    requires_affines = True

    def __init__(
        self,
        labels: Sequence[int] | None = None,
        image_loss: Callable | None = None,
        image_weight: float = 0.25,
        dice_weight: float = 1.0,
        regularization_loss: Callable | None = None,
        regularization_weight: float = 0.0,
        spatial_dims: int = 3,
    ) -> None:
        super().__init__()
        self.labels = [int(v) for v in (labels or [])]
        self.image_loss = (
            image_loss
            if image_loss is not None
            else LocalNormalizedCrossCorrelationLoss(spatial_dims=spatial_dims, kernel_size=9)
        )
        self.dice_loss = DiceLoss(squared_pred=True, reduction="mean")
        self.image_weight = float(image_weight)
        self.dice_weight = float(dice_weight)
        self.regularization_loss = regularization_loss
        self.regularization_weight = float(regularization_weight)

    def forward(
        self,
        network: nn.Module,
        moving: torch.Tensor,
        fixed: torch.Tensor,
        fixed_label: torch.Tensor | None = None,
        moving_label: torch.Tensor | None = None,
        fixed_affine: torch.Tensor | None = None,
        moving_affine: torch.Tensor | None = None,
    ) -> RegistrationTerms:
        # with both affines the moving image is read through world coordinates (another grid,
        # e.g. after RandAnisotropicResampled); without, the two images span the same field of view
        result = network.register(fixed, moving, fixed_affine, moving_affine)
        use_labels = bool(self.labels) and self.dice_weight > 0
        if use_labels and (fixed_label is None or moving_label is None):
            raise ValueError(
                "DIOObjective has labels for its Dice term but the batch has no fixed_label / moving_label."
            )
        if use_labels:
            fixed_onehot = one_hot_labels(fixed_label, self.labels)
            moving_onehot = one_hot_labels(moving_label, self.labels)
        similarity = fixed.new_zeros(())
        warped = fixed
        for ddf in result.full_resolution_ddfs:
            warped = sample_moving(moving, ddf, result.fixed_to_moving)
            similarity = similarity + self.image_weight * self.image_loss(warped, fixed)
            if use_labels:
                warped_onehot = sample_moving(moving_onehot, ddf, result.fixed_to_moving, padding_mode="zeros")
                similarity = similarity + self.dice_weight * self.dice_loss(warped_onehot, fixed_onehot)
        ddf = result.full_resolution_ddfs[-1]
        if self.regularization_loss is not None and self.regularization_weight > 0:
            regularization = self.regularization_weight * self.regularization_loss(ddf)
        else:
            regularization = ddf.new_zeros(())
        return RegistrationTerms(similarity, regularization, ddf, warped)
