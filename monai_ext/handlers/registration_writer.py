"""Write what a registration produced for each pair: warped images, labels, field, QC figure."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from monai.utils import min_version, optional_import

from monai_ext.handlers.case_names import pair_case_names
from monai_ext.io.displacement_field import PlaneNotInITK2DError, is_oblique_plane, write_itk_displacement_field
from monai_ext.io.nifti import save_nifti
from monai_ext.io.qc_figure import save_registration_figure
from monai_ext.io.submission import submission_filename, write_submission_displacement
from monai_ext.options import check_option
from monai_ext.spatial import batch_affines

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
logger = logging.getLogger(__name__)

__all__ = ["RegistrationWriter"]

DDF_FORMATS = ("nii.gz", "h5")
_SUBMISSION = "submission"  # sub-folder of a pair's staging folder holding its submission file


class RegistrationWriter:
    """Ignite handler writing, for every pair, into ``output_dir/<case>/``:

    - ``warped_image.nii.gz``: the moving image warped onto the fixed grid (fixed image's affine);
    - ``warped_label.nii.gz``: the moving label warped with nearest neighbour (if labels exist);
    - ``ddf.nii.gz`` (ITK/ANTs displacement-field image, LPS mm) or ``ddf.h5`` (ITK
      ``DisplacementFieldTransform``): the transform in world coordinates, readable by ITK, ANTs and
      3D Slicer, built from the fixed image's affine (see ``monai_ext.io.displacement_field``).
      An oblique 2-D slice gets ``ddf.h5`` either way: a NIfTI image cannot hold its direction;
    - ``qc.png`` for the first ``max_figures`` pairs: fixed / moving / warped / grid / det(J);
    - with ``submission_dir``: one file per pair, the voxel displacement as ``[X, Y, Z, 3]`` in the
      Learn2Reg / LUMIR submission format (``monai_ext.io.submission``), named from the fixed and
      moving file names by ``submission_template`` (LUMIR ``disp_FFFF_MMMM.nii.gz``, Learn2Reg
      ``disp_FFFF_0000_MMMM_0000.nii.gz``).

    A pair's files are written to a hidden staging folder and moved into place together once all
    are written: a pair has all its outputs or none, and an interrupted run leaves no partial file.
    Reads ``engine.state.output`` of a ``RegistrationEvaluator``.

    Args:
        output_dir: root output folder.
        ddf_format: ``"nii.gz"`` or ``"h5"``.
        write_ddf, write_warped_image, write_warped_label: switch the outputs.
        max_figures: number of QC figures per run (0 disables them).
        submission_dir: folder for Learn2Reg / LUMIR displacement files (None: not written).
        submission_template: their file name: ``"lumir"``, ``"learn2reg"`` or a format string with
            ``{fixed}``, ``{moving}``, ``{fixed_modality}``, ``{moving_modality}``.
    """

    def __init__(
        self,
        output_dir: str | Path,
        ddf_format: str = "nii.gz",
        write_ddf: bool = True,
        write_warped_image: bool = True,
        write_warped_label: bool = True,
        max_figures: int = 4,
        submission_dir: str | Path | None = None,
        submission_template: str = "lumir",
    ) -> None:
        check_option("ddf_format", ddf_format, DDF_FORMATS)
        self.output_dir = Path(output_dir)
        self.ddf_format = ddf_format
        self.write_ddf = write_ddf
        self._warned_plane = False
        self._warned_oblique = False
        self.write_warped_image = write_warped_image
        self.write_warped_label = write_warped_label
        self.max_figures = int(max_figures)
        self.figures_written = 0
        self.submission_dir = None if not submission_dir else Path(submission_dir)
        self.submission_template = submission_template
        self.logger = logging.getLogger(__name__)

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def _reset(self, engine) -> None:
        self.figures_written = 0

    def _write_ddf(self, case_dir: Path, ddf: np.ndarray, affine: np.ndarray) -> None:
        """The field as an ITK / ANTs transform; for a 2-D slice whose plane ITK cannot hold (ITK
        refuses to read such an image too), the voxel displacements (channel last, the project's
        DDF convention) as ``ddf_voxels.nii.gz`` on the fixed image's affine instead."""
        ddf_format = self.ddf_format
        try:
            if ddf.shape[0] == 2 and ddf_format == "nii.gz" and is_oblique_plane(affine):
                ddf_format = "h5"
                if not self._warned_oblique:
                    logger.warning(
                        "%s: the fixed image is an oblique 2-D slice, whose direction a NIfTI field cannot hold "
                        "exactly; displacement fields of such slices are written as ddf.h5 (ITK transform)",
                        case_dir.name,
                    )
                    self._warned_oblique = True
            write_itk_displacement_field(case_dir / f"ddf.{ddf_format}", ddf, affine)
        except PlaneNotInITK2DError:
            save_nifti(
                case_dir / "ddf_voxels.nii.gz", np.moveaxis(ddf, 0, -1), affine, dtype=np.float32, channel_last=True
            )
            if not self._warned_plane:
                logger.warning(
                    "%s: the fixed image is a 2-D slice whose plane ITK cannot represent; displacement fields "
                    "are written in voxels along the array axes (ddf_voxels.nii.gz), not as ITK transforms",
                    case_dir.name,
                )
                self._warned_plane = True

    def __call__(self, engine) -> None:
        output = engine.state.output
        fixed = output["fixed_image"]
        batch_size = fixed.shape[0]
        names = pair_case_names(engine.state.batch, batch_size)
        affines = batch_affines(fixed, batch_size)
        ddf = output["pred"].detach().float().cpu()
        warped = output["warped_image"].detach().float().cpu()
        warped_label = output.get("warped_label")
        fixed_files = self._file_names(fixed, batch_size)
        moving_files = self._file_names(output["moving_image"], batch_size)
        for i, (name, affine) in enumerate(zip(names, affines)):
            submission = None
            if self.submission_dir is not None:
                if fixed_files[i] is None or moving_files[i] is None:
                    raise ValueError(
                        "submission files are named after the input files, but the batch has no file names."
                    )
                submission = submission_filename(fixed_files[i], moving_files[i], self.submission_template)
            with self._pair_folder(name, submission) as stage:
                if self.write_warped_image:
                    save_nifti(stage / "warped_image.nii.gz", warped[i, 0].numpy(), affine, dtype=np.float32)
                if self.write_warped_label and warped_label is not None:
                    label = warped_label[i, 0].detach().cpu().numpy().round().astype(np.int16)
                    save_nifti(
                        stage / "warped_label.nii.gz",
                        label,
                        affine,
                        dtype=np.uint8 if label.min() >= 0 and label.max() < 256 else np.int16,
                    )
                if self.write_ddf:
                    self._write_ddf(stage, ddf[i].numpy(), affine)
                if submission is not None:
                    write_submission_displacement(stage / _SUBMISSION / submission, ddf[i].numpy(), affine)
                if self.figures_written < self.max_figures:
                    save_registration_figure(
                        stage / "qc.png",
                        output["fixed_image"][i, 0].detach().cpu(),
                        output["moving_image"][i, 0].detach().cpu(),
                        warped[i, 0],
                        ddf[i],
                        title=name,
                    )
                    self.figures_written += 1
        self.logger.debug("wrote %d pairs to %s", batch_size, self.output_dir)

    @contextmanager
    def _pair_folder(self, name: str, submission: str | None) -> Iterator[Path]:
        """A hidden staging folder for one pair's files; they are moved into ``output_dir/<name>/``
        (and the submission file into ``submission_dir``) only when all of them were written, so a
        pair has all its outputs or none. On an error the staging folder is removed."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=self.output_dir))
        try:
            yield stage
            case_dir = self.output_dir / name
            case_dir.mkdir(parents=True, exist_ok=True)
            if submission is not None and self.submission_dir is not None:
                self.submission_dir.mkdir(parents=True, exist_ok=True)
                os.replace(stage / _SUBMISSION / submission, self.submission_dir / submission)
            for path in sorted(stage.iterdir()):
                if path.is_file():
                    os.replace(path, case_dir / path.name)
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    @staticmethod
    def _file_names(image, batch_size: int) -> list[str | None]:
        meta = getattr(image, "meta", None) or {}
        names = meta.get("filename_or_obj")
        if names is None:
            return [None] * batch_size
        return [names] if isinstance(names, str) else list(names)
