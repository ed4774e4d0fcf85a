"""Test-time settings of DIO's optimisation layer on brain pairs with a known smooth warp.

Each pair: a synthetic brain (``data_prep.synthetic_brain.brain_subject``, 1 mm) as the fixed image
and the same brain warped by a known smooth displacement (a few voxels, pull-back) as the moving
image, so that the true fixed -> moving field is known. Registered with intensities as features
(``feature_network="intensity"``, what a user without a trained network runs) under each setting
of the solver, at the bundle's iterations (200 / 100 / 50 at scales 4 / 2 / 1). Reported per
setting, mean over pairs:

- Dice (%) of the warped moving label against the fixed label (labels 1 .. N);
- endpoint error (voxels) against the true field, inside the brain mask (identity: the warp's size);
- NJD (%): voxels with a negative Jacobian determinant;
- seconds per pair.

Usage: python bench/bench_dio_defaults.py [--size 64] [--pairs 3] [--threads 1] [--device cpu] [--write]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from machine import code_commit, describe_machine, parse_device_arguments, synchronize
from readme_section import write_readme_section

from data_prep.synthetic_brain import brain_subject
from monai_ext.metrics import dice_per_label, negative_jacobian_fraction
from monai_ext.networks import DIORegistration, build_feature_network
from monai_ext.solvers import MultiScaleSolver
from monai_ext.spatial import sample_moving, warp_image, warp_label

SETTINGS = {
    "SGD, free-form, MSE, early stopping (previous default)": dict(optimizer="sgd", transform="freeform"),
    "SGD, free-form, MSE": dict(optimizer="sgd", transform="freeform", convergence_eps=0.0),
    "Adam, free-form, MSE": dict(optimizer="adam", transform="freeform", convergence_eps=0.0),
    "Adam, diffeomorphic, MSE": dict(optimizer="adam", transform="diffeomorphic", convergence_eps=0.0),
    "Adam, diffeomorphic, LNCC, early stopping": dict(
        optimizer="adam", transform="diffeomorphic", dissimilarity="lncc"
    ),
    "Adam, diffeomorphic, LNCC": dict(
        optimizer="adam", transform="diffeomorphic", dissimilarity="lncc", convergence_eps=0.0
    ),
    "SGD, diffeomorphic, LNCC": dict(
        optimizer="sgd", transform="diffeomorphic", dissimilarity="lncc", convergence_eps=0.0
    ),
}


def smooth_warp(shape: tuple[int, ...], seed: int, amplitude: float) -> torch.Tensor:
    """A smooth random displacement ``(1, 3, *shape)`` in voxels with largest length ``amplitude``."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, 3, 5, 5, 5, generator=generator)
    field = torch.nn.functional.interpolate(coarse, size=shape, mode="trilinear", align_corners=True)
    return field * (amplitude / field.norm(dim=1).max())


def inverse_field(ddf: torch.Tensor, iterations: int = 30) -> torch.Tensor:
    """``w`` with ``w(x) = -v(x + w(x))``: the fixed -> moving field when moving(y) = fixed(y + v(y))."""
    inverse = -ddf
    for _ in range(iterations):
        inverse = -sample_moving(ddf, inverse)
    return inverse


def make_pair(size: int, seed: int, amplitude: float) -> dict:
    subject = brain_subject((size,) * 3, seed=seed, index=0)
    fixed = torch.from_numpy(subject.image)[None, None]
    label = torch.from_numpy(subject.label.astype(np.int64))[None, None]
    warp = smooth_warp(fixed.shape[2:], seed, amplitude)
    return {
        "fixed": fixed,
        "fixed_label": label,
        "mask": torch.from_numpy(subject.mask)[None, None],
        "moving": warp_image(fixed, warp),
        "moving_label": warp_label(label.float(), warp),
        "truth": inverse_field(warp),
    }


def measure(setting: dict, pairs: list[dict], device: torch.device) -> dict:
    network = DIORegistration(build_feature_network("intensity", spatial_dims=3), MultiScaleSolver(**setting))
    network = network.to(device)
    rows = []
    for pair in pairs:
        fixed, moving = pair["fixed"].to(device), pair["moving"].to(device)
        synchronize(device)
        start = time.perf_counter()
        with torch.no_grad():
            ddf = network.register(fixed, moving).full_resolution_ddfs[-1]
        synchronize(device)
        seconds = time.perf_counter() - start
        ddf = ddf.cpu()
        labels = [int(v) for v in torch.unique(pair["fixed_label"]) if v > 0]
        warped = warp_label(pair["moving_label"], ddf)
        mask = pair["mask"][0, 0].bool()
        rows.append(
            {
                "dice": 100 * float(dice_per_label(warped, pair["fixed_label"], labels).nanmean()),
                "epe": float((ddf - pair["truth"]).norm(dim=1)[0][mask].mean()),
                "njd": float(negative_jacobian_fraction(ddf)),
                "seconds": seconds,
            }
        )
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64, help="grid of the synthetic brains (voxels per axis)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--amplitude", type=float, default=4.0, help="largest displacement of the known warp (voxels)")
    parser.add_argument("--write", action="store_true", help="put the results into bench/README.md")
    args, device = parse_device_arguments(parser)
    pairs = [make_pair(args.size, seed, args.amplitude) for seed in range(args.pairs)]
    identity = {
        "dice": np.mean(
            [
                100
                * float(
                    dice_per_label(
                        p["moving_label"], p["fixed_label"], [int(v) for v in torch.unique(p["fixed_label"]) if v > 0]
                    ).nanmean()
                )
                for p in pairs
            ]
        ),
        "epe": np.mean([float(p["truth"].norm(dim=1)[0][p["mask"][0, 0].bool()].mean()) for p in pairs]),
    }
    lines = [
        "## DIO test-time settings",
        "",
        f"Intensity features, {args.pairs} synthetic brain pairs of {args.size}^3 at 1 mm with "
        f"a known smooth warp (largest {args.amplitude:g} voxels), iterations 200 / 100 / 50; "
        f"{describe_machine(device)}; commit {code_commit()}. Command: `python bench/bench_dio_defaults.py "
        f"--size {args.size} --pairs {args.pairs} --threads {args.threads} --device {device.type} --write`.",
        "",
        "| setting | Dice (%) | endpoint error (voxels) | NJD (%) | seconds per pair |",
        "|---|---|---|---|---|",
        f"| identity | {identity['dice']:.2f} | {identity['epe']:.2f} | 0 | - |",
    ]
    for name, setting in SETTINGS.items():
        result = measure(setting, pairs, device)
        lines.append(
            f"| {name} | {result['dice']:.2f} | {result['epe']:.2f} | {result['njd']:.3f} | {result['seconds']:.1f} |"
        )
        print(lines[-1], flush=True)
    print("\n".join(lines))
    if args.write:
        write_readme_section("## DIO test-time settings", "\n".join(lines))


if __name__ == "__main__":
    main()
