"""Kill a GSMorph training at a random moment with SIGKILL, resume it with ``--resume true`` and
compare with the same training run without interruption (bit-identical on the CPU)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from helpers import BUNDLES, REPO, cli, run_bundle

pytestmark = pytest.mark.slow

CONFIGS = BUNDLES / "gsmorph_cardiac" / "configs"


def training(dataset_dir, root, **extra) -> list[str]:
    return [
        "run",
        *cli(config_file=CONFIGS / "train.json", bundle_root=BUNDLES / "gsmorph_cardiac"),
        *cli(dataset_dir=dataset_dir, ckpt_dir=root / "models", output_dir=root / "eval"),
        # two loader workers: their seeds come from the restored generator as well
        *cli(num_workers=2, batch_size=2, num_epochs=5, val_interval=1, image_size=[64, 64], **extra),
    ]


def weights_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sigkill_then_resume_equals_the_uninterrupted_run(acdc_dataset, tmp_path):
    data = acdc_dataset / "data"
    run_bundle(*training(data, tmp_path / "whole"))
    whole = torch.load(tmp_path / "whole" / "models" / "checkpoint_last.pt", weights_only=True)
    whole_best = torch.load(tmp_path / "whole" / "models" / "model.pt", weights_only=True)

    models = tmp_path / "killed" / "models"
    process = subprocess.Popen(
        [sys.executable, "-m", "monai.bundle", *training(data, tmp_path / "killed")],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:  # a random moment after the first epoch's checkpoint, while later epochs run
        deadline = time.monotonic() + 600
        while not (models / "checkpoint_last.pt").exists() and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint after 10 minutes"
            time.sleep(0.05)
        time.sleep(random.Random(os.getpid()).uniform(0.0, 3.0))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    before = torch.load(models / "checkpoint_last.pt", weights_only=True)
    assert 0 < before["trainer"]["iteration"] < whole["trainer"]["iteration"], "the kill came after the last epoch"

    result = run_bundle(*training(data, tmp_path / "killed", resume="true"))
    resumed = torch.load(models / "checkpoint_last.pt", weights_only=True)
    assert resumed["trainer"]["iteration"] == whole["trainer"]["iteration"]
    assert weights_equal(resumed["model"], whole["model"])
    assert resumed["optimizer"]["state"][0]["step"] == whole["optimizer"]["state"][0]["step"]
    # the best model was never lowered: its record only rose, and it is the uninterrupted run's
    assert resumed["best_model"]["best_metric"] >= before["best_model"]["best_metric"]
    assert resumed["best_model"] == whole["best_model"]
    assert weights_equal(torch.load(models / "model.pt", weights_only=True), whole_best)
    assert "Restored all variables" in result.stdout + result.stderr
