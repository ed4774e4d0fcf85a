"""DIO's differentiable multi-scale optimisation layer (dio.md §3.2-3.3, Algorithm 2)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from monai_ext.losses.smoothness import GradientSmoothnessLoss
from monai_ext.options import check_option
from monai_ext.solvers.dissimilarity import build_dissimilarity
from monai_ext.solvers.implicit import BACKWARD_MODES, ImplicitSpec, implicit_solution
from monai_ext.solvers.prompts import Prompt
from monai_ext.solvers.step_rules import build_step_rule
from monai_ext.solvers.transform_models import build_transform_model
from monai_ext.spatial import sample_moving

__all__ = ["MultiScaleSolver", "SolverResult"]

_BACKWARDS = (*BACKWARD_MODES, "unrolled")


@dataclass
class SolverResult:
    """What the solver returns for one batch.

    Attributes:
        ddfs: one displacement field per level, coarse -> fine, each ``(B, ndim, *level grid)``
            in voxels of its level (attached to the features by the chosen backward).
        params: the transform parameters per level (``ddfs`` are computed from them).
        losses: the objective ``C`` at each iteration of each level (python floats).
        iterations: iterations run per level (fewer than asked when early stopping triggers).
        full_resolution_ddfs: every level's field resized onto the fixed image's full grid (set by
            ``DIORegistration.register``; Eq. 2 is evaluated on each).
        fixed_to_moving: the geometry used (None: same field of view).
    """

    ddfs: list[torch.Tensor]
    params: list[torch.Tensor] = field(default_factory=list)
    losses: list[list[float]] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)
    full_resolution_ddfs: list[torch.Tensor] = field(default_factory=list)
    fixed_to_moving: torch.Tensor | None = None

    @property
    def ddf(self) -> torch.Tensor:
        """The finest level's displacement field."""
        return self.ddfs[-1]


def _default_learning_rate(transform: str, optimizer: str) -> float:
    """Adam: 0.5 voxels per iteration (the official solver's largest step of half a voxel), 0.01
    normalised units for affine; SGD: 1 voxel per unit force (steps clipped at half a voxel)."""
    if transform == "affine":
        return 0.01
    return 1.0 if optimizer.lower() == "sgd" else 0.5


class MultiScaleSolver(nn.Module):
    """Multi-scale registration of feature pyramids, as a differentiable layer.

    For levels ``l = 1..n`` (coarse -> fine) it minimises (Algorithm 2)

        C_l(p) = D(F_f^l, F_m^l o phi_p) + lambda R(u_p) + sum_k prompt_k(u_p)

    for ``iterations[l]`` steps of ``optimizer`` (or until the loss stops decreasing by a relative
    ``convergence_eps`` for ``convergence_patience`` consecutive iterations), saves ``p^(T_l)``
    and carries it to the next level (upsampled warp, line 17). ``D`` is the feature MSE (the
    official DIO default) or LNCC, summed over voxels (see ``dissimilarity``); ``R`` the diffusion
    regulariser (mean squared forward differences of ``u``, times the number of voxels).

    The iterations run without an autograd graph. Each level's result is attached to that level's
    features by implicit differentiation (``backward="jacobian_free"``, §3.2, or the exact
    ``"ift"``), so memory does not grow with the number of iterations; ``"unrolled"``
    differentiates through every iteration instead (memory grows; a reference for tests).

    Defaults: levels and iterations (200, 100, 50) at scales (4, 2, 1) follow the paper (A.3) and
    the official DIO OASIS configuration (iterations per level, ``convergence_eps = 1e-3`` with a
    patience of 4 iterations, Adam betas (0.9, 0.99), diffeomorphic smoothing sigmas 1.0 / 0.5,
    MSE feature loss); step sizes are described in ``step_rules`` (Adam 0.5 voxels per iteration,
    the official solver's largest step of half a voxel; SGD 1 voxel per unit force, clipped at
    half a voxel).

    Args:
        iterations: iterations per level, coarse -> fine (one entry per feature level).
        transform: ``"freeform"``, ``"diffeomorphic"`` (greedy compositional), ``"svf"`` or
            ``"affine"`` (see ``transform_models``).
        optimizer: ``"sgd"`` or ``"adam"``.
        learning_rate: step size (voxels for dense transforms; normalised units for affine).
        dissimilarity: ``"mse"`` or ``"lncc"`` (or a module ``(warped, fixed) -> scalar``).
        lncc_kernel_size: LNCC window.
        regularization_weight: ``lambda`` (0 disables ``R``, the paper's default).
        convergence_eps: relative decrease below which an iteration counts as stalled (<= 0: never stop early).
        convergence_patience: stalled iterations in a row that end a level.
        backward: ``"jacobian_free"``, ``"ift"`` or ``"unrolled"``.
        ift_cg_iterations, ift_damping: conjugate-gradient settings of ``"ift"``.
        sigma_grad, sigma_warp: smoothing of the diffeomorphic model (voxels).
        integration_steps: scaling-and-squaring steps of the SVF model.
        sgd_max_step: longest SGD step per voxel, in voxels (see ``step_rules``).
        adam_betas: Adam's betas.
        outside_moving: with a fixed-to-moving geometry (images of different fields of view),
            ``"mask"`` counts the dissimilarity only where ``x + u(x)`` falls inside the moving
            image (a partial-coverage scan is not matched against invented border values);
            ``"border"`` compares replicated border values there, as same-grid pairs always do.
    """

    def __init__(
        self,
        iterations: Sequence[int] = (200, 100, 50),
        transform: str = "freeform",
        optimizer: str = "sgd",
        learning_rate: float | None = None,
        dissimilarity: str | nn.Module = "mse",
        lncc_kernel_size: int = 5,
        regularization_weight: float = 0.0,
        convergence_eps: float = 1e-3,
        convergence_patience: int = 4,
        backward: str = "jacobian_free",
        ift_cg_iterations: int = 50,
        ift_damping: float = 1e-4,
        sigma_grad: float = 1.0,
        sigma_warp: float = 0.5,
        integration_steps: int = 7,
        sgd_max_step: float = 0.5,
        adam_betas: Sequence[float] = (0.9, 0.99),
        outside_moving: str = "mask",
    ) -> None:
        super().__init__()
        self.outside_moving = check_option("outside_moving", outside_moving, ("mask", "border"))
        self.iterations = [int(i) for i in iterations]
        if not self.iterations or any(i < 0 for i in self.iterations):
            raise ValueError(f"iterations must be non-negative counts, one per level, got {iterations}.")
        check_option("backward", backward, _BACKWARDS)
        if regularization_weight < 0:
            raise ValueError(f"regularization_weight must be >= 0, got {regularization_weight}.")
        if backward == "ift" and str(transform).lower() == "diffeomorphic":
            raise ValueError(
                "backward='ift' solves with the Hessian of the solver's objective, but the greedy diffeomorphic "
                "update (smoothed, composed) is not the gradient of that objective, so conjugate gradients gets a "
                "non-symmetric operator and a wrong answer; use backward='jacobian_free' (the paper's) or "
                "transform='freeform' / 'svf'."
            )
        self.transform = str(transform)
        self.model = build_transform_model(
            transform, sigma_grad=sigma_grad, sigma_warp=sigma_warp, integration_steps=integration_steps
        )
        if learning_rate is None:
            learning_rate = _default_learning_rate(self.model.name, str(optimizer))
        self.optimizer = str(optimizer)
        self.learning_rate = float(learning_rate)
        self._step_kwargs = {"max_step": float(sgd_max_step), "betas": tuple(float(b) for b in adam_betas)}
        build_step_rule(self.optimizer, self.learning_rate, **self._step_kwargs)  # validate now
        self.dissimilarity_name = dissimilarity if isinstance(dissimilarity, str) else type(dissimilarity).__name__
        self._dissimilarity = dissimilarity
        self.lncc_kernel_size = int(lncc_kernel_size)
        self.regularization_weight = float(regularization_weight)
        self.regularizer = GradientSmoothnessLoss("l2")
        self.convergence_eps = float(convergence_eps)
        self.convergence_patience = int(convergence_patience)
        self.backward_mode = backward
        self.ift_cg_iterations = int(ift_cg_iterations)
        self.ift_damping = float(ift_damping)

    def extra_repr(self) -> str:
        return (
            f"iterations={self.iterations}, transform={self.model.name!r}, optimizer={self.optimizer!r}, "
            f"learning_rate={self.learning_rate}, dissimilarity={self.dissimilarity_name!r}, "
            f"backward={self.backward_mode!r}"
        )

    def _level_objective(
        self, dissimilarity: nn.Module, fixed_to_moving: torch.Tensor | None, prompts: Sequence[Prompt]
    ):
        def objective(ddf: torch.Tensor, fixed_feature: torch.Tensor, moving_feature: torch.Tensor) -> torch.Tensor:
            warped = sample_moving(moving_feature, ddf, fixed_to_moving)
            if self.outside_moving == "mask" and fixed_to_moving is not None:
                # only where x + u(x) falls inside the moving image's field of view: replicated
                # border values would otherwise be matched as if they were anatomy
                inside = sample_moving(
                    torch.ones_like(moving_feature[:, :1]), ddf.detach(), fixed_to_moving, "bilinear", "zeros"
                )
                loss = dissimilarity(warped * inside, fixed_feature * inside)
            else:
                loss = dissimilarity(warped, fixed_feature)
            if self.regularization_weight > 0:
                voxels = ddf[0, 0].numel() * ddf.shape[0]
                loss = loss + self.regularization_weight * voxels * self.regularizer(ddf)
            for prompt in prompts:
                loss = loss + prompt(ddf, fixed_to_moving)
            return loss

        return objective

    def _stalled(self, loss: float, previous: float) -> bool:
        return not (loss / (abs(previous) + 1e-12) - 1.0 < -self.convergence_eps) if previous == previous else False

    def forward(
        self,
        fixed_features: Sequence[torch.Tensor],
        moving_features: Sequence[torch.Tensor],
        fixed_to_moving: torch.Tensor | None = None,
        prompts: Sequence[Prompt] = (),
    ) -> SolverResult:
        """Register the pyramids ``fixed_features`` / ``moving_features`` (coarse -> fine).

        Args:
            fixed_features: per level ``(B, C_l, *fixed grid_l)``.
            moving_features: per level ``(B, C_l, *moving grid_l)`` (any sizes).
            fixed_to_moving: ``geometry.fixed_to_moving_matrix`` (None: same field of view).
            prompts: extra objective terms (``prompts``).
        """
        if len(fixed_features) != len(moving_features):
            raise ValueError(f"got {len(fixed_features)} fixed and {len(moving_features)} moving feature levels.")
        if len(fixed_features) != len(self.iterations):
            raise ValueError(f"iterations has {len(self.iterations)} entries for {len(fixed_features)} feature levels.")
        for level, (ff, fm) in enumerate(zip(fixed_features, moving_features)):
            if ff.shape[:2] != fm.shape[:2] or ff.ndim != fm.ndim:
                raise ValueError(
                    f"level {level}: fixed {tuple(ff.shape)} and moving {tuple(fm.shape)} features need the same "
                    "batch and channels."
                )
            if not torch.isfinite(ff.detach()).all() or not torch.isfinite(fm.detach()).all():
                raise ValueError(f"level {level}: the features contain NaN or infinite values.")
        spatial_dims = fixed_features[0].ndim - 2
        dissimilarity = build_dissimilarity(self._dissimilarity, spatial_dims, self.lncc_kernel_size)
        objective = self._level_objective(dissimilarity, fixed_to_moving, prompts)
        step_rule = build_step_rule(self.optimizer, self.learning_rate, **self._step_kwargs)
        model = self.model
        unrolled = self.backward_mode == "unrolled"
        batch = fixed_features[0].shape[0]
        params = model.initial(batch, fixed_features[0].shape[2:], fixed_features[0].detach())
        result = SolverResult(ddfs=[])
        for level, (ff, fm) in enumerate(zip(fixed_features, moving_features)):
            shape = tuple(ff.shape[2:])
            if level > 0:
                params = model.to_next_level(params if unrolled else params.detach(), shape)
            step_rule.reset()
            ff_used, fm_used = (ff, fm) if unrolled else (ff.detach(), fm.detach())
            losses: list[float] = []
            previous, stalled, done = float("nan"), 0, 0
            accepted: tuple[torch.Tensor, torch.Tensor] | None = None  # (params, grad) of the last accepted point
            for _ in range(self.iterations[level]):
                with torch.enable_grad():
                    loss, grad = model.gradient(
                        params, shape, lambda ddf: objective(ddf, ff_used, fm_used), create_graph=unrolled
                    )
                value = float(loss.detach())
                if not math.isfinite(value) and not (step_rule.backtracks and accepted is not None):
                    raise FloatingPointError(
                        f"the solver diverged at level {level}, iteration {len(losses)} (loss {value}); "
                        f"lower learning_rate (now {self.learning_rate}) or check the features."
                    )
                if losses and not value <= losses[-1]:
                    step_rule.loss_increased()
                    if step_rule.backtracks:  # take the step back and retry it shorter
                        params, grad = accepted  # type: ignore[misc]
                        step = step_rule(model.precondition(grad), model.dense)
                        with torch.set_grad_enabled(unrolled):
                            params = model.apply_step(params if unrolled else params.detach(), step)
                        done += 1
                        continue
                elif losses:
                    step_rule.loss_decreased()
                losses.append(value)
                accepted = (params, grad)
                if self.convergence_eps > 0:
                    stalled = stalled + 1 if self._stalled(value, previous) else 0
                    previous = value
                    if stalled >= self.convergence_patience:
                        break
                with torch.set_grad_enabled(unrolled):
                    step = step_rule(model.precondition(grad), model.dense)
                    params = model.apply_step(params if unrolled else params.detach(), step)
                done += 1
            if unrolled:
                solution = params
            else:
                spec = ImplicitSpec(
                    objective, model, shape, self.backward_mode, self.ift_cg_iterations, self.ift_damping
                )
                solution = (
                    implicit_solution(params.detach(), ff, fm, spec)
                    if (ff.requires_grad or fm.requires_grad)
                    else params.detach()
                )
            result.params.append(solution)
            result.ddfs.append(model.to_ddf(solution, shape))
            result.losses.append(losses)
            result.iterations.append(done)
        return result
