"""Two-process (gloo, CPU) training with GradientSurgeryTrainer equals one process on the whole batch."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from monai_ext.engines import GradientSurgeryTrainer, all_reduce_gradients

import helpers
from helpers import mse, smoothness

WORLD_SIZE = 2
SIZE = 8
STEPS = 2
PER_RANK = 2
MODES = ("weighted_sum", "gsmorph")

pytestmark = pytest.mark.slow  # two processes


def make_net() -> nn.Module:
    return helpers.make_net(1)


def global_batches() -> list[dict]:
    """STEPS batches of WORLD_SIZE * PER_RANK smooth random pairs."""
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(STEPS):
        pair = {}
        for key in ("fixed_image", "moving_image"):
            x = F.avg_pool2d(torch.rand(WORLD_SIZE * PER_RANK, 1, SIZE, SIZE, generator=gen), 3, 1, 1)
            pair[key] = x / x.amax()
        batches.append(pair)
    return batches


def rank_batches(rank: int) -> list[dict]:
    sl = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
    return [{k: v[sl] for k, v in batch.items()} for batch in global_batches()]


def train(network: nn.Module, params_of: nn.Module, batches: list[dict], mode: str) -> None:
    GradientSurgeryTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=batches,
        network=network,
        optimizer=torch.optim.SGD(params_of.parameters(), lr=0.5),
        similarity_loss=mse,
        regularization_loss=smoothness,
        surgery=mode,
        regularization_weight=0.3,
    ).run()


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        # the presence flags: a gradient missing on one rank only is averaged with zeros
        p = torch.ones(3)
        grads = all_reduce_gradients([torch.full((3,), 2.0) if rank == 0 else None, None], [p, p])
        torch.save({"grads": grads}, Path(out_dir) / f"reduce_rank{rank}.pt")
        for mode in MODES:
            net = make_net()
            # gsmorph runs through a DDP wrapper, which the trainer unwraps for its forward pass
            network = DistributedDataParallel(net) if mode == "gsmorph" else net
            train(network, net, rank_batches(rank), mode)
            torch.save(net.state_dict(), Path(out_dir) / f"{mode}_rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    # fork: the children reuse the already imported modules (spawn would re-import torch and MONAI)
    context = mp.start_processes(
        _worker, args=(str(out / "init"), str(out)), nprocs=WORLD_SIZE, join=False, start_method="fork"
    )
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("distributed workers did not finish within 120 s")
    return out


def test_gradient_presence_is_agreed_across_ranks(ddp_results):
    for rank in range(WORLD_SIZE):
        grads = torch.load(ddp_results / f"reduce_rank{rank}.pt", weights_only=True)["grads"]
        torch.testing.assert_close(grads[0], torch.full((3,), 1.0))
        assert grads[1] is None


@pytest.mark.parametrize("mode", MODES)
def test_two_ranks_equal_one_process_on_the_concatenated_batch(ddp_results, mode):
    states = [torch.load(ddp_results / f"{mode}_rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    net = make_net()
    train(net, net, global_batches(), mode)
    moved = False
    for name, value in net.state_dict().items():
        assert torch.equal(states[0][name], states[1][name]), name  # ranks stay identical
        torch.testing.assert_close(states[0][name], value, rtol=1e-5, atol=1e-6)
        moved = moved or not torch.equal(value, make_net().state_dict()[name])
    assert moved
