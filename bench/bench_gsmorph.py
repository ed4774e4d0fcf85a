"""GSMorph benchmark: training-step cost of each gradient-surgery mode against a plain weighted-sum
step, interleaved in one process, and the inference time of one pair.

Every configuration is built once on the same network initialisation, batch and optimiser; then the
steps alternate (plain, fused, weighted_sum, gsmorph, pcgrad, gs_agr, plain, ...) so that a change of
machine load hits all of them alike. The reference is a plain VoxelMorph step with one
``(sim + lambda * reg).backward()``; every surgery mode takes two gradients (two backward passes
through the retained graph), the fused ``weighted_sum`` one. The section of bench/README.md reports
the median and spread of each and the ratios of the medians.

Usage: python bench/bench_gsmorph.py [--batch_size 32] [--rounds 5] [--threads 2] [--write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from machine import code_commit, describe_machine, parse_device_arguments, synchronize
from readme_section import write_readme_section

from monai_ext.engines import GradientSurgeryTrainer
from monai_ext.losses import GradientSmoothnessLoss
from monai_ext.networks import GSMorphUNet
from monai_ext.spatial import warp_image

SECTION = "## GSMorph: training-step cost"
MODES = ("weighted_sum", "gsmorph", "pcgrad", "gs_agr")
WEIGHT = 0.01  # lambda of the plain step and of the weighted-sum modes
LEARNING_RATE = 5e-3


def _batch(batch_size: int, size: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    fixed = torch.rand(batch_size, 1, size, size, generator=g)
    moving = torch.roll(fixed, shifts=(2, -3), dims=(2, 3)) + 0.05 * torch.rand(batch_size, 1, size, size, generator=g)
    return {"fixed_image": fixed.to(device), "moving_image": moving.to(device)}


def plain_step(batch: dict[str, torch.Tensor], device: torch.device) -> Callable[[], None]:
    """VoxelMorph's step: one backward of ``sim + lambda * reg``."""
    torch.manual_seed(0)
    net = GSMorphUNet().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    sim_loss, reg_loss = torch.nn.MSELoss(), GradientSmoothnessLoss()
    fixed, moving = batch["fixed_image"], batch["moving_image"]

    def step() -> None:
        opt.zero_grad()
        ddf = net(torch.cat([moving, fixed], 1))
        loss = sim_loss(warp_image(moving, ddf), fixed) + WEIGHT * reg_loss(ddf)
        loss.backward()
        opt.step()

    return step


def surgery_step(batch: dict[str, torch.Tensor], device: torch.device, mode: str, fuse: bool) -> Callable[[], None]:
    """One iteration of ``GradientSurgeryTrainer`` in ``mode``."""
    torch.manual_seed(0)
    net = GSMorphUNet().to(device)
    trainer = GradientSurgeryTrainer(
        device=device,
        max_epochs=1,
        train_data_loader=[batch],
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), lr=LEARNING_RATE),
        similarity_loss=torch.nn.MSELoss(),
        regularization_loss=GradientSmoothnessLoss(),
        surgery=mode,
        regularization_weight=WEIGHT,
        fuse_weighted_sum=fuse,
        decollate=False,
    )
    return lambda: trainer._iteration(trainer, batch)


def time_inference(device: torch.device, repeats: int) -> float:
    net = GSMorphUNet().to(device).eval()
    pair = _batch(1, 128, device)
    x = torch.cat([pair["moving_image"], pair["fixed_image"]], 1)
    with torch.inference_mode():
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
    parser.add_argument("--rounds", type=int, default=5, help="alternations of every configuration")
    parser.add_argument("--write", action="store_true", help="write the section of bench/README.md")
    args, device = parse_device_arguments(parser)
    batch = _batch(args.batch_size, 128, device)
    steps = {
        "plain": ("plain weighted sum, one `(sim + lambda reg).backward()` (VoxelMorph)", plain_step(batch, device))
    }
    steps["fused"] = (
        "GradientSurgeryTrainer `weighted_sum`, fused (one gradient)",
        surgery_step(batch, device, "weighted_sum", fuse=True),
    )
    for mode in MODES:
        steps[mode] = (
            f"GradientSurgeryTrainer `{mode}` (two gradients)",
            surgery_step(batch, device, mode, fuse=False),
        )
    for _, step in steps.values():  # warm-up
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for name, (_, step) in steps.items():
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    load.append(os.getloadavg()[0])
    inference = time_inference(device, repeats=50)
    median = {name: statistics.median(t) for name, t in times.items()}
    rows = "\n".join(
        f"| {label} | {median[name]:.3f} | {min(times[name]):.3f} - {max(times[name]):.3f} | "
        f"{median[name] / median['plain']:.2f} |"
        for name, (label, _) in steps.items()
    )
    worst = max(MODES[1:], key=lambda mode: median[mode])
    command = (
        f"python bench/bench_gsmorph.py --batch_size {args.batch_size} --rounds {args.rounds} "
        f"--threads {args.threads} --device {device.type} --write"
    )
    text = f"""{SECTION} of each surgery mode, inference time

`{command}`:
the GSMorph U-Net, one batch of {args.batch_size} pairs of 128x128 images, MSE + {WEIGHT:g} x gradient smoothness, Adam;
one step = forward, gradient(s), combination, optimiser step. Every configuration starts from the same
initialisation; after a warm-up step each, the steps alternate over the configurations, {args.rounds} rounds.
Machine: {describe_machine(device)}; commit {code_commit()}; 1-minute load average {load[0]:.1f} at the start,
{load[1]:.1f} at the end.

| training step | median (s) | range (s) | median / plain |
|---|---|---|---|
{rows}

- surgery step / plain weighted-sum step: **{median["gsmorph"] / median["plain"]:.2f}x** for `gsmorph` (goal <= 1.5x);
  the dearest of the surgery modes, `{worst}`, {median[worst] / median["plain"]:.2f}x.
- The surgery modes cost a second backward pass through the retained graph (two gradients where the plain step
  takes one); the combination itself (per-layer cosines, projections) is the spread between `weighted_sum`
  (two gradients) and the other modes.

Inference (network + warp, batch 1, eval mode, `inference_mode`) per 128x128 pair: {1000 * inference:.1f} ms.
"""
    print(text)
    if args.write:
        write_readme_section(SECTION, text)


if __name__ == "__main__":
    main()
