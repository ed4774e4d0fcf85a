"""Descent steps of the DIO solver: SGD and Adam on the transform parameters (dio.md §4.4).

Both rules return the *step* to add to the parameters (already pointing downhill). Steps are
measured in voxels of the current pyramid level, as classical toolkits (ANTs' gradient step,
FireANTs) express them:

- ``SGD``: plain gradient descent ``step = -lr * g`` (``lr`` in voxels per unit force; the
  objective's forces are per-voxel quantities of unit-scale features, see ``dissimilarity``, and a
  trained feature network learns features whose scale suits the step), with each step clipped to
  at most ``max_step`` voxels per voxel, and a backtracking line search on the step size: a step
  that increased the objective is taken back (the solver returns to the last accepted point) and
  retried at half the size; every accepted step doubles the size again, up to ``lr``; each level
  starts at ``lr``. (Halving without restoring, as a step longer than 2 / curvature requires at
  first, left the size too small for the rest of the run: on a 32^2 toy with random features
  |rho(u*)| stayed at 35 % of its start.) Zero force means zero step, so the iteration settles at
  a stationary point rho(u*) = 0, which the implicit gradient assumes (Eq. 3-4).
- ``Adam``: Kingma & Ba's update ``-lr * m_hat / (sqrt(v_hat) + eps)`` with betas (0.9, 0.99)
  (the official DIO configuration's values); each component moves at most about ``lr`` voxels.
  ``eps`` is relative: ``eps_relative`` (0.1) times the largest per-voxel gradient norm of the
  level's first iteration. Adam's per-component normalisation would otherwise move every voxel by
  about ``lr`` whatever its force, so weak, noisy forces (flat background, rounding noise) would
  roughen an unregularised field; with the relative epsilon voxels with less than a tenth of the
  strongest force take gradient-descent-sized steps. (On a trained model's OASIS-like pair,
  free-form Adam folded 34 % of the voxels with 1e-3 and 13 % with 0.1; SVF 3.8 % and 0 %.)

For the affine model (non-dense parameters) norms are taken over all parameters of a pair.

Adam treats forces below ``min_force`` (1e-4 per voxel) as rounding noise: its epsilon never
drops below it, so two identical images stay at the identity instead of drifting along
amplified noise.
"""

from __future__ import annotations

import torch

__all__ = ["StepRule", "SGDStep", "AdamStep", "build_step_rule", "MIN_FORCE"]

MIN_FORCE = 1e-4


def _max_norm(grad: torch.Tensor, dense: bool) -> torch.Tensor:
    """Largest per-voxel vector norm (dense fields) or largest absolute entry, per pair, broadcastable."""
    batch = grad.shape[0]
    if dense:
        values = grad.norm(dim=1).reshape(batch, -1).amax(dim=1)
    else:
        values = grad.abs().reshape(batch, -1).amax(dim=1)
    return values.reshape(batch, *([1] * (grad.ndim - 1)))


class StepRule:
    """Base class; ``reset()`` starts a new pyramid level. A rule with ``backtracks = True`` has the
    solver take back a step that increased the objective (then ``loss_increased()``), and tells it
    of every accepted step (``loss_decreased()``)."""

    name = "base"
    backtracks = False

    def __init__(self, learning_rate: float) -> None:
        if not float(learning_rate) > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}.")
        self.learning_rate = float(learning_rate)

    def reset(self) -> None:
        """Forget the state of the previous level."""

    def loss_increased(self) -> None:
        """Called when the last step increased the objective."""

    def loss_decreased(self) -> None:
        """Called when the last step was accepted."""

    def __call__(self, grad: torch.Tensor, dense: bool) -> torch.Tensor:
        raise NotImplementedError


class SGDStep(StepRule):
    """Gradient descent with clipped steps and a backtracking step size (halved after a step that
    increased the objective and was taken back, doubled after an accepted one, at most ``lr``)."""

    name = "sgd"
    backtracks = True

    def __init__(self, learning_rate: float = 1.0, max_step: float = 0.5) -> None:
        super().__init__(learning_rate)
        if not float(max_step) > 0:
            raise ValueError(f"max_step must be > 0, got {max_step}.")
        self.max_step = float(max_step)
        self._factor = 1.0

    def reset(self) -> None:
        """Each level starts at the full step size."""
        self._factor = 1.0

    def loss_increased(self) -> None:
        self._factor *= 0.5

    def loss_decreased(self) -> None:
        self._factor = min(1.0, 2.0 * self._factor)

    def __call__(self, grad, dense):
        step = -(self.learning_rate * self._factor) * grad
        if dense:  # each voxel's step clipped on its own: a descent direction still
            length = step.detach().norm(dim=1, keepdim=True)
        else:
            length = _max_norm(step.detach(), dense)
        return step * (self.max_step / length.clamp_min(self.max_step))


class AdamStep(StepRule):
    """Adam on the transform parameters, moments reset at each level."""

    name = "adam"

    def __init__(
        self,
        learning_rate: float = 0.5,
        betas: tuple[float, float] = (0.9, 0.99),
        eps_relative: float = 0.1,
        eps: float = MIN_FORCE,
    ) -> None:
        super().__init__(learning_rate)
        beta1, beta2 = (float(b) for b in betas)
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"betas must lie in [0, 1), got {betas}.")
        if eps_relative < 0:
            raise ValueError(f"eps_relative must be >= 0, got {eps_relative}.")
        self.betas = (beta1, beta2)
        self.eps_relative = float(eps_relative)
        self.eps = float(eps)
        self.reset()

    def reset(self) -> None:
        self._m: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self._t = 0
        self._eps: torch.Tensor | float = self.eps

    def __call__(self, grad, dense):
        beta1, beta2 = self.betas
        self._t += 1
        if self._m is None:
            self._m, self._v = torch.zeros_like(grad), torch.zeros_like(grad)
            self._eps = (self.eps_relative * _max_norm(grad.detach(), dense)).clamp_min(self.eps)
        self._m = beta1 * self._m + (1 - beta1) * grad
        self._v = beta2 * self._v + (1 - beta2) * grad * grad
        m_hat = self._m / (1 - beta1**self._t)
        v_hat = self._v / (1 - beta2**self._t)
        return -self.learning_rate * m_hat / (v_hat.sqrt() + self._eps)


def build_step_rule(name: str | StepRule, learning_rate: float, **kwargs) -> StepRule:
    """``"sgd"`` or ``"adam"`` (or a ready ``StepRule``)."""
    if isinstance(name, StepRule):
        return name
    key = str(name).lower()
    if key == "sgd":
        return SGDStep(learning_rate, **{k: v for k, v in kwargs.items() if k in ("max_step",)})
    if key == "adam":
        return AdamStep(learning_rate, **{k: v for k, v in kwargs.items() if k in ("betas", "eps_relative")})
    raise ValueError(f"optimizer must be 'sgd' or 'adam', got {name!r}.")
