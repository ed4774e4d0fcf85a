"""Tests of the DDF conventions in monai_ext.spatial (2-D and 3-D, CPU, small tensors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_ext.spatial import (
    compose_ddf,
    ddf_to_icon_map,
    ddf_to_world_displacement,
    grid_sample_at,
    icon_map_to_ddf,
    identity_grid,
    integrate_velocity,
    resize_ddf,
    warp_image,
    warp_label,
    world_displacement_to_ddf,
)

SHAPES = {2: (17, 13), 3: (11, 9, 8)}


def smooth_field(shape, channels, amplitude, seed, batch=1, dtype=torch.float64):
    """Smooth random field ``(batch, channels, *shape)``: three low-frequency cosines, |values| <= amplitude."""
    generator = torch.Generator().manual_seed(seed)
    sizes = torch.tensor([float(n) for n in shape], dtype=torch.float64).reshape((len(shape),) + (1,) * len(shape))
    grid = identity_grid(shape, dtype=torch.float64) / sizes
    out = torch.zeros((batch, channels) + tuple(shape), dtype=torch.float64)
    for _ in range(3):
        freq = torch.rand((batch, channels, len(shape)), generator=generator, dtype=torch.float64) * 2.0
        phase = torch.rand((batch, channels), generator=generator, dtype=torch.float64) * 2.0 * np.pi
        weight = torch.rand((batch, channels), generator=generator, dtype=torch.float64) * 2.0 - 1.0
        arg = torch.einsum("bcd,d...->bc...", freq, grid) * np.pi + phase.reshape((batch, channels) + (1,) * len(shape))
        out = out + weight.reshape((batch, channels) + (1,) * len(shape)) * torch.cos(arg)
    return (amplitude / 3.0 * out).to(dtype)


def smooth_image(shape, dtype=torch.float64):
    """Low-frequency image ``(1, 1, *shape)`` (a sum of cosines of voxel coordinates)."""
    grid = identity_grid(shape, dtype=dtype)
    value = torch.ones(shape, dtype=dtype)
    for c, n in enumerate(shape):
        value = value + torch.cos(2.0 * np.pi * grid[c] / (1.7 * n) + 0.3 * c)
    return value[None, None]


def test_identity_grid_values():
    grid = identity_grid((3, 4), dtype=torch.float64)
    assert grid.shape == (2, 3, 4)
    assert grid[0, 2, 1] == 2 and grid[1, 2, 1] == 1
    assert grid.dtype == torch.float64


@pytest.mark.parametrize("ndim", [2, 3])
def test_zero_ddf_is_identity(ndim):
    image = smooth_image(SHAPES[ndim])
    ddf = torch.zeros((1, ndim) + SHAPES[ndim], dtype=torch.float64)
    assert torch.allclose(warp_image(image, ddf), image, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_integer_translation_shifts_exactly(ndim):
    shape = SHAPES[ndim]
    generator = torch.Generator().manual_seed(0)
    image = torch.rand((2, 3) + shape, generator=generator)
    shift = [2, -1, 1][:ndim]
    ddf = torch.zeros((2, ndim) + shape)
    for c in range(ndim):
        ddf[:, c] = shift[c]
    warped = warp_image(image, ddf)
    # warped[x] = image[x + shift] wherever x + shift is inside the image.
    src = tuple(slice(max(s, 0), n + min(s, 0)) for s, n in zip(shift, shape))
    dst = tuple(slice(max(-s, 0), n + min(-s, 0)) for s, n in zip(shift, shape))
    torch.testing.assert_close(warped[(...,) + dst], image[(...,) + src], atol=1e-6, rtol=0)
    # channel c moves along array axis c: a shift of +2 along axis 0 makes row 0 read row 2.
    along_axis0 = torch.zeros_like(ddf)
    along_axis0[:, 0] = 2
    assert torch.allclose(warp_image(image, along_axis0)[:, :, 0], image[:, :, 2], atol=1e-6)
    nearest = warp_image(image, ddf, mode="nearest")
    torch.testing.assert_close(nearest[(...,) + dst], image[(...,) + src], atol=0, rtol=0)


def test_warp_image_linear_interpolation_half_voxel():
    image = torch.arange(5, dtype=torch.float64).reshape(1, 1, 5, 1).expand(1, 1, 5, 3).contiguous()
    ddf = torch.zeros(1, 2, 5, 3, dtype=torch.float64)
    ddf[:, 0] = 0.5
    warped = warp_image(image, ddf)
    expected = torch.tensor([0.5, 1.5, 2.5, 3.5, 4.0], dtype=torch.float64)  # border padding at the end
    torch.testing.assert_close(warped[0, 0, :, 1], expected)


@pytest.mark.parametrize("ndim", [2, 3])
def test_warp_label_keeps_values_and_dtype(ndim):
    shape = SHAPES[ndim]
    generator = torch.Generator().manual_seed(1)
    label = torch.randint(0, 4, (1, 1) + shape, generator=generator, dtype=torch.int64) * 3 + 1  # values 1,4,7,10
    ddf = smooth_field(shape, ndim, 2.0, seed=2, dtype=torch.float32)
    warped = warp_label(label, ddf)
    assert warped.dtype == label.dtype and warped.shape == label.shape
    assert set(warped.unique().tolist()) <= set(label.unique().tolist())
    uint8 = warp_label(label.to(torch.uint8), ddf)
    assert uint8.dtype == torch.uint8
    assert torch.equal(uint8.long(), warped)
    # an integer shift moves labels exactly
    shift = torch.zeros((1, ndim) + shape)
    shift[:, 0] = 1
    moved = warp_label(label, shift)
    assert torch.equal(moved[:, :, :-1], label[:, :, 1:])


@pytest.mark.parametrize("ndim", [2, 3])
def test_compose_with_zero_is_identity(ndim):
    a = smooth_field(SHAPES[ndim], ndim, 1.5, seed=3)
    zero = torch.zeros_like(a)
    torch.testing.assert_close(compose_ddf(a, zero), a)
    torch.testing.assert_close(compose_ddf(zero, a), a)


@pytest.mark.parametrize("ndim", [2, 3])
def test_compose_translations_add(ndim):
    shape = SHAPES[ndim]
    ones = torch.ones((2, ndim) + shape, dtype=torch.float64)
    per_axis = (1, ndim) + (1,) * ndim
    a = ones * torch.tensor([0.7, -1.2, 0.4][:ndim], dtype=torch.float64).reshape(per_axis)
    b = ones * torch.tensor([-0.3, 2.5, 1.1][:ndim], dtype=torch.float64).reshape(per_axis)
    torch.testing.assert_close(compose_ddf(a, b), a + b)


@pytest.mark.parametrize("ndim", [2, 3])
def test_compose_matches_warping_twice(ndim):
    shape = (33, 29) if ndim == 2 else (21, 19, 17)
    moving = smooth_image(shape)
    a = smooth_field(shape, ndim, 3.0, seed=4)
    b = smooth_field(shape, ndim, 3.0, seed=5)
    twice = warp_image(warp_image(moving, a), b)
    once = warp_image(moving, compose_ddf(a, b))
    interior = (slice(None), slice(None)) + (slice(4, -4),) * ndim
    # both sides interpolate linearly at different stages: equal up to interpolation error.
    error = (twice - once)[interior].abs().max()
    assert error < 1e-2 * moving.abs().max()
    # the order matters: composing the other way round is several times further off.
    assert (twice - warp_image(moving, compose_ddf(b, a)))[interior].abs().max() > 4 * error


@pytest.mark.parametrize("ndim", [2, 3])
def test_integrate_velocity_zero_and_constant(ndim):
    shape = SHAPES[ndim]
    zero = torch.zeros((2, ndim) + shape)
    assert torch.equal(integrate_velocity(zero), zero)
    constant = torch.ones((2, ndim) + shape) * torch.tensor([1.5, -2.0, 0.75][:ndim]).reshape((1, ndim) + (1,) * ndim)
    torch.testing.assert_close(integrate_velocity(constant, num_steps=5), constant, atol=1e-6, rtol=0)


def test_integrate_velocity_small_field_is_close_to_velocity():
    v = smooth_field((24, 20), 2, 0.05, seed=6)
    u = integrate_velocity(v)
    # exp(v) = v + O(|v| |grad v|): second-order small for a small smooth velocity.
    assert (u - v).abs().max() < 0.02 * v.abs().max()


@pytest.mark.parametrize("ndim", [2, 3])
def test_icon_map_round_trip_and_identity(ndim):
    shape = SHAPES[ndim]
    ddf = smooth_field(shape, ndim, 2.0, seed=7, batch=2)
    torch.testing.assert_close(icon_map_to_ddf(ddf_to_icon_map(ddf)), ddf)
    identity01 = ddf_to_icon_map(torch.zeros_like(ddf))
    assert identity01.min() == 0 and identity01.max() == 1
    # identity map along axis c is i / (N_c - 1)
    index = (0, ndim - 1) + (1,) * (ndim - 1) + (shape[-1] - 2,)
    assert identity01[index].item() == pytest.approx((shape[-1] - 2) / (shape[-1] - 1))


def test_icon_map_translation_by_one_voxel():
    shape = (9, 5)
    phi = ddf_to_icon_map(torch.zeros((1, 2) + shape, dtype=torch.float64))
    phi[:, 1] += 1.0 / (shape[1] - 1)  # one voxel along axis 1 in [0, 1] units (N - 1, not N)
    ddf = icon_map_to_ddf(phi)
    torch.testing.assert_close(ddf[:, 1], torch.ones((1,) + shape, dtype=torch.float64))
    torch.testing.assert_close(ddf[:, 0], torch.zeros((1,) + shape, dtype=torch.float64))


@pytest.mark.parametrize("ndim", [2, 3])
def test_resize_affine_ddf_preserves_mapping(ndim):
    old = SHAPES[ndim]
    new = (25, 7) if ndim == 2 else (6, 15, 12)
    generator = torch.Generator().manual_seed(8)
    matrix = 0.1 * torch.randn(ndim, ndim, generator=generator, dtype=torch.float64)
    offset = torch.randn(ndim, generator=generator, dtype=torch.float64)
    x = identity_grid(old, dtype=torch.float64)
    ddf = (torch.einsum("ij,j...->i...", matrix, x) + offset.reshape((ndim,) + (1,) * ndim))[None]
    resized = resize_ddf(ddf, new)
    assert resized.shape == (1, ndim) + new
    # new voxel y is at old voxel s * y; the mapped point in old voxels is s*y + u_old(s*y).
    s = torch.tensor([(o - 1) / (n - 1) for o, n in zip(old, new)], dtype=torch.float64).reshape((ndim,) + (1,) * ndim)
    y = identity_grid(new, dtype=torch.float64)
    x_old = s * y
    mapped_old = x_old + torch.einsum("ij,j...->i...", matrix, x_old) + offset.reshape((ndim,) + (1,) * ndim)
    mapped_new = (y + resized[0]) * s
    torch.testing.assert_close(mapped_new, mapped_old)
    # and back: resizing to the original grid returns the original field
    torch.testing.assert_close(resize_ddf(resized, old), ddf)


def test_world_displacement_round_trip_and_values():
    generator = torch.Generator().manual_seed(9)
    ddf = torch.randn(3, 4, 5, 6, generator=generator, dtype=torch.float64)
    affine = np.diag([2.0, 0.5, 3.0, 1.0])
    affine[:3, 3] = [10.0, 20.0, 30.0]  # translation does not move displacements
    world = ddf_to_world_displacement(ddf, affine)
    assert world.shape == (4, 5, 6, 3)
    np.testing.assert_allclose(world[1, 2, 3], np.array([2.0, 0.5, 3.0]) * ddf[:, 1, 2, 3].numpy())
    np.testing.assert_allclose(world_displacement_to_ddf(world, affine), ddf.numpy())
    # 2-D with a 4x4 affine: the top-left 2x2 block
    world2 = ddf_to_world_displacement(ddf[:2, :, :, 0], affine)
    np.testing.assert_allclose(world2[..., 1], 0.5 * ddf[1, :, :, 0].numpy())


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: warp_image(torch.zeros(1, 1, 5, 5), torch.zeros(1, 3, 5, 5)), "channels"),
        (lambda: warp_image(torch.zeros(1, 1, 5, 5), torch.zeros(1, 2, 5, 4)), "spatial size mismatch"),
        (lambda: warp_image(torch.zeros(2, 1, 5, 5), torch.zeros(1, 2, 5, 5)), "batch size mismatch"),
        (lambda: warp_image(torch.zeros(1, 1, 5, 5), torch.zeros(2, 5, 5)), "shape"),
        (lambda: warp_image(torch.zeros(1, 1, 5, 5), torch.zeros(1, 2, 5, 5), mode="cubic"), "mode must be one of"),
        (lambda: warp_image(torch.zeros(1, 1, 5, 5, dtype=torch.long), torch.zeros(1, 2, 5, 5)), "warp_label"),
        (lambda: compose_ddf(torch.zeros(1, 2, 5, 5), torch.zeros(1, 2, 5, 6)), "different shapes"),
        (lambda: integrate_velocity(torch.zeros(1, 2, 5, 5), num_steps=0), "num_steps"),
        (lambda: resize_ddf(torch.zeros(1, 2, 5, 5), (4, 4, 4)), "spatial_shape"),
        (lambda: icon_map_to_ddf(torch.zeros(1, 2, 5, 5, 5)), "channels"),
        (lambda: ddf_to_world_displacement(np.zeros((3, 4, 4)), np.eye(4)), "shape"),
        (lambda: ddf_to_world_displacement(np.zeros((2, 4, 4)), np.eye(5)), "affine"),
    ],
)
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_warp_is_differentiable_and_keeps_dtype():
    image = smooth_image((9, 8), dtype=torch.float32)
    ddf = smooth_field((9, 8), 2, 0.5, seed=10, dtype=torch.float32).requires_grad_(True)
    out = warp_image(image, ddf)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert ddf.grad is not None and ddf.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------
# storage order
# ------------------------------------------------------------------------------------------------

LIA = torch.tensor([[-1.0, 0, 0, 5], [0, 0, 1.5, -2], [0, -2, 0, 9], [0, 0, 0, 1]], dtype=torch.float64)


def test_canonical_axes_of_common_storage_orders():
    from monai_ext.spatial import canonical_axes

    assert canonical_axes(torch.eye(4)) == ((), (0, 1, 2))
    assert canonical_axes(torch.diag(torch.tensor([-1.0, -1, 1, 1]))) == ((0, 1), (0, 1, 2))  # LPS
    assert canonical_axes(LIA) == ((0, 1), (0, 2, 1))
    # a coronal 2-D slice (axes to L and I): both reversed, order kept
    assert canonical_axes(LIA, ndim=2) == ((0, 1), (0, 1))
    with pytest.raises(ValueError, match="affine"):
        canonical_axes(torch.eye(3), ndim=3)


def test_canonical_arrays_hold_the_same_voxels_at_the_same_world_points():
    from monai_ext.spatial import canonical_affine, canonical_axes, from_canonical, to_canonical

    image = torch.arange(4 * 5 * 6, dtype=torch.float32).reshape(1, 1, 4, 5, 6)
    axes = canonical_axes(LIA)
    canonical = to_canonical(image, *axes)
    assert canonical.shape == (1, 1, 4, 6, 5) and torch.equal(from_canonical(canonical, *axes), image)
    affine = canonical_affine(LIA, *axes, image.shape[2:])
    # RAS: the axes of the canonical array run to +x, +y, +z
    assert torch.all(torch.diagonal(affine[:3, :3]) > 0)
    for index in [(0, 0, 0), (3, 1, 4), (2, 5, 3)]:
        world = affine @ torch.tensor([*index, 1.0], dtype=torch.float64)
        stored = torch.linalg.solve(LIA, world)[:3].round().long().tolist()
        assert canonical[0, 0][index] == image[0, 0][tuple(stored)]


def test_a_field_computed_on_the_canonical_array_moves_the_same_world_points():
    from monai_ext.spatial import canonical_affine, canonical_axes, ddf_from_canonical, points_to_canonical

    axes = canonical_axes(LIA)
    shape = (4, 5, 6)
    ddf_c = torch.zeros(1, 3, 4, 6, 5)
    ddf_c[:, 0], ddf_c[:, 1], ddf_c[:, 2] = 0.5, -1.0, 2.0  # canonical voxels: +x, -y, +z
    ddf = ddf_from_canonical(ddf_c, *axes)
    assert ddf.shape == (1, 3, *shape)
    # stored axes run to L, I, A: the same motion is -0.5, -2.0, -1.0 stored voxels
    torch.testing.assert_close(ddf[0, :, 1, 2, 3], torch.tensor([-0.5, -2.0, -1.0]))
    point = torch.tensor([[1.0, 2.0, 3.0]])
    canonical_point = points_to_canonical(point, *axes, shape)
    world_stored = LIA @ torch.tensor([1.0, 2.0, 3.0, 1.0], dtype=torch.float64)
    world_canonical = canonical_affine(LIA, *axes, shape) @ torch.cat([canonical_point[0].double(), torch.ones(1)])
    torch.testing.assert_close(world_stored, world_canonical)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_grid_sample_at_splits_a_batch_1_volume_over_threads_with_the_same_values_and_gradients(mode):
    # 3-D grid_sample runs the points of one batch item on one thread; grid_sample_at deals a batch-1
    # volume's points out as a batch of chunks. Values and both gradients must equal the single call's.
    from monai_ext.spatial.sampling import _thread_chunks

    generator = torch.Generator().manual_seed(0)
    values = torch.rand(1, 3, 20, 22, 24, generator=generator, requires_grad=True)
    grid = (torch.rand(1, 41, 43, 39, 3, generator=generator) * 2.4 - 1.2).requires_grad_()  # odd count: padding
    upstream = torch.randn(1, 3, 41, 43, 39, generator=generator)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert _thread_chunks(values, grid) == 2
        split = grid_sample_at(values, grid, mode=mode)
        grads_split = torch.autograd.grad((split * upstream).sum(), [values, grid])
    finally:
        torch.set_num_threads(threads)
    reference = torch.nn.functional.grid_sample(values, grid, mode=mode, padding_mode="border", align_corners=True)
    grads_reference = torch.autograd.grad((reference * upstream).sum(), [values, grid])
    assert torch.equal(split, reference)
    torch.testing.assert_close(grads_split[0], grads_reference[0], rtol=1e-5, atol=1e-5)
    assert torch.equal(grads_split[1], grads_reference[1])


def test_warp_image_3d_matches_monai_warp():
    from monai.networks.blocks import Warp

    generator = torch.Generator().manual_seed(1)
    image = torch.rand(1, 2, 40, 40, 44, generator=generator)
    ddf = 3 * torch.randn(1, 3, 40, 40, 44, generator=generator)
    for mode in ("bilinear", "nearest"):
        for padding in ("border", "zeros"):
            expected = Warp(mode=mode, padding_mode=padding)(image, ddf)
            torch.testing.assert_close(warp_image(image, ddf, mode=mode, padding_mode=padding), expected)


@pytest.mark.parametrize("shape", [(2, 3, 11, 9, 14), (1, 2, 8, 13), (3, 1, 17)])
def test_replicate_separable_filtering_equals_monai(shape):
    from monai.networks.layers import gaussian_1d, separable_filtering

    from monai_ext.spatial import replicate_separable_filtering

    x = torch.randn(shape, generator=torch.Generator().manual_seed(len(shape)))
    ndim = len(shape) - 2
    widths = [gaussian_1d(torch.tensor(s), truncated=3.0, normalize=True) for s in (1.0, 0.5, 2.0)][:ndim]
    kernels = widths[:-1] + [torch.ones(1)] if ndim > 1 else widths  # an axis left alone
    for chosen in (widths, kernels):
        expected = separable_filtering(x, chosen, mode="replicate")
        torch.testing.assert_close(replicate_separable_filtering(x, chosen), expected, rtol=1e-6, atol=1e-7)
    constant = torch.full(shape, 2.5)
    torch.testing.assert_close(replicate_separable_filtering(constant, widths), constant)
    # differentiable: the adjoint of a symmetric filter moves no mass out of the volume inside
    x.requires_grad_(True)
    replicate_separable_filtering(x, widths).sum().backward()
    assert x.grad is not None and torch.isclose(x.grad.sum(), torch.tensor(float(x.numel())))
