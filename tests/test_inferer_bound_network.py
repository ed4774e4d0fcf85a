"""Training objectives call the network through the trainer's inferer."""

from __future__ import annotations

import torch
from monai.inferers import SimpleInferer

from monai_ext.engines import InfererBoundNetwork


class _Doubling(SimpleInferer):
    def __call__(self, inputs, network, *args, **kwargs):
        return 2 * network(inputs)


class _Registering(torch.nn.Module):
    def forward(self, x):
        return x + 1

    def register(self, fixed, moving, *args, **kwargs):
        return ("network", args, kwargs)


class _RegisteringInferer(SimpleInferer):
    def register(self, network, fixed, moving, *args, **kwargs):
        return ("inferer", network.register(fixed, moving, *args, **kwargs))


def test_objectives_see_the_network_through_the_trainer_inferer():
    network, x = _Registering(), torch.ones(1, 2, 4, 4)
    assert torch.equal(InfererBoundNetwork(_Doubling(), network)(x), 2 * (x + 1))
    assert InfererBoundNetwork(SimpleInferer(), network).register(x, x, 1, b=2) == ("network", (1,), {"b": 2})
    assert InfererBoundNetwork(_RegisteringInferer(), network).register(x, x) == ("inferer", ("network", (), {}))
