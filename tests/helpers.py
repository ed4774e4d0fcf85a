"""What several test modules share: the ``monai.bundle`` runner, bundle config readers, a tiny 2-D
registration problem (network, images, losses) and editors of generated files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"

# ------------------------------------------------------------------------------------------------
# bundles
# ------------------------------------------------------------------------------------------------


def run_module(module: str, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run ``python -m <module> *args`` from the repository root, as a user does; with ``check``
    fail with its output if it fails."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, "-m", module, *map(str, args)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"{module} {args[:1]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


def run_bundle(*args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    """``python -m monai.bundle *args`` (see :func:`run_module`)."""
    return run_module("monai.bundle", *args, check=check, timeout=timeout)


def cli(**options) -> list[str]:
    """Command-line arguments ``--key value`` for ``options``, as a user types them: lists as
    ``[a,b,c]`` (what ``monai.bundle`` parses as a list), everything else with ``str``."""
    args: list[str] = []
    for key, value in options.items():
        if isinstance(value, (list, tuple)):
            value = "[" + ",".join(str(v) for v in value) + "]"
        args += [f"--{key}", str(value)]
    return args


def bundle_log(*args: str) -> str:
    """``run_bundle`` and return what it printed (stdout and stderr)."""
    result = run_bundle(*args)
    return result.stdout + result.stderr


def inference_args(bundle: str, ckpt_path: Path, output_dir: Path, **options) -> list[str]:
    """``monai.bundle`` arguments that run ``bundles/<bundle>/configs/inference.json`` with the
    weights ``ckpt_path``, writing to ``output_dir`` (no loader workers), plus ``options``."""
    configs = BUNDLES / bundle / "configs"
    return [
        "run",
        *cli(config_file=configs / "inference.json", bundle_root=BUNDLES / bundle, ckpt_path=ckpt_path),
        *cli(output_dir=output_dir, num_workers=0, **options),
    ]


def training_args(bundle: str, dataset_dir: Path, root: Path, **options) -> list[str]:
    """``monai.bundle`` options that point ``bundles/<bundle>`` at ``dataset_dir``, keep its
    checkpoints in ``root/models``, load with no workers and log with the bundle's
    ``logging.conf``, plus ``options``."""
    configs = BUNDLES / bundle / "configs"
    return cli(
        bundle_root=BUNDLES / bundle,
        dataset_dir=dataset_dir,
        ckpt_dir=root / "models",
        num_workers=0,
        logging_file=configs / "logging.conf",
        **options,
    )


def verify_bundle_network(bundle: str, **options) -> None:
    """MONAI's ``verify_net_in_out`` on ``network_def`` of ``bundles/<bundle>/configs/inference.json``
    with the bundle's ``metadata.json``, on the CPU; ``options`` override config values (``n``,
    ``any``, network sizes)."""
    from monai.bundle import verify_net_in_out

    configs = BUNDLES / bundle / "configs"
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(configs / "metadata.json"),
        config_file=str(configs / "inference.json"),
        device="cpu",
        **options,
    )


def config_list(bundle: str, *names: str) -> str:
    """The ``--config_file`` argument that stacks ``names`` of ``bundles/<bundle>/configs``:
    ``"['a.json','b.json']"``."""
    return "[" + ",".join(f"'{BUNDLES / bundle / 'configs' / n}'" for n in names) + "]"


def bundle_config(bundle: str, *names: str, **overrides):
    """A ``ConfigParser`` holding ``bundles/<bundle>/configs/<names>`` stacked as ``monai.bundle run``
    stacks them, with ``bundle_root`` set and ``overrides`` applied as command-line overrides are.
    Nothing is instantiated until ``get_parsed_content`` asks for it."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(BUNDLES / bundle / "configs" / n) for n in names])
    parser.update({"bundle_root": str(BUNDLES / bundle), **overrides})
    return parser


def bundle_workflow(bundle: str, config_files, tmp_path: Path, workflow_type: str = "train", **overrides):
    """``monai.bundle.ConfigWorkflow`` of ``bundles/<bundle>/configs/<config_files>``, initialised, as
    ``python -m monai.bundle run`` builds it: ``bundle_root`` set, models and outputs under
    ``tmp_path``, no loader workers, ``overrides`` as command-line overrides (paths as text)."""
    from monai.bundle import ConfigWorkflow

    files = [config_files] if isinstance(config_files, str) else list(config_files)
    options = {"ckpt_dir": tmp_path / "models", "output_dir": tmp_path / "out", "num_workers": 0, **overrides}
    workflow = ConfigWorkflow(
        config_file=[str(BUNDLES / bundle / "configs" / f) for f in files],
        workflow_type=workflow_type,
        bundle_root=str(BUNDLES / bundle),
        **{k: str(v) if isinstance(v, Path) else v for k, v in options.items()},
    )
    workflow.initialize()
    return workflow


# ------------------------------------------------------------------------------------------------
# a tiny 2-D registration problem
# ------------------------------------------------------------------------------------------------

SIZE = 16


class TinyNet(nn.Module):
    """Two convolutions from the 2-channel ``[moving, fixed]`` input to a 2-channel DDF."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.leaky_relu(self.conv1(x), 0.2)) * 2.0


def make_net(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet()


def smooth_images(n: int, generator: torch.Generator, size: int = SIZE) -> torch.Tensor:
    """``n`` smooth random images ``(n, 1, size, size)`` scaled to [0, 1]."""
    x = torch.rand(n, 1, size, size, generator=generator)
    for _ in range(2):
        x = F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
    x = x - x.amin(dim=(2, 3), keepdim=True)
    return x / x.amax(dim=(2, 3), keepdim=True)


def make_batches(n_batches: int = 2, batch_size: int = 2, seed: int = 0) -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    return [
        {"fixed_image": smooth_images(batch_size, gen), "moving_image": smooth_images(batch_size, gen)}
        for _ in range(n_batches)
    ]


def mse(warped: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
    return ((warped - fixed) ** 2).mean()


def smoothness(ddf: torch.Tensor) -> torch.Tensor:
    """Mean squared forward difference of the DDF (VoxelMorph's diffusion regulariser)."""
    dy = ddf[:, :, 1:, :] - ddf[:, :, :-1, :]
    dx = ddf[:, :, :, 1:] - ddf[:, :, :, :-1]
    return (dy**2).mean() + (dx**2).mean()


def make_trainer(net: nn.Module, batches: list[dict], surgery="gsmorph", lr: float = 1.0, **kwargs):
    """A one-epoch ``GradientSurgeryTrainer`` on ``batches`` with plain SGD, MSE and ``smoothness``."""
    from monai_ext.engines import GradientSurgeryTrainer

    return GradientSurgeryTrainer(
        device="cpu",
        max_epochs=1,
        train_data_loader=batches,
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=lr),
        similarity_loss=mse,
        regularization_loss=smoothness,
        surgery=surgery,
        **kwargs,
    )


# ------------------------------------------------------------------------------------------------
# editing generated files (bad-input tests)
# ------------------------------------------------------------------------------------------------


def rewrite_nifti(path: Path, change: Callable[[np.ndarray], np.ndarray], dtype=None) -> Path:
    """Replace the array of the NIfTI file ``path`` by ``change(array)``, keeping its affine."""
    image = nib.load(path)
    data = change(np.asanyarray(image.dataobj))
    nib.save(nib.Nifti1Image(data.astype(dtype or data.dtype), image.affine), path)
    return path


def remove_file(path: Path) -> Path:
    """Delete ``path`` and return it (a bad-input mutation: the named file is missing)."""
    path.unlink()
    return path


def with_nan(array: np.ndarray, index: tuple[int, ...] = (2, 3, 4)) -> np.ndarray:
    """A float32 copy of ``array`` with NaN at ``index`` (for :func:`rewrite_nifti`)."""
    array = array.astype(np.float32)
    array[index] = np.nan
    return array


def dataset_json_errors(json_name: str, required_key: str, entry: tuple[str, int, str]) -> dict[str, tuple]:
    """The bad inputs of a dataset JSON, as ``(error, mutate, message)`` for
    :func:`assert_bad_input_is_named`: ``json_name`` missing, ``required_key`` missing from it,
    and entry ``entry = (key, index, field)`` without its ``field`` path."""
    key, index, field = entry
    return {
        "missing JSON": (FileNotFoundError, lambda r: remove_file(r / json_name), "dataset JSON not found"),
        f"JSON without {required_key}": (
            ValueError,
            lambda r: edit_json(r / json_name, lambda d: d.pop(required_key)),
            rf"missing key\(s\) \['{required_key}'\]",
        ),
        f"{key} entry without {field}": (
            ValueError,
            lambda r: edit_json(r / json_name, lambda d: d[key][index].pop(field)),
            rf"'{key}'\[{index}\] has no '{field}' path",
        ),
    }


def assert_bad_input_is_named(prepare: Callable, release: Path, tmp_path: Path, bad_input: tuple, **kwargs) -> None:
    """Copy the dataset ``release``, break it with ``mutate`` (which returns the file it broke) and
    check that ``prepare(copy, out, **kwargs)`` raises ``error`` matching ``message``, names that
    file, and writes nothing; ``bad_input`` is ``(error, mutate, message)``."""
    import shutil

    import pytest

    error, mutate, message = bad_input
    root = tmp_path / "raw"
    shutil.copytree(release, root)
    culprit = mutate(root)
    with pytest.raises(error, match=message) as info:
        prepare(root, tmp_path / "out", **kwargs)
    assert str(culprit) in str(info.value)
    assert not (tmp_path / "out").exists()


def edit_json(path: Path, change: Callable[[dict], None]) -> Path:
    """Load the JSON file ``path``, let ``change`` edit it in place, and write it back."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


# ------------------------------------------------------------------------------------------------
# scores recomputed from written files
# ------------------------------------------------------------------------------------------------


def read_rows(path: Path) -> list[dict]:
    """The rows of a CSV file as dictionaries."""
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def dice_by_hand(fixed_label: np.ndarray, moving_label: np.ndarray, label: int) -> float:
    """``2 |F & M| / (|F| + |M|)`` for one label value; NaN when neither map holds it."""
    f, m = fixed_label == label, moving_label == label
    total = int(f.sum()) + int(m.sum())
    return float("nan") if total == 0 else 2.0 * int((f & m).sum()) / total


def assert_dice_row_matches_labels(
    row: dict, fixed_label: Path, moving_label: Path, label_names: dict, original_moving_label: Path | None = None
) -> None:
    """Each ``Dice_<name>`` of a metrics row equals the Dice of the two label files (on one grid),
    recomputed here by counting voxels, NaN for a label missing from the fixed or the original moving
    map (``original_moving_label``, default ``moving_label``); ``Dice_mean`` is their NaN-skipping mean."""
    fixed = np.asarray(nib.load(fixed_label).dataobj).astype(np.int64)
    moving = np.asarray(nib.load(moving_label).dataobj).astype(np.int64)
    original = np.asarray(nib.load(original_moving_label or moving_label).dataobj).astype(np.int64)
    assert fixed.shape == moving.shape, f"{fixed_label} and {moving_label} are not on one grid"
    expected = {
        name: dice_by_hand(fixed, moving, int(value))
        if (fixed == value).any() and (original == value).any()
        else np.nan
        for value, name in label_names.items()
    }
    found = {name: float(row[f"Dice_{name}"]) for name in expected}
    np.testing.assert_allclose(list(found.values()), list(expected.values()), atol=1e-5, err_msg=str(row["method"]))
    np.testing.assert_allclose(float(row["Dice_mean"]), np.nanmean(list(expected.values())), atol=1e-5)


def evaluator_scores(disp_file: Path, fixed_label: Path, moving_label: Path, labels) -> dict:
    """The LUMIR / Learn2Reg evaluators' steps, written here from their published definitions: the submission file
    read as it reads it, labels warped by scipy (order 0), Dice / HD95 (DeepMind surface distances,
    spacing 1) with NaN for labels missing from either map, SDlogJ of det + 3 with np.gradient."""
    from scipy.ndimage import map_coordinates
    from surface_distance import compute_robust_hausdorff, compute_surface_distances

    disp = nib.load(disp_file).get_fdata().transpose(3, 0, 1, 2)
    fixed, moving = (nib.load(p).get_fdata() for p in (fixed_label, moving_label))
    identity = np.meshgrid(*[np.arange(s) for s in fixed.shape], indexing="ij")
    warped = map_coordinates(moving, identity + disp, order=0)
    dice, hd95 = [], []
    for label in labels:
        if not ((fixed == label).any() and (moving == label).any()):
            dice.append(np.nan), hd95.append(np.nan)
            continue
        a, b = fixed == label, warped == label
        dice.append(2 * (a & b).sum() / (a.sum() + b.sum()))
        hd95.append(compute_robust_hausdorff(compute_surface_distances(a, b, np.ones(3)), 95.0) if b.any() else np.inf)
    jacobian = np.stack([np.stack(np.gradient(disp[c]), 0) for c in range(3)]) + np.eye(3)[:, :, None, None, None]
    det = np.linalg.det(np.moveaxis(jacobian, (0, 1), (-2, -1)))[2:-2, 2:-2, 2:-2]
    return {"Dice": np.nanmean(dice), "HD95": np.nanmean(hd95), "SDlogJ": np.log(np.clip(det + 3, 1e-9, 1e9)).std()}
