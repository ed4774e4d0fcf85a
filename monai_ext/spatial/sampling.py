"""Sampling fields and images at points: the one bi/trilinear sampler every module uses.

Points are given in *normalised* coordinates ``n in [-1, 1]^d`` with the corner voxels at -1 and
+1 (``align_corners=True``): ``n = 2 x / (N - 1) - 1`` for voxel ``x`` of a grid of ``N`` voxels
along the axis. Such points describe the same physical location on every grid that spans the field
of view, which is what a field predicted on a coarse grid and evaluated on a finer one needs
(ICON's Down / TwoStep, GradICON's sample points, DIO's pyramid levels).

Everything here is written on ``torch.nn.functional.grid_sample`` (MONAI ``Warp`` samples only on
the field's own grid) and is TorchScript-compatible, so scripted networks can call it.
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F

__all__ = [
    "normalized_scale",
    "normalized_identity",
    "voxel_to_normalized",
    "normalized_to_voxel",
    "grid_sample_at",
    "sample_at_points",
]


def normalized_scale(spatial_shape: List[int], like: torch.Tensor) -> torch.Tensor:
    """``(1, ndim, 1, ...)``: ``2 / (N_c - 1)`` per axis, voxels -> normalised units (1-voxel axes: 2)."""
    ndim = len(spatial_shape)
    values = [2.0 / float(max(n - 1, 1)) for n in spatial_shape]
    scale = torch.tensor(values, dtype=like.dtype, device=like.device)
    return scale.reshape([1, ndim] + [1] * ndim)


def normalized_identity(spatial_shape: List[int], like: torch.Tensor) -> torch.Tensor:
    """Identity map ``(1, ndim, *spatial)`` in normalised units, channel ``c`` along array axis ``c``."""
    axes = [torch.linspace(-1.0, 1.0, n, dtype=like.dtype, device=like.device) for n in spatial_shape]
    return torch.stack(torch.meshgrid(axes, indexing="ij"), dim=0).unsqueeze(0)


def _half_extent(shape: List[int], like: torch.Tensor) -> torch.Tensor:
    """``(N - 1) / 2`` per axis (1 for single-voxel axes, whose only coordinate is 0)."""
    return torch.tensor([max(int(n) - 1, 1) / 2.0 for n in shape], dtype=like.dtype, device=like.device)


def voxel_to_normalized(points: torch.Tensor, shape: List[int]) -> torch.Tensor:
    """Voxel coordinates ``(..., ndim)`` (channel last) of a grid of ``shape`` -> normalised coordinates."""
    return points / _half_extent(shape, points) - 1.0


def normalized_to_voxel(points: torch.Tensor, shape: List[int]) -> torch.Tensor:
    """Inverse of :func:`voxel_to_normalized`."""
    return (points + 1.0) * _half_extent(shape, points)


def grid_sample_at(
    values: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear", padding_mode: str = "border"
) -> torch.Tensor:
    """``grid_sample(values, grid)`` with ``align_corners=True``; a grid of batch 1 serves every item.

    Args:
        values: ``(B, C, *M)``.
        grid: ``(B | 1, *P, ndim)`` normalised points in ``grid_sample``'s order (coordinate of the
            *last* array axis first).
        mode: ``"bilinear"`` (bi/trilinear) or ``"nearest"``.
        padding_mode: ``"border"`` (MONAI ``Warp`` and ICON), ``"zeros"`` or ``"reflection"``.

    Returns:
        ``(B, C, *P)``.
    """
    if grid.shape[0] != values.shape[0]:
        grid = grid.expand([values.shape[0]] + list(grid.shape[1:]))
    if not torch.jit.is_scripting():
        chunks = _thread_chunks(values, grid)
        if chunks > 1:
            return _grid_sample_in_chunks(values, grid, mode, padding_mode, chunks)
    return F.grid_sample(values, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


# PyTorch's CPU kernel of 3-D grid_sample (forward and backward) runs its batch items in parallel
# and the points of one item on one thread, so a batch-1 volume leaves every other core idle. The
# points are dealt out as a batch of chunks over the same (expanded, not copied) values instead;
# the backward then gives each chunk its own gradient of the values (summed by autograd), which
# is why the number of chunks is bounded by a memory budget when the values need a gradient.
_POINTS_PER_CHUNK = 1 << 15
_GRADIENT_COPIES_BUDGET = 1 << 28  # elements of the per-chunk value gradients (1 GiB in float32)


@torch.jit.unused
def _thread_chunks(values: torch.Tensor, grid: torch.Tensor) -> int:
    """How many chunks to split a batch-1 3-D CPU ``grid_sample`` into (1: do not split)."""
    if values.device.type != "cpu" or values.ndim != 5 or values.shape[0] != 1:
        return 1
    points = grid.numel() // grid.shape[-1]
    chunks = min(torch.get_num_threads(), points // _POINTS_PER_CHUNK)
    if values.requires_grad and torch.is_grad_enabled():
        chunks = min(chunks, _GRADIENT_COPIES_BUDGET // max(values.numel(), 1))
    # a count that divides the points needs no padding (a copy of the grid); the points of a
    # volume almost always have one
    for divisor in range(chunks, max(chunks // 2, 1), -1):
        if points % divisor == 0:
            return divisor
    return max(chunks, 1)


@torch.jit.unused
def _grid_sample_in_chunks(
    values: torch.Tensor, grid: torch.Tensor, mode: str, padding_mode: str, chunks: int
) -> torch.Tensor:
    """``grid_sample`` of batch-1 ``values`` at ``grid (1, *P, 3)`` as ``chunks`` batch items."""
    channels, out_shape = values.shape[1], grid.shape[1:-1]
    flat = grid.reshape(1, -1, grid.shape[-1])
    count = flat.shape[1]
    per_chunk = -(-count // chunks)
    if per_chunk * chunks > count:  # pad with copies of a real point; their outputs are dropped
        flat = torch.cat([flat, flat[:, :1].expand(1, per_chunk * chunks - count, flat.shape[-1])], dim=1)
    sampled = F.grid_sample(
        values.expand((chunks,) + values.shape[1:]),
        flat.reshape(chunks, 1, 1, per_chunk, flat.shape[-1]),
        mode=mode,
        padding_mode=padding_mode,
        align_corners=True,
    )
    sampled = sampled.reshape(chunks, channels, per_chunk).transpose(0, 1).reshape(1, channels, -1)
    return sampled[..., :count].reshape((1, channels) + out_shape)


def sample_at_points(values: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Sample ``values (B, C, *M)`` at normalised ``points (B | 1, ndim, *P)`` (channel first,
    channel ``c`` along array axis ``c``) -> ``(B, C, *P)``.

    Bi/trilinear, border padding, corners aligned: ICON's ``compute_warped_image_multiNC`` and
    MONAI ``Warp``'s convention.
    """
    ndim = points.shape[1]
    grid = torch.flip(points, [1]).permute([0] + list(range(2, ndim + 2)) + [1])
    return grid_sample_at(values, grid)
