"""MONAI Label sample app: every registration bundle as a label-propagation model.

    monailabel start_server --app apps/registration --studies /path/to/datastore \
        [--conf bundles /path/to/bundles] [--conf overrides '{"dio_brain": {"feature_network": "intensity"}}']

Each bundle folder under ``bundles`` (default: this repository's ``bundles/``) with a
``configs/inference.json`` and, unless its overrides make weights unnecessary, ``models/model.pt``
(e.g. downloaded from a zoo) becomes a model named like the folder. An inference request's
``image`` is the image to label; its ``reference`` parameter names a labelled image of the same
datastore (its ``final`` label), e.g. the annotated ED frame of the same cine series for
gsmorph_cardiac or another subject for the brain bundles. The reference's labels come back warped
onto the image; fields, warped images and QC pictures are kept under ``<app>/results/<model>/``.
``/train/<model>`` trains the bundle on the datastore's labelled images, paired by the bundle
(brain: consecutive subjects; cardiac: the frames of one slice onto its ED frame), and writes the
bundle's ``models/model.pt``, which the next inference request loads.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from monailabel.interfaces.app import MONAILabelApp

from monai_ext.data import mni152_tissue_atlas
from monai_ext.monailabel import LabelPropagationTask, Reference, RegistrationTrainTask

logger = logging.getLogger(__name__)

REPOSITORY_BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


class RegistrationApp(MONAILabelApp):
    """The four bundles (or those found in ``--conf bundles``) as label-propagation infer tasks."""

    def __init__(self, app_dir: str, studies: str, conf: dict) -> None:
        self.bundles_dir = Path(conf.get("bundles") or REPOSITORY_BUNDLES)
        self.bundle_overrides = json.loads(conf.get("overrides") or "{}")
        self.atlas_files = (conf.get("atlas_image"), conf.get("atlas_label"))
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="MONAI registration bundles",
            description="Label propagation with GSMorph, GradICON, uniGradICON + IO and DIO",
            version="0.1.0",
        )

    def init_infers(self) -> dict:
        infers = {}
        for bundle in sorted(p for p in self.bundles_dir.iterdir() if (p / "configs" / "inference.json").is_file()):
            metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
            settings = metadata.get("label_propagation", {})
            overrides = {**settings.get("options", {}), **self.bundle_overrides.get(bundle.name, {})}
            task = LabelPropagationTask(
                bundle,
                default_reference=self.atlas() if settings.get("default_reference") == "mni152" else None,
                label_names={int(k): v for k, v in settings.get("label_names", {}).items()},
                datastore=self.datastore,
                results_dir=Path(self.app_dir) / "results" / bundle.name,
                overrides=overrides,
                dimension=int(settings.get("dimension", 3)),
                description=metadata.get("description", ""),
            )
            if task.is_valid():
                infers[bundle.name] = task
            else:
                logger.warning(f"{bundle}: no models/model.pt, not served (train it or download it from a zoo).")
        return infers

    def init_trainers(self) -> dict:
        """Every bundle with a ``configs/train.json`` trains from the datastore's labelled images
        (``/train/<bundle>``); settings from its metadata's ``monailabel_training``."""
        trainers = {}
        for bundle in sorted(p for p in self.bundles_dir.iterdir() if (p / "configs" / "train.json").is_file()):
            metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
            settings = metadata.get("monailabel_training", {})
            task = RegistrationTrainTask(
                str(bundle),
                self.conf,
                dimension=int(metadata.get("label_propagation", {}).get("dimension", 3)),
                options=settings.get("options", ()),
                configs=settings.get("configs", ()),
                overrides=settings.get("overrides"),
            )
            if task.is_valid():
                trainers[bundle.name] = task
        return trainers

    def atlas(self) -> Reference:
        """The brain bundles' default reference: ``--conf atlas_image/atlas_label``, else MNI152 2009a
        with tissue labels (``monai_ext.data.mni152_atlas``), written once into ``<app>/atlas``."""
        image, label = self.atlas_files
        if image and label:
            return Reference(image, label, {})
        image, label, names = mni152_tissue_atlas(Path(self.app_dir) / "atlas")
        return Reference(str(image), str(label), names)
