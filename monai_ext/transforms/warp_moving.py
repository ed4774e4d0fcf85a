"""Post-processing of a registration: the moving label map (or image) warped by the predicted field."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils import convert_to_tensor, ensure_tuple, ensure_tuple_rep

from monai_ext.spatial import warp_moving

__all__ = ["WarpMovingd"]


class WarpMovingd(MapTransform):
    """``output_keys[i] = keys[i]`` pulled back onto the fixed grid by the DDF ``ddf_key``.

    This is to registration what ``AsDiscreted`` is to segmentation: the step that turns the
    network's output (the field, ``pred``) into what the user keeps (the reference's labels on the
    image, i.e. label propagation). The evaluators run it as their ``postprocessing`` on the
    batched output, so ``(B, C, *spatial)`` tensors are expected.

    When the engine recorded how fixed voxels map into a moving image of another grid
    (``geometry_key``, DIO's ``fixed_to_moving``), the moving data is read through it; otherwise the
    two share a field of view (``monai_ext.spatial.warp_moving``).

    Args:
        keys: moving data to warp, e.g. ``"moving_label"``.
        output_keys: where the warped data goes (default: ``moving_`` replaced by ``warped_``).
        ddf_key: the DDF on the fixed grid in voxels, ``(B, ndim, *fixed_spatial)``.
        label: per key, True for label maps (nearest neighbour, values kept), False for images (linear).
        geometry_key: key of the fixed-to-moving voxel map, when present.
        allow_missing_keys: skip keys that are absent (an unlabelled pair).
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_keys: KeysCollection | None = None,
        ddf_key: str = "pred",
        label: bool | Sequence[bool] = True,
        geometry_key: str = "fixed_to_moving",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_keys = (
            ensure_tuple(output_keys)
            if output_keys is not None
            else tuple(str(k).replace("moving_", "warped_", 1) for k in self.keys)
        )
        if len(self.output_keys) != len(self.keys):
            raise ValueError(f"output_keys {self.output_keys} must name one output per key of {self.keys}.")
        self.label = ensure_tuple_rep(label, len(self.keys))
        self.ddf_key = ddf_key
        self.geometry_key = geometry_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        ddf = d[self.ddf_key]
        geometry = d.get(self.geometry_key)
        for key, output_key, label in self.key_iterator(d, self.output_keys, self.label):
            d[output_key] = warp_moving(convert_to_tensor(d[key], track_meta=False), ddf, geometry, label=label)
        return d
