"""ICON tallUNet2 atom and the Down / TwoStep composition (GradICON §4.1, Eq. 12) against icon_registration."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_ext.errors import CheckpointError
from monai_ext.networks import (
    DownsampleRegistration,
    TallUNet2,
    TwoStepRegistration,
    gradicon_stage1,
    gradicon_stage2,
    load_icon_state_dict,
    load_unigradicon_weights,
    unigradicon_network,
)
from monai_ext.spatial import (
    compose_ddf,
    evaluate_displacement_chain,
    icon_map_to_ddf,
    identity_grid,
    resize_ddf,
    warp_image,
)

# a five-level tallUNet2 needs >= 17 voxels per axis; Stage1's quarter-resolution atom needs >= 65
ATOM_SHAPES = {2: (32, 27), 3: (17, 20, 18)}
STAGE_SHAPE_2D = (66, 70)
# three-level atoms (same UNet2 class, fewer channels) keep the 3-D composition tests fast
SMALL_DOWN, SMALL_UP = (8, 8, 16), (8, 8, 8)
SMALL_STAGE_SHAPE_3D = (20, 23, 21)


def small_atom(spatial_dims: int) -> TallUNet2:
    return TallUNet2(spatial_dims, 2, SMALL_DOWN, SMALL_UP)


def randomise_(module: torch.nn.Module, scale: float, seed: int = 0) -> torch.nn.Module:
    """Random non-zero parameters and BatchNorm statistics (ICON's last layer starts at zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5, generator=generator)
            elif tensor.is_floating_point():
                tensor.normal_(0.0, scale, generator=generator)
    return module


def pair(shape, batch=2, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((batch, 1) + tuple(shape), generator=generator), torch.rand(
        (batch, 1) + tuple(shape), generator=generator
    )


# --- reference networks built with icon_registration -----------------------------------------


def icon_stage(icon, dims, unet, last_step=True):
    """ICON's network of GradICON Eq. (12) (as ``unigradicon.make_network`` builds its ``regis_net``)."""
    inner = icon.FunctionFromVectorField(unet())
    for _ in range(2):
        inner = icon.TwoStepRegistration(
            icon.DownsampleRegistration(inner, dimension=dims), icon.FunctionFromVectorField(unet())
        )
    if last_step:
        inner = icon.TwoStepRegistration(inner, icon.FunctionFromVectorField(unet()))
    return inner


def icon_ddf(icon_net, moving, fixed):
    """ICON's Phi^AB on the fixed grid, as our DDF (icon_map_to_ddf)."""
    icon_net.assign_identity_map([moving.shape[0], 1, *moving.shape[2:]])
    return icon_map_to_ddf(icon_net(moving, fixed)(icon_net.identity_map))


# --- the atom --------------------------------------------------------------------------------


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("train", [False, True])
def test_tallunet2_loads_icon_state_dict_and_matches_output(dims, train):
    icon_registration = pytest.importorskip("icon_registration")
    from icon_registration import networks

    torch.manual_seed(0)
    reference = icon_registration.FunctionFromVectorField(randomise_(networks.tallUNet2(dimension=dims), 0.05))
    ours = TallUNet2(dims)
    ours.load_state_dict(reference.net.state_dict())  # same keys and shapes: strict load
    reference.train(train)
    ours.train(train)
    moving, fixed = pair(ATOM_SHAPES[dims])
    with torch.no_grad():
        expected = icon_ddf(reference, moving, fixed)
        ddf = ours(torch.cat([moving, fixed], 1))
    assert ddf.shape == (2, dims, *ATOM_SHAPES[dims])
    assert expected.abs().max() > 0.5  # a real deformation of about a voxel, not the identity
    torch.testing.assert_close(ddf, expected, atol=1e-4, rtol=0)


def test_tallunet2_structure_as_icon():
    net = TallUNet2(3)
    assert [c.out_channels for c in net.downConvs] == [16, 32, 64, 256, 512]
    assert [c.in_channels for c in net.upConvs] == [48, 96, 192, 512, 512]
    assert [c.out_channels for c in net.upConvs] == [16, 32, 64, 128, 256]
    assert net.lastConv.in_channels == 18 and net.lastConv.out_channels == 3
    assert net.min_input_size() == 17


@pytest.mark.parametrize("dims", [2, 3])
def test_tallunet2_is_identity_at_initialisation(dims):
    torch.manual_seed(0)
    net = TallUNet2(dims)
    assert torch.count_nonzero(net.lastConv.weight) == 0 and torch.count_nonzero(net.lastConv.bias) == 0
    ddf = net(torch.rand(1, 2, *ATOM_SHAPES[dims]))
    assert ddf.shape == (1, dims, *ATOM_SHAPES[dims])
    assert torch.count_nonzero(ddf) == 0


def test_tallunet2_rejects_too_small_input():
    with pytest.raises(ValueError, match=">= 17"):
        TallUNet2(2)(torch.rand(1, 2, 16, 32))
    with pytest.raises(ValueError, match="2 spatial dims"):
        TallUNet2(2)(torch.rand(1, 2, 32, 32, 32))


# --- Down and TwoStep ------------------------------------------------------------------------


@pytest.mark.parametrize("dims", [2, 3])
def test_two_step_equals_manual_composition(dims):
    torch.manual_seed(0)
    shape = {2: (24, 21), 3: (10, 12, 9)}[dims]
    first, second = randomise_(small_atom(dims), 0.1, seed=2).eval(), randomise_(small_atom(dims), 0.1, seed=3).eval()
    moving, fixed = pair(shape)
    with torch.no_grad():
        u_phi = first(torch.cat([moving, fixed], 1))
        u_psi = second(torch.cat([warp_image(moving, u_phi), fixed], 1))
        expected = compose_ddf(u_phi, u_psi)
        ddf = TwoStepRegistration(first, second)(torch.cat([moving, fixed], 1))
    assert u_phi.abs().max() > 0.5 and u_psi.abs().max() > 0.5
    torch.testing.assert_close(ddf, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("dims,shape", [(2, (37, 41)), (3, (11, 10, 9))])
def test_down_runs_on_pooled_images_and_resizes_the_field(dims, shape):
    atom = randomise_(small_atom(dims), 0.1).eval()
    moving, fixed = pair(shape)
    x = torch.cat([moving, fixed], 1)
    with torch.no_grad():
        ddf = DownsampleRegistration(atom)(x)
        pooled = F.avg_pool2d(x, 2, ceil_mode=True) if dims == 2 else F.avg_pool3d(x, 2, ceil_mode=True)
        coarse = atom(pooled)
    assert coarse.shape[2:] == tuple((s + 1) // 2 for s in shape)  # odd sizes round up, as ICON
    assert ddf.shape == (2, dims, *shape)
    torch.testing.assert_close(ddf, resize_ddf(coarse, shape), atol=1e-4, rtol=0)


@pytest.mark.parametrize("dims", [2, 3])
def test_displacement_chain_of_constant_fields(dims):
    # a constant field c on a grid of M voxels is c * (N - 1) / (M - 1) voxels of an N grid (same field of view)
    fine, coarse = {2: ((9, 7), (5, 4)), 3: ((9, 7, 5), (5, 4, 3))}[dims]
    ones = (1,) * dims
    a = torch.tensor([0.5, -1.0, 0.25][:dims]).reshape((1, dims) + ones)
    b = torch.tensor([2.0, 0.75, -0.5][:dims]).reshape((1, dims) + ones)
    ratio = torch.tensor([(n - 1) / (m - 1) for n, m in zip(fine, coarse)]).reshape((1, dims) + ones)
    chain = [a.expand((2, dims) + coarse), b.expand((2, dims) + fine)]
    ddf = evaluate_displacement_chain(chain, list(fine))
    torch.testing.assert_close(ddf, (a * ratio + b).expand((2, dims) + fine), atol=1e-5, rtol=0)


def test_displacement_chain_at_points_equals_grid_evaluation():
    generator = torch.Generator().manual_seed(0)
    chain = [torch.randn(1, 2, 6, 5, generator=generator), torch.randn(1, 2, 11, 9, generator=generator)]
    on_grid = evaluate_displacement_chain(chain, [11, 9])
    at_points = evaluate_displacement_chain(chain, [11, 9], points=identity_grid((11, 9)).unsqueeze(0))
    torch.testing.assert_close(at_points, on_grid, atol=1e-5, rtol=0)


# --- GradICON Stage1 / Stage2 and uniGradICON against icon_registration -----------------------


def test_stage2_2d_matches_icon():
    icon_registration = pytest.importorskip("icon_registration")
    from icon_registration import networks

    torch.manual_seed(0)
    reference = randomise_(icon_stage(icon_registration, 2, lambda: networks.tallUNet2(dimension=2)), 0.03)
    ours = gradicon_stage2(gradicon_stage1(2))
    ours.load_state_dict(reference.state_dict())
    reference.eval()
    ours.eval()
    moving, fixed = pair(STAGE_SHAPE_2D, batch=1)
    with torch.no_grad():
        expected = icon_ddf(reference, moving, fixed)
        ddf = ours(torch.cat([moving, fixed], 1))
    assert expected.abs().max() > 1.0
    torch.testing.assert_close(ddf, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("train", [False, True])
def test_stage2_3d_matches_icon_forward_and_gradient(train):
    icon_registration = pytest.importorskip("icon_registration")
    from icon_registration import networks

    torch.manual_seed(0)
    small_unet2 = lambda: networks.UNet2(3, [[2, *SMALL_DOWN], list(SMALL_UP)], 3)  # noqa: E731
    reference = randomise_(icon_stage(icon_registration, 3, small_unet2), 0.05)
    stage1 = TwoStepRegistration(
        DownsampleRegistration(TwoStepRegistration(DownsampleRegistration(small_atom(3)), small_atom(3))), small_atom(3)
    )
    ours = TwoStepRegistration(stage1, small_atom(3))
    ours.load_state_dict(reference.state_dict())
    reference.train(train)
    ours.train(train)  # train: BatchNorm uses batch statistics, as during training and instance optimisation
    moving, fixed = pair(SMALL_STAGE_SHAPE_3D)
    weights = torch.randn(2, 3, *SMALL_STAGE_SHAPE_3D, generator=torch.Generator().manual_seed(5))
    expected = icon_ddf(reference, moving, fixed)
    ddf = ours(torch.cat([moving, fixed], 1))
    assert expected.abs().max() > 1.0
    torch.testing.assert_close(ddf, expected, atol=1e-4, rtol=0)
    (expected * weights).sum().backward()
    (ddf * weights).sum().backward()
    reference_grads = dict(reference.named_parameters())
    for name, parameter in ours.named_parameters():
        torch.testing.assert_close(parameter.grad, reference_grads[name].grad, atol=1e-3, rtol=1e-3)


def test_stage2_is_identity_at_initialisation():
    torch.manual_seed(0)
    stage2 = gradicon_stage2(gradicon_stage1(2)).eval()
    with torch.no_grad():
        ddf = stage2(torch.rand(1, 2, 65, 67))
    assert ddf.shape == (1, 2, 65, 67)
    assert ddf.abs().max() == 0


def test_composition_is_scriptable():
    # torch.jit.script (MONAI ckpt_export) compiles the same classes the builders use
    net = TwoStepRegistration(TwoStepRegistration(DownsampleRegistration(small_atom(3)), small_atom(3)), small_atom(3))
    randomise_(net, 0.05).eval()
    x = torch.cat(pair(SMALL_STAGE_SHAPE_3D, batch=1), 1)
    scripted = torch.jit.script(net)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x), atol=1e-5, rtol=0)


def test_stage2_shares_stage1_and_its_keys():
    stage1 = gradicon_stage1(2)
    stage2 = gradicon_stage2(stage1)
    assert stage2.netPhi is stage1
    assert set(stage2.state_dict()) == {f"netPhi.{k}" for k in stage1.state_dict()} | {
        f"netPsi.net.{k}" for k in TallUNet2(2).state_dict()
    }


def test_input_shape_is_enforced():
    net = gradicon_stage1(2, input_shape=STAGE_SHAPE_2D)
    with pytest.raises(ValueError, match="expects spatial size"):
        net(torch.rand(1, 2, 65, 70))
    with torch.device("meta"):
        assert unigradicon_network().input_shape == [175, 175, 175]


def test_unigradicon_weight_file_loads(tmp_path):
    icon_registration = pytest.importorskip("icon_registration")
    from icon_registration import losses, networks

    # 70.7 M parameters: built without initialisation (meta device), then filled with random values
    with torch.device("meta"):
        regis_net = icon_stage(icon_registration, 3, lambda: networks.tallUNet2(dimension=3))
        model = unigradicon_network()
    regis_net = randomise_(regis_net.to_empty(device="cpu"), 0.01)
    model = model.to_empty(device="cpu")
    path = tmp_path / "Step_2_final.trch"
    torch.save(regis_net.state_dict(), path)  # what uniGradICON's training script writes
    assert load_unigradicon_weights(model, path) is model
    loaded = model.state_dict()
    assert set(loaded) == set(regis_net.state_dict())
    for name, tensor in regis_net.state_dict().items():
        assert torch.equal(loaded[name], tensor), name

    # the whole loss module's state dict (keys prefixed "regis_net.") loads too
    wrapper = losses.GradientICONSparse(regis_net, losses.LNCC(sigma=5), lmbda=1.5)
    assert next(iter(wrapper.state_dict())).startswith("regis_net.")
    load_icon_state_dict(model, wrapper.state_dict())


def test_unigradicon_package_builds_the_same_keys():
    unigradicon = pytest.importorskip("unigradicon")  # optional: needs itk and icon_registration

    reference = unigradicon.make_network([1, 1, 65, 65, 65], include_last_step=True).regis_net.state_dict()
    with torch.device("meta"):
        ours = unigradicon_network().state_dict()
    assert list(ours) == list(reference)
    assert all(ours[k].shape == reference[k].shape for k in reference)


def test_weight_loading_errors(tmp_path):
    with pytest.raises(CheckpointError, match="missing.trch does not exist"):
        load_unigradicon_weights(gradicon_stage1(2), tmp_path / "missing.trch")
    bad = tmp_path / "stage1.trch"
    torch.save(gradicon_stage1(2).state_dict(), bad)
    with pytest.raises(ValueError, match="stage1.trch.*missing keys"):
        load_unigradicon_weights(gradicon_stage2(gradicon_stage1(2)), bad)
    with pytest.raises(ValueError, match="wrong shape"):
        load_icon_state_dict(gradicon_stage1(2), gradicon_stage1(2, in_channels=4).state_dict())
