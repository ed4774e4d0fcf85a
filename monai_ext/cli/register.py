"""Register one pair of images with a uniGradICON-architecture network, as ``unigradicon-register`` does.

Pipeline (io_gradient_projection.md §2-3; uniGradICON's command-line tool):

1. read the fixed and moving image (any format MONAI ``LoadImage`` reads: NIfTI, NRRD, MHA, ...)
   and check them (3-D, one channel, finite, not constant; errors name the file);
2. scale intensities to [0, 1] per modality, each image on its own grid: MRI from its minimum to
   its 99th percentile, CT from -1000 to 1000 HU, clipped;
3. resample the moving image onto the fixed image's grid in world coordinates (trilinear, zero
   outside), so that the DDF lives on the fixed grid;
4. predict the DDF with the network on its own grid (175^3 for the official weights, images
   resized over the same field of view, ``NetworkGridInferer``), or fine-tune a copy of the network
   on the pair first (instance optimisation, ``InstanceOptimizationInferer``) with the IO paper's
   settings (§3.2: AMSGrad, learning rate 2e-5, weight decay 1e-3; §2.3: LNCC with sigma 5 voxels,
   symmetric, plus 1.5 x GradICON), the two gradients summed (``vanilla``) or with conflicts
   projected (``projected``, §2.4, ``GradientSurgery`` rule ``"random"``);
5. write the transform as an ITK displacement field on the fixed image's geometry (``.h5`` /
   ``.tfm``: ``DisplacementFieldTransform``; ``.nii.gz``: ITK / ANTs displacement-field image), the
   moving image warped onto the fixed grid in its original intensities, and the moving label
   warped with nearest neighbour.

Command line (``fire``)::

    python -m monai_ext.cli.register --fixed F.nii.gz --moving M.nii.gz --weights Step_2_final.trch \\
        --fixed_modality mri --moving_modality mri --io_iterations 50 --io_mode projected \\
        --transform_out transform.h5 --warped_moving_out warped.nii.gz

or the ``monai-register`` console script with the same arguments.

Differences from ``unigradicon-register`` (uniGradICON 1.0.6):

- IO follows the IO paper (AMSGrad, weight decay 1e-3, LNCC + 1.5 x GradICON) where uniGradICON
  uses Adam without weight decay; its other similarities (``--io_sim``), masks and Dice loss are
  not offered. ``io_mode="vanilla"`` is the closest to its IO; the default is ``"projected"``.
- The moving image is resampled onto the fixed grid in world space before both are resized to
  the network grid; uniGradICON resizes each image over its own field of view and composes the
  field with the two resizing transforms. Here a pair in different positions or orientations
  starts aligned in world space, and only the fixed field of view is registered.
- Resizing aligns the corner voxel centres (``align_corners=True``, the project's DDF convention),
  uniGradICON the cell edges: a sub-voxel difference in how the field of view maps onto 175^3.
- The transform file is one dense ``DisplacementFieldTransform`` on the fixed voxel grid (or an
  ANTs ``.nii.gz`` field), not a composite of resampling transforms and the 175^3 field: the same
  mapping, sampled at the fixed voxels.
- The warped image is float32 NIfTI (uniGradICON keeps the input pixel type and format); the
  warped label is written here (uniGradICON: ``unigradicon-warp --nearest_neighbor``).
- ``io_iterations=0`` (or None) means direct inference; weights are never downloaded.
- The 99th percentile is interpolated (MONAI / numpy) rather than the k-th smallest value.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from monai_ext.cli.register_options import OFFICIAL_WEIGHTS_URL, RegisterOptions
from monai_ext.cli.register_pipeline import make_inferer, read_pair, write_outputs
from monai_ext.cli.register_report import registration_summary
from monai_ext.errors import InputError, report_input_errors
from monai_ext.inferers.registration_inferer import IO_MODES
from monai_ext.networks import load_unigradicon_weights, unigradicon_network
from monai_ext.options import flag
from monai_ext.transforms import MODALITIES, modality_intensity_transform

__all__ = [
    "register",
    "register_command",
    "main",
    "modality_intensity_transform",
    "MODALITIES",
    "IO_MODES",
    "OFFICIAL_WEIGHTS_URL",
]


def register(
    fixed: str,
    moving: str,
    fixed_label: str | None = None,
    moving_label: str | None = None,
    weights: str | None = None,
    fixed_modality: str = "mri",
    moving_modality: str = "mri",
    io_iterations: int | None = 50,
    io_mode: str = "projected",
    transform_out: str | None = None,
    warped_moving_out: str | None = None,
    warped_label_out: str | None = None,
    device: str | None = None,
    seed: int = 0,
    batchnorm: str = "eval",
    network_size: int | Sequence[int] = (175, 175, 175),
    allow_random_weights: bool = False,
    network: nn.Module | None = None,
    progress: bool = True,
    verbose: bool = True,
    debug: bool = False,
) -> torch.Tensor:
    """Register ``moving`` to ``fixed`` with a uniGradICON-architecture network, optionally with IO.

    The images are read with MONAI ``LoadImage``, scaled per modality (``modality_intensity_transform``),
    the moving image is resampled onto the fixed grid in world space, the network predicts the
    displacement field on its own ``network_size`` grid (images resized over the same field of
    view) and the field is mapped back to the fixed grid. With ``io_iterations > 0`` and ``io_mode``
    ``"vanilla"`` or ``"projected"``, a copy of the network is first fine-tuned on the pair
    (io_gradient_projection.md §3.2: AMSGrad, learning rate 2e-5, weight decay 1e-3; loss §2.3:
    symmetric LNCC with sigma 5 voxels + 1.5 x GradICON, sparse sampling as uniGradICON); the
    network given is never modified. See the module docstring for the whole pipeline.

    Args:
        fixed: fixed image file (3-D, one channel; any format MONAI ``LoadImage`` reads).
        moving: moving image file (any size, spacing and orientation; resampled onto the fixed grid).
        fixed_label: label map on the fixed grid; with ``moving_label``, Dice before / after is printed.
        moving_label: label map of the moving image (its own grid); warped with nearest neighbour.
        weights: uniGradICON / multiGradICON weight file (the official ``Step_2_final.trch``, a state
            dict, released at ``OFFICIAL_WEIGHTS_URL``) or one saved from ``unigradicon_network()``.
            Required unless ``network`` is given or ``allow_random_weights`` is set.
        fixed_modality: ``"mri"`` (min..99th percentile -> [0, 1]) or ``"ct"`` (-1000..1000 HU ->
            [0, 1]), case-insensitive.
        moving_modality: as ``fixed_modality``, for the moving image.
        io_iterations: instance-optimisation steps (paper: 50 or 100); 0 or None: direct inference.
        io_mode: ``"none"`` (direct inference, whatever ``io_iterations``), ``"vanilla"`` (the
            gradients of the summed loss) or ``"projected"`` (gradient projection of the IO paper, §2.4).
        transform_out: transform file on the fixed geometry: ``.h5`` / ``.hdf5`` / ``.tfm``
            (ITK ``DisplacementFieldTransform``) or ``.nii`` / ``.nii.gz`` (ITK / ANTs
            displacement-field image, LPS mm). Maps fixed physical points to moving ones, so
            ITK / ANTs / Slicer resample the original moving image with it.
        warped_moving_out: the moving image (original intensities) warped onto the fixed grid,
            ``.nii`` / ``.nii.gz``, float32, trilinear, zero outside the moving image.
        warped_label_out: where to write the warped moving label (``.nii`` / ``.nii.gz``); needs ``moving_label``.
        device: ``"cuda"``, ``"cpu"``, ...; default: the device of ``network`` if given, else CUDA
            when available, else CPU.
        seed: seed of the random parts: GradICON's sample-point perturbation, the projected mode's
            choice of the gradient to project, and the weights of ``allow_random_weights``.
        batchnorm: ``"eval"`` (default, as uniGradICON: BatchNorm uses the stored running
            statistics during IO and prediction) or ``"train"`` (batch statistics of the pair); only
            used by IO (direct inference always runs in evaluation mode).
        network_size: the network's grid (official weights: 175^3; at least 65 per axis, e.g.
            ``(66, 66, 66)`` for quick tests).
        allow_random_weights: for testing only: with ``weights=None``, run a randomly initialised
            network (seeded by ``seed``) instead of raising. Its output is meaningless.
        network: Python API only: a ready network (``[moving, fixed] -> DDF``) to use instead of
            building one and loading ``weights``; moved to ``device`` when that is given, its
            weights and BatchNorm statistics left unchanged (IO works on a copy).
        progress: show a progress bar during IO.
        verbose: print a short summary (mode, IO loss, negative-Jacobian fraction, Dice, time, outputs).
        debug: command line only: an error in the inputs prints its full traceback instead of one line.

    Returns:
        the displacement field ``(1, 3, *fixed_spatial)``, float32 on the CPU, in voxels of the
        fixed grid, pull-back convention of ``monai_ext.spatial``
        (``warped(x) = moving_on_fixed_grid(x + u(x))``).

    Raises:
        FileNotFoundError: an input image or label does not exist (named).
        monai_ext.errors.CheckpointError: the weights file is missing, unreadable or does not fit.
        ValueError: bad option (the message lists the valid values), unreadable or unsuitable
            image (named: not 3-D, several channels, NaN, constant, constant after intensity
            scaling), a weights file that does not fit the network, or no weights given.
    """
    start = time.perf_counter()
    options = RegisterOptions.check(
        fixed=fixed,
        moving=moving,
        weights=weights,
        fixed_modality=fixed_modality,
        moving_modality=moving_modality,
        io_iterations=io_iterations,
        io_mode=io_mode,
        transform_out=transform_out,
        warped_moving_out=warped_moving_out,
        fixed_label=fixed_label,
        moving_label=moving_label,
        warped_label_out=warped_label_out,
        device=device,
        seed=seed,
        batchnorm=batchnorm,
        network_size=network_size,
        allow_random_weights=allow_random_weights,
        network=network,
    )
    progress, verbose = flag(progress, "progress"), flag(verbose, "verbose")
    pair = read_pair(options.sources, options.fixed_modality, options.moving_modality)
    if network is None:
        with torch.random.fork_rng(devices=[]):  # seeded initialisation, the caller's RNG state untouched
            torch.manual_seed(int(seed))
            network = unigradicon_network(input_shape=options.size)
        if weights is not None:
            load_unigradicon_weights(network, weights, map_location="cpu")
    network = network.to(options.device)
    inferer = make_inferer(options.io_mode, options.steps, options.batchnorm, options.size, int(seed), progress)

    registration_start = time.perf_counter()
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():  # IO enables gradients itself, on its copy of the network
            ddf = inferer(pair.pop("inputs").to(options.device), network).float()
    finally:
        network.train(was_training)
    registration_time = time.perf_counter() - registration_start

    written, dice_line = write_outputs(pair, ddf, options.transform_path, options.warped_path, options.label_path)
    ddf = ddf.cpu()
    if verbose:
        total_time = time.perf_counter() - start
        print(
            registration_summary(options, inferer, ddf, dice_line, written, registration_time, total_time), flush=True
        )
    return ddf


OUTPUTS = ("transform_out", "warped_moving_out", "warped_label_out")


@functools.wraps(register)
def register_command(*args: Any, **kwargs: Any) -> None:
    """``register`` for the command line: same arguments; the field goes to files, not to stdout, so
    a command that names no output file is refused before anything runs. A bad input or option ends
    with one line naming it (``--debug true``: with the full traceback)."""
    bound = inspect.signature(register).bind(*args, **kwargs)
    report_input_errors(debug=flag(bound.arguments.get("debug", False), "debug"))
    if not any(bound.arguments.get(name) for name in OUTPUTS):
        raise InputError(f"nothing would be written: give at least one of --{', --'.join(OUTPUTS)}.")
    register(*args, **kwargs)


def main() -> None:
    """Console script ``monai-register``: ``fire`` command line of :func:`register`."""
    import fire

    fire.Fire(register_command, name="monai-register")


if __name__ == "__main__":
    main()
