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

Each case runs in its own process: time is the median of ``--repeats`` runs after one warm-up
run; peak memory is the rise of the process's peak resident set size (``ru_maxrss``) during
the warm-up run over its value once the inputs exist (CPU), or ``torch.cuda.max_memory_allocated``
minus the inputs (GPU).

Usage: python bench/bench_gradicon_losses.py [--size 160 192 224] [--repeats 3] [--device cpu] [--write]
(``--write`` puts the table into bench/README.md as the section "GradICON losses").
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from machine import describe_machine, synchronize
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


def run_case(case: str, size: tuple[int, ...], repeats: int, device: torch.device) -> dict:
    """One case in this process: warm-up run (peak memory), then ``repeats`` timed runs."""
    torch.manual_seed(0)
    loss_fn = _loss_function(case, size, device)
    inputs = _inputs(case, size, device)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device) if device.type == "cuda" else _peak_bytes(device)

    def step() -> float:
        for x in inputs:
            x.grad = None
        loss = loss_fn(*inputs)
        loss.backward()
        synchronize(device)
        return float(loss)

    start = time.perf_counter()
    value = step()
    first = time.perf_counter() - start
    peak = _peak_bytes(device) - base
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {
        "case": case,
        "value": value,
        "first_s": first,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "peak_mib": peak / 2**20,
    }


def _table(results: list[dict], size: tuple[int, ...], repeats: int, device: torch.device) -> str:
    by_case = {r["case"]: r for r in results}
    timing = "one run after a warm-up run" if repeats == 1 else f"median of {repeats} runs after a warm-up run"
    lines = [
        SECTION,
        "",
        f"`python bench/bench_gradicon_losses.py --size {' '.join(map(str, size))} --repeats {repeats} "
        f"--device {device.type}`: forward + backward on one {'x'.join(map(str, size))} volume, batch 1, "
        f"float32. Machine: {describe_machine(device)}. Time: {timing}; memory: "
        f"peak {'GPU memory allocated' if device.type == 'cuda' else 'resident set size'} above the inputs, "
        "each case in its own process. Ratios are ours / theirs, measured in this one run.",
        "",
        "| case | loss value | time (s) | peak memory (MiB) |",
        "|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {CASES[r['case']]} | {r['value']:.6f} | {r['median_s']:.2f} | {r['peak_mib']:.0f} |")
    lines.append("")
    for ours, theirs in (
        ("lncc_ours", "lncc_icon"),
        ("lncc_ours", "lncc_monai21"),
        ("lncc_ours", "lncc_monai15"),
        ("gradicon_ours", "gradicon_icon"),
    ):
        if ours in by_case and theirs in by_case:
            a, b = by_case[ours], by_case[theirs]
            lines.append(
                f"- {CASES[ours].split(':')[0]}, ours / {CASES[theirs].split(':', 1)[1].strip()}: time "
                f"{a['median_s'] / b['median_s']:.2f}x, peak memory {a['peak_mib'] / max(b['peak_mib'], 1e-9):.2f}x"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=3, default=[160, 192, 224])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--write", action="store_true", help="put the results into bench/README.md")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args()
    device = torch.device(args.device)
    size = tuple(args.size)
    if args.case:
        print(json.dumps(run_case(args.case, size, args.repeats, device)))
        return
    results = []
    for case in args.cases:
        command = [
            sys.executable,
            __file__,
            "--case",
            case,
            "--size",
            *map(str, size),
            "--repeats",
            str(args.repeats),
            "--device",
            args.device,
        ]
        out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout
        result = json.loads(out.strip().splitlines()[-1])
        print(f"{case}: {result}", file=sys.stderr)
        results.append(result)
    text = _table(results, size, args.repeats, device)
    print(text)
    if args.write:
        write_readme_section(SECTION, text)


if __name__ == "__main__":
    main()
