"""Supervised trainer for registration networks with gradient surgery between two losses."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from monai.data import MetaTensor
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.engines.workflow import Workflow
from monai.utils import CommonKeys, convert_to_tensor
from torch.nn.parallel import DistributedDataParallel
from torch.optim.optimizer import Optimizer

from monai_ext.engines.inferer_bound_network import InfererBoundNetwork
from monai_ext.engines.pair_batch import pair_batch_to_device
from monai_ext.engines.surgery_step import set_surgery_gradients
from monai_ext.errors import NonFiniteLossError
from monai_ext.objectives import PairwiseObjective
from monai_ext.surgery import GradientSurgery

__all__ = ["GradientSurgeryTrainer"]


def _pair_names(output: dict) -> str:
    """The files of the batch's pairs, ``moving -> fixed`` (from MONAI's metadata), for error messages."""
    names = []
    for key in ("moving_image", "fixed_image"):
        meta = getattr(output.get(key), "meta", None) or {}
        files = meta.get("filename_or_obj", [])
        names.append([files] if isinstance(files, str) else list(files))
    pairs = [f"{m} -> {f}" for m, f in zip(*names)]
    return "; ".join(pairs) if pairs else "a batch without file names"


def _objective_arguments(objective: Any, output: dict) -> dict:
    """``fixed_label`` / ``moving_label`` (plain tensors) for objectives that declare ``requires_labels``
    (e.g. DIO's Eq. 2 Dice term), and ``fixed_affine`` / ``moving_affine`` (the images' ``(B, 4, 4)``
    MetaTensor affines) for those that declare ``requires_affines`` (DIO reads a moving image of
    another grid through them); nothing for the others."""
    arguments = {}
    if getattr(objective, "requires_labels", False):
        arguments.update(
            {
                key: convert_to_tensor(output[key], track_meta=False)
                for key in ("fixed_label", "moving_label")
                if key in output
            }
        )
    if getattr(objective, "requires_affines", False):
        for role in ("fixed", "moving"):
            image = output.get(f"{role}_image")
            if isinstance(image, MetaTensor):
                affine = image.affine
                arguments[f"{role}_affine"] = affine if affine.ndim == 3 else affine.unsqueeze(0)
    return arguments


class GradientSurgeryTrainer(SupervisedTrainer):
    """``SupervisedTrainer`` that combines the similarity and regularisation gradients by surgery.

    Each iteration (gsmorph.md Algorithm 1, Eq. 2):

    1. reads ``fixed_image`` and ``moving_image`` ``(B, C, *spatial)`` from the batch dict and
       moves them (and ``fixed_label``, ``moving_label``, landmarks when present) to ``device``;
    2. ``terms = objective(network, moving, fixed)``, the network seen through the trainer's
       ``inferer`` (:class:`~monai_ext.engines.InfererBoundNetwork`; default ``SimpleInferer``): by default
       :class:`~monai_ext.objectives.PairwiseObjective`, i.e. one forward pass
       ``ddf = network(cat([moving, fixed], 1))`` ``(B, ndim, *spatial)`` in voxels,
       ``warped = warp_image(moving, ddf)``, ``sim = similarity_loss(warped, fixed)``,
       ``reg = regularization_loss(ddf)``; :class:`~monai_ext.objectives.InverseConsistentObjective`
       gives GradICON's symmetric loss (gradicon.md Eq. 13);
    3. ``g_sim = autograd.grad(sim, params, retain_graph=True)``, ``g_reg = autograd.grad(reg,
       params)`` over the trainable parameters; when ``torch.distributed`` is initialised with
       more than one process both are averaged over the ranks (one all-reduce) *before* surgery,
       since ``autograd.grad`` bypasses DDP's hooks and surgery must see the global batch
       (:func:`~monai_ext.engines.surgery_step.set_surgery_gradients`);
    4. ``g, conflict_rate = surgery(g_sim, g_reg)``; ``optimizer.zero_grad()``, ``p.grad = g``,
       ``optimizer.step()``.

    It fires ``IterationEvents.FORWARD_COMPLETED`` (after the warp), ``LOSS_COMPLETED``,
    ``BACKWARD_COMPLETED`` (after ``p.grad`` is set, before the step) and ``MODEL_COMPLETED``
    as ``SupervisedTrainer`` does, so MONAI's and ignite's handlers attach unchanged.

    ``engine.state.output`` is a dict with the batch's ``fixed_image``, ``moving_image`` (and
    ``fixed_label``, ``moving_label``, landmarks when present, with their MONAI metadata),
    ``image`` (the network input; absent for an objective with ``requires_affines`` given images
    on different grids), ``label`` (= ``fixed_label`` when present), ``pred`` (the
    DDF, detached), ``warped_image`` (detached), ``loss`` (detached 0-d tensor
    ``sim + w * reg``, for logging: ``w`` is ``surgery.loss_weight``, i.e. the regularisation
    weight for ``weighted_sum``/``pcgrad``/``random`` and 1 for ``gsmorph``/``gs_agr``, which
    have no weight), and the python floats ``similarity_loss``, ``regularization_loss``,
    ``conflict_rate`` (see :class:`monai_ext.surgery.GradientSurgery`). ``loss`` is
    ``CommonKeys.LOSS``, so ``StatsHandler``'s default ``from_engine(["loss"], first=True)`` works.
    For ``weighted_sum`` the two gradients are still computed separately (one extra backward
    pass through the retained graph) so that the conflict rate can be reported.

    Args:
        device: device to train on.
        max_epochs: number of epochs.
        train_data_loader: iterable of pair dicts (``fixed_image``, ``moving_image``, ...).
        network: maps ``(B, 2C, *spatial)`` to the DDF. A ``DistributedDataParallel`` wrapper is
            unwrapped for the forward pass (its hooks would wait for a ``backward()`` that never
            comes); this trainer averages gradients itself. In multi-process training the ranks
            must start from the same parameters (wrapping in DDP broadcasts them from rank 0) and,
            for the ``"random"``/``"gs_agr"`` modes, draw from equally seeded generators; the
            logged losses are those of each rank's own batch.
        optimizer: optimiser over the network's parameters.
        similarity_loss: ``(warped_moving, fixed) -> scalar`` to minimise (with
            ``regularization_loss``, shorthand for ``objective=PairwiseObjective(...)``).
        regularization_loss: ``ddf -> scalar`` to minimise.
        objective: ``(network, moving, fixed) -> RegistrationTerms`` (objectives with a true
            ``requires_labels`` attribute also get ``fixed_label=``, ``moving_label=``, those with
            ``requires_affines`` the images' ``fixed_affine=``, ``moving_affine=`` and may get
            images on different grids, as ``DIOObjective`` does); give either this or the two
            losses above.
        fuse_weighted_sum: with the ``weighted_sum`` rule, take a single gradient of
            ``sim + lambda * reg`` (one backward pass fewer; the conflict rate is then NaN).
        surgery: a :class:`~monai_ext.surgery.GradientSurgery` or a mode of
            ``GradientSurgery.from_mode`` (``"gsmorph"``, ``"pcgrad"``, ``"gs_agr"``,
            ``"weighted_sum"``, ``"random"``).
        regularization_weight: ``weight`` passed to ``GradientSurgery.from_mode`` when
            ``surgery`` is a string (the ``lambda`` of ``weighted_sum``); default 1. Must be left
            ``None`` when ``surgery`` is an object (set its ``weight`` instead).
        kwargs: the other arguments of ``monai.engines.SupervisedTrainer`` (``epoch_length``,
            ``train_handlers``, ``postprocessing``, ``key_train_metric``, ``to_kwargs``, ...), with
            these meanings here:
        amp: mixed precision: the forward pass runs under ``torch.autocast(device.type,
            **amp_kwargs)``, both losses are scaled by a ``torch.amp.GradScaler`` (created in
            :meth:`run` for ``device.type``), the gradients are unscaled before surgery, and the
            combined gradient is re-scaled so that ``scaler.step`` unscales it, skips the step
            on inf/NaN and updates the scale.
        decollate: as ``SupervisedTrainer`` (default True): after ``MODEL_COMPLETED`` the output
            becomes a list of per-pair dicts with the scalars replicated, which is what
            ``from_engine(["loss"], first=True)`` expects. False keeps the batch dict.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable,
        network: torch.nn.Module,
        optimizer: Optimizer,
        similarity_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        regularization_loss: Callable[[torch.Tensor], torch.Tensor] | None = None,
        surgery: GradientSurgery | str = "gsmorph",
        objective: Callable | None = None,
        fuse_weighted_sum: bool = False,
        regularization_weight: float | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(surgery, str):
            weight = 1.0 if regularization_weight is None else regularization_weight
            surgery = GradientSurgery.from_mode(surgery, weight=weight)
        elif isinstance(surgery, GradientSurgery):
            if regularization_weight is not None:
                raise ValueError(
                    "regularization_weight is only used with a surgery mode string; "
                    f"set the weight of the GradientSurgery object instead (it has weight={surgery.weight})."
                )
        else:
            raise ValueError(f"surgery must be a GradientSurgery or a mode string; got {type(surgery).__name__}.")
        if objective is None:
            if not callable(similarity_loss) or not callable(regularization_loss):
                raise ValueError("Give either an objective, or similarity_loss and regularization_loss as callables.")
            objective = PairwiseObjective(similarity_loss, regularization_loss)
        elif similarity_loss is not None or regularization_loss is not None:
            raise ValueError("Give either an objective or similarity_loss / regularization_loss, not both.")
        # SupervisedTrainer's leading parameters, in its order
        super().__init__(device, max_epochs, train_data_loader, network, optimizer, objective, **kwargs)
        self.objective = objective
        self.surgery = surgery
        self.fuse_weighted_sum = fuse_weighted_sum

    def run(self) -> None:  # type: ignore[override]
        """Train; with ``amp`` the gradient scaler is made for the trainer's device type.

        (``Trainer.run`` would always make a CUDA scaler; ``Workflow.run`` is the rest of it.)
        """
        self.scaler = torch.amp.GradScaler(self.state.device.type) if self.amp else None
        Workflow.run(self)

    def _iteration(self, engine: GradientSurgeryTrainer, batchdata: dict[str, Any]) -> dict:  # type: ignore[override]
        device, non_blocking = engine.state.device, engine.non_blocking
        output = pair_batch_to_device(batchdata, device, non_blocking, **engine.to_kwargs)
        fixed, moving = (
            convert_to_tensor(output["fixed_image"], track_meta=False),
            convert_to_tensor(output["moving_image"], track_meta=False),
        )
        own_grids = getattr(engine.objective, "requires_affines", False)  # DIO reads each image on its grid
        if fixed.shape[0] != moving.shape[0] or (fixed.shape[2:] != moving.shape[2:] and not own_grids):
            raise ValueError(
                f"fixed and moving images must share batch size and grid; got {tuple(fixed.shape)} and "
                f"{tuple(moving.shape)}."
            )
        if fixed.shape[2:] == moving.shape[2:]:
            output[CommonKeys.IMAGE] = torch.cat([moving, fixed], dim=1)
        if "fixed_label" in output:
            output[CommonKeys.LABEL] = output["fixed_label"]
        engine.state.output = output

        network = engine.network.module if isinstance(engine.network, DistributedDataParallel) else engine.network
        params = [p for p in network.parameters() if p.requires_grad]
        if not params:
            raise ValueError("The network has no trainable parameter (requires_grad=True).")
        network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)

        scaler = engine.scaler if engine.amp else None
        autocast_kwargs = {"enabled": True, **engine.amp_kwargs} if engine.amp else {"enabled": False}
        with torch.autocast(device.type, **autocast_kwargs):
            through_inferer = InfererBoundNetwork(engine.inferer, network)
            terms = engine.objective(through_inferer, moving, fixed, **_objective_arguments(engine.objective, output))
            output[CommonKeys.PRED] = terms.ddf.detach()
            output["warped_image"] = terms.warped.detach()
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            sim, reg = terms.similarity, terms.regularization
        sim_value, reg_value = sim.detach().float(), reg.detach().float()
        if not (torch.isfinite(sim_value) and torch.isfinite(reg_value)):
            raise NonFiniteLossError(
                f"the training loss is not finite (similarity {float(sim_value)}, regularisation {float(reg_value)}) "
                f"at epoch {engine.state.epoch}, iteration {engine.state.iteration}, on {_pair_names(output)}; "
                "training stopped before the weights were updated, and the last checkpoint is kept."
            )
        output[CommonKeys.LOSS] = sim_value + engine.surgery.loss_weight * reg_value
        output["similarity_loss"] = float(sim_value)
        output["regularization_loss"] = float(reg_value)
        engine.fire_event(IterationEvents.LOSS_COMPLETED)

        output["conflict_rate"] = set_surgery_gradients(
            sim, reg, params, engine.surgery, scaler=scaler, fuse_weighted_sum=engine.fuse_weighted_sum
        )
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        if scaler is not None:
            scaler.step(engine.optimizer)
            scaler.update()
        else:
            engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
