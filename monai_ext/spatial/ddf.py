"""Dense displacement field (DDF) convention and the operations on one grid: warping, composition,
integration, resizing.

One convention throughout the project: a transform is a DDF ``u`` on the fixed image grid,
shape ``(B, ndim, *spatial)``, in voxel units, channel ``c`` moving along array axis ``c`` of the
spatial dims, used as a pull-back ``warped(x) = moving(x + u(x))``. This is MONAI ``Warp``'s
convention (``align_corners=True``: voxel centres at integer coordinates ``0 .. N-1``).

Composition is ``(a o b)(x) = b(x) + a(x + b(x))``: warping with ``a o b`` equals warping with
``a`` first and then with ``b`` (``warp(warp(m, a), b) == warp(m, compose_ddf(a, b))``).

Converters to other conventions: :mod:`monai_ext.spatial.converters`; sampling across grids and
world geometry: :mod:`monai_ext.spatial.world`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.networks.blocks import DVF2DDF, Warp

from monai_ext.options import check_option
from monai_ext.spatial.sampling import grid_sample_at, voxel_to_normalized

__all__ = [
    "WARP_MODES",
    "PADDING_MODES",
    "identity_grid",
    "warp_image",
    "warp_label",
    "compose_ddf",
    "integrate_velocity",
    "resize_ddf",
    "unit_scale",
    "check_ddf",
]

WARP_MODES = ("bilinear", "nearest", "bicubic")
PADDING_MODES = ("border", "zeros", "reflection")

# MONAI's Warp warns on every construction when its C++ extension is not compiled; that is the
# normal case here (plain PyTorch grid_sample), so the message is silenced where we build one.
_WARP_NATIVE_MESSAGE = "monai.networks.blocks.Warp: Using PyTorch native grid_sample"


def _make_warp(mode: str, padding_mode: str) -> Warp:
    check_option("mode", mode, WARP_MODES)
    check_option("padding_mode", padding_mode, PADDING_MODES)
    # A new module per call: Warp caches its reference grid by shape only (not device/dtype).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_WARP_NATIVE_MESSAGE)
        return Warp(mode=mode, padding_mode=padding_mode)


def check_ddf(ddf: Any, name: str = "ddf") -> torch.Tensor:
    """Check a batched DDF ``(B, ndim, *spatial)`` with ``ndim`` in (2, 3) and a float dtype."""
    if not isinstance(ddf, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(ddf).__name__}.")
    if ddf.ndim not in (4, 5):
        raise ValueError(
            f"{name} must have shape (B, ndim, *spatial) with 2 or 3 spatial dims, got shape {tuple(ddf.shape)}."
        )
    ndim = ddf.ndim - 2
    if ddf.shape[1] != ndim:
        raise ValueError(
            f"{name} must have ndim = {ndim} channels (one per spatial axis) for {ndim}-D data, "
            f"got shape {tuple(ddf.shape)}."
        )
    if not ddf.is_floating_point():
        raise ValueError(f"{name} must be a floating point tensor, got dtype {ddf.dtype}.")
    return ddf


def _check_image_ddf(image: Any, ddf: Any, image_name: str = "image") -> None:
    check_ddf(ddf)
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{image_name} must be a torch.Tensor, got {type(image).__name__}.")
    if image.ndim != ddf.ndim:
        raise ValueError(
            f"{image_name} must have shape (B, C, *spatial) with the same spatial dims as ddf {tuple(ddf.shape)}, "
            f"got shape {tuple(image.shape)}."
        )
    if image.shape[0] != ddf.shape[0]:
        raise ValueError(f"batch size mismatch: {image_name} {tuple(image.shape)} vs ddf {tuple(ddf.shape)}.")
    if image.shape[2:] != ddf.shape[2:]:
        raise ValueError(f"spatial size mismatch: {image_name} {tuple(image.shape)} vs ddf {tuple(ddf.shape)}.")


def identity_grid(
    spatial_shape: Sequence[int], device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Voxel coordinates of a grid: ``(ndim, *spatial)``, channel ``c`` is the index along axis ``c``."""
    shape = tuple(int(s) for s in spatial_shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"spatial_shape must be a non-empty sequence of positive sizes, got {spatial_shape}.")
    dtype = dtype if dtype is not None else torch.get_default_dtype()
    axes = [torch.arange(s, device=device, dtype=dtype) for s in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=0)


def warp_image(
    image: torch.Tensor, ddf: torch.Tensor, mode: str = "bilinear", padding_mode: str = "border"
) -> torch.Tensor:
    """Pull-back warp ``warped(x) = image(x + ddf(x))`` through MONAI ``Warp`` (align_corners=True).

    Args:
        image: ``(B, C, *spatial)`` floating point image.
        ddf: ``(B, ndim, *spatial)`` displacement in voxels, same batch and spatial size.
        mode: interpolation, one of ``"bilinear"`` (trilinear in 3-D), ``"nearest"``, ``"bicubic"``.
        padding_mode: value outside the image, one of ``"border"``, ``"zeros"``, ``"reflection"``.

    Returns:
        ``(B, C, *spatial)`` in ``image``'s dtype; differentiable w.r.t. image and ddf (bilinear).
    """
    _check_image_ddf(image, ddf)
    if not image.is_floating_point():
        raise ValueError(
            f"image must be a floating point tensor, got dtype {image.dtype}; use warp_label for label maps."
        )
    out_dtype, dtype = image.dtype, torch.promote_types(image.dtype, ddf.dtype)
    image, ddf = image.to(dtype), ddf.to(device=image.device, dtype=dtype)
    if mode == "bicubic" or image.ndim != 5:
        warped = _make_warp(mode, padding_mode)(image, ddf)
    else:
        # Trilinear / nearest 3-D: the same grid_sample call as MONAI Warp's, through grid_sample_at,
        # which uses every CPU thread for a batch-1 volume (Warp's call runs on one).
        check_option("mode", mode, WARP_MODES)
        check_option("padding_mode", padding_mode, PADDING_MODES)
        shape = list(ddf.shape[2:])
        points = (identity_grid(shape, device=ddf.device, dtype=dtype).unsqueeze(0) + ddf).movedim(1, -1)
        warped = grid_sample_at(image, voxel_to_normalized(points.flip(-1), shape[::-1]), mode, padding_mode)
    return warped.to(out_dtype)


def warp_label(label: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour pull-back warp of a label map; output has ``label``'s dtype and values.

    Args:
        label: ``(B, C, *spatial)`` label map of any dtype (integer, bool or float).
        ddf: ``(B, ndim, *spatial)`` displacement in voxels.

    Returns:
        ``(B, C, *spatial)`` with only values present in ``label`` (border padding).
    """
    _check_image_ddf(label, ddf, "label")
    # grid_sample needs floats; float32 (or the DDF's wider type) holds integers up to 2**24 exactly.
    dtype = torch.promote_types(ddf.dtype, torch.float32)
    warped = _make_warp("nearest", "border")(label.to(dtype), ddf.to(device=label.device, dtype=dtype))
    if label.is_floating_point():
        return warped.to(label.dtype)
    return warped.round().to(label.dtype)


def compose_ddf(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Composition ``(a o b)(x) = b(x) + a(x + b(x))`` of two DDFs ``(B, ndim, *spatial)``.

    ``warp_image(m, compose_ddf(a, b))`` approximates ``warp_image(warp_image(m, a), b)``:
    ``a`` is applied to the moving image first. ``a`` is sampled bilinearly, border padded.
    """
    check_ddf(a, "a")
    check_ddf(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"cannot compose DDFs of different shapes: a {tuple(a.shape)} vs b {tuple(b.shape)}.")
    return b + warp_image(a, b, mode="bilinear", padding_mode="border")


def integrate_velocity(velocity: torch.Tensor, num_steps: int = 7, *, padding_mode: str = "border") -> torch.Tensor:
    """DDF ``exp(v)`` of a stationary velocity field by scaling and squaring (MONAI ``DVF2DDF``).

    ``u_0 = v / 2**num_steps``, then ``num_steps`` times ``u <- u + u(x + u)``
    (Arsigny et al. 2006; VoxelMorph-diff). ``padding_mode="border"`` (default) makes a constant
    velocity integrate to exactly that constant; MONAI's own default is ``"zeros"``.

    Args:
        velocity: ``(B, ndim, *spatial)`` in voxels.
        num_steps: number of squaring steps (>= 1).
    """
    check_ddf(velocity, "velocity")
    if int(num_steps) < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps}.")
    check_option("padding_mode", padding_mode, PADDING_MODES)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_WARP_NATIVE_MESSAGE)
        layer = DVF2DDF(num_steps=int(num_steps), mode="bilinear", padding_mode=padding_mode)
    return layer(velocity)


def unit_scale(spatial_shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """``(1, ndim, 1, ...)`` tensor holding ``N_c - 1`` (1 for singleton axes)."""
    ndim = len(spatial_shape)
    scale = torch.tensor([max(int(n) - 1, 1) for n in spatial_shape], device=like.device, dtype=like.dtype)
    return scale.reshape((1, ndim) + (1,) * ndim)


def resize_ddf(ddf: torch.Tensor, spatial_shape: Sequence[int]) -> torch.Tensor:
    """Resample a DDF onto a grid of ``spatial_shape`` covering the same field of view.

    Corner voxels coincide (align_corners=True), so new voxel ``y`` sits at old voxel
    ``x = s * y`` with ``s_c = (N_old_c - 1) / (N_new_c - 1)``; the mapping is preserved by
    interpolating (bi/trilinear) and dividing component ``c`` by ``s_c``:
    ``u_new(y) = u_old(s * y) / s``.

    Args:
        ddf: ``(B, ndim, *spatial)`` in voxels of the old grid.
        spatial_shape: new spatial size (``ndim`` positive integers).

    Returns:
        ``(B, ndim, *spatial_shape)`` in voxels of the new grid.
    """
    check_ddf(ddf)
    ndim = ddf.ndim - 2
    new_shape = tuple(int(s) for s in spatial_shape)
    if len(new_shape) != ndim or any(s < 1 for s in new_shape):
        raise ValueError(f"spatial_shape must be {ndim} positive sizes for a {ndim}-D ddf, got {spatial_shape}.")
    old_shape = tuple(ddf.shape[2:])
    mode = "bilinear" if ndim == 2 else "trilinear"
    resized = F.interpolate(ddf, size=new_shape, mode=mode, align_corners=True)
    ratio = unit_scale(new_shape, ddf) / unit_scale(old_shape, ddf)
    return resized * ratio
