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
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import (
    EnsureChannelFirst,
    LoadImage,
    ResampleToMatch,
)
from monai.utils import convert_to_tensor
from torch import nn

from monai_ext.inferers import InstanceOptimizationInferer, NetworkGridInferer
from monai_ext.inferers.instance_optimization import BATCHNORM_MODES
from monai_ext.inferers.registration_inferer import IO_MODES, IO_SURGERY
from monai_ext.io.atomic import full_suffix
from monai_ext.io.displacement_field import IMAGE_SUFFIXES, TRANSFORM_SUFFIXES, write_itk_displacement_field
from monai_ext.io.nifti import save_nifti
from monai_ext.losses import GradICONLoss, LNCCLoss
from monai_ext.metrics.jacobian import negative_jacobian_fraction
from monai_ext.metrics.segmentation import dice_per_label
from monai_ext.networks import load_unigradicon_weights, unigradicon_network
from monai_ext.objectives import InverseConsistentObjective
from monai_ext.spatial import fixed_to_moving_matrix, sample_moving
from monai_ext.surgery import GradientSurgery
from monai_ext.transforms import MODALITIES, CheckPaird, modality_intensity_transform

__all__ = [
    "register",
    "register_command",
    "main",
    "modality_intensity_transform",
    "MODALITIES",
    "IO_MODES",
]

# io_gradient_projection.md §3.2 (optimiser) and §2.3 (loss)
IO_OPTIMIZER = "amsgrad"
IO_LEARNING_RATE = 2e-5
IO_WEIGHT_DECAY = 1e-3
LNCC_SIGMA = 5.0
GRADICON_LAMBDA = 1.5
OFFICIAL_WEIGHTS_URL = "https://github.com/uncbiag/uniGradICON/releases/download/unigradicon_weights/Step_2_final.trch"
IMAGE_OUTPUT_SUFFIXES = (".nii", ".nii.gz")


def _check_choice(name: str, value: Any, valid: Sequence[str]) -> str:
    choice = value.lower() if isinstance(value, str) else value
    if choice not in valid:
        raise ValueError(f"{name} must be one of {', '.join(repr(v) for v in valid)}; got {value!r}.")
    return choice


def _as_float_tensor(x: Any) -> torch.Tensor:
    """A plain float32 ``torch.Tensor`` (no MONAI metadata)."""
    return convert_to_tensor(x, dtype=torch.float32, track_meta=False)


def _affine(image: Any) -> np.ndarray:
    """The 4x4 RAS (nibabel) affine MONAI's readers attach to a loaded image, float64."""
    return np.asarray(torch.as_tensor(image.affine).detach().cpu().numpy(), dtype=np.float64)


def _load(path: str | Path, key: str) -> Any:
    """Read one image with MONAI ``LoadImage`` and make it channel-first, naming the file on failure."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{key} not found: '{path}'.")
    try:
        image = EnsureChannelFirst()(LoadImage(image_only=True)(str(path)))
    except Exception as err:  # readers raise several types for unreadable or unsupported files
        raise ValueError(f"{key} '{path}': cannot be read as an image ({err}).") from err
    return image


def _check_output(path: str | Path | None, name: str, suffixes: Sequence[str], inputs: Sequence[Path]) -> Path | None:

    if path is None or path == "":
        return None
    path = Path(path)
    if full_suffix(path).lower() not in suffixes:
        raise ValueError(f"{name} '{path}': unsupported extension; use one of {', '.join(suffixes)}.")
    if any(path.resolve() == source.resolve() for source in inputs):
        raise ValueError(f"{name} '{path}' is one of the input files; refusing to overwrite it.")
    return path


def _network_size(network_size: int | Sequence[int]) -> tuple[int, int, int]:
    size = (network_size,) * 3 if isinstance(network_size, int) else tuple(network_size)
    if len(size) != 3 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in size):
        raise ValueError(f"network_size must be three positive integers, got {network_size!r}.")
    return tuple(int(s) for s in size)  # type: ignore[return-value]


def _io_steps(io_iterations: Any) -> int:
    if io_iterations is None:
        return 0
    if isinstance(io_iterations, bool) or not isinstance(io_iterations, (int, float, np.integer)):
        raise ValueError(f"io_iterations must be a non-negative integer (or None), got {io_iterations!r}.")
    if not float(io_iterations).is_integer() or io_iterations < 0:
        raise ValueError(f"io_iterations must be a non-negative integer (or None), got {io_iterations!r}.")
    return int(io_iterations)


def _check_label(label: Any, key: str, path: Path) -> None:
    if label.ndim != 4 or label.shape[0] != 1:
        raise ValueError(
            f"{key} '{path}' must be a single-channel 3-D label map, got shape {tuple(label.shape)} (channel first)."
        )
    values = _as_float_tensor(label)
    if not torch.isfinite(values).all():
        raise ValueError(f"{key} '{path}' contains NaN or infinite values.")


def _sample_on_fixed_grid(source: Any, ddf: torch.Tensor, fixed_affine: np.ndarray, mode: str) -> torch.Tensor:
    """``source(x + u(x))`` for every fixed voxel ``x``, read from the source image's own grid through
    the two images' affines (``monai_ext.spatial.sample_moving``), ``mode`` ``"bilinear"`` or
    ``"nearest"``, zero outside the source image as ITK's resampler does by default. One
    interpolation of the original image, so the warped output is as sharp as ``unigradicon-register``'s.

    Args:
        source: loaded channel-first image ``(C, *S)`` with its RAS ``affine``.
        ddf: ``(1, 3, *F)`` voxel DDF on the fixed grid.
        fixed_affine: 4x4 RAS affine of the fixed image.

    Returns:
        ``(C, *F)`` float32 on ``ddf``'s device.
    """
    fixed_to_source = fixed_to_moving_matrix(
        fixed_affine, _affine(source), ddf.shape[2:], source.shape[1:], dtype=torch.float32, device=ddf.device
    )
    values = _as_float_tensor(source).to(device=ddf.device, dtype=torch.float32).unsqueeze(0)
    return sample_moving(values, ddf.float(), fixed_to_source, mode=mode, padding_mode="zeros")[0]


def _label_dtype(label: np.ndarray) -> np.dtype:
    if label.size == 0 or (label.min() >= 0 and label.max() <= np.iinfo(np.uint8).max):
        return np.dtype(np.uint8)
    if label.min() >= np.iinfo(np.int16).min and label.max() <= np.iinfo(np.int16).max:
        return np.dtype(np.int16)
    return np.dtype(np.int32)


def _mean_dice(pred: torch.Tensor, ref: torch.Tensor) -> tuple[float, int]:
    """Mean Dice over the foreground labels of ``ref`` and ``pred`` (``(*F)`` label maps), and their count."""
    labels = sorted({int(v) for v in torch.unique(torch.cat([pred.flatten(), ref.flatten()])).tolist()} - {0})
    if not labels:
        return float("nan"), 0
    dice = dice_per_label(pred[None, None], ref[None, None], labels)[0]
    return float(torch.nanmean(dice)), len(labels)


def _read_pair(sources: dict[str, Path], fixed_modality: str, moving_modality: str) -> dict[str, Any]:
    """Read and check the pair (and labels); build the network input on the fixed grid.

    Returns a dict with ``fixed_image`` and ``moving_image`` as read (MONAI ``MetaTensor``,
    ``(1, *spatial)``, RAS affine), ``fixed_affine`` (4x4 numpy), ``inputs`` (``(1, 2, *F)``:
    the scaled moving image resampled onto the fixed grid, then the scaled fixed image) and the
    labels found (``fixed_label``, ``moving_label``).
    """
    pair = {"fixed_image": _load(sources["fixed"], "fixed"), "moving_image": _load(sources["moving"], "moving")}
    CheckPaird(spatial_dims=3)(pair)  # 3-D, finite, not constant; errors name the file
    scaled = []
    for key, modality, path in (
        ("fixed_image", fixed_modality, sources["fixed"]),
        ("moving_image", moving_modality, sources["moving"]),
    ):
        if pair[key].shape[0] != 1:
            raise ValueError(
                f"{key} '{path}' has {pair[key].shape[0]} channels; uniGradICON registers single-channel images."
            )
        image = modality_intensity_transform(modality)(pair[key])  # on the image's own grid
        values = _as_float_tensor(image)
        if not bool(values.max() > values.min()):
            reason = "99th percentile = minimum" if modality == "mri" else "no values inside -1000..1000 HU"
            raise ValueError(f"{key} '{path}' is constant after {modality.upper()} intensity scaling ({reason}).")
        scaled.append(image)
    fixed_scaled, moving_scaled = scaled
    moving_on_fixed = ResampleToMatch(mode="bilinear", padding_mode="zeros")(moving_scaled, fixed_scaled)
    pair["inputs"] = torch.cat([_as_float_tensor(moving_on_fixed), _as_float_tensor(fixed_scaled)], dim=0).unsqueeze(0)
    pair["fixed_affine"] = _affine(pair["fixed_image"])
    for key in ("fixed_label", "moving_label"):
        if key in sources:
            pair[key] = _load(sources[key], key)
            _check_label(pair[key], key, sources[key])
    if "fixed_label" in pair:
        label, fixed_image = pair["fixed_label"], pair["fixed_image"]
        if tuple(label.shape[1:]) != tuple(fixed_image.shape[1:]) or not np.allclose(
            _affine(label), pair["fixed_affine"], atol=1e-3
        ):
            raise ValueError(
                f"fixed_label '{sources['fixed_label']}' is not on the fixed image's grid (shape "
                f"{tuple(label.shape[1:])} vs {tuple(fixed_image.shape[1:])}, or a different affine)."
            )
    return pair


def _make_inferer(
    io_mode: str, steps: int, batchnorm: str, size: Sequence[int], seed: int, progress: bool
) -> NetworkGridInferer:
    """``NetworkGridInferer`` for direct inference, else IO with the paper's settings (§2.3, §3.2)."""
    if io_mode == "none" or steps == 0:
        return NetworkGridInferer(spatial_size=size)
    objective = InverseConsistentObjective(
        LNCCLoss(sigma=LNCC_SIGMA),
        # uniGradICON's GradientICONSparse: every second voxel, randomly perturbed sample points
        GradICONLoss(sampling="sparse", generator=torch.Generator().manual_seed(seed)),
    )
    surgery = GradientSurgery.from_mode(
        IO_SURGERY[io_mode], weight=GRADICON_LAMBDA, generator=torch.Generator().manual_seed(seed + 1)
    )
    return InstanceOptimizationInferer(
        objective,
        steps=steps,
        optimizer=IO_OPTIMIZER,
        learning_rate=IO_LEARNING_RATE,
        weight_decay=IO_WEIGHT_DECAY,
        surgery=surgery,
        batchnorm=batchnorm,
        spatial_size=size,
        progress=progress,
    )


def _write_outputs(
    pair: dict[str, Any],
    ddf: torch.Tensor,
    transform_path: Path | None,
    warped_path: Path | None,
    label_path: Path | None,
) -> tuple[list[Path], str | None]:
    """Write the transform, warped image and warped label; return the files and a Dice line (or None)."""
    affine = pair["fixed_affine"]
    written = []
    if transform_path is not None:
        written.append(write_itk_displacement_field(transform_path, ddf[0].cpu().numpy(), affine))
    if warped_path is not None:
        warped = _sample_on_fixed_grid(pair["moving_image"], ddf, affine, "bilinear")[0]
        written.append(save_nifti(warped_path, warped.cpu().numpy(), affine, dtype=np.float32))
    if "moving_label" not in pair:
        return written, None
    warped_label = torch.round(_sample_on_fixed_grid(pair["moving_label"], ddf, affine, "nearest")[0])
    if label_path is not None:
        array = warped_label.cpu().numpy().astype(np.int64)
        written.append(save_nifti(label_path, array, affine, dtype=_label_dtype(array)))
    if "fixed_label" not in pair:
        return written, None
    reference = torch.round(_as_float_tensor(pair["fixed_label"])[0]).to(warped_label.device)
    initial = torch.round(_sample_on_fixed_grid(pair["moving_label"], torch.zeros_like(ddf), affine, "nearest")[0])
    before, count = _mean_dice(initial, reference)
    after, _ = _mean_dice(warped_label, reference)
    return written, f"Dice (mean over {count} labels): {before:.4f} before, {after:.4f} after"


def register(
    fixed: str,
    moving: str,
    weights: str | None = None,
    fixed_modality: str = "mri",
    moving_modality: str = "mri",
    io_iterations: int | None = 50,
    io_mode: str = "projected",
    transform_out: str | None = None,
    warped_moving_out: str | None = None,
    fixed_label: str | None = None,
    moving_label: str | None = None,
    warped_label_out: str | None = None,
    device: str | None = None,
    seed: int = 0,
    batchnorm: str = "eval",
    network_size: int | Sequence[int] = (175, 175, 175),
    allow_random_weights: bool = False,
    network: nn.Module | None = None,
    progress: bool = True,
    verbose: bool = True,
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
        fixed_label: label map on the fixed grid; with ``moving_label``, Dice before / after is printed.
        moving_label: label map of the moving image (its own grid); warped with nearest neighbour.
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

    Returns:
        the displacement field ``(1, 3, *fixed_spatial)``, float32 on the CPU, in voxels of the
        fixed grid, pull-back convention of ``monai_ext.spatial``
        (``warped(x) = moving_on_fixed_grid(x + u(x))``).

    Raises:
        FileNotFoundError: an input image, label or the weights file does not exist (named).
        ValueError: bad option (the message lists the valid values), unreadable or unsuitable
            image (named: not 3-D, several channels, NaN, constant, constant after intensity
            scaling), a weights file that does not fit the network, or no weights given.
    """
    start = time.perf_counter()
    # --- options and files, checked before anything is read ---
    fixed_modality = _check_choice("fixed_modality", fixed_modality, MODALITIES)
    moving_modality = _check_choice("moving_modality", moving_modality, MODALITIES)
    io_mode = _check_choice("io_mode", io_mode, IO_MODES)
    batchnorm = _check_choice("batchnorm", batchnorm, BATCHNORM_MODES)
    steps = _io_steps(io_iterations)
    size = _network_size(network_size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}.")
    if network is not None and not isinstance(network, nn.Module):
        raise ValueError(
            f"network must be a torch.nn.Module (Python API only), got {type(network).__name__}; "
            "on the command line give --weights."
        )
    if network is not None and weights is not None:
        raise ValueError("give either weights (a weight file) or network (a ready module), not both.")
    if network is None and weights is None and not allow_random_weights:
        raise ValueError(
            "no network weights given: pass weights=<path to Step_2_final.trch> (the official uniGradICON weights: "
            f"{OFFICIAL_WEIGHTS_URL}); allow_random_weights=True runs a random network, for testing only."
        )
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"weights file not found: '{weights}'.")
    if warped_label_out and not moving_label:
        raise ValueError("warped_label_out needs moving_label (the label map to warp).")
    if fixed_label and not moving_label:
        raise ValueError("fixed_label is only used with moving_label (Dice before and after registration).")
    sources = {"fixed": fixed, "moving": moving, "fixed_label": fixed_label, "moving_label": moving_label}
    sources = {key: Path(value) for key, value in sources.items() if value}
    for key, path in sources.items():
        if not path.is_file():
            raise FileNotFoundError(f"{key} not found: '{path}'.")
    inputs = list(sources.values())
    transform_path = _check_output(transform_out, "transform_out", TRANSFORM_SUFFIXES + IMAGE_SUFFIXES, inputs)
    warped_path = _check_output(warped_moving_out, "warped_moving_out", IMAGE_OUTPUT_SUFFIXES, inputs)
    label_path = _check_output(warped_label_out, "warped_label_out", IMAGE_OUTPUT_SUFFIXES, inputs)
    if network is not None:
        expected = getattr(network, "input_shape", None)
        if expected is not None and list(expected) != list(size):
            raise ValueError(f"network expects inputs of size {list(expected)}, but network_size is {list(size)}.")
        if device is None:
            first = next(network.parameters(), None)
            device = first.device if first is not None else "cpu"
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    run_device = torch.device(device)

    pair = _read_pair(sources, fixed_modality, moving_modality)
    if network is None:
        with torch.random.fork_rng(devices=[]):  # seeded initialisation, the caller's RNG state untouched
            torch.manual_seed(int(seed))
            network = unigradicon_network(input_shape=size)
        if weights is not None:
            load_unigradicon_weights(network, weights, map_location="cpu")
    network = network.to(run_device)
    inferer = _make_inferer(io_mode, steps, batchnorm, size, int(seed), progress)

    registration_start = time.perf_counter()
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():  # IO enables gradients itself, on its copy of the network
            ddf = inferer(pair.pop("inputs").to(run_device), network).float()
    finally:
        network.train(was_training)
    registration_time = time.perf_counter() - registration_start

    written, dice_line = _write_outputs(pair, ddf, transform_path, warped_path, label_path)
    ddf = ddf.cpu()
    if verbose:
        optimised = io_mode != "none" and steps > 0
        if optimised:
            mode_line = (
                f"instance optimisation ({io_mode}), {steps} step{'s' if steps > 1 else ''}: "
                f"{IO_OPTIMIZER} lr {IO_LEARNING_RATE:g}, "
                f"weight decay {IO_WEIGHT_DECAY:g}, LNCC sigma {LNCC_SIGMA:g} + {GRADICON_LAMBDA:g} x GradICON"
            )
        else:
            mode_line = "direct inference"
        lines = [
            f"registered {sources['moving']} -> {sources['fixed']}",
            f"  mode: {mode_line}; network grid {'x'.join(map(str, size))}; device {run_device}",
        ]
        if optimised and inferer.last_losses:
            losses = inferer.last_losses
            line = (
                f"  IO loss (LNCC + lambda GradICON): {losses[0]:.5f} at the first step, {losses[-1]:.5f} at the last"
            )
            rates = [r for r in inferer.last_conflict_rates if math.isfinite(r)]
            if rates:  # measured by the projected mode: fraction of parameter tensors in conflict
                line += f"; mean conflict rate {sum(rates) / len(rates):.3f}"
            lines.append(line)
        njd = float(negative_jacobian_fraction(ddf)[0])
        lines.append(f"  negative Jacobian determinant: {njd:.4f} % of fixed-grid voxels")
        if dice_line:
            lines.append(f"  {dice_line}")
        lines.append(f"  time: {registration_time:.1f} s registration, {time.perf_counter() - start:.1f} s total")
        lines.extend(f"  wrote {path}" for path in written)
        print("\n".join(lines), flush=True)
    return ddf


@functools.wraps(register)
def register_command(*args: Any, **kwargs: Any) -> None:
    """``register`` for the command line: same arguments; the field goes to files, not to stdout."""
    register(*args, **kwargs)


def main() -> None:
    """Console script ``monai-register``: ``fire`` command line of :func:`register`."""
    import fire

    fire.Fire(register_command, name="monai-register")


if __name__ == "__main__":
    main()
