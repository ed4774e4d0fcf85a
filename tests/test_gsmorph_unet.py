import pytest
import torch

from monai_ext.networks import GSMorphUNet


def test_parameter_count_matches_paper():
    # GSMorph Table 2: 1.96 M parameters for the 2-D VoxelMorph / GSMorph U-Net.
    n_params = sum(p.numel() for p in GSMorphUNet().parameters())
    assert abs(n_params - 1.96e6) / 1.96e6 < 0.01


def test_block_structure_two_conv_bn_leakyrelu():
    net = GSMorphUNet()
    convs = [m for m in net.encoder[1].modules() if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in net.encoder[1].modules() if isinstance(m, torch.nn.BatchNorm2d)]
    acts = [m for m in net.encoder[1].modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert [c.kernel_size for c in convs] == [(3, 3), (3, 3)]
    assert len(norms) == 2 and len(acts) == 2
    assert [b[1].conv.out_channels for b in net.encoder] == [16, 32, 64, 128, 256]
    assert [b[1].conv.out_channels for b in net.decoder] == [128, 64, 32, 16]


@pytest.mark.parametrize("spatial_dims,size", [(2, (32, 48)), (3, (16, 16, 32))])
def test_output_is_small_ddf_at_initialisation(spatial_dims, size):
    torch.manual_seed(0)
    net = GSMorphUNet(spatial_dims=spatial_dims, features=(4, 8, 16)).eval()
    # flow head N(0, 1e-5), zero bias (the authors' initialisation)
    assert net.flow.weight.std().item() == pytest.approx(1e-5, rel=0.2)
    assert torch.count_nonzero(net.flow.bias) == 0
    ddf = net(torch.rand(2, 2, *size))
    assert ddf.shape == (2, spatial_dims, *size)
    # so the initial field is the identity up to ~1e-4 voxel (default init: ~0.5 voxel), not exactly zero
    assert 0.0 < ddf.abs().max() < 1e-3


def test_rejects_size_not_divisible():
    with pytest.raises(ValueError, match="divisible by 16"):
        GSMorphUNet()(torch.rand(1, 2, 120, 128))


def test_torchscript_matches_eager():
    net = GSMorphUNet(features=(4, 8, 16, 32, 64)).eval()
    x = torch.rand(1, 2, 32, 32)
    assert torch.allclose(torch.jit.script(net)(x), net(x), atol=1e-6)
