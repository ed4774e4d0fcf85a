"""A thick-slice scan registered to a 1 mm template: the DIO bundle (intensity features) against ANTs SyN.

The pair stands in for a clinical scan and an atlas: the template is a synthetic brain
(``data_prep.synthetic_brain``) on a 1 mm grid of ``--template_shape`` voxels; the scan is another
subject rendered on the same 1 mm grid and averaged into 4 x 4 x 5 mm voxels (its labels: the 1 mm
labels at the thick voxels' centres), stored with its own affine. Both are NIfTI files, and both
tools run as a user runs them, timed as whole registrations, alternating:

- DIO: ``python -m monai.bundle run`` with ``bundles/dio_brain/configs/inference.json``,
  ``--feature_network intensity`` and each solver setting of ``DIO_SETTINGS`` (the fixed and
  moving images keep their own grids, §4.3); the time includes starting the bundle, writing its
  outputs and scoring them (Dice, HD95, Jacobian measures), as a user's run does.
- ANTs: ``ants.registration(type_of_transform="SyN")`` (an affine stage, then SyN) on the two
  images as read by antspyx, then the moving label warped with nearest neighbour.

Scored on the template's grid: normalised mutual information (NMI, (H(A) + H(B)) / H(A, B), 64
bins, inside the template's head) of the template and the warped scan, and Dice (%) of the warped
scan labels against the template labels (mean over labels).

Usage: python bench/bench_dio_thick_slice_vs_ants.py [--template_shape 197 233 189]
[--settings default early_stopping thick_slice] [--repeats 1] [--threads 2] [--write]
(in the environment of bench/install.sh).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from machine import code_commit, describe_machine
from readme_section import write_readme_section

from data_prep.synthetic_brain import brain_subject
from monai_ext.metrics import dice_per_label

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Thick-slice scan to a 1 mm template: DIO against ANTs"
THICK_SPACING = (4, 4, 5)  # mm
ANTS = "ANTs SyN (antspyx 0.6.3)"
# solver settings of the bundle: key -> (description, command-line overrides)
DIO_SETTINGS = {
    "default": ("DIO, bundle default (200 / 100 / 50 iterations, no early stopping)", []),
    "early_stopping": ("DIO, early stopping (`--convergence_eps 0.001`)", ["--convergence_eps", "0.001"]),
    # ANTs' SyN schedule in antspyx (reg_iterations (40, 20, 0)) does not iterate on the finest level
    # either: a 4 x 4 x 5 mm scan holds no detail for a 1 mm level to match
    "thick_slice": (
        "DIO, thick-slice setting (`--iterations [200,100,0] --convergence_eps 0.001`)",
        ["--iterations", "[200,100,0]", "--convergence_eps", "0.001"],
    ),
}


def make_pair(folder: Path, template_shape: tuple[int, ...]) -> dict[str, Path]:
    """Write template (1 mm) and thick-slice scan (4 x 4 x 5 mm) images and labels into ``folder``."""
    template = brain_subject(template_shape, seed=0, index=0)
    subject = brain_subject(template_shape, seed=0, index=1)
    shape = tuple(n // s for n, s in zip(template_shape, THICK_SPACING))
    crop = tuple(slice(0, n * s) for n, s in zip(shape, THICK_SPACING))
    blocks = subject.image[crop].reshape(shape[0], 4, shape[1], 4, shape[2], 5)
    thick = blocks.mean(axis=(1, 3, 5)).astype(np.float32)
    centres = tuple(np.arange(n) * s + s // 2 for n, s in zip(shape, THICK_SPACING))
    thick_label = subject.label[np.ix_(*centres)].astype(np.int16)
    thick_affine = np.diag([*map(float, THICK_SPACING), 1.0])
    thick_affine[:3, 3] = [(s - 1) / 2.0 for s in THICK_SPACING]  # voxel centres of the averaged blocks
    paths = {
        "fixed": folder / "template.nii.gz",
        "fixed_label": folder / "template_label.nii.gz",
        "moving": folder / "scan.nii.gz",
        "moving_label": folder / "scan_label.nii.gz",
    }
    nib.save(nib.Nifti1Image(template.image, np.eye(4)), paths["fixed"])
    nib.save(nib.Nifti1Image(template.label.astype(np.int16), np.eye(4)), paths["fixed_label"])
    nib.save(nib.Nifti1Image(thick, thick_affine), paths["moving"])
    nib.save(nib.Nifti1Image(thick_label, thick_affine), paths["moving_label"])
    return paths


def normalised_mutual_information(a: np.ndarray, b: np.ndarray, mask: np.ndarray, bins: int = 64) -> float:
    joint, _, _ = np.histogram2d(a[mask], b[mask], bins=bins)
    p = joint / joint.sum()

    def entropy(q: np.ndarray) -> float:
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    return (entropy(p.sum(1)) + entropy(p.sum(0))) / entropy(p)


def run_dio(paths: dict[str, Path], out: Path, threads: int, setting: list[str]) -> tuple[np.ndarray, np.ndarray]:
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file"]
    command += ["bundles/dio_brain/configs/inference.json", "--bundle_root", "bundles/dio_brain"]
    for key in ("fixed", "moving", "fixed_label", "moving_label"):
        command += [f"--{key}", str(paths[key])]
    command += ["--feature_network", "intensity", "--output_dir", str(out), "--max_figures", "0", "--num_workers", "0"]
    command += setting
    environment = dict(os.environ, OMP_NUM_THREADS=str(threads))
    subprocess.run(command, cwd=ROOT, check=True, env=environment, capture_output=True)
    case = next(p.parent for p in out.rglob("warped_image.nii.gz"))
    return (
        np.asarray(nib.load(case / "warped_image.nii.gz").dataobj, dtype=np.float32).squeeze(),
        np.asarray(nib.load(case / "warped_label.nii.gz").dataobj).squeeze().astype(np.int64),
    )


def run_ants(paths: dict[str, Path]) -> tuple[np.ndarray, np.ndarray]:
    import ants

    fixed, moving = ants.image_read(str(paths["fixed"])), ants.image_read(str(paths["moving"]))
    result = ants.registration(fixed, moving, type_of_transform="SyN")
    label = ants.apply_transforms(
        fixed, ants.image_read(str(paths["moving_label"])), result["fwdtransforms"], interpolator="nearestNeighbor"
    )
    return result["warpedmovout"].numpy().astype(np.float32), label.numpy().astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template_shape", type=int, nargs=3, default=[197, 233, 189])
    parser.add_argument("--settings", nargs="+", choices=list(DIO_SETTINGS), default=list(DIO_SETTINGS))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="write the section of bench/README.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_pair(folder, tuple(args.template_shape))
        template = np.asarray(nib.load(paths["fixed"]).dataobj, dtype=np.float32)
        template_label = np.asarray(nib.load(paths["fixed_label"]).dataobj).astype(np.int64)
        moving_shape = nib.load(paths["moving"]).shape
        mask = template > 0
        labels = [int(v) for v in np.unique(template_label) if v > 0]
        runs = {DIO_SETTINGS[key][0]: functools.partial(run_dio, setting=DIO_SETTINGS[key][1]) for key in args.settings}
        runs[ANTS] = lambda paths, out, threads: run_ants(paths)
        times: dict[str, list[float]] = {name: [] for name in runs}
        scores: dict[str, tuple[float, float]] = {}
        load = [os.getloadavg()[0]]
        for repeat in range(args.repeats):
            for index, (name, run) in enumerate(runs.items()):
                start = time.perf_counter()
                warped, warped_label = run(paths, folder / f"run_{repeat}_{index}", args.threads)
                times[name].append(time.perf_counter() - start)
                dice = dice_per_label(
                    torch.from_numpy(warped_label)[None, None], torch.from_numpy(template_label)[None, None], labels
                )
                scores[name] = (normalised_mutual_information(template, warped, mask), 100 * float(dice.nanmean()))
                print(f"{name}: {times[name][-1]:.1f} s, NMI {scores[name][0]:.4f}, Dice {scores[name][1]:.2f}")
        load.append(os.getloadavg()[0])
    median = {name: statistics.median(t) for name, t in times.items()}
    rows = "\n".join(
        f"| {name} | {scores[name][0]:.4f} | {scores[name][1]:.2f} | {median[name]:.1f} | "
        f"{min(times[name]):.1f} - {max(times[name]):.1f} | {median[name] / median[ANTS]:.2f} |"
        for name in runs
    )
    meeting = [
        name for name in runs if name != ANTS and median[name] < median[ANTS] and scores[name][0] >= scores[ANTS][0]
    ]
    verdict = (
        "met by " + "; ".join(f"{name} ({median[name] / median[ANTS]:.2f}x)" for name in meeting)
        if meeting
        else "not met by any setting"
    )
    shape = "x".join(map(str, args.template_shape))
    text = f"""{SECTION}

`python bench/bench_dio_thick_slice_vs_ants.py --template_shape {" ".join(map(str, args.template_shape))} \
--settings {" ".join(args.settings)} --repeats {args.repeats} --threads {args.threads} --write` (in the environment of
`bench/install.sh`): a synthetic
template of {shape} voxels at 1 mm and another synthetic subject averaged into {"x".join(map(str, THICK_SPACING))} mm
voxels ({"x".join(map(str, moving_shape))}), as NIfTI files; each tool run as a user runs it and timed whole (DIO:
`python -m monai.bundle run` of the inference config with `--feature_network intensity` and the setting's
overrides, including writing and scoring its outputs; ANTs: `ants.registration` with `type_of_transform="SyN"`,
then the label warped), {args.threads} threads each, {args.repeats} alternated run(s). NMI and Dice on the
template's grid. Machine: {describe_machine(torch.device("cpu"))}; commit {code_commit()}; 1-minute load average
{load[0]:.1f} at the start, {load[1]:.1f} at the end.

| method | NMI | Dice (%) | median s | range (s) | time / ANTs |
|---|---|---|---|---|---|
{rows}

- Goal (under ANTs' time at its NMI or better): {verdict}.
"""
    print(text)
    if args.write:
        write_readme_section(SECTION, text)


if __name__ == "__main__":
    main()
