"""LNCC with a Gaussian window (ICON / GradICON section 4.2): hand values, gradients, icon_registration."""

from __future__ import annotations

import math

import pytest
import torch

import monai_ext.losses.lncc as lncc_module
from monai_ext.losses import LNCCLoss, SquaredLNCCLoss
from monai_ext.losses.lncc import gaussian_kernel1d

SHAPES = {1: (2, 1, 23), 2: (2, 1, 13, 11), 3: (1, 2, 9, 8, 7)}


def _pair(ndim, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    a = torch.rand(SHAPES[ndim], generator=generator, dtype=dtype)
    b = 0.5 * a + 0.5 * torch.rand(SHAPES[ndim], generator=generator, dtype=dtype)
    return a, b


def test_kernel_taps_and_normalisation():
    kernel = gaussian_kernel1d(5.0, dtype=torch.float64)
    assert kernel.numel() == 21  # 4 sigma + 1, as ICON
    assert kernel.sum().item() == pytest.approx(1.0, abs=1e-15)
    assert torch.equal(kernel, kernel.flip(0))
    assert (kernel[10] / kernel[15]).item() == pytest.approx(math.exp(0.5), rel=1e-12)  # 5 taps = 1 sigma
    assert gaussian_kernel1d(1.5).numel() == 7


def test_constant_images_hand_computed():
    # Image (1, 3) pixels, sigma 0.5: 3 taps [g, 1, g] / (1 + 2g) with g = exp(-2). Zero padding gives
    # the blur of a constant c: c * W with W = w0 * w1(x), w0 = 1 / (1 + 2g) (axis of length 1),
    # w1 = (1 + g) / (1 + 2g) at both ends and 1 in the middle. For I = a, J = b the local
    # (co)variances are ab V, a^2 V, b^2 V with V = W (1 - W).
    a, b, eps = 2.0, -3.0, 1e-5
    g = math.exp(-2.0)
    w0 = 1.0 / (1.0 + 2.0 * g)
    lncc = []
    for w1 in ((1.0 + g) / (1.0 + 2.0 * g), 1.0, (1.0 + g) / (1.0 + 2.0 * g)):
        big_w = w0 * w1
        v = big_w * (1.0 - big_w)
        lncc.append(a * b * v / math.sqrt((a * a * v + eps) * (b * b * v + eps)))
    expected = 1.0 - sum(lncc) / 3.0
    expected_sq = 1.0 - sum(x * x for x in lncc) / 3.0
    image_a = torch.full((1, 1, 1, 3), a, dtype=torch.float64)
    image_b = torch.full((1, 1, 1, 3), b, dtype=torch.float64)
    assert LNCCLoss(sigma=0.5)(image_a, image_b).item() == pytest.approx(expected, rel=1e-12)
    assert SquaredLNCCLoss(sigma=0.5)(image_a, image_b).item() == pytest.approx(expected_sq, rel=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_identical_and_linearly_related_images(ndim):
    a, _ = _pair(ndim)
    # Without eps, LNCC(I, I) = 1 wherever the local variance is positive (always, for random images).
    assert LNCCLoss(sigma=1.0, eps=0.0)(a, a).item() == pytest.approx(0.0, abs=1e-12)
    # Scaling keeps LNCC = 1; an offset would not, near the border (the blur pads with zeros, as ICON).
    assert LNCCLoss(sigma=1.0, eps=0.0)(a, 3.0 * a).item() == pytest.approx(0.0, abs=1e-12)
    assert LNCCLoss(sigma=1.0, eps=0.0)(a, -a).item() == pytest.approx(2.0, abs=1e-12)
    assert SquaredLNCCLoss(sigma=1.0, eps=0.0)(a, -a).item() == pytest.approx(0.0, abs=1e-12)
    # With ICON's eps the minimum is a little above 0 (local variance ~ 1/12 >> 1e-5).
    assert 0.0 < LNCCLoss(sigma=1.0)(a, a).item() < 1e-3


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("sigma", [1, 2, 5])
def test_matches_icon_registration(ndim, sigma):
    losses = pytest.importorskip("icon_registration.losses")
    a, b = _pair(ndim)
    # ICON builds its kernel in the default dtype: make it float64 to compare at float64 precision.
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        expected = losses.LNCC(sigma)(a, b).item()
        expected_sq = losses.SquaredLNCC(sigma)(a, b).item()
    finally:
        torch.set_default_dtype(default)
    assert LNCCLoss(sigma)(a, b).item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert SquaredLNCCLoss(sigma)(a, b).item() == pytest.approx(expected_sq, rel=1e-10, abs=1e-12)
    # float32, ICON's own float32 kernel
    a32, b32 = a.float(), b.float()
    torch.testing.assert_close(LNCCLoss(sigma)(a32, b32), losses.LNCC(sigma)(a32, b32), atol=2e-6, rtol=0)


def test_mask_matches_icon_registration():
    losses = pytest.importorskip("icon_registration.losses")
    a, b = _pair(2, dtype=torch.float32)
    mask = torch.zeros_like(b)
    mask[0, :, 2:9, 3:] = 1.0
    mask[1, :, :4] = 2.0
    torch.testing.assert_close(LNCCLoss(2)(a, b, mask), losses.LNCC(2)(a, b, mask), atol=2e-6, rtol=0)
    torch.testing.assert_close(SquaredLNCCLoss(2)(a, b, mask), losses.SquaredLNCC(2)(a, b, mask), atol=2e-6, rtol=0)


@pytest.mark.parametrize("ndim", [2, 3])
def test_convolution_path_equals_matrix_path(ndim, monkeypatch):
    a, b = _pair(ndim)
    by_matrix = LNCCLoss(2)(a, b)
    monkeypatch.setattr(lncc_module, "_DENSE_BLUR_MAX", 0)
    torch.testing.assert_close(LNCCLoss(2)(a, b), by_matrix, atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape,squared", [((1, 1, 6, 7), False), ((1, 1, 6, 7), True), ((1, 1, 3, 4, 3), False)])
def test_gradcheck(shape, squared):
    generator = torch.Generator().manual_seed(1)
    a = torch.rand(shape, generator=generator, dtype=torch.float64, requires_grad=True)
    b = torch.rand(shape, generator=generator, dtype=torch.float64, requires_grad=True)
    loss = LNCCLoss(sigma=1.0, squared=squared)
    assert torch.autograd.gradcheck(loss, (a, b))


def test_invalid_inputs():
    with pytest.raises(ValueError, match="sigma"):
        LNCCLoss(sigma=0)
    with pytest.raises(ValueError, match="same shape"):
        LNCCLoss()(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))
    with pytest.raises(ValueError, match="spatial"):
        LNCCLoss()(torch.rand(8, 8), torch.rand(8, 8))
    with pytest.raises(ValueError, match="mask"):
        LNCCLoss()(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), torch.ones(1, 1, 8, 7))
