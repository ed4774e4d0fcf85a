"""DIO under unseen anisotropy: trained features vs intensities, with and without resampling (dio.md §4.3).

§4.3 claims that optimisation in the loop makes DIO robust to acquisition changes, and that DIO
registers anisotropic volumes directly, in world geometry, without resampling them to 1 mm. This
benchmark checks the claim on synthetic brains:

- Training: a small DIO feature U-Net (``build_feature_network("unet")``) is trained on isotropic
  1 mm pairs of ``data_prep.synthetic_brain`` subjects (``--size``^3 voxels, all 35 seg35 labels)
  with DIO's Eq. 2 objective (``DIOObjective``: 0.25 x LNCC + Dice over every level's warp) through
  the multi-scale solver (free-form, SGD, ``--train_iterations`` per level) and Adam.
- Test, on held-out pairs (subject ``i`` fixed, ``i + 1`` moving), three conditions:
  (a) ``isotropic``: both images at 1 mm, as in training;
  (b) ``anisotropic``: the moving image acquired with ``--slice_thickness`` mm slices (the mean of
      that many 1 mm slices along the last, superior axis, i.e. thick axial slices), its voxel-to-world
      affine saying so; the fixed image stays at 1 mm. Registered WITHOUT resampling:
      ``register(fixed, moving, fixed_affine, moving_affine)`` reads the moving features through
      world coordinates;
  (c) ``resampled``: that anisotropic moving image resampled back onto the 1 mm fixed grid
      (trilinear, so the slices are blurred through-plane), then registered on the common grid.
- Methods, with identical test-time solvers (free-form, SGD, ``--test_iterations``, the solver's
  default early stopping): the trained DIO features, and optimisation on the intensities alone
  (``build_feature_network("intensity")``: the classical scale space, no training).
- Scores on the fixed 1 mm grid against the fixed labels: Dice (mean over the seg35 labels present)
  of the moving labels warped by nearest neighbour; in (b) and (c) the moving labels are those of
  the anisotropic acquisition (the label at each thick slice's centre), read through the world
  geometry, the same way in both; % of voxels with a negative Jacobian determinant of the final
  displacement; Initial Dice (identity transform, same label path); and the same transform scored
  with the moving subject's 1 mm labels (its quality apart from the label resolution).
- Diagnostics: (b') the anisotropic pair registered with the coarse levels skipped (iterations
  ``0, 0, T``); (d) both images with the same thick slices, registered and scored on that grid
  (the within-dataset setting of §4.3's anisotropic test sets); ``--skip_diagnostic`` drops both;
  the label-resolution ceiling (a subject's own thick-slice
  labels against its 1 mm labels); per method and level, the relative squared difference between
  the features of a thick-slice image (read through the world geometry) and of its 1 mm original.

Usage: python bench/bench_dio_robustness.py [--size 48] [--steps 60] [--batch_size 2] [--lr 1e-3]
    [--test_pairs 8] [--test_iterations 200 100 50] [--slice_thickness 3] [--threads 1] [--device cpu|cuda]
    [--save_net PATH | --load_net PATH] [--json PATH] [--write]
(``--write`` puts the results into bench/README.md as the section "DIO robustness: ...").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from machine import add_device_arguments, code_commit, describe_machine, synchronize
from readme_section import write_readme_section

from data_prep.synthetic_brain import brain_subject
from monai_ext.metrics import dice_per_label, negative_jacobian_fraction
from monai_ext.networks import DIORegistration, build_feature_network
from monai_ext.objectives import DIOObjective
from monai_ext.solvers import MultiScaleSolver
from monai_ext.spatial import fixed_to_moving_matrix, sample_moving, warp_moving

SECTION = "## DIO robustness: anisotropic moving images without resampling (dio.md §4.3)"
LABELS = list(range(1, 36))  # OASIS seg35
SCALES = (4, 2, 1)
CONDITIONS = ("isotropic", "anisotropic", "resampled")
DIAGNOSTIC = "anisotropic_finest_only"
BOTH = "both_anisotropic"
METHODS = ("DIO (trained features)", "intensities (no training)")


def _tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).float()[None, None].to(device)


def thick_slices(image: np.ndarray, label: np.ndarray, thickness: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulate thick slices along the last axis: ``(image, label, affine)`` of the acquisition.

    Slice ``k`` averages 1 mm slices ``t k .. t k + t - 1`` (a box slice profile: partial volume);
    its label is the 1 mm label at the slice centre ``t k + (t - 1) / 2`` (``t`` odd) and the affine
    places it there (1 x 1 x ``t`` mm voxels in the 1 mm image's world frame, identity affine).
    """
    count = image.shape[-1] // thickness
    if count < 2:
        raise ValueError(f"slice thickness {thickness} leaves fewer than two slices of {image.shape[-1]}.")
    cropped = image[..., : count * thickness].reshape(*image.shape[:-1], count, thickness)
    centre = (thickness - 1) // 2
    affine = np.diag([1.0, 1.0, float(thickness), 1.0])
    affine[2, 3] = (thickness - 1) / 2.0
    return cropped.mean(-1).astype(np.float32), label[..., centre::thickness][..., :count], affine


def make_subject(size: int, seed: int, index: int, deform: float, thickness: int) -> dict:
    subject = brain_subject((size,) * 3, seed=seed, index=index, deform=deform)
    image_a, label_a, affine_a = thick_slices(subject.image, subject.label, thickness)
    return {
        "image": subject.image,
        "label": subject.label,
        "image_aniso": image_a,
        "label_aniso": label_a,
        "affine_aniso": affine_a,
    }


def train(args, subjects: list[dict], device: torch.device) -> tuple[torch.nn.Module, list[float], float]:
    """DIO training (Eq. 2 through the solver's implicit backward) on isotropic pairs, or with probability
    ``args.augment_anisotropy`` on pairs whose moving images have thick slices; returns the net."""
    torch.manual_seed(args.seed)
    net = build_feature_network(
        "unet", spatial_dims=3, feature_channels=args.feature_channels, channels=tuple(args.channels), scales=SCALES
    ).to(device)
    solver = MultiScaleSolver(iterations=tuple(args.train_iterations), transform="freeform", optimizer="sgd")
    model = DIORegistration(net, solver)
    objective = DIOObjective(labels=LABELS, spatial_dims=3)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    images = torch.cat([_tensor(s["image"], device) for s in subjects])
    labels = torch.cat([_tensor(s["label"], device) for s in subjects])
    losses: list[float] = []
    synchronize(device)
    start = time.perf_counter()
    for step in range(args.steps):
        pairs = [rng.choice(len(subjects), size=2, replace=False) for _ in range(args.batch_size)]
        fixed_idx = torch.tensor([int(p[0]) for p in pairs])
        moving_idx = torch.tensor([int(p[1]) for p in pairs])
        moving, moving_label, geometry = images[moving_idx], labels[moving_idx], {}
        if rng.random() < args.augment_anisotropy:
            # the moving images re-acquired with thick slices (as RandAnisotropicResampled does in the
            # bundle), read through their affine
            thickness = int(rng.choice([3, 5]))
            thick = [thick_slices(subjects[int(i)]["image"], subjects[int(i)]["label"], thickness) for i in moving_idx]
            moving = torch.cat([_tensor(t[0], device) for t in thick])
            moving_label = torch.cat([_tensor(t[1], device) for t in thick])
            affine = torch.as_tensor(thick[0][2], dtype=torch.float64)
            geometry = {"fixed_affine": torch.eye(4, dtype=torch.float64), "moving_affine": affine}
        terms = objective(
            model, moving, images[fixed_idx], fixed_label=labels[fixed_idx], moving_label=moving_label, **geometry
        )
        loss = terms.similarity + terms.regularization
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 10 == 0 or step == 0:
            recent = losses[-10:]
            print(
                f"step {step + 1}/{args.steps}: loss {sum(recent) / len(recent):.4f} "
                f"({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
            )
    synchronize(device)
    return net.eval(), losses, time.perf_counter() - start


def _dice(warped_label: torch.Tensor, fixed_label: torch.Tensor) -> float:
    return float(torch.nanmean(dice_per_label(warped_label, fixed_label, LABELS)))


def _relative_mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean() / b.pow(2).mean().clamp_min(1e-12))


@torch.no_grad()
def evaluate(args, feature_nets: dict, subjects: list[dict], device: torch.device) -> tuple[list[dict], dict]:
    """Every held-out pair x condition x method: Dice, initial Dice, % negative Jacobian, time.

    Also returns diagnostics: the label-resolution ceiling (each fixed subject's own thick-slice
    labels read through the geometry against its 1 mm labels) and, per method and level, how far
    the features of a thick-slice image (read at the 1 mm image's level grid through the world
    geometry) and of its resampled version are from the features of the 1 mm original.
    """
    solver = MultiScaleSolver(iterations=tuple(args.test_iterations), transform="freeform", optimizer="sgd")
    conditions = {condition: solver for condition in CONDITIONS}
    if not args.skip_diagnostic:
        conditions[DIAGNOSTIC] = MultiScaleSolver(
            iterations=(0, 0, args.test_iterations[-1]), transform="freeform", optimizer="sgd"
        )
        conditions[BOTH] = solver
    identity = np.eye(4)
    rows: list[dict] = []
    ceilings: list[float] = []
    mismatch = {m: {"anisotropic": [[] for _ in SCALES], "resampled": [[] for _ in SCALES]} for m in feature_nets}
    for pair in range(len(subjects) - 1):
        fixed, moving = subjects[pair], subjects[pair + 1]
        fixed_image, fixed_label = _tensor(fixed["image"], device), _tensor(fixed["label"], device)
        shape = tuple(fixed_image.shape[2:])
        iso_image, iso_label = _tensor(moving["image"], device), _tensor(moving["label"], device)
        aniso_image = _tensor(moving["image_aniso"], device)
        aniso_label = _tensor(moving["label_aniso"], device)
        matrix = fixed_to_moving_matrix(
            identity, moving["affine_aniso"], shape, tuple(aniso_image.shape[2:]), device=device
        )
        zero = fixed_image.new_zeros((1, 3, *shape))
        resampled = sample_moving(aniso_image, zero, matrix)  # trilinear onto the 1 mm fixed grid
        own_thick_label = _tensor(fixed["label_aniso"], device)
        ceilings.append(_dice(warp_moving(own_thick_label, zero, matrix, label=True), fixed_label))
        for method, net in feature_nets.items():
            reference = net(iso_image)
            for level, (ref, thick, resamp) in enumerate(zip(reference, net(aniso_image), net(resampled))):
                level_zero = ref.new_zeros((1, 3, *ref.shape[2:]))
                thick_on_grid = sample_moving(thick, level_zero, matrix)
                mismatch[method]["anisotropic"][level].append(_relative_mse(thick_on_grid, ref))
                mismatch[method]["resampled"][level].append(_relative_mse(resamp, ref))
        one_mm = (fixed_image, fixed_label)
        cases = {
            # condition: ((fixed image, label), moving image, affines for register, moving label, label matrix)
            "isotropic": (one_mm, iso_image, (None, None), iso_label, None),
            "anisotropic": (one_mm, aniso_image, (identity, moving["affine_aniso"]), aniso_label, matrix),
            "resampled": (one_mm, resampled, (None, None), aniso_label, matrix),
            DIAGNOSTIC: (one_mm, aniso_image, (identity, moving["affine_aniso"]), aniso_label, matrix),
            # both acquired with the same thick slices: same grid, scored there against the fixed thick labels
            BOTH: (
                (_tensor(fixed["image_aniso"], device), own_thick_label),
                aniso_image,
                (fixed["affine_aniso"], moving["affine_aniso"]),
                aniso_label,
                None,
            ),
        }
        for condition, condition_solver in conditions.items():
            (fixed_in, fixed_ref), moving_image, (fixed_affine, moving_affine), moving_label, label_matrix = cases[
                condition
            ]
            on_one_mm_grid = fixed_in is fixed_image
            zero = fixed_in.new_zeros((1, 3, *fixed_in.shape[2:]))
            initial = _dice(warp_moving(moving_label, zero, label_matrix, label=True), fixed_ref)
            for method, net in feature_nets.items():
                model = DIORegistration(net, condition_solver)
                synchronize(device)
                start = time.perf_counter()
                result = model.register(fixed_in, moving_image, fixed_affine=fixed_affine, moving_affine=moving_affine)
                synchronize(device)
                seconds = time.perf_counter() - start
                ddf = result.full_resolution_ddfs[-1]
                rows.append(
                    {
                        "pair": pair,
                        "condition": condition,
                        "method": method,
                        "initial_dice": initial,
                        "dice": _dice(warp_moving(moving_label, ddf, label_matrix, label=True), fixed_ref),
                        # the same transform scored with the moving subject's 1 mm labels (same world grid as fixed)
                        "dice_1mm_labels": _dice(warp_moving(iso_label, ddf, None, label=True), fixed_label)
                        if on_one_mm_grid
                        else float("nan"),
                        "neg_jac_pct": float(negative_jacobian_fraction(ddf)[0]),
                        "iterations": list(result.iterations),
                        "seconds": seconds,
                    }
                )
                r = rows[-1]
                print(
                    f"pair {pair} {condition:11s} {method}: Dice {r['initial_dice']:.3f} -> {r['dice']:.3f} "
                    f"(1 mm labels {r['dice_1mm_labels']:.3f}), NJD {r['neg_jac_pct']:.3f} %, iterations "
                    f"{r['iterations']}, {seconds:.1f} s",
                    file=sys.stderr,
                )
    return rows, {"ceiling": ceilings, "mismatch": mismatch}


def _ms(values: list[float], digits: int = 3) -> str:
    a = np.asarray(values, dtype=float)
    if np.isnan(a).all():
        return "-"
    return f"{a.mean():.{digits}f} ± {a.std(ddof=1) if a.size > 1 else 0.0:.{digits}f}"


def report(
    args,
    rows: list[dict],
    diagnostics: dict,
    losses: list[float],
    train_seconds: float,
    setup_seconds: float,
    eval_seconds: float,
    device: torch.device,
) -> str:
    def pick(condition, method, key):
        return [r[key] for r in rows if r["condition"] == condition and r["method"] == method]

    conditions = [c for c in (*CONDITIONS, DIAGNOSTIC, BOTH) if any(r["condition"] == c for r in rows)]
    pairs = len({r["pair"] for r in rows})
    command = (
        f"python bench/bench_dio_robustness.py --size {args.size} --train_subjects {args.train_subjects} "
        f"--test_pairs {args.test_pairs} --steps {args.steps} --batch_size {args.batch_size} --lr {args.lr:g} "
        f"--augment_anisotropy {args.augment_anisotropy:g} "
        f"--train_iterations {' '.join(map(str, args.train_iterations))} "
        f"--test_iterations {' '.join(map(str, args.test_iterations))} --slice_thickness {args.slice_thickness} "
        f"--deform {args.deform:g} --channels {' '.join(map(str, args.channels))} "
        f"--feature_channels {args.feature_channels} --seed {args.seed} --threads {args.threads} "
        f"--device {device.type}{' --skip_diagnostic' if args.skip_diagnostic else ''} --write"
    )
    first = float(np.mean(losses[:10])) if losses else float("nan")
    last = float(np.mean(losses[-10:])) if losses else float("nan")
    t = args.slice_thickness
    lines = [
        SECTION,
        "",
        f"`{command}`",
        "",
        f"Synthetic brains (`data_prep.synthetic_brain.brain_subject`, {args.size}^3 voxels taken as 1 mm, deform "
        f"{args.deform:g}, seed {args.seed}): {args.train_subjects} training subjects, held-out subjects "
        f"{args.train_subjects} - {args.train_subjects + args.test_pairs} giving {pairs} pairs (subject i fixed, i + 1 "
        f"moving). DIO: U-Net features (channels {tuple(args.channels)}, {args.feature_channels} feature channels at "
        f"scales 4, 2, 1, {args.param_count} parameters), trained {args.steps} Adam steps (lr {args.lr:g}) of "
        f"{args.batch_size} random pairs (with probability {args.augment_anisotropy:g} the moving images re-acquired "
        f"with 3 or 5 mm slices, read through their affine) with `DIOObjective` (0.25 x LNCC + Dice over the 35 "
        f"labels, every level) through the solver (free-form, SGD, "
        f"{', '.join(map(str, args.train_iterations))} iterations, Jacobian-free backward); "
        + (
            f"training loss {first:.3f} (mean of the first 10 steps) -> {last:.3f} (last 10). "
            if losses
            else f"weights loaded from {args.load_net}. "
        )
        + f"Test: the same solver type with {', '.join(map(str, args.test_iterations))} iterations and its default "
        "early stopping for both methods; the intensity baseline is the parameter-free scale space "
        '(`build_feature_network("intensity")`) with that same solver. Anisotropic moving images: '
        f"{t} mm slices along the superior axis (mean of {t} 1 mm slices, {args.size}x{args.size}x{args.size // t} "
        f"voxels, affine 1 x 1 x {t} mm); their labels are the 1 mm labels at the slice centres, read through the "
        "world geometry in (b), (c) and (b'), so Initial Dice is lower there than in (a). Dice: mean over the labels "
        "present, nearest-neighbour warped moving labels against the fixed labels on the fixed 1 mm grid; "
        "\"Dice, 1 mm labels\" scores the same transform with the moving subject's 1 mm labels (the transform's "
        "quality apart from the label resolution); mean ± standard deviation over pairs."
        + (
            f" (b') is a diagnostic, not one of §4.3's conditions: the anisotropic pair with the coarse levels "
            f"skipped (iterations 0, 0, {args.test_iterations[-1]})."
            if DIAGNOSTIC in conditions
            else ""
        )
        + (
            " (d), another diagnostic, is the within-dataset setting of §4.3's test sets: both images acquired with "
            "the same thick slices (same grid and affine), registered and scored on that grid against the fixed "
            "image's thick-slice labels (so not comparable with the rows on the 1 mm grid; no 1 mm-label score)."
            if BOTH in conditions
            else ""
        ),
        "",
        f"Machine: {describe_machine(device)}; code at commit {args.commit}. Data {setup_seconds:.0f} s, training "
        f"{train_seconds / 60:.1f} min, evaluation {eval_seconds / 60:.1f} min"
        + (" (the CPU was shared with other jobs: times indicative only)." if device.type == "cpu" else "."),
        "",
        "| condition | method | Initial Dice | Dice | Dice, 1 mm labels | % negative Jacobian "
        "| iterations per level (mean) | s per pair |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = {
        "isotropic": "(a) isotropic",
        "anisotropic": "(b) anisotropic, no resampling",
        "resampled": "(c) resampled to 1 mm",
        DIAGNOSTIC: "(b') anisotropic, finest level only",
        BOTH: "(d) both anisotropic, thick-slice grid",
    }
    for condition in conditions:
        for method in METHODS:
            its = np.asarray(pick(condition, method, "iterations"), dtype=float).mean(0)
            scores = " | ".join(
                _ms(pick(condition, method, key)) for key in ("initial_dice", "dice", "dice_1mm_labels", "neg_jac_pct")
            )
            lines.append(
                f"| {names[condition]} | {method} | {scores} | {', '.join(f'{v:.0f}' for v in its)} | "
                f"{np.mean(pick(condition, method, 'seconds')):.1f} |"
            )
    lines += [
        "",
        f"Label-resolution ceiling for (b), (c), (b'): each fixed subject's own {t} mm labels against its "
        f"1 mm labels (perfect alignment) reach Dice {_ms(diagnostics['ceiling'])}.",
        "",
        "Paired differences over the held-out pairs (DIO - intensities, Dice):",
        "",
    ]
    gaps = {}
    for condition in conditions:
        dio, base = (np.asarray(pick(condition, m, "dice")) for m in METHODS)
        gaps[condition] = dio - base
        lines.append(
            f"- {names[condition]}: {_ms(gaps[condition])} (DIO higher in {int((gaps[condition] > 0).sum())} "
            f"of {gaps[condition].size} pairs)"
        )
    lines += ["", "Change from (a) to the other conditions, per method (Dice):", ""]
    for method in METHODS:
        iso = np.asarray(pick("isotropic", method, "dice"))
        parts = [f"{names[c]} {_ms(np.asarray(pick(c, method, 'dice')) - iso)}" for c in conditions[1:] if c != BOTH]
        lines.append(f"- {method}: " + "; ".join(parts))
    lines += [
        "",
        "Feature mismatch caused by the thick slices (held-out moving subjects): relative mean squared "
        "difference between the features of the thick-slice image, read at the 1 mm image's level grid "
        "through the world geometry, and the features of the 1 mm original; the same for the image "
        "resampled to 1 mm:",
        "",
        "| method | " + " | ".join(f"scale {s}: thick slices | scale {s}: resampled" for s in SCALES) + " |",
        "|---|" + "---|---|" * len(SCALES),
    ]
    for method in METHODS:
        m = diagnostics["mismatch"][method]
        cells = " | ".join(
            f"{np.mean(m['anisotropic'][k]):.3f} | {np.mean(m['resampled'][k]):.3f}" for k in range(len(SCALES))
        )
        lines.append(f"| {method} | {cells} |")
    a, b, c = (float(gaps[k].mean()) for k in CONDITIONS)
    lines += [
        "",
        f"Summary: DIO's Dice advantage over intensities is {a:+.3f} isotropic, {b:+.3f} anisotropic without "
        f"resampling and {c:+.3f} after resampling to 1 mm"
        + (f"; {float(gaps[BOTH].mean()):+.3f} when both images have the thick slices." if BOTH in gaps else "."),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=48, help="side of the isotropic 1 mm volumes")
    parser.add_argument("--train_subjects", type=int, default=20)
    parser.add_argument("--test_pairs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=60, help="Adam steps of training")
    parser.add_argument(
        "--augment_anisotropy",
        type=float,
        default=0.0,
        help="probability that a training step's moving images are re-acquired with thick slices",
    )
    parser.add_argument("--batch_size", type=int, default=2, help="pairs per training step")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train_iterations", type=int, nargs=3, default=[20, 10, 5])
    parser.add_argument("--test_iterations", type=int, nargs=3, default=[200, 100, 50])
    parser.add_argument("--slice_thickness", type=int, default=3, help="mm (odd: the label is the centre slice's)")
    parser.add_argument("--deform", type=float, default=1.0, help="inter-subject deformation of brain_subject")
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 16, 16])
    parser.add_argument("--feature_channels", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    add_device_arguments(parser)
    parser.add_argument(
        "--skip_diagnostic",
        action="store_true",
        help="skip the diagnostic condition (b'): anisotropic with the finest level only",
    )
    parser.add_argument("--json", help="also save every per-pair result here")
    parser.add_argument("--save_net", help="save the trained feature network's state dict here")
    parser.add_argument("--load_net", help="skip training: load this state dict (from --save_net, same settings)")
    parser.add_argument("--write", action="store_true", help="put the results into bench/README.md")
    args = parser.parse_args()
    if args.slice_thickness < 1 or args.slice_thickness % 2 == 0:
        parser.error("--slice_thickness must be a positive odd integer (the label is taken at the slice centre)")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    args.commit = code_commit()  # the code this run imports

    start = time.perf_counter()
    make = lambda i: make_subject(args.size, args.seed, i, args.deform, args.slice_thickness)  # noqa: E731
    train_subjects = [make(i) for i in range(args.train_subjects)]
    test_subjects = [make(i) for i in range(args.train_subjects, args.train_subjects + args.test_pairs + 1)]
    setup_seconds = time.perf_counter() - start
    print(f"machine: {describe_machine(device)}; data {setup_seconds:.1f} s", file=sys.stderr)

    if args.load_net:
        net = build_feature_network(
            "unet", spatial_dims=3, feature_channels=args.feature_channels, channels=tuple(args.channels), scales=SCALES
        ).to(device)
        net.load_state_dict(torch.load(args.load_net, map_location=device, weights_only=True))
        net, losses, train_seconds = net.eval(), [], 0.0
    else:
        net, losses, train_seconds = train(args, train_subjects, device)
    if args.save_net:
        from monai_ext.io.atomic import atomic_write_path

        with atomic_write_path(args.save_net) as tmp:
            torch.save(net.state_dict(), tmp)
    args.param_count = sum(p.numel() for p in net.parameters())
    nets = {METHODS[0]: net, METHODS[1]: build_feature_network("intensity", scales=SCALES).to(device)}
    start = time.perf_counter()
    rows, diagnostics = evaluate(args, nets, test_subjects, device)
    eval_seconds = time.perf_counter() - start
    text = report(args, rows, diagnostics, losses, train_seconds, setup_seconds, eval_seconds, device)
    print(text)
    if args.json:
        from monai_ext.io.atomic import atomic_write_path

        with atomic_write_path(args.json) as tmp:
            Path(tmp).write_text(
                json.dumps(
                    {
                        "args": {k: v for k, v in vars(args).items()},
                        "losses": losses,
                        "rows": rows,
                        "diagnostics": diagnostics,
                    },
                    indent=1,
                )
            )
    if args.write:
        write_readme_section(SECTION, text)


if __name__ == "__main__":
    main()
