"""Transformation representations the DIO solver can optimise (dio.md §4.4: switchable at test time).

Each model says how its parameters ``p`` become a displacement field on a pyramid level, how a
descent step changes ``p``, and how ``p`` is carried to the next (finer) level:

- ``FreeForm``: ``p = u``, the DDF itself; additive steps ``u <- u - step`` (the "SGD" warp of
  Table 2, no constraint on the field).
- ``GreedyDiffeomorphic``: ``p = u``, updated by composition with a small smooth displacement,
  ``phi <- G_w * (phi o (id + delta))`` with the step ``delta`` taken along the Gaussian-smoothed
  compositional gradient (Gaussian ``sigma_grad``) and the result smoothed (``sigma_warp``): the
  greedy multi-scale diffeomorphic scheme of ANTs' SyN / FireANTs that Table 2 switches to at test
  time. Defaults ``sigma_grad = 1``, ``sigma_warp = 0.5`` voxels come from the official DIO
  configuration for its diffeomorphic solver.
- ``StationaryVelocity``: ``p = v``, ``u = exp(v)`` by scaling and squaring (MONAI ``DVF2DDF``,
  7 steps, as VoxelMorph-diff), gradient smoothed as for the greedy model; diffeomorphic by
  construction for smooth ``v``.
- ``Affine``: ``p = [A | t]`` acting on normalised coordinates (``(B, ndim, ndim + 1)``, identity at
  start), so the same parameters hold at every level and for images of any size.

Gradients ``dC/dp`` are taken by autograd; ``GreedyDiffeomorphic`` differentiates with respect to
the compositional update ``delta`` at ``delta = 0`` (the gradient on the manifold of warps), not
with respect to ``u``: by the chain rule ``(I + Du)^T dC/du``, with ``Du`` by central differences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.networks.layers import gaussian_1d

from monai_ext.options import check_option
from monai_ext.spatial import (
    compose_ddf,
    identity_grid,
    integrate_velocity,
    normalized_to_voxel,
    replicate_separable_filtering,
    resize_ddf,
    voxel_to_normalized,
)

__all__ = [
    "TransformModel",
    "FreeForm",
    "GreedyDiffeomorphic",
    "StationaryVelocity",
    "Affine",
    "TRANSFORM_MODELS",
    "build_transform_model",
    "gaussian_smooth",
    "affine_geometry",
    "compose_affine",
]


def gaussian_smooth(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian smoothing of ``(B, C, *spatial)`` (MONAI's kernel), with replicate padding
    so that a translation stays a translation (MONAI's ``GaussianFilter`` pads with zeros)."""
    if sigma <= 0:
        return field
    kernel = gaussian_1d(torch.tensor(float(sigma)), truncated=3.0, normalize=True).to(field)
    return replicate_separable_filtering(field, [kernel] * (field.ndim - 2))


class TransformModel:
    """Base class: a dense displacement field ``p = u`` with additive steps (free-form)."""

    name = "freeform"
    dense = True  # parameters are a field (B, ndim, *grid): step norms are taken per voxel

    def initial(self, batch: int, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        """Identity parameters on a level grid of ``shape``."""
        return like.new_zeros((batch, len(shape), *shape))

    def to_ddf(self, params: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        """The displacement field ``(B, ndim, *shape)`` in voxels of the level grid."""
        return params

    def to_next_level(self, params: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
        """Parameters carried onto the next level's grid (Algorithm 2, line 17: upsample the warp)."""
        return resize_ddf(params, shape)

    def gradient(
        self,
        params: torch.Tensor,
        shape: Sequence[int],
        objective: Callable[[torch.Tensor], torch.Tensor],
        create_graph: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(C, dC/dp)`` at ``params`` on a level grid of ``shape`` (before preconditioning)."""
        if not params.requires_grad:
            params = params.detach().requires_grad_(True)
        loss = objective(self.to_ddf(params, shape))
        (grad,) = torch.autograd.grad(loss, params, create_graph=create_graph)
        return loss, grad

    def precondition(self, grad: torch.Tensor) -> torch.Tensor:
        """Preconditioner ``P`` applied to the gradient before the step (identity here)."""
        return grad

    def apply_step(self, params: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """``p <- p + step`` (``step`` is already the descent step, i.e. negative-gradient direction)."""
        return params + step


class FreeForm(TransformModel):
    """Free-form displacement field ``u`` (no constraint); additive steps."""


class GreedyDiffeomorphic(TransformModel):
    """Greedy compositional updates ``phi <- G_w * (phi o (id + delta))`` with smoothed gradients.

    Args:
        sigma_grad: Gaussian sigma (voxels of the level) applied to the gradient (0 disables).
        sigma_warp: Gaussian sigma (voxels) applied to the updated displacement (0 disables).
    """

    name = "diffeomorphic"

    def __init__(self, sigma_grad: float = 1.0, sigma_warp: float = 0.5) -> None:
        if sigma_grad < 0 or sigma_warp < 0:
            raise ValueError(f"sigma_grad and sigma_warp must be >= 0, got {sigma_grad}, {sigma_warp}.")
        self.sigma_grad = float(sigma_grad)
        self.sigma_warp = float(sigma_warp)

    def gradient(self, params, shape, objective, create_graph=False):
        # d/d delta of C(u o (id + delta)) at delta = 0. With (u o (id + delta))(x) = delta(x) + u(x + delta(x))
        # its derivative in delta(x) is I + Du(x), so the gradient is (I + Du)^T dC/du: C is evaluated
        # at u itself, with no resampling of u and no backward through that resampling.
        u = params if params.requires_grad else params.detach().requires_grad_(True)
        loss = objective(u)
        (grad_u,) = torch.autograd.grad(loss, u, create_graph=create_graph)
        # derivatives[j][:, i] = d u_i / d x_j: central differences, one-sided on the first and last
        # slice (``torch.gradient``, the scheme of ``monai_ext.metrics.jacobian_determinant``); 0
        # along an axis of one voxel
        field = u if create_graph else u.detach()
        derivatives = [
            torch.gradient(field, dim=axis)[0] if field.shape[axis] > 1 else torch.zeros_like(field)
            for axis in range(2, field.ndim)
        ]
        correction = torch.stack([(derivative * grad_u).sum(1) for derivative in derivatives], dim=1)
        return loss, grad_u + correction

    def precondition(self, grad: torch.Tensor) -> torch.Tensor:
        return gaussian_smooth(grad, self.sigma_grad)

    def apply_step(self, params: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        return gaussian_smooth(compose_ddf(params, step), self.sigma_warp)


class StationaryVelocity(TransformModel):
    """Stationary velocity field ``v``; ``u = exp(v)`` by scaling and squaring.

    The gradient is Gaussian-smoothed (``sigma_grad``) before the step, as in log-domain demons,
    so ``v`` stays smooth and its exponential free of folds.

    Args:
        integration_steps: squaring steps (7, VoxelMorph's default).
        sigma_grad: Gaussian sigma (voxels of the level) applied to the gradient (0 disables).
    """

    name = "svf"

    def __init__(self, integration_steps: int = 7, sigma_grad: float = 1.0) -> None:
        if int(integration_steps) < 1:
            raise ValueError(f"integration_steps must be >= 1, got {integration_steps}.")
        if sigma_grad < 0:
            raise ValueError(f"sigma_grad must be >= 0, got {sigma_grad}.")
        self.integration_steps = int(integration_steps)
        self.sigma_grad = float(sigma_grad)

    def precondition(self, grad: torch.Tensor) -> torch.Tensor:
        return gaussian_smooth(grad, self.sigma_grad)

    def to_ddf(self, params, shape):
        return integrate_velocity(params, self.integration_steps)


def affine_geometry(params: torch.Tensor, fixed_to_moving: torch.Tensor | None) -> torch.Tensor:
    """The fixed -> moving normalised-coordinate matrices ``(B, ndim+1, ndim+1)`` of an affine stage
    followed by the pair's geometry: ``G @ [[A, t], [0, 1]]`` (``G`` the identity when None)."""
    batch, ndim = params.shape[0], params.shape[1]
    homogeneous = torch.eye(ndim + 1, dtype=params.dtype, device=params.device).repeat(batch, 1, 1)
    homogeneous[:, :ndim, :] = params
    if fixed_to_moving is None:
        return homogeneous
    geometry = fixed_to_moving.to(homogeneous)
    return (geometry if geometry.ndim == 3 else geometry.unsqueeze(0)) @ homogeneous


def compose_affine(params: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor:
    """The field ``v`` of ``x -> A(x + u(x))``: the affine stage ``params`` ``(B, ndim, ndim+1)``
    (normalised coordinates) applied after the field ``ddf`` ``(B, ndim, *grid)`` found under
    :func:`affine_geometry`, so that ``sample_moving(m, v, G)`` reads what
    ``sample_moving(m, ddf, affine_geometry(params, G))`` reads."""
    shape = list(ddf.shape[2:])
    ndim = len(shape)
    identity = identity_grid(shape, device=ddf.device, dtype=ddf.dtype)
    points = torch.movedim(identity.unsqueeze(0) + ddf, 1, -1)  # (B, *grid, ndim) voxels
    normalized = voxel_to_normalized(points, shape).reshape(ddf.shape[0], -1, ndim)
    params = params.to(ddf)
    mapped = normalized @ params[:, :, :ndim].transpose(1, 2) + params[:, None, :, ndim]
    voxels = normalized_to_voxel(mapped, shape).reshape(ddf.shape[0], *shape, ndim)
    return torch.movedim(voxels, -1, 1) - identity.unsqueeze(0)


class Affine(TransformModel):
    """Affine map of normalised coordinates ``n -> A n + t``, parameters ``(B, ndim, ndim + 1)``."""

    name = "affine"
    dense = False

    def initial(self, batch, shape, like):
        ndim = len(shape)
        eye = torch.eye(ndim, ndim + 1, dtype=like.dtype, device=like.device)
        return eye.unsqueeze(0).repeat(batch, 1, 1)

    def to_ddf(self, params, shape):
        return compose_affine(params, params.new_zeros(params.shape[0], len(shape), *shape))

    def to_next_level(self, params, shape):
        return params


TRANSFORM_MODELS = {
    "freeform": FreeForm,
    "diffeomorphic": GreedyDiffeomorphic,
    "svf": StationaryVelocity,
    "affine": Affine,
}


def build_transform_model(name: str | TransformModel, **kwargs) -> TransformModel:
    """A transform model by name (``freeform``, ``diffeomorphic``, ``svf``, ``affine``) or pass-through."""
    if isinstance(name, TransformModel):
        return name
    key = str(name).lower()
    check_option("transform", key, TRANSFORM_MODELS)
    cls = TRANSFORM_MODELS[key]
    if cls is GreedyDiffeomorphic:
        return cls(**{k: v for k, v in kwargs.items() if k in ("sigma_grad", "sigma_warp")})
    if cls is StationaryVelocity:
        return cls(**{k: v for k, v in kwargs.items() if k in ("integration_steps", "sigma_grad")})
    return cls()
