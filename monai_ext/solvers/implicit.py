"""Implicit differentiation through the solver's optimum (dio.md §3.2, Eq. 3-4).

At a local minimum ``p*`` of ``C(p, F_f, F_m)`` the force ``rho = dC/dp`` vanishes (Eq. 3). By the
implicit function theorem (Eq. 4) a loss ``T(p*)`` has

    dT/dF = - dT/dp (d rho/dp)^-1 d rho/dF.

``implicit_solution(p*, F_f, F_m, ...)`` returns ``p*`` unchanged in the forward pass and this
gradient in the backward pass, computed from ``p*`` and the features alone: nothing of the solver's
iterations is kept, so memory does not depend on the iteration count.

- ``"jacobian_free"`` (the paper's choice, following Fung et al.'s Jacobian-free backprop):
  ``(d rho/dp)^-1`` is replaced by the transform model's preconditioner ``P`` (the identity for
  free-form, SVF and affine; the gradient smoothing for the greedy diffeomorphic model), i.e.
  ``dT/dF ~= -dT/dp P d rho/dF``: one double-backward pass.
- ``"ift"``: the exact implicit-function-theorem gradient; ``(d rho/dp) x = dT/dp`` is solved by
  conjugate gradients with Hessian-vector products (double backward through ``grid_sample``),
  with Tikhonov damping. Meant for small problems (tests, 2-D). It is well-posed only where the
  Hessian is positive definite: unregularised free-form fields (lambda = 0) have a singular
  Hessian in flat regions, so CG ends at non-positive curvature or a large residual; that is
  reported with a warning (add ``regularization_weight``, raise ``ift_damping`` or use the
  Jacobian-free backward). The greedy diffeomorphic update is not the gradient of ``C``, so the
  solver refuses ``"ift"`` with it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from monai_ext.options import check_option
from monai_ext.solvers.transform_models import TransformModel

__all__ = ["ImplicitSpec", "implicit_solution", "conjugate_gradient", "CGReport", "ILL_POSED_RESIDUAL"]

BACKWARD_MODES = ("jacobian_free", "ift")


@dataclass
class ImplicitSpec:
    """What the backward pass needs besides tensors.

    Attributes:
        objective: ``(params, fixed_feature, moving_feature) -> C`` on one level.
        model: the transform model (its gradient and preconditioner).
        shape: the level grid.
        mode: ``"jacobian_free"`` or ``"ift"``.
        cg_iterations: CG iterations for ``"ift"``.
        damping: Tikhonov damping added to the Hessian for ``"ift"``.
    """

    objective: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    model: TransformModel
    shape: tuple[int, ...]
    mode: str = "jacobian_free"
    cg_iterations: int = 50
    damping: float = 1e-4


@dataclass
class CGReport:
    """How conjugate gradients ended: the relative residual ``|A x - b| / |b|``, the iterations
    run, and whether a direction of non-positive curvature stopped it (``A`` not positive definite)."""

    relative_residual: float
    iterations: int
    negative_curvature: bool


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor], rhs: torch.Tensor, iterations: int, tol: float = 1e-8
) -> tuple[torch.Tensor, CGReport]:
    """Solve ``A x = rhs`` for symmetric positive (semi-)definite ``A`` given as ``matvec``.

    Stops early when the residual norm falls below ``tol * |rhs|`` or a direction of non-positive
    curvature appears (the current iterate is then returned). Returns ``x`` and a :class:`CGReport`.
    """
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    p = r.clone()
    rs = (r * r).sum()
    threshold = (tol * rhs.norm()) ** 2
    done, negative = 0, False
    for done in range(int(iterations)):
        if rs <= threshold:
            break
        ap = matvec(p)
        curvature = (p * ap).sum()
        if curvature <= 0:
            negative = True
            break
        alpha = rs / curvature
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = (r * r).sum()
        p = r + (rs_new / rs) * p
        rs = rs_new
    relative = float(rs.sqrt() / rhs.norm().clamp_min(1e-30))
    return x, CGReport(relative, done, negative)


#: relative CG residual above which the exact implicit gradient is reported as unreliable
ILL_POSED_RESIDUAL = 0.1


class _ImplicitLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, params, fixed_feature, moving_feature, spec: ImplicitSpec):  # type: ignore[override]
        ctx.spec = spec
        ctx.save_for_backward(params, fixed_feature, moving_feature)
        return params.clone()

    @staticmethod
    def backward(ctx, grad_params):  # type: ignore[override]
        params, fixed_feature, moving_feature = ctx.saved_tensors
        spec: ImplicitSpec = ctx.spec
        wants = ctx.needs_input_grad[1:3]
        if not any(wants):
            return None, None, None, None
        with torch.enable_grad():
            p = params.detach().requires_grad_(True)
            ff = fixed_feature.detach().requires_grad_(wants[0])
            fm = moving_feature.detach().requires_grad_(wants[1])
            _, rho = spec.model.gradient(p, spec.shape, lambda ddf: spec.objective(ddf, ff, fm), create_graph=True)
            if spec.mode == "ift":
                # Solve H x = dT/dp with H = d rho / dp (symmetric: the Hessian of C).
                def hessian_vector(v: torch.Tensor) -> torch.Tensor:
                    (hv,) = torch.autograd.grad(rho, p, grad_outputs=v, retain_graph=True)
                    return hv + spec.damping * v

                weight, report = conjugate_gradient(hessian_vector, grad_params.detach(), spec.cg_iterations)
                if report.negative_curvature or report.relative_residual > ILL_POSED_RESIDUAL:
                    warnings.warn(
                        "backward='ift': the exact implicit gradient is ill-posed here: the Hessian of the solver's "
                        f"objective at its result is {'indefinite' if report.negative_curvature else 'near singular'} "
                        f"(conjugate gradients: relative residual {report.relative_residual:.2g} after "
                        f"{report.iterations} iterations), so the gradient is unreliable. Add regularisation "
                        "(regularization_weight > 0), raise ift_damping, or use backward='jacobian_free' "
                        "(the paper's).",
                        stacklevel=2,
                    )
            else:
                weight = spec.model.precondition(grad_params.detach())
            inputs = [t for t, w in ((ff, wants[0]), (fm, wants[1])) if w]
            grads = torch.autograd.grad(rho, inputs, grad_outputs=-weight, allow_unused=True)
        grads = list(grads)
        grad_ff = grads.pop(0) if wants[0] else None
        grad_fm = grads.pop(0) if wants[1] else None
        return None, grad_ff, grad_fm, None


def implicit_solution(
    params: torch.Tensor, fixed_feature: torch.Tensor, moving_feature: torch.Tensor, spec: ImplicitSpec
) -> torch.Tensor:
    """``params`` (a converged ``p*``) attached to the features by implicit differentiation.

    ``params`` itself receives no gradient (the solver's path to it is not differentiated).
    """
    check_option("backward", spec.mode, BACKWARD_MODES)
    return _ImplicitLayer.apply(params.detach(), fixed_feature, moving_feature, spec)
