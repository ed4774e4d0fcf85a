"""Tests of monai_ext.engines.GradientSurgeryTrainer on a tiny 2-D registration problem."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from ignite.engine import Events
from ignite.handlers import ProgressBar
from monai.engines.utils import IterationEvents
from monai.handlers import CheckpointSaver, LrScheduleHandler, StatsHandler, from_engine
from torch import nn

from monai_ext.engines import GradientSurgeryTrainer
from monai_ext.spatial import warp_image
from monai_ext.surgery import GradientSurgery

from helpers import SIZE, make_batches, make_net, make_trainer, mse, smooth_images, smoothness


def reference_gradients(net: nn.Module, batch: dict):
    """Both objectives' gradients for one batch, computed directly with torch.autograd."""
    params = list(net.parameters())
    moving, fixed = batch["moving_image"], batch["fixed_image"]
    ddf = net(torch.cat([moving, fixed], dim=1))
    warped = warp_image(moving, ddf)
    sim, reg = mse(warped, fixed), smoothness(ddf)
    g_sim = torch.autograd.grad(sim, params, retain_graph=True)
    g_reg = torch.autograd.grad(reg, params)
    return g_sim, g_reg, float(sim.detach()), float(reg.detach())


def gsmorph_by_hand(s: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """gsmorph.md Algorithm 1 for one layer."""
    dot = float((s * r).sum())
    if dot > 0 or dot == 0:
        return s
    return s - dot / float((r * r).sum()) * r


def _seed_with_some_conflicts(batch: dict) -> int:
    """The first network seed whose layers' gradients conflict for some but not all tensors, with a
    clear margin (|cos| > 0.05), so that the example exercises both branches of the surgery rule
    whatever the platform's floating-point details."""
    for seed in range(1, 100):
        g_sim, g_reg, _, _ = reference_gradients(make_net(seed), batch)
        cosines = [float((s * r).sum() / (s.norm() * r.norm())) for s, r in zip(g_sim, g_reg)]
        if all(abs(c) > 0.05 for c in cosines) and 0 < sum(c < 0 for c in cosines) < len(cosines):
            return seed
    raise AssertionError("no network seed in 1..99 gives both conflicting and agreeing layers")


@pytest.mark.parametrize("mode", ["gsmorph", "weighted_sum"])
def test_one_step_equals_hand_computation(mode):
    batches = make_batches(n_batches=1, seed=0)
    net = make_net(_seed_with_some_conflicts(batches[0]))
    reference = copy.deepcopy(net)
    weight = 0.3
    trainer = make_trainer(net, batches, surgery=mode, regularization_weight=weight if mode == "weighted_sum" else None)
    trainer.run()

    g_sim, g_reg, sim, reg = reference_gradients(reference, batches[0])
    conflicts = [float((s * r).sum()) < 0 for s, r in zip(g_sim, g_reg)]
    for p_new, p_old, s, r in zip(net.parameters(), reference.parameters(), g_sim, g_reg):
        g = gsmorph_by_hand(s, r) if mode == "gsmorph" else s + weight * r
        torch.testing.assert_close(p_new.detach(), p_old.detach() - 1.0 * g, rtol=1e-5, atol=1e-6)

    out = trainer.state.output[0]  # decollated: the scalars are replicated in every item
    assert 0 < sum(conflicts) < len(conflicts)  # the example exercises both branches
    assert out["conflict_rate"] == pytest.approx(sum(conflicts) / len(conflicts))
    assert out["similarity_loss"] == pytest.approx(sim, rel=1e-5)
    assert out["regularization_loss"] == pytest.approx(reg, rel=1e-5)
    loss_weight = weight if mode == "weighted_sum" else 1.0
    assert float(out["loss"]) == pytest.approx(sim + loss_weight * reg, rel=1e-5)


def test_surgery_object_and_pcgrad_sum_match_surgery_of_reference_gradients():
    net = make_net(1)
    reference = copy.deepcopy(net)
    batches = make_batches(n_batches=1, seed=1)
    surgery = GradientSurgery.from_mode("pcgrad_sum", weight=0.5)
    trainer = make_trainer(net, batches, surgery=surgery, lr=0.1)
    trainer.run()
    g_sim, g_reg, _, _ = reference_gradients(reference, batches[0])
    # PCGrad on the flattened network, written out independently
    s = torch.cat([g.reshape(-1) for g in g_sim])
    r = 0.5 * torch.cat([g.reshape(-1) for g in g_reg])
    dot = float(s @ r)
    g = s + r if dot >= 0 else (s - dot / float(r @ r) * r) + (r - dot / float(s @ s) * s)
    new = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    old = torch.cat([p.detach().reshape(-1) for p in reference.parameters()])
    torch.testing.assert_close(new, old - 0.1 * g, rtol=1e-5, atol=1e-7)


def test_events_fire_and_forward_runs_once_per_iteration():
    net = make_net()
    trainer = make_trainer(net, make_batches(n_batches=2), lr=0.01)
    counts = {}
    for event in (
        IterationEvents.FORWARD_COMPLETED,
        IterationEvents.LOSS_COMPLETED,
        IterationEvents.BACKWARD_COMPLETED,
        IterationEvents.MODEL_COMPLETED,
        Events.ITERATION_COMPLETED,
        Events.EPOCH_COMPLETED,
    ):
        counts[event] = 0

        def count(engine, event=event):
            counts[event] += 1

        trainer.add_event_handler(event, count)
    forward_calls = []
    net.register_forward_hook(lambda module, inputs, output: forward_calls.append(inputs[0].shape))

    # gradients are set when BACKWARD_COMPLETED fires, before the optimiser step
    grads_at_backward = []
    trainer.add_event_handler(
        IterationEvents.BACKWARD_COMPLETED,
        lambda engine: grads_at_backward.append(all(p.grad is not None for p in net.parameters())),
    )
    trainer.run()
    assert counts[Events.EPOCH_COMPLETED] == 1
    for event in counts:
        if event != Events.EPOCH_COMPLETED:
            assert counts[event] == 2, event
    assert forward_calls == [torch.Size([2, 2, SIZE, SIZE])] * 2
    assert grads_at_backward == [True, True]


def test_output_dict_keys_and_labels_pass_through():
    batches = make_batches(n_batches=1)
    labels = (batches[0]["fixed_image"] > 0.5).float()
    batches[0]["fixed_label"] = labels
    batches[0]["moving_label"] = 1 - labels
    trainer = make_trainer(make_net(), batches, lr=0.01, decollate=False)
    trainer.run()
    out = trainer.state.output
    assert set(out) == {
        "fixed_image",
        "moving_image",
        "fixed_label",
        "moving_label",
        "image",
        "label",
        "pred",
        "warped_image",
        "loss",
        "similarity_loss",
        "regularization_loss",
        "conflict_rate",
    }
    assert out["pred"].shape == (2, 2, SIZE, SIZE) and not out["pred"].requires_grad
    assert out["warped_image"].shape == (2, 1, SIZE, SIZE) and not out["warped_image"].requires_grad
    assert out["loss"].ndim == 0 and not out["loss"].requires_grad
    for key in ("similarity_loss", "regularization_loss", "conflict_rate"):
        assert isinstance(out[key], float)
    assert torch.equal(out["fixed_label"], labels) and torch.equal(out["label"], labels)


def test_standard_handlers_attach_and_work(tmp_path):
    net = make_net()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    handlers = [
        StatsHandler(name="surgery_stats", tag_name="train_loss", output_transform=from_engine(["loss"], first=True)),
        CheckpointSaver(save_dir=str(tmp_path), save_dict={"network": net, "optimizer": optimizer}, save_final=True),
        LrScheduleHandler(lr_scheduler=scheduler, print_lr=False),
    ]
    trainer = GradientSurgeryTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=make_batches(n_batches=2),
        network=net,
        optimizer=optimizer,
        similarity_loss=mse,
        regularization_loss=smoothness,
        surgery="gsmorph",
        train_handlers=handlers,
    )
    ProgressBar(persist=False).attach(trainer)

    class Collect(logging.Handler):
        def __init__(self):
            super().__init__(level=logging.INFO)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    collect = Collect()
    logger = logging.getLogger("surgery_stats")  # StatsHandler's logger does not propagate
    logger.addHandler(collect)
    try:
        trainer.run()
    finally:
        logger.removeHandler(collect)
    messages = collect.messages
    assert any("train_loss" in m and "Iter: 2/2" in m for m in messages)
    files = list(tmp_path.glob("*.pt"))
    assert len(files) == 1
    state = torch.load(files[0], weights_only=True)
    for name, value in net.state_dict().items():
        torch.testing.assert_close(state["network"][name], value)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.005)


def test_amp_scaler_gives_the_same_update_as_fp32():
    # autocast disabled, loss scaling on: scaling by a power of two and unscaling is exact
    batches = make_batches(n_batches=1)
    plain, scaled = make_net(), make_net()
    make_trainer(plain, batches, lr=0.5).run()
    trainer = make_trainer(scaled, batches, lr=0.5, amp=True, amp_kwargs={"enabled": False})
    trainer.run()
    assert trainer.scaler is not None and trainer.scaler.get_scale() == 65536.0
    for a, b in zip(plain.parameters(), scaled.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_amp_skips_the_step_when_scaled_gradients_overflow():
    net = make_net()
    before = copy.deepcopy(net.state_dict())
    trainer = make_trainer(net, make_batches(n_batches=1), amp=True, amp_kwargs={"enabled": False})
    trainer.objective.similarity_loss = lambda warped, fixed: mse(warped, fixed) * 1e36
    trainer.run()
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name])
    assert trainer.scaler.get_scale() == 32768.0


def test_amp_with_cpu_autocast_runs():
    net = make_net()
    trainer = make_trainer(net, make_batches(n_batches=1), lr=0.01, amp=True)
    trainer.run()
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert 0.0 <= trainer.state.output[0]["conflict_rate"] <= 1.0


def test_bad_arguments_and_batches():
    with pytest.raises(ValueError, match="gsmorph"):
        make_trainer(make_net(), make_batches(1), surgery="voxelmorph")
    with pytest.raises(ValueError, match="regularization_weight"):
        make_trainer(make_net(), make_batches(1), surgery=GradientSurgery(), regularization_weight=0.1)
    with pytest.raises(KeyError, match="moving_image"):
        make_trainer(make_net(), [{"fixed_image": torch.zeros(1, 1, SIZE, SIZE)}]).run()
    bad = [{"fixed_image": torch.zeros(1, 1, SIZE, SIZE), "moving_image": torch.zeros(1, 1, 8, 8)}]
    with pytest.raises(ValueError, match="grid"):
        make_trainer(make_net(), bad).run()


def test_non_finite_loss_stops_before_the_update_and_names_the_pair():
    from monai.data import MetaTensor

    from monai_ext.errors import NonFiniteLossError

    batch = make_batches(n_batches=1, batch_size=2)[0]
    fixed = batch["fixed_image"].clone()
    fixed[1, 0, 3, 3] = float("nan")
    names = {"fixed_image": ["f0.nii.gz", "f1.nii.gz"], "moving_image": ["m0.nii.gz", "m1.nii.gz"]}
    bad = {
        "fixed_image": MetaTensor(fixed, meta={"filename_or_obj": names["fixed_image"]}),
        "moving_image": MetaTensor(batch["moving_image"], meta={"filename_or_obj": names["moving_image"]}),
    }
    net = make_net()
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(
        NonFiniteLossError,
        match=r"not finite .* epoch 1, iteration 1, on m0.nii.gz -> f0.nii.gz; "
        r"m1.nii.gz -> f1.nii.gz; training stopped before the weights were updated",
    ):
        make_trainer(net, [bad]).run()
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_monai_dataloader_with_meta_tensors():
    from monai.data import DataLoader, Dataset, MetaTensor

    gen = torch.Generator().manual_seed(0)
    items = [
        {
            "fixed_image": MetaTensor(smooth_images(1, gen)[0], meta={"filename_or_obj": f"fixed{i}.nii.gz"}),
            "moving_image": MetaTensor(smooth_images(1, gen)[0], meta={"filename_or_obj": f"moving{i}.nii.gz"}),
            "fixed_label": MetaTensor(torch.zeros(1, SIZE, SIZE, dtype=torch.uint8)),
        }
        for i in range(4)
    ]
    loader = DataLoader(Dataset(items), batch_size=2, num_workers=0)
    trainer = make_trainer(make_net(), loader, lr=0.01)
    trainer.run()
    out = trainer.state.output
    assert len(out) == 2  # decollated per pair
    assert out[1]["moving_image"].meta["filename_or_obj"] == "moving3.nii.gz"
    assert out[0]["pred"].shape == (2, SIZE, SIZE)
