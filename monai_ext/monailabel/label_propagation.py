"""Label propagation with a registration bundle, as a MONAI Label infer task.

A labelled reference (an image of the datastore that the user already annotated, or the bundle's
default atlas) is registered to the request's image by the bundle's own inference config, and the
reference's labels, warped onto the request image's grid, are returned as the segmentation, with
the reference's label names. The displacement field, the warped image and the QC picture stay in
``results_dir`` (one folder per request image and reference).

MONAI Label's ``BundleInferTask`` sends one image through ``preprocessing``, ``inferer`` and
``postprocessing``; a registration needs a second image and its labels, so this task runs the
bundle's inference workflow itself (MONAI's ``ConfigWorkflow``) on the pair. It derives from
``BasicInferTask``, which (unlike ``BundleInferTask``) does not import torchvision.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigWorkflow
from monailabel.interfaces.datastore import DefaultLabelTag
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.basic_infer import BasicInferTask

from monai_ext.options import flag

__all__ = ["LabelPropagationTask", "Reference"]


@dataclass
class Reference:
    """A labelled image to propagate from: its image and label files and the label names (value -> name)."""

    image: str
    label: str
    label_names: Mapping[int, str]


class LabelPropagationTask(BasicInferTask):
    """Infer task of one registration bundle.

    Args:
        bundle_path: the bundle folder (``configs/inference.json``; ``models/model.pt`` unless the
            configuration needs no weights, e.g. DIO with ``feature_network: intensity``).
        default_reference: the reference used when a request names none (e.g. a brain atlas);
            None: requests must name one.
        label_names: value -> name of the labels a datastore reference carries (the default
            reference's names when omitted).
        datastore: returns the app's datastore, to resolve ``reference`` image ids of a request.
        results_dir: where each request's field, warped image and QC picture are kept.
        overrides: bundle config values for every request (e.g. iterations); the request's own
            keys with these names override them in turn (MONAI Label's options panel).
        dimension: 2 or 3 (what MONAI Label shows).
        description: shown by MONAI Label.

    Request keys: ``image`` (the fixed image, a path), ``reference`` (optional id of a labelled image
    of the datastore; its ``final`` label is used), ``device``, and any key of ``overrides``.
    """

    def __init__(
        self,
        bundle_path: str | Path,
        default_reference: Reference | None = None,
        label_names: Mapping[int, str] | None = None,
        datastore: Callable[[], Any] | None = None,
        results_dir: str | Path | None = None,
        overrides: Mapping[str, Any] | None = None,
        dimension: int = 3,
        description: str = "",
    ) -> None:
        self.bundle_path = Path(bundle_path)
        self.default_reference = default_reference
        names = label_names if label_names is not None else (default_reference.label_names if default_reference else {})
        self.label_names = {int(k): str(v) for k, v in names.items()}
        self.datastore = datastore
        self.results_dir = Path(results_dir) if results_dir else self.bundle_path / "label_propagation"
        self.overrides = dict(overrides or {})
        super().__init__(
            path=str(self.bundle_path / "models" / "model.pt"),
            network=None,
            type=InferType.SEGMENTATION,
            labels={name: value for value, name in self.label_names.items()},
            dimension=dimension,
            description=description or f"label propagation with {self.bundle_path.name}",
            config={"reference": "", **self.overrides},
        )

    def pre_transforms(self, data=None) -> list:
        """Unused: the bundle's own inference config loads and prepares the pair (see ``__call__``)."""
        return []

    def post_transforms(self, data=None) -> list:
        """Unused: the bundle's writer puts the warped labels on the request image's grid."""
        return []

    def is_valid(self) -> bool:
        needs_weights = flag(self.overrides.get("load_pretrain", True), "load_pretrain")
        has_config = (self.bundle_path / "configs" / "inference.json").is_file()
        return has_config and (not needs_weights or self.get_path() is not None)

    def reference(self, request: Mapping[str, Any]) -> Reference:
        """The reference a request names (a datastore image with a ``final`` label), else the default."""
        image_id = str(request.get("reference") or "")
        if image_id:
            if self.datastore is None:
                raise ValueError(f"reference {image_id!r} given, but the task has no datastore to find it in.")
            store = self.datastore()
            label = store.get_label_uri(image_id, DefaultLabelTag.FINAL)
            if not label:
                raise ValueError(f"reference {image_id!r} has no final label in the datastore.")
            return Reference(store.get_image_uri(image_id), label, self.label_names)
        if self.default_reference is None:
            raise ValueError(
                f"{self.bundle_path.name}: name a labelled reference image ('reference'); there is no default atlas."
            )
        return self.default_reference

    def __call__(self, request: Mapping[str, Any], callbacks: Any = None) -> tuple[str, dict]:
        request = {**self._config, **dict(request)}
        fixed = str(request["image"])
        reference = self.reference(request)
        case = f"{Path(fixed).name.split('.')[0]}__{Path(reference.image).name.split('.')[0]}"
        output_dir = self.results_dir / case
        if output_dir.exists():
            shutil.rmtree(output_dir)
        options = {k: request[k] for k in self.overrides if k in request}
        device = str(request.get("device") or "")
        if device:  # MONAI Label asks for cuda by default; a CPU machine runs on the CPU
            options["device"] = f"$torch.device('{device if torch.cuda.is_available() else 'cpu'}')"
        workflow = ConfigWorkflow(
            config_file=str(self.bundle_path / "configs" / "inference.json"),
            workflow_type="infer",
            logging_file=False,  # keep the server's logging as it is
            bundle_root=str(self.bundle_path),
            fixed=fixed,
            moving=reference.image,
            moving_label=reference.label,
            output_dir=str(output_dir),
            num_workers=0,
            max_figures=1,
            **options,
        )
        workflow.initialize()
        workflow.run()
        workflow.finalize()
        (warped,) = sorted(output_dir.rglob("warped_label.nii.gz"))
        # MONAI Label removes the file it sends: hand it a copy, keep the results folder whole
        handle, result = tempfile.mkstemp(suffix=".nii.gz")
        os.close(handle)
        Path(result).write_bytes(warped.read_bytes())
        files = {name: str(p) for name in ("ddf.nii.gz", "ddf.h5", "ddf_voxels.nii.gz", "qc.png", "warped_image.nii.gz")
                 for p in sorted(warped.parent.glob(name))}  # fmt: skip
        names = reference.label_names or _values_as_names(reference.label)
        return result, {
            "label_names": {name: value for value, name in names.items()},
            "reference": {"image": reference.image, "label": reference.label},
            "results": files,
        }


def _values_as_names(label_path: str) -> dict[int, str]:
    """``{v: "label v"}`` for the non-zero values of a label file whose names nobody declared."""
    values = np.unique(np.asarray(nib.load(label_path).dataobj))
    return {int(v): f"label {int(v)}" for v in values if v != 0}
