"""One uniGradICON instance-optimisation step: ours (vanilla and projected) against the ``unigradicon``
package, same weights, same pair.

The peer's step is the loop of ``icon_registration.itk_wrapper.finetune_execute`` (what
``unigradicon-register --io_iterations N`` runs): the ``GradientICONSparse`` module (LNCC sigma 5 +
1.5 x sparse GradICON, both directions) forward, backward, Adam step. Ours is
``InstanceOptimizationInferer`` with the same objective (``InverseConsistentObjective(LNCCLoss(5),
GradICONLoss("sparse"))``, weight 1.5): vanilla (one gradient of the weighted sum) and projected
(IO-GP: two gradients, projected when they conflict). Our per-step time is
``(T(1 + steps) - T(1)) / steps`` of whole inferer calls, which removes the network copy and the
final prediction that each call also does; the peer's steps are timed directly.

The runs alternate (peer, vanilla, projected, ...). The section of bench/README.md reports medians,
their spread and the ratios.

Usage: python bench/bench_io_step_vs_unigradicon.py [--size 96] [--steps 2] [--repeats 3] [--write]
(in the environment of bench/install.sh).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from bench_unigradicon_forward import random_weights_, smooth_pair
from machine import code_commit, describe_machine
from readme_section import write_readme_section

from monai_ext.inferers import InstanceOptimizationInferer
from monai_ext.losses import GradICONLoss, LNCCLoss
from monai_ext.networks import load_icon_state_dict, unigradicon_network
from monai_ext.objectives import InverseConsistentObjective
from monai_ext.surgery import GradientSurgery

SECTION = "## uniGradICON instance-optimisation step"
LEARNING_RATE = 2e-5  # uniGradICON's finetune learning rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="write the section of bench/README.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import unigradicon  # the peer (bench/install.sh)

    theirs = unigradicon.make_network([1, 1, args.size, args.size, args.size], include_last_step=True)
    random_weights_(theirs.regis_net)
    theirs.eval()
    ours = load_icon_state_dict(unigradicon_network(input_shape=None), theirs.regis_net.state_dict()).eval()
    moving, fixed = smooth_pair(args.size)
    pair = torch.cat([moving, fixed], dim=1)

    def their_steps(steps: int) -> float:
        optimizer = torch.optim.Adam(theirs.parameters(), lr=LEARNING_RATE)
        saved = {k: v.clone() for k, v in theirs.state_dict().items()}
        start = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad()
            theirs(moving, fixed)[0].backward()
            optimizer.step()
        elapsed = time.perf_counter() - start
        theirs.load_state_dict(saved)
        return elapsed / steps

    def our_steps(rule: str, fused: bool):
        def inferer(steps: int) -> InstanceOptimizationInferer:
            return InstanceOptimizationInferer(
                InverseConsistentObjective(LNCCLoss(5.0), GradICONLoss(sampling="sparse")),
                steps=steps,
                optimizer="adam",
                learning_rate=LEARNING_RATE,
                surgery=GradientSurgery.from_mode(rule, weight=1.5),
                progress=False,
                fuse_weighted_sum=fused,
            )

        def timed(steps: int) -> float:
            start = time.perf_counter()
            inferer(steps)(pair, ours)
            return time.perf_counter() - start

        return lambda steps: (timed(1 + steps) - timed(1)) / steps

    runs = {
        "theirs": their_steps,
        "vanilla": our_steps("weighted_sum", True),
        "projected": our_steps("random", False),
    }
    for run in runs.values():  # warm-up
        run(1)
    times: dict[str, list[float]] = {name: [] for name in runs}
    load = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name].append(run(args.steps))
    load.append(os.getloadavg()[0])
    median = {name: statistics.median(t) for name, t in times.items()}
    labels = {
        "theirs": "unigradicon 1.0.6 (finetune_execute's step: GradientICONSparse forward, backward, Adam)",
        "vanilla": "monai_ext vanilla IO (one gradient of LNCC + 1.5 GradICON)",
        "projected": "monai_ext projected IO (IO-GP: two gradients, projected on conflict)",
    }
    rows = "\n".join(
        f"| {labels[name]} | {median[name]:.2f} | {min(times[name]):.2f} - {max(times[name]):.2f} |" for name in runs
    )
    text = f"""{SECTION}

`python bench/bench_io_step_vs_unigradicon.py --size {args.size} --steps {args.steps} --repeats {args.repeats} --write`
(in the environment of `bench/install.sh`): one {args.size}^3 pair, the uniGradICON architecture with the same random
weights in both, Adam at lr {LEARNING_RATE:g}; seconds per step, {args.repeats} alternated measurements of
{args.steps} steps after a warm-up. Machine: {describe_machine(torch.device("cpu"))}; commit {code_commit()};
1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end.

| IO step | median (s) | range (s) |
|---|---|---|
{rows}

- vanilla, ours / unigradicon: **{median["vanilla"] / median["theirs"]:.2f}x** (goal <= 0.5x)
- projected, ours / unigradicon's vanilla step: **{median["projected"] / median["theirs"]:.2f}x** (goal <= 0.6x)
"""
    print(text)
    if args.write:
        write_readme_section(SECTION, text)


if __name__ == "__main__":
    main()
