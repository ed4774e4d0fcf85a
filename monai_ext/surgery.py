"""Gradient surgery between a similarity and a regularisation objective.

Given the per-parameter gradients of the similarity loss ``g_sim`` and of the regularisation
loss ``g_reg`` of a registration network, :class:`GradientSurgery` returns the gradients to
hand to the optimiser. Two choices define a method:

* granularity - which entries are grouped for the conflict test and the projection:
  ``"layer"`` (one group per parameter tensor, GSMorph's layer-wise surgery, gsmorph.md §2.1),
  ``"network"`` (all parameters flattened into one vector, as PCGrad / GS-PCGrad, gsmorph.md §3.2)
  or ``"element"`` (every scalar entry on its own, as GS-Agr, gsmorph.md §3.2).
* rule - how a group's two gradients are combined:
  ``"similarity"`` (GSMorph Algorithm 1), ``"sum"`` (PCGrad, Yu et al. 2020),
  ``"agreement"`` (GS-Agr, Mansilla et al. 2021), ``"random"`` (instance optimisation with
  gradient projection, io_gradient_projection.md §2.4) and ``"weighted_sum"`` (no surgery,
  VoxelMorph's ``g_sim + lambda * g_reg``, gsmorph.md Eq. 1).

Two gradients of a group conflict when their inner product is negative (cosine < 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from monai_ext.options import check_option

__all__ = ["GradientSurgery", "GRANULARITIES", "RULES", "MODES", "method_name"]

GRANULARITIES = ("layer", "network", "element")
RULES = ("similarity", "sum", "agreement", "random", "weighted_sum")
# named presets: mode -> (granularity, rule)
MODES = {
    "gsmorph": ("layer", "similarity"),
    # GS-PCGrad as GSMorph §3.2 defines it ("the same GS strategy as ours, but with respect to the
    # whole parameters of the entire network"), which is also what the authors' code runs
    "pcgrad": ("network", "similarity"),
    # PCGrad as Yu et al. (2020) define it for two tasks: both projected, then summed
    "pcgrad_sum": ("network", "sum"),
    "gs_agr": ("element", "agreement"),
    "weighted_sum": ("layer", "weighted_sum"),
    # instance optimisation with gradient projection (io_gradient_projection.md §2.4): the
    # gradients w.r.t. all parameters theta, as one vector each, as in PCGrad
    "random": ("network", "random"),
}


# how the papers name each training mode (gsmorph.md Table 1)
METHOD_NAMES = {"gsmorph": "GSMorph", "pcgrad": "GS-PCGrad", "gs_agr": "GS-Agr"}


def method_name(mode: str, weight: float) -> str:
    """The name a results table gives a training mode: ``GSMorph``, ``GS-PCGrad``, ``GS-Agr``,
    ``VoxelMorph (lambda=<weight>)`` for ``weighted_sum``, else the mode itself."""
    if mode == "weighted_sum":
        return f"VoxelMorph (lambda={weight})"
    return METHOD_NAMES.get(mode, mode)


class GradientSurgery:
    """Combine the gradients of a similarity and a regularisation loss, projecting conflicts away.

    For one group (a parameter tensor, the whole network, or one scalar entry, see
    ``granularity``) with similarity gradient ``s`` and regularisation gradient ``r`` (both
    flattened), the groups conflict when ``<s, r> < 0`` and the rules give:

    * ``"similarity"`` (GSMorph, gsmorph.md Algorithm 1 and Eq. 2):
      ``g = s`` without conflict, else ``g = s - <s, r> / ||r||^2 r`` (``s`` projected onto the
      normal plane of ``r``). ``r`` only steers the direction, so ``weight`` has no effect.
    * ``"sum"`` (PCGrad for two objectives, Yu et al. 2020): with ``r <- weight * r``, each
      gradient is projected onto the normal plane of the other (original) one when they
      conflict, then ``g = s' + r'``.
    * ``"random"`` (io_gradient_projection.md §2.4): with ``r <- weight * r``, when they conflict
      one of the two, drawn with probability 1/2 from ``generator``, is projected onto the
      normal plane of the other; then ``g = s' + r'``. (The paper's Eq. 3 prints ``||s||^2`` in
      the denominator; the projection onto the normal plane of ``r`` needs ``||r||^2``, used here.)
    * ``"agreement"`` (GS-Agr as gsmorph.md §3.2 describes it, after Mansilla et al. 2021's
      Agr-Rand): ``g = s`` without conflict, else Gaussian noise ``N(0, sigma^2)``. With
      ``noise_std=None`` (default) ``sigma`` is set per parameter tensor (per network for the
      ``"network"`` granularity) to the mean absolute value of the *non-conflicting* entries of
      ``s`` (of all its entries when every entry conflicts), the scale Agr-Rand uses: the noise then
      has the size of a typical update entry of that tensor, so the learning rate keeps its meaning
      and no unit-dependent constant has to be tuned. A float ``noise_std`` fixes ``sigma`` instead.
      ``weight`` has no effect.
    * ``"weighted_sum"`` (no surgery, VoxelMorph with ``lambda = weight``, gsmorph.md Eq. 1):
      ``g = s + weight * r``. The conflict rate is still measured and reported.

    Zero norms: in exact arithmetic ``<s, r> < 0`` implies ``s != 0`` and ``r != 0``; to stay
    safe under floating-point underflow a group only counts as conflicting when, in addition,
    ``||s||^2 > 0`` and ``||r||^2 > 0`` as computed. A group whose squared norm is zero is
    therefore never projected and nothing is ever divided by zero (e.g. ``r = 0`` leaves ``s``
    unchanged).

    ``None`` entries (parameters without a gradient) are allowed: when both objectives give
    ``None`` the output entry is ``None`` and the group is not counted; when only one does, the
    missing gradient is taken as zeros.

    Args:
        granularity: ``"layer"`` (per parameter tensor), ``"network"`` (one flattened vector) or
            ``"element"`` (per scalar entry).
        rule: ``"similarity"``, ``"sum"``, ``"agreement"``, ``"random"`` or ``"weighted_sum"``.
        weight: non-negative factor on ``g_reg`` for the ``"sum"``, ``"random"`` and
            ``"weighted_sum"`` rules (the ``lambda`` of gsmorph.md Eq. 1); ignored by
            ``"similarity"`` and ``"agreement"``, which are invariant to a positive scale of ``r``.
        noise_std: standard deviation of the replacement noise of the ``"agreement"`` rule;
            ``None`` for the per-tensor automatic scale described above.
        generator: ``torch.Generator`` for the random draws (``"agreement"``, ``"random"``);
            ``None`` uses torch's global generator. Draws are made on the generator's device and
            moved to the gradients' device.

    Calling the object with two lists of per-parameter gradients (same length, same shapes)
    returns ``(gradients, conflict_rate)``: the combined gradients (same order, ``None`` where
    both inputs were ``None``) and the fraction of groups in conflict, a float in ``[0, 1]``
    (conflicting tensors over tensors for ``"layer"``, 0 or 1 for ``"network"``, conflicting
    entries over entries for ``"element"``; 0 when there is no group).
    """

    def __init__(
        self,
        granularity: str = "layer",
        rule: str = "similarity",
        weight: float = 1.0,
        noise_std: float | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.granularity = check_option("granularity", granularity, GRANULARITIES)
        self.rule = check_option("rule", rule, RULES)
        weight = float(weight)
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight must be a finite non-negative number; got {weight!r}.")
        self.weight = weight
        if noise_std is not None:
            noise_std = float(noise_std)
            if not math.isfinite(noise_std) or noise_std < 0:
                raise ValueError(f"noise_std must be None or a finite non-negative number; got {noise_std!r}.")
        self.noise_std = noise_std
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None; got {type(generator).__name__}.")
        self.generator = generator

    @classmethod
    def from_mode(cls, mode: str, **kwargs) -> GradientSurgery:
        """Build a named preset.

        ``"gsmorph"`` (layer, similarity), ``"pcgrad"`` (network, similarity: GS-PCGrad of
        gsmorph.md §3.2), ``"pcgrad_sum"`` (network, sum: the original PCGrad), ``"gs_agr"`` (element,
        agreement), ``"weighted_sum"`` (layer, weighted_sum: the layer-wise conflict rate is
        reported) and ``"random"`` (network, random: io_gradient_projection.md §2.4 treats the
        gradients w.r.t. all parameters as one vector each). ``kwargs`` are the other constructor
        arguments (``weight``, ``noise_std``, ``generator``).
        """
        granularity, rule = MODES[check_option("mode", mode, MODES)]
        return cls(granularity=granularity, rule=rule, **kwargs)

    @property
    def loss_weight(self) -> float:
        """Weight of the regularisation loss in the total reported for logging.

        ``weight`` for the rules that use it (``"sum"``, ``"random"``, ``"weighted_sum"``), 1 for
        ``"similarity"`` and ``"agreement"``, which have no weight.
        """
        return self.weight if self.rule in ("sum", "random", "weighted_sum") else 1.0

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(granularity={self.granularity!r}, rule={self.rule!r}, "
            f"weight={self.weight}, noise_std={self.noise_std})"
        )

    # ------------------------------------------------------------------------------------------
    def __call__(
        self, sim_grads: Sequence[Tensor | None], reg_grads: Sequence[Tensor | None]
    ) -> tuple[list[Tensor | None], float]:
        sim_grads, reg_grads = list(sim_grads), list(reg_grads)
        if len(sim_grads) != len(reg_grads):
            raise ValueError(
                f"sim_grads and reg_grads must have the same length; got {len(sim_grads)} and {len(reg_grads)}."
            )
        out: list[Tensor | None] = [None] * len(sim_grads)
        pairs: list[tuple[int, Tensor, Tensor]] = []
        for i, (s, r) in enumerate(zip(sim_grads, reg_grads)):
            if s is None and r is None:
                continue
            if s is None:
                s = torch.zeros_like(r)
            elif r is None:
                r = torch.zeros_like(s)
            elif s.shape != r.shape:
                raise ValueError(
                    f"gradient {i}: similarity and regularisation gradients differ in shape "
                    f"({tuple(s.shape)} vs {tuple(r.shape)})."
                )
            pairs.append((i, s, r))
        if not pairs:
            return out, 0.0

        if self.granularity == "network":
            flat_s = torch.cat([s.reshape(-1) for _, s, _ in pairs])
            flat_r = torch.cat([r.reshape(-1) for _, _, r in pairs])
            g, n_conflict = self._combine(flat_s, flat_r, elementwise=False)
            offset = 0
            for i, s, _ in pairs:
                out[i] = g[offset : offset + s.numel()].view_as(s).to(s.dtype)
                offset += s.numel()
            return out, float(n_conflict)

        elementwise = self.granularity == "element"
        conflicts: list[Tensor] = []
        n_groups = 0
        for i, s, r in pairs:
            g, n_conflict = self._combine(s.reshape(-1), r.reshape(-1), elementwise=elementwise)
            out[i] = g.view_as(s)
            conflicts.append(n_conflict)
            n_groups += s.numel() if elementwise else 1
        if n_groups == 0:  # only empty tensors
            return out, 0.0
        # one host synchronisation for the whole call
        return out, float(torch.stack(conflicts).sum().item()) / n_groups

    # ------------------------------------------------------------------------------------------
    def _combine(self, s: Tensor, r: Tensor, elementwise: bool) -> tuple[Tensor, Tensor]:
        """Combine flat ``s`` and ``r`` as one group, or entry by entry when ``elementwise``.

        Returns the combined flat gradient and the number of conflicting groups (0-d tensor).
        """
        if self.rule in ("sum", "random", "weighted_sum"):
            r = r * self.weight
        if elementwise:
            dot, s_sq, r_sq = s * r, s * s, r * r
        else:
            dot, s_sq, r_sq = torch.dot(s, r), torch.dot(s, s), torch.dot(r, r)
        # zero squared norms exclude a conflict, so the divisions below never see a zero
        conflict = (dot < 0) & (s_sq > 0) & (r_sq > 0)
        n_conflict = conflict.sum()
        if self.rule == "weighted_sum":
            return s + r, n_conflict

        one = torch.ones((), dtype=dot.dtype, device=dot.device)
        # coefficient of r removed from s (s onto r's normal plane) and of s removed from r
        coef_s = torch.where(conflict, dot / torch.where(r_sq > 0, r_sq, one), torch.zeros_like(dot))
        coef_r = torch.where(conflict, dot / torch.where(s_sq > 0, s_sq, one), torch.zeros_like(dot))

        if self.rule == "similarity":
            return s - coef_s * r, n_conflict
        if self.rule == "sum":
            return (s - coef_s * r) + (r - coef_r * s), n_conflict
        if self.rule == "random":
            # True: project s onto r's normal plane; False: project r onto s's normal plane
            pick_s = self._uniform(dot.shape, s) < 0.5
            coef_s = torch.where(pick_s, coef_s, torch.zeros_like(coef_s))
            coef_r = torch.where(pick_s, torch.zeros_like(coef_r), coef_r)
            return (s - coef_s * r) + (r - coef_r * s), n_conflict
        # agreement: keep s where there is no conflict, Gaussian noise where there is one
        if self.noise_std is None:
            keep = ~conflict if elementwise else torch.ones_like(s, dtype=torch.bool)
            # mean |s| over the non-conflicting entries (over all entries when none is left)
            n_keep = keep.sum()
            abs_s = s.abs()
            std = torch.where(
                n_keep > 0,
                torch.where(keep, abs_s, torch.zeros_like(abs_s)).sum() / n_keep.clamp_min(1),
                abs_s.mean() if s.numel() else torch.zeros((), dtype=s.dtype, device=s.device),
            )
        else:
            std = torch.as_tensor(self.noise_std, dtype=s.dtype, device=s.device)
        noise = self._normal(s.shape, s) * std
        return torch.where(conflict, noise, s), n_conflict

    def _uniform(self, shape: torch.Size, like: Tensor) -> Tensor:
        device = self.generator.device if self.generator is not None else like.device
        return torch.rand(shape, generator=self.generator, device=device, dtype=like.dtype).to(like.device)

    def _normal(self, shape: torch.Size, like: Tensor) -> Tensor:
        device = self.generator.device if self.generator is not None else like.device
        return torch.randn(shape, generator=self.generator, device=device, dtype=like.dtype).to(like.device)
