"""gradicon_brain configs resolved as ``monai.bundle`` resolves them (no training): the paper's
defaults that the model card cites, Stage2's initialisation from Stage1, the dataset switch and the
multi-GPU overlay."""

from __future__ import annotations

import pytest
import torch
from monai.bundle import ConfigWorkflow

from monai_ext.inferers import InstanceOptimizationInferer
from monai_ext.losses import GradICONLoss, LNCCLoss
from monai_ext.networks import TwoStepRegistration, gradicon_stage1
from monai_ext.objectives import InverseConsistentObjective

from helpers import BUNDLES, bundle_config, bundle_workflow

BUNDLE = BUNDLES / "gradicon_brain"
CONFIGS = BUNDLE / "configs"
SMALL = [66, 66, 66]  # the smallest grid the quarter-resolution atom accepts is 65


def _component_id(parser, list_id: str, target: str) -> str:
    """The id of the item of the list ``list_id`` whose ``_target_`` is ``target``."""
    items = parser.get(list_id)
    return f"{list_id}#{next(i for i, item in enumerate(items) if item.get('_target_') == target)}"


def _workflow(dataset_dir, tmp_path, config_file=("train.json",), **overrides) -> ConfigWorkflow:
    return bundle_workflow("gradicon_brain", config_file, tmp_path, dataset_dir=dataset_dir, **overrides)


def test_training_defaults_are_the_papers():
    parser = bundle_config("gradicon_brain", "train.json")
    # gradicon.md §4.2: Adam, lr 5e-5, 50,000 iterations per stage
    optimizer = parser.get_parsed_content("optimizer")
    assert type(optimizer) is torch.optim.Adam
    assert optimizer.defaults["lr"] == 5e-5 and optimizer.defaults["weight_decay"] == 0
    epochs, length = (parser.get_parsed_content(f"train#trainer#{k}") for k in ("max_epochs", "epoch_length"))
    assert epochs * length == 50_000
    assert parser.get_parsed_content("train#dataloader#batch_size") == 4
    # Eq. 13: LNCC (sigma 5 voxels) + lambda 1.5 GradICON (delta 1e-3, sparse sampling), summed
    objective = parser.get_parsed_content("objective")
    assert isinstance(objective, InverseConsistentObjective)
    assert isinstance(objective.similarity_loss, LNCCLoss) and objective.similarity_loss.sigma == 5.0
    assert isinstance(objective.regularizer, GradICONLoss)
    assert (objective.regularizer.delta, objective.regularizer.sampling) == (1e-3, "sparse")
    assert parser.get_parsed_content("train#trainer#surgery") == "weighted_sum"
    assert parser.get_parsed_content("train#trainer#regularization_weight") == 1.5
    # §5.1: 175^3 grid; Stage1 = Down-sampled and two-step tallUNet2 atoms on it
    assert parser.get_parsed_content("image_size") == [175, 175, 175]
    network = parser.get_parsed_content("network_def")
    assert network.state_dict().keys() == gradicon_stage1(3, 2).state_dict().keys()
    assert network.input_shape == [175, 175, 175]
    # Appendix A.2 augmentation on; validation every 5 epochs
    assert parser.get_parsed_content("augment") is True
    augmentation = _component_id(parser, "train#preprocessing#transforms", "monai_ext.transforms.RandPairFlipAffined")
    assert parser.get_parsed_content(f"{augmentation}#gamma") == 0.05
    validation = _component_id(parser, "train#handlers", "ValidationHandler")
    assert parser.get_parsed_content(f"{validation}#interval") == 5


def test_evaluation_instance_optimisation_is_the_papers():
    parser = bundle_config("gradicon_brain", "train.json", "evaluate.json")
    inferer = parser.get_parsed_content("validate_io#inferer")
    # gradicon.md §4.2: 50 iterations of Eq. 13 at test time, on the Stage2 model
    assert isinstance(inferer, InstanceOptimizationInferer)
    assert (inferer.steps, inferer.optimizer, inferer.learning_rate) == (50, "adam", 2e-5)
    assert (inferer.surgery.rule, inferer.surgery.weight, inferer.batchnorm) == ("weighted_sum", 1.5, "eval")
    assert parser.get_parsed_content("stage") == 2
    assert parser.get_parsed_content("io_method") == "GradICON + IO"
    # --io_mode projected: IO with gradient projection (io_gradient_projection.md §2.4) on the same model
    projected = bundle_config("gradicon_brain", "train.json", "evaluate.json", io_mode="projected")
    assert projected.get_parsed_content("validate_io#inferer").surgery.rule == "random"
    assert projected.get_parsed_content("io_method") == "GradICON + IO-GP"


def test_stage2_starts_from_the_stage1_checkpoint(lumir_dataset, tmp_path):
    torch.manual_seed(1)
    stage1 = gradicon_stage1(3, 2, SMALL)
    for p in stage1.parameters():  # values no fresh initialisation would give
        p.data.normal_(0.0, 0.3)
    (tmp_path / "models").mkdir()
    torch.save(stage1.state_dict(), tmp_path / "models" / "stage1.pt")
    parser = _workflow(lumir_dataset / "data", tmp_path, ("train.json", "stage2.json"), image_size=SMALL).parser
    network = parser.get_parsed_content("network")
    assert isinstance(network, TwoStepRegistration)
    for key, value in stage1.state_dict().items():
        assert torch.equal(network.netPhi.state_dict()[key], value), key
    assert parser.get_parsed_content("train#checkpoint_saver#save_path").endswith("/checkpoint_stage2_last.pt")
    assert parser.get_parsed_content("final_filename") == "model.pt"


def test_oasis_switch_reads_its_datalist(oasis_dataset, tmp_path):
    parser = _workflow(oasis_dataset / "data", tmp_path, dataset_name="oasis", image_size=SMALL, batch_size=1).parser
    assert parser.get_parsed_content("validation_key") == "validation"
    assert parser.get_parsed_content("evaluation_labels") == list(range(1, 36))  # OASIS: 35 labels, no background
    pair = parser.get_parsed_content("train#dataset")[0]
    assert pair["fixed_image"].shape == (1, 66, 66, 66)
    assert 0.0 <= float(pair["fixed_image"].min()) and float(pair["fixed_image"].max()) <= 1.0
    assert pair["fixed_subject"] != pair["moving_subject"]
    validation = parser.get_parsed_content("validate#dataset")[0]
    assert {"fixed_label", "moving_label"} <= set(validation)


def test_multi_gpu_overlay_shards_the_data(lumir_dataset, tmp_path, single_process_group):
    parser = _workflow(
        lumir_dataset / "data",
        tmp_path,
        config_file=("train.json", "multi_gpu_train.json"),
        image_size=SMALL,
        batch_size=1,
        iterations_per_epoch=3,
    ).parser
    loader = parser.get_parsed_content("train#dataloader")
    assert type(loader.sampler).__name__ == "DistributedSampler"
    assert len(loader.dataset) == 3  # pairs per epoch x world size (1)
    assert type(parser.get_parsed_content("validate#dataloader").sampler).__name__ == "DistributedSampler"
    assert parser.get_parsed_content("backend") == "gloo"


@pytest.mark.parametrize("overlays", [(), ("stage2.json",)], ids=["stage1", "stage2"])
def test_checkpoint_names_follow_the_stage(overlays):
    parser = bundle_config("gradicon_brain", "train.json", *overlays)
    stage2 = bool(overlays)
    assert parser.get_parsed_content("final_filename") == ("model.pt" if stage2 else "stage1.pt")
    assert parser.get_parsed_content("resume_path").endswith(
        "checkpoint_stage2_last.pt" if stage2 else "checkpoint_stage1_last.pt"
    )


def test_spatial_dims_2_builds_the_2d_bundle(neurite_slices_dataset, tmp_path):
    """GradICON is dimension-agnostic: ``--spatial_dims 2`` gives 2-D atoms, bilinear resizing and
    2-D pair checks, and a 2-D batch runs through the inverse-consistent objective."""
    workflow = _workflow(
        neurite_slices_dataset / "data", tmp_path, dataset_name="oasis", spatial_dims=2, image_size=[80, 80]
    )
    parser = workflow.parser
    network = parser.get_parsed_content("network")
    assert {m.spatial_dims for m in network.modules() if type(m).__name__ == "TallUNet2"} == {2}
    resize = parser.get_parsed_content(_component_id(parser, "train#preprocessing#transforms", "Resized"))
    assert set(resize.mode) == {"bilinear"}
    batch = next(iter(parser.get_parsed_content("train#dataloader")))
    assert batch["fixed_image"].shape[1:] == (1, 80, 80)
    terms = parser.get_parsed_content("objective")(network, batch["moving_image"], batch["fixed_image"])
    assert terms.ddf.shape == (batch["fixed_image"].shape[0], 2, 80, 80)
    inference = bundle_config("gradicon_brain", "inference.json", spatial_dims=2, image_size=[80, 80])
    check = next(
        t for t in inference.get_parsed_content("preprocessing").transforms if type(t).__name__ == "CheckPaird"
    )
    assert check.spatial_dims == 2
