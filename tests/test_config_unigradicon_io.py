"""unigradicon_io configs resolved as ``monai.bundle`` resolves them (no training, no optimisation):
the paper's fine-tuning and instance-optimisation settings, the Table-1 evaluation and the IO modes
of inference."""

from __future__ import annotations

import pytest
import torch

from monai_ext.inferers import InstanceOptimizationInferer, NetworkGridInferer
from monai_ext.losses import GradICONLoss, LNCCLoss
from monai_ext.networks import unigradicon_network

from helpers import BUNDLES, bundle_config, bundle_workflow

BUNDLE = BUNDLES / "unigradicon_io"
CONFIGS = BUNDLE / "configs"
# io_gradient_projection.md §3.2: AMSGrad, lr 2e-5, weight decay 1e-3, on LNCC (sigma 5) + 1.5 GradICON
IO_SETTINGS = {"optimizer": "amsgrad", "learning_rate": 2e-5, "weight_decay": 1e-3, "batchnorm": "eval"}


def _io_settings(inferer: InstanceOptimizationInferer) -> dict:
    return {k: getattr(inferer, k) for k in IO_SETTINGS}


def _assert_paper_objective(objective) -> None:
    assert isinstance(objective.similarity_loss, LNCCLoss) and objective.similarity_loss.sigma == 5.0
    assert isinstance(objective.regularizer, GradICONLoss) and objective.regularizer.delta == 1e-3


def test_fine_tuning_defaults_are_the_papers():
    parser = bundle_config("unigradicon_io", "train.json")
    # §3.2: Adam, lr 5e-5, batch 4, 80 epochs, augmentation from epoch 51 (0-based start 50)
    optimizer = parser.get_parsed_content("optimizer")
    assert type(optimizer) is torch.optim.Adam
    assert optimizer.defaults["lr"] == 5e-5 and not optimizer.defaults["amsgrad"]
    assert parser.get_parsed_content("train#dataloader#batch_size") == 4
    assert parser.get_parsed_content("train#trainer#max_epochs") == 80
    assert parser.get_parsed_content("augmentation_start_epoch") == 50
    _assert_paper_objective(parser.get_parsed_content("objective"))
    assert parser.get_parsed_content("train#trainer#regularization_weight") == 1.5
    # §2.2: uniGradICON's four-atom network on a 175^3 grid
    network = parser.get_parsed_content("network_def")
    assert network.state_dict().keys() == unigradicon_network(None).state_dict().keys()
    assert network.input_shape == [175, 175, 175]


def test_fine_tuning_starts_from_the_official_weights(tmp_path):
    torch.manual_seed(0)
    official = unigradicon_network(None)
    for p in official.parameters():
        p.data.normal_(0.0, 0.1)
    torch.save(official.state_dict(), tmp_path / "Step_2_final.trch")
    workflow = bundle_workflow(
        "unigradicon_io", "train.json", tmp_path, pretrained_weights=tmp_path / "Step_2_final.trch"
    )
    network = workflow.parser.get_parsed_content("network")
    for key, value in official.state_dict().items():
        assert torch.equal(network.state_dict()[key], value), key


def test_table1_evaluation_settings_are_the_papers():
    parser = bundle_config("unigradicon_io", "train.json", "evaluate.json")
    settings = parser.get_parsed_content("settings")
    # Table 1: direct inference, then IO and IO-GP for n = 50 and n = 100
    assert [s["name"] for s in settings] == [
        "Direct Inference",
        "IO (n=50)",
        "IO-GP (n=50)",
        "IO (n=100)",
        "IO-GP (n=100)",
    ]
    assert type(settings[0]["inferer"]) is NetworkGridInferer
    expected = [(50, "weighted_sum"), (50, "random"), (100, "weighted_sum"), (100, "random")]
    for setting, (steps, rule) in zip(settings[1:], expected):
        inferer = setting["inferer"]
        assert (inferer.steps, inferer.surgery.rule, inferer.surgery.weight) == (steps, rule, 1.5), setting["name"]
        assert _io_settings(inferer) == IO_SETTINGS, setting["name"]
        _assert_paper_objective(inferer.objective)
    # the random rule projects over the whole parameter vector (§2.4)
    assert settings[2]["inferer"].surgery.granularity == "network"
    # every setting on its own folder; LUMIR's scoring: NDV inside the moving image's foreground, TRE on
    # warped landmark maps
    assert len({s["folder"] for s in settings}) == len(settings)
    assert parser.get_parsed_content("comparison#metrics_args") == {
        "jacobian_mask": "moving_nonzero",
        "tre_method": "warped_map",
    }


@pytest.mark.parametrize("io_mode,rule", [("none", None), ("vanilla", "weighted_sum"), ("projected", "random")])
def test_inference_io_mode_selects_the_inferer(io_mode, rule):
    inferer = bundle_config("unigradicon_io", "inference.json", io_mode=io_mode).get_parsed_content("inferer")
    if rule is None:
        assert type(inferer) is NetworkGridInferer
        return
    assert isinstance(inferer, InstanceOptimizationInferer)
    assert (inferer.steps, inferer.surgery.rule, inferer.surgery.weight) == (50, rule, 1.5)
    assert _io_settings(inferer) == IO_SETTINGS
    assert inferer.spatial_size == (175, 175, 175)


def test_multi_gpu_overlay_shards_the_data(lumir_dataset, tmp_path, single_process_group):
    workflow = bundle_workflow(
        "unigradicon_io",
        ["train.json", "multi_gpu_train.json"],
        tmp_path,
        dataset_dir=lumir_dataset / "data",
        image_size=[66, 66, 66],
        batch_size=1,
        pairs_per_epoch=3,
    )
    loader = workflow.parser.get_parsed_content("train#dataloader")
    assert type(loader.sampler).__name__ == "DistributedSampler"
    assert type(workflow.parser.get_parsed_content("validate#dataloader").sampler).__name__ == "DistributedSampler"
