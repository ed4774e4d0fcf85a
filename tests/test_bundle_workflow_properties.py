"""MONAI's own bundle check: ``create_workflow(...).check_properties()`` finds every required property,
and every optional one where MONAI looks for it, in every config of every bundle.

The workflows are built on small generated datasets in the real layouts (``dataset_dir``), because
checking a property parses it (datasets read their datalists, networks are built). ``evaluate.json``,
``multi_gpu_train.json`` and GradICON's ``stage2.json`` are overlays on ``train.json`` and are checked
as the training workflows they make, as MONAI's model zoo checks its bundles' evaluation overlays.
"""

from __future__ import annotations

import pytest
from monai.bundle import create_workflow

from helpers import BUNDLES

DATASETS = {
    "gsmorph_cardiac": "acdc_dataset",
    "gradicon_brain": "lumir_dataset",
    "unigradicon_io": "lumir_dataset",
    "dio_brain": "oasis_dataset",
}
TRAINING = [
    (bundle, overlay)
    for bundle in DATASETS
    for overlay in ("", "evaluate.json", "multi_gpu_train.json", "stage2.json")
    if not overlay or (BUNDLES / bundle / "configs" / overlay).is_file()
]


def _workflow(bundle: str, configs: list[str], workflow_type: str, dataset_dir, tmp_path, **overrides):
    root = BUNDLES / bundle
    return create_workflow(
        config_file=[str(root / "configs" / c) for c in configs],
        meta_file=str(root / "configs" / "metadata.json"),
        logging_file=False,
        workflow_type=workflow_type,
        bundle_root=str(root),
        dataset_dir=str(dataset_dir),
        ckpt_dir=str(tmp_path / "models"),
        output_dir=str(tmp_path / "out"),
        num_workers=0,
        **overrides,
    )


@pytest.mark.parametrize("bundle,overlay", TRAINING)
def test_training_configs_have_monai_train_properties(bundle, overlay, request, tmp_path):
    if overlay == "multi_gpu_train.json":
        request.getfixturevalue("single_process_group")
    dataset_dir = request.getfixturevalue(DATASETS[bundle]) / "data"
    configs = ["train.json"] + ([overlay] if overlay else [])
    overrides = {"stage2.json": {"stage1_ckpt": "$None"}, "evaluate.json": {"load_pretrain": False}}.get(overlay, {})
    workflow = _workflow(bundle, configs, "train", dataset_dir, tmp_path, **overrides)
    assert workflow.check_properties() == []
    # the trainer runs the network through the declared inferer; validation pairs are built
    assert workflow.trainer.inferer is workflow.train_inferer
    assert all("fixed_image" in pair for pair in workflow.val_dataset.data)


@pytest.mark.parametrize("bundle", DATASETS)
def test_inference_configs_have_monai_infer_properties(bundle, request, tmp_path):
    dataset_dir = request.getfixturevalue(DATASETS[bundle]) / "data"
    workflow = _workflow(bundle, ["inference.json"], "infer", dataset_dir, tmp_path, load_pretrain=False)
    assert workflow.check_properties() == []
    assert len(workflow.dataset) > 0 and workflow.evaluator.inferer is workflow.inferer
