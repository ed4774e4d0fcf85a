"""Where one iteration of DIO's solver spends its time: a ``torch.profiler`` breakdown by operator.

One pyramid level of 16-channel features (``bench_dio_solver.feature_pyramids``, finest level,
``--size`` voxels per side), a single-level ``MultiScaleSolver`` run for ``--iterations``
iterations under the profiler, per transform model (Adam, MSE, no early stopping). Reported: the
wall time per iteration with and without the profiler, and the operators with the most self CPU
time, in milliseconds per iteration and as a share of the iteration. A "pass over the volume" is
the time of one elementwise operation reading and writing a 16-channel volume of this size
(``torch.add`` of two such tensors), measured in the same run, so the table also reads as "how many
passes over the features each operator costs".

Usage: python bench/bench_dio_iteration_profile.py [--size 64] [--channels 16] [--iterations 10]
[--threads 2] [--write]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

import torch
from bench_dio_solver import feature_pyramids
from machine import code_commit, describe_machine
from readme_section import write_readme_section
from torch.profiler import ProfilerActivity, profile

from monai_ext.solvers import MultiScaleSolver

SECTION = "## DIO solver iteration profile"
TRANSFORMS = ("freeform", "diffeomorphic")
TOP = 8


def seconds_per_iteration(solver: MultiScaleSolver, fixed: torch.Tensor, moving: torch.Tensor) -> float:
    start = time.perf_counter()
    solver([fixed], [moving])
    return (time.perf_counter() - start) / solver.iterations[0]


def one_pass(volume: torch.Tensor, repeats: int = 20) -> float:
    """Seconds of one elementwise pass (read two volumes, write one) over ``volume``'s size."""
    other = torch.empty_like(volume)
    torch.add(volume, volume, out=other)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.add(volume, volume, out=other)
    return (time.perf_counter() - start) / repeats


def profile_transform(transform: str, fixed: torch.Tensor, moving: torch.Tensor, iterations: int) -> dict:
    settings = {"transform": transform, "optimizer": "adam", "convergence_eps": 0.0}
    MultiScaleSolver(iterations=(2,), **settings)([fixed], [moving])  # warm-up
    solver = MultiScaleSolver(iterations=(iterations,), **settings)
    plain = seconds_per_iteration(solver, fixed, moving)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        profiled = seconds_per_iteration(solver, fixed, moving)
    self_us: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        self_us[event.key] += event.self_cpu_time_total
    total_us = sum(self_us.values())
    top = sorted(self_us.items(), key=lambda item: -item[1])[:TOP]
    return {
        "plain_s": plain,
        "profiled_s": profiled,
        "top": [(name, us / 1e3 / iterations, us / total_us) for name, us in top],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="write the section of bench/README.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ff, fm = feature_pyramids(args.size, args.channels, torch.device("cpu"), False)
    fixed, moving = ff[-1], fm[-1]
    load = [os.getloadavg()[0]]
    pass_s = one_pass(fixed)
    results = {t: profile_transform(t, fixed, moving, args.iterations) for t in TRANSFORMS}
    load.append(os.getloadavg()[0])
    blocks = []
    for transform, result in results.items():
        rows = "\n".join(
            f"| `{name}` | {ms:.1f} | {100 * share:.0f} % | {ms / 1e3 / pass_s:.1f} |"
            for name, ms, share in result["top"]
        )
        blocks.append(
            f"""**{transform}**: {1e3 * result["plain_s"]:.1f} ms per iteration ({1e3 * result["profiled_s"]:.1f} ms \
under the profiler), {result["plain_s"] / pass_s:.0f} passes over the features.

| operator (self CPU time) | ms per iteration | share | passes |
|---|---|---|---|
{rows}
"""
        )
    text = f"""{SECTION}

`python bench/bench_dio_iteration_profile.py --size {args.size} --channels {args.channels} --iterations \
{args.iterations} --threads {args.threads} --write`: one level of {args.channels}-channel features of {args.size}^3
voxels, Adam, MSE, {args.iterations} profiled iterations after a warm-up. One pass over the features (an elementwise
add of two {args.channels} x {args.size}^3 volumes into a third): {1e3 * pass_s:.2f} ms. Machine:
{describe_machine(torch.device("cpu"))}; commit {code_commit()}; 1-minute load average {load[0]:.1f} at the start,
{load[1]:.1f} at the end.

{chr(10).join(blocks)}"""
    print(text)
    if args.write:
        write_readme_section(SECTION, text)


if __name__ == "__main__":
    main()
