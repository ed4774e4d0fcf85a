"""The LUMIR / Learn2Reg leaderboard scores on fields whose scores are known by hand or by an
independent implementation of the published definitions."""

from __future__ import annotations

import numpy as np
import pytest

from monai_ext.metrics.leaderboard import (
    case_aggregates,
    keypoint_tre,
    landmark_map_tre,
    leaderboard_dice,
    leaderboard_hd95,
    leaderboard_sdlogj,
    warp_label_nearest,
)

SHAPE = (16, 14, 12)


def _cube(lo, hi, value=1):
    label = np.zeros(SHAPE, dtype=np.int16)
    label[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = value
    return label


def _translation(shift):
    return np.broadcast_to(np.asarray(shift, dtype=np.float64)[:, None, None, None], (3, *SHAPE)).copy()


def test_nearest_warp_rounds_half_a_voxel_up_and_reads_zero_outside():
    moving = np.arange(np.prod(SHAPE)).reshape(SHAPE)
    warped = warp_label_nearest(moving, _translation([0.5, 0, 0]))
    np.testing.assert_array_equal(warped[:-1], moving[1:])  # x + 0.5 -> x + 1
    np.testing.assert_array_equal(warped[-1], 0)  # outside the moving grid
    np.testing.assert_array_equal(
        warp_label_nearest(moving, _translation([-2.0, 1.0, 0])), np.pad(moving, ((2, 0), (0, 1), (0, 0)))[:-2, 1:]
    )


def test_dice_of_an_integer_translation_and_the_missing_label_rule():
    fixed = _cube((4, 4, 4), (10, 10, 10)) + _cube((12, 1, 1), (14, 3, 3), value=3)
    moving = _cube((6, 4, 4), (12, 10, 10)) + _cube((0, 0, 0), (2, 2, 2), value=2)
    identity = warp_label_nearest(moving, np.zeros((3, *SHAPE)))
    aligned = warp_label_nearest(moving, _translation([2.0, 0, 0]))
    # label 1: 6x6x6 cubes overlapping on 4 of 6 slices; label 2 not in fixed, label 3 not in moving: NaN
    dice = leaderboard_dice(fixed, moving, identity, [0, 1, 2, 3])
    assert dice[1] == pytest.approx(2 * 4 / 12)
    assert np.isnan(dice[2]) and np.isnan(dice[3])
    background = (fixed == 0) & (identity == 0)
    assert dice[0] == pytest.approx(2 * background.sum() / ((fixed == 0).sum() + (identity == 0).sum()))
    assert leaderboard_dice(fixed, moving, aligned, [1])[0] == pytest.approx(1.0)


def test_hd95_in_voxels_with_nan_and_inf_rules():
    fixed = _cube((4, 4, 4), (10, 10, 10))
    moving = _cube((6, 4, 4), (12, 10, 10)) + _cube((0, 0, 0), (2, 2, 2), value=2)
    assert leaderboard_hd95(fixed, moving, warp_label_nearest(moving, _translation([2.0, 0, 0])), [1])[0] == 0.0
    hd95 = leaderboard_hd95(fixed, moving, moving, [1, 2])
    # surfaces 2 voxels apart along one axis: the 95th percentile lies in (0, 2], and scales with the spacing
    assert 0 < hd95[0] <= 2.0 and np.isnan(hd95[1])
    assert leaderboard_hd95(fixed, moving, moving, [1], spacing=2.0)[0] == pytest.approx(2 * hd95[0])
    lost = np.zeros_like(moving)  # the warp lost the label
    assert leaderboard_hd95(fixed, moving, lost, [1])[0] == np.inf


def _reference_sdlogj(disp, mask=None):
    """The published definition with numpy.gradient (one-sided at the borders, which the crop removes)."""
    jac = np.stack([np.stack(np.gradient(disp[c]), 0) for c in range(3)], 0) + np.eye(3)[:, :, None, None, None]
    det = np.linalg.det(np.moveaxis(jac, (0, 1), (-2, -1)))[2:-2, 2:-2, 2:-2]
    values = np.log(np.clip(det + 3, 1e-9, 1e9))
    return values[mask[2:-2, 2:-2, 2:-2] > 0].std() if mask is not None else values.std()


def test_sdlogj_of_identity_translation_and_a_folding_field():
    assert leaderboard_sdlogj(np.zeros((3, *SHAPE))) == 0.0
    assert leaderboard_sdlogj(_translation([1.5, -2, 0.25])) == pytest.approx(0.0, abs=1e-12)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")).astype(np.float64)
    folding = 3.0 * np.sin(grid / 2.0)[[1, 2, 0]] + 1.5 * np.cos(grid / 3.0)
    mask = (grid[0] > 5).astype(np.uint8)
    expected = _reference_sdlogj(folding)
    assert expected > 0.1  # the field folds: det + 3 is clipped somewhere
    assert leaderboard_sdlogj(folding) == pytest.approx(expected, abs=1e-10)
    assert leaderboard_sdlogj(folding, mask) == pytest.approx(_reference_sdlogj(folding, mask), abs=1e-10)


def test_landmark_map_tre_of_an_integer_translation():
    fixed = np.zeros(SHAPE, dtype=np.int16)
    fixed[3, 3, 3], fixed[8, 9, 5] = 1, 2
    moving = np.zeros_like(fixed)
    moving[5, 2, 3], moving[10, 8, 5] = 1, 2  # both landmarks displaced by (2, -1, 0)
    assert landmark_map_tre(warp_label_nearest(moving, np.zeros((3, *SHAPE))), fixed) == pytest.approx(np.sqrt(5))
    assert landmark_map_tre(warp_label_nearest(moving, _translation([2.0, -1.0, 0])), fixed) == pytest.approx(0.0)
    assert np.isnan(landmark_map_tre(np.zeros_like(fixed), fixed))


def test_keypoint_tre_samples_the_field_with_splines_and_scales_by_the_moving_spacing():
    points = np.array([[6.0, 6.0, 5.0], [8.5, 7.25, 6.0]])
    moving_points = points + np.array([1.0, 0.0, 2.0])
    tre = keypoint_tre(points, moving_points, _translation([1.0, 0.0, 0.0]), (1.0, 1.0, 2.5))
    np.testing.assert_allclose(tre, [5.0, 5.0], atol=1e-4)  # residual (0, 0, 2) voxels x 2.5 mm


def test_case_aggregates_are_the_evaluators():
    assert case_aggregates([1.0, 2.0, 3.0, 4.0]) == {"mean": 2.5, "std": pytest.approx(np.std([1, 2, 3, 4])), "30": 1.9}
