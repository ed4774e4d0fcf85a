"""Prompts: extra terms added to the solver's objective at test time (dio.md §5, "promptable").

A prompt is evaluated on each pyramid level with the level's displacement field and geometry and
returns a scalar added to ``C``. Prompts carry no learned parameters, so they need no retraining.

- :class:`LabelPrompt`: label maps of the fixed and moving image (e.g. a structure a user drew):
  ``weight * sum_x mean_l (onehot_f(x) - onehot_m(phi(x)))^2`` with the moving one-hot read by
  linear interpolation, the fixed one-hot resampled onto the level grid.
- :class:`LandmarkPrompt`: corresponding points: ``weight * sum_k |T(p_k + u(p_k)) - q_k|^2`` in
  moving voxels, with ``p_k`` fixed and ``q_k`` moving landmarks (full-resolution voxel
  coordinates, array-axis order), ``u`` read at ``p_k`` by linear interpolation.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from monai_ext.spatial import points_to_canonical, sample_moving, to_canonical, transform_points

__all__ = ["Prompt", "LabelPrompt", "LandmarkPrompt"]


class Prompt:
    """Base class. ``__call__(ddf, fixed_to_moving)`` with ``ddf`` on a level grid returns a scalar;
    ``reoriented(fixed_axes, moving_axes)`` is the same prompt for the arrays reordered by
    ``monai_ext.spatial.to_canonical`` with those ``(flipped, order)`` axes."""

    def __call__(self, ddf: torch.Tensor, fixed_to_moving: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def reoriented(self, fixed_axes: tuple, moving_axes: tuple) -> Prompt:
        raise NotImplementedError


def _one_hot(label: torch.Tensor, values: Sequence[int]) -> torch.Tensor:
    if label.ndim < 3 or label.shape[1] != 1:
        raise ValueError(f"label maps must be (B, 1, *spatial), got {tuple(label.shape)}.")
    return torch.cat([(label == v).float() for v in values], dim=1)


class LabelPrompt(Prompt):
    """Label-map agreement term.

    Args:
        fixed_label: ``(B, 1, *fixed_spatial)`` integer label map on the fixed full grid.
        moving_label: ``(B, 1, *moving_spatial)`` on the moving full grid.
        labels: label values to match (background excluded unless listed); default all non-zero
            values present in either map.
        weight: multiplies the term.
    """

    def __init__(
        self,
        fixed_label: torch.Tensor,
        moving_label: torch.Tensor,
        labels: Sequence[int] | None = None,
        weight: float = 1.0,
    ) -> None:
        if labels is None:
            values = torch.unique(torch.cat([fixed_label.flatten(), moving_label.flatten()]))
            labels = [int(v) for v in values.tolist() if v != 0]
        if len(labels) == 0:
            raise ValueError("LabelPrompt needs at least one non-background label; both label maps are empty.")
        self.labels = [int(v) for v in labels]
        self.weight = float(weight)
        self.fixed = _one_hot(fixed_label, self.labels)
        self.moving = _one_hot(moving_label, self.labels)

    def reoriented(self, fixed_axes, moving_axes):
        prompt = copy.copy(self)
        prompt.fixed, prompt.moving = to_canonical(self.fixed, *fixed_axes), to_canonical(self.moving, *moving_axes)
        return prompt

    def __call__(self, ddf, fixed_to_moving):
        shape = tuple(ddf.shape[2:])
        mode = "bilinear" if len(shape) == 2 else "trilinear"
        fixed = self.fixed.to(ddf)
        if tuple(fixed.shape[2:]) != shape:
            fixed = F.interpolate(fixed, size=shape, mode=mode, align_corners=True)
        warped = sample_moving(self.moving.to(ddf), ddf, fixed_to_moving, padding_mode="zeros")
        return self.weight * (warped - fixed).pow(2).mean(dim=1).sum()


class LandmarkPrompt(Prompt):
    """Landmark correspondence term.

    Args:
        fixed_points: ``(B, K, ndim)`` voxel coordinates on the fixed full grid.
        moving_points: ``(B, K, ndim)`` voxel coordinates on the moving full grid.
        fixed_shape, moving_shape: full-resolution spatial shapes.
        weight: multiplies the term.
    """

    def __init__(
        self,
        fixed_points: torch.Tensor,
        moving_points: torch.Tensor,
        fixed_shape: Sequence[int],
        moving_shape: Sequence[int],
        weight: float = 1.0,
    ) -> None:
        fixed_points, moving_points = (
            torch.as_tensor(fixed_points, dtype=torch.float32),
            torch.as_tensor(moving_points, dtype=torch.float32),
        )
        if (
            fixed_points.shape != moving_points.shape
            or fixed_points.ndim != 3
            or fixed_points.shape[-1] != len(fixed_shape)
        ):
            raise ValueError(
                f"landmarks must be two (B, K, {len(fixed_shape)}) arrays of the same shape, "
                f"got {tuple(fixed_points.shape)} and {tuple(moving_points.shape)}."
            )
        self.fixed_points, self.moving_points = fixed_points, moving_points
        self.fixed_shape, self.moving_shape = tuple(int(s) for s in fixed_shape), tuple(int(s) for s in moving_shape)
        self.weight = float(weight)

    def reoriented(self, fixed_axes, moving_axes):
        prompt = copy.copy(self)
        prompt.fixed_points = points_to_canonical(self.fixed_points, *fixed_axes, self.fixed_shape)
        prompt.moving_points = points_to_canonical(self.moving_points, *moving_axes, self.moving_shape)
        prompt.fixed_shape = tuple(self.fixed_shape[a] for a in fixed_axes[1])
        prompt.moving_shape = tuple(self.moving_shape[a] for a in moving_axes[1])
        return prompt

    def __call__(self, ddf, fixed_to_moving):
        shape = tuple(ddf.shape[2:])
        ndim = len(shape)
        scale = torch.tensor(
            [(n - 1) / max(f - 1, 1) for n, f in zip(shape, self.fixed_shape)], dtype=ddf.dtype, device=ddf.device
        )
        level_points = self.fixed_points.to(ddf) * scale  # (B, K, ndim) voxels of the level
        normalized = (
            level_points / torch.tensor([max(n - 1, 1) / 2.0 for n in shape], dtype=ddf.dtype, device=ddf.device) - 1.0
        )
        grid = normalized.flip(-1).reshape(ddf.shape[0], -1, *([1] * (ndim - 1)), ndim)
        displacement = F.grid_sample(ddf, grid, mode="bilinear", padding_mode="border", align_corners=True)
        displacement = displacement.reshape(ddf.shape[0], ndim, -1).transpose(1, 2)
        mapped = transform_points(level_points + displacement, shape, self.moving_shape, fixed_to_moving)
        return self.weight * (mapped - self.moving_points.to(ddf)).pow(2).sum()
