"""GradICON losses benchmark: LNCC and the GradICON regulariser against icon_registration and MONAI.

Measures, in one run on one machine, forward + backward of
- LNCC, Gaussian window sigma = 5 voxels: ``monai_ext.losses.LNCCLoss`` vs
  ``icon_registration.losses.LNCC(5)`` vs MONAI's ``LocalNormalizedCrossCorrelationLoss``
  (``kernel_type="gaussian"``; MONAI's Gaussian has std ``kernel_size / 3``: kernel 21 covers
  the same 21-voxel window, kernel 15 has the same std 5);
- the GradICON regulariser (dense sample points, delta = 1e-3):
  ``monai_ext.losses.GradICONLoss`` vs ``icon_registration.losses.GradientICON.compute_gradient_icon_loss``
  on ICON's map functions of the same displacement fields;
on one volume (default 160 x 192 x 224, batch 1, float32), gradients w.r.t. the moving image
(LNCC) and both displacement fields (GradICON).

Time: every case is built in one process and, after a warm-up run each, the runs alternate over
the cases ``--repeats`` times (ours, theirs, ours, ...), so that a change of machine load hits all
alike; the table gives the median and the range, the ratios are those of the medians. Peak memory:
each case once more in its own process, the rise of the peak resident set size (``ru_maxrss``)
during one run over its value once the inputs exist (CPU), or ``torch.cuda.max_memory_allocated``
minus the inputs (GPU).

Usage: python bench/bench_gradicon_losses.py [--size 160 192 224] [--repeats 3] [--threads 2] [--device cpu] [--write]
(``--write`` puts the table into bench/README.md as the section "GradICON losses").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from machine import code_commit, describe_machine, synchronize
from readme_section import write_readme_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## GradICON losses"
CASES = {
    "lncc_ours": "LNCC sigma 5: monai_ext LNCCLoss",
    "lncc_icon": "LNCC sigma 5: icon_registration LNCC(5)",
    "lncc_monai21": "LNCC: MONAI LocalNormalizedCrossCorrelationLoss, gaussian, kernel 21 (std 7)",
    "lncc_monai15": "LNCC: MONAI LocalNormalizedCrossCorrelationLoss, gaussian, kernel 15 (std 5)",
    "gradicon_ours": "GradICON regulariser: monai_ext GradICONLoss (dense)",
    "gradicon_icon": "GradICON regulariser: icon_registration GradientICON",
}


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _inputs(case: str, size: tuple[int, ...], device: torch.device):
    generator = torch.Generator().manual_seed(0)
    if case.startswith("lncc"):
        fixed = torch.rand((1, 1) + size, generator=generator).to(device)
        moving = torch.rand((1, 1) + size, generator=generator).to(device).requires_grad_()
        return moving, fixed
    # smooth-ish displacement fields of a few voxels
    low = tuple(max(n // 16, 2) for n in size)
    fields = []
    for _ in range(2):
        coarse = 3.0 * torch.randn((1, len(size)) + low, generator=generator)
        fields.append(torch.nn.functional.interpolate(coarse, size=size, mode="trilinear", align_corners=True))
    return tuple(f.to(device).requires_grad_() for f in fields)


def _loss_function(case: str, size: tuple[int, ...], device: torch.device):
    if case == "lncc_ours":
        from monai_ext.losses import LNCCLoss

        return LNCCLoss(sigma=5)
    if case == "lncc_icon":
        from icon_registration.losses import LNCC

        return LNCC(5)
    if case.startswith("lncc_monai"):
        from monai.losses import LocalNormalizedCrossCorrelationLoss

        return LocalNormalizedCrossCorrelationLoss(
            spatial_dims=len(size), kernel_size=int(case[len("lncc_monai") :]), kernel_type="gaussian"
        ).to(device)
    if case == "gradicon_ours":
        from monai_ext.losses import GradICONLoss

        return GradICONLoss()
    if case == "gradicon_icon":
        from icon_registration.losses import GradientICON
        from icon_registration.network_wrappers import FunctionFromVectorField

        scale = torch.tensor([n - 1 for n in size], device=device, dtype=torch.float32).reshape(1, -1, 1, 1, 1)

        def icon_map(ddf):  # ICON's map function of our voxel DDF ([0, 1] displacement)
            module = FunctionFromVectorField(lambda image_a, image_b: ddf / scale)
            module.assign_identity_map((1, 1) + size)
            return module.to(device)(None, None)

        model = GradientICON(None, None, 1.0)
        model.assign_identity_map((1, 1) + size)
        model = model.to(device)
        return lambda ddf_ab, ddf_ba: model.compute_gradient_icon_loss(icon_map(ddf_ab), icon_map(ddf_ba))
    raise ValueError(f"unknown case {case!r}; valid: {sorted(CASES)}")


def _step(loss_fn, inputs, device: torch.device) -> float:
    for x in inputs:
        x.grad = None
    torch.manual_seed(0)  # the same sample-point perturbation for ours and ICON's (one randn each)
    loss = loss_fn(*inputs)
    loss.backward()
    synchronize(device)
    return float(loss)


def peak_memory(case: str, size: tuple[int, ...], device: torch.device) -> dict:
    """One run of one case in this (fresh) process: its loss value and peak memory above the inputs."""
    torch.manual_seed(0)
    loss_fn = _loss_function(case, size, device)
    inputs = _inputs(case, size, device)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device) if device.type == "cuda" else _peak_bytes(device)
    value = _step(loss_fn, inputs, device)
    return {"case": case, "value": value, "peak_mib": (_peak_bytes(device) - base) / 2**20}


def interleaved_times(cases: list[str], size: tuple[int, ...], repeats: int, device: torch.device) -> dict:
    """Every case in this process; a warm-up run each, then ``repeats`` rounds over the cases."""
    built = {}
    for case in cases:
        torch.manual_seed(0)
        built[case] = (_loss_function(case, size, device), _inputs(case, size, device))
    values = {case: _step(fn, inputs, device) for case, (fn, inputs) in built.items()}
    times: dict[str, list[float]] = {case: [] for case in cases}
    for _ in range(repeats):
        for case, (fn, inputs) in built.items():
            start = time.perf_counter()
            _step(fn, inputs, device)
            times[case].append(time.perf_counter() - start)
    return {"values": values, "times": times}


def _table(results: dict, memory: dict, args: argparse.Namespace, device: torch.device, load: list[float]) -> str:
    size = tuple(args.size)
    median = {case: statistics.median(t) for case, t in results["times"].items()}
    lines = [
        SECTION,
        "",
        f"`python bench/bench_gradicon_losses.py --size {' '.join(map(str, size))} --repeats {args.repeats} "
        f"--threads {args.threads} --device {device.type} --write`: forward + backward on one "
        f"{'x'.join(map(str, size))} volume, batch 1, float32; gradients w.r.t. the moving image (LNCC) and "
        f"both displacement fields (GradICON). Time: every case built in one process, a warm-up run each, then "
        f"{args.repeats} rounds alternating over the cases; median and range. Memory: peak "
        f"{'GPU memory allocated' if device.type == 'cuda' else 'resident set size'} above the inputs, each case "
        f"in its own process. Machine: {describe_machine(device)}; commit {code_commit()}; 1-minute load average "
        f"{load[0]:.1f} at the start, {load[1]:.1f} at the end. Ratios are ours / theirs (medians), in this one run.",
        "",
        "| case | loss value | median time (s) | range (s) | peak memory (MiB) |",
        "|---|---|---|---|---|",
    ]
    for case, t in results["times"].items():
        peak = memory.get(case, {}).get("peak_mib")
        lines.append(
            f"| {CASES[case]} | {results['values'][case]:.6f} | {median[case]:.2f} | {min(t):.2f} - {max(t):.2f} | "
            f"{'-' if peak is None else f'{peak:.0f}'} |"
        )
    lines.append("")
    for ours, theirs in (
        ("lncc_ours", "lncc_icon"),
        ("lncc_ours", "lncc_monai21"),
        ("lncc_ours", "lncc_monai15"),
        ("gradicon_ours", "gradicon_icon"),
    ):
        if ours in median and theirs in median:
            line = (
                f"- {CASES[ours].split(':')[0]}, ours / {CASES[theirs].split(':', 1)[1].strip()}: time "
                f"**{median[ours] / median[theirs]:.2f}x**"
            )
            if ours in memory and theirs in memory:
                line += f", peak memory {memory[ours]['peak_mib'] / max(memory[theirs]['peak_mib'], 1e-9):.2f}x"
            if "icon" in theirs:  # the same definition (MONAI's loss is the negated LNCC, other windows)
                value_ours, value_theirs = results["values"][ours], results["values"][theirs]
                line += f"; loss values differ by {abs(value_ours - value_theirs) / abs(value_theirs):.1e} (relative)"
            lines.append(line)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=3, default=[160, 192, 224])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--no_memory", action="store_true", help="skip the per-case memory processes")
    parser.add_argument("--write", action="store_true", help="put the results into bench/README.md")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one case's memory, print JSON
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    size = tuple(args.size)
    if args.case:
        print(json.dumps(peak_memory(args.case, size, device)))
        return
    memory = {}
    for case in [] if args.no_memory else args.cases:
        command = [sys.executable, __file__, "--case", case, "--size", *map(str, size)]
        command += ["--threads", str(args.threads), "--device", args.device]
        out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout
        memory[case] = json.loads(out.strip().splitlines()[-1])
        print(f"{case}: {memory[case]}", file=sys.stderr)
    load = [os.getloadavg()[0]]
    results = interleaved_times(args.cases, size, args.repeats, device)
    load.append(os.getloadavg()[0])
    text = _table(results, memory, args, device, load)
    print(text)
    if args.write:
        write_readme_section(SECTION, text)


if __name__ == "__main__":
    main()
