"""Cost of one instance-optimisation step of uniGradICON in each mode, relative to vanilla IO.

Measured in one run on one machine: the time of one IO step (forward in both directions, the
gradients, the combination, the AMSGrad step) for
- ``vanilla``: one gradient of ``sim + 1.5 * GradICON`` (what plain IO does);
- ``vanilla (two gradients)``: the same sum built from two separate gradients;
- ``projected``: two gradients, projected when they conflict (rule ``random``, io_gradient_projection §2.4).

Usage: python bench/bench_io_step.py [--size 96] [--steps 3] [--threads 1] [--device cpu]
(the paper's grid is 175^3; on a CPU a smaller grid keeps the run short, the ratios are what matters).
"""

from __future__ import annotations

import argparse
import time

import torch
from machine import describe_machine, parse_device_arguments, synchronize

from monai_ext.inferers import InstanceOptimizationInferer
from monai_ext.losses import GradICONLoss, LNCCLoss
from monai_ext.networks import unigradicon_network
from monai_ext.objectives import InverseConsistentObjective
from monai_ext.surgery import GradientSurgery

MODES = {
    "vanilla (fused, one gradient)": ("weighted_sum", True),
    "vanilla (two gradients)": ("weighted_sum", False),
    "projected (IO-GP)": ("random", False),
}


def time_mode(net, pair, steps: int, surgery: str, fused: bool, device: torch.device) -> float:
    objective = InverseConsistentObjective(LNCCLoss(5.0), GradICONLoss(sampling="sparse"))
    inferer = InstanceOptimizationInferer(
        objective,
        steps=steps,
        optimizer="amsgrad",
        learning_rate=2e-5,
        weight_decay=1e-3,
        surgery=GradientSurgery.from_mode(surgery, weight=1.5),
        progress=False,
        fuse_weighted_sum=fused,
    )
    inferer(pair, net)  # warm-up (and first-call allocations)
    synchronize(device)
    start = time.perf_counter()
    inferer(pair, net)
    synchronize(device)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=3)
    args, device = parse_device_arguments(parser)
    torch.manual_seed(0)
    net = unigradicon_network(input_shape=None).to(device).eval()
    pair = torch.rand(1, 2, args.size, args.size, args.size, device=device)
    print(f"machine: {describe_machine(device)}")
    print(f"uniGradICON at {args.size}^3, batch 1, {args.steps} timed IO steps per mode (+ a warm-up run)\n")
    results = {name: time_mode(net, pair, args.steps, s, f, device) for name, (s, f) in MODES.items()}
    reference = results["vanilla (fused, one gradient)"]
    print("| IO mode | seconds per step | relative to vanilla IO |")
    print("|---|---|---|")
    for name, t in results.items():
        print(f"| {name} | {t:.2f} | {t / reference:.2f} |")


if __name__ == "__main__":
    main()
