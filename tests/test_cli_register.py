"""The single-pair registration command (``monai_ext.cli.register``), as ``unigradicon-register`` is used.

A randomly initialised uniGradICON-architecture network on its smallest grid (66^3) is saved with
``torch.save(state_dict)`` as the official ``Step_2_final.trch`` is; a fixed image and a moving image
of another size, spacing and orientation are registered with one IO step through the Python
function and directly through ``python -m monai_ext.cli.register``.
"""

from __future__ import annotations

import configparser
import copy
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_ext.cli.register import modality_intensity_transform, register
from monai_ext.io.displacement_field import read_itk_displacement_field
from monai_ext.networks import load_unigradicon_weights, unigradicon_network

REPO = Path(__file__).resolve().parents[1]
NETWORK_SIZE = (66, 66, 66)
FIXED_SHAPE = (40, 36, 32)
MOVING_SHAPE = (40, 42, 38)


def _fixed_affine() -> np.ndarray:
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    affine[:3, 3] = [-30.0, -27.0, -32.0]
    return affine


def _moving_affine() -> np.ndarray:
    """Other spacing, rotated by 0.2 rad about z, and its field of view covering the fixed one."""
    c, s = np.cos(0.2), np.sin(0.2)
    affine = np.eye(4)
    affine[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([2.0, 1.8, 2.2])
    affine[:3, 3] = affine[:3, :3] @ (-(np.array(MOVING_SHAPE) - 1) / 2.0)  # centred on the world origin
    return affine


def _blob(shape, affine, centre, radius):
    """A bright ball with a soft rim (intensity) and two nested label regions, in world millimetres."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    distance = np.linalg.norm(index @ affine[:3, :3].T + affine[:3, 3] - np.asarray(centre), axis=-1)
    image = 100.0 * np.exp(-((distance / radius) ** 2)) + 20.0 * (distance < radius)
    label = (distance < radius).astype(np.uint8) + (distance < radius / 2)
    return image.astype(np.float32), label.astype(np.uint8)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("register")
    paths = {}
    for name, shape, affine, centre, radius in (
        ("fixed", FIXED_SHAPE, _fixed_affine(), (0.0, 0.0, 0.0), 15.0),
        ("moving", MOVING_SHAPE, _moving_affine(), (3.0, -2.0, 1.0), 13.0),
    ):
        image, label = _blob(shape, affine, centre, radius)
        paths[name] = root / f"{name}.nii.gz"
        paths[f"{name}_label"] = root / f"{name}_label.nii.gz"
        nib.save(nib.Nifti1Image(image, affine), paths[name])
        nib.save(nib.Nifti1Image(label, affine), paths[f"{name}_label"])
    torch.manual_seed(0)
    net = unigradicon_network(input_shape=None)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # the last layers start at zero (identity field): perturb them for a real field
        for name, p in net.named_parameters():
            p.add_((2e-2 if "lastConv" in name else 1e-3) * torch.randn(p.shape, generator=generator))
    paths["weights"] = root / "Step_2_final.trch"
    torch.save(net.state_dict(), paths["weights"])
    paths["out"] = root / "out"
    return paths


@pytest.fixture(scope="module")
def io_run(data):
    """One projected IO step through the Python function, on a network built from the weight file."""
    net = load_unigradicon_weights(unigradicon_network(input_shape=NETWORK_SIZE), data["weights"])
    before = copy.deepcopy(net.state_dict())
    out = data["out"]
    ddf = register(
        str(data["fixed"]),
        str(data["moving"]),
        network=net,
        io_iterations=1,
        io_mode="projected",
        transform_out=str(out / "transform.h5"),
        warped_moving_out=str(out / "warped.nii.gz"),
        fixed_label=str(data["fixed_label"]),
        moving_label=str(data["moving_label"]),
        warped_label_out=str(out / "warped_label.nii.gz"),
        network_size=NETWORK_SIZE,
        progress=False,
    )
    return {"ddf": ddf, "net": net, "before": before}


@pytest.mark.slow  # instance optimisation of uniGradICON at 66^3
def test_io_works_on_a_copy_of_the_network(io_run):
    net, before = io_run["net"], io_run["before"]
    for name, value in net.state_dict().items():  # weights and BatchNorm statistics
        assert torch.equal(value, before[name]), name
    assert net.training  # a freshly built module is in training mode; register restores the mode it found


@pytest.mark.slow  # instance optimisation of uniGradICON at 66^3
def test_outputs_have_the_fixed_geometry(io_run, data):
    ddf, out = io_run["ddf"], data["out"]
    assert ddf.shape == (1, 3, *FIXED_SHAPE) and ddf.dtype == torch.float32 and bool(torch.isfinite(ddf).all())
    assert float(ddf.abs().max()) > 0.1  # the perturbed network moves voxels
    for name in ("warped.nii.gz", "warped_label.nii.gz"):
        image = nib.load(out / name)
        assert image.shape == FIXED_SHAPE, name
        np.testing.assert_allclose(image.affine, _fixed_affine(), atol=1e-5)
    field, affine = read_itk_displacement_field(out / "transform.h5")
    np.testing.assert_allclose(affine, _fixed_affine(), atol=1e-5)
    np.testing.assert_allclose(field, ddf[0].numpy(), atol=1e-4)


@pytest.mark.slow  # instance optimisation of uniGradICON at 66^3
def test_warped_image_is_what_itk_makes_of_the_transform(io_run, data):
    """ITK's resampler, given the written transform, the original moving image and the fixed image as
    reference, reproduces the warped image: the field, its world convention and the geometry agree."""
    itk = pytest.importorskip("itk")
    fixed = itk.imread(str(data["fixed"]), itk.F)
    moving = itk.imread(str(data["moving"]), itk.F)
    transform = itk.transformread(str(data["out"] / "transform.h5"))[0]
    expected = itk.resample_image_filter(
        moving,
        transform=transform,
        interpolator=itk.LinearInterpolateImageFunction.New(moving),
        use_reference_image=True,
        reference_image=fixed,
        default_pixel_value=0.0,
    )
    expected = np.transpose(itk.array_from_image(expected), (2, 1, 0))  # ITK (k, j, i) -> our (i, j, k)
    warped = np.asarray(nib.load(data["out"] / "warped.nii.gz").dataobj)
    assert np.abs(warped - expected).max() < 1e-2  # intensities up to 120
    # and the identity would not do: the comparison sees the field
    identity = itk.resample_image_filter(
        moving,
        transform=itk.IdentityTransform[itk.D, 3].New(),
        interpolator=itk.LinearInterpolateImageFunction.New(moving),
        use_reference_image=True,
        reference_image=fixed,
    )
    identity = np.transpose(itk.array_from_image(identity), (2, 1, 0))
    assert np.abs(identity - expected).max() > 5.0


@pytest.mark.slow  # instance optimisation of uniGradICON at 66^3
def test_label_is_warped_with_nearest_neighbour(io_run, data):
    warped = np.asarray(nib.load(data["out"] / "warped_label.nii.gz").dataobj)
    assert np.issubdtype(warped.dtype, np.integer)
    assert set(np.unique(warped)) == {0, 1, 2}  # only values of the moving label, no blends


@pytest.mark.slow  # the monai-register command in a subprocess
def test_command_line_direct_inference_from_the_weight_file(io_run, data, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    transform = tmp_path / "transform.nii.gz"
    warped = tmp_path / "warped.nii.gz"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "monai_ext.cli.register",
            "--fixed",
            str(data["fixed"]),
            "--moving",
            str(data["moving"]),
            "--weights",
            str(data["weights"]),
            "--network_size",
            "66,66,66",
            "--io_iterations",
            "0",
            "--transform_out",
            str(transform),
            "--warped_moving_out",
            str(warped),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "direct inference" in result.stdout and "negative Jacobian determinant" in result.stdout
    assert nib.load(warped).shape == FIXED_SHAPE
    field, affine = read_itk_displacement_field(transform)
    np.testing.assert_allclose(affine, _fixed_affine(), atol=1e-5)
    assert field.shape == (3, *FIXED_SHAPE)
    # one IO step (AMSGrad, lr 2e-5) moves the field a little from the direct prediction, not a lot
    difference = np.abs(field - io_run["ddf"][0].numpy())
    assert 0 < difference.max() < 0.5


def test_modality_intensity_scaling():
    ct = torch.tensor([[[[-2000.0, -1000.0, 0.0, 500.0, 1000.0, 3000.0]]]])
    expected_ct = torch.tensor([[[[0.0, 0.0, 0.5, 0.75, 1.0, 1.0]]]])
    np.testing.assert_allclose(np.asarray(modality_intensity_transform("CT")(ct)), expected_ct.numpy(), atol=1e-6)
    mri = torch.arange(101.0).reshape(1, 101, 1, 1) + 10.0  # min 10, 99th percentile 109
    scaled = np.asarray(modality_intensity_transform("mri")(mri))
    np.testing.assert_allclose(scaled[0, [0, 50, 99, 100], 0, 0], [0.0, 50 / 99, 1.0, 1.0], atol=1e-6)


@pytest.mark.parametrize("key", ["fixed_modality", "moving_modality"])
def test_bad_modality_lists_the_valid_ones(data, key):
    with pytest.raises(ValueError, match=rf"{key} must be one of 'mri', 'ct'; got 'xray'"):
        register(str(data["fixed"]), str(data["moving"]), weights=str(data["weights"]), **{key: "xray"})


def test_bad_options_are_named(data):
    with pytest.raises(ValueError, match="io_mode must be one of 'none', 'vanilla', 'projected'"):
        register(str(data["fixed"]), str(data["moving"]), weights=str(data["weights"]), io_mode="fast")
    with pytest.raises(ValueError, match=r"transform_out .*\.h5"):
        register(str(data["fixed"]), str(data["moving"]), weights=str(data["weights"]), transform_out="t.txt")
    with pytest.raises(ValueError, match="refusing to overwrite"):
        register(
            str(data["fixed"]), str(data["moving"]), weights=str(data["weights"]), warped_moving_out=str(data["fixed"])
        )


def test_missing_files_are_named(data, tmp_path):
    missing = tmp_path / "no_such_Step_2_final.trch"
    with pytest.raises(FileNotFoundError, match="weights file not found: .*no_such_Step_2_final.trch"):
        register(str(data["fixed"]), str(data["moving"]), weights=str(missing))
    with pytest.raises(FileNotFoundError, match="moving not found: .*nothing.nii.gz"):
        register(str(data["fixed"]), str(tmp_path / "nothing.nii.gz"), weights=str(data["weights"]))


@pytest.mark.parametrize("allow", [False, "false", "False", "0", 0])
def test_weights_are_required_unless_random_ones_are_asked_for(data, allow):
    # as typed on the command line: "false" must not count as true
    with pytest.raises(ValueError, match="no network weights given"):
        register(str(data["fixed"]), str(data["moving"]), allow_random_weights=allow)
    with pytest.raises(ValueError, match="allow_random_weights must be true or false"):
        register(str(data["fixed"]), str(data["moving"]), allow_random_weights="maybe")


def test_unsuitable_images_are_named(data, tmp_path):
    flat = tmp_path / "slice2d.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((20, 20)).astype(np.float32), np.eye(4)), flat)
    with pytest.raises(ValueError, match=r"slice2d\.nii\.gz.* 2 spatial dimensions"):
        register(str(data["fixed"]), str(flat), allow_random_weights=True, network_size=NETWORK_SIZE)
    air = tmp_path / "air_ct.nii.gz"
    nib.save(nib.Nifti1Image(np.linspace(-3000, -1000, 8000, dtype=np.float32).reshape(20, 20, 20), np.eye(4)), air)
    with pytest.raises(ValueError, match=r"air_ct\.nii\.gz' is constant after CT intensity scaling"):
        register(
            str(data["fixed"]), str(air), moving_modality="ct", allow_random_weights=True, network_size=NETWORK_SIZE
        )


def test_console_script_is_declared():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    scripts = config["options.entry_points"]["console_scripts"]
    assert "monai-register = monai_ext.cli.register:main" in scripts


def test_command_line_without_an_output_file_is_refused_before_it_runs(tmp_path):
    from monai_ext.cli.register import register_command

    with pytest.raises(ValueError, match="nothing would be written: give at least one of --transform_out"):
        register_command(fixed=str(tmp_path / "missing.nii.gz"), moving=str(tmp_path / "missing.nii.gz"))
