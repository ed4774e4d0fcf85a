"""DIO's optimisation layer: stationarity, implicit gradients, memory, transforms, geometry, prompts."""

from __future__ import annotations

import gc
import math
import weakref

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from monai_ext.metrics import negative_jacobian_fraction
from monai_ext.solvers import LabelPrompt, LandmarkPrompt, MultiScaleSolver, SGDStep
from monai_ext.spatial import (
    fixed_to_moving_matrix,
    sample_moving,
    transform_points,
    warp_image,
    warp_label,
    warp_moving,
)


def _grid(shape):
    axes = [torch.arange(n, dtype=torch.float64) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


def _blob(shape, centre, sigma=4.0):
    g = _grid(shape)
    return torch.exp(-sum((g[i] - centre[i]) ** 2 for i in range(len(shape))) / (2 * sigma**2))[None, None].float()


def _pyramid(image, scales=(4, 2, 1)):
    shape = image.shape[2:]
    return [
        image if s == 1 else F.interpolate(image, size=[math.ceil(n / s) for n in shape], mode="area") for s in scales
    ]


def _features(shape, generator, channels=3, smooth=2.0):
    """Smooth random multi-channel features (leafs that may require grad)."""
    x = torch.randn(1, channels, *shape, generator=generator)
    kernel = torch.exp(-(torch.arange(-4, 5.0) ** 2) / (2 * smooth**2))
    kernel = (kernel / kernel.sum()).float()
    for axis in range(len(shape)):
        view = [1, 1] + [1] * len(shape)
        view[2 + axis] = -1
        k = kernel.reshape(view).repeat(channels, 1, *([1] * len(shape)))
        pad = [0, 0] * len(shape)
        pad[2 * (len(shape) - 1 - axis)] = pad[2 * (len(shape) - 1 - axis) + 1] = 4
        x = (F.conv2d if len(shape) == 2 else F.conv3d)(F.pad(x, pad, mode="replicate"), k, groups=channels)
    return x / x.std()


# ---------------------------------------------------------------- geometry


def test_sample_moving_matches_monai_warp_and_label_warp():
    g = torch.Generator().manual_seed(0)
    for shape in ((9, 11), (7, 8, 6)):
        moving = torch.randn(2, 3, *shape, generator=g)
        ddf = 2 * torch.randn(2, len(shape), *shape, generator=g)
        assert torch.allclose(sample_moving(moving, ddf), warp_image(moving, ddf), atol=1e-6)
        label = torch.randint(0, 5, (2, 1, *shape), generator=g)
        assert torch.equal(warp_moving(label, ddf, label=True), warp_label(label, ddf))


def test_fixed_to_moving_matrix_world_mapping():
    # Fixed: 10x12 grid, 1 mm; moving: 5x12 grid, 2 mm along axis 0, shifted by 3 mm along axis 1.
    fixed_affine = np.eye(3)
    moving_affine = np.array([[2.0, 0, 0], [0, 1.0, 3.0], [0, 0, 1]])
    matrix = fixed_to_moving_matrix(fixed_affine, moving_affine, (10, 12), (5, 12), dtype=torch.float64)
    fixed_points = torch.tensor([[[0.0, 0.0], [4.0, 7.0], [9.0, 11.0]]], dtype=torch.float64)
    moving_points = transform_points(fixed_points, (10, 12), (5, 12), matrix)
    # world = fixed voxel; moving voxel = ((x0) / 2, x1 - 3)
    expected = torch.tensor([[[0.0, -3.0], [2.0, 4.0], [4.5, 8.0]]], dtype=torch.float64)
    assert torch.allclose(moving_points, expected, atol=1e-12)
    identity = fixed_to_moving_matrix(np.diag([1.5, 1.5, 1.0]), np.diag([1.5, 1.5, 1.0]), (8, 8), (8, 8))
    assert torch.allclose(identity, torch.eye(3))


def test_fixed_to_moving_matrix_rejects_bad_affine():
    with pytest.raises(ValueError, match="moving_affine"):
        fixed_to_moving_matrix(np.eye(3), np.zeros((3, 3)), (4, 4), (4, 4))


# ---------------------------------------------------------------- forward: stationary point


def test_forward_reaches_a_stationary_point():
    fixed, moving = _blob((32, 32), (15, 16)), _blob((32, 32), (18, 13))
    solver = MultiScaleSolver(iterations=(40, 40, 600), convergence_eps=0)
    result = solver(_pyramid(fixed), _pyramid(moving))
    ddf = result.ddf.detach().requires_grad_(True)
    loss = ((sample_moving(moving, ddf) - fixed) ** 2).sum()
    (grad,) = torch.autograd.grad(loss, ddf)
    start = torch.zeros_like(ddf, requires_grad=True)
    (grad0,) = torch.autograd.grad(((sample_moving(moving, start) - fixed) ** 2).sum(), start)
    assert grad.norm() < 1e-2 * grad0.norm()
    # and it found the 3-voxel translation at the blob's centre
    assert torch.allclose(result.ddf[0, :, 15, 16], torch.tensor([3.0, -3.0]), atol=0.25)
    assert result.losses[-1][-1] < 1e-2 * float(((moving - fixed) ** 2).sum())


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_sgd_defaults_reach_a_stationary_point_of_random_features(seed):
    """With the default iterations (200, 100, 50) SGD ends where the force rho(u) = dC/du is small
    (< 5 % of its start), as the implicit gradient (Eq. 3-4) assumes. A step size halved for good
    after one overshoot left rho at 35 % on seed 0."""
    features = _features((32, 32), torch.Generator().manual_seed(seed))
    moving = torch.roll(features, (2, -1), (2, 3))
    result = MultiScaleSolver(optimizer="sgd", convergence_eps=0)(_pyramid(features), _pyramid(moving))

    def force(ddf):
        ddf = ddf.detach().requires_grad_(True)
        return torch.autograd.grad(((sample_moving(moving, ddf) - features) ** 2).sum(), ddf)[0].norm()

    assert force(result.ddf) < 0.05 * force(torch.zeros_like(result.ddf))
    # the accepted losses never increase (a step that raised C was taken back)
    for losses in result.losses:
        assert all(b <= a for a, b in zip(losses, losses[1:]))


def test_sgd_step_size_backtracks_and_recovers():
    rule = SGDStep(learning_rate=1.0, max_step=10.0)
    grad = torch.ones(1, 2, 4, 4)
    assert torch.allclose(rule(grad, True), -grad)
    rule.loss_increased()
    rule.loss_increased()
    assert torch.allclose(rule(grad, True), -0.25 * grad)
    rule.loss_decreased()
    assert torch.allclose(rule(grad, True), -0.5 * grad)
    rule.reset()  # a new level starts at the full step
    assert torch.allclose(rule(grad, True), -grad)
    rule.loss_decreased()  # never beyond the learning rate
    assert torch.allclose(rule(grad, True), -grad)
    # each voxel's step is clipped on its own (max_step 0.5 voxels): the weak voxel keeps its step
    grad = torch.zeros(1, 2, 1, 2)
    grad[0, :, 0, 0], grad[0, :, 0, 1] = torch.tensor([3.0, 4.0]), torch.tensor([0.1, 0.0])
    step = SGDStep(learning_rate=1.0, max_step=0.5)(grad, True)
    assert torch.allclose(step[0, :, 0, 0], torch.tensor([-0.3, -0.4])) and torch.allclose(
        step[0, :, 0, 1], -grad[0, :, 0, 1]
    )


def test_early_stopping_on_relative_loss_change():
    fixed, moving = _blob((32, 32), (15, 16)), _blob((32, 32), (18, 13))
    solver = MultiScaleSolver(iterations=(200, 200, 200), convergence_eps=1e-2, convergence_patience=3)
    result = solver(_pyramid(fixed), _pyramid(moving))
    assert all(n < 200 for n in result.iterations)
    for losses in result.losses:
        # stopped after `patience` iterations whose relative decrease was below eps
        tail = np.asarray(losses[-4:])
        assert np.all(tail[1:] / tail[:-1] - 1 >= -1e-2)


@pytest.mark.parametrize(
    "transform, optimizer",
    [("freeform", "sgd"), ("freeform", "adam"), ("diffeomorphic", "adam"), ("svf", "sgd"), ("affine", "adam")],
)
def test_every_transform_and_optimizer_registers_a_translation(transform, optimizer):
    fixed, moving = _blob((32, 32), (15, 16), 5.0), _blob((32, 32), (17, 14), 5.0)
    # intensities in [0, 1] give forces far below one: plain gradient descent takes a larger step size
    learning_rate = 4.0 if (optimizer, transform) in (("sgd", "freeform"), ("sgd", "svf")) else None
    solver = MultiScaleSolver(
        iterations=(30, 30, 100),
        transform=transform,
        optimizer=optimizer,
        learning_rate=learning_rate,
        convergence_eps=0,
    )
    result = solver(_pyramid(fixed), _pyramid(moving))
    before = ((moving - fixed) ** 2).sum()
    after = ((sample_moving(moving, result.ddf) - fixed) ** 2).sum()
    assert after < 0.05 * before
    assert torch.allclose(result.ddf[0, :, 15, 16], torch.tensor([2.0, -2.0]), atol=0.35)


def test_affine_recovers_a_known_affine():
    shape = (40, 40)
    g = torch.Generator().manual_seed(3)
    fixed = _features(shape, g, channels=1, smooth=3.0)
    theta = torch.tensor([[[1.05, 0.04, 0.05], [-0.03, 0.97, -0.04]]])
    # moving such that moving(A n + t) = fixed(n): moving = fixed warped by the inverse map.
    full = torch.cat([theta[0], torch.tensor([[0.0, 0.0, 1.0]])])
    inverse = torch.linalg.inv(full)[:2].unsqueeze(0)
    from monai_ext.solvers.transform_models import Affine

    inverse_ddf = Affine().to_ddf(inverse, shape)
    moving = sample_moving(fixed, inverse_ddf)
    solver = MultiScaleSolver(
        iterations=(100, 100, 100), transform="affine", optimizer="adam", learning_rate=0.005, convergence_eps=0
    )
    result = solver(_pyramid(fixed), _pyramid(moving))
    interior = (slice(None), slice(None), slice(8, 32), slice(8, 32))
    expected = Affine().to_ddf(theta, shape)
    assert (result.ddf - expected)[interior].abs().max() < 0.3


def test_diffeomorphic_transform_does_not_fold_where_freeform_does():
    # A large, local deformation: a small blob must move far; free-form SGD drags voxels across.
    fixed, moving = _blob((40, 40), (20, 14), 3.0), _blob((40, 40), (20, 26), 3.0)
    kwargs = {"iterations": (60, 60, 60), "convergence_eps": 0}
    diffeo = MultiScaleSolver(transform="diffeomorphic", optimizer="adam", **kwargs)(_pyramid(fixed), _pyramid(moving))
    svf = MultiScaleSolver(transform="svf", optimizer="adam", **kwargs)(_pyramid(fixed), _pyramid(moving))
    freeform = MultiScaleSolver(transform="freeform", optimizer="adam", **kwargs)(_pyramid(fixed), _pyramid(moving))
    folds = {
        name: float(negative_jacobian_fraction(r.ddf))
        for name, r in (("diffeo", diffeo), ("svf", svf), ("freeform", freeform))
    }
    assert folds["diffeo"] == 0.0
    assert folds["freeform"] > 0.0
    # scaling and squaring with border padding can fold at the image border; far fewer than free-form
    assert folds["svf"] < 0.5 * folds["freeform"]
    # the diffeomorphic solution still aligns most of the blob
    before = ((moving - fixed) ** 2).sum()
    assert ((sample_moving(moving, diffeo.ddf) - fixed) ** 2).sum() < 0.5 * before


def test_batched_pairs_equal_single_pairs():
    g = torch.Generator().manual_seed(1)
    f = [_features((24, 24), g) for _ in range(2)]
    m = [_features((24, 24), g) for _ in range(2)]
    solver = MultiScaleSolver(iterations=(10, 10, 10), optimizer="adam", convergence_eps=0)
    both = solver(_pyramid(torch.cat(f)), _pyramid(torch.cat(m))).ddf
    for i in range(2):
        alone = solver(_pyramid(f[i]), _pyramid(m[i])).ddf
        assert torch.allclose(both[i : i + 1], alone, atol=1e-4)


# ---------------------------------------------------------------- backward


def _tiny_problem(seed=0, shape=(12, 12)):
    """Smooth features and a copy moved by a sub-voxel shift plus a little noise.

    The optimum (about the shift) lies inside the interpolation cells, where the objective is
    smooth; at integer displacements bilinear interpolation has kinks and Eq. 4 does not apply.
    """
    g = torch.Generator().manual_seed(seed)
    fixed = _features(shape, g, channels=2, smooth=2.0)
    shift = torch.tensor([-0.4, -0.3]).reshape(1, 2, 1, 1).expand(1, 2, *shape)
    moving = sample_moving(fixed, shift) + 0.05 * _features(shape, g, channels=2, smooth=2.0)
    target = torch.randn(1, 2, *shape, generator=g)
    return fixed, moving, target


def _feature_gradient(backward, iterations, fixed, moving, target, **kw):
    ff, fm = fixed.clone().requires_grad_(True), moving.clone().requires_grad_(True)
    solver = MultiScaleSolver(
        iterations=(iterations,),
        backward=backward,
        convergence_eps=0,
        regularization_weight=0.5,
        learning_rate=0.1,
        **kw,
    )
    ddf = solver([ff], [fm]).ddf
    outer = (ddf * target).sum()
    grads = torch.autograd.grad(outer, [ff, fm])
    return torch.cat([g.flatten() for g in grads])


def _cosine(a, b):
    return float((a * b).sum() / (a.norm() * b.norm()))


def test_jacobian_free_gradient_has_positive_cosine_with_unrolled_gradient():
    fixed, moving, target = _tiny_problem()
    unrolled = _feature_gradient("unrolled", 150, fixed, moving, target)
    jfb = _feature_gradient("jacobian_free", 150, fixed, moving, target)
    assert _cosine(jfb, unrolled) > 0.3
    # the cosine is not an accident of the problem: a random direction is near-orthogonal
    random = torch.randn(unrolled.shape, generator=torch.Generator().manual_seed(5))
    assert abs(_cosine(random, unrolled)) < 0.1


def test_ift_gradient_matches_unrolled_gradient_for_a_dense_field():
    fixed, moving, target = _tiny_problem(seed=2)
    unrolled = _feature_gradient("unrolled", 1000, fixed, moving, target)
    ift = _feature_gradient("ift", 1000, fixed, moving, target, ift_cg_iterations=200, ift_damping=0.0)
    assert _cosine(ift, unrolled) > 0.95


@pytest.mark.parametrize("optimizer, learning_rate", [("sgd", 1e-3), ("adam", 5e-3)])
def test_ift_gradient_equals_finite_differences_of_the_optimum(optimizer, learning_rate):
    # An affine solve (6 parameters, smooth in them) converges to machine precision, so Eq. 4 can be
    # checked exactly against central differences of the converged solution.
    fixed, moving, target = (t.double() for t in _tiny_problem(seed=2, shape=(16, 16)))
    kwargs = {
        "iterations": (400,),
        "transform": "affine",
        "optimizer": optimizer,
        "learning_rate": learning_rate,
        "convergence_eps": 0,
    }

    def feature_gradient(backward):
        ff, fm = fixed.clone().requires_grad_(True), moving.clone().requires_grad_(True)
        ddf = MultiScaleSolver(backward=backward, ift_damping=0.0, **kwargs)([ff], [fm]).ddf
        return torch.cat([g.flatten() for g in torch.autograd.grad((ddf * target).sum(), [ff, fm])])

    ift, unrolled = feature_gradient("ift"), feature_gradient("unrolled")
    direction = torch.randn(2, *fixed.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    solver = MultiScaleSolver(**kwargs)

    def outer(eps):
        return float((solver([fixed + eps * direction[0]], [moving + eps * direction[1]]).ddf * target).sum())

    eps = 1e-3
    numeric = (outer(eps) - outer(-eps)) / (2 * eps)
    analytic = float((ift * direction.flatten()).sum())
    assert analytic == pytest.approx(numeric, rel=1e-3)
    assert float((unrolled * direction.flatten()).sum()) == pytest.approx(analytic, rel=1e-4)


def _saved_bytes(backward, iterations):
    """Bytes of the tensors the autograd graph of the solver's output keeps for the backward pass."""
    g = torch.Generator().manual_seed(0)
    shape = (16, 16)
    ff = [_features([math.ceil(n / s) for n in shape], g).requires_grad_(True) for s in (2, 1)]
    fm = [_features([math.ceil(n / s) for n in shape], g).requires_grad_(True) for s in (2, 1)]
    saved = []

    def pack(t):
        saved.append(weakref.ref(t))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        solver = MultiScaleSolver(
            iterations=(iterations, iterations), backward=backward, convergence_eps=0, optimizer="adam"
        )
        ddf = solver(ff, fm).ddf
    gc.collect()
    alive = {}
    for ref in saved:  # tensors of the iterations' temporary graphs are gone; the output's graph keeps the rest
        t = ref()
        if t is not None:
            alive[(t.data_ptr(), t.numel())] = t.numel() * t.element_size()
    ddf.sum().backward()
    return sum(alive.values())


def test_memory_for_backward_does_not_grow_with_iterations():
    assert _saved_bytes("jacobian_free", 5) == _saved_bytes("jacobian_free", 40)
    assert _saved_bytes("ift", 5) == _saved_bytes("ift", 40)
    # the unrolled reference keeps every iteration's graph: the measure would catch growth
    assert _saved_bytes("unrolled", 40) > 4 * _saved_bytes("unrolled", 5)


def test_gradients_reach_all_levels_and_both_feature_pyramids():
    g = torch.Generator().manual_seed(4)
    ff = [_features((6, 6), g).requires_grad_(True), _features((12, 12), g).requires_grad_(True)]
    fm = [_features((6, 6), g).requires_grad_(True), _features((12, 12), g).requires_grad_(True)]
    result = MultiScaleSolver(iterations=(5, 5), convergence_eps=0)(ff, fm)
    sum(d.pow(2).sum() for d in result.ddfs).backward()
    for t in ff + fm:
        assert t.grad is not None and t.grad.abs().sum() > 0


# ---------------------------------------------------------------- different grids and prompts


def test_registers_images_of_different_size_and_spacing_without_resampling():
    # One object in world space (1 mm units); the fixed image samples it at 1 mm on a 32^2 grid,
    # the moving image at 2 mm x 1 mm on a 16 x 32 grid, with the object shifted by (4, -2) mm.
    def render(shape, spacing, shift):
        g = _grid(shape)
        world = [g[i] * spacing[i] for i in range(2)]
        return torch.exp(-((world[0] - 15 - shift[0]) ** 2 + (world[1] - 16 - shift[1]) ** 2) / (2 * 5.0**2))[
            None, None
        ].float()

    fixed = render((32, 32), (1.0, 1.0), (0.0, 0.0))
    moving = render((16, 32), (2.0, 1.0), (4.0, -2.0))
    matrix = fixed_to_moving_matrix(np.eye(3), np.diag([2.0, 1.0, 1.0]), (32, 32), (16, 32))
    # a smooth (diffeomorphic) transform: free-form voxels would follow the 2 mm sampling's aliasing
    solver = MultiScaleSolver(iterations=(40, 40, 100), transform="diffeomorphic", optimizer="adam", convergence_eps=0)
    result = solver(_pyramid(fixed), _pyramid(moving), fixed_to_moving=matrix)
    # displacement in fixed voxels (= mm here) at the object's centre is the world shift
    assert torch.allclose(result.ddf[0, :, 15, 16], torch.tensor([4.0, -2.0]), atol=0.1)
    warped = warp_moving(moving, result.ddf, matrix)
    assert warped.shape == fixed.shape
    assert ((warped - fixed) ** 2).sum() < 0.05 * ((render((32, 32), (1.0, 1.0), (4.0, -2.0)) - fixed) ** 2).sum()


def test_landmark_prompt_alone_moves_the_landmark():
    # Constant features give no image force: only the prompt drives the warp.
    shape = (20, 20)
    flat = [torch.ones(1, 1, *[math.ceil(n / s) for n in shape]) for s in (2, 1)]
    fixed_points = torch.tensor([[[10.0, 10.0]]])
    moving_points = torch.tensor([[[12.0, 9.0]]])
    prompt = LandmarkPrompt(fixed_points, moving_points, shape, shape, weight=1.0)
    result = MultiScaleSolver(iterations=(50, 200), convergence_eps=0, regularization_weight=0.1)(
        flat, flat, prompts=[prompt]
    )
    assert torch.allclose(result.ddf[0, :, 10, 10], torch.tensor([2.0, -1.0]), atol=0.1)


def test_label_prompt_improves_label_overlap():
    shape = (32, 32)
    g = _grid(shape)
    fixed_label = (((g[0] - 16) ** 2 + (g[1] - 16) ** 2) < 36).long()[None, None]
    moving_label = (((g[0] - 20) ** 2 + (g[1] - 13) ** 2) < 36).long()[None, None]
    flat = [torch.zeros(1, 1, *[math.ceil(n / s) for n in shape]) for s in (4, 2, 1)]
    prompt = LabelPrompt(fixed_label, moving_label, weight=1.0)
    # the greedy diffeomorphic model's smoothing carries the boundary force to the whole structure
    solver = MultiScaleSolver(iterations=(50, 50, 50), transform="diffeomorphic", optimizer="adam", convergence_eps=0)
    result = solver(flat, flat, prompts=[prompt])
    warped = warp_moving(moving_label, result.ddf, label=True)

    def dice(a, b):
        return float(2 * (a * b).sum() / (a.sum() + b.sum()))

    assert dice(moving_label, fixed_label) < 0.6
    assert dice(warped, fixed_label) > 0.9


def test_solver_argument_errors():
    with pytest.raises(ValueError, match="transform"):
        MultiScaleSolver(transform="bspline")
    with pytest.raises(ValueError, match="optimizer"):
        MultiScaleSolver(optimizer="lbfgs")
    with pytest.raises(ValueError, match="backward"):
        MultiScaleSolver(backward="neumann")
    solver = MultiScaleSolver(iterations=(1, 1))
    with pytest.raises(ValueError, match="iterations has 2 entries"):
        solver([torch.zeros(1, 1, 4, 4)], [torch.zeros(1, 1, 4, 4)])
    with pytest.raises(ValueError, match="NaN"):
        solver(
            [torch.zeros(1, 1, 2, 2), torch.full((1, 1, 4, 4), float("nan"))],
            [torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 4, 4)],
        )


def _ift_warnings(**solver):
    import warnings

    fixed = _blob((32, 32), (15, 16)).requires_grad_(True)
    moving = _blob((32, 32), (18, 13))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = MultiScaleSolver(iterations=(20, 20, 20), backward="ift", convergence_eps=0, **solver)(
            _pyramid(fixed), _pyramid(moving)
        )
        result.ddf.pow(2).sum().backward()
    return [str(w.message) for w in caught if "backward='ift'" in str(w.message)]


def test_exact_ift_reports_an_ill_posed_hessian():
    """Unregularised (lambda = 0, the default): the Hessian of C is singular in the flat background
    and CG meets non-positive curvature; the gradient is reported as unreliable. With lambda = 0.1
    the same problem is well-posed and CG converges silently."""
    (message,) = _ift_warnings(ift_damping=0.0)
    assert "ill-posed" in message and "regularization_weight" in message and "jacobian_free" in message
    assert _ift_warnings(regularization_weight=0.1, ift_damping=0.0) == []


def test_exact_ift_refuses_the_greedy_diffeomorphic_model():
    with pytest.raises(ValueError, match="non-symmetric operator"):
        MultiScaleSolver(transform="diffeomorphic", backward="ift")


def test_fixed_to_moving_matrix_of_coronal_slices_on_different_grids():
    # two coronal slices (array axes along world x and z, the plane y = const): the in-plane 2x2 block
    # of their 4x4 affines is singular, so the map comes from the two in-plane columns
    fixed_affine = np.array([[-1.0, 0, 0, 31.5], [0, 0, 1.0, -0.5], [0, -1.0, 0, 35.5], [0, 0, 0, 1]])
    moving_affine = np.array([[-1.0, 0, 0, 31.5], [0, 0, 1.0, -0.5], [0, -2.0, 0, 35.5], [0, 0, 0, 1]])  # 2 mm along z
    matrix = fixed_to_moving_matrix(fixed_affine, moving_affine, (64, 72), (64, 36), dtype=torch.float64)
    fixed_points = torch.tensor([[[0.0, 0.0], [10.0, 7.0], [63.0, 71.0]]], dtype=torch.float64)
    moving_points = transform_points(fixed_points, (64, 72), (64, 36), matrix)
    expected = torch.tensor([[[0.0, 0.0], [10.0, 3.5], [63.0, 35.5]]], dtype=torch.float64)
    assert torch.allclose(moving_points, expected, atol=1e-12)
    with pytest.raises(ValueError, match="does not span a plane"):
        fixed_to_moving_matrix(np.diag([1.0, 0.0, 1.0, 1.0]), moving_affine, (4, 4), (4, 4))


@pytest.mark.parametrize("shape", [(9, 8, 7), (12, 10)])
def test_compositional_gradient_is_the_derivative_of_the_composed_objective(shape):
    """GreedyDiffeomorphic.gradient is d/d delta C(u o (id + delta)) at delta = 0, written as
    (I + Du)^T dC/du. For an affine u the interpolated u is affine too, so autograd through the
    composition (trilinear resampling of u) gives the same derivative inside the grid; the border
    slices differ only because resampling clamps there (zero slope outwards)."""
    from monai_ext.solvers.transform_models import GreedyDiffeomorphic
    from monai_ext.spatial import compose_ddf

    generator = torch.Generator().manual_seed(len(shape))
    ndim = len(shape)
    grid = _grid(shape).float()
    linear = 0.1 * torch.randn(ndim, ndim, generator=generator)
    u = (
        torch.einsum("ij,j...->i...", linear, grid)
        + torch.randn(ndim, 1, generator=generator).reshape(ndim, *([1] * ndim))
    )[None]
    target = torch.randn(1, ndim, *shape, generator=generator)
    weights = torch.rand(1, ndim, *shape, generator=generator)

    def objective(ddf):
        return (weights * (ddf - target) ** 2).sum() + (ddf[:, 0] * ddf[:, -1]).sum()

    loss, grad = GreedyDiffeomorphic().gradient(u, shape, objective)
    delta = torch.zeros_like(u, requires_grad=True)
    composed_loss = objective(compose_ddf(u, delta))
    (expected,) = torch.autograd.grad(composed_loss, delta)
    inner = (slice(None), slice(None)) + (slice(1, -1),) * ndim
    torch.testing.assert_close(loss, composed_loss.detach())
    torch.testing.assert_close(grad[inner], expected[inner], rtol=1e-4, atol=1e-4)
    # by hand, at every voxel (borders included: central / one-sided differences of an affine u are A):
    # g = dC/du, then g + A^T g
    g = 2 * weights * (u - target)
    g[:, 0] += u[:, -1]
    g[:, -1] += u[:, 0]
    torch.testing.assert_close(grad, g + torch.einsum("ij,bi...->bj...", linear, g), rtol=1e-4, atol=1e-4)


def test_compositional_gradient_on_a_level_one_voxel_thick():
    from monai_ext.solvers.transform_models import GreedyDiffeomorphic

    u = torch.zeros(1, 3, 4, 1, 5)
    u[:, 0] = torch.arange(4.0).reshape(4, 1, 1)  # d u_0 / d x_0 = 1
    _, grad = GreedyDiffeomorphic().gradient(u, (4, 1, 5), lambda ddf: ddf.sum())
    expected = torch.ones_like(u)
    expected[:, 0] = 2.0  # g_0 + (d u_0 / d x_0) g_0; nothing along the one-voxel axis
    torch.testing.assert_close(grad, expected)
