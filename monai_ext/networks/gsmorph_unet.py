"""The GSMorph / VoxelMorph registration U-Net (GSMorph §2.2)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv, Pool
from torch import nn

__all__ = ["GSMorphUNet"]


class _DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by BatchNorm and LeakyReLU (GSMorph §2.2)."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, negative_slope: float) -> None:
        act = ("leakyrelu", {"negative_slope": negative_slope})
        super().__init__(
            Convolution(
                spatial_dims, in_channels, out_channels, kernel_size=3, act=act, norm="batch", adn_ordering="NA"
            ),
            Convolution(
                spatial_dims, out_channels, out_channels, kernel_size=3, act=act, norm="batch", adn_ordering="NA"
            ),
        )


class GSMorphUNet(nn.Module):
    """U-Net that maps a ``[moving, fixed]`` pair to a dense displacement field.

    Architecture as GSMorph §2.2 describes it (VoxelMorph-like U-Net): encoder features
    16-32-64-128-256 with max pooling between levels, a decoder that upsamples, concatenates the
    encoder feature of the same level (skip connection) and mirrors the feature counts, every block
    two 3x3 convolutions each followed by BatchNorm and LeakyReLU. Details the paper leaves open
    follow the authors' code: a bias-free 3x3 input convolution to ``features[0]`` channels,
    bilinear (trilinear in 3-D) upsampling, LeakyReLU slope 0.01, Kaiming-normal (fan-out)
    initialisation, and a 3x3 flow head initialised with N(0, 1e-5) weights and zero bias so the
    initial field is (almost) the identity. With the default features the 2-D network has
    1.97 M parameters (Table 2 reports 1.96 M).

    Args:
        spatial_dims: 2 (cine-MRI slices, as in the paper) or 3.
        in_channels: channels of the concatenated input, 2 for ``[moving, fixed]``.
        features: encoder feature counts from the finest to the coarsest level.
        negative_slope: LeakyReLU slope.
        flow_init_std: std of the flow head's initial weights.

    Input:
        ``(B, in_channels, *spatial)``, each spatial size divisible by ``2 ** (len(features) - 1)``.
    Output:
        DDF ``(B, spatial_dims, *spatial)`` in voxels, pull-back convention of ``monai_ext.spatial``.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 2,
        features: Sequence[int] = (16, 32, 64, 128, 256),
        negative_slope: float = 0.01,
        flow_init_std: float = 1e-5,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        features = tuple(int(f) for f in features)
        if len(features) < 2:
            raise ValueError(f"features needs at least two levels, got {features}.")
        self.spatial_dims = spatial_dims
        self.features = features
        conv_type = Conv[Conv.CONV, spatial_dims]

        self.input_conv = conv_type(in_channels, features[0], kernel_size=3, padding=1, bias=False)
        encoder = [_DoubleConv(spatial_dims, features[0], features[0], negative_slope)]
        for f_in, f_out in zip(features[:-1], features[1:]):
            encoder.append(_DoubleConv(spatial_dims, f_in, f_out, negative_slope))
        self.encoder = nn.ModuleList(encoder)
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2)
        self.decoder = nn.ModuleList(
            _DoubleConv(spatial_dims, f_deep + f_skip, f_skip, negative_slope)
            for f_deep, f_skip in zip(features[:0:-1], features[-2::-1])
        )
        self.flow = conv_type(features[0], spatial_dims, kernel_size=3, padding=1)
        self._initialise(flow_init_std)

    def _initialise(self, flow_init_std: float) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.flow.weight, mean=0.0, std=flow_init_std)
        nn.init.zeros_(self.flow.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2 ** (len(self.features) - 1)
        bad_size = False
        for size in x.shape[2:]:
            bad_size = bad_size or size % factor != 0
        if x.dim() != self.spatial_dims + 2 or bad_size:
            raise ValueError(
                f"GSMorphUNet expects (B, C, *spatial) with {self.spatial_dims} spatial dims each divisible by "
                f"{factor}, got {list(x.shape)}."
            )
        mode = "bilinear" if self.spatial_dims == 2 else "trilinear"
        x = self.input_conv(x)
        skips: list[torch.Tensor] = []
        for level, block in enumerate(self.encoder):
            if level > 0:
                x = self.pool(x)
            x = block(x)
            skips.append(x)
        for level, block in enumerate(self.decoder):
            x = F.interpolate(x, scale_factor=2.0, mode=mode, align_corners=False)
            x = block(torch.cat([skips[len(skips) - 2 - level], x], dim=1))
        return self.flow(x)
