"""Tests of RandPairFlipAffined (GradICON A.2 augmentation) and resample_normalized_affine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ext.spatial import resample_normalized_affine
from monai_ext.transforms import RandPairFlipAffined

SHAPES = {2: (6, 9), 3: (5, 7, 8)}


def _pair(ndim: int, seed: int = 0, same_image: bool = False) -> dict:
    g = torch.Generator().manual_seed(seed)
    shape = SHAPES[ndim]
    affine = torch.diag(torch.tensor([1.5, 2.0, 2.5, 1.0], dtype=torch.float64))
    fixed = torch.rand(1, *shape, generator=g)
    moving = fixed.clone() if same_image else torch.rand(1, *shape, generator=g)
    labels = torch.tensor([0, 3, 17])
    return {
        "fixed_image": MetaTensor(fixed, affine=affine, meta={"filename_or_obj": "f.nii.gz"}),
        "moving_image": MetaTensor(moving, affine=affine, meta={"filename_or_obj": "m.nii.gz"}),
        "fixed_label": MetaTensor(labels[torch.randint(0, 3, (1, *shape), generator=g)].to(torch.uint8), affine=affine),
        "moving_label": MetaTensor(
            labels[torch.randint(0, 3, (1, *shape), generator=g)].to(torch.uint8), affine=affine
        ),
    }


def _expected_draws(seed: int, ndim: int, gamma: float, prob: float = 1.0):
    """The documented draw order: rand() < prob, rand(d) < 0.5 -> flip, standard_normal((d, d+1)) per image."""
    rng = np.random.RandomState(seed)
    if not rng.rand() < prob:
        return None, None
    flips = np.where(rng.rand(ndim) < 0.5, -1.0, 1.0)
    base = np.concatenate([np.diag(flips), np.zeros((ndim, 1))], axis=1)
    return flips, [base + gamma * rng.standard_normal((ndim, ndim + 1)) for _ in range(2)]


def _seed_with_flips(flips: list[float]) -> int:
    """A seed whose documented draws give exactly these flips."""
    for seed in range(1000):
        drawn, _ = _expected_draws(seed, len(flips), 0.0)
        if np.array_equal(drawn, flips):
            return seed
    raise AssertionError("no seed found")


@pytest.mark.parametrize("ndim", [2, 3])
def test_no_flip_no_gamma_is_exact_identity(ndim):
    pair = _pair(ndim)
    out = RandPairFlipAffined(gamma=0.0, flip=False).set_random_state(0)(pair)
    for key, value in pair.items():
        assert torch.equal(out[key].as_tensor(), value.as_tensor()) and out[key].dtype == value.dtype
        assert isinstance(out[key], MetaTensor)
        assert torch.equal(out[key].affine, value.affine)
    assert out["fixed_image"].meta["filename_or_obj"] == "f.nii.gz"


@pytest.mark.parametrize("ndim, axis", [(2, 0), (2, 1), (3, 0), (3, 1), (3, 2)])
def test_forced_flip_equals_torch_flip_for_both_images(ndim, axis):
    target = [1.0] * ndim
    target[axis] = -1.0
    seed = _seed_with_flips(target)
    pair = _pair(ndim)
    transform = RandPairFlipAffined(gamma=0.0).set_random_state(seed)
    out = transform(pair)
    np.testing.assert_array_equal(transform.flips, target)
    for key, value in pair.items():  # images and labels, fixed and moving: the same flip
        assert torch.equal(out[key].as_tensor(), torch.flip(value.as_tensor(), dims=[axis + 1]))
        assert torch.equal(out[key].affine, value.affine)  # the geometry is kept, only the content moves
    # the interpolating path agrees with the flip as gamma -> 0
    near = RandPairFlipAffined(gamma=1e-9).set_random_state(seed)(pair)
    for key in ("fixed_image", "moving_image"):
        torch.testing.assert_close(near[key].as_tensor(), out[key].as_tensor(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("ndim", [2, 3])
def test_shared_flips_independent_matrices(ndim):
    seed, gamma = 11, 0.05
    pair = _pair(ndim, same_image=True)
    transform = RandPairFlipAffined(gamma=gamma).set_random_state(seed)
    out = transform(pair)
    flips, (fixed_matrix, moving_matrix) = _expected_draws(seed, ndim, gamma)
    np.testing.assert_array_equal(transform.flips, flips)
    np.testing.assert_allclose(transform.matrices["fixed_image"], fixed_matrix)
    np.testing.assert_allclose(transform.matrices["moving_image"], moving_matrix)
    # same flips on the diagonal's signs, different perturbations
    assert np.array_equal(np.sign(np.diag(fixed_matrix[:, :ndim])), np.sign(np.diag(moving_matrix[:, :ndim])))
    assert not np.allclose(fixed_matrix, moving_matrix)
    for image_key, label_key, matrix in (
        ("fixed_image", "fixed_label", fixed_matrix),
        ("moving_image", "moving_label", moving_matrix),
    ):
        expected = resample_normalized_affine(pair[image_key].as_tensor(), matrix, mode="bilinear")
        torch.testing.assert_close(out[image_key].as_tensor(), expected)
        expected = resample_normalized_affine(pair[label_key].as_tensor(), matrix, mode="nearest")
        assert torch.equal(out[label_key].as_tensor(), expected)  # a label shares its image's matrix
    # identical inputs, different outputs: the perturbations are drawn per image
    assert not torch.allclose(out["fixed_image"], out["moving_image"])


@pytest.mark.parametrize("ndim", [2, 3])
def test_labels_keep_their_values_and_dtype(ndim):
    pair = _pair(ndim)
    out = RandPairFlipAffined(gamma=0.2).set_random_state(3)(pair)
    for key in ("fixed_label", "moving_label"):
        assert out[key].dtype == torch.uint8
        assert set(torch.unique(out[key]).tolist()) <= {0, 3, 17}
        assert not torch.equal(out[key], pair[key])


def test_reproducible_and_prob_zero():
    pair = _pair(3)
    a = RandPairFlipAffined().set_random_state(5)(pair)
    b = RandPairFlipAffined().set_random_state(5)(pair)
    c = RandPairFlipAffined().set_random_state(6)(pair)
    for key in pair:
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["fixed_image"], c["fixed_image"])
    out = RandPairFlipAffined(prob=0.0).set_random_state(5)(pair)
    for key in pair:
        assert out[key] is pair[key]


def test_missing_keys():
    pair = {k: v for k, v in _pair(2).items() if k.endswith("image")}
    out = RandPairFlipAffined().set_random_state(0)(pair)
    assert set(out) == {"fixed_image", "moving_image"}
    with pytest.raises(KeyError):
        RandPairFlipAffined(allow_missing_keys=False)(pair)
    # a bundle without labels: label_keys=[] ignores the default pair couples
    out = RandPairFlipAffined(label_keys=[]).set_random_state(0)(_pair(2))
    assert torch.equal(out["fixed_label"], _pair(2)["fixed_label"])


@pytest.mark.parametrize("ndim", [2, 3])
def test_resample_translation_moves_by_whole_voxels(ndim):
    image = torch.rand(2, *SHAPES[ndim], generator=torch.Generator().manual_seed(0))
    for axis in range(ndim):
        n = SHAPES[ndim][axis]
        matrix = np.concatenate([np.eye(ndim), np.zeros((ndim, 1))], axis=1)
        matrix[axis, ndim] = 2 * 2 / (n - 1)  # +2 voxels in normalised units: out[i] = image[i + 2]
        expected = torch.zeros_like(image)
        src = [slice(None)] * (ndim + 1)
        dst = [slice(None)] * (ndim + 1)
        src[axis + 1], dst[axis + 1] = slice(2, None), slice(0, n - 2)
        expected[tuple(dst)] = image[tuple(src)]  # zeros padding beyond the border
        torch.testing.assert_close(resample_normalized_affine(image, matrix), expected, atol=1e-5, rtol=0)
        labels = (image * 5).long()
        assert torch.equal(resample_normalized_affine(labels, matrix, mode="nearest"), (expected * 5).long())


@pytest.mark.parametrize("ndim, axis, other", [(2, 0, 1), (2, 1, 0), (3, 0, 2), (3, 2, 1), (3, 1, 0)])
def test_resample_rows_and_columns_follow_array_axes(ndim, axis, other):
    # ramp image = voxel index along `axis`; row `axis` of M = 0.5 e_axis + 0.25 e_other + 0.1:
    # out(x) = ramp at y = 0.5 x_axis + 0.25 x_other + 0.1 (normalised), i.e. index (y + 1) / 2 * (N - 1)
    shape = SHAPES[ndim]
    coords = torch.meshgrid(*[torch.linspace(-1, 1, n, dtype=torch.float64) for n in shape], indexing="ij")
    n = shape[axis]
    ramp = ((coords[axis] + 1) / 2 * (n - 1))[None]
    matrix = np.concatenate([np.eye(ndim), np.zeros((ndim, 1))], axis=1)
    matrix[axis, axis], matrix[axis, other], matrix[axis, ndim] = 0.5, 0.25, 0.1
    y = 0.5 * coords[axis] + 0.25 * coords[other] + 0.1  # stays inside [-1, 1]
    torch.testing.assert_close(resample_normalized_affine(ramp, matrix), ((y + 1) / 2 * (n - 1))[None])


def test_output_dtypes_and_bad_input():
    with pytest.raises(ValueError, match="no image in pair"):
        RandPairFlipAffined(label_keys=("fixed_label", "fixed_mask"))
    with pytest.raises(ValueError, match="not in image_keys"):
        RandPairFlipAffined(image_keys=("fixed_image",))
    with pytest.raises(ValueError, match="gamma"):
        RandPairFlipAffined(gamma=-0.1)
    pair = _pair(2)
    pair["moving_image"] = torch.rand(1, 4, 4, 4)
    with pytest.raises(ValueError, match="same 2 or 3 spatial dims"):
        RandPairFlipAffined()(pair)
    # integer images come back float32 when interpolated, keep their dtype when picked (nearest)
    counts = torch.arange(12, dtype=torch.int16).reshape(1, 3, 4)
    for matrix in (np.eye(2, 3), np.eye(2, 3) * 0.5):
        assert resample_normalized_affine(counts, matrix).dtype == torch.float32
        assert resample_normalized_affine(counts, matrix, mode="nearest").dtype == torch.int16
    with pytest.raises(ValueError, match="matrix"):
        resample_normalized_affine(torch.rand(1, 4, 4), np.eye(3))
    with pytest.raises(ValueError, match="mode"):
        resample_normalized_affine(torch.rand(1, 4, 4), np.eye(2, 3), mode="bicubic")
