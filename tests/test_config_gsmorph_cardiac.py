"""gsmorph_cardiac configs resolved as ``monai.bundle`` resolves them (no training): the paper's
defaults that the model card cites, the training modes, and the metadata / export contract."""

from __future__ import annotations

import json

import pytest
import torch
from monai.bundle import ConfigWorkflow

from monai_ext.losses import GradientSmoothnessLoss
from monai_ext.networks import GSMorphUNet

from helpers import BUNDLES, bundle_config, bundle_workflow, verify_bundle_network

BUNDLE = BUNDLES / "gsmorph_cardiac"
CONFIGS = BUNDLE / "configs"


def _train_workflow(acdc_dataset, tmp_path, config_file="train.json", **overrides) -> ConfigWorkflow:
    return bundle_workflow("gsmorph_cardiac", config_file, tmp_path, dataset_dir=acdc_dataset / "data", **overrides)


def test_training_defaults_are_the_papers(acdc_dataset, tmp_path):
    parser = _train_workflow(acdc_dataset, tmp_path).parser
    trainer = parser.get_parsed_content("train#trainer")
    # gsmorph.md §3.1: Adam, lr 5e-3, batch 32, 500 epochs
    assert type(trainer.optimizer) is torch.optim.Adam
    assert trainer.optimizer.defaults["lr"] == 5e-3 and trainer.optimizer.defaults["weight_decay"] == 0
    assert trainer.data_loader.batch_size == 32
    assert trainer.state.max_epochs == 500
    # §2.1 Algorithm 1: layer-wise surgery, the similarity gradient projected off the smoothness gradient
    assert (trainer.surgery.granularity, trainer.surgery.rule) == ("layer", "similarity")
    # §3.1 / authors' config: MSE similarity, mean absolute forward difference of the field
    assert type(trainer.objective.similarity_loss) is torch.nn.MSELoss
    assert isinstance(trainer.objective.regularization_loss, GradientSmoothnessLoss)
    assert trainer.objective.regularization_loss.penalty == "l1"
    # §2.2: U-Net 16-32-64-128-256 (1.96 M parameters); flow head N(0, 1e-5) from the authors' code
    network = trainer.network
    assert isinstance(network, GSMorphUNet)
    assert [b[1].conv.out_channels for b in network.encoder] == [16, 32, 64, 128, 256]
    assert network.flow.weight.std().item() == pytest.approx(1e-5, rel=0.1)
    # authors' config: seed 3407, validation every 5 epochs, 128x128 crops
    assert parser.get_parsed_content("seed") == 3407
    validation = next(h for h in parser.get_parsed_content("train#handlers") if type(h).__name__ == "ValidationHandler")
    assert validation.interval == 5 and validation.epoch_level
    assert parser.get_parsed_content("image_size") == [128, 128]
    # VoxelMorph-m's lambda (§3.2) is the default weight of the weighted_sum baseline
    assert parser.get_parsed_content("regularization_weight") == 0.01


@pytest.mark.parametrize(
    "mode,granularity,rule,name",
    [
        ("gsmorph", "layer", "similarity", "GSMorph"),
        ("pcgrad", "network", "similarity", "GS-PCGrad"),
        ("pcgrad_sum", "network", "sum", "pcgrad_sum"),
        ("gs_agr", "element", "agreement", "GS-Agr"),
        ("weighted_sum", "layer", "weighted_sum", "VoxelMorph (lambda=0.1)"),
    ],
)
def test_training_mode_switches_the_trainers_surgery(acdc_dataset, tmp_path, mode, granularity, rule, name):
    parser = _train_workflow(acdc_dataset, tmp_path, mode=mode, regularization_weight=0.1).parser
    trainer = parser.get_parsed_content("train#trainer")
    assert (trainer.surgery.granularity, trainer.surgery.rule, trainer.surgery.weight) == (granularity, rule, 0.1)
    assert parser.get_parsed_content("method_name") == name


def test_a_training_run_that_gets_worse_keeps_the_starting_model(acdc_dataset, tmp_path):
    """Validation runs before the first epoch, so ``model.pt`` (the best validation) is replaced
    only by a model that validates better than the one training started from. A learning rate of
    50 (10^4 x the paper's) wrecks the network in one epoch."""
    workflow = _train_workflow(
        acdc_dataset,
        tmp_path,
        batch_size=4,
        num_epochs=1,
        val_interval=1,
        learning_rate=50.0,
    )
    start = {k: v.clone() for k, v in workflow.parser.get_parsed_content("network").state_dict().items()}
    workflow.run()
    evaluator = workflow.parser.get_parsed_content("validate#evaluator")
    assert evaluator.state.epoch == 1  # validated twice: at the start and after the epoch
    trained_weights = torch.load(tmp_path / "models" / "checkpoint_last.pt", weights_only=True)["model"]
    best = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert any(not torch.equal(trained_weights[k], start[k]) for k in start)
    assert all(torch.equal(best[k], start[k]) for k in start)


@pytest.mark.parametrize("typed, expected", [("false", False), ("0", False), ("True", True)])
def test_validate_at_start_reads_the_flag_as_typed(acdc_dataset, tmp_path, typed, expected):
    parser = _train_workflow(acdc_dataset, tmp_path, validate_at_start=typed).parser
    validation = next(h for h in parser.get_parsed_content("train#handlers") if type(h).__name__ == "ValidationHandler")
    assert validation.exec_at_start is expected


def test_evaluate_overlay_loads_the_best_model_and_tests_on_the_test_split(acdc_dataset, tmp_path):
    torch.manual_seed(1)
    best = GSMorphUNet(features=(16, 32, 64, 128, 256))
    (tmp_path / "models").mkdir()
    torch.save(best.state_dict(), tmp_path / "models" / "model.pt")
    # initialize() loads models/model.pt into the network (load_pretrain and a CheckpointLoader)
    parser = _train_workflow(acdc_dataset, tmp_path, config_file=["train.json", "evaluate.json"]).parser
    assert parser.get_parsed_content("checkpoint_loader").load_path == str(tmp_path / "models" / "model.pt")
    network = parser.get_parsed_content("network")
    for key, value in best.state_dict().items():
        assert torch.equal(network.state_dict()[key], value), key
    evaluator = parser.get_parsed_content("validate#evaluator")
    testing = json.loads((acdc_dataset / "data" / "datalist.json").read_text())["testing"]
    assert len(evaluator.data_loader.dataset) == len(testing)


def test_multi_gpu_overlay_shards_the_data(acdc_dataset, tmp_path, single_process_group):
    parser = _train_workflow(acdc_dataset, tmp_path, config_file=["train.json", "multi_gpu_train.json"]).parser
    trainer = parser.get_parsed_content("train#trainer")
    assert type(trainer.data_loader.sampler).__name__ == "DistributedSampler"
    assert type(parser.get_parsed_content("validate#dataloader").sampler).__name__ == "DistributedSampler"
    assert parser.get_parsed_content("backend") == "gloo"


def test_verify_net_in_out_and_ckpt_export(tmp_path):
    from monai.bundle import ckpt_export

    verify_bundle_network("gsmorph_cardiac", n=4, any=1)
    torch.manual_seed(0)
    network = bundle_config("gsmorph_cardiac", "inference.json").get_parsed_content("network_def")
    torch.save(network.state_dict(), tmp_path / "model.pt")
    ckpt_export(
        net_id="network_def",
        filepath=str(tmp_path / "model.ts"),
        ckpt_file=str(tmp_path / "model.pt"),
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=str(CONFIGS / "inference.json"),
        bundle_root=str(BUNDLE),
    )
    scripted = torch.jit.load(tmp_path / "model.ts")
    x = torch.rand(1, 2, 64, 64)
    torch.testing.assert_close(scripted(x), network.eval()(x))
