"""Thick-slice resampling of one image of a pair: shapes, affines, labels and randomness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ext.transforms import RandAnisotropicResampled


def _pair():
    affine = torch.diag(torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    image = torch.arange(12 * 9 * 6, dtype=torch.float32).reshape(1, 12, 9, 6)  # every size divisible by 3
    label = (image > 300).float()
    return {
        "fixed_image": MetaTensor(image.clone(), affine=affine),
        "fixed_label": MetaTensor(label.clone(), affine=affine),
        "moving_image": MetaTensor(image.clone(), affine=affine),
        "moving_label": MetaTensor(label.clone(), affine=affine),
    }


def test_one_image_gets_thick_slices_with_its_label_and_affine():
    transform = RandAnisotropicResampled(prob=1.0, factor_range=(3.0, 3.0))
    transform.set_random_state(seed=0)
    pair = _pair()
    out = transform(pair)
    changed = [role for role in ("fixed", "moving") if out[f"{role}_image"].shape != pair[f"{role}_image"].shape]
    assert len(changed) == 1
    role, kept = changed[0], {"fixed": "moving", "moving": "fixed"}[changed[0]]
    assert torch.equal(out[f"{kept}_image"], pair[f"{kept}_image"])
    image, label = out[f"{role}_image"], out[f"{role}_label"]
    original = pair[f"{role}_image"].shape
    (axis,) = [a for a in range(3) if image.shape[1 + a] != original[1 + a]]
    n = original[1 + axis]
    assert image.shape[1 + axis] == round(n / 3) and label.shape == image.shape
    # spacing 3 along the axis; the field of view edge to edge is kept
    spacing = float(image.affine[axis, axis])
    assert spacing == pytest.approx(n / round(n / 3))
    first_edge = float(image.affine[axis, 3]) - spacing / 2
    assert first_edge == pytest.approx(-0.5)
    # each thick slice is the mean of the three thin slices it covers
    thin = pair[f"{role}_image"].as_tensor().movedim(1 + axis, 1)
    expected = thin.reshape(1, n // 3, 3, *thin.shape[2:]).mean(2).movedim(1, 1 + axis)
    np.testing.assert_allclose(np.asarray(image.as_tensor()), np.asarray(expected), rtol=1e-5)
    assert set(torch.unique(label).tolist()) <= {0.0, 1.0}


def test_probability_zero_and_seeding():
    pair = _pair()
    out = RandAnisotropicResampled(prob=0.0)(pair)
    assert all(torch.equal(out[k], pair[k]) for k in pair)
    shapes = []
    for _ in range(2):
        transform = RandAnisotropicResampled(prob=1.0)
        transform.set_random_state(seed=5)
        shapes.append([tuple(transform(_pair())[k].shape) for k in ("fixed_image", "moving_image")])
    assert shapes[0] == shapes[1]


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="factor_range"):
        RandAnisotropicResampled(factor_range=(0.5, 2.0))
    with pytest.raises(TypeError, match="MetaTensors"):
        transform = RandAnisotropicResampled(prob=1.0)
        transform({k: v.as_tensor() for k, v in _pair().items()})


def test_restore_grid_keeps_the_shape_affine_and_label_and_blurs_along_one_axis():
    transform = RandAnisotropicResampled(prob=1.0, factor_range=(3.0, 3.0), restore_grid=True)
    transform.set_random_state(seed=0)
    pair = _pair()
    out = transform(pair)
    for key in pair:
        assert out[key].shape == pair[key].shape
        np.testing.assert_allclose(np.asarray(out[key].affine), np.asarray(pair[key].affine))
    changed = [k for k in ("fixed_image", "moving_image") if not torch.equal(out[k], pair[k])]
    assert len(changed) == 1
    role = changed[0].split("_")[0]
    assert torch.equal(out[f"{role}_label"], pair[f"{role}_label"])  # labels are not degraded
    # thick slices of 3 along one axis, then linear interpolation back: the mean of 3 slices of a
    # linear ramp (arange) is its middle slice, and linear interpolation between those is exact,
    # so the ramp comes back everywhere except within 1.5 voxels of the two edges along that axis
    image, original = out[changed[0]].as_tensor(), pair[changed[0]].as_tensor()
    edge_errors = [(image - original).abs().movedim(1 + a, 1)[:, [0, -1]].amax().item() for a in range(3)]
    axis = int(np.argmax(edge_errors))
    assert edge_errors[axis] >= 1.0  # at least one ramp step (1 along the last axis)
    assert (image - original).abs().movedim(1 + axis, 1)[:, 2:-2].amax() < 1e-3
