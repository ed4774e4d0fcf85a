"""DIO: a feature network feeding the differentiable multi-scale optimisation layer (dio.md Fig. 1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.data import MetaTensor
from monai.utils import convert_to_tensor
from torch import nn

from monai_ext.solvers.multiscale_solver import MultiScaleSolver, SolverResult
from monai_ext.solvers.prompts import Prompt
from monai_ext.solvers.transform_models import affine_geometry, compose_affine
from monai_ext.spatial import (
    affine_spacing,
    canonical_affine,
    canonical_axes,
    ddf_from_canonical,
    fixed_to_moving_matrix,
    resample_to_spacing,
    resize_ddf,
    to_canonical,
)

__all__ = ["DIORegistration", "image_affine"]


def image_affine(image: Any) -> torch.Tensor | None:
    """The voxel-to-world affine(s) of a MetaTensor (``(B, 4, 4)`` for a batch), else None."""
    if isinstance(image, MetaTensor):
        affine = torch.as_tensor(image.affine)
        return affine if affine.ndim == 3 else affine.unsqueeze(0)
    return None


class DIORegistration(nn.Module):
    """Deep Implicit Optimization (dio.md §3): features of each image alone, then optimisation.

    ``F_f = g(I_f)``, ``F_m = g(I_m)`` (§3.1: the two images are processed independently, so they
    may differ in size and voxel spacing), ``phi* = argmin C(F_f, F_m o phi)`` by ``solver``
    (Algorithm 2), differentiated implicitly (§3.2).

    ``forward(x)`` follows the bundles' ``network_def`` contract: ``x = cat([moving, fixed], 1)``
    on one grid, returns the finest DDF ``(B, ndim, *spatial)``; :meth:`register` is the general
    entry point (different grids, affines, prompts, a test-time solver).

    Args:
        feature_net: image ``(B, C, *spatial)`` -> list of features, coarse -> fine, one per
            solver level (e.g. ``monai_ext.networks.dio_unet``).
        solver: the optimisation layer used in training and by default at test time.
    """

    def __init__(self, feature_net: nn.Module, solver: MultiScaleSolver | None = None) -> None:
        super().__init__()
        self.feature_net = feature_net
        self.solver = MultiScaleSolver() if solver is None else solver

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The multi-scale features of one image (coarse -> fine)."""
        features = self.feature_net(convert_to_tensor(image, track_meta=False))
        if isinstance(features, torch.Tensor):
            features = [features]
        return list(features)

    def _feature_pair(self, fixed: torch.Tensor, moving: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Features of both images; one batched call when the grids match and no BatchNorm would
        mix the two (per-image normalisation keeps them independent, §3.1): batch-1 3-D
        convolutions are several times slower per image on CPUs."""
        batched = fixed.shape == moving.shape and not any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.feature_net.modules()
        )
        if not batched:
            return self.features(fixed), self.features(moving)
        both = self.features(
            torch.cat([convert_to_tensor(fixed, track_meta=False), convert_to_tensor(moving, track_meta=False)], dim=0)
        )
        batch = fixed.shape[0]
        return [f[:batch] for f in both], [f[batch:] for f in both]

    def geometry(
        self, fixed: torch.Tensor, moving: torch.Tensor, fixed_affine: Any = None, moving_affine: Any = None
    ) -> torch.Tensor | None:
        """Fixed -> moving normalised-coordinate matrices ``(B, ndim+1, ndim+1)`` from the affines.

        Affines default to the images' MetaTensor affines. None (same field of view) when either
        is missing, or when both images have the same grid and affine.
        """
        fixed_affine = image_affine(fixed) if fixed_affine is None else torch.as_tensor(fixed_affine)
        moving_affine = image_affine(moving) if moving_affine is None else torch.as_tensor(moving_affine)
        if fixed_affine is None or moving_affine is None:
            return None
        fixed_affine = fixed_affine if fixed_affine.ndim == 3 else fixed_affine.unsqueeze(0)
        moving_affine = moving_affine if moving_affine.ndim == 3 else moving_affine.unsqueeze(0)
        fixed_shape, moving_shape = tuple(fixed.shape[2:]), tuple(moving.shape[2:])
        if fixed_shape == moving_shape and torch.allclose(fixed_affine.double(), moving_affine.double()):
            return None
        batch = max(fixed_affine.shape[0], moving_affine.shape[0])
        matrices = [
            fixed_to_moving_matrix(
                fixed_affine[min(b, fixed_affine.shape[0] - 1)],
                moving_affine[min(b, moving_affine.shape[0] - 1)],
                fixed_shape,
                moving_shape,
                device=fixed.device,
            )
            for b in range(batch)
        ]
        return torch.stack(matrices)

    def register(
        self,
        fixed: torch.Tensor,
        moving: torch.Tensor,
        fixed_affine: Any = None,
        moving_affine: Any = None,
        prompts: Sequence[Prompt] = (),
        solver: MultiScaleSolver | None = None,
        affine_solver: MultiScaleSolver | None = None,
        match_fixed_spacing: bool = False,
    ) -> SolverResult:
        """Register ``moving`` ``(B, C, *moving_spatial)`` to ``fixed`` ``(B, C, *fixed_spatial)``.

        Args:
            fixed_affine, moving_affine: voxel-to-world affines (default: MetaTensor affines);
                with both, the moving image is read through world coordinates, so sizes and
                spacings may differ (§4.3). Without, the images are taken to span the same field
                of view.
            prompts: extra objective terms (``monai_ext.solvers.LabelPrompt`` / ``LandmarkPrompt``).
            solver: a solver to use instead of the trained one (test-time switching, §4.4).
            affine_solver: a solver with ``transform="affine"`` run first, on the same features;
                the deformable solver then starts from its result (affine, then deformable, in
                one run, as ANTs does by default). Test time only: no gradient flows through it.
                The result's ``iterations`` and ``losses`` then list the affine levels first.
            match_fixed_spacing: compute the moving image's features from a copy resampled to the
                fixed image's voxel size (same field of view, :func:`~monai_ext.spatial.resample_to_spacing`);
                §4.3's "isotropic" setting. Convolutional features count their receptive field in
                voxels, so a thick-slice moving image otherwise gives features that do not match
                the fixed image's (§4.3's "anisotropic" setting, the default here). Only the
                features change: the moving image, labels and prompts keep their own grid.

        Returns:
            the solver's result with ``full_resolution_ddfs`` (every level on the fixed grid) and
            ``fixed_to_moving`` set; ``result.full_resolution_ddfs[-1]`` is the registration.
        """
        if fixed.ndim != moving.ndim or fixed.shape[0] != moving.shape[0] or fixed.shape[1] != moving.shape[1]:
            raise ValueError(
                f"fixed {tuple(fixed.shape)} and moving {tuple(moving.shape)} must be (B, C, *spatial) "
                "with equal B and C."
            )
        fixed_affine = image_affine(fixed) if fixed_affine is None else torch.as_tensor(fixed_affine)
        moving_affine = image_affine(moving) if moving_affine is None else torch.as_tensor(moving_affine)
        fixed, moving = convert_to_tensor(fixed, track_meta=False), convert_to_tensor(moving, track_meta=False)
        axes = self._canonical_axes(fixed, moving, fixed_affine, moving_affine)
        options = {"solver": solver, "affine_solver": affine_solver, "match_fixed_spacing": match_fixed_spacing}
        if axes is None:
            return self._register(fixed, moving, fixed_affine, moving_affine, prompts, **options)
        # register the arrays in RAS storage order (exact flips / transpositions), then put the
        # fields back in the stored order: how an image is stored does not change the result
        (fixed_axes, moving_axes), shapes = axes, (fixed.shape[2:], moving.shape[2:])
        result = self._register(
            to_canonical(fixed, *fixed_axes),
            to_canonical(moving, *moving_axes),
            canonical_affine(fixed_affine, *fixed_axes, shapes[0]),
            canonical_affine(moving_affine, *moving_axes, shapes[1]),
            [p.reoriented(fixed_axes, moving_axes) for p in prompts],
            **options,
        )
        result.ddfs = [ddf_from_canonical(d, *fixed_axes) for d in result.ddfs]
        result.full_resolution_ddfs = [ddf_from_canonical(d, *fixed_axes) for d in result.full_resolution_ddfs]
        result.params = []  # parameters of the canonical arrays; the fields above are what counts
        result.fixed_to_moving = self.geometry(fixed, moving, fixed_affine, moving_affine)
        return result

    @staticmethod
    def _canonical_axes(fixed, moving, fixed_affine, moving_affine) -> tuple[tuple, tuple] | None:
        """``(fixed_axes, moving_axes)`` of :func:`~monai_ext.spatial.canonical_axes` when both
        affines are known, each batch stored one way and either image not in RAS order; else None."""
        if fixed_affine is None or moving_affine is None:
            return None
        axes = []
        for image, affine in ((fixed, fixed_affine), (moving, moving_affine)):
            per_item = {canonical_axes(a, image.ndim - 2) for a in (affine if affine.ndim == 3 else affine[None])}
            if len(per_item) > 1:
                return None
            axes.append(per_item.pop())
        identity = ((), tuple(range(fixed.ndim - 2)))
        return None if axes[0] == axes[1] == identity else (axes[0], axes[1])

    @staticmethod
    def _at_fixed_spacing(moving, fixed_affine, moving_affine) -> torch.Tensor:
        """The moving image at the fixed voxel size in the same normalised frame (the geometry
        computed for its own grid still applies); itself when affines are missing or agree."""
        if fixed_affine is None or moving_affine is None:
            return moving
        ndim = moving.ndim - 2
        spacings = []
        for affine in (fixed_affine, moving_affine):
            per_item = {
                affine_spacing(a.double().cpu().numpy(), ndim) for a in (affine if affine.ndim == 3 else affine[None])
            }
            if len(per_item) > 1:
                raise ValueError("match_fixed_spacing needs one voxel spacing per batch for each image.")
            spacings.append(per_item.pop())
        return resample_to_spacing(moving, spacings[1], spacings[0])

    def _register(
        self, fixed, moving, fixed_affine, moving_affine, prompts, solver, affine_solver, match_fixed_spacing
    ) -> SolverResult:
        geometry = self.geometry(fixed, moving, fixed_affine, moving_affine)
        if match_fixed_spacing:
            moving = self._at_fixed_spacing(moving, fixed_affine, moving_affine)
        fixed_features, moving_features = self._feature_pair(fixed, moving)
        solver = self.solver if solver is None else solver
        if affine_solver is None:
            result = solver(fixed_features, moving_features, geometry, prompts)
        else:
            if affine_solver.model.name != "affine":
                raise ValueError(f"affine_solver must use transform='affine', got {affine_solver.model.name!r}.")
            detached = ([f.detach() for f in fixed_features], [f.detach() for f in moving_features])
            affine = affine_solver(*detached, geometry, prompts)
            matrix = affine.params[-1].detach()
            result = solver(fixed_features, moving_features, affine_geometry(matrix, geometry), prompts)
            result.ddfs = [compose_affine(matrix, ddf) for ddf in result.ddfs]
            result.iterations = affine.iterations + result.iterations
            result.losses = affine.losses + result.losses
        shape = tuple(fixed.shape[2:])
        result.full_resolution_ddfs = [
            ddf if tuple(ddf.shape[2:]) == shape else resize_ddf(ddf, shape) for ddf in result.ddfs
        ]
        result.fixed_to_moving = geometry
        return result

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x = cat([moving, fixed], 1)`` -> the DDF on the fixed grid (``network_def`` contract)."""
        if x.shape[1] % 2:
            raise ValueError(f"expected cat([moving, fixed], dim=1) with an even channel count, got {x.shape[1]}.")
        half = x.shape[1] // 2
        x = convert_to_tensor(x, track_meta=False)
        return self.register(x[:, half:], x[:, :half]).full_resolution_ddfs[-1]
