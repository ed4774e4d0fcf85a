"""Feature-space dissimilarities of the DIO solver's objective ``C(F_f, F_m o phi)`` (dio.md Eq. 1, §3.2).

The solver's objective is an *integral* over the fixed grid, summed over voxels and averaged over
feature channels: the force ``dC/du(x)`` at a voxel then does not depend on the image size, and
the identity that stands in for the inverse Hessian in the Jacobian-free backward (§3.2) is a
per-voxel unit-curvature approximation at every resolution. (A mean over voxels would shrink the
implicit gradients by the number of voxels, below the outer Adam's epsilon on 3-D volumes.)
"""

from __future__ import annotations

import torch
from monai.losses import LocalNormalizedCrossCorrelationLoss
from torch import nn

__all__ = ["FeatureMSE", "FeatureLNCC", "build_dissimilarity"]


def _voxels(x: torch.Tensor) -> int:
    return int(torch.tensor(x.shape[2:]).prod())


class FeatureMSE(nn.Module):
    """``sum_x mean_c (F_f(x) - F_m(phi(x)))^2`` per batch (summed over pairs)."""

    def forward(self, warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        return (warped - fixed).pow(2).mean(dim=1).sum()


class FeatureLNCC(nn.Module):
    """``sum_x mean_c (1 - LNCC_c(x))`` with a square window (MONAI's local NCC, reused).

    Args:
        spatial_dims: 2 or 3.
        kernel_size: window width in voxels (odd; 5 by default).
    """

    def __init__(self, spatial_dims: int = 3, kernel_size: int = 5) -> None:
        super().__init__()
        self.lncc = LocalNormalizedCrossCorrelationLoss(
            spatial_dims=spatial_dims, kernel_size=kernel_size, reduction="mean"
        )

    def forward(self, warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        # MONAI returns -mean(LNCC); 1 + that is the mean dissimilarity, times voxels and pairs.
        return (1.0 + self.lncc(warped, fixed)) * _voxels(fixed) * fixed.shape[0]


def build_dissimilarity(name: str | nn.Module, spatial_dims: int, lncc_kernel_size: int = 5) -> nn.Module:
    """``"mse"`` (official DIO default, 'l2') or ``"lncc"``; a module passes through."""
    if isinstance(name, nn.Module):
        return name
    key = str(name).lower()
    if key in ("mse", "l2"):
        return FeatureMSE()
    if key in ("lncc", "ncc"):
        return FeatureLNCC(spatial_dims, lncc_kernel_size)
    raise ValueError(f"dissimilarity must be 'mse' or 'lncc', got {name!r}.")
