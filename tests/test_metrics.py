"""Tests of monai_ext.metrics against hand-computed values, invariants and reference implementations."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.metrics import DiceMetric, MSEMetric, compute_hausdorff_distance

from monai_ext.metrics import (
    dice_per_label,
    hd95_per_label,
    jacobian_determinant,
    mean_squared_error,
    negative_jacobian_fraction,
    non_diffeomorphic_volume,
    simplex_jacobian_determinants,
    std_log_jacobian,
)

SHAPES = {2: (6, 7), 3: (4, 5, 6)}


def affine_ddf(matrix: np.ndarray, spatial: tuple[int, ...]) -> torch.Tensor:
    """u(x) = (A - I) x on the voxel grid, shape (1, ndim, *spatial), float64."""
    ndim = len(spatial)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in spatial], indexing="ij"))  # (ndim, *spatial)
    u = np.einsum("ij,j...->i...", matrix - np.eye(ndim), grid)
    return torch.from_numpy(u)[None]


def axis0_ddf(phi0: list[float], other: tuple[int, ...]) -> torch.Tensor:
    """Field moving only along axis 0: phi_0(x) = phi0[x_0], other components identity."""
    phi0 = torch.tensor(phi0, dtype=torch.float64)
    spatial = (len(phi0), *other)
    u = torch.zeros(1, len(spatial), *spatial, dtype=torch.float64)
    u[0, 0] = (phi0 - torch.arange(len(phi0))).reshape(-1, *([1] * len(other)))
    return u


# ----------------------------------------------------------------------------- Jacobian determinant


@pytest.mark.parametrize("ndim", [2, 3])
def test_identity_jacobian(ndim):
    ddf = torch.zeros(2, ndim, *SHAPES[ndim])
    det = jacobian_determinant(ddf)
    assert det.shape == (2, *SHAPES[ndim])
    torch.testing.assert_close(det, torch.ones_like(det))
    torch.testing.assert_close(negative_jacobian_fraction(ddf), torch.zeros(2))
    torch.testing.assert_close(std_log_jacobian(ddf), torch.zeros(2))
    torch.testing.assert_close(non_diffeomorphic_volume(ddf), torch.zeros(2))


@pytest.mark.parametrize(
    "matrix, expected",
    [
        ([[1.0, 0.7], [0.0, 1.0]], 1.0),  # shear u_0 = 0.7 x_1: off-diagonal only
        ([[1.0, 0.0], [-0.4, 1.0]], 1.0),  # shear u_1 = -0.4 x_0
        ([[1.5, 0.0], [0.0, 1.0]], 1.5),  # u_0 = 0.5 x_0
        ([[1.0, 0.0], [0.0, 0.25]], 0.25),  # u_1 = -0.75 x_1
        ([[1.2, 0.7], [0.3, 0.9]], 1.2 * 0.9 - 0.7 * 0.3),
        ([[math.cos(0.3), -math.sin(0.3)], [math.sin(0.3), math.cos(0.3)]], 1.0),  # rotation
        ([[-1.0, 0.0], [0.0, 1.0]], -1.0),  # reflection of axis 0
        ([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], 1.0),  # 3-D shear u_0 = 0.5 x_1
        ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.8, 0.0, 1.0]], 1.0),  # 3-D shear u_2 = 0.8 x_0
        ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.3]], 1.3),  # u_2 = 0.3 x_2
        ([[1.1, 0.2, -0.3], [0.4, 0.9, 0.1], [-0.2, 0.3, 1.2]], None),
    ],
)
def test_affine_field_has_constant_determinant(matrix, expected):
    matrix = np.asarray(matrix)
    ndim = matrix.shape[0]
    expected = np.linalg.det(matrix) if expected is None else expected
    det = jacobian_determinant(affine_ddf(matrix, SHAPES[ndim]))  # borders included: one-sided is exact
    torch.testing.assert_close(det, torch.full_like(det, expected))
    # every finite-difference simplex of an affine map scales by det(A) as well
    dets = simplex_jacobian_determinants(affine_ddf(matrix, SHAPES[ndim]))
    inner = dets[(0, slice(None)) + (slice(1, -1),) * ndim]
    ref = torch.tensor([1.0] * 2**ndim + ([2.0, 2.0] if ndim == 3 else []), dtype=torch.float64) * expected
    torch.testing.assert_close(inner, ref.reshape(-1, *([1] * ndim)).expand_as(inner))


@pytest.mark.parametrize("ndim", [2, 3])
def test_jacobian_matches_numpy_gradient(ndim):
    rng = np.random.default_rng(0)
    u = rng.normal(scale=0.8, size=(2, ndim, *SHAPES[ndim]))
    det = jacobian_determinant(torch.from_numpy(u)).numpy()
    for b in range(2):
        grads = [np.gradient(u[b, i], axis=tuple(range(ndim))) for i in range(ndim)]  # grads[i][j] = du_i/dx_j
        jac = np.stack([np.stack(g, -1) for g in grads], -2) + np.eye(ndim)  # (*spatial, i, j)
        np.testing.assert_allclose(det[b], np.linalg.det(jac), rtol=1e-10, atol=1e-10)


def test_jacobian_is_differentiable():
    ddf = (0.1 * torch.randn(1, 2, 5, 5, generator=torch.Generator().manual_seed(0))).requires_grad_()
    jacobian_determinant(ddf).sum().backward()
    assert ddf.grad is not None and torch.isfinite(ddf.grad).all()


def test_fold_counts_negative_voxels():
    # phi_0 along axis 0 = [0,1,2,3,2,1,2,3]; numpy.gradient: [1,1,1,0,-1,0,1,1]
    ddf = axis0_ddf([0, 1, 2, 3, 2, 1, 2, 3], (2,))
    det = jacobian_determinant(ddf)
    torch.testing.assert_close(det[0, :, 0], torch.tensor([1, 1, 1, 0, -1, 0, 1, 1], dtype=torch.float64))
    torch.testing.assert_close(negative_jacobian_fraction(ddf), torch.tensor([100 / 8], dtype=torch.float64))
    torch.testing.assert_close(
        negative_jacobian_fraction(ddf, nonpositive=True), torch.tensor([300 / 8], dtype=torch.float64)
    )
    # log|J|: five voxels log(1) = 0, three clipped to log(1e-9); population std = |log eps| sqrt(p (1 - p))
    p = 3 / 8
    expected = abs(math.log(1e-9)) * math.sqrt(p * (1 - p))
    torch.testing.assert_close(std_log_jacobian(ddf), torch.tensor([expected], dtype=torch.float64))


def test_reflection_is_all_negative():
    ddf = affine_ddf(np.diag([1.0, 1.0, -1.0]), SHAPES[3])
    torch.testing.assert_close(negative_jacobian_fraction(ddf), torch.tensor([100.0], dtype=torch.float64))


def test_masks_restrict_the_statistics():
    ddf = axis0_ddf([0, 1, 2, 3, 2, 1, 2, 3], (2,))
    rows = torch.zeros(8, 2)
    rows[3:6] = 1  # det 0, -1, 0
    for mask in (rows, rows[None], rows[None, None]):
        torch.testing.assert_close(
            negative_jacobian_fraction(ddf, mask=mask), torch.tensor([100 / 3], dtype=torch.float64)
        )
    torch.testing.assert_close(negative_jacobian_fraction(ddf, mask=torch.zeros(8, 2)).isnan(), torch.tensor([True]))
    with pytest.raises(ValueError, match="mask"):
        negative_jacobian_fraction(ddf, mask=torch.ones(8, 3))
    # det 2 on rows 0-2, 1.25 on row 3 (masked out), 0.5 on rows 4-6: std of (+-log 2) = log 2
    ddf = axis0_ddf([0, 2, 4, 6, 6.5, 7, 7.5], (3,))
    keep = torch.ones(7, 3)
    keep[3] = 0
    torch.testing.assert_close(std_log_jacobian(ddf, mask=keep), torch.tensor([math.log(2)], dtype=torch.float64))


def test_batch_items_are_independent():
    ddf = torch.cat([torch.zeros(1, 2, 8, 2, dtype=torch.float64), axis0_ddf([0, 1, 2, 3, 2, 1, 2, 3], (2,))])
    torch.testing.assert_close(negative_jacobian_fraction(ddf), torch.tensor([0.0, 12.5], dtype=torch.float64))
    torch.testing.assert_close(non_diffeomorphic_volume(ddf), torch.tensor([0.0, 25.0], dtype=torch.float64))


@pytest.mark.parametrize("shape", [(1, 3, 4, 4), (1, 2, 4, 4, 4), (1, 2, 1, 4), (2, 4)])
def test_bad_ddf_shape(shape):
    with pytest.raises(ValueError, match="ddf"):
        jacobian_determinant(torch.zeros(shape))


# ----------------------------------------------------------------------------- non-diffeomorphic volume


@pytest.mark.parametrize("other", [(3,), (2, 3)])
def test_ndv_of_swapped_rows_by_hand(other):
    # phi_0 = [0,1,3,2,4]: forward differences [1,2,-1,2,(1)], backward [(1),1,2,-1,2] (borders replicate u).
    # Row 2 flips its '+'-simplices along axis 0, row 3 its '-'-simplices: 2 of 4 triangles (2-D), or
    # 4 corner tetrahedra (volume 1/6 each) + one central tetrahedron (volume 2/6) in 3-D; halved because
    # each cell is tessellated twice, that is half a voxel on each row, one voxel per column in all.
    ddf = axis0_ddf([0, 1, 3, 2, 4], other)
    torch.testing.assert_close(non_diffeomorphic_volume(ddf), torch.tensor([100.0 / 5], dtype=torch.float64))
    # central differences miss this fold entirely: numpy.gradient gives [1, 1.5, 0.5, 0.5, 2]
    assert negative_jacobian_fraction(ddf, nonpositive=True).item() == 0.0
    # the mask selects rows: NDV is 0.5 voxel on rows 2 and 3, 0 elsewhere
    mask = torch.zeros(5, *other)
    mask[2] = 1
    torch.testing.assert_close(non_diffeomorphic_volume(ddf, mask=mask), torch.tensor([50.0], dtype=torch.float64))


def test_ndv_of_folded_region_by_hand():
    # phi_0 = [0,1,2,3,2,1,2,3]: forward [1,1,1,-1,-1,1,1,(1)], backward [(1),1,1,1,-1,-1,1,1];
    # negative triangles per pixel (rows 3, 4, 5): 2, 4, 2 -> NDV 0.5 + 1 + 0.5 = 2 per column of 8.
    ddf = axis0_ddf([0, 1, 2, 3, 2, 1, 2, 3], (2,))
    torch.testing.assert_close(non_diffeomorphic_volume(ddf), torch.tensor([25.0], dtype=torch.float64))


@pytest.mark.parametrize("ndim", [2, 3])
def test_ndv_of_reflection(ndim):
    # phi_0 = -x_0: every simplex is flipped except, on the first/last row, the ones reaching outside the
    # grid (replicated displacement there): NDV = 1 inside, 1/2 on the two border rows -> (H - 1) / H.
    spatial = SHAPES[ndim]
    ddf = affine_ddf(np.diag([-1.0] + [1.0] * (ndim - 1)), spatial)
    height = spatial[0]
    torch.testing.assert_close(
        non_diffeomorphic_volume(ddf), torch.tensor([100.0 * (height - 1) / height], dtype=torch.float64)
    )


def test_identity_simplex_determinants():
    dets = simplex_jacobian_determinants(torch.zeros(1, 3, 3, 4, 5))
    assert dets.shape == (1, 10, 3, 4, 5)
    expected = torch.tensor([1.0] * 8 + [2.0, 2.0]).reshape(1, 10, 1, 1, 1).expand_as(dets)
    torch.testing.assert_close(dets, expected)
    dets = simplex_jacobian_determinants(torch.zeros(1, 2, 3, 4))
    torch.testing.assert_close(dets, torch.ones(1, 4, 3, 4))


def test_ndv_catches_checkerboard_fold():
    # Liu et al., Fig. 1: moving the centre pixel far away leaves its central-difference |J| at 1.
    ddf = torch.zeros(1, 2, 5, 5, dtype=torch.float64)
    ddf[0, :, 2, 2] = torch.tensor([3.0, 3.0])
    assert jacobian_determinant(ddf)[0, 2, 2].item() == 1.0
    assert non_diffeomorphic_volume(ddf).item() > 0.0


def _ndv_by_vertex_loop(ddf: np.ndarray) -> float:
    """Independent loop: signed volumes of the deformed simplices from vertex coordinates (3-D)."""
    _, *spatial = ddf.shape
    phi = ddf + np.stack(np.meshgrid(*[np.arange(n) for n in spatial], indexing="ij"))
    padded_u = np.pad(ddf, ((0, 0), (1, 1), (1, 1), (1, 1)), mode="edge")

    def position(p):  # deformed position of grid point p (may lie one voxel outside the grid)
        return np.asarray(p, dtype=float) + padded_u[(slice(None), *[c + 1 for c in p])]

    simplices = []  # vertex offsets of the simplices owned by a voxel
    for s in itertools.product((1, -1), repeat=3):
        simplices.append([(0, 0, 0), (s[0], 0, 0), (0, s[1], 0), (0, 0, s[2])])
    simplices.append([(0, 0, 0), (1, 1, 0), (0, 1, 1), (1, 0, 1)])
    simplices.append([(0, 0, 0), (-1, -1, 0), (-1, 0, -1), (0, -1, -1)])
    total = 0.0
    for x in itertools.product(*[range(n) for n in spatial]):
        assert np.allclose(position(x), phi[(slice(None), *x)])
        for verts in simplices:
            ref = np.linalg.det(np.array([np.subtract(v, verts[0]) for v in verts[1:]], dtype=float)) / 6
            moved = [position(np.add(x, v)) for v in verts]
            vol = np.linalg.det(np.array([m - moved[0] for m in moved[1:]])) / 6
            total += 0.5 * max(-vol * np.sign(ref), 0.0)
    return 100.0 * total / np.prod(spatial)


def test_ndv_matches_vertex_loop_on_random_field():
    rng = np.random.default_rng(1)
    ddf = rng.normal(scale=0.7, size=(3, 4, 3, 5))
    value = non_diffeomorphic_volume(torch.from_numpy(ddf)[None]).item()
    assert value > 0.0
    assert value == pytest.approx(_ndv_by_vertex_loop(ddf), rel=1e-10)


def test_ndv_in_slabs_matches_vertex_loop(monkeypatch):
    # slabs of 2 rows of the first axis (the last one a single row): folds on slab boundaries count once
    import monai_ext.metrics.jacobian as jacobian

    monkeypatch.setattr(jacobian, "_SLAB_ELEMENTS", 2 * 3 * 5)
    rng = np.random.default_rng(2)
    ddf = rng.normal(scale=0.7, size=(3, 5, 3, 5))
    value = non_diffeomorphic_volume(torch.from_numpy(ddf)[None]).item()
    assert value > 0.0
    assert value == pytest.approx(_ndv_by_vertex_loop(ddf), rel=1e-10)


# ----------------------------------------------------------------------------- Dice and HD95


def test_dice_of_two_squares_by_hand():
    pred = torch.zeros(1, 1, 10, 10, dtype=torch.long)
    ref = torch.zeros_like(pred)
    pred[0, 0, 2:6, 2:6] = 1  # 16 pixels
    ref[0, 0, 3:7, 4:8] = 1  # 16 pixels, overlap rows 3-5 x cols 4-5 = 6
    dice = dice_per_label(pred, ref, [1])
    torch.testing.assert_close(dice, torch.tensor([[2 * 6 / 32]]))


def test_dice_3d_labels_in_given_order():
    pred = torch.zeros(2, 1, 4, 4, 4, dtype=torch.int16)
    ref = torch.zeros_like(pred)
    pred[0, 0, :2] = 3  # 32 voxels
    ref[0, 0, :1] = 3  # 16 voxels inside
    pred[0, 0, 3, 3, 3] = 7
    ref[0, 0, 3, 3, 3] = 7
    ref[1, 0, 0, 0, 0] = 3
    dice = dice_per_label(pred, ref, [7, 3, 5])
    expected = torch.tensor([[1.0, 2 * 16 / 48, float("nan")], [float("nan"), 0.0, float("nan")]])
    torch.testing.assert_close(dice, expected, equal_nan=True)


def test_dice_edge_cases_and_inputs():
    pred = torch.zeros(1, 1, 6, 6)
    ref = torch.zeros(1, 1, 6, 6)
    pred[0, 0, 1:3, 1:3] = 1  # label 1 only in pred
    ref[0, 0, 4:6, 4:6] = 2  # label 2 only in ref
    expected = torch.tensor([[0.0, 0.0, float("nan")]])
    torch.testing.assert_close(dice_per_label(pred, ref, (1, 2, 3)), expected, equal_nan=True)
    # float label maps (as from nearest-neighbour warping) and MetaTensors are accepted
    torch.testing.assert_close(dice_per_label(MetaTensor(pred), MetaTensor(ref), (1, 2, 3)), expected, equal_nan=True)
    with pytest.raises(ValueError, match="labels"):
        dice_per_label(pred, ref, [])
    with pytest.raises(ValueError, match="same shape"):
        dice_per_label(pred, ref[..., :5], [1])
    with pytest.raises(ValueError, match=r"\(B, 1, \*spatial\)"):
        dice_per_label(pred[0], ref[0], [1])


def _random_label_maps(ndim: int, values: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two batches of 3 random label maps; item 1 lacks 11 in pred, item 2 lacks 11 in both maps."""
    rng = np.random.default_rng(seed)
    shape = (3, 1, *SHAPES[ndim])
    pred = torch.from_numpy(rng.choice(values, size=shape))
    ref = torch.from_numpy(rng.choice(values, size=shape))
    pred[1][pred[1] == 11] = 0
    pred[2][pred[2] == 11] = 4
    ref[2][ref[2] == 11] = 207
    return pred, ref


@pytest.mark.parametrize("ndim", [2, 3])
def test_dice_matches_monai_dice_metric_on_one_hot(ndim):
    # non-contiguous values, one value in the maps (5) not scored, one scored value (99) in neither map
    pred, ref = _random_label_maps(ndim, [0, 4, 5, 11, 207], seed=ndim)
    labels = [207, 4, 99, 0, 11]
    dice = dice_per_label(pred, ref, labels)

    def one_hot(label_map):
        return torch.cat([(label_map == v).float() for v in labels], dim=1)

    reference = DiceMetric(include_background=True, reduction="none", ignore_empty=False)(one_hot(pred), one_hot(ref))
    absent = torch.stack([((pred == v) | (ref == v)).flatten(1).any(1) for v in labels], 1).logical_not()
    assert absent[:, 2].all() and absent[2, 4] and not absent[1, 4]  # 99 nowhere, 11 absent from item 2 only
    expected = torch.where(absent, torch.full_like(reference, float("nan")), reference)
    torch.testing.assert_close(dice, expected, equal_nan=True)
    assert dice[1, 4].item() == 0.0  # 11 only in ref


def test_dice_label_values_outside_the_map_dtype():
    pred = torch.zeros(1, 1, 3, 3, dtype=torch.uint8)
    pred[0, 0, 0] = 44  # 300 wraps to 44 in uint8: it must not be matched
    dice = dice_per_label(pred, pred.clone(), [300, 44, -1])
    torch.testing.assert_close(dice, torch.tensor([[float("nan"), 1.0, float("nan")]]), equal_nan=True)


@pytest.mark.parametrize("ndim", [2, 3])
def test_hd95_matches_monai_on_one_hot(ndim):
    pred, ref = _random_label_maps(ndim, [0, 4, 11, 207], seed=10 + ndim)
    labels = [4, 11, 207, 99]
    spacing = [(1.0, 2.0, 0.5)[:ndim], (0.7, 1.1, 1.3)[:ndim], (2.0, 1.0, 1.0)[:ndim]]
    hd = hd95_per_label(pred, ref, labels, spacing=spacing)

    def one_hot(label_map):
        return torch.cat([(label_map == v).float() for v in labels], dim=1)

    with warnings.catch_warnings():  # MONAI warns about the empty masks, scored separately below
        warnings.simplefilter("ignore")
        reference = compute_hausdorff_distance(
            one_hot(pred), one_hot(ref), include_background=True, percentile=95, spacing=spacing
        )
    both = torch.stack([(pred == v).flatten(1).any(1) & (ref == v).flatten(1).any(1) for v in labels], 1)
    assert both.sum() == 7  # 4 and 207 everywhere, 11 in item 0 only
    torch.testing.assert_close(hd[both], reference[both].float())
    assert hd[~both].isnan().all()


@pytest.mark.parametrize("spacing", [None, (1.0, 2.0, 0.5)])
def test_hd95_of_small_structures_at_the_grid_border_matches_monai(spacing):
    # structures much smaller than the grid, at a corner, along a face and inside, so that each
    # label's crop is a small box, clipped by the grid where the structure touches it
    rng = np.random.default_rng(3)
    pred = torch.zeros(1, 1, 40, 36, 30, dtype=torch.int64)
    ref = torch.zeros_like(pred)
    for label_map in (pred, ref):
        corner = rng.integers(0, 2, size=(5, 4, 6))
        label_map[0, 0, :5, :4, :6][corner > 0] = 3
        face = rng.integers(0, 2, size=(8, 7, 3))
        label_map[0, 0, 10:18, 20:27, -3:][face > 0] = 8
        inner = rng.integers(0, 2, size=(6, 6, 6))
        label_map[0, 0, 25:31, 5:11, 12:18][inner > 0] = 21
    labels = [21, 3, 8]
    hd = hd95_per_label(pred, ref, labels, spacing=spacing or 1.0)
    reference = compute_hausdorff_distance(
        torch.cat([(pred == v).float() for v in labels], 1),
        torch.cat([(ref == v).float() for v in labels], 1),
        include_background=True,
        percentile=95,
        spacing=spacing or 1.0,
    )
    assert torch.isfinite(hd).all() and (hd > 0).all()
    torch.testing.assert_close(hd, reference.float())


def test_hd95_of_offset_stripes_with_anisotropic_spacing():
    # two 1-voxel-thick stripes 3 rows apart: every surface voxel is 3 * spacing[0] mm from the other
    pred = torch.zeros(1, 1, 10, 12, dtype=torch.long)
    ref = torch.zeros_like(pred)
    pred[0, 0, 2, 1:11] = 1
    ref[0, 0, 5, 1:11] = 1
    hd = hd95_per_label(pred, ref, [1], spacing=(2.0, 0.5))
    torch.testing.assert_close(hd, torch.tensor([[6.0]]))
    hd = hd95_per_label(pred, ref, [1], spacing=1.5)
    torch.testing.assert_close(hd, torch.tensor([[4.5]]))


def test_hd95_of_points_per_item_spacing():
    # single voxels offset by (2, 3) voxels; spacing per batch item
    pred = torch.zeros(2, 1, 8, 8, dtype=torch.long)
    ref = torch.zeros_like(pred)
    pred[:, 0, 1, 1] = 2
    ref[:, 0, 3, 4] = 2
    spacing = [(1.0, 1.0), (2.0, 0.5)]
    expected = torch.tensor([[math.hypot(2, 3)], [math.hypot(4, 1.5)]])
    torch.testing.assert_close(hd95_per_label(pred, ref, [2], spacing=spacing), expected)
    torch.testing.assert_close(hd95_per_label(pred, ref, [2], spacing=torch.tensor(spacing)), expected)


def test_hd95_3d_points():
    pred = torch.zeros(1, 1, 6, 6, 6, dtype=torch.long)
    ref = torch.zeros_like(pred)
    pred[0, 0, 1, 1, 1] = 1
    ref[0, 0, 2, 3, 5] = 1
    hd = hd95_per_label(pred, ref, [1], spacing=(3.0, 1.0, 0.5))
    torch.testing.assert_close(hd, torch.tensor([[math.sqrt(3.0**2 + 2.0**2 + 2.0**2)]]))


def test_hd95_ignores_an_outlier_below_five_percent():
    # 40 shared stripe voxels plus one reference voxel 6 rows away: 1 of 41 distances is non-zero,
    # so the 95th percentile is 0 while the maximum (Hausdorff distance) is 6 * 2 mm.
    pred = torch.zeros(1, 1, 10, 45, dtype=torch.long)
    pred[0, 0, 2, 1:41] = 1
    ref = pred.clone()
    ref[0, 0, 8, 20] = 1
    torch.testing.assert_close(hd95_per_label(pred, ref, [1], spacing=(2.0, 1.0)), torch.tensor([[0.0]]))
    torch.testing.assert_close(
        hd95_per_label(pred, ref, [1], spacing=(2.0, 1.0), percentile=100), torch.tensor([[12.0]])
    )


def test_hd95_edge_cases():
    pred = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    ref = torch.zeros_like(pred)
    pred[0, 0, 1:3, 1:3] = 1  # only in pred
    ref[0, 0, 5:7, 5:7] = 2  # only in ref
    pred[0, 0, 4, 1] = 3
    ref[0, 0, 4, 1] = 3  # identical: 0 mm
    hd = hd95_per_label(pred, ref, [1, 2, 3, 4], spacing=(1.0, 1.0))
    torch.testing.assert_close(hd, torch.tensor([[float("nan"), float("nan"), 0.0, float("nan")]]), equal_nan=True)
    with pytest.raises(ValueError, match="spacing"):
        hd95_per_label(pred, ref, [1], spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        hd95_per_label(pred, ref, [1], spacing=[(1.0, 1.0), (1.0, 1.0)])  # batch of 1
    with pytest.raises(ValueError, match="spacing"):
        hd95_per_label(pred, ref, [1], spacing=(0.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        hd95_per_label(pred, ref, [1], spacing=None)


# ----------------------------------------------------------------------------- MSE


def test_mean_squared_error_by_hand_and_against_monai():
    a = torch.zeros(2, 1, 4, 4)
    b = torch.zeros(2, 1, 4, 4)
    b[0] = 2.0  # MSE 4
    b[1, 0, 0, :] = 1.0  # 4 of 16 voxels differ by 1: 0.25
    torch.testing.assert_close(mean_squared_error(a, b), torch.tensor([4.0, 0.25]))
    rng = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 2, 5, 6, 7, generator=rng), torch.rand(3, 2, 5, 6, 7, generator=rng)
    torch.testing.assert_close(mean_squared_error(x, y), MSEMetric(reduction="none")(x, y).reshape(-1))


def test_mean_squared_error_masked():
    a = torch.zeros(1, 2, 4, 4)
    b = torch.zeros(1, 2, 4, 4)
    b[0, 0, 0, 0] = 3.0
    b[0, 1, 3, 3] = 5.0  # outside the mask
    mask = torch.zeros(1, 1, 4, 4)
    mask[0, 0, :2, :2] = 1  # 4 voxels x 2 channels
    torch.testing.assert_close(mean_squared_error(a, b, mask=mask), torch.tensor([9.0 / 8]))
    assert mean_squared_error(a, b, mask=torch.zeros(1, 1, 4, 4)).isnan().all()
    with pytest.raises(ValueError, match="same shape"):
        mean_squared_error(a, b[:, :1])
    with pytest.raises(ValueError, match="mask"):
        mean_squared_error(a, b, mask=torch.ones(1, 1, 3, 3))


def test_labels_missing_from_the_reference_or_the_original_moving_map_are_not_scored():
    ref = torch.zeros(2, 1, 6, 6)
    ref[:, 0, 1:4, 1:4] = 1
    ref[:, 0, 4:6, 4:6] = 2
    pred = ref.clone()
    pred[1, 0, 1:4, 1] = 0  # item 1: label 1 lost a column, Dice 2 * 6 / (9 + 6)
    moving = torch.zeros(2, 1, 8, 5)  # the moving map before warping, on its own grid
    moving[0, 0, 0, 0], moving[0, 0, 1, 1], moving[1, 0, 0, 0] = 1, 2, 1  # item 1 has no label 2
    dice = dice_per_label(pred, ref, (1, 2, 3), moving_label=moving)
    expected = torch.tensor([[1.0, 1.0, float("nan")], [12 / 15, float("nan"), float("nan")]])
    torch.testing.assert_close(dice, expected, equal_nan=True)
    hd95 = hd95_per_label(pred, ref, (1, 2), spacing=1.0, moving_label=moving)
    assert hd95[0, 0] == 0 and hd95[0, 1] == 0 and hd95[1, 0] > 0 and torch.isnan(hd95[1, 1])
    # without it, label 2 of item 1 is scored as before
    assert dice_per_label(pred, ref, (2,))[1, 0] == 1.0
