"""ITK / ANTs displacement-field files: ITK's own resampling must reproduce warp_image.

The reference is ITK itself: the moving image is saved as NIfTI with nibabel and read with
``itk.imread`` (so ITK decides the geometry), the written field is read with
``itk.transformread`` (or ``itk.imread`` for the ANTs-style image) and applied with
``itk.ResampleImageFilter`` (linear interpolation, fixed geometry as reference).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

itk = pytest.importorskip("itk")

from monai_ext.io.displacement_field import (  # noqa: E402
    is_oblique_plane,
    itk_geometry_from_ras_affine,
    ras_affine_from_itk_geometry,
    read_itk_displacement_field,
    write_itk_displacement_field,
)
from monai_ext.io.nifti import load_nifti, save_nifti  # noqa: E402
from monai_ext.spatial import identity_grid, warp_image  # noqa: E402


def rotation(axis: int, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def make_affine(rot: np.ndarray, spacing, origin) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


# (spatial shape, RAS affine of the fixed == moving grid)
GEOMETRIES = {
    "3d": ((14, 12, 10), make_affine(rotation(2, 0.3) @ rotation(0, 0.2), (1.3, 0.7, 2.1), (12.0, -30.0, 45.0))),
    # in-plane rotation with an axis flip: ITK's 2-D geometry is the top-left 2x2 block
    "2d_inplane": (
        (22, 19),
        make_affine(rotation(2, 0.4) @ np.diag([1.0, -1.0, -1.0]), (1.25, 0.8, 6.0), (-7.0, 15.0, 3.0)),
    ),
    # oblique slice: ITK renormalises the columns of the in-plane block
    "2d_oblique": ((22, 19), make_affine(rotation(2, 0.3) @ rotation(0, 0.5), (1.25, 0.8, 6.0), (5.0, 8.0, -20.0))),
}


def smooth_ddf(shape, amplitude, seed) -> np.ndarray:
    """``(ndim, *shape)`` float64 field: three low-frequency cosines per component."""
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    grid = identity_grid(shape, dtype=torch.float64).numpy()
    ddf = np.zeros((ndim,) + tuple(shape))
    for c in range(ndim):
        for _ in range(3):
            freq = rng.uniform(0.2, 1.5, ndim) * np.pi / np.array(shape)
            arg = np.tensordot(freq, grid, axes=1) + rng.uniform(0, 2 * np.pi)
            ddf[c] += rng.uniform(-1, 1) * np.cos(arg)
    return amplitude / 3.0 * ddf


def smooth_image(shape) -> np.ndarray:
    grid = identity_grid(shape, dtype=torch.float64).numpy()
    value = np.full(shape, 2.0)
    for c, n in enumerate(shape):
        value += np.sin(2 * np.pi * grid[c] / (1.3 * n) + 0.5 * c)
    return value.astype(np.float32)


def itk_transform_from_file(path):
    """What an ITK/ANTs user does with each file type."""
    if str(path).endswith((".nii", ".nii.gz")):
        field = itk.imread(str(path))
        ndim = field.GetImageDimension()
        double_field = itk.Image[itk.Vector[itk.D, ndim], ndim].New()
        double_field.SetRegions(field.GetLargestPossibleRegion())
        double_field.CopyInformation(field)
        double_field.Allocate()
        itk.array_view_from_image(double_field)[...] = itk.array_view_from_image(field)
        transform = itk.DisplacementFieldTransform[itk.D, ndim].New()
        transform.SetDisplacementField(double_field)
        return transform
    (transform,) = itk.transformread(str(path))
    return transform


@pytest.mark.parametrize("suffix", [".h5", ".tfm", ".nii.gz"])
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_itk_resampling_reproduces_warp_image(tmp_path, geometry, suffix):
    shape, affine = GEOMETRIES[geometry]
    ndim = len(shape)
    moving_path = save_nifti(tmp_path / "moving.nii.gz", smooth_image(shape), affine)
    moving, stored_affine = load_nifti(moving_path)  # the affine as stored (float32 in the header)
    ddf = smooth_ddf(shape, amplitude=2.0, seed=ndim + len(geometry))

    moving_tensor = torch.from_numpy(moving.astype(np.float64))[None, None]
    ours = warp_image(moving_tensor, torch.from_numpy(ddf)[None])[0, 0].numpy()

    field_path = write_itk_displacement_field(tmp_path / f"field{suffix}", ddf, stored_affine)
    moving_itk = itk.imread(str(moving_path), itk.F)
    assert moving_itk.GetImageDimension() == ndim
    resampled = itk.resample_image_filter(
        moving_itk,
        transform=itk_transform_from_file(field_path),
        interpolator=itk.LinearInterpolateImageFunction.New(moving_itk),
        use_reference_image=True,
        reference_image=moving_itk,
        default_pixel_value=-1000.0,
    )
    theirs = itk.array_from_image(resampled).transpose()  # ITK's numpy order is reversed

    mapped = identity_grid(shape, dtype=torch.float64).numpy() + ddf
    inside = np.all([(mapped[c] >= 1) & (mapped[c] <= shape[c] - 2) for c in range(ndim)], axis=0)
    assert inside.mean() > 0.25
    np.testing.assert_allclose(theirs[inside], ours[inside], rtol=0, atol=1e-4 * np.abs(ours).max())


@pytest.mark.parametrize("suffix", [".h5", ".tfm", ".nii", ".nii.gz"])
@pytest.mark.parametrize("geometry", ["3d", "2d_inplane"])
def test_write_read_round_trip(tmp_path, geometry, suffix):
    shape, affine = GEOMETRIES[geometry]
    if len(shape) == 2:  # a 2-D file holds the in-plane geometry only: identity z axis
        in_plane = np.eye(4)
        in_plane[:2, :2] = rotation(2, 0.4)[:2, :2] @ np.diag([1.25, -0.8])
        in_plane[:2, 3] = [-7.0, 15.0]
        affine = in_plane
    ddf = smooth_ddf(shape, amplitude=3.0, seed=3)
    path = write_itk_displacement_field(tmp_path / f"sub/field{suffix}", torch.from_numpy(ddf), affine)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    read_ddf, read_affine = read_itk_displacement_field(path)
    assert read_ddf.shape == ddf.shape
    # NIfTI stores the field and its geometry as float32; HDF5 and text transforms as float64
    tol = 1e-6 if suffix.startswith(".nii") else 1e-12
    np.testing.assert_allclose(read_ddf, ddf, rtol=0, atol=tol * 10 * np.abs(ddf).max())
    np.testing.assert_allclose(read_affine, affine, rtol=0, atol=tol * 10 * np.abs(affine).max())


def test_oblique_2d_round_trip_keeps_ddf_and_itk_geometry(tmp_path):
    shape, affine = GEOMETRIES["2d_oblique"]
    ddf = smooth_ddf(shape, amplitude=2.0, seed=4)
    read_ddf, read_affine = read_itk_displacement_field(write_itk_displacement_field(tmp_path / "f.h5", ddf, affine))
    np.testing.assert_allclose(read_ddf, ddf, atol=1e-10)
    itk_affine = ras_affine_from_itk_geometry(*itk_geometry_from_ras_affine(affine, 2))
    np.testing.assert_allclose(read_affine, itk_affine, atol=1e-12)
    # the in-plane 2x2 block of the affine is *not* what ITK uses for an oblique slice
    assert not np.allclose(read_affine[:2, :2], affine[:2, :2], atol=1e-3)


@pytest.mark.parametrize("seed", range(4))
def test_itk_geometry_matches_itk_reading_2d_nifti(tmp_path, seed):
    rng = np.random.default_rng(seed)
    rot = rotation(0, rng.uniform(-0.6, 0.6)) @ rotation(1, rng.uniform(-0.6, 0.6)) @ rotation(2, rng.uniform(-3, 3))
    if seed % 2:
        rot = rot @ np.diag([1.0, -1.0, -1.0])
    affine = make_affine(rot, rng.uniform(0.5, 2.0, 3), rng.uniform(-50, 50, 3))
    path = save_nifti(tmp_path / "slice.nii.gz", np.zeros((6, 5), np.float32), affine)
    image = itk.imread(str(path))
    origin, spacing, direction = itk_geometry_from_ras_affine(load_nifti(path)[1], 2)
    np.testing.assert_allclose(np.asarray(image.GetOrigin()), origin, atol=1e-4)
    np.testing.assert_allclose(np.asarray(image.GetSpacing()), spacing, rtol=1e-6)
    np.testing.assert_allclose(itk.array_from_matrix(image.GetDirection()), direction, atol=1e-6)


def test_itk_geometry_3d_matches_itk_reading(tmp_path):
    shape, affine = GEOMETRIES["3d"]
    path = save_nifti(tmp_path / "vol.nii.gz", np.zeros(shape, np.float32), affine)
    image = itk.imread(str(path))
    origin, spacing, direction = itk_geometry_from_ras_affine(affine, 3)
    np.testing.assert_allclose(np.asarray(image.GetOrigin()), origin, atol=1e-4)
    np.testing.assert_allclose(np.asarray(image.GetSpacing()), spacing, rtol=1e-6)
    np.testing.assert_allclose(itk.array_from_matrix(image.GetDirection()), direction, atol=1e-6)


def test_nifti_field_is_ants_style_vector_image(tmp_path):
    import nibabel as nib

    shape, affine = GEOMETRIES["3d"]
    path = write_itk_displacement_field(tmp_path / "warp.nii.gz", smooth_ddf(shape, 1.0, 5), affine)
    header = nib.load(path).header
    assert header.get_intent()[0] == "vector"
    assert tuple(header.get_data_shape()) == shape + (1, 3)
    np.testing.assert_allclose(nib.load(path).affine, affine, atol=1e-5)


def test_existing_file_survives_failed_write(tmp_path):
    shape, affine = GEOMETRIES["2d_inplane"]
    path = write_itk_displacement_field(tmp_path / "f.h5", smooth_ddf(shape, 1.0, 6), affine)
    before = path.read_bytes()
    bad = smooth_ddf(shape, 1.0, 7)
    bad[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_itk_displacement_field(path, bad, affine)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["f.h5"]


@pytest.mark.parametrize(
    "name, ddf, affine, message",
    [
        ("f.h5", np.zeros((1, 2, 5, 5)), np.eye(4), "ndim"),
        ("f.h5", np.zeros((3, 5, 5)), np.eye(4), "ndim"),
        ("f.h5", np.zeros((2, 5, 5), np.int32), np.eye(4), "floating"),
        ("f.h5", np.zeros((2, 5, 5)), np.eye(5), "4x4"),
        ("f.mat", np.zeros((2, 5, 5)), np.eye(4), "extension"),
        ("f.h5", np.zeros((2, 5, 5)), np.diag([0.0, 1.0, 1.0, 1.0]), "singular"),
        # a sagittal slice stored as 2-D has no ITK 2-D geometry
        ("f.h5", np.zeros((2, 5, 5)), np.eye(4)[[2, 0, 1, 3]], "2-D image plane"),
    ],
)
def test_bad_input_raises(tmp_path, name, ddf, affine, message):
    with pytest.raises(ValueError, match=message):
        write_itk_displacement_field(tmp_path / name, ddf, affine)
    assert list(tmp_path.iterdir()) == []


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        read_itk_displacement_field(tmp_path / "missing.h5")
    scalar = save_nifti(tmp_path / "scalar.nii.gz", np.zeros((4, 5, 6), np.float32), np.eye(4))
    with pytest.raises(ValueError, match="not a displacement field"):
        read_itk_displacement_field(scalar)
    affine_transform = itk.AffineTransform[itk.D, 3].New()
    itk.transformwrite([affine_transform], str(tmp_path / "affine.h5"))
    with pytest.raises(ValueError, match="DisplacementFieldTransform"):
        read_itk_displacement_field(tmp_path / "affine.h5")
    (tmp_path / "garbage.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="garbage.h5"):
        read_itk_displacement_field(tmp_path / "garbage.h5")


def test_oblique_plane_detection():
    assert is_oblique_plane(GEOMETRIES["2d_oblique"][1])
    assert not is_oblique_plane(GEOMETRIES["2d_inplane"][1])
    assert not is_oblique_plane(np.diag([1.5, 1.5, 8.0, 1.0]))
