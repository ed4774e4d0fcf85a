"""Training augmentation for voxel-size robustness: one image of a pair re-acquired with thick slices.

DIO registers each image on its own grid (dio.md §4.3: fixed and moving may differ in size and
voxel spacing), so its features should not depend on the voxel size. ``RandAnisotropicResampled``
shows the feature network such images during training: with probability ``prob`` it picks one
image of the pair (fixed or moving, at random), one spatial axis and a slice thickness factor ``f``
in ``factor_range``, and replaces that image by ``round(n / f)`` thick slices along the axis, each
the mean of the thin slices it covers (MONAI ``Resize`` in ``"area"`` mode, as a scanner integrates
over a slab), and its label map by nearest-neighbour sampling. The affine is updated with the
spacing (MONAI keeps the field of view edge to edge), so the pair still describes the same anatomy
in world space and the objective reads the moving image through the two affines.

The resampled image has another array shape than its partner: batches of such pairs hold one pair
(DIO trains with batch 1). With ``restore_grid`` the thick-slice image is instead interpolated back
onto its original grid, the blur that a thick-slice moving image keeps after ``MatchFixedSpacingd``
(the DIO inference default) has put it at the fixed image's voxel size.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.data import MetaTensor
from monai.transforms import MapTransform, RandomizableTransform, Resize

__all__ = ["RandAnisotropicResampled"]


class RandAnisotropicResampled(RandomizableTransform, MapTransform):
    """Thick-slice resampling of the fixed or the moving image of a pair (and its label).

    Args:
        pairs: ``((image_key, label_key), ...)``: the images that may be resampled, each with the
            label map that goes with it (``None`` when there is none); one of them is chosen.
        prob: probability of resampling one image of a pair.
        factor_range: range of the slice thickness, in voxels of the original grid (> 1).
        restore_grid: resample the thick-slice image back onto its original grid (linear
            interpolation), as ``MatchFixedSpacingd`` puts a thick-slice moving image at the fixed
            image's voxel size at inference; its label map then stays as it was. Pairs keep their
            shapes, so batches may hold several.
        allow_missing_keys: skip label keys missing from the data.
    """

    def __init__(
        self,
        pairs: Sequence[Sequence[Hashable | None]] = (
            ("fixed_image", "fixed_label"),
            ("moving_image", "moving_label"),
        ),
        prob: float = 0.5,
        factor_range: Sequence[float] = (1.5, 4.0),
        restore_grid: bool = False,
        allow_missing_keys: bool = True,
    ) -> None:
        self.pairs = [(image, label) for image, label in pairs]
        keys = [k for pair in self.pairs for k in pair if k is not None]
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        low, high = (float(f) for f in factor_range)
        if not 1.0 < low <= high:
            raise ValueError(f"factor_range must satisfy 1 < low <= high, got {tuple(factor_range)}.")
        self.factor_range = (low, high)
        self.restore_grid = bool(restore_grid)
        self._pair = 0
        self._axis = 0
        self._factor = 1.0

    def randomize(self, spatial_dims: int) -> None:  # type: ignore[override]
        super().randomize(None)
        self._pair = int(self.R.randint(len(self.pairs)))
        self._axis = int(self.R.randint(spatial_dims))
        self._factor = float(self.R.uniform(*self.factor_range))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image_key = self.pairs[0][0]
        if image_key not in d:
            raise KeyError(f"RandAnisotropicResampled: the data has no {image_key!r}.")
        self.randomize(d[image_key].ndim - 1)
        if not self._do_transform:
            return d
        image_key, label_key = self.pairs[self._pair]
        image = d[image_key]
        if not isinstance(image, MetaTensor):
            raise TypeError(f"RandAnisotropicResampled needs MetaTensors (their affines), got {type(image).__name__}.")
        size = list(image.shape[1:])
        size[self._axis] = max(2, round(size[self._axis] / self._factor))
        thick = Resize(size, mode="area")(image)
        if self.restore_grid:
            # linear interpolation with the half-voxel (align_corners=False) geometry that keeps
            # the field of view edge to edge, the same that Resize gave the thick slices
            linear = "bilinear" if image.ndim == 3 else "trilinear"
            d[image_key] = Resize(list(image.shape[1:]), mode=linear, align_corners=False)(thick)
            return d
        d[image_key] = thick
        if label_key is not None and label_key in d:
            d[label_key] = Resize(size, mode="nearest")(d[label_key])
        return d
