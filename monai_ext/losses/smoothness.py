"""Smoothness regulariser of a displacement field (GSMorph Eq. 1, L_reg)."""

from __future__ import annotations

import torch
from torch import nn

from monai_ext.options import check_option

__all__ = ["GradientSmoothnessLoss"]

_PENALTIES = ("l1", "l2")


class GradientSmoothnessLoss(nn.Module):
    """Mean forward-difference magnitude of a displacement field, averaged over the spatial axes.

    ``L_reg(u) = 1/ndim * sum_d mean(|u(x + e_d) - u(x)|^p)`` with p = 1 (``"l1"``) or p = 2 (``"l2"``).

    - ``"l1"`` is what the official GSMorph code computes (mean absolute forward difference of the
      flow, divided by the number of spatial axes); it is the GSMorph default.
    - ``"l2"`` is VoxelMorph's diffusion regulariser (squared forward differences).

    The loss is a plain finite-difference expression rather than MONAI's ``BendingEnergyLoss``,
    because neither GSMorph nor VoxelMorph penalises second derivatives.

    Args:
        penalty: ``"l1"`` or ``"l2"``.

    Input:
        ddf: ``(B, ndim, *spatial)`` displacement in voxels (2-D or 3-D).
    """

    def __init__(self, penalty: str = "l1") -> None:
        super().__init__()
        check_option("penalty", penalty, _PENALTIES)
        self.penalty = penalty

    def forward(self, ddf: torch.Tensor) -> torch.Tensor:
        ndim = ddf.ndim - 2
        if ndim not in (2, 3) or ddf.shape[1] != ndim:
            raise ValueError(f"ddf must have shape (B, ndim, *spatial) with ndim 2 or 3, got {tuple(ddf.shape)}.")
        total = ddf.new_zeros(())
        for axis in range(2, ddf.ndim):
            diff = torch.diff(ddf, dim=axis)
            total = total + (diff.abs() if self.penalty == "l1" else diff * diff).mean()
        return total / ndim
