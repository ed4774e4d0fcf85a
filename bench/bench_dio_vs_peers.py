"""DIO's optimisation layer with intensities as features against FireANTs greedy and ANTs SyN, on
brain pairs with a known warp; the trade-off table of DIO's test-time settings.

Each pair (``bench_dio_defaults.make_pair``): a synthetic brain (``data_prep.synthetic_brain``,
1 mm) as the fixed image and the same brain warped by a known smooth displacement as the moving
image, so that the true fixed -> moving field is known. Every method registers every pair, the
methods alternating within each pair (DIO settings, FireANTs, ANTs, then the next pair), with the
same number of threads. Reported per method: Dice (%) of the nearest-neighbour warped moving label
against the fixed label (mean over labels, then pairs), endpoint error (voxels) against the true
field inside the brain, % of voxels with a negative Jacobian determinant, and the median seconds
of the registration itself (images already in memory; no file I/O).

The peers, as their documentation runs them:
- FireANTs ``GreedyRegistration`` (CPU): scales 4, 2, 1, iterations 200, 100, 50, CC with a 5-voxel
  window, compositive (diffeomorphic) warp, Adam lr 0.5, gradient / warp smoothing 1 / 0.5 voxels
  (the brain example of its README).
- ANTs ``ants.registration(type_of_transform="SyN")`` (antspyx defaults: an affine stage, then
  SyN with mutual information); its composed transform is read back as a displacement field.

Every transform is turned into a displacement field on the fixed grid in voxels (our convention),
so all methods are scored by the same code.

Usage: python bench/bench_dio_vs_peers.py [--size 96] [--pairs 3] [--threads 2] [--write]
(in the environment of bench/install.sh).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch
from bench_dio_defaults import make_pair
from machine import code_commit, describe_machine
from readme_section import write_readme_section

from monai_ext.metrics import dice_per_label, negative_jacobian_fraction
from monai_ext.networks import DIORegistration, build_feature_network
from monai_ext.solvers import MultiScaleSolver
from monai_ext.spatial import warp_label

SECTION = "## DIO with intensity features against FireANTs and ANTs"
BUNDLE_DEFAULT = "DIO: Adam, diffeomorphic, MSE (bundle default)"
DIO_SETTINGS = {
    BUNDLE_DEFAULT: dict(optimizer="adam", transform="diffeomorphic", dissimilarity="mse", convergence_eps=0.0),
    "DIO: Adam, diffeomorphic, MSE, early stopping": dict(
        optimizer="adam", transform="diffeomorphic", dissimilarity="mse", convergence_eps=1e-3
    ),
    "DIO: Adam, diffeomorphic, LNCC": dict(
        optimizer="adam", transform="diffeomorphic", dissimilarity="lncc", convergence_eps=0.0
    ),
    "DIO: Adam, diffeomorphic, LNCC, early stopping": dict(
        optimizer="adam", transform="diffeomorphic", dissimilarity="lncc"
    ),
    "DIO: Adam, free-form, MSE": dict(optimizer="adam", transform="freeform", convergence_eps=0.0),
    "DIO: SGD, free-form, MSE": dict(optimizer="sgd", transform="freeform", convergence_eps=0.0),
}
FIREANTS = "FireANTs 1.5.0 greedy (CPU)"
ANTS = "ANTs SyN (antspyx 0.6.3)"

Registration = Callable[[np.ndarray, np.ndarray], torch.Tensor]


def dio_method(setting: dict) -> Registration:
    network = DIORegistration(build_feature_network("intensity", spatial_dims=3), MultiScaleSolver(**setting))

    def register(fixed: np.ndarray, moving: np.ndarray) -> torch.Tensor:
        with torch.no_grad():  # the solver differentiates its objective inside (not inference_mode)
            pair = [torch.from_numpy(a)[None, None] for a in (fixed, moving)]
            return network.register(*pair).full_resolution_ddfs[-1]

    return register


def fireants_method(fixed: np.ndarray, moving: np.ndarray) -> torch.Tensor:
    import SimpleITK as sitk
    from fireants.io.image import BatchedImages, Image
    from fireants.registration.greedy import GreedyRegistration

    images = [BatchedImages([Image(sitk.GetImageFromArray(a), device="cpu")]) for a in (fixed, moving)]
    registration = GreedyRegistration(
        scales=[4, 2, 1],
        iterations=[200, 100, 50],
        fixed_images=images[0],
        moving_images=images[1],
        cc_kernel_size=5,
        deformation_type="compositive",
        smooth_grad_sigma=1,
        smooth_warp_sigma=0.5,
        optimizer="adam",
        optimizer_lr=0.5,
    )
    registration.optimize()
    with torch.no_grad():
        grid = registration.get_warped_coordinates(*images)  # (1, D, H, W, 3), x (last axis) first, [-1, 1]
    sizes = torch.tensor(fixed.shape[::-1], dtype=grid.dtype)
    voxels = ((grid + 1) / 2 * (sizes - 1)).flip(-1).movedim(-1, 1)
    identity = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=grid.dtype) for n in fixed.shape], indexing="ij"))
    return (voxels - identity).float()


def ants_method(fixed: np.ndarray, moving: np.ndarray) -> torch.Tensor:
    import ants

    fixed_image, moving_image = ants.from_numpy(fixed), ants.from_numpy(moving)  # spacing 1, identity direction
    result = ants.registration(fixed_image, moving_image, type_of_transform="SyN")
    with tempfile.TemporaryDirectory() as folder:
        path = ants.apply_transforms(
            fixed_image, moving_image, result["fwdtransforms"], compose=os.path.join(folder, "composed_")
        )
        field = ants.image_read(path).numpy()  # (*spatial, 3): physical = voxel displacement here
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(field, -1, 0)))[None].float()


def score(ddf: torch.Tensor, pair: dict) -> dict:
    labels = [int(v) for v in torch.unique(pair["fixed_label"]) if v > 0]
    warped = warp_label(pair["moving_label"], ddf)
    mask = pair["mask"][0, 0].bool()
    return {
        "dice": 100 * float(dice_per_label(warped, pair["fixed_label"], labels).nanmean()),
        "epe": float((ddf - pair["truth"]).norm(dim=1)[0][mask].mean()),
        "njd": float(negative_jacobian_fraction(ddf)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=96, help="grid of the synthetic brains (voxels per axis)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--amplitude", type=float, default=4.0, help="largest displacement of the known warp (voxels)")
    parser.add_argument("--threads", type=int, default=2, help="threads of every method (torch and ITK)")
    parser.add_argument("--write", action="store_true", help="write the section of bench/README.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)
    pairs = [make_pair(args.size, seed, args.amplitude) for seed in range(args.pairs)]
    methods: dict[str, Registration] = {name: dio_method(setting) for name, setting in DIO_SETTINGS.items()}
    methods[FIREANTS] = fireants_method
    methods[ANTS] = ants_method
    small = make_pair(32, 99, 2.0)  # warm-up of every method (first calls, thread pools)
    for register in methods.values():
        register(small["fixed"][0, 0].numpy(), small["moving"][0, 0].numpy())
    rows: dict[str, list[dict]] = {name: [] for name in methods}
    load = [os.getloadavg()[0]]
    for pair in pairs:
        fixed, moving = pair["fixed"][0, 0].numpy(), pair["moving"][0, 0].numpy()
        for name, register in methods.items():
            start = time.perf_counter()
            ddf = register(fixed, moving)
            seconds = time.perf_counter() - start
            rows[name].append(score(ddf, pair) | {"seconds": seconds})
            print(f"{name}: {rows[name][-1]}", flush=True)
    load.append(os.getloadavg()[0])
    initial = [score(torch.zeros_like(p["truth"]), p) for p in pairs]
    summary = {
        name: {key: float(np.mean([r[key] for r in results])) for key in ("dice", "epe", "njd")}
        | {"seconds": statistics.median(r["seconds"] for r in results)}
        | {"spread": (min(r["seconds"] for r in results), max(r["seconds"] for r in results))}
        for name, results in rows.items()
    }
    table = "\n".join(
        f"| {name} | {s['dice']:.2f} | {s['epe']:.2f} | {s['njd']:.3f} | {s['seconds']:.1f} | "
        f"{s['spread'][0]:.1f} - {s['spread'][1]:.1f} | {s['seconds'] / summary[FIREANTS]['seconds']:.2f} |"
        for name, s in summary.items()
    )
    default, fireants = summary[BUNDLE_DEFAULT], summary[FIREANTS]
    meets = (
        default["dice"] >= fireants["dice"]
        and default["epe"] <= fireants["epe"]
        and default["njd"] == 0
        and default["seconds"] <= 0.5 * fireants["seconds"]
    )
    text = f"""{SECTION}

`python bench/bench_dio_vs_peers.py --size {args.size} --pairs {args.pairs} --amplitude {args.amplitude:g} \
--threads {args.threads} --write` (in the environment of `bench/install.sh`): {args.pairs} synthetic brain pairs of
{args.size}^3 voxels at 1 mm, the moving image the fixed one warped by a known smooth displacement (largest
{args.amplitude:g} voxels); every method on every pair, alternating within each pair, {args.threads} threads each.
DIO: intensities as features (`feature_network="intensity"`, no training), iterations 200 / 100 / 50 at scales
4 / 2 / 1.
Machine: {describe_machine(torch.device("cpu"))}; commit {code_commit()}; 1-minute load average {load[0]:.1f} at the
start, {load[1]:.1f} at the end.

| method | Dice (%) | endpoint error (voxels) | NJD (%) | median s per pair | range (s) | time / FireANTs |
|---|---|---|---|---|---|---|
| identity (before registration) | {np.mean([r["dice"] for r in initial]):.2f} | \
{np.mean([r["epe"] for r in initial]):.2f} | 0 | - | - | - |
{table}

- Bundle default against FireANTs: Dice {default["dice"]:.2f} vs {fireants["dice"]:.2f} %, endpoint error
  {default["epe"]:.2f} vs {fireants["epe"]:.2f} voxels, NJD {default["njd"]:.3f} vs {fireants["njd"]:.3f} %, time
  **{default["seconds"] / fireants["seconds"]:.2f}x**; goal (FireANTs' accuracy or better, no folds, at most half its
  time): {"met" if meets else "not met"}.
"""
    print(text)
    if args.write:
        write_readme_section(SECTION, text)


if __name__ == "__main__":
    main()
