"""Evaluation / inference engine for pairwise registration networks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from monai.engines import SupervisedEvaluator
from monai.engines.utils import IterationEvents
from monai.inferers import Inferer, SimpleInferer
from monai.transforms import Transform
from monai.utils import CommonKeys, ForwardMode

from monai_ext.engines.pair_batch import pair_batch_to_device
from monai_ext.spatial import warp_image
from monai_ext.transforms.warp_moving import WarpMovingd

__all__ = ["RegistrationEvaluator"]


class RegistrationEvaluator(SupervisedEvaluator):
    """``SupervisedEvaluator`` for networks that map ``[moving, fixed]`` to a displacement field.

    Each iteration reads the pair dictionary (``fixed_image``, ``moving_image`` and, when present,
    ``fixed_label``, ``moving_label``, ``fixed_landmarks``, ``moving_landmarks``), runs
    ``inferer(cat([moving, fixed], 1), network)`` once and warps the moving image (bilinear) with the
    predicted DDF; ``postprocessing`` (default ``monai_ext.transforms.WarpMovingd("moving_label")``,
    which the bundles' configs declare) then warps the moving label (nearest neighbour).
    ``engine.state.output`` holds the pair, ``pred`` (the DDF, ``(B, ndim, *spatial)``),
    ``warped_image`` and ``warped_label``; image tensors keep their MONAI metadata, so handlers can
    read file names and affines. MONAI's metric handlers, ``StatsHandler`` and ``CheckpointLoader``
    attach unchanged.

    Args: as ``monai.engines.SupervisedEvaluator`` (``inferer`` defaults to ``SimpleInferer``;
    use ``monai_ext.inferers.NetworkGridInferer`` for images not on the network's grid).
    ``decollate`` defaults to False because the registration handlers work on batches.
    An inferer with a ``register_pair(pair, network) -> dict`` method (``DIOInferer``) registers
    the pair itself and returns ``pred``, ``warped_image`` and ``fixed_to_moving``; the fixed and
    moving images may then have different grids.
    """

    def __init__(
        self,
        device: torch.device | str,
        val_data_loader: Iterable,
        network: torch.nn.Module,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        inferer: Inferer | None = None,
        postprocessing: Transform | None = None,
        key_val_metric: dict | None = None,
        additional_metrics: dict | None = None,
        val_handlers: Sequence | None = None,
        mode: ForwardMode | str = ForwardMode.EVAL,
        decollate: bool = False,
        iteration_update: Callable | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            device=device,
            val_data_loader=val_data_loader,
            network=network,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            inferer=SimpleInferer() if inferer is None else inferer,
            postprocessing=postprocessing
            if postprocessing is not None
            else WarpMovingd("moving_label", allow_missing_keys=True),
            key_val_metric=key_val_metric,
            additional_metrics=additional_metrics,
            val_handlers=val_handlers,
            mode=mode,
            decollate=decollate,
            iteration_update=iteration_update,
            **kwargs,
        )

    def _iteration(self, engine: RegistrationEvaluator, batchdata: dict[str, Any]) -> dict:  # type: ignore[override]
        output = pair_batch_to_device(batchdata, engine.state.device, engine.non_blocking)
        fixed, moving = output["fixed_image"], output["moving_image"]
        if hasattr(engine.inferer, "register_pair"):
            # Inferers that register a pair themselves (DIO) may keep each image's own grid.
            engine.state.output = output
            with engine.mode(engine.network), torch.no_grad():
                registered = engine.inferer.register_pair(output, engine.network)
            output.update(registered)
            output[CommonKeys.PRED] = registered["pred"]
            if "fixed_label" in output:
                output[CommonKeys.LABEL] = output["fixed_label"]
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            engine.fire_event(IterationEvents.MODEL_COMPLETED)
            return output
        if fixed.shape[2:] != moving.shape[2:]:
            raise ValueError(
                f"fixed and moving images must share a grid, got {tuple(fixed.shape[2:])} "
                f"and {tuple(moving.shape[2:])}; "
                "resample the moving image onto the fixed one first (e.g. monai.transforms.ResampleToMatchd)."
            )
        inputs = torch.cat([moving, fixed], dim=1)
        output[CommonKeys.IMAGE] = inputs
        engine.state.output = output
        with engine.mode(engine.network), torch.no_grad():
            ddf = engine.inferer(inputs, engine.network)
        output[CommonKeys.PRED] = ddf
        output["warped_image"] = warp_image(moving, ddf)
        if "fixed_label" in output:
            output[CommonKeys.LABEL] = output["fixed_label"]
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return output
