"""Bad inputs through every entry point, as a user meets them on the command line.

Each case asserts: exit status 1, one closing message ``error: ...`` that names the file and the
problem, no traceback (``--debug true`` shows it), no new file, and every earlier output
byte-identical. Entry points: the bundles' inference, training and evaluation through
``python -m monai.bundle run``, ``monai-register`` / ``python -m monai_ext.cli`` and
``python -m data_prep``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from data_prep import make_synthetic_acdc, prepare_acdc

from helpers import BUNDLES, cli, run_bundle, run_module

pytestmark = pytest.mark.slow

GSMORPH = BUNDLES / "gsmorph_cardiac"
DIO = BUNDLES / "dio_brain"
SLICE_AFFINE = np.diag([1.5, 1.5, 8.0, 1.0])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_refused(result, *fragments: str) -> None:
    """Exit status 1, the closing ``error:`` line holds every fragment, and no traceback."""
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == "(run again with --debug true for the full traceback)", result.stderr[-3000:]
    assert lines[-2].startswith("error: "), result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[-2], lines[-2]
    assert "Traceback" not in result.stdout + result.stderr


def save(path: Path, array: np.ndarray, affine: np.ndarray = SLICE_AFFINE) -> Path:
    nib.save(nib.Nifti1Image(array, affine), path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A good 2-D ES/ED slice pair with labels, and one bad variant per case."""
    root = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    image = np.zeros((64, 64), np.float32)
    image[16:48, 16:48] = 1.0
    image += 0.1 * rng.random((64, 64), dtype=np.float32)
    label = np.zeros((64, 64), np.uint8)
    label[20:44, 20:44], label[26:38, 26:38] = 2, 1
    f = {
        "fixed": save(root / "fixed.nii.gz", image),
        "moving": save(root / "moving.nii.gz", np.roll(image, 2, 0)),
        "fixed_label": save(root / "fixed_label.nii.gz", label),
        "moving_label": save(root / "moving_label.nii.gz", np.roll(label, 2, 0)),
    }
    good = f["moving"].read_bytes()
    f["missing"] = root / "missing.nii.gz"
    f["empty"], f["truncated"], f["not_nifti"] = root / "empty.nii.gz", root / "truncated.nii.gz", root / "notes.nii.gz"
    f["empty"].write_bytes(b"")
    f["truncated"].write_bytes(good[: len(good) // 2])
    f["not_nifti"].write_text("not an image")
    f["volume"] = save(root / "volume.nii.gz", np.repeat(image[..., None], 4, axis=-1))
    f["cine"] = save(root / "cine.nii.gz", np.repeat(image[..., None, None], 3, axis=-1).repeat(2, axis=-2))
    nan, inf = image.copy(), image.copy()
    nan[5, 5], inf[5, 5] = np.nan, np.inf
    f["nan"], f["inf"] = save(root / "nan.nii.gz", nan), save(root / "inf.nii.gz", inf)
    f["constant"] = save(root / "constant.nii.gz", np.full((64, 64), 3.0, np.float32))
    f["label_empty"] = save(root / "label_empty.nii.gz", np.zeros((64, 64), np.uint8))
    f["label_shape"] = save(root / "label_shape.nii.gz", label[:60])
    bad_value = label.copy()
    bad_value[0, 0] = 9
    f["label_9"] = save(root / "label_9.nii.gz", bad_value)
    fractional = label.astype(np.float32)
    fractional[0, 0] = 2.5
    f["label_2_5"] = save(root / "label_2_5.nii.gz", fractional)
    far = SLICE_AFFINE.copy()
    far[0, 3] = 1000.0
    f["far"] = save(root / "far.nii.gz", np.roll(image, 2, 0), far)
    return f


@pytest.fixture(scope="module")
def earlier_outputs(files, tmp_path_factory) -> Path:
    """An output folder holding one good registration's outputs and a GSMorph checkpoint."""
    root = tmp_path_factory.mktemp("earlier")
    parser = ConfigParser()
    parser.read_config(GSMORPH / "configs" / "inference.json")
    net = parser.get_parsed_content("network_def")
    torch.save(net.state_dict(), root / "model.pt")
    run_bundle(*gsmorph_inference(root / "out", files["fixed"], files["moving"], root / "model.pt"))
    assert (root / "out" / "metrics_per_case.csv").exists()
    return root


def gsmorph_inference(output_dir: Path, fixed: Path, moving: Path, ckpt: Path, **extra) -> list[str]:
    return [
        "run",
        *cli(config_file=GSMORPH / "configs" / "inference.json", bundle_root=GSMORPH, ckpt_path=ckpt),
        *cli(output_dir=output_dir, num_workers=0, fixed=fixed, moving=moving, **extra),
    ]


@pytest.fixture
def outputs(earlier_outputs, tmp_path) -> Path:
    copy = tmp_path / "earlier"
    shutil.copytree(earlier_outputs, copy)
    return copy


IMAGE_CASES = [
    ("missing", "missing.nii.gz does not exist"),
    ("empty", "empty.nii.gz is empty"),
    ("truncated", "truncated.nii.gz cannot be read as an image"),
    ("not_nifti", "notes.nii.gz cannot be read as an image"),
    ("volume", "volume.nii.gz) has 3 spatial dimensions"),
    ("cine", "cine.nii.gz) has 3 spatial dimensions (shape (64, 64, 2))"),  # the last axis read as channels
    ("nan", "nan.nii.gz) contains NaN or infinite intensities"),
    ("inf", "inf.nii.gz) contains NaN or infinite intensities"),
    ("constant", "constant.nii.gz) is constant"),
]
LABEL_CASES = [
    ("label_empty", "label_empty.nii.gz) holds no labelled structure"),
    ("label_shape", "label_shape.nii.gz) has shape (60, 64)"),
    ("label_9", "label_9.nii.gz) has label values [9] outside the expected set [0, 1, 2, 3]"),
    ("label_2_5", "label_2_5.nii.gz) holds values that are not whole numbers (e.g. 2.5)"),
]


@pytest.mark.parametrize("case, message", IMAGE_CASES + LABEL_CASES, ids=[c for c, _ in IMAGE_CASES + LABEL_CASES])
def test_gsmorph_inference(files, outputs, case, message):
    before = snapshot(outputs)
    moving = files[case] if (case, message) in IMAGE_CASES else files["moving"]
    labels = {"fixed_label": files["fixed_label"], "moving_label": files[case]} if case.startswith("label") else {}
    result = run_bundle(
        *gsmorph_inference(outputs / "out", files["fixed"], moving, outputs / "model.pt", **labels), check=False
    )
    assert_refused(result, message)
    assert snapshot(outputs) == before


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda p: p.write_bytes(b""), "model.pt is empty"),
        (lambda p: p.write_bytes(p.read_bytes()[:1000]), "model.pt is truncated or not a PyTorch checkpoint"),
        (lambda p: torch.save({"weight": torch.zeros(3)}, p), "model.pt does not fit this bundle"),
    ],
    ids=["empty", "truncated", "other_architecture"],
)
def test_gsmorph_inference_checkpoint(files, outputs, write, message):
    write(outputs / "model.pt")
    before = snapshot(outputs)
    result = run_bundle(
        *gsmorph_inference(outputs / "out", files["fixed"], files["moving"], outputs / "model.pt"), check=False
    )
    assert_refused(result, message)
    assert snapshot(outputs) == before


def test_debug_shows_the_traceback(files, outputs):
    result = run_bundle(
        *gsmorph_inference(outputs / "out", files["fixed"], files["nan"], outputs / "model.pt", debug="true"),
        check=False,
    )
    assert result.returncode == 1 and "Traceback" in result.stderr and "nan.nii.gz) contains NaN" in result.stderr


def test_no_overlap_is_warned_about_naming_both_files(files, outputs):
    result = run_bundle(*gsmorph_inference(outputs / "out", files["fixed"], files["far"], outputs / "model.pt"))
    log = result.stdout + result.stderr
    assert "fixed.nii.gz) and moving_image" in log and "far.nii.gz) do not overlap in world space" in log


def test_dio_inference_on_3d_inputs(files, tmp_path):
    """The 3-D bundles check as the 2-D one: a 2-D slice for a 3-D bundle, NaN, a label off its grid."""
    rng = np.random.default_rng(1)
    volume = np.zeros((24, 28, 24), np.float32)
    volume[6:18, 6:22, 6:18] = 1.0
    volume += 0.1 * rng.random(volume.shape, dtype=np.float32)
    fixed = save(tmp_path / "brain_fixed.nii.gz", volume, np.eye(4))
    moving = save(tmp_path / "brain_moving.nii.gz", np.roll(volume, 1, 0), np.eye(4))
    nan = volume.copy()
    nan[3, 3, 3] = np.nan
    label = (volume > 0.5).astype(np.uint8)
    cases = [
        ({"moving": files["moving"]}, "moving.nii.gz) has 2 spatial dimensions"),
        ({"moving": save(tmp_path / "brain_nan.nii.gz", nan, np.eye(4))}, "brain_nan.nii.gz) contains NaN"),
        (
            {
                "fixed_label": save(tmp_path / "brain_fixed_label.nii.gz", label, np.eye(4)),
                "moving_label": save(tmp_path / "brain_label_shape.nii.gz", label[:20], np.eye(4)),
            },
            "brain_label_shape.nii.gz) has shape (20, 28, 24)",
        ),
    ]
    out = tmp_path / "out"
    for overrides, message in cases:
        pair = {"fixed": fixed, "moving": moving, **overrides}
        result = run_bundle(
            "run",
            *cli(config_file=DIO / "configs" / "inference.json", bundle_root=DIO, feature_network="intensity"),
            *cli(output_dir=out, num_workers=0, iterations=[2, 2, 2], **pair),
            check=False,
        )
        assert_refused(result, message)
        assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


@pytest.fixture(scope="module")
def acdc(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("acdc_hostile")
    make_synthetic_acdc(root / "raw", num_subjects=4, size=(56, 56), slices=1, frames=4, seed=2)
    prepare_acdc(root / "raw", root / "data", seed=0)
    return root


def gsmorph_training(data: Path, root: Path, config: str = "train.json", **extra) -> list[str]:
    configs = [GSMORPH / "configs" / "train.json"]
    if config != "train.json":
        configs.append(GSMORPH / "configs" / config)
    return [
        "run",
        "--config_file",
        str(configs[0]) if len(configs) == 1 else "[" + ",".join(f"'{c}'" for c in configs) + "]",
        *cli(bundle_root=GSMORPH, dataset_dir=data, ckpt_dir=root / "models", output_dir=root / "eval"),
        *cli(num_workers=0, batch_size=2, num_epochs=1, image_size=[32, 32], **extra),
    ]


def _spoil(data: Path, split: str, key: str, spoil) -> str:
    entry = json.loads((data / "datalist.json").read_text())[split][0]
    path = data / entry[key]
    image = nib.load(path)
    nib.save(nib.Nifti1Image(spoil(np.asarray(image.dataobj)), image.affine), path)
    return Path(entry[key]).name


def _nan(array: np.ndarray) -> np.ndarray:
    array = array.astype(np.float32)
    array[array.shape[0] // 2, array.shape[1] // 2] = np.nan
    return array


@pytest.mark.parametrize(
    "split, config, spoil, message",
    [
        ("training", "train.json", _nan, "contains NaN or infinite intensities"),
        ("validation", "train.json", lambda a: np.where(a > 0, 9, 0).astype(np.uint8), "has label values [9]"),
        ("testing", "evaluate.json", _nan, "contains NaN or infinite intensities"),
    ],
    ids=["train_nan", "validation_label_9", "evaluate_nan"],
)
def test_gsmorph_training_and_evaluation_data(acdc, tmp_path, split, config, spoil, message):
    data = tmp_path / "data"
    shutil.copytree(acdc / "data", data)
    key = "fixed_label" if "label" in message else "moving_image"
    name = _spoil(data, split, key, spoil)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.pt").write_bytes(b"an earlier model")
    before = snapshot(tmp_path)
    extra = {"load_pretrain": "false"} if config == "evaluate.json" else {}
    result = run_bundle(*gsmorph_training(data, tmp_path, config, **extra), check=False)
    assert_refused(result, name, message)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"training": [', "is not valid JSON: Expecting value at line 1, column 15"),
        ('{"testing": []}', "has no 'training' list"),
        ('{"training": ["images/a.nii.gz"], "validation": []}', "'training' must be a list of objects"),
    ],
    ids=["truncated_json", "no_training_list", "entries_not_objects"],
)
def test_gsmorph_training_datalist(acdc, tmp_path, content, message):
    data = tmp_path / "data"
    shutil.copytree(acdc / "data", data)
    (data / "datalist.json").write_text(content)
    before = snapshot(tmp_path)
    result = run_bundle(*gsmorph_training(data, tmp_path), check=False)
    assert_refused(result, "datalist.json", message)
    assert snapshot(tmp_path) == before


def test_monai_register(files, tmp_path):
    """``python -m monai_ext.cli register``: an output folder that cannot be written (a file stands
    where the folder should be) and a fractional label are refused before anything is registered."""
    volume = np.zeros((20, 20, 20), np.float32)
    volume[5:15, 5:15, 5:15] = 1.0
    volume += 0.01 * np.arange(volume.size, dtype=np.float32).reshape(volume.shape) / volume.size
    fixed = save(tmp_path / "f.nii.gz", volume, np.eye(4))
    label = (volume > 0.5).astype(np.float32)
    label[0, 0, 0] = 2.5
    fractional = save(tmp_path / "frac.nii.gz", label, np.eye(4))
    (tmp_path / "blocked").write_text("a file, not a folder")
    common = ["register", *cli(fixed=fixed, moving=fixed, allow_random_weights="true", network_size=[66, 66, 66])]
    before = snapshot(tmp_path)
    for extra, message in [
        ({"transform_out": tmp_path / "blocked" / "t.h5"}, "cannot write into"),
        (
            {"moving_label": fractional, "transform_out": tmp_path / "t.h5"},
            "frac.nii.gz' holds values that are not whole numbers (e.g. 2.5)",
        ),
    ]:
        result = run_module("monai_ext.cli", *common, *cli(io_iterations=0, **extra), check=False)
        assert_refused(result, message)
        assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda cfg: cfg.write_text(cfg.read_text().replace("ED:", "EDX:")), "no 'ED:' line"),
        (lambda cfg: _edit_frames(cfg, lambda ed, es: (ed, ed)), "ED and ES are the same frame"),
        (lambda cfg: _edit_frames(cfg, lambda ed, es: (es, ed)), "ED and ES look swapped"),
    ],
    ids=["malformed_info_cfg", "fixed_is_moving", "ed_es_swapped"],
)
def test_data_prep(acdc, tmp_path, edit, message):
    raw = tmp_path / "raw"
    shutil.copytree(acdc / "raw", raw)
    cfg = sorted(raw.rglob("Info.cfg"))[0]
    edit(cfg)
    out = tmp_path / "out"
    shutil.copytree(acdc / "data", out)
    before = snapshot(out)
    result = run_module("data_prep", "acdc", *cli(root=raw, out=out), check=False)
    assert_refused(result, message)
    assert snapshot(out) == before


def _edit_frames(cfg: Path, edit) -> None:
    """Rewrite the ED / ES lines of an ACDC ``Info.cfg`` with ``edit(ed, es) -> (ed, es)``."""
    lines = dict(line.split(":", 1) for line in cfg.read_text().splitlines() if ":" in line)
    lines["ED"], lines["ES"] = edit(lines["ED"], lines["ES"])
    cfg.write_text("".join(f"{k}:{v}\n" for k, v in lines.items()))
