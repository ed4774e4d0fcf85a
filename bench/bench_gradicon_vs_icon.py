"""GradICON vs ICON: training convergence at a matched fold rate (gradicon.md §5.4, Fig. 4).

GradICON §5.4 trains the same network with the GradICON regulariser (Eq. 3) and with ICON's
``||Phi^AB o Phi^BA - Id||^2``, choosing ``lambda`` for each so that the maps are about equally
regular, and compares the dissimilarity (``1 - LNCC``) curves: GradICON converges faster
because, at the same regularity, ICON restrains the deformation more.

This benchmark repeats that on 2-D axial slices of the synthetic brains of
``data_prep.synthetic_brain`` (subjects differ by smooth random deformations):

- data: ``--num_train`` training and ``--num_test`` held-out subjects rendered on a
  ``size^3`` grid (isotropic, so the generator's partial-volume blur is isotropic), one axial
  slice each (normalised height ``--slice``); training pairs (moving != fixed) drawn at random,
  the same sequence of batches for every run; held-out pairs ``(moving k, fixed k + 1)``
  cyclically over the held-out subjects;
- network (``--network``): ``tallunet`` = one ``TallUNet2`` (default: what trains in minutes
  on two CPU cores), ``twostep`` = ``TS{Down{TallUNet2}, TallUNet2}`` (two resolutions) or
  ``stage1`` = GradICON's Stage1 (Eq. 12, three resolutions, needs ``size >= 65``); every run
  starts from the same initial weights;
- objective: ``InverseConsistentObjective`` (Eq. 13: symmetric ``1 - LNCC`` with a Gaussian
  window of std ``--sigma`` pixels) with ``GradICONLoss`` or ``ICONLoss`` (dense sample points;
  both directions in one network call unless ``--separate_directions``),
  trained by ``GradientSurgeryTrainer`` with ``surgery="weighted_sum"`` (plain
  ``sim + lambda * reg``, one fused backward pass), Adam, the same settings and number of
  iterations for every run;
- a small ``lambda`` sweep per regulariser; every ``--eval_every`` iterations the held-out
  pairs are registered (eval mode, moving -> fixed) and ``1 - LNCC`` (same sigma) and the %
  of pixels with a negative Jacobian determinant are logged.

Matching the fold rate (§5.4): every pair of runs (one per regulariser) whose final fold rates
are within a factor 1.25 is compared (else the closest pair); the final dissimilarity of each
regulariser is also interpolated (piecewise linear in ``log10(% folds + 1e-3)`` over its sweep)
at a common fold rate inside both sweeps' ranges; the closest pair is listed curve by curve.

Usage:
    python bench/bench_gradicon_vs_icon.py [--device cpu|cuda] [--network tallunet] [--size 64]
        [--iterations 120] [--gradicon_lambdas 0.0625 0.25 1] [--icon_lambdas 25 100 400]
        [--plot bench/gradicon_vs_icon.png] [--json curves.json] [--write]
    python bench/bench_gradicon_vs_icon.py --report_from curves.json [--write]

(``--write`` puts the results into bench/README.md as the section
"GradICON vs ICON convergence (GradICON §5.4)"; ``--json`` saves the curves, and
``--report_from`` rebuilds the report, plot and section from them without training.)
Deterministic on CPU for a given seed; on CUDA, grid_sample's backward accumulates with atomic
adds, so runs may differ in the last bits.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Events
from machine import describe_machine, synchronize
from readme_section import write_readme_section

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # data_prep lives next to monai_ext in the repository root
    sys.path.insert(0, str(ROOT))

from data_prep.synthetic_brain import brain_subject  # noqa: E402
from monai_ext.engines import GradientSurgeryTrainer  # noqa: E402
from monai_ext.io.atomic import atomic_write_path  # noqa: E402
from monai_ext.losses import GradICONLoss, ICONLoss, LNCCLoss  # noqa: E402
from monai_ext.metrics import negative_jacobian_fraction  # noqa: E402
from monai_ext.networks import DownsampleRegistration, TallUNet2, TwoStepRegistration, gradicon_stage1  # noqa: E402
from monai_ext.objectives import InverseConsistentObjective  # noqa: E402
from monai_ext.spatial import warp_image  # noqa: E402

__all__ = ["build_network", "make_slices", "make_batches", "train_run", "match_fold_rate", "main"]

SECTION = "## GradICON vs ICON convergence (GradICON §5.4)"
NETWORKS = ("twostep", "stage1", "tallunet")
REGULARIZERS = ("GradICON", "ICON")
FOLD_EPS = 1e-3  # % folds offset inside the log of the fold-rate axis (0 folds stays finite)
TAIL = 3  # evaluations averaged for the "last evaluations" figures
NOISE_POINTS = 6  # last evaluations whose scatter about a straight line measures the curves' noise
MATCH_RATIO = 1.25  # final fold rates (% + FOLD_EPS) within this factor count as matched


def build_network(name: str) -> torch.nn.Module:
    """The 2-D registration network ``[moving, fixed] (B, 2, H, W) -> DDF (B, 2, H, W)`` (identity at init)."""
    if name == "stage1":
        return gradicon_stage1(spatial_dims=2, in_channels=2)
    if name == "twostep":
        return TwoStepRegistration(DownsampleRegistration(TallUNet2(2, 2)), TallUNet2(2, 2))
    if name == "tallunet":
        return TallUNet2(2, 2)
    raise ValueError(f"network must be one of {NETWORKS}, got {name!r}.")


def make_slices(indices: range, size: int, height: float, deform: float, seed: int) -> torch.Tensor:
    """Axial slices ``(N, 1, size, size)`` of synthetic brains ``indices`` (``brain_subject`` on a ``size^3`` grid).

    ``height`` is the slice's normalised superior coordinate in [-1, 1] (0 = centre of the grid).
    """
    if not -1.0 <= height <= 1.0:
        raise ValueError(f"slice height must be in [-1, 1] (normalised coordinates), got {height}.")
    k = int(round((height + 1.0) / 2.0 * (size - 1)))
    images = [brain_subject((size,) * 3, seed=seed, index=i, deform=deform).image[:, :, k] for i in indices]
    return torch.from_numpy(np.stack(images)).unsqueeze(1).contiguous()


def make_batches(num_images: int, iterations: int, batch_size: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``iterations`` batches of random ordered pairs ``(moving, fixed)`` of distinct image indices."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(iterations):
        moving = rng.integers(num_images, size=batch_size)
        fixed = (moving + 1 + rng.integers(num_images - 1, size=batch_size)) % num_images
        batches.append((moving, fixed))
    return batches


class _PairBatches:
    """Iterable of pair dicts ``{"moving_image", "fixed_image"}`` ``(B, 1, H, W)`` for the trainer."""

    def __init__(self, images: torch.Tensor, batches: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.images, self.batches = images, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for moving, fixed in self.batches:
            yield {
                "moving_image": self.images[torch.from_numpy(moving)],
                "fixed_image": self.images[torch.from_numpy(fixed)],
            }


@torch.no_grad()
def evaluate(network: torch.nn.Module, moving: torch.Tensor, fixed: torch.Tensor, sigma: float) -> tuple[float, float]:
    """Held-out ``1 - LNCC`` of the warped moving images and mean % of pixels with ``det J < 0`` (moving -> fixed)."""
    was_training = network.training
    network.eval()
    ddf = network(torch.cat([moving, fixed], dim=1))
    dissimilarity = float(LNCCLoss(sigma)(warp_image(moving, ddf), fixed))
    folds = float(negative_jacobian_fraction(ddf).mean())
    network.train(was_training)
    return dissimilarity, folds


def train_run(
    regularizer: str,
    weight: float,
    initial_state: dict,
    args: argparse.Namespace,
    train_images: torch.Tensor,
    batches: list,
    test_pairs: tuple[torch.Tensor, torch.Tensor],
    device: torch.device,
) -> dict:
    """Train one network from ``initial_state`` with ``LNCC + weight * regularizer``; return its curves."""
    torch.manual_seed(args.seed)
    network = build_network(args.network).to(device)
    network.load_state_dict(initial_state)
    generator = torch.Generator(device=device).manual_seed(args.seed)  # sample-point perturbations
    reg_loss = GradICONLoss(generator=generator) if regularizer == "GradICON" else ICONLoss(generator=generator)
    objective = InverseConsistentObjective(
        LNCCLoss(args.sigma), reg_loss, batch_directions=not args.separate_directions
    )
    optimizer = torch.optim.Adam(network.parameters(), lr=args.lr)
    trainer = GradientSurgeryTrainer(
        device=device,
        max_epochs=1,
        train_data_loader=_PairBatches(train_images, batches),
        epoch_length=len(batches),
        network=network,
        optimizer=optimizer,
        objective=objective,
        surgery="weighted_sum",
        regularization_weight=weight,
        fuse_weighted_sum=True,
        decollate=False,
    )
    moving, fixed = (t.to(device) for t in test_pairs)
    log = {
        "regularizer": regularizer,
        "lambda": weight,
        "iterations": [],
        "dissimilarity": [],
        "folds": [],
        "train_similarity": [],
        "train_regularization": [],
        "eval_s": 0.0,
    }

    def record(engine) -> None:
        synchronize(device)
        start = time.perf_counter()
        dissimilarity, folds = evaluate(network, moving, fixed, args.sigma)
        log["iterations"].append(engine.state.iteration)
        log["dissimilarity"].append(dissimilarity)
        log["folds"].append(folds)
        synchronize(device)
        log["eval_s"] += time.perf_counter() - start

    def record_training(engine) -> None:
        log["train_similarity"].append(engine.state.output["similarity_loss"])
        log["train_regularization"].append(engine.state.output["regularization_loss"])

    trainer.add_event_handler(Events.STARTED, record)
    trainer.add_event_handler(Events.ITERATION_COMPLETED(every=args.eval_every), record)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, record_training)
    synchronize(device)
    start = time.perf_counter()
    trainer.run()
    synchronize(device)
    log["total_s"] = time.perf_counter() - start
    log["train_s"] = log["total_s"] - log["eval_s"]
    if log["iterations"][-1] != len(batches):
        record(trainer)
    log["final_dissimilarity"], log["final_folds"] = log["dissimilarity"][-1], log["folds"][-1]
    # the curves wobble from one evaluation to the next (batch 4, Adam): also keep the mean of the last
    # TAIL evaluations, and the scatter of the last NOISE_POINTS evaluations about their straight-line trend
    log["tail_dissimilarity"] = float(np.mean(log["dissimilarity"][-TAIL:]))
    log["tail_folds"] = float(np.mean(log["folds"][-TAIL:]))
    x, y = np.asarray(log["iterations"][-NOISE_POINTS:], float), np.asarray(log["dissimilarity"][-NOISE_POINTS:])
    residual = y - np.polyval(np.polyfit(x, y, 1), x) if len(x) > 2 else np.zeros(1)
    log["noise"] = float(np.sqrt(np.mean(residual**2)))
    return log


def _fold_axis(folds: float) -> float:
    return math.log10(folds + FOLD_EPS)


def _interpolate(runs: list[dict], x: float, which: str) -> float:
    """Dissimilarity of one regulariser's sweep, linear in the fold axis between neighbouring runs.

    Runs with the same fold rate (typically several at 0 folds) count once, with the lowest dissimilarity.
    """
    best: dict[float, float] = {}
    for r in runs:
        key = _fold_axis(r[f"{which}_folds"])
        best[key] = min(best.get(key, math.inf), r[f"{which}_dissimilarity"])
    xs = sorted(best)
    return float(np.interp(x, xs, [best[k] for k in xs]))


def match_fold_rate(runs: list[dict], which: str = "final") -> dict:
    """The §5.4 comparison: the closest pair of runs by fold rate, and both sweeps at a common fold rate.

    ``which``: ``"final"`` (last evaluation) or ``"tail"`` (mean of the last ``TAIL`` evaluations).
    The common fold rate is the middle (in the log axis) of the overlap of the two sweeps' ranges.
    """
    by_reg = {name: [r for r in runs if r["regularizer"] == name] for name in REGULARIZERS}
    folds = f"{which}_folds"
    pairs = [
        (abs(_fold_axis(g[folds]) - _fold_axis(i[folds])), g, i) for g in by_reg["GradICON"] for i in by_reg["ICON"]
    ]
    _, best_g, best_i = min(pairs, key=lambda p: p[0])
    result = {"pair": (best_g, best_i), "common": None}
    ranges = {
        name: (min(_fold_axis(r[folds]) for r in rs), max(_fold_axis(r[folds]) for r in rs))
        for name, rs in by_reg.items()
    }
    low = max(r[0] for r in ranges.values())
    high = min(r[1] for r in ranges.values())
    if low <= high:
        x = 0.5 * (low + high)
        result["common"] = {
            "folds": 10.0**x - FOLD_EPS,
            "range": (10.0**low - FOLD_EPS, 10.0**high - FOLD_EPS),
            "GradICON": _interpolate(by_reg["GradICON"], x, which),
            "ICON": _interpolate(by_reg["ICON"], x, which),
        }
    return result


def _run_name(run: dict) -> str:
    return f"{run['regularizer']} lambda={run['lambda']:g}"


def _curve_table(pair: tuple[dict, dict]) -> list[str]:
    g, i = pair
    lines = [
        f"| iteration | 1-LNCC {_run_name(g)} | 1-LNCC {_run_name(i)} | % folds {_run_name(g)} | "
        f"% folds {_run_name(i)} |",
        "|---|---|---|---|---|",
    ]
    for k, it in enumerate(g["iterations"]):
        lines.append(
            f"| {it} | {g['dissimilarity'][k]:.4f} | {i['dissimilarity'][k]:.4f} | "
            f"{g['folds'][k]:.3f} | {i['folds'][k]:.3f} |"
        )
    return lines


def _comparison(match: dict, which: str) -> str:
    label = "final (last evaluation)" if which == "final" else f"mean of the last {TAIL} evaluations"
    common = match["common"]
    if common is None:
        return f"{label}: the two sweeps' fold rates do not overlap, so no common fold rate can be interpolated."
    difference = common["GradICON"] - common["ICON"]
    return (
        f"{label}: at a common fold rate of {common['folds']:.3f} % (middle of the overlap "
        f"{common['range'][0]:.3f} - {common['range'][1]:.3f} %) the interpolated held-out 1-LNCC is GradICON "
        f"{common['GradICON']:.4f}, ICON {common['ICON']:.4f} (GradICON - ICON = {difference:+.4f})."
    )


def _matched_pairs(runs: list[dict]) -> list[tuple[dict, dict]]:
    """(GradICON, ICON) run pairs whose final fold rates differ by less than ``MATCH_RATIO`` (in ``% + FOLD_EPS``)."""
    limit = math.log10(MATCH_RATIO)
    return [
        (g, i)
        for g in runs
        if g["regularizer"] == "GradICON"
        for i in runs
        if i["regularizer"] == "ICON"
        if abs(_fold_axis(g["final_folds"]) - _fold_axis(i["final_folds"])) < limit
    ]


def _verdict(differences: list[float], noise: float) -> str:
    """One sentence on the sign and size of the GradICON - ICON dissimilarity differences at matched fold rates."""
    listed = ", ".join(f"{d:+.4f}" for d in differences)
    if all(d < 0 for d in differences):
        ratios = [-d / max(noise, 1e-12) for d in differences]
        low, high = min(ratios), max(ratios)
        if low >= 2.0:
            strength = "every gap at least twice the noise level: the §5.4 claim holds in this run"
        elif high >= 1.0:
            strength = (
                "gaps of about the noise level, not clearly above it: consistent with §5.4, but one short "
                "run with one seed is suggestive rather than conclusive"
            )
        else:
            strength = "but every gap is below the noise level: this short run does not establish the §5.4 claim"
        return (
            f"GradICON reaches a lower held-out dissimilarity than ICON at matched fold rates in every "
            f"comparison above ({listed}; {low:.1f} - {high:.1f} x the noise level), {strength}."
        )
    if all(d > 0 for d in differences):
        return (
            f"ICON, not GradICON, reaches the lower held-out dissimilarity at matched fold rates in every "
            f"comparison above ({listed}): this short run does not reproduce §5.4."
        )
    return (
        f"No consistent winner: the GradICON - ICON differences at matched fold rates have both signs "
        f"({listed}); this short run does not reproduce §5.4."
    )


def report(runs: list[dict], args: argparse.Namespace, device: torch.device, meta: dict) -> str:
    """Markdown section: command, setup, machine, table, matched comparisons, verdict, curves as a text table."""
    match = match_fold_rate(runs, "final")
    g, i = match["pair"]
    command = (
        f"python bench/bench_gradicon_vs_icon.py --device {device.type} --network {args.network} "
        f"--size {args.size} --deform {args.deform:g} --iterations {args.iterations} "
        f"--batch_size {args.batch_size} --lr {args.lr:g} --sigma {args.sigma:g} "
        f"--gradicon_lambdas {' '.join(f'{w:g}' for w in args.gradicon_lambdas)} "
        f"--icon_lambdas {' '.join(f'{w:g}' for w in args.icon_lambdas)} --eval_every {args.eval_every} "
        f"--seed {args.seed}{' --separate_directions' if args.separate_directions else ''} --write"
    )
    network = {
        "twostep": "TS{Down{TallUNet2}, TallUNet2} (two resolutions)",
        "stage1": "GradICON Stage1 TS{Down{TS{Down{TallUNet2}, TallUNet2}}, TallUNet2}",
        "tallunet": "one TallUNet2 (ICON's tallUNet2 atom, five levels)",
    }[args.network]
    params = sum(p.numel() for p in build_network(args.network).parameters())
    directions = (
        "one network call per direction"
        if args.separate_directions
        else "both directions in one network call, `batch_directions=True`"
    )
    noise = float(np.mean([r["noise"] for r in runs]))
    load = ""
    if meta.get("load_start") is not None and meta.get("load_end") is not None:
        load = (
            f" The 1-minute load average was {meta['load_start']:.1f} at the start and {meta['load_end']:.1f} at "
            f"the end (other jobs shared the cores), so the times are indicative only."
        )
    lines = [
        SECTION,
        "",
        f"`{command}`",
        "",
        f"Setup: 2-D axial slices ({args.size}x{args.size}, normalised height {args.slice:g}) of "
        f"`data_prep.synthetic_brain` subjects rendered on a {args.size}^3 grid with `deform={args.deform:g}`; "
        f"{args.num_train} training subjects (random ordered pairs, the same {args.iterations} batches of "
        f"{args.batch_size} for every run), {args.num_test} held-out subjects giving {args.num_test} held-out pairs. "
        f"Network: {network}, {params / 1e6:.1f} M parameters, the same initial weights for every run. "
        f"Loss: GradICON Eq. 13, symmetric 1 - LNCC (Gaussian window, sigma {args.sigma:g} pixels) + lambda x "
        f"`GradICONLoss` or `ICONLoss` (dense sample points; {directions}), trained by `GradientSurgeryTrainer("
        f'surgery="weighted_sum", fuse_weighted_sum=True)`, Adam lr {args.lr:g}, {args.iterations} iterations. '
        f"Every {args.eval_every} iterations the held-out pairs are registered (eval mode, moving -> fixed): "
        f"1 - LNCC (same sigma) and % of pixels with det J < 0 (central differences). For scale: 1 - LNCC is "
        f"{runs[0]['dissimilarity'][0]:.4f} before training (identity) and {meta['perfect_dissimilarity']:.4f} for "
        "the held-out fixed images against themselves (perfect alignment; the zero-variance background counts as zero "
        "correlation).",
        "",
        f"Machine: {meta['machine']}. Data generation {meta['setup_s']:.0f} s, whole run {meta['wall_s'] / 60:.1f} "
        f"min.{load}",
        "",
        f"| regulariser | lambda | final 1-LNCC | final % folds | 1-LNCC, mean of last {TAIL} evals | "
        f"% folds, mean of last {TAIL} evals | train time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['regularizer']} | {r['lambda']:g} | {r['final_dissimilarity']:.4f} | "
            f"{r['final_folds']:.3f} | {r['tail_dissimilarity']:.4f} | {r['tail_folds']:.3f} | "
            f"{r['train_s']:.0f} |"
        )
    differences = []
    lines += ["", "Comparisons at matched fold rates (GradICON - ICON < 0: GradICON aligns better):", ""]
    pairs = _matched_pairs(runs)
    heading = "Runs with matched final fold rates"
    if not pairs:
        pairs = [(g, i)]
        heading = f"Closest runs by final fold rate (no pair within a factor {MATCH_RATIO:g})"
    for pg, pi in pairs:
        difference = pg["final_dissimilarity"] - pi["final_dissimilarity"]
        differences.append(difference)
        below = sum(a < b for a, b in zip(pg["dissimilarity"][1:], pi["dissimilarity"][1:]))
        lines.append(
            f"- {heading}: {_run_name(pg)} ({pg['final_folds']:.3f} %) vs "
            f"{_run_name(pi)} ({pi['final_folds']:.3f} %): final 1-LNCC {pg['final_dissimilarity']:.4f} vs "
            f"{pi['final_dissimilarity']:.4f} ({difference:+.4f}); GradICON's curve is below ICON's at "
            f"{below} of {len(pg['dissimilarity']) - 1} evaluations"
            + (
                " (both fold-free: the fold rate does not tell their regularity apart)."
                if pg["final_folds"] == 0 and pi["final_folds"] == 0
                else "."
            )
        )
    for which in ("final", "tail"):
        common = match_fold_rate(runs, which)["common"]
        if common is not None:
            differences.append(common["GradICON"] - common["ICON"])
        lines.append(f"- Interpolated, {_comparison(match_fold_rate(runs, which), which)}")
    lines.append(
        f"- Noise level: over the last {NOISE_POINTS} evaluations the held-out 1-LNCC scatters by "
        f"{noise:.4f} (root mean square about a straight line, mean over runs)."
    )
    folds = [r["final_folds"] for r in runs]
    lines += [
        "",
        f"Verdict: {_verdict(differences, noise)}",
        "",
        f"Caveats: {args.iterations} iterations of batch {args.batch_size} with one seed (the paper trains "
        f"50,000 iterations per stage), a small network on {args.size}x{args.size} slices, and final fold rates "
        f"up to {max(folds):.3f} %, far above the paper's (about 0.001 % or less): the lambdas were lowered "
        "until both regularisers fold at all in so short a training, since runs with zero folds cannot be "
        "matched by their fold rate. Slices of 3-D subjects also differ by through-plane anatomy that no 2-D "
        "deformation can align.",
        "",
        f"Held-out curves of the closest pair by final fold rate, {_run_name(g)} and {_run_name(i)} (the plot "
        "`bench/gradicon_vs_icon.png` shows every run, and the final trade-off):",
        "",
    ]
    lines += _curve_table((g, i))
    return "\n".join(lines) + "\n"


def plot(runs: list[dict], path: Path) -> None:
    """Three panels: held-out 1-LNCC and % folds over iterations, and the final trade-off (§5.3 / §5.4)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g, i = match_fold_rate(runs)["pair"]
    fig, axes = plt.subplots(1, 3, figsize=(12.0, 3.6))
    colours = {"GradICON": plt.cm.Blues, "ICON": plt.cm.Reds}
    for name in REGULARIZERS:
        own = sorted((r for r in runs if r["regularizer"] == name), key=lambda r: r["lambda"])
        for k, r in enumerate(own):
            colour = colours[name](0.45 + 0.5 * (k + 1) / len(own))
            width = 2.4 if r is g or r is i else 1.0
            style = "-" if name == "GradICON" else "--"
            axes[0].plot(r["iterations"], r["dissimilarity"], style, color=colour, lw=width, label=_run_name(r))
            axes[1].plot(r["iterations"], r["folds"], style, color=colour, lw=width)
            axes[2].plot(r["final_folds"], r["final_dissimilarity"], "o" if name == "GradICON" else "s", color=colour)
            axes[2].annotate(
                f"{r['lambda']:g}",
                (r["final_folds"], r["final_dissimilarity"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(3, 3),
            )
    axes[0].set(xlabel="iteration", ylabel="held-out 1 - LNCC", title="dissimilarity (matched pair bold)")
    axes[1].set(xlabel="iteration", ylabel="% pixels det J < 0", title="folds")
    axes[1].set_yscale("symlog", linthresh=0.01)
    axes[2].set(xlabel="final % folds", ylabel="final held-out 1 - LNCC", title="trade-off (labels: lambda)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_write_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def run_benchmark(args: argparse.Namespace) -> tuple[list[dict], dict]:
    """Make the data, train every (regulariser, lambda) run; return the runs and timing facts."""
    device = torch.device(args.device)
    meta = {"load_start": _load_average()}
    wall = time.perf_counter()
    train_images = make_slices(range(args.num_train), args.size, args.slice, args.deform, args.seed)
    test_images = make_slices(
        range(args.num_train, args.num_train + args.num_test), args.size, args.slice, args.deform, args.seed
    )
    order = torch.arange(args.num_test)
    test_pairs = (test_images[order], test_images[(order + 1) % args.num_test])  # (moving, fixed)
    batches = make_batches(args.num_train, args.iterations, args.batch_size, args.seed)
    meta["setup_s"] = time.perf_counter() - wall
    # 1 - LNCC of each held-out fixed image with itself: the value of a perfect alignment (the zero-variance
    # background counts as zero correlation, so it is well above 0)
    meta["perfect_dissimilarity"] = float(LNCCLoss(args.sigma)(test_pairs[1], test_pairs[1]))
    torch.manual_seed(args.seed)
    initial_state = copy.deepcopy(build_network(args.network).state_dict())
    print(f"data ready in {meta['setup_s']:.1f} s; device {device}", file=sys.stderr, flush=True)
    runs = []
    for name, weights in (("GradICON", args.gradicon_lambdas), ("ICON", args.icon_lambdas)):
        for weight in weights:
            run = train_run(name, weight, initial_state, args, train_images, batches, test_pairs, device)
            print(
                f"{_run_name(run)}: final 1-LNCC {run['final_dissimilarity']:.4f}, % folds "
                f"{run['final_folds']:.3f}, train {run['train_s']:.0f} s; curve "
                + " ".join(f"{d:.3f}" for d in run["dissimilarity"]),
                file=sys.stderr,
                flush=True,
            )
            runs.append(run)
    meta["wall_s"] = time.perf_counter() - wall
    meta["load_end"] = _load_average()
    meta["machine"] = describe_machine(device)
    return runs, meta


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--network", default="tallunet", choices=NETWORKS)
    parser.add_argument("--size", type=int, default=64, help="slice size (and subject grid size^3)")
    parser.add_argument("--slice", type=float, default=0.14, help="normalised height of the axial slice")
    parser.add_argument("--deform", type=float, default=3.0, help="scale of the inter-subject deformation")
    parser.add_argument("--num_train", type=int, default=32)
    parser.add_argument("--num_test", type=int, default=12)
    parser.add_argument("--iterations", type=int, default=120)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--sigma", type=float, default=2.0, help="LNCC Gaussian std in pixels")
    parser.add_argument("--gradicon_lambdas", type=float, nargs="+", default=[0.0625, 0.25, 1.0])
    parser.add_argument("--icon_lambdas", type=float, nargs="+", default=[25.0, 100.0, 400.0])
    parser.add_argument(
        "--separate_directions",
        action="store_true",
        help="one network call per direction (ICON's way) instead of both directions as one batch",
    )
    parser.add_argument("--eval_every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default=str(ROOT / "bench" / "gradicon_vs_icon.png"))
    parser.add_argument("--json", default=None, help="also save every curve to this JSON file")
    parser.add_argument(
        "--report_from",
        default=None,
        help="no training: rebuild the report (and plot / README section) from a saved --json file",
    )
    parser.add_argument("--write", action="store_true", help="put the results into bench/README.md")
    args = parser.parse_args(argv)
    if args.report_from:
        path = Path(args.report_from)
        if not path.is_file():
            raise FileNotFoundError(f"--report_from: no such file {path}")
        try:
            saved = json.loads(path.read_text())
            runs, meta = saved["runs"], saved["meta"]
            args = argparse.Namespace(**{**saved["args"], "plot": args.plot, "write": args.write, "json": None})
        except (ValueError, KeyError) as error:
            raise ValueError(f"{path}: not a JSON file written by this benchmark's --json ({error}).") from error
    else:
        if args.network == "stage1" and args.size < 65:
            parser.error("--network stage1 needs --size >= 65 (its quarter-resolution TallUNet2 needs 17 pixels).")
        if args.num_train < 2 or args.num_test < 2:
            parser.error("need --num_train >= 2 and --num_test >= 2.")
        runs, meta = run_benchmark(args)
    text = report(runs, args, torch.device(args.device), meta)
    print(text)
    if args.plot:
        plot(runs, Path(args.plot))
    if args.json:
        with atomic_write_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps({"args": vars(args), "meta": meta, "runs": runs}, indent=1))
    if args.write:
        write_readme_section(SECTION, text)
    return runs


if __name__ == "__main__":
    main()
