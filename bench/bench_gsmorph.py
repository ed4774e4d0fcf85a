"""GSMorph benchmark: training-step cost of each gradient-surgery mode and inference time.

Measures, in one run on one machine:
- the time of one training step (forward, the two objectives' gradients, surgery, Adam step) of
  ``GradientSurgeryTrainer`` in each mode, relative to a plain weighted-sum step with a single
  ``(sim + lambda * reg).backward()`` (what VoxelMorph does), same network, batch and optimiser;
- the time to register one 128x128 pair (network forward + warp, batch 1, eval mode, no grad).

Usage: python bench/bench_gsmorph.py [--batch_size 32] [--steps 10] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch
from machine import describe_machine, parse_device_arguments, synchronize

from monai_ext.engines import GradientSurgeryTrainer
from monai_ext.losses import GradientSmoothnessLoss
from monai_ext.networks import GSMorphUNet
from monai_ext.spatial import warp_image

MODES = ("weighted_sum", "gsmorph", "pcgrad", "gs_agr")


def _batch(batch_size: int, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    fixed = torch.rand(batch_size, 1, size, size, generator=g)
    moving = torch.roll(fixed, shifts=(2, -3), dims=(2, 3)) + 0.05 * torch.rand(batch_size, 1, size, size, generator=g)
    return {"fixed_image": fixed.to(device), "moving_image": moving.to(device)}


def time_plain_step(batch, steps: int, device: torch.device, weight: float = 0.01) -> float:
    torch.manual_seed(0)
    net = GSMorphUNet().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    sim_loss, reg_loss = torch.nn.MSELoss(), GradientSmoothnessLoss()
    fixed, moving = batch["fixed_image"], batch["moving_image"]

    def step():
        opt.zero_grad()
        ddf = net(torch.cat([moving, fixed], 1))
        loss = sim_loss(warp_image(moving, ddf), fixed) + weight * reg_loss(ddf)
        loss.backward()
        opt.step()

    step()  # warm-up
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - start) / steps


def time_surgery_step(batch, steps: int, device: torch.device, mode: str, fuse: bool = False) -> float:
    torch.manual_seed(0)
    net = GSMorphUNet().to(device)
    trainer = GradientSurgeryTrainer(
        device=device,
        max_epochs=1,
        train_data_loader=[batch] * (steps + 1),
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), lr=5e-3),
        similarity_loss=torch.nn.MSELoss(),
        regularization_loss=GradientSmoothnessLoss(),
        surgery=mode,
        regularization_weight=0.01,
        fuse_weighted_sum=fuse,
        decollate=False,
    )
    times: list[float] = []
    for _ in range(steps + 1):
        synchronize(device)
        start = time.perf_counter()
        trainer._iteration(trainer, batch)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return sum(times[1:]) / steps  # first step is warm-up


def time_inference(device: torch.device, repeats: int) -> float:
    net = GSMorphUNet().to(device).eval()
    pair = _batch(1, 128, device)
    x = torch.cat([pair["moving_image"], pair["fixed_image"]], 1)
    with torch.no_grad():
        warp_image(pair["moving_image"], net(x))
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            warp_image(pair["moving_image"], net(x))
        synchronize(device)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    args, device = parse_device_arguments(parser)
    batch = _batch(args.batch_size, 128, device)
    plain = time_plain_step(batch, args.steps, device)
    print(f"machine: {describe_machine(device)}")
    print(f"batch {args.batch_size} x 2 x 128 x 128, {args.steps} timed steps each\n")
    print("| training step | seconds | relative to plain weighted sum |")
    print("|---|---|---|")
    print(f"| plain weighted sum (one backward) | {plain:.3f} | 1.00 |")
    t = time_surgery_step(batch, args.steps, device, "weighted_sum", fuse=True)
    print(f"| GradientSurgeryTrainer, mode `weighted_sum`, fused (one gradient) | {t:.3f} | {t / plain:.2f} |")
    for mode in MODES:
        t = time_surgery_step(batch, args.steps, device, mode)
        print(f"| GradientSurgeryTrainer, mode `{mode}` (two gradients) | {t:.3f} | {t / plain:.2f} |")
    inference = time_inference(device, repeats=50)
    print(f"\ninference (network + warp) per 128x128 pair: {1000 * inference:.1f} ms")


if __name__ == "__main__":
    main()
