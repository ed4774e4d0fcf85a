"""Jacobian-based regularity measures of a displacement field.

All functions take a dense displacement field ``ddf`` of shape ``(B, ndim, *spatial)`` (ndim 2 or 3)
in voxel units, channel ``c`` moving along spatial array axis ``c``; the transform is
``phi(x) = x + u(x)``. Measures:

- ``jacobian_determinant``: ``det(I + grad u)`` with central differences (numpy.gradient-like).
- ``negative_jacobian_fraction``: % of voxels with a negative determinant (NJD %, GSMorph Sec. 3).
- ``std_log_jacobian``: standard deviation of ``log(max(det, eps))`` (Learn2Reg's SDlogJ).
- ``simplex_jacobian_determinants`` / ``non_diffeomorphic_volume``: the forward/backward-difference
  simplex determinants and the non-diffeomorphic volume (NDV; non-diffeomorphic area in 2-D) of
  Liu et al., "On finite difference Jacobian computation in deformable image registration",
  IJCV 2024 (arXiv:2212.06060), Sec. 4-5.

Every measure accepts an optional ``mask`` restricting it to a region: shape ``(B, 1, *spatial)``,
``(B, *spatial)``, ``(1, *spatial)`` or ``(*spatial)``; voxels where ``mask > 0`` count.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from monai.utils import convert_to_tensor

from monai_ext.spatial.ddf import check_ddf

__all__ = [
    "jacobian_determinant",
    "negative_jacobian_fraction",
    "std_log_jacobian",
    "simplex_jacobian_determinants",
    "non_diffeomorphic_volume",
    "foreground_interior",
]


def _check_ddf(ddf: Any) -> torch.Tensor:
    """A float DDF ``(B, ndim, *spatial)`` (``monai_ext.spatial.check_ddf``) with two or more voxels
    per axis, which central differences need."""
    ddf = convert_to_tensor(ddf, track_meta=False)
    ddf = check_ddf(ddf if ddf.is_floating_point() else ddf.float())
    if min(ddf.shape[2:]) < 2:
        raise ValueError(f"ddf needs at least 2 voxels along every spatial axis, got {tuple(ddf.shape[2:])}.")
    return ddf


def _check_mask(mask: torch.Tensor | None, batch: int, spatial: tuple[int, ...], device) -> torch.Tensor:
    """Return a boolean mask of shape (B, *spatial)."""
    if mask is None:
        return torch.ones((batch, *spatial), dtype=torch.bool, device=device)
    mask = torch.as_tensor(mask, device=device)
    ndim = len(spatial)
    if mask.ndim == ndim + 2:
        if mask.shape[1] != 1:
            raise ValueError(f"mask with a channel axis must have one channel, got shape {tuple(mask.shape)}.")
        mask = mask[:, 0]
    elif mask.ndim == ndim:
        mask = mask[None]
    elif mask.ndim != ndim + 1:
        raise ValueError(
            f"mask must have shape (B, 1, *spatial), (B, *spatial) or (*spatial) with spatial {spatial}, "
            f"got {tuple(mask.shape)}."
        )
    if tuple(mask.shape[1:]) != tuple(spatial) or mask.shape[0] not in (1, batch):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match batch {batch} and spatial shape {spatial}.")
    return (mask > 0).expand(batch, *spatial)


def _det(m) -> torch.Tensor:
    """Determinant of ``m`` with shape (d, d, ...) for d in (2, 3) (a tensor, or nested lists of
    tensors: ``m[i][k]``), written out (exact, differentiable)."""
    if len(m) == 2:
        return m[0][0] * m[1][1] - m[0][1] * m[1][0]
    return (
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    )


def jacobian_determinant(ddf: torch.Tensor) -> torch.Tensor:
    """Jacobian determinant of ``phi(x) = x + u(x)`` at every voxel.

    ``J_ij = delta_ij + d u_i / d x_j`` where ``u_i = ddf[:, i]`` and ``x_j`` is spatial array axis ``j``.
    Derivatives are ``torch.gradient`` (the same scheme as ``numpy.gradient``, edge_order=1): second-order
    central differences ``(u(x+1) - u(x-1)) / 2`` inside, first-order one-sided differences on the first
    and last slice of each axis. Affine fields are therefore exact everywhere, borders included.

    Args:
        ddf: ``(B, ndim, *spatial)`` displacement in voxels, ndim 2 or 3, at least 2 voxels per axis.

    Returns:
        ``(B, *spatial)`` determinant (dimensionless volume ratio); differentiable.
    """
    ddf = _check_ddf(ddf)
    ndim = ddf.shape[1]
    # grads[j][:, i] = d u_i / d x_j
    grads = torch.gradient(ddf, dim=tuple(range(2, 2 + ndim)))
    jac = torch.stack(grads, dim=2).movedim((1, 2), (0, 1))  # (i, j, B, *spatial)
    eye = torch.eye(ndim, dtype=ddf.dtype, device=ddf.device).reshape(ndim, ndim, *([1] * (ddf.ndim - 1)))
    return _det(jac + eye)


def negative_jacobian_fraction(
    ddf: torch.Tensor, mask: torch.Tensor | None = None, nonpositive: bool = False
) -> torch.Tensor:
    """Percentage of voxels with a negative Jacobian determinant (NJD %, GSMorph Sec. 3 / Table 1).

    Counts ``det < 0`` (strictly negative, the "negative Jacobian determinant" of GSMorph); with
    ``nonpositive=True`` counts ``det <= 0`` instead (the digital-diffeomorphism criterion of Liu et al.).
    The determinant is :func:`jacobian_determinant` (central differences).

    Args:
        ddf: ``(B, ndim, *spatial)`` displacement in voxels.
        mask: optional region (see module docstring); the percentage is of the voxels inside it.
        nonpositive: count ``det <= 0`` rather than ``det < 0``.

    Returns:
        ``(B,)`` percentage in [0, 100]; NaN for an item whose mask is empty.
    """
    det = jacobian_determinant(ddf)
    m = _check_mask(mask, det.shape[0], tuple(det.shape[1:]), det.device)
    bad = (det <= 0) if nonpositive else (det < 0)
    dims = tuple(range(1, det.ndim))
    count = m.sum(dims).to(det.dtype)
    return 100.0 * (bad & m).sum(dims).to(det.dtype) / count


def std_log_jacobian(ddf: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-9) -> torch.Tensor:
    """Standard deviation of ``log(max(det J, eps))`` over the voxels (SDlogJ).

    ``eps = 1e-9`` is the lower clip of the Learn2Reg evaluation scripts. Unlike those scripts we do
    not add 3 to the determinant before the log and we keep the border slices (one-sided differences),
    so values are a plain "std of log|J|": 0 for any affine field. The standard deviation is the
    population one (``ddof=0``, as ``numpy.std``). The determinant is :func:`jacobian_determinant`.

    Args:
        ddf: ``(B, ndim, *spatial)`` displacement in voxels.
        mask: optional region (see module docstring).
        eps: lower clip of the determinant before the log (folded voxels give ``log(eps)``).

    Returns:
        ``(B,)``; NaN for an item whose mask is empty.
    """
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}.")
    det = jacobian_determinant(ddf)
    m = _check_mask(mask, det.shape[0], tuple(det.shape[1:]), det.device).to(det.dtype)
    log_det = torch.log(det.clamp(min=eps))
    dims = tuple(range(1, det.ndim))
    count = m.sum(dims)
    mean = (log_det * m).sum(dims) / count
    centred = log_det - mean.reshape(-1, *([1] * (det.ndim - 1)))
    return torch.sqrt((centred * centred * m).sum(dims) / count)


_SLAB_ELEMENTS = 1 << 18  # voxels per slab of non_diffeomorphic_volume


def _simplex_offsets(ndim: int) -> list[tuple[tuple[int, ...], ...]]:
    """Edge offsets (one per column) of the simplices attached to each voxel (Liu et al. 2024, Sec. 4).

    2-D: the 4 right triangles ``{x, x + s0 e0, x + s1 e1}``, s in {+1, -1}^2.
    3-D: the 8 corner tetrahedra ``{x, x + s0 e0, x + s1 e1, x + s2 e2}`` and the two central
    tetrahedra of the two 5-tetrahedra cube tessellations (called J1* and J2* in the paper), with
    vertices x and x + (1,1,0), (0,1,1), (1,0,1) / x and x - (1,1,0), (1,0,1), (0,1,1).
    Summed over all voxels this visits every simplex of both tessellations of every grid cell once.
    """
    offsets = []
    for signs in itertools.product((1, -1), repeat=ndim):
        offsets.append(tuple(tuple(s if k == j else 0 for k in range(ndim)) for j, s in enumerate(signs)))
    if ndim == 3:
        offsets.append(((1, 1, 0), (0, 1, 1), (1, 0, 1)))
        offsets.append(((-1, -1, 0), (-1, 0, -1), (0, -1, -1)))
    return offsets


def simplex_jacobian_determinants(ddf: torch.Tensor) -> torch.Tensor:
    """Orientation-corrected determinants of the finite-difference simplices at each voxel.

    For a simplex with vertex ``x`` and edge offsets ``o_1..o_d`` (see ``_simplex_offsets``) this is
    ``det[phi(x + o_k) - phi(x)]_k * sign(det[o_k]_k)``: the Jacobian determinant of the piecewise
    linear map on that simplex times ``|det[o_k]|`` (1 for the corner simplices, 2 for the 3-D central
    tetrahedra). It is positive exactly when the simplex keeps its orientation; the signed volume of
    the deformed simplex is this value divided by ``ndim!``. For the corner simplices it equals the
    determinant of the forward/backward difference Jacobians ``J^{s0 s1 (s2)}`` of Liu et al. 2024.

    Borders follow the authors' reference implementation: the displacement is extended by one voxel
    by edge replication, so ``phi`` continues as a translation outside the grid.

    Args:
        ddf: ``(B, ndim, *spatial)`` displacement in voxels.

    Returns:
        ``(B, S, *spatial)`` with S = 4 in 2-D (orders ``++, +-, -+, --``) and S = 10 in 3-D
        (``+++ ... ---`` then the two central tetrahedra).
    """
    ddf = _check_ddf(ddf)
    padded = F.pad(ddf, (1, 1) * ddf.shape[1], mode="replicate")
    return torch.stack(list(_simplex_determinants(padded, 0, ddf.shape[2])), dim=1)


def _simplex_determinants(padded: torch.Tensor, start: int, stop: int) -> Iterator[torch.Tensor]:
    """The ``(B, stop - start, ...)`` determinants of :func:`simplex_jacobian_determinants` on the slab
    ``start:stop`` of the first spatial axis, one simplex at a time, from the field ``padded`` by one
    voxel (edge replication); a consumer that reduces them never holds all S of them."""
    ndim = padded.shape[1]
    spatial = [stop - start] + [n - 2 for n in padded.shape[3:]]
    origin = [1 + start] + [1] * (ndim - 1)

    def shifted(offset: tuple[int, ...]) -> torch.Tensor:
        # u(x + offset) for the voxels x of the slab
        index = tuple(slice(c + o, c + o + n) for c, o, n in zip(origin, offset, spatial))
        return padded[(slice(None), slice(None), *index)]

    centre = shifted((0,) * ndim)
    for edges in _simplex_offsets(ndim):
        # column k: phi(x + o_k) - phi(x) = o_k + u(x + o_k) - u(x); entry (i, k) is its component i
        columns = [shifted(o) - centre for o in edges]
        matrix = [[columns[k][:, i] + float(edges[k][i]) for k in range(ndim)] for i in range(ndim)]
        orientation = 1.0 if _det(torch.tensor(edges, dtype=torch.float64).T) > 0 else -1.0
        yield orientation * _det(matrix)


def non_diffeomorphic_volume(ddf: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Non-diffeomorphic volume (NDV; non-diffeomorphic area in 2-D) in percent of the region.

    Liu et al. 2024, Sec. 5: every grid cell (square / cube) is split into simplices in both of its
    two tessellations (2 triangles along either diagonal; 5 tetrahedra in either of the two ways),
    and the volume of the simplices that are flipped by ``phi`` is counted, halved because each cell
    is tessellated twice. Per voxel, with the determinants ``D_k`` of
    :func:`simplex_jacobian_determinants`::

        NDV(x) = 1/2 * sum_k max(-D_k(x), 0) / ndim!

    (in voxel volumes). The result is ``100 * sum_x NDV(x) * mask(x) / sum_x mask(x)``. It is 0 for a
    diffeomorphic digital transform and catches folds that central differences miss (the paper's
    checkerboard example). A degenerate simplex (``D_k = 0``) has no volume and adds nothing.

    Args:
        ddf: ``(B, ndim, *spatial)`` displacement in voxels.
        mask: optional region (see module docstring).

    Returns:
        ``(B,)`` percentage; NaN for an item whose mask is empty.
    """
    ddf = _check_ddf(ddf)
    factorial = 2.0 if ddf.shape[1] == 2 else 6.0
    padded = F.pad(ddf, (1, 1) * ddf.shape[1], mode="replicate")
    flipped = torch.zeros_like(ddf[:, 0])
    # slabs of the first axis, so that the simplices' temporaries of one slab stay in the CPU's cache
    rows = max(1, _SLAB_ELEMENTS // max(ddf[0, 0, 0].numel(), 1))
    for start in range(0, ddf.shape[2], rows):
        stop = min(start + rows, ddf.shape[2])
        for determinant in _simplex_determinants(padded, start, stop):
            flipped[:, start:stop] += torch.clamp(-determinant, min=0)
    per_voxel = 0.5 * flipped / factorial
    m = _check_mask(mask, per_voxel.shape[0], tuple(per_voxel.shape[1:]), per_voxel.device).to(per_voxel.dtype)
    dims = tuple(range(1, per_voxel.ndim))
    return 100.0 * (per_voxel * m).sum(dims) / m.sum(dims)


def foreground_interior(image: torch.Tensor) -> torch.Tensor:
    """``(B, *spatial)``: voxels where ``image`` ``(B, C, *spatial)`` is > 0 in any channel, without the
    grid's outermost voxel layer; the region of LUMIR's NDV (its evaluation: ``moving[1:-1, ...] > 0``)."""
    region = (torch.as_tensor(image) > 0).any(dim=1)
    inner = torch.zeros_like(region)
    inner[(slice(None),) + (slice(1, -1),) * (region.ndim - 1)] = True
    return region & inner
