"""Registration objectives and the fused weighted-sum step of the surgery trainer."""

from __future__ import annotations

import copy

import torch

from monai_ext.objectives import InverseConsistentObjective, PairwiseObjective
from monai_ext.spatial import warp_image

from helpers import TinyNet, make_batches, make_net, make_trainer, mse, smoothness


def test_pairwise_objective_matches_manual_terms():
    net, batch = make_net(), make_batches(1)[0]
    moving, fixed = batch["moving_image"], batch["fixed_image"]
    terms = PairwiseObjective(mse, smoothness)(net, moving, fixed)
    ddf = net(torch.cat([moving, fixed], 1))
    torch.testing.assert_close(terms.ddf, ddf)
    torch.testing.assert_close(terms.similarity, mse(warp_image(moving, ddf), fixed))
    torch.testing.assert_close(terms.regularization, smoothness(ddf))


def test_inverse_consistent_objective_is_eq13_split():
    net, batch = make_net(), make_batches(1)[0]
    a, b = batch["moving_image"], batch["fixed_image"]
    calls = []
    net.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))

    def regularizer(u_ab, u_ba):  # any function of both fields; here a simple inverse-consistency proxy
        return ((u_ab + u_ba) ** 2).mean()

    terms = InverseConsistentObjective(mse, regularizer)(net, a, b)
    assert len(calls) == 2  # one call per direction, as ICON does
    u_ab, u_ba = net(torch.cat([a, b], 1)), net(torch.cat([b, a], 1))
    expected_sim = mse(warp_image(a, u_ab), b) + mse(warp_image(b, u_ba), a)
    torch.testing.assert_close(terms.similarity, expected_sim)
    torch.testing.assert_close(terms.regularization, regularizer(u_ab, u_ba))
    torch.testing.assert_close(terms.ddf, u_ab)
    # without BatchNorm, batching the two directions in one call changes nothing
    batched = InverseConsistentObjective(mse, regularizer, batch_directions=True)(net, a, b)
    torch.testing.assert_close(batched.similarity, terms.similarity)
    torch.testing.assert_close(batched.regularization, terms.regularization)


def test_fused_weighted_sum_equals_two_gradient_weighted_sum():
    batches = make_batches(n_batches=2)
    separate, fused = make_net(), make_net()
    make_trainer(separate, batches, surgery="weighted_sum", regularization_weight=0.3, lr=0.5).run()
    trainer = make_trainer(
        fused, batches, surgery="weighted_sum", regularization_weight=0.3, lr=0.5, fuse_weighted_sum=True
    )
    trainer.run()
    for p, q in zip(separate.parameters(), fused.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)
    assert trainer.state.output[0]["conflict_rate"] != trainer.state.output[0]["conflict_rate"]  # NaN: not measured


def test_trainer_takes_an_objective():
    net = make_net()
    before = copy.deepcopy(net)
    objective = InverseConsistentObjective(mse, lambda u, v: ((u + v) ** 2).mean())
    from monai_ext.engines import GradientSurgeryTrainer

    trainer = GradientSurgeryTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=make_batches(1),
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        objective=objective,
        surgery="weighted_sum",
        regularization_weight=1.5,
    )
    trainer.run()
    assert any(not torch.equal(p, q) for p, q in zip(net.parameters(), before.parameters()))
    assert isinstance(net, TinyNet)
