"""Separable filtering with edge replication, padded once."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["replicate_separable_filtering"]


def replicate_separable_filtering(x: torch.Tensor, kernels: Sequence[torch.Tensor]) -> torch.Tensor:
    """One 1-D kernel per spatial axis of ``x`` ``(B, C, *spatial)``, each channel alone, edges replicated.

    The same values as MONAI's ``separable_filtering(x, kernels, mode="replicate")``, which also pads
    every axis before its first convolution but copies the volume once per axis to do it; here one
    ``F.pad`` call pads them all, and each axis is then convolved without padding (axis 0 first, as
    MONAI does). A kernel ``[1]`` leaves its axis as it is.

    Args:
        x: ``(B, C, *spatial)``, 1 to 3 spatial axes.
        kernels: one odd-length 1-D kernel per spatial axis.
    """
    ndim = x.ndim - 2
    if len(kernels) != ndim:
        raise ValueError(f"need one kernel per spatial axis ({ndim}), got {len(kernels)}.")
    identity = [k.numel() == 1 and bool(k.reshape(-1)[0] == 1) for k in kernels]
    radii = [0 if skip else (k.numel() - 1) // 2 for k, skip in zip(kernels, identity)]
    if all(identity):
        return x
    padding = [r for radius in reversed(radii) for r in (radius, radius)]
    padded = F.pad(x, padding, mode="replicate")
    convolve = (F.conv1d, F.conv2d, F.conv3d)[ndim - 1]
    channels = x.shape[1]
    for axis, (kernel, skip) in enumerate(zip(kernels, identity)):
        if skip:
            continue
        shape = [1] * (ndim + 2)
        shape[axis + 2] = -1
        weight = kernel.to(padded).reshape(shape).repeat([channels, 1] + [1] * ndim)
        padded = convolve(padded, weight, groups=channels)
    return padded
