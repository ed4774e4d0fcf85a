"""Training a registration bundle from MONAI Label's labelled images (``BundleTrainTask``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import torch
from monailabel.tasks.train.bundle import BundleTrainTask

from monai_ext.data.registration_pairs import frame_series
from monai_ext.options import flag

__all__ = ["RegistrationTrainTask"]

logger = logging.getLogger(__name__)


def _spatial_dims(path: str) -> int | None:
    """Non-singleton dimensions of a NIfTI image from its header (None for other formats)."""
    if not str(path).endswith((".nii", ".nii.gz")):
        return None
    return sum(1 for s in nib.load(path).shape if s > 1)


def _flatten(groups: list[list[dict]] | None) -> list[dict] | None:
    return None if groups is None else [entry for group in groups for entry in group]


class RegistrationTrainTask(BundleTrainTask):
    """MONAI Label's ``BundleTrainTask`` for a registration bundle.

    The bundle's ``train.json`` receives the datastore's ``[{image, label}]`` lists as
    ``train#dataset#data`` / ``validate#dataset#data`` and builds registration pairs itself
    (``monai_ext.data.PairDataset`` / ``RandomPairDataset``). On top of ``BundleTrainTask`` this task

    - keeps images of the bundle's ``dimension`` only (a 2-D cardiac bundle skips brain volumes of a
      shared datastore, and the reverse), with a warning;
    - splits training / validation by series for within-subject pairing, so the ED and ES frames of
      one slice stay on the same side, and leaves out series with a single labelled frame
      (``validate#dataset#pairing`` says which pairing the bundle uses);
    - shows ``options`` (train config ids, e.g. ``learning_rate``, ``val_interval``) in MONAI Label's
      training panel with the config's values as defaults, and passes the request's values back as
      config overrides, cast to the default's type;
    - turns the request's device name into a ``torch.device``;
    - can train a config overlay (``configs``, e.g. GradICON's ``train.json`` + ``stage2.json``, whose
      ``model.pt`` is the composed network the bundle's inference loads) with fixed ``overrides``.

    MONAI Label runs the bundle's ``run`` section without ``initialize``; the bundles' savers create
    their folders and write ``models/model.pt`` (gsmorph_cardiac: the best validation Dice; the brain
    bundles: the final weights), which the app's infer task loads at its next request.

    Args:
        path: the bundle folder.
        conf: the app's configuration.
        dimension: 2 or 3, the images the bundle registers.
        options: train config ids shown in the training panel.
        configs: config files of ``configs/`` to train with (default: ``train.json``).
        overrides: config values set for every MONAI Label training.
    """

    def __init__(
        self,
        path: str,
        conf: dict,
        dimension: int = 3,
        options: Sequence[str] = (),
        configs: Sequence[str] = (),
        overrides: dict | None = None,
    ) -> None:
        super().__init__(path, conf)
        self.dimension = int(dimension)
        self.options = list(options)
        self.fixed_overrides = dict(overrides or {})
        self._request: dict = {}
        if configs and self.is_valid():
            self.bundle_config_path = [str(Path(path) / "configs" / c) for c in configs]
            self.bundle_config = self._load_bundle_config(self.bundle_path, self.bundle_config_path)

    def config(self) -> dict:
        config = super().config()
        if self.is_valid():
            config.update({name: self.bundle_config.get_parsed_content(name) for name in self.options})
        return config

    def _fetch_datalist(self, request, datastore) -> list[dict]:
        datalist = super()._fetch_datalist(request, datastore)
        kept = [d for d in datalist if _spatial_dims(d["image"]) in (None, self.dimension)]
        if len(kept) < len(datalist):
            skipped = sorted({Path(d["image"]).name for d in datalist} - {Path(d["image"]).name for d in kept})
            logger.warning(f"{len(skipped)} labelled images are not {self.dimension}-D and are not used: {skipped[:5]}")
        return kept

    def _partition_datalist(self, datalist, request, shuffle=False):
        if self.bundle_config.get("validate#dataset#pairing") != "within_subject":
            return super()._partition_datalist(datalist, request, shuffle)
        groups = [[entry for _, entry in frames] for frames in frame_series(datalist).values()]
        train_groups, val_groups = super()._partition_datalist(groups, request, shuffle)
        return _flatten(train_groups), _flatten(val_groups)

    def __call__(self, request, datastore):
        self._request = dict(request)
        return super().__call__(request, datastore)

    def _update_overrides(self, overrides: dict) -> dict:
        overrides[self.const.key_device()] = torch.device(overrides[self.const.key_device()])
        overrides.update(self.fixed_overrides)
        for name in self.options:
            if name in self._request:
                default = self.bundle_config.get_parsed_content(name)
                value: Any = self._request[name]
                if isinstance(default, bool):
                    value = flag(value, name)
                elif isinstance(default, (int, float)):
                    value = type(default)(value)
                overrides[name] = value
        return overrides
