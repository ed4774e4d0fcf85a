"""Tests of the resumable training state: RandomState, TrainingCheckpoint, BestModelSaver and
CheckedCheckpointLoader."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader, Dataset
from monai.transforms import RandGaussianNoise

from monai_ext.engines import RandomState
from monai_ext.errors import CheckpointError
from monai_ext.handlers import BestModelSaver, CheckedCheckpointLoader, TrainingCheckpoint


def draws(transform: RandGaussianNoise) -> list:
    transform.randomize(np.zeros(3))
    return [torch.rand(2).tolist(), np.random.rand(2).tolist(), random.random(), transform.noise.tolist()]


def test_random_state_round_trip_restores_every_generator():
    transform = RandGaussianNoise(prob=1.0)
    state = RandomState([{"nested": [transform]}])
    saved = state.state_dict()
    first = draws(transform)
    draws(transform)  # the generators move on
    # weights-only loading: the state holds tensors, lists and numbers only
    restored = torch.load(_saved(saved), weights_only=True)
    state.load_state_dict(restored)
    assert draws(transform) == first


def _saved(obj):
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer


def test_random_state_refuses_another_configuration():
    state = RandomState([RandGaussianNoise(), RandGaussianNoise()]).state_dict()
    with pytest.raises(ValueError, match="2 random transform states, this run has 1"):
        RandomState([RandGaussianNoise()]).load_state_dict(state)


def test_shuffled_loader_order_is_restored():
    loader = DataLoader(Dataset(list(range(8))), batch_size=1, shuffle=True, num_workers=0)
    state = RandomState([loader.dataset])
    saved = state.state_dict()
    first = [int(x) for x in loader]
    state.load_state_dict(saved)
    assert [int(x) for x in loader] == first


def _engine(epochs: int, fail_at: int | None = None) -> Engine:
    def step(engine, batch):
        if engine.state.iteration == fail_at:
            raise ValueError("bad batch")

    engine = Engine(step)
    engine.state.max_epochs = epochs
    return engine


def test_training_checkpoint_saves_each_epoch_and_nothing_on_an_exception(tmp_path):
    net = torch.nn.Linear(2, 1)
    path = tmp_path / "checkpoint_last.pt"
    saver = TrainingCheckpoint(path, {"model": net, "rng": RandomState()})
    engine = _engine(3, fail_at=5)  # 2 iterations per epoch: fails in epoch 3
    saver.attach(engine)
    seen = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: seen.append(path.stat().st_mtime_ns))
    with pytest.raises(ValueError, match="bad batch"):
        engine.run([0, 1], max_epochs=3)
    saved = torch.load(path, weights_only=True)
    assert set(saved) == {"model", "rng"}
    assert len(seen) == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_last.pt"]
    with torch.no_grad():
        net.weight.add_(1.0)
    # a single object is saved as its own state_dict, as MONAI's savers write model.pt
    final = TrainingCheckpoint(tmp_path / "model.pt", {"model": net}, epoch_level=False)
    engine = _engine(1)
    final.attach(engine)
    engine.run([0], max_epochs=1)
    assert torch.equal(torch.load(tmp_path / "model.pt", weights_only=True)["weight"], net.weight)


def _evaluator(metrics: list[float]) -> Engine:
    evaluator = Engine(lambda e, b: None)
    evaluator.state.key_metric_name = "dice"

    @evaluator.on(Events.EPOCH_COMPLETED)
    def _metric(engine):
        engine.state.metrics["dice"] = metrics[engine.state.epoch - 1]

    return evaluator


def test_best_model_saver_keeps_the_best_across_a_resume(tmp_path):
    net = torch.nn.Linear(2, 1)
    saver = BestModelSaver(tmp_path / "model.pt", net)
    evaluator = _evaluator([0.5, 0.8, 0.6])
    evaluator.add_event_handler(Events.EPOCH_COMPLETED, saver)  # after the metric handler
    weights = []
    for _ in range(3):
        with torch.no_grad():
            net.weight.add_(1.0)
        weights.append(net.weight.detach().clone())
        evaluator.run([0], max_epochs=evaluator.state.epoch + 1)
    assert saver.state_dict() == {"best_metric": pytest.approx(0.8), "best_epoch": 2}
    assert torch.equal(torch.load(tmp_path / "model.pt", weights_only=True)["weight"], weights[1])

    # a resumed run: a new saver given the record saves only what beats 0.8
    resumed = BestModelSaver(tmp_path / "model.pt", net)
    evaluator = _evaluator([0.7, 0.9])
    resumed.attach(evaluator)
    resumed.load_state_dict(saver.state_dict())
    assert evaluator.state.best_metric == pytest.approx(0.8)
    evaluator.run([0], max_epochs=1)
    assert torch.equal(torch.load(tmp_path / "model.pt", weights_only=True)["weight"], weights[1])
    evaluator.run([0], max_epochs=2)
    assert resumed.best_metric == pytest.approx(0.9)
    assert torch.equal(torch.load(tmp_path / "model.pt", weights_only=True)["weight"], net.weight)


@pytest.mark.parametrize(
    "write, message",
    [
        (None, "does not exist"),
        (lambda p, b: p.write_bytes(b""), "is empty"),
        (lambda p, b: p.write_bytes(b[: len(b) // 2]), "is truncated or not a PyTorch checkpoint"),
        (lambda p, b: p.write_text("not weights"), "is truncated or not a PyTorch checkpoint"),
        (
            lambda p, b: torch.save(torch.nn.Linear(4, 2).state_dict(), p),
            "does not fit this bundle: weights of another architecture: weight \\(2, 4\\) instead of \\(2, 3\\)",
        ),
        (
            lambda p, b: torch.save({"bias": torch.zeros(2)}, p),
            "does not fit this bundle: weights of another architecture: missing weight",
        ),
        (lambda p, b: torch.save(torch.nn.Linear(3, 2), p), "holds pickled Python objects"),
    ],
)
def test_checkpoint_loader_names_the_file_and_the_problem(tmp_path, write, message):
    good = tmp_path / "good.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), good)
    path = tmp_path / "model.pt"
    if write is not None:
        write(path, good.read_bytes())
    net = torch.nn.Linear(3, 2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(CheckpointError, match=f"checkpoint {path} {message}"):
        CheckedCheckpointLoader(str(path), {"model": net})(Engine(lambda e, b: None))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_checkpoint_loader_loads_a_good_file_and_may_start_without_one(tmp_path, caplog):
    src = torch.nn.Linear(3, 2)
    torch.save(src.state_dict(), tmp_path / "model.pt")
    net = torch.nn.Linear(3, 2)
    CheckedCheckpointLoader(str(tmp_path / "model.pt"), {"model": net})(Engine(lambda e, b: None))
    assert torch.equal(net.weight, src.weight)
    CheckedCheckpointLoader(str(tmp_path / "none.pt"), {"model": net}, missing_ok=True)(Engine(lambda e, b: None))
    assert "training starts from the beginning" in caplog.text
