"""Inverse-consistency regularisers of a pair of DDFs: GradICON (gradicon.md Eq. 3) and ICON.

A network run both ways gives ``ddf_ab = net(moving=A, fixed=B)`` on B's grid (ICON's
``Phi^AB``: B coordinates -> A coordinates) and ``ddf_ba = net(moving=B, fixed=A)`` on A's grid.
Both losses evaluate the composition ``Phi^AB o Phi^BA`` (A -> A) at sample points ``p`` of A's
grid; in our DDF terms

``Phi^AB(Phi^BA(p)) - p = e(p) = u_ba(p) + u_ab(p + u_ba(p))``

with each DDF interpolated (bi/trilinear, coordinates clamped to the grid: ICON's
``compute_warped_image_multiNC``, ``grid_sample`` with ``padding_mode="border"`` and
``align_corners=True``).

Numbers are those of the ``icon_registration`` package: errors and finite-difference steps are
measured in ICON's ``[0, 1]^d`` coordinates (voxel ``/ (N_c - 1)``), so the paper's
``lambda = 1.5`` and ``delta = 1e-3`` carry over unchanged.

- ``GradICONLoss`` (Eq. 3, ``GradientICON`` / ``GradientICONSparse``):
  ``sum_d mean_{b, c, p} ((e_c(p + delta e_d) - e_c(p)) / delta)^2``, i.e. the squared Frobenius
  deviation of the Jacobian of ``Phi^AB o Phi^BA`` from identity divided by ``ndim`` (the mean runs
  over the vector components too), by forward differences. Translations cost nothing (section 3.3).
- ``ICONLoss`` (Greer et al. 2021, ``InverseConsistentNet``):
  ``mean |e_{AB o BA}|^2 + mean |e_{BA o AB}|^2`` with the means again over components.

Sample points (ICON draws them afresh at each call): ``"dense"`` are all voxels of the grid
plus a Gaussian perturbation of std ``1 / N_last`` in ``[0, 1]`` units (``N_last`` the size of the
last axis, for every axis, as ICON does); ``"sparse"`` every second voxel along each axis with
twice that std (``GradientICONSparse``). ``perturb=False`` keeps the grid points; explicit
points can be passed to ``forward``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from monai_ext.options import check_option
from monai_ext.spatial import grid_sample_at, identity_grid

__all__ = ["GradICONLoss", "ICONLoss", "inverse_consistency_sample_points"]

SAMPLINGS = ("dense", "sparse")
_CHUNK = 1 << 22  # elements per partial sum of squares (16 MiB in float32)


def _check_pair(ddf_ab: torch.Tensor, ddf_ba: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    for name, ddf in (("ddf_ab", ddf_ab), ("ddf_ba", ddf_ba)):
        if not isinstance(ddf, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(ddf).__name__}.")
        if ddf.ndim not in (4, 5) or ddf.shape[1] != ddf.ndim - 2:
            raise ValueError(
                f"{name} must have shape (B, ndim, *spatial) with ndim 2 or 3, got shape {tuple(ddf.shape)}."
            )
        if not ddf.is_floating_point():
            raise ValueError(f"{name} must be a floating point tensor, got dtype {ddf.dtype}.")
    if ddf_ab.shape != ddf_ba.shape:
        raise ValueError(
            f"ddf_ab and ddf_ba must have the same shape (both grids alike), got {tuple(ddf_ab.shape)} and "
            f"{tuple(ddf_ba.shape)}."
        )
    if ddf_ab.device != ddf_ba.device:
        raise ValueError(f"ddf_ab and ddf_ba must be on the same device, got {ddf_ab.device} and {ddf_ba.device}.")
    dtype = torch.promote_types(ddf_ab.dtype, ddf_ba.dtype)
    return ddf_ab.to(dtype), ddf_ba.to(dtype)


def inverse_consistency_sample_points(
    spatial_shape: Sequence[int],
    sampling: str = "dense",
    perturb: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """ICON's sample points in voxel coordinates, ``(1, ndim, *grid)``.

    ``"dense"``: every voxel, ``"sparse"``: every second voxel (``[::2]`` along each axis). With
    ``perturb``, Gaussian noise of std ``k / N_last`` in ``[0, 1]`` units is added (``k`` = 1 dense,
    2 sparse), i.e. ``k (N_c - 1) / N_last`` voxels along axis ``c``. The dense noise is drawn as
    ICON draws it (one ``randn`` of shape ``(1, ndim, *spatial)``), so a generator in the same
    state gives ICON's points. The sparse noise is drawn only for the kept voxels (ICON draws a
    full-size tensor and subsamples it: same distribution, different stream).
    """
    check_option("sampling", sampling, SAMPLINGS)
    shape = tuple(int(s) for s in spatial_shape)
    dtype = dtype or torch.get_default_dtype()
    points = identity_grid(shape, device=device, dtype=dtype).unsqueeze(0)
    factor = 1.0
    if sampling == "sparse":
        points = points[(...,) + (slice(None, None, 2),) * len(shape)]
        factor = 2.0
    if perturb:
        rng_device = generator.device if generator is not None else points.device
        # float32 whatever the DDF dtype, as ICON draws it: the same generator state gives the same points.
        noise = torch.randn(points.shape, generator=generator, device=rng_device, dtype=torch.float32)
        noise = noise.to(device=points.device, dtype=dtype)
        scale = torch.tensor([factor * max(n - 1, 1) / shape[-1] for n in shape], device=points.device, dtype=dtype)
        points = points + noise * scale.reshape((1, len(shape)) + (1,) * len(shape))
    return points.contiguous()


class _InverseConsistencyBase(nn.Module):
    def __init__(self, sampling: str, perturb: bool, generator: torch.Generator | None) -> None:
        super().__init__()
        check_option("sampling", sampling, SAMPLINGS)
        self.sampling = sampling
        self.perturb = bool(perturb)
        self.generator = generator

    @staticmethod
    def _half_extent(ddf: torch.Tensor) -> torch.Tensor:
        """``(N_c - 1) / 2`` per axis in grid_sample's channel order (last array axis first)."""
        sizes = [max(int(n) - 1, 1) / 2.0 for n in reversed(ddf.shape[2:])]
        return torch.tensor(sizes, device=ddf.device, dtype=ddf.dtype)

    def _grid_units(self, ddf: torch.Tensor) -> torch.Tensor:
        """DDF in voxels -> displacement in grid_sample's [-1, 1] units, channels reversed (x = last axis)."""
        ndim = ddf.ndim - 2
        return ddf.flip(1) / self._half_extent(ddf).reshape((1, ndim) + (1,) * ndim)

    def _points_to_grid(self, points: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor:
        """Voxel points ``(B', ndim, *grid)`` -> grid_sample grid ``(B', *grid, ndim)`` in [-1, 1]."""
        ndim = ddf.ndim - 2
        if not isinstance(points, torch.Tensor) or points.ndim != ndim + 2 or points.shape[1] != ndim:
            got = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
            raise ValueError(f"points must have shape (B or 1, {ndim}, *grid) (voxel coordinates), got {got}.")
        if points.shape[0] not in (1, ddf.shape[0]):
            raise ValueError(f"points batch must be 1 or {ddf.shape[0]}, got {points.shape[0]}.")
        points = points.to(device=ddf.device, dtype=ddf.dtype)
        return points.movedim(1, -1).flip(-1) / self._half_extent(ddf) - 1.0

    def _sample_points(self, ddf: torch.Tensor, points: torch.Tensor | None) -> torch.Tensor:
        if points is None:
            points = inverse_consistency_sample_points(
                ddf.shape[2:], self.sampling, self.perturb, self.generator, device=ddf.device, dtype=ddf.dtype
            )
        return self._points_to_grid(points, ddf)

    def _composition_error(self, first: torch.Tensor, second: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """``(second o first)(p) - p`` in grid units (B, ndim reversed, *grid): ``first`` applied first."""
        # bilinear, border padding, corners aligned: warp_image's and ICON's interpolation, at points
        # that are not the field's own grid (sparse subsets, perturbed points, finite-difference copies)
        v = grid_sample_at(first, grid)
        # in place: grid_sample's backward does not need its output
        return grid_sample_at(second, grid + v.movedim(1, -1)).add_(v)


class GradICONLoss(_InverseConsistencyBase):
    """GradICON regulariser ``||grad(Phi^AB o Phi^BA) - I||_F^2`` (gradicon.md Eq. 3), as ``icon_registration``.

    ``forward(ddf_ab, ddf_ba)``: the Jacobian of ``e(p) = Phi^AB(Phi^BA(p)) - p`` by forward
    differences with step ``delta`` (``[0, 1]`` units) along each axis, squared and averaged over
    batch, components and sample points, summed over the ``ndim`` directions (module docstring).
    One composition order, as Eq. 3 and ICON's ``GradientICON``; the other order enters when the
    pair is also presented swapped (or with ``symmetric=True``, which adds it).

    Args:
        sampling: ``"dense"`` (every voxel, ``GradientICON``) or ``"sparse"`` (every second voxel
            along each axis, ``GradientICONSparse``).
        delta: finite-difference step in ``[0, 1]`` units (paper: 1e-3).
        perturb: add ICON's random perturbation to the sample points at each call.
        symmetric: also add the term of ``Phi^BA o Phi^AB``.
        generator: ``torch.Generator`` for the perturbation (default: torch's global RNG; on the
            generator's device).

    Inputs:
        ddf_ab: ``(B, ndim, *spatial)`` voxel DDF of ``net(moving=A, fixed=B)`` on B's grid.
        ddf_ba: same shape, ``net(moving=B, fixed=A)`` on A's grid.
        points: optional sample points on A's grid, voxel coordinates ``(B or 1, ndim, *grid)``
            (any grid size); replaces ``sampling`` / ``perturb``.

    Returns:
        0-d tensor, differentiable w.r.t. both DDFs.
    """

    def __init__(
        self,
        sampling: str = "dense",
        delta: float = 1e-3,
        perturb: bool = True,
        symmetric: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(sampling, perturb, generator)
        if not (isinstance(delta, (int, float)) and delta > 0):
            raise ValueError(f"delta must be a positive number ([0, 1] units), got {delta!r}.")
        self.delta = float(delta)
        self.symmetric = bool(symmetric)

    def _one_order(self, first: torch.Tensor, second: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        batch, ndim = first.shape[:2]
        # (B, ndim, points, ndim + 1): base point and its ndim shifted copies side by side
        error = self._composition_error(first, second, grid).reshape(batch, ndim, -1, ndim + 1)
        # error is in [-1, 1] grid units = 2 x ICON's [0, 1] units; the steps are delta in [0, 1] units.
        count = error.numel() // (ndim + 1) * ndim
        return _ForwardDifferenceEnergy.apply(error) * (ndim / (count * (2.0 * self.delta) ** 2))

    def forward(self, ddf_ab: torch.Tensor, ddf_ba: torch.Tensor, points: torch.Tensor | None = None) -> torch.Tensor:
        ddf_ab, ddf_ba = _check_pair(ddf_ab, ddf_ba)
        ndim = ddf_ab.ndim - 2
        grid = self._sample_points(ddf_ab, points)
        # Each sample point is followed by its ndim shifted copies along the last grid axis, so each
        # composition is two grid_sample calls whatever ndim is, and the copies of one point read
        # the same neighbouring voxels one after the other (cache friendly on large volumes). Grid
        # channels are reversed (x = last array axis); delta in [0, 1] units is 2 delta in grid units.
        stacked = grid.unsqueeze(-2).repeat((1,) * (ndim + 1) + (ndim + 1, 1))
        for axis in range(ndim):
            stacked[..., 1 + axis, ndim - 1 - axis] += 2.0 * self.delta
        stacked = stacked.flatten(-3, -2)
        del grid
        u_ab, u_ba = self._grid_units(ddf_ab), self._grid_units(ddf_ba)
        loss = self._one_order(u_ba, u_ab, stacked)
        if self.symmetric:
            loss = loss + self._one_order(u_ab, u_ba, stacked)
        return loss


class _ForwardDifferenceEnergy(torch.autograd.Function):
    """``sum_k (e[..., k] - e[..., 0])^2`` over ``k >= 1`` for ``e: (..., K)``.

    Written as a Function to keep memory down on large volumes: only the differences are saved
    and the backward writes the gradient into one new tensor (autograd's slicing would allocate
    and accumulate two zero-filled copies of ``e``).
    """

    @staticmethod
    def forward(ctx, error: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        diff = error[..., 1:] - error[..., :1]
        ctx.save_for_backward(diff)
        # sum of squares by chunks: torch.sum's cascade summation keeps float32 accurate on large
        # volumes (vector_norm does not), without a full-size temporary of squares
        total = diff.new_zeros(())
        for chunk in diff.reshape(-1).split(_CHUNK):
            total += chunk.square().sum()
        return total

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (diff,) = ctx.saved_tensors
        out = diff.new_empty(diff.shape[:-1] + (diff.shape[-1] + 1,))
        torch.mul(diff, 2.0 * grad, out=out[..., 1:])
        out[..., 0] = -out[..., 1:].sum(dim=-1)
        return out


class ICONLoss(_InverseConsistencyBase):
    """ICON regulariser ``||Phi^AB o Phi^BA - Id||^2 + ||Phi^BA o Phi^AB - Id||^2`` (Greer et al. 2021).

    As ``icon_registration.InverseConsistentNet``: both composition orders, each the mean over
    batch, components and sample points of the squared error in ``[0, 1]`` units.

    Args:
        sampling: ``"dense"`` (ICON) or ``"sparse"`` (every second voxel).
        perturb: add ICON's random perturbation to the sample points at each call.
        symmetric: both composition orders (ICON); ``False`` keeps ``Phi^AB o Phi^BA`` only.
        generator: ``torch.Generator`` for the perturbation.

    Inputs / returns: as :class:`GradICONLoss`.
    """

    def __init__(
        self,
        sampling: str = "dense",
        perturb: bool = True,
        symmetric: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(sampling, perturb, generator)
        self.symmetric = bool(symmetric)

    def forward(self, ddf_ab: torch.Tensor, ddf_ba: torch.Tensor, points: torch.Tensor | None = None) -> torch.Tensor:
        ddf_ab, ddf_ba = _check_pair(ddf_ab, ddf_ba)
        grid = self._sample_points(ddf_ab, points)
        u_ab, u_ba = self._grid_units(ddf_ab), self._grid_units(ddf_ba)
        # grid units are twice [0, 1] units: divide the squared error by 4.
        loss = self._composition_error(u_ba, u_ab, grid).square().mean() / 4.0
        if self.symmetric:
            loss = loss + self._composition_error(u_ab, u_ba, grid).square().mean() / 4.0
        return loss
