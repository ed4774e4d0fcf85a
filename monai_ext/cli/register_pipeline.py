"""The steps of ``monai-register``: read and check the pair, build the inferer, write the outputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import EnsureChannelFirst, LoadImage, ResampleToMatch
from monai.utils import convert_to_tensor

from monai_ext.errors import InputError, InputFileNotFoundError
from monai_ext.inferers import NetworkGridInferer, registration_inferer
from monai_ext.io.displacement_field import write_itk_displacement_field
from monai_ext.io.nifti import save_nifti
from monai_ext.losses import GradICONLoss, LNCCLoss
from monai_ext.metrics.segmentation import dice_per_label
from monai_ext.objectives import InverseConsistentObjective
from monai_ext.spatial import fixed_to_moving_matrix, sample_moving
from monai_ext.transforms import CheckPaird, modality_intensity_transform
from monai_ext.transforms.pair_checks import check_whole_number_labels

__all__ = ["read_pair", "make_inferer", "write_outputs", "IO_SETTINGS"]

# io_gradient_projection.md §3.2 (optimiser) and §2.3 (loss)
IO_OPTIMIZER = "amsgrad"
IO_LEARNING_RATE = 2e-5
IO_WEIGHT_DECAY = 1e-3
LNCC_SIGMA = 5.0
GRADICON_LAMBDA = 1.5
IO_SETTINGS = (
    f"{IO_OPTIMIZER} lr {IO_LEARNING_RATE:g}, weight decay {IO_WEIGHT_DECAY:g}, "
    f"LNCC sigma {LNCC_SIGMA:g} + {GRADICON_LAMBDA:g} x GradICON"
)


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
        raise InputFileNotFoundError(f"{key} not found: '{path}'.")
    try:
        image = EnsureChannelFirst()(LoadImage(image_only=True)(str(path)))
    except Exception as err:  # readers raise several types for unreadable or unsupported files
        raise InputError(f"{key} '{path}': cannot be read as an image ({err}).") from err
    return image


def _check_label(label: Any, key: str, path: Path) -> None:
    if label.ndim != 4 or label.shape[0] != 1:
        raise InputError(
            f"{key} '{path}' must be a single-channel 3-D label map, got shape {tuple(label.shape)} (channel first)."
        )
    check_whole_number_labels(_as_float_tensor(label), f"{key} '{path}'")


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


def read_pair(sources: dict[str, Path], fixed_modality: str, moving_modality: str) -> dict[str, Any]:
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
            raise InputError(
                f"{key} '{path}' has {pair[key].shape[0]} channels; uniGradICON registers single-channel images."
            )
        image = modality_intensity_transform(modality)(pair[key])  # on the image's own grid
        values = _as_float_tensor(image)
        if not bool(values.max() > values.min()):
            reason = "99th percentile = minimum" if modality == "mri" else "no values inside -1000..1000 HU"
            raise InputError(f"{key} '{path}' is constant after {modality.upper()} intensity scaling ({reason}).")
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
            raise InputError(
                f"fixed_label '{sources['fixed_label']}' is not on the fixed image's grid (shape "
                f"{tuple(label.shape[1:])} vs {tuple(fixed_image.shape[1:])}, or a different affine)."
            )
    return pair


def make_inferer(
    io_mode: str, steps: int, batchnorm: str, size: Sequence[int], seed: int, progress: bool
) -> NetworkGridInferer:
    """``NetworkGridInferer`` for direct inference, else IO with the paper's settings (§2.3, §3.2),
    its random parts (GradICON's sample points, the projected mode's draws) seeded by ``seed``."""
    objective = InverseConsistentObjective(
        LNCCLoss(sigma=LNCC_SIGMA),
        # uniGradICON's GradientICONSparse: every second voxel, randomly perturbed sample points
        GradICONLoss(sampling="sparse", generator=torch.Generator().manual_seed(seed)),
    )
    return registration_inferer(
        objective,
        io_mode=io_mode,
        steps=steps,
        spatial_size=size,
        optimizer=IO_OPTIMIZER,
        learning_rate=IO_LEARNING_RATE,
        weight_decay=IO_WEIGHT_DECAY,
        regularization_weight=GRADICON_LAMBDA,
        batchnorm=batchnorm,
        generator=torch.Generator().manual_seed(seed + 1),
        progress=progress,
    )


def write_outputs(
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
