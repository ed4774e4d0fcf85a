"""MONAI Label's training path for the brain bundles: ``RegistrationTrainTask`` hands the bundle the
datastore's ``[{image, label}]`` list, with no datalist file, and the bundle trains and writes
``models/model.pt`` (the server test trains gsmorph_cardiac over HTTP)."""

from __future__ import annotations

import json
import shutil

import pytest

from helpers import BUNDLES

CASES = {
    "dio_brain": {"unet_channels": [4, 4, 8], "feature_channels": 4, "iterations": [3, 3, 3], "num_workers": 0},
    "gradicon_brain": {"image_size": [66, 66, 66], "dataset_name": "oasis", "num_workers": 0},
}


class _Datastore:
    def __init__(self, items):
        self.items = items

    def datalist(self):
        return self.items


@pytest.mark.slow  # a short 3-D training per bundle
@pytest.mark.parametrize("bundle", CASES)
def test_brain_bundles_train_from_a_list_of_labelled_images(bundle, oasis_dataset, tmp_path):
    from monai_ext.monailabel import RegistrationTrainTask

    raw = oasis_dataset / "raw"
    items = [{"image": str(p), "label": str(raw / "labelsTr" / p.name)} for p in sorted((raw / "imagesTr").glob("*"))]
    shutil.copytree(BUNDLES / bundle, tmp_path / bundle, ignore=shutil.ignore_patterns("models"))
    settings = json.loads((tmp_path / bundle / "configs" / "metadata.json").read_text())["monailabel_training"]
    task = RegistrationTrainTask(
        str(tmp_path / bundle),
        {},
        options=settings["options"],
        configs=settings.get("configs", ()),
        overrides={**settings.get("overrides", {}), **CASES[bundle]},
    )
    request = {"model": bundle, "max_epochs": 1, "val_split": 0.4, "device": "cpu", "multi_gpu": False,
               "iterations_per_epoch": 2, "val_interval": 1, "batch_size": 1}  # fmt: skip
    task(request, _Datastore(items))
    assert (tmp_path / bundle / "models" / "model.pt").is_file()
