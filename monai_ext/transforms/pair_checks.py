"""Checks of a fixed/moving pair before registration, with errors that name the offending file."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.transforms import MapTransform

__all__ = ["CheckPaird"]


def _source(data: Mapping[Hashable, Any], key: Hashable) -> str:
    meta = getattr(data[key], "meta", None) or {}
    name = meta.get("filename_or_obj")
    return f"{key} ({name})" if name else str(key)


class CheckPaird(MapTransform):
    """Validate a loaded pair (channel-first tensors) and fail early with a clear message.

    Raises ``ValueError`` naming the key and its file when an image:

    - does not have ``spatial_dims`` spatial axes (e.g. a 3-D volume or a 4-D cine series given to
      a 2-D network), or fixed and moving differ in dimensionality;
    - holds NaN or infinite intensities;
    - is constant (nothing to register, and intensity normalisation would divide by zero);
    - (labels) holds values outside ``label_values`` when that set is given.

    Different sizes and spacings are allowed: they are resolved in world space afterwards
    (``ResampleToMatchd``), so that this transform only rejects what cannot be registered.

    Args:
        fixed_key, moving_key: image keys.
        spatial_dims: expected number of spatial axes, or None to only require fixed and moving to agree.
        label_keys: label keys to check when present.
        label_values: allowed label values, e.g. ``(0, 1, 2, 3)``; None skips the check.
    """

    def __init__(
        self,
        fixed_key: str = "fixed_image",
        moving_key: str = "moving_image",
        spatial_dims: int | None = None,
        label_keys: Sequence[str] = ("fixed_label", "moving_label"),
        label_values: Sequence[int] | None = None,
    ) -> None:
        super().__init__([fixed_key, moving_key], allow_missing_keys=False)
        self.fixed_key, self.moving_key = fixed_key, moving_key
        self.spatial_dims = spatial_dims
        self.label_keys = tuple(label_keys)
        self.label_values = None if label_values is None else {int(v) for v in label_values}

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in (self.fixed_key, self.moving_key):
            if key not in d:
                raise KeyError(
                    f"The pair has no {key!r}; registration needs {self.fixed_key!r} and {self.moving_key!r}."
                )
            image = torch.as_tensor(d[key])
            ndim = image.ndim - 1
            if self.spatial_dims is not None and ndim != self.spatial_dims:
                raise ValueError(
                    f"{_source(d, key)} has {ndim} spatial dimensions (shape {tuple(image.shape[1:])}), "
                    f"expected {self.spatial_dims}."
                )
            if not torch.isfinite(image).all():
                raise ValueError(f"{_source(d, key)} contains NaN or infinite intensities.")
            if image.numel() == 0 or image.max() == image.min():
                raise ValueError(f"{_source(d, key)} is constant: there is nothing to register.")
        if d[self.fixed_key].ndim != d[self.moving_key].ndim:
            raise ValueError(
                f"{_source(d, self.fixed_key)} and {_source(d, self.moving_key)} differ in dimensionality: "
                f"{tuple(d[self.fixed_key].shape[1:])} vs {tuple(d[self.moving_key].shape[1:])}."
            )
        if self.label_values is not None:
            for key in self.label_keys:
                if key not in d:
                    continue
                found = {int(v) for v in torch.unique(torch.as_tensor(d[key])).tolist()}
                unexpected = sorted(found - self.label_values)
                if unexpected:
                    raise ValueError(
                        f"{_source(d, key)} has label values {unexpected} outside the expected set "
                        f"{sorted(self.label_values)}."
                    )
        return d
