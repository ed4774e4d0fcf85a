"""Fixtures shared by the test modules: small synthetic datasets in the real layouts, converted by
``data_prep`` as a user converts the real ones. Generated once per test session; tests that edit
files make their own copies.

Tiers: ``pytest -m "not slow"`` runs the unit and config tests; ``-m slow`` the end-to-end runs
(``python -m monai.bundle`` subprocesses, multi-process training, networks at 66^3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_prep import (
    make_synthetic_acdc,
    make_synthetic_lumir,
    make_synthetic_oasis,
    prepare_acdc,
    prepare_lumir,
    prepare_oasis,
)


@pytest.fixture(scope="session")
def acdc_dataset(tmp_path_factory) -> Path:
    """Five ACDC-layout subjects (72x64, 2 slices, 4 frames) under ``raw/``, converted to ``data/``
    (GSMorph's ES->ED slice pairs, 128x128 crops, 75/5/20 split)."""
    root = tmp_path_factory.mktemp("acdc")
    make_synthetic_acdc(root / "raw", num_subjects=5, size=(72, 64), slices=2, frames=4, seed=1)
    prepare_acdc(root / "raw", root / "data", seed=0)
    return root


@pytest.fixture(scope="session")
def lumir_dataset(tmp_path_factory) -> Path:
    """LUMIR-layout release (4 training, 4 validation images of 40x44x40 with labels and landmarks)
    under ``raw/``, its datalist under ``data/``."""
    root = tmp_path_factory.mktemp("lumir")
    make_synthetic_lumir(root / "raw", num_train=4, num_val=4, size=(40, 44, 40), seed=0)
    prepare_lumir(root / "raw", root / "data", seed=0)
    return root


@pytest.fixture(scope="session")
def oasis_dataset(tmp_path_factory) -> Path:
    """Learn2Reg OASIS-layout release (5 subjects of 24x28x24, 2 of them validation) under ``raw/``,
    its datalist under ``data/``."""
    root = tmp_path_factory.mktemp("oasis")
    make_synthetic_oasis(root / "raw", num_subjects=5, num_val=2, size=(24, 28, 24), seed=0)
    prepare_oasis(root / "raw", root / "data", seed=0)
    return root


@pytest.fixture(scope="session")
def neurite_slices_dataset(tmp_path_factory) -> Path:
    """neurite-OASIS-layout release (8 subjects, volumes 64x72x80, coronal 2-D slices 64x72) under
    ``raw/``; the datalist of its 2-D ``seg24`` variant (last 3 subjects: validation) under ``data/``."""
    root = tmp_path_factory.mktemp("neurite")
    make_synthetic_oasis(root / "raw", layout="neurite", num_subjects=8, size=(64, 72, 80), seed=0)
    prepare_oasis(root / "raw", root / "data", variant="seg24", num_val=3, seed=0)
    return root


@pytest.fixture
def single_process_group(tmp_path, monkeypatch):
    """A one-process ``torch.distributed`` group (gloo), as ``torchrun --nproc_per_node=1`` would set
    up, so that the multi-GPU overlays can be resolved in the test process."""
    import ignite.distributed as idist
    import torch.distributed as dist

    for name, value in (("LOCAL_RANK", "0"), ("RANK", "0"), ("WORLD_SIZE", "1")):
        monkeypatch.setenv(name, value)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'process_group'}", rank=0, world_size=1)
    yield
    # Ignite caches the distributed model it found (MONAI metrics ask it for the world size): reset it
    idist.finalize()
    if dist.is_initialized():
        dist.destroy_process_group()
