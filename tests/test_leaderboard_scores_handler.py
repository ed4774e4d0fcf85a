"""The leaderboard handler scores an evaluator's pairs as the challenges' evaluators do."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from monai_ext.handlers import LeaderboardScoresHandler
from monai_ext.metrics.leaderboard import leaderboard_dice, leaderboard_sdlogj, warp_label_nearest

SHAPE = (12, 12, 10)


def _pair():
    fixed = torch.zeros(1, 1, *SHAPE)
    fixed[0, 0, 3:8, 3:8, 3:7] = 1
    fixed[0, 0, 8:10, 3:8, 3:7] = 2
    moving = torch.roll(fixed, 1, dims=2)
    image = (moving > 0).float() + 0.5 * (torch.rand(1, 1, *SHAPE) > 0.5)
    landmarks_fixed, landmarks_moving = torch.zeros(1, 1, *SHAPE), torch.zeros(1, 1, *SHAPE)
    landmarks_fixed[0, 0, 4, 4, 4], landmarks_moving[0, 0, 5, 4, 4] = 1, 1
    ddf = torch.zeros(1, 3, *SHAPE)
    ddf[:, 0] = 0.5  # half a voxel: the evaluators' nearest warp rounds it up
    return {"pred": ddf, "fixed_label": fixed, "moving_label": moving, "moving_image": image,
            "fixed_landmarks": landmarks_fixed, "moving_landmarks": landmarks_moving, "subject": ["s1"]}  # fmt: skip


@pytest.mark.parametrize("challenge", ["lumir", "learn2reg"])
def test_scores_and_json_follow_the_challenge(challenge, tmp_path):
    output = _pair()
    handler = LeaderboardScoresHandler(tmp_path, challenge)
    engine = SimpleNamespace(state=SimpleNamespace(output=output, batch={}, metrics={}))
    handler(engine)
    handler._finalise(engine)
    scores = json.loads((tmp_path / f"leaderboard_{challenge}.json").read_text())["cases"]["s1"]
    fixed, moving = output["fixed_label"][0, 0].numpy(), output["moving_label"][0, 0].numpy()
    warped = warp_label_nearest(moving, output["pred"][0].numpy())
    labels = [0, 1, 2] if challenge == "lumir" else [1, 2]
    assert scores["Dice"] == pytest.approx(np.nanmean(leaderboard_dice(fixed, moving, warped, labels)))
    assert scores["Dice"] == pytest.approx(1.0)  # x + 0.5 rounds to x + 1: the one-voxel roll is undone
    assert scores["HD95"] == 0.0 and scores["SDlogJ"] == pytest.approx(leaderboard_sdlogj(output["pred"][0].numpy()))
    assert scores["TRE"] == pytest.approx(0.0)
    assert ("NDV" in scores) == (challenge == "lumir")
    assert engine.state.metrics[f"{challenge}/Dice"] == pytest.approx(1.0)


def _lumir_ndv(disp: np.ndarray, mask: np.ndarray) -> float:
    """LUMIR's NDV written here from its definition (Liu et al. 2024, as LUMIR's evaluation counts it):
    at every interior voxel, ten tetrahedra (eight one-sided difference triples and two diagonal
    ones), each adding -min(det, 0) / 12 voxel volumes; in % of the interior voxels of ``mask``."""
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in disp.shape[1:]], indexing="ij"))
    phi = disp + grid

    def at(offset):  # phi(p + offset) on the interior voxels p
        return phi[:, 1 + offset[0] : phi.shape[1] - 1 + offset[0], 1 + offset[1] : phi.shape[2] - 1 + offset[1],
                   1 + offset[2] : phi.shape[3] - 1 + offset[2]]  # fmt: skip

    centre = at((0, 0, 0))
    unit = np.eye(3, dtype=int)
    triples = []
    for signs in np.array(np.meshgrid([1, -1], [1, -1], [1, -1], indexing="ij")).reshape(3, -1).T:
        triples.append([signs[a] * (at(signs[a] * unit[a]) - centre) for a in range(3)])
    triples.append([at(o) - centre for o in ((-1, -1, 0), (-1, 0, -1), (0, -1, -1))])
    triples.append([at(o) - centre for o in ((1, 1, 0), (0, 1, 1), (1, 0, 1))])
    inner = mask[1:-1, 1:-1, 1:-1] > 0
    volume = 0.0
    for columns in triples:
        det = np.linalg.det(np.moveaxis(np.stack(columns, -1), 0, -2))  # rows: components, columns: edges
        volume += (-np.minimum(det, 0) / 12)[inner].sum()
    return 100 * volume / inner.sum()


def test_ndv_is_lumirs_definition_on_a_folding_field():
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")).astype(np.float64)
    disp = 2.5 * np.sin(grid[[1, 2, 0]] / 1.7) + rng.normal(scale=0.3, size=(3, *SHAPE))
    image = (rng.random((1, *SHAPE)) > 0.3).astype(np.float32)
    scores = LeaderboardScoresHandler(".", "lumir").score_pair(torch.as_tensor(disp), {"moving_image": image})
    expected = _lumir_ndv(disp, image[0])
    assert expected > 0.1  # the field folds
    assert scores["NDV"] == pytest.approx(expected, abs=1e-4)


def test_runs_into_one_output_dir_accumulate(tmp_path):
    for subject in ("s1", "s2", "s1"):
        output = {**_pair(), "subject": [subject]}
        handler = LeaderboardScoresHandler(tmp_path, "learn2reg")
        engine = SimpleNamespace(state=SimpleNamespace(output=output, batch={}, metrics={}))
        handler._earlier_cases(engine)
        handler(engine)
        handler._finalise(engine)
    assert sorted(json.loads((tmp_path / "leaderboard_learn2reg.json").read_text())["cases"]) == ["s1", "s2"]
