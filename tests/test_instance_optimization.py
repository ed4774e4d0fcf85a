"""Test-time instance optimisation: works on a copy, lowers the objective, BatchNorm mode explicit."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from monai_ext.inferers import InstanceOptimizationInferer
from monai_ext.objectives import PairwiseObjective, RegistrationTerms

from helpers import make_batches, mse, smoothness


class NetWithBatchNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        return self.conv2(torch.relu(self.norm(self.conv1(x))))


def _pair():
    batch = make_batches(1, batch_size=1)[0]
    return torch.cat([batch["moving_image"], batch["fixed_image"]], 1)


def test_network_is_untouched_and_objective_decreases():
    net = NetWithBatchNorm().eval()
    state = copy.deepcopy(net.state_dict())
    inferer = InstanceOptimizationInferer(
        PairwiseObjective(mse, smoothness), steps=20, learning_rate=5e-2, regularization_weight=0.1, progress=False
    )
    ddf = inferer(_pair(), net)
    assert ddf.shape == (1, 2, 16, 16)
    for name, value in net.state_dict().items():  # weights and BatchNorm statistics unchanged
        assert torch.equal(value, state[name]), name
    assert inferer.last_losses[-1] < 0.9 * inferer.last_losses[0]
    assert not net.training


def test_zero_steps_is_direct_inference():
    net = NetWithBatchNorm().eval()
    x = _pair()
    ddf = InstanceOptimizationInferer(PairwiseObjective(mse, smoothness), steps=0, progress=False)(x, net)
    torch.testing.assert_close(ddf, net(x))


def test_pairs_do_not_leak_into_each_other():
    net = NetWithBatchNorm().eval()
    inferer = InstanceOptimizationInferer(
        PairwiseObjective(mse, smoothness), steps=5, learning_rate=1e-2, progress=False
    )
    x = _pair()
    first = inferer(x, net)
    inferer(torch.flip(x, dims=(2,)), net)
    torch.testing.assert_close(inferer(x, net), first)


@pytest.mark.parametrize("mode,expected_training", [("eval", False), ("train", True)])
def test_batchnorm_mode_is_explicit(mode, expected_training):
    seen = []
    net = NetWithBatchNorm().eval()
    net.norm.register_forward_pre_hook(lambda m, i: seen.append(m.training))
    inferer = InstanceOptimizationInferer(PairwiseObjective(mse, smoothness), steps=2, batchnorm=mode, progress=False)
    inferer(_pair(), net)
    assert seen[:2] == [expected_training, expected_training]


class TranslationNet(nn.Module):
    """The DDF is the parameter vector ``t`` (voxels per axis) at every voxel: a translation."""

    def __init__(self) -> None:
        super().__init__()
        self.t = nn.Parameter(torch.tensor([0.3, -0.2]))

    def forward(self, x):
        return self.t.view(1, -1, 1, 1).expand(x.shape[0], -1, *x.shape[2:]).clone()


SIMILARITY_GRADIENT = torch.tensor([1.0, 0.0])
REGULARIZATION_GRADIENT = torch.tensor([-1.0, 1.0])  # <s, r> = -1: the two always conflict


def linear_objective(network, moving, fixed):
    """Terms linear in ``t``, so their gradients are the constant vectors above at every step."""
    ddf = network(torch.cat([moving, fixed], 1))
    t = ddf[0, :, 0, 0]
    return RegistrationTerms(t @ SIMILARITY_GRADIENT, t @ REGULARIZATION_GRADIENT, ddf, moving)


def test_projected_mode_reports_conflicts_and_resizes():
    s, r = SIMILARITY_GRADIENT, REGULARIZATION_GRADIENT
    # io_gradient_projection.md Sec. 2.4: one of the two, drawn at random, is projected onto the normal
    # plane of the other, then they are summed; by hand for s = (1, 0), r = (-1, 1), lambda = 1:
    s_projected = s - (s @ r) / (r @ r) * r  # (0.5, 0.5)
    r_projected = r - (s @ r) / (s @ s) * s  # (0, 1)
    updates = (s_projected + r, s + r_projected)  # (-0.5, 1.5) and (1, 1); the plain sum is (0, 1)
    net, lr, steps = TranslationNet(), 0.1, 3
    inferer = InstanceOptimizationInferer(
        linear_objective,
        steps=steps,
        optimizer="sgd",
        learning_rate=lr,
        surgery="random",
        regularization_weight=1.0,
        spatial_size=(16, 16),
        progress=False,
    )
    torch.manual_seed(0)
    ddf = inferer(torch.rand(1, 2, 24, 20), net)
    assert inferer.last_conflict_rates == [1.0] * steps
    # the field predicted on the 16x16 network grid, carried back to 24x20: t in voxels of each grid
    t = ddf[0, :, 0, 0] / torch.tensor([23 / 15, 19 / 15])
    assert ddf.shape == (1, 2, 24, 20)
    torch.testing.assert_close(ddf, ddf[:, :, :1, :1].expand_as(ddf))
    # after 3 SGD steps t moved by -lr times a sum of 3 projected updates, never by the plain sum
    reachable = [net.t.detach() - lr * (k * updates[0] + (steps - k) * updates[1]) for k in range(steps + 1)]
    assert min(float((t - x).abs().max()) for x in reachable) < 1e-5
    assert float((t - (net.t.detach() - lr * steps * (s + r))).abs().max()) > 0.1
    torch.testing.assert_close(net.t.detach(), torch.tensor([0.3, -0.2]))  # the network itself is untouched


def test_invalid_options():
    with pytest.raises(ValueError, match="optimizer"):
        InstanceOptimizationInferer(PairwiseObjective(mse, smoothness), optimizer="lbfgs")
    with pytest.raises(ValueError, match="batchnorm"):
        InstanceOptimizationInferer(PairwiseObjective(mse, smoothness), batchnorm="frozen")


def test_batched_metatensor_inputs_are_optimised_as_plain_tensors():
    # a DataLoader hands over batched MetaTensors; network-wide projection slices the flattened
    # gradient, which must not go through MetaTensor's per-item metadata handling
    from monai.data import MetaTensor, list_data_collate

    pair = _pair()[0]
    batch = list_data_collate([{"x": MetaTensor(pair, affine=torch.eye(4))}])["x"]
    assert isinstance(batch, MetaTensor) and batch.is_batch
    seen = []

    def recording_objective(network, moving, fixed):
        seen.append((type(moving), type(fixed)))
        return PairwiseObjective(mse, smoothness)(network, moving, fixed)

    net = NetWithBatchNorm().eval()
    inferer = InstanceOptimizationInferer(recording_objective, steps=2, surgery="random", progress=False)
    torch.manual_seed(0)
    ddf = inferer(batch, net)
    assert seen == [(torch.Tensor, torch.Tensor)] * 2  # the objective never sees a MetaTensor
    assert type(ddf) is torch.Tensor and len(inferer.last_conflict_rates) == 2
    # the same result as for the plain tensor
    torch.manual_seed(0)
    torch.testing.assert_close(ddf, inferer(pair[None], net))
