"""Test-time registration with DIO: switch the solver, add prompts, keep each image's own grid."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.inferers import Inferer
from monai.utils import convert_to_tensor

from monai_ext.metrics.landmarks import landmark_centroids
from monai_ext.solvers.multiscale_solver import MultiScaleSolver, SolverResult
from monai_ext.solvers.prompts import LabelPrompt, LandmarkPrompt, Prompt
from monai_ext.spatial import warp_moving

__all__ = ["DIOInferer"]


class DIOInferer(Inferer):
    """Run a :class:`~monai_ext.networks.DIORegistration` on a pair (dio.md §4.3-4.4, §5).

    - ``solver``: a :class:`~monai_ext.solvers.MultiScaleSolver` that replaces the trained one
      (optimiser, transform type, iteration schedule switched without retraining, §4.4); None
      keeps the network's.
    - Fixed and moving images keep their own sizes and voxel spacings (§4.3): with
      ``world_geometry`` (default) the moving image is read through the two images' MetaTensor
      affines; otherwise both are taken to span the same field of view.
    - Prompts (§5): with ``label_prompt_weight > 0`` the pair's label maps (``prompt_labels``, or
      all their labels) enter the optimisation objective; with ``landmark_prompt_weight > 0`` the
      pair's landmark maps (one value per landmark, matched by value) do. Prompting with the
      labels that are also scored is only a demonstration of the mechanism, not an evaluation.
    - ``match_fixed_spacing``: the moving image's features are computed at the fixed image's voxel
      size (§4.3's "isotropic" setting, ``DIORegistration.register``); the warped image and labels
      are still read from the moving image's own grid.
    - ``affine_solver``: an affine stage run before the deformable solver, in the same run (as
      ANTs runs affine then deformable by default); None: deformable only (pre-aligned data).

    :meth:`register` runs the network's optimisation layer with these settings (as ``train#inferer``
    it is what each training step differentiates through). :meth:`register_pair` is what
    ``RegistrationEvaluator`` calls for inferers that have it; it returns the DDF on the fixed grid,
    the moving image warped onto the fixed grid and the fixed-to-moving geometry.
    ``__call__(cat([moving, fixed], 1), network)`` serves pairs on one grid (MONAI's inferer API).
    """

    def __init__(
        self,
        solver: MultiScaleSolver | None = None,
        world_geometry: bool = True,
        label_prompt_weight: float = 0.0,
        prompt_labels: Sequence[int] | None = None,
        landmark_prompt_weight: float = 0.0,
        affine_solver: MultiScaleSolver | None = None,
        match_fixed_spacing: bool = False,
    ) -> None:
        super().__init__()
        if label_prompt_weight < 0 or landmark_prompt_weight < 0:
            raise ValueError("prompt weights must be >= 0.")
        self.solver = solver
        self.world_geometry = bool(world_geometry)
        self.label_prompt_weight = float(label_prompt_weight)
        self.prompt_labels = None if prompt_labels is None else [int(v) for v in prompt_labels]
        self.landmark_prompt_weight = float(landmark_prompt_weight)
        self.affine_solver = affine_solver
        self.match_fixed_spacing = bool(match_fixed_spacing)

    def _prompts(self, pair: dict, fixed: torch.Tensor, moving: torch.Tensor) -> list[Prompt]:
        prompts: list[Prompt] = []
        if self.label_prompt_weight > 0:
            if "fixed_label" not in pair or "moving_label" not in pair:
                raise ValueError("label_prompt_weight > 0 needs fixed_label and moving_label in the pair.")
            prompts.append(
                LabelPrompt(
                    convert_to_tensor(pair["fixed_label"], track_meta=False),
                    convert_to_tensor(pair["moving_label"], track_meta=False),
                    self.prompt_labels,
                    self.label_prompt_weight,
                )
            )
        if self.landmark_prompt_weight > 0:
            if "fixed_landmarks" not in pair or "moving_landmarks" not in pair:
                raise ValueError(
                    "landmark_prompt_weight > 0 needs fixed_landmarks and moving_landmarks maps in the pair."
                )
            fixed_points, moving_points = [], []
            for b in range(fixed.shape[0]):
                values, fp = landmark_centroids(
                    convert_to_tensor(pair["fixed_landmarks"], track_meta=False)[b], spatial_dims=fixed.ndim - 2
                )
                _, mp = landmark_centroids(
                    convert_to_tensor(pair["moving_landmarks"], track_meta=False)[b],
                    values=values.tolist(),
                    spatial_dims=fixed.ndim - 2,
                )
                keep = torch.isfinite(fp).all(1) & torch.isfinite(mp).all(1)
                fixed_points.append(fp[keep].float())
                moving_points.append(mp[keep].float())
            if len({len(p) for p in fixed_points}) != 1 or len(fixed_points[0]) == 0:
                raise ValueError(
                    "landmark prompts need the same, non-zero number of shared landmarks in every pair of the batch."
                )
            prompts.append(
                LandmarkPrompt(
                    torch.stack(fixed_points).to(fixed.device),
                    torch.stack(moving_points).to(fixed.device),
                    fixed.shape[2:],
                    moving.shape[2:],
                    self.landmark_prompt_weight,
                )
            )
        return prompts

    def register(
        self,
        network,
        fixed: torch.Tensor,
        moving: torch.Tensor,
        fixed_affine=None,
        moving_affine=None,
        prompts: Sequence[Prompt] = (),
    ) -> SolverResult:
        """``network.register`` with this inferer's solver, affine stage and feature grid; what a
        training step runs when this inferer is ``train#inferer`` (DIO Eq. 2 differentiates through it)."""
        return network.register(
            fixed,
            moving,
            fixed_affine,
            moving_affine,
            prompts=prompts,
            solver=self.solver,
            affine_solver=self.affine_solver,
            match_fixed_spacing=self.match_fixed_spacing,
        )

    def register_pair(self, pair: dict, network) -> dict:
        """``pred`` (DDF on the fixed grid), ``warped_image``, ``solver_iterations`` (per level) and
        ``fixed_to_moving`` (the geometry, None for one field of view) for one batch of pairs; the
        evaluator's postprocessing (``monai_ext.transforms.WarpMovingd``) warps the labels."""
        fixed, moving = pair["fixed_image"], pair["moving_image"]
        affines = {}
        if not self.world_geometry:
            affines = {"fixed_affine": None, "moving_affine": None}
            fixed_in, moving_in = (
                convert_to_tensor(fixed, track_meta=False),
                convert_to_tensor(moving, track_meta=False),
            )
        else:
            fixed_in, moving_in = fixed, moving
        result = self.register(network, fixed_in, moving_in, prompts=self._prompts(pair, fixed, moving), **affines)
        ddf = result.full_resolution_ddfs[-1]
        output = {
            "pred": ddf,
            "warped_image": warp_moving(convert_to_tensor(moving, track_meta=False), ddf, result.fixed_to_moving),
            "solver_iterations": result.iterations,
            "fixed_to_moving": result.fixed_to_moving,
        }
        return output

    def __call__(self, inputs: torch.Tensor, network, *args, **kwargs) -> torch.Tensor:  # type: ignore[override]
        half = inputs.shape[1] // 2
        pair = {"moving_image": inputs[:, :half], "fixed_image": inputs[:, half:]}
        return self.register_pair(pair, network)["pred"]
