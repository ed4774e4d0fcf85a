"""Checks of a fixed/moving pair before registration, with errors that name the offending file."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import MapTransform

from monai_ext.errors import InputError

__all__ = ["CheckPaird", "check_whole_number_labels", "world_bounds"]

logger = logging.getLogger(__name__)


def _source(data: Mapping[Hashable, Any], key: Hashable) -> str:
    meta = getattr(data[key], "meta", None) or {}
    name = meta.get("filename_or_obj")
    return f"{key} ({name})" if name else str(key)


def world_bounds(image: Any) -> np.ndarray | None:
    """``(2, w)`` lower / upper world corners (mm) of the voxel centres of a channel-first image with
    an ``affine`` in its metadata (MONAI's RAS convention; ``w`` its world dimensions, 3 for a 2-D
    slice read from NIfTI), or None without one."""
    affine = (getattr(image, "meta", None) or {}).get("affine")
    if affine is None:
        return None
    affine = np.asarray(affine, dtype=np.float64)
    shape = [float(n) for n in image.shape[1:]]
    w = affine.shape[0] - 1  # a 2-D slice read from NIfTI keeps its 3-D affine: the slice sits at k = 0
    if affine.shape != (w + 1, w + 1) or w < len(shape):
        return None
    shape += [1.0] * (w - len(shape))
    corners = np.array(np.meshgrid(*[[0.0, n - 1.0] for n in shape], indexing="ij")).reshape(w, -1)
    world = affine[:w, :w] @ corners + affine[:w, w:]
    return np.stack([world.min(axis=1), world.max(axis=1)])


def check_whole_number_labels(label: torch.Tensor, name: str) -> None:
    """:class:`InputError` naming ``name`` when a label map holds NaN / Inf or values that are not
    whole numbers (a float map with 2.5 would otherwise be truncated to structure 2)."""
    if not label.is_floating_point():
        return
    if not torch.isfinite(label).all():
        raise InputError(f"{name} contains NaN or infinite label values.")
    fractional = label[label != torch.round(label)]
    if fractional.numel():
        raise InputError(
            f"{name} holds values that are not whole numbers (e.g. {float(fractional[0]):g}): "
            "a label map holds integer structure labels."
        )


class CheckPaird(MapTransform):
    """Validate a loaded pair (channel-first tensors) and fail early with a clear message.

    Raises :class:`monai_ext.errors.InputError` (a ``ValueError``) naming the key and its file when:

    - an image does not have ``spatial_dims`` spatial axes (e.g. a 3-D volume or a 4-D cine series
      given to a 2-D network), or fixed and moving differ in dimensionality;
    - an image holds NaN or infinite intensities, or is constant (nothing to register, and
      intensity normalisation would divide by zero);
    - a label is not on its image's grid (another shape), holds values that are not whole numbers
      (2.5 would otherwise be truncated to 2), holds no labelled structure (all background), or
      values outside ``label_values`` when that set is given.

    Different sizes and spacings of fixed and moving are allowed: they are resolved in world space
    afterwards (``ResampleToMatchd``), so that this transform only rejects what cannot be registered.
    Images whose world extents do not overlap at all (e.g. one stored 1000 mm away) are registered
    but a warning names both files: the result is all background unless the images are aligned first.

    Args:
        fixed_key, moving_key: image keys.
        spatial_dims: expected number of spatial axes, or None to only require fixed and moving to agree.
        label_keys: label keys to check when present; each belongs to the image of the same side
            (``fixed_label`` -> ``fixed_key``).
        label_values: allowed label values, e.g. ``(0, 1, 2, 3)``; None allows any whole number.
        allow_empty_labels: accept labels that are all background.
    """

    def __init__(
        self,
        fixed_key: str = "fixed_image",
        moving_key: str = "moving_image",
        spatial_dims: int | None = None,
        label_keys: Sequence[str] = ("fixed_label", "moving_label"),
        label_values: Sequence[int] | None = None,
        allow_empty_labels: bool = False,
    ) -> None:
        super().__init__([fixed_key, moving_key], allow_missing_keys=False)
        self.fixed_key, self.moving_key = fixed_key, moving_key
        self.spatial_dims = spatial_dims
        self.label_keys = tuple(label_keys)
        self.label_values = None if label_values is None else {int(v) for v in label_values}
        self.allow_empty_labels = bool(allow_empty_labels)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in (self.fixed_key, self.moving_key):
            if key not in d:
                raise InputError(
                    f"The pair has no {key!r}; registration needs {self.fixed_key!r} and {self.moving_key!r}."
                )
            image = torch.as_tensor(d[key])
            ndim = image.ndim - 1
            if self.spatial_dims is not None and ndim != self.spatial_dims:
                raise InputError(
                    f"{_source(d, key)} has {ndim} spatial dimensions (shape {tuple(image.shape[1:])}), "
                    f"expected {self.spatial_dims}."
                )
            if not torch.isfinite(image).all():
                raise InputError(f"{_source(d, key)} contains NaN or infinite intensities.")
            if image.numel() == 0 or image.max() == image.min():
                raise InputError(f"{_source(d, key)} is constant: there is nothing to register.")
        if d[self.fixed_key].ndim != d[self.moving_key].ndim:
            raise InputError(
                f"{_source(d, self.fixed_key)} and {_source(d, self.moving_key)} differ in dimensionality: "
                f"{tuple(d[self.fixed_key].shape[1:])} vs {tuple(d[self.moving_key].shape[1:])}."
            )
        for key in self.label_keys:
            if key in d and d[key] is not None:
                self._check_label(d, key)
        self._warn_without_overlap(d)
        return d

    def _image_key_of(self, label_key: str) -> str:
        return self.moving_key if label_key.startswith("moving") else self.fixed_key

    def _check_label(self, d: dict, key: str) -> None:
        label = torch.as_tensor(d[key])
        image_key = self._image_key_of(key)
        if tuple(label.shape[1:]) != tuple(torch.as_tensor(d[image_key]).shape[1:]) or label.shape[0] != 1:
            raise InputError(
                f"{_source(d, key)} has shape {tuple(label.shape[1:])} (channels {label.shape[0]}), but its image "
                f"{_source(d, image_key)} has {tuple(d[image_key].shape[1:])}: a label map must be one channel "
                "on its image's grid."
            )
        check_whole_number_labels(label, _source(d, key))
        found = {int(v) for v in torch.unique(label).tolist()}
        if not self.allow_empty_labels and not (found - {0}):
            raise InputError(f"{_source(d, key)} holds no labelled structure (every voxel is 0).")
        if self.label_values is not None:
            unexpected = sorted(found - self.label_values)
            if unexpected:
                raise InputError(
                    f"{_source(d, key)} has label values {unexpected} outside the expected set "
                    f"{sorted(self.label_values)}."
                )

    def _warn_without_overlap(self, d: dict) -> None:
        fixed, moving = world_bounds(d[self.fixed_key]), world_bounds(d[self.moving_key])
        if fixed is None or moving is None or fixed.shape != moving.shape:
            return
        gap = np.maximum(fixed[0] - moving[1], moving[0] - fixed[1])
        if (gap > 0).any():
            logger.warning(
                f"{_source(d, self.fixed_key)} and {_source(d, self.moving_key)} do not overlap in world space "
                f"(up to {float(gap.max()):.0f} mm apart): the moving image falls outside the fixed grid, so the "
                "result will be empty; align them first (e.g. an affine or centre-of-mass initialisation)."
            )
