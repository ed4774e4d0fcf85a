"""Random flips shared by a pair plus an independent random affine warp per image (GradICON A.2)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor, ensure_tuple

from monai_ext.spatial import resample_normalized_affine

__all__ = ["RandPairFlipAffined"]


class RandPairFlipAffined(RandomizableTransform, MapTransform):
    """Affine augmentation of a fixed/moving pair as in GradICON, Appendix A.2.

    With probability ``prob``:

    1. one flip choice per spatial axis, ``u_i`` uniform in ``{+1, -1}``, shared by both images of the
       pair (all ``u_i = +1`` when ``flip`` is False);
    2. independently for each image key, ``M = [diag(u) | 0] + gamma * N(0, 1)^(d x (d+1))``;
    3. ``image_hat(x) = image(M [x; 1])`` (paper's equation in A.2), bilinear, resampled by
       :func:`resample_normalized_affine`; each label of ``pair`` is resampled with its image's ``M``
       by nearest neighbour, so it keeps its label values.

    The paper does not state its coordinate frame; a flip only maps an image onto itself when the
    origin is its centre, so ``x`` here is the homogeneous normalised coordinate in ``[-1, 1]^d`` (-1
    and +1 at the centres of the first and last voxels, ``align_corners=True``). The translation
    column is therefore in units of half the field of view. Points mapped outside the image are 0
    (``padding_mode="zeros"``).

    Inputs are channel-first ``(C, *spatial)`` tensors (2-D or 3-D), all keys with the same number of
    spatial dims. The array geometry (shape, affine, other metadata) is unchanged, only the content
    is warped: a ``MetaTensor`` comes back a ``MetaTensor`` with its metadata. The transform is not
    recorded for inversion (it is for training).

    Random draws, in this order from ``self.R``: ``rand() < prob``; if transforming, ``rand(d) < 0.5``
    gives ``u_i = -1`` (only when ``flip``); then ``standard_normal((d, d + 1))`` per image key in
    ``image_keys`` order (drawn even when an image is missing from the data). The last draw is kept in
    ``self.flips`` (``(d,)``) and ``self.matrices`` (image key -> ``(d, d + 1)`` numpy array).

    Args:
        image_keys: image keys, one independent matrix each.
        label_keys: label (or mask) keys, resampled with the matrix of their image in ``pair``.
        pair: ``(image_key, label_key)`` couples telling which image's matrix a label shares.
            Couples whose label is not in ``label_keys`` are ignored.
        prob: probability of augmenting a pair (flips and affine together).
        gamma: standard deviation of the Gaussian perturbation of the matrix (0.05 in the paper).
        flip: draw random flips; False keeps ``u = (1, ..., 1)``.
        allow_missing_keys: skip keys absent from the data (e.g. pairs without labels).
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        image_keys: Sequence[str] | str = ("fixed_image", "moving_image"),
        label_keys: Sequence[str] | str = ("fixed_label", "moving_label"),
        pair: Sequence[Sequence[str]] = (("fixed_image", "fixed_label"), ("moving_image", "moving_label")),
        prob: float = 1.0,
        gamma: float = 0.05,
        flip: bool = True,
        allow_missing_keys: bool = True,
    ) -> None:
        image_keys = tuple(ensure_tuple(image_keys))
        label_keys = tuple(ensure_tuple(label_keys))
        if not image_keys:
            raise ValueError("image_keys is empty: give at least one image key.")
        all_keys = image_keys + label_keys
        if len(set(all_keys)) != len(all_keys):
            raise ValueError(f"image_keys and label_keys must be distinct keys, got {image_keys} and {label_keys}.")
        if not (np.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"gamma must be a finite non-negative number, got {gamma!r}.")
        image_of: dict[str, str] = {}
        for couple in pair:
            couple = tuple(couple)
            if len(couple) != 2:
                raise ValueError(f"pair must hold (image_key, label_key) couples, got {couple!r}.")
            image_key, label_key = couple
            if label_key not in label_keys:
                continue
            if label_key in image_of:
                raise ValueError(f"label key {label_key!r} is paired with more than one image in pair={pair!r}.")
            if image_key not in image_keys:
                raise ValueError(
                    f"label key {label_key!r} is paired with {image_key!r}, which is not in image_keys {image_keys}."
                )
            image_of[label_key] = image_key
        unpaired = [k for k in label_keys if k not in image_of]
        if unpaired:
            raise ValueError(
                f"label keys {unpaired} have no image in pair={pair!r}: a label shares its image's matrix."
            )
        MapTransform.__init__(self, all_keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.image_keys, self.label_keys = image_keys, label_keys
        self.image_of = image_of
        self.gamma = float(gamma)
        self.flip = bool(flip)
        self.flips: np.ndarray | None = None
        self.matrices: dict[str, np.ndarray] = {}

    def randomize(self, spatial_dims: int) -> None:  # type: ignore[override]
        """Draw whether to transform, the shared flips and one matrix per image key (``spatial_dims`` = d)."""
        super().randomize(None)
        if not self._do_transform:
            return
        d = int(spatial_dims)
        self.flips = np.where(self.R.rand(d) < 0.5, -1.0, 1.0) if self.flip else np.ones(d)
        base = np.concatenate([np.diag(self.flips), np.zeros((d, 1))], axis=1)
        self.matrices = {key: base + self.gamma * self.R.standard_normal((d, d + 1)) for key in self.image_keys}

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        present = list(self.key_iterator(d))
        spatial_dims = {key: len(d[key].shape) - 1 for key in present}
        dims = set(spatial_dims.values())
        if len(dims) > 1 or not dims <= {2, 3}:
            shapes = {key: tuple(d[key].shape) for key in present}
            raise ValueError(
                "RandPairFlipAffined needs channel-first (C, *spatial) arrays with the same 2 or 3 spatial dims, "
                f"got {shapes}."
            )
        self.randomize(dims.pop() if dims else 3)
        if not self._do_transform:
            return d
        for key in present:
            if key in self.image_of:
                matrix, mode = self.matrices[self.image_of[key]], "nearest"
            else:
                matrix, mode = self.matrices[key], "bilinear"
            out = resample_normalized_affine(convert_to_tensor(d[key], track_meta=False), matrix, mode=mode)
            d[key] = convert_to_dst_type(out, d[key], dtype=out.dtype)[0]
        return d
