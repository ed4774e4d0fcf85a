"""DIO optimisation layer: cost per pair and peak memory against the iteration count (dio.md §3.2, §4.6).

§3.2 differentiates through the solver's optimum with the Jacobian-free backward: nothing of the
iterations is kept for the backward pass, so memory should stay flat as the iteration count grows,
where differentiating through every iteration ("unrolled") keeps one graph per iteration.
§4.6 / Table 3 reports the time of a full multi-scale optimisation per pair.

Two measurements on random smooth feature pyramids (``--channels`` channels, scales 4, 2, 1 of a
``--size``^3 volume; the moving pyramid is the fixed one warped by a smooth random displacement of
a few voxels; every level a leaf tensor with ``requires_grad``; batch 1, float32):

1. Forward (the solver) + backward (a fixed random linear loss on every level's displacement,
   back to the features) for ``--base_iterations`` (200, 100, 50 per level, coarse -> fine)
   scaled by each of ``--factors`` (totals 7, 35, 70, 175, 350), with the Jacobian-free backward
   and the unrolled reference (the latter up to ``--unrolled_max_total`` iterations). Early
   stopping is off (``convergence_eps = 0``), so every level runs exactly the iterations asked.
   Each configuration runs in a fresh process: a warm-up on an 8^3 pyramid, then one timed run.
   Peak memory is, on CPU (torch has no CPU allocator statistics), the peak resident set size
   (``VmHWM``, reset to the current size through Linux's ``/proc/self/clear_refs`` once the
   features exist) minus the resident set size at that moment, with glibc's mmap threshold fixed at
   128 KiB so that freed tensors leave the resident set (``ru_maxrss`` minus its value once the
   features exist where the reset is unavailable: it cannot see a peak below an earlier one); on
   GPU ``torch.cuda.max_memory_allocated`` minus the memory allocated once the features exist.
   The "graph kept" column is device independent: the bytes of the tensors the autograd graph
   holds for the backward pass when the forward returns (found with
   ``torch.autograd.graph.saved_tensors_hooks``; the input features are not counted).
2. Time per iteration of every transform model x optimiser (forward only, features without
   gradients), per pyramid level (one single-level solver per level, ``--timing_iterations`` timed
   iterations after one warm-up iteration), and the time of the default schedule derived from it.

Usage: python bench/bench_dio_solver.py [--size 64] [--channels 16] [--factors 0.02 0.1 0.2 0.5 1]
    [--unrolled_max_total 175] [--timing_iterations 5] [--threads 1] [--device cpu|cuda] [--plot PATH] [--write]
(``--write`` puts the tables into bench/README.md as the section "DIO solver: ...").
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import subprocess
import sys
import time
import weakref
from pathlib import Path

import torch
from machine import add_device_arguments, code_commit, describe_machine, synchronize
from readme_section import write_readme_section

from monai_ext.networks import build_feature_network
from monai_ext.solvers import MultiScaleSolver
from monai_ext.solvers.transform_models import gaussian_smooth
from monai_ext.spatial import warp_image

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## DIO solver: memory and time against iterations (dio.md §3.2, §4.6)"
SCALES = (4, 2, 1)
TRANSFORMS = ("freeform", "diffeomorphic", "svf", "affine")
OPTIMIZERS = ("sgd", "adam")


def _status_bytes(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> int | None:
    """Reset the peak resident set size to the current one (Linux ``clear_refs`` 5); the current RSS.

    None where this is impossible; the caller then falls back on ``ru_maxrss``, which cannot be
    reset (a peak lower than an earlier one in the process is then not seen).
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_bytes("VmRSS")
    except OSError:
        return None


def peak_rss_bytes(resettable: bool) -> int:
    if resettable:
        return _status_bytes("VmHWM")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def feature_pyramids(size: int, channels: int, device: torch.device, requires_grad: bool, seed: int = 0):
    """Fixed and moving pyramids ``[(1, C, ceil(size / s)^3) for s in (4, 2, 1)]``.

    Fixed: white noise smoothed by a Gaussian (sigma 2 voxels), unit variance. Moving: the fixed
    volume warped by a smooth random displacement (about 2 voxels root mean square). Pyramids of
    both by the parameter-free scale space (``IntensityPyramid``), so the levels agree.
    """
    generator = torch.Generator().manual_seed(seed)
    shape = (size,) * 3
    fixed = gaussian_smooth(torch.randn((1, channels, *shape), generator=generator), 2.0)
    fixed = fixed / fixed.std()
    coarse = torch.randn((1, 3, 4, 4, 4), generator=generator)
    ddf = torch.nn.functional.interpolate(coarse, size=shape, mode="trilinear", align_corners=True)
    ddf = 2.0 * ddf / ddf.pow(2).mean().sqrt()
    moving = warp_image(fixed, ddf)
    pyramid = build_feature_network("intensity", scales=SCALES)
    out = []
    for volume in (fixed, moving):
        levels = [lvl.detach().to(device).contiguous() for lvl in pyramid(volume)]
        out.append([lvl.requires_grad_(requires_grad) for lvl in levels])
    return out


def _graph_bytes(run, inputs) -> tuple[object, int]:
    """Run ``run()`` recording the tensors autograd saves; bytes of those still alive afterwards."""
    saved: list[weakref.ref] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(weakref.ref(t))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run()
    gc.collect()
    skip = {t.untyped_storage().data_ptr() for t in inputs}
    alive: dict[tuple[int, int], int] = {}
    for ref in saved:
        t = ref()
        if t is not None and t.untyped_storage().data_ptr() not in skip:
            alive[(t.data_ptr(), t.numel())] = t.numel() * t.element_size()
    return out, sum(alive.values())


def _forward_backward(ff, fm, iterations, backward, device) -> tuple[float, float, int]:
    solver = MultiScaleSolver(iterations=iterations, backward=backward, convergence_eps=0.0)
    generator = torch.Generator().manual_seed(1)
    synchronize(device)
    start = time.perf_counter()
    result, kept = _graph_bytes(lambda: solver(ff, fm), ff + fm)
    synchronize(device)
    middle = time.perf_counter()
    weights = [torch.randn(d.shape, generator=generator).to(device) for d in result.ddfs]
    loss = sum((d * w).sum() for d, w in zip(result.ddfs, weights))
    loss.backward()
    synchronize(device)
    end = time.perf_counter()
    if any(f.grad is None or not torch.isfinite(f.grad).all() for f in ff + fm):
        raise RuntimeError(f"{backward}: a feature level received no (finite) gradient.")
    return middle - start, end - middle, kept


def run_memory_case(size: int, channels: int, iterations: tuple[int, ...], backward: str, device: torch.device) -> dict:
    """One configuration in this (fresh) process: warm-up on 8^3, then one measured run."""
    torch.manual_seed(0)
    small = feature_pyramids(8, channels, device, True)
    _forward_backward(*small, (1, 1, 1), backward, device)
    del small
    ff, fm = feature_pyramids(size, channels, device, True)
    gc.collect()
    synchronize(device)
    resettable = False
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        current = reset_peak_rss()
        resettable = current is not None
        base = current if resettable else peak_rss_bytes(False)
    forward_s, backward_s, kept = _forward_backward(ff, fm, iterations, backward, device)
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_rss_bytes(resettable)) - base
    return {
        "memory_measure": "cuda" if device.type == "cuda" else ("vmhwm" if resettable else "ru_maxrss"),
        "backward": backward,
        "iterations": list(iterations),
        "total": sum(iterations),
        "forward_s": forward_s,
        "backward_s": backward_s,
        "peak_mib": peak / 2**20,
        "graph_mib": kept / 2**20,
    }


def time_transforms(
    size: int, channels: int, timing_iterations: int, base_iterations, device: torch.device
) -> list[dict]:
    """Seconds per iteration of every transform x optimiser at every level (forward only)."""
    ff, fm = feature_pyramids(size, channels, device, False)
    rows = []
    for transform in TRANSFORMS:
        for optimizer in OPTIMIZERS:
            per_level = []
            for level in range(len(SCALES)):
                # coarse levels are cheap: time more iterations there for a steadier number
                count = timing_iterations * (len(SCALES) - level) ** 2
                settings = {"transform": transform, "optimizer": optimizer, "convergence_eps": 0.0}
                MultiScaleSolver(iterations=(1,), **settings)([ff[level]], [fm[level]])  # warm-up
                solver = MultiScaleSolver(iterations=(count,), **settings)
                synchronize(device)
                start = time.perf_counter()
                solver([ff[level]], [fm[level]])
                synchronize(device)
                per_level.append((time.perf_counter() - start) / count)
            schedule = sum(n * t for n, t in zip(base_iterations, per_level))
            rows.append(
                {"transform": transform, "optimizer": optimizer, "per_level_s": per_level, "schedule_s": schedule}
            )
            print(f"{transform}/{optimizer}: {[f'{t * 1e3:.1f} ms' for t in per_level]}", file=sys.stderr)
    return rows


def _iterations(base: list[int], factor: float) -> tuple[int, ...]:
    return tuple(max(1, round(n * factor)) for n in base)


def _plot(results: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from monai_ext.io.atomic import atomic_write_path

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for backward, style in (("jacobian_free", "o-"), ("unrolled", "s--"), ("ift", "^:")):
        rows = [r for r in results if r["backward"] == backward]
        if not rows:
            continue
        totals = [r["total"] for r in rows]
        axes[0].plot(totals, [r["peak_mib"] for r in rows], style, label=f"{backward}: peak")
        axes[0].plot(totals, [r["graph_mib"] for r in rows], style, alpha=0.4, label=f"{backward}: graph kept")
        axes[1].plot(totals, [r["forward_s"] + r["backward_s"] for r in rows], style, label=backward)
    axes[0].set(xlabel="total iterations (3 levels)", ylabel="MiB", title="memory of forward + backward")
    axes[1].set(xlabel="total iterations (3 levels)", ylabel="seconds per pair", title="time of forward + backward")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_write_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


def _report(args, results: list[dict], timings: list[dict], device: torch.device) -> str:
    size, channels = args.size, args.channels
    measures = {r.get("memory_measure") for r in results}
    if device.type == "cuda":
        memory_kind = "peak GPU memory allocated (torch.cuda.max_memory_allocated) above the features"
    elif measures == {"vmhwm"}:
        memory_kind = (
            "peak resident set size (VmHWM, reset through /proc/self/clear_refs once the features exist) "
            "minus the resident set size at that moment, glibc's mmap threshold fixed at 128 KiB so that "
            "freed tensors leave the resident set"
        )
    else:
        memory_kind = "rise of the process's peak resident set size (ru_maxrss) above its value once the features exist"
    command = (
        f"python bench/bench_dio_solver.py --size {size} --channels {channels} --base_iterations "
        f"{' '.join(map(str, args.base_iterations))} --factors {' '.join(f'{f:g}' for f in args.factors)} "
        f"--unrolled_max_total {args.unrolled_max_total} --timing_iterations {args.timing_iterations} "
        f"--threads {args.threads} --device {device.type} --write"
    )
    lines = [
        SECTION,
        "",
        f"`{command}`",
        "",
        f"Random smooth feature pyramids, {channels} channels at scales 4, 2, 1 of a {size}^3 volume "
        f"({'x'.join(str(math.ceil(size / s)) for s in SCALES)} voxels per side), the moving one the fixed one "
        "warped by a smooth random displacement; batch 1, float32; free-form transform, SGD, MSE, no early "
        "stopping. One forward (the solver) and one backward (a fixed random linear loss on every level's "
        "displacement, back to all six feature levels) per configuration, each in a fresh process after a "
        f'warm-up on an 8^3 pyramid. Memory: {memory_kind}; "graph kept": bytes of the tensors the autograd '
        "graph holds for the backward pass when the solver returns (input features not counted). "
        f"Machine: {describe_machine(device)}; code at commit {args.commit}."
        + (
            " The two cores were shared with other jobs while this ran, so the times are indicative only."
            if device.type == "cpu"
            else ""
        ),
        "",
        "| backward | iterations per level | total | forward (s) | backward (s) | peak memory (MiB) "
        "| graph kept (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['backward']} | {', '.join(map(str, r['iterations']))} | {r['total']} | "
            f"{r['forward_s']:.2f} | {r['backward_s']:.2f} | {r['peak_mib']:.0f} | {r['graph_mib']:.1f} |"
        )
    jfb = [r for r in results if r["backward"] == "jacobian_free"]
    unr = [r for r in results if r["backward"] == "unrolled"]
    lines.append("")
    if len(jfb) > 1:
        peak = [r["peak_mib"] for r in jfb]
        kept = [r["graph_mib"] for r in jfb]
        back = [r["backward_s"] for r in jfb]
        lines.append(
            f"- Jacobian-free: peak memory {min(peak):.0f} - {max(peak):.0f} MiB from {jfb[0]['total']} to "
            f"{jfb[-1]['total']} iterations; graph kept {min(kept):.1f} - {max(kept):.1f} MiB; backward "
            f"{min(back):.2f} - {max(back):.2f} s."
        )
    if len(unr) > 1:
        slope = (unr[-1]["graph_mib"] - unr[0]["graph_mib"]) / max(unr[-1]["total"] - unr[0]["total"], 1)
        lines.append(
            f"- Unrolled: peak memory {unr[0]['peak_mib']:.0f} MiB at {unr[0]['total']} iterations, "
            f"{unr[-1]['peak_mib']:.0f} MiB at {unr[-1]['total']}; the graph grows by about {slope:.1f} MiB "
            f"per iteration of this schedule (4:2:1 iterations per level); backward "
            f"{unr[0]['backward_s']:.2f} s -> {unr[-1]['backward_s']:.2f} s. Totals above "
            f"{args.unrolled_max_total} were not run unrolled."
        )
    lines += ["", f"The plot `bench/{Path(args.plot).name}` shows both curves."]
    if not timings:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        f"Time per iteration of each transform model and optimiser, forward only (no autograd graph kept), one "
        f"single-level solver per pyramid level ({args.timing_iterations} timed iterations at the finest level, "
        f'more at the coarser ones, after one warm-up iteration); "schedule" is the time of the '
        f"{', '.join(map(str, args.base_iterations))} schedule derived from them (no early stopping, as in §4.6's "
        "Table 3: about 1.5 s per pair at 160x192x224 on one NVIDIA A6000, A.3).",
        "",
        "| transform | optimiser | "
        + " | ".join(f"ms/iteration at {math.ceil(size / s)}^3" for s in SCALES)
        + " | schedule (s) |",
        "|---|---|" + "---|" * len(SCALES) + "---|",
    ]
    for r in timings:
        per_level = " | ".join(f"{t * 1e3:.1f}" for t in r["per_level_s"])
        lines.append(f"| {r['transform']} | {r['optimizer']} | {per_level} | {r['schedule_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64, help="side of the cubic volume (finest level)")
    parser.add_argument("--channels", type=int, default=16, help="feature channels per level")
    parser.add_argument("--base_iterations", type=int, nargs="+", default=[200, 100, 50])
    parser.add_argument("--factors", type=float, nargs="+", default=[0.02, 0.1, 0.2, 0.5, 1.0])
    parser.add_argument(
        "--backwards", nargs="+", default=["jacobian_free", "unrolled"], choices=["jacobian_free", "ift", "unrolled"]
    )
    parser.add_argument(
        "--unrolled_max_total", type=int, default=175, help="largest total iteration count run unrolled"
    )
    parser.add_argument("--timing_iterations", type=int, default=5, help="timed iterations at the finest level")
    parser.add_argument("--skip_transforms", action="store_true", help="skip the transform x optimiser timing")
    add_device_arguments(parser)
    parser.add_argument("--plot", default=str(ROOT / "bench" / "dio_solver_memory.png"))
    parser.add_argument("--write", action="store_true", help="put the results into bench/README.md")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one configuration as JSON
    args = parser.parse_args()
    if len(args.base_iterations) != len(SCALES):
        parser.error(f"--base_iterations needs {len(SCALES)} values (coarse -> fine)")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.case:
        spec = json.loads(args.case)
        result = run_memory_case(args.size, args.channels, tuple(spec["iterations"]), spec["backward"], device)
        print(json.dumps(result))
        return

    args.commit = code_commit()  # the code this run imports
    results = []
    for backward in args.backwards:
        for factor in args.factors:
            iterations = _iterations(args.base_iterations, factor)
            if backward == "unrolled" and sum(iterations) > args.unrolled_max_total:
                continue
            spec = json.dumps({"iterations": iterations, "backward": backward})
            command = [
                sys.executable,
                __file__,
                "--case",
                spec,
                "--size",
                str(args.size),
                "--channels",
                str(args.channels),
                "--threads",
                str(args.threads),
                "--device",
                args.device,
            ]
            # large blocks straight from mmap, so freed memory leaves the resident set at once and the
            # resident set follows the live tensors (glibc's adaptive threshold would keep it on the heap)
            env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
            out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT, env=env).stdout
            result = json.loads(out.strip().splitlines()[-1])
            print(f"{backward} {iterations}: {result}", file=sys.stderr)
            results.append(result)
    _plot(results, Path(args.plot), f"DIO solver, {args.channels} channels, {args.size}^3, {describe_machine(device)}")
    timings = (
        []
        if args.skip_transforms
        else time_transforms(args.size, args.channels, args.timing_iterations, args.base_iterations, device)
    )
    text = _report(args, results, timings, device)
    print(text)
    if args.write:
        write_readme_section(SECTION, text)


if __name__ == "__main__":
    main()
