"""DIO feature extractors: one image -> multi-scale dense features (DIO §3.1, §4.2, Fig. 9).

DIO's feature network ``g_theta`` processes the fixed and the moving image *independently* (§3.1)
and returns features ``[F^0, ..., F^N]`` with ``F^k`` of size ``H / 2^k x W / 2^k x D / 2^k x C_k``,
which the multi-scale optimisation layer consumes from the coarsest level to the finest (§3.3).
§4.2 ablates four architectures, all provided here:

- ``UNet``: a 3-D U-Net; single convolutional layers attached to the decoder features of the
  requested scales give the multi-scale features (Fig. 9a);
- ``LKU``: the same topology with large-kernel blocks (LKU-Net, Jia et al. 2022);
- ``UNet-E`` / ``LKU-E``: "Encoder-Only" versions: no decoder, one separate encoder per scale
  (Fig. 9b).

``IntensityPyramid`` is the parameter-free baseline: the classical scale space of the intensity
image itself (optimisation on intensities alone, DIO Algorithm 1 / Fig. 6).

Output convention (shared with ``monai_ext.solvers``): a list ordered coarse -> fine, one tensor
``(B, C_i, *ceil(N / s_i))`` per downsampling factor ``s_i`` of ``scales``, for any input size
``N >= 1`` per axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Union

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from monai.networks.layers.convutils import gaussian_1d
from monai.networks.layers.factories import Act, Conv
from torch import nn

from monai_ext.options import check_option
from monai_ext.spatial.filtering import replicate_separable_filtering
from monai_ext.spatial.sampling import grid_sample_at

__all__ = [
    "LargeKernelBlock",
    "DIOFeatureUNet",
    "IntensityPyramid",
    "dio_unet",
    "dio_lku",
    "dio_unet_encoder",
    "dio_lku_encoder",
    "build_feature_network",
    "FEATURE_NETWORKS",
]

_BLOCKS = ("conv", "large_kernel")
_LayerArg = Union[str, tuple, None]


def _check_scales(scales: Sequence[int], power_of_two: bool) -> tuple[int, ...]:
    """Validate downsampling factors: positive integers, strictly decreasing (coarse -> fine)."""
    scales = tuple(scales)
    if len(scales) == 0:
        raise ValueError("scales must hold at least one downsampling factor, got an empty sequence.")
    for s in scales:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"scales must be positive integers (downsampling factors), got {scales}.")
        if power_of_two and s & (s - 1):
            raise ValueError(f"scales must be powers of two (1, 2, 4, ...), got {s} in {scales}.")
    if any(a <= b for a, b in zip(scales[:-1], scales[1:])):
        raise ValueError(f"scales must be strictly decreasing (coarse -> fine), got {scales}.")
    return scales


def _check_image(image: torch.Tensor, spatial_dims: int, in_channels: int | None, name: str) -> None:
    if image.ndim != spatial_dims + 2:
        raise ValueError(
            f"{name} expects an image (B, C, *spatial) with {spatial_dims} spatial dims, "
            f"got shape {tuple(image.shape)}."
        )
    if in_channels is not None and image.shape[1] != in_channels:
        raise ValueError(f"{name} expects {in_channels} input channel(s), got {image.shape[1]}.")
    if min(image.shape[2:]) < 1:
        raise ValueError(f"{name} got an empty spatial size {tuple(image.shape[2:])}.")


def _level_shape(spatial: Sequence[int], scale: int) -> list[int]:
    """Spatial size of the level with downsampling factor ``scale``: ``ceil(N / scale)`` per axis."""
    return [-(-int(n) // scale) for n in spatial]


def _pad_to_multiple(image: torch.Tensor, factor: int, coarsest: int = 1) -> torch.Tensor:
    """Replicate-pad the END of every spatial axis to a multiple of ``factor`` (at least ``2 * factor``).

    The start corner stays where it is, so cropping an output level to ``ceil(N / s)`` from the
    start recovers the voxels computed from the unpadded image region. The padded size ``P`` also
    satisfies ``P - coarsest >= N - 1``, so the strided level of factor ``coarsest`` has a voxel at
    or beyond the image's last voxel and ``_corner_aligned`` interpolates instead of clamping.
    The minimum of two voxels per axis at the coarsest level keeps instance normalisation defined
    for tiny inputs. Replicate (not zero) padding avoids an artificial intensity edge at the
    padded border.
    """
    if factor == 1 and min(image.shape[2:]) >= 2:
        return image
    pad: list[int] = []
    for n in reversed(image.shape[2:]):
        needed = n if coarsest == 1 else max(n, n - 1 + coarsest)
        target = max(-(-needed // factor), 2) * factor
        pad += [0, target - n]
    if not any(pad):
        return image
    return F.pad(image, pad, mode="replicate")


def _crop(feature: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Keep the first ``shape[d]`` voxels of every spatial axis (start-corner aligned)."""
    return feature[(slice(None), slice(None)) + tuple(slice(0, n) for n in shape)]


def _corner_aligned(feature: torch.Tensor, spatial: Sequence[int], scale: int) -> torch.Tensor:
    """The level-``scale`` feature on the solver's corner-aligned grid of ``ceil(N / s)`` voxels.

    A stride-``s`` network puts level voxel ``j`` on input voxel ``j * s``; the solver takes level
    voxel ``j`` (of ``M = ceil(N / s)``) at input voxel ``j * (N - 1) / (M - 1)`` (levels share the
    image's field of view, ``align_corners=True``). The two agree when ``s`` divides ``N - 1``;
    otherwise the feature is read at the solver's positions by linear interpolation.
    """
    shape = _level_shape(spatial, scale)
    if scale == 1 or all((n - 1) % scale == 0 for n in spatial):
        return _crop(feature, shape)
    axes = []
    for n, m, size in zip(spatial, shape, feature.shape[2:]):
        positions = torch.arange(m, dtype=feature.dtype, device=feature.device)
        positions = positions * ((n - 1) / (m - 1) / scale) if m > 1 else positions
        axes.append(2.0 * positions / max(size - 1, 1) - 1.0)
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).flip(-1)
    return grid_sample_at(feature, grid.unsqueeze(0))


class LargeKernelBlock(nn.Module):
    """Large-kernel block of LKU-Net (Jia et al. 2022), as used by DIO's LKU / LKU-E (§4.2).

    ``y = act(conv_k(x) + conv_3(x) + conv_1(x) + x)``: three parallel "same"-padded convolutions
    with kernel sizes ``k``, 3 and 1 (stride 1, with bias), plus the identity when the channel
    counts match. Written here because MONAI has no such block.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels; the identity branch is used only if it equals ``in_channels``.
        kernel_size: the large kernel size ``k`` (odd, >= 3; LKU-Net uses 5).
        act: activation after the sum, in MONAI's layer-factory format.

    Shapes: ``(B, in_channels, *spatial) -> (B, out_channels, *spatial)``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 5,
        act: _LayerArg = ("leakyrelu", {"negative_slope": 0.2}),
    ) -> None:
        super().__init__()
        _check_kernel_size(kernel_size)
        conv = Conv[Conv.CONV, spatial_dims]
        self.large = conv(in_channels, out_channels, kernel_size=kernel_size, padding=kernel_size // 2)
        self.small = conv(in_channels, out_channels, kernel_size=3, padding=1)
        self.point = conv(in_channels, out_channels, kernel_size=1, padding=0)
        self.use_identity = in_channels == out_channels
        self.act = _make_act(act)

    def branch_sum(self, x: torch.Tensor) -> torch.Tensor:
        """The sum of the branches, before the activation."""
        out = self.large(x) + self.small(x) + self.point(x)
        return out + x if self.use_identity else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.branch_sum(x))


def _check_kernel_size(kernel_size: int) -> None:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"large_kernel_size must be an odd integer >= 3, got {kernel_size!r}.")


def _make_act(act: _LayerArg) -> nn.Module:
    if act is None:
        return nn.Identity()
    if isinstance(act, str):
        return Act[act]()
    name, kwargs = act
    return Act[name](**kwargs)


class DIOFeatureUNet(nn.Module):
    """DIO feature network: image ``(B, C_in, *spatial)`` -> multi-scale features, coarse -> fine.

    Four variants (DIO §4.2, Fig. 9), chosen by ``block`` and ``encoder_only``:

    - ``block="conv"``, U-Net (``UNet``): encoder level 0 = 3x3 conv (``in_channels -> channels[0]``)
      + conv block at full resolution; encoder level ``i > 0`` = stride-2 3x3 conv
      (``channels[i-1] -> channels[i]``) + conv block; ``len(channels)`` levels, i.e.
      ``len(channels) - 1`` downsamplings. Decoder level ``i`` = stride-2 3x3 transposed conv of the
      coarser decoder feature to ``channels[i]``, concatenation with the encoder skip, 3x3 fusing
      conv (``2 * channels[i] -> channels[i]``) + block. A conv block is one 3x3 convolution with
      norm and activation, so every level holds two such convolutions.
    - ``block="large_kernel"`` (``LKU``): the same topology, every block a ``LargeKernelBlock``
      (sum of ``k``, 3, 1 convolutions and the identity, then the activation).
    - Multi-scale heads (§4.2): "single convolutional layers" attached to the decoder feature at
      each requested scale (3x3 conv, no norm or activation, ``feature_channels[i]`` outputs). The
      coarsest possible scale ``2 ** (len(channels) - 1)`` reads the bottleneck. The decoder is
      built down to the finest requested scale only.
    - ``encoder_only=True`` (``UNet-E`` / ``LKU-E``, Fig. 9b): no decoder; scale ``s = 2^k`` gets its
      own encoder (own weights): level 0 and ``k`` downsampling levels as above, then
      ``encoder_extra_blocks`` more blocks at the final resolution (scale 1 thus stays at full
      resolution with a few blocks), then its single conv head.

    Inputs of any size are replicate-padded at the end of each axis to a multiple of the total
    downsampling (``2 ** (len(channels) - 1)``, or ``s`` for the scale-``s`` encoder), and every
    output is brought back to ``ceil(N / s)`` voxels at the solver's corner-aligned positions
    (a crop when ``s`` divides ``N - 1``, else linear interpolation of the strided feature).

    The defaults follow the official DIO configuration for OASIS: 16 output channels per level and
    encoder feature maps (16, 16, 32, 32, 64) for the 3-D UNet. The remaining choices (blocks of
    one conv each, transposed-conv upsampling, instance normalisation, LeakyReLU 0.2, replicate
    padding, extra blocks of the encoder-only variants) are ours; the paper does not state them.
    Instance normalisation keeps the fixed and the moving image independent even when batched
    together (§3.1); it makes each feature depend on the statistics of the whole image, so pass
    ``norm=None`` where strict locality matters.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels ``C_in``.
        feature_channels: output channels per level: one int for all levels or one per scale.
        scales: downsampling factors, powers of two, strictly decreasing (coarse -> fine), each at
            most ``2 ** (len(channels) - 1)``.
        channels: encoder feature maps per level (finest first); at least two levels.
        block: ``"conv"`` (UNet) or ``"large_kernel"`` (LKU).
        large_kernel_size: ``k`` of the large-kernel blocks (odd, >= 3).
        encoder_only: build the Encoder-Only variant (separate encoder per scale).
        encoder_extra_blocks: blocks appended to each separate encoder at its final resolution.
        norm: normalisation of the (strided / transposed / fusing / conv-block) convolutions, MONAI
            factory format; ``None`` for none (the large-kernel blocks have no normalisation).
        act: activation, MONAI factory format.

    Forward: ``image (B, in_channels, *spatial) -> list`` of ``(B, feature_channels[i], *ceil(N / scales[i]))``.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        feature_channels: int | Sequence[int] = 16,
        scales: Sequence[int] = (4, 2, 1),
        channels: Sequence[int] = (16, 16, 32, 32, 64),
        block: str = "conv",
        large_kernel_size: int = 5,
        encoder_only: bool = False,
        encoder_extra_blocks: int = 2,
        norm: _LayerArg = "instance",
        act: _LayerArg = ("leakyrelu", {"negative_slope": 0.2}),
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}.")
        check_option("block", block, _BLOCKS)
        channels = tuple(channels)
        if len(channels) < 2 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"channels needs at least two positive integers (encoder levels), got {channels}.")
        scales = _check_scales(scales, power_of_two=True)
        max_scale = 2 ** (len(channels) - 1)
        if scales[0] > max_scale:
            raise ValueError(
                f"scale {scales[0]} exceeds the total downsampling 2**(len(channels)-1) = {max_scale} "
                f"of channels={channels}; add encoder levels or drop the scale."
            )
        if isinstance(feature_channels, int) and not isinstance(feature_channels, bool):
            feature_channels = (feature_channels,) * len(scales)
        feature_channels = tuple(feature_channels)
        if len(feature_channels) != len(scales):
            raise ValueError(
                f"feature_channels must be an int or one value per scale: got {len(feature_channels)} "
                f"values {feature_channels} for {len(scales)} scales {scales}."
            )
        if any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in feature_channels):
            raise ValueError(f"feature_channels must be positive integers, got {feature_channels}.")
        if block == "large_kernel":
            _check_kernel_size(large_kernel_size)
        extra = encoder_extra_blocks
        if isinstance(extra, bool) or not isinstance(extra, int) or extra < 0:
            raise ValueError(f"encoder_extra_blocks must be a non-negative integer, got {encoder_extra_blocks!r}.")

        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.scales = scales
        self.feature_channels = feature_channels
        self.channels = channels
        self.block = block
        self.encoder_only = bool(encoder_only)
        self.depth = len(channels) - 1
        self._norm = norm
        self._act = act
        self._large_kernel_size = large_kernel_size
        conv = Conv[Conv.CONV, spatial_dims]
        levels = [int(math.log2(s)) for s in scales]

        if self.encoder_only:
            # Fig. 9b: one independent encoder per scale
            encoders = []
            for k in levels:
                layers = self._encoder_levels(k)
                layers += [self._block(channels[k]) for _ in range(encoder_extra_blocks)]
                encoders.append(nn.Sequential(*layers))
            self.encoders = nn.ModuleList(encoders)
            head_in = [channels[k] for k in levels]
        else:
            # Fig. 9a: shared encoder, decoder down to the finest requested level
            self.encoder = nn.ModuleList(self._encoder_levels(self.depth))
            self.finest_level = levels[-1]
            self.upsample = nn.ModuleList()
            self.decoder = nn.ModuleList()
            for i in range(self.depth - 1, self.finest_level - 1, -1):  # coarse -> fine
                self.upsample.append(self._conv(channels[i + 1], channels[i], strides=2, transposed=True))
                self.decoder.append(nn.Sequential(self._conv(2 * channels[i], channels[i]), self._block(channels[i])))
            head_in = [channels[k] for k in levels]
        self.heads = nn.ModuleList(
            conv(c_in, c_out, kernel_size=3, padding=1) for c_in, c_out in zip(head_in, feature_channels)
        )

    def _conv(self, c_in: int, c_out: int, strides: int = 1, transposed: bool = False) -> Convolution:
        """3x3 convolution (+ norm) + activation; bias only without normalisation (it would cancel)."""
        return Convolution(
            self.spatial_dims,
            c_in,
            c_out,
            strides=strides,
            kernel_size=3,
            act=self._act,
            norm=self._norm,
            adn_ordering="NA",
            bias=self._norm is None,
            is_transposed=transposed,
        )

    def _block(self, c: int) -> nn.Module:
        if self.block == "large_kernel":
            return LargeKernelBlock(self.spatial_dims, c, c, self._large_kernel_size, self._act)
        return self._conv(c, c)

    def _encoder_levels(self, depth: int) -> list[nn.Module]:
        """Encoder levels 0..depth: level 0 at full resolution, then stride-2 conv + block each."""
        c = self.channels
        levels: list[nn.Module] = [nn.Sequential(self._conv(self.in_channels, c[0]), self._block(c[0]))]
        for i in range(1, depth + 1):
            levels.append(nn.Sequential(self._conv(c[i - 1], c[i], strides=2), self._block(c[i])))
        return levels

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """``image (B, in_channels, *spatial)`` -> features coarse -> fine, ``(B, C_i, *ceil(N / s_i))``."""
        _check_image(image, self.spatial_dims, self.in_channels, type(self).__name__)
        spatial = image.shape[2:]
        outputs: list[torch.Tensor] = []
        if self.encoder_only:
            for scale, encoder, head in zip(self.scales, self.encoders, self.heads):
                feature = head(encoder(_pad_to_multiple(image, scale, scale)))
                outputs.append(_corner_aligned(feature, spatial, scale))
            return outputs

        x = _pad_to_multiple(image, 2**self.depth, max(self.scales))
        skips: list[torch.Tensor] = []
        for level in self.encoder:
            x = level(x)
            skips.append(x)
        by_level = {self.depth: x}
        for j, (up, dec) in enumerate(zip(self.upsample, self.decoder)):
            i = self.depth - 1 - j
            x = dec(torch.cat([up(x), skips[i]], dim=1))
            by_level[i] = x
        for scale, head in zip(self.scales, self.heads):
            feature = head(by_level[int(math.log2(scale))])
            outputs.append(_corner_aligned(feature, spatial, scale))
        return outputs


class IntensityPyramid(nn.Module):
    """Classical scale space of the image itself, coarse -> fine (DIO Algorithm 1 baseline, Fig. 6).

    Level ``s`` (for ``s > 1``): Gaussian blur with ``sigma = 0.5 * s`` voxels (anti-aliasing, as
    classical multi-scale registration does; replicate padding, so a constant image stays
    constant), then bi/trilinear resampling with ``align_corners=True`` onto ``ceil(N / s)`` voxels
    per axis covering the same field of view (corner-aligned). Level 1 is the image itself. No
    trainable parameters. Blurring uses MONAI's ``gaussian_1d`` kernel with edge replication
    (``replicate_separable_filtering``) rather than ``GaussianFilter``, which pads with zeros and so
    darkens the borders.

    Args:
        scales: positive integer downsampling factors, strictly decreasing (coarse -> fine).
        sigma_per_scale: blur with ``sigma = 0.5 * s`` before resampling; ``False`` resamples only.
        truncated: Gaussian kernel radius in units of sigma.

    Forward: ``image (B, C, *spatial)`` (2-D or 3-D) -> list of ``(B, C, *ceil(N / s_i))``.
    """

    def __init__(self, scales: Sequence[int] = (4, 2, 1), sigma_per_scale: bool = True, truncated: float = 4.0) -> None:
        super().__init__()
        self.scales = _check_scales(scales, power_of_two=False)
        self.sigma_per_scale = bool(sigma_per_scale)
        self.truncated = float(truncated)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        if image.ndim not in (4, 5):
            raise ValueError(
                f"IntensityPyramid expects (B, C, H, W) or (B, C, H, W, D), got shape {tuple(image.shape)}."
            )
        _check_image(image, image.ndim - 2, None, type(self).__name__)
        spatial = image.shape[2:]
        mode = "bilinear" if image.ndim == 4 else "trilinear"
        outputs: list[torch.Tensor] = []
        for scale in self.scales:
            if scale == 1:
                outputs.append(image)
                continue
            x = image
            if self.sigma_per_scale:
                sigma = torch.tensor(0.5 * scale)
                kernel = gaussian_1d(sigma, truncated=self.truncated, normalize=True).to(image)
                x = replicate_separable_filtering(x, [kernel] * (image.ndim - 2))
            outputs.append(F.interpolate(x, size=_level_shape(spatial, scale), mode=mode, align_corners=True))
        return outputs


def _variant(block: str, encoder_only: bool, kwargs: dict[str, Any]) -> DIOFeatureUNet:
    for key in ("block", "encoder_only"):
        if key in kwargs:
            raise ValueError(f"{key!r} is fixed by the factory; use DIOFeatureUNet directly to set it.")
    return DIOFeatureUNet(block=block, encoder_only=encoder_only, **kwargs)


def dio_unet(**kwargs: Any) -> DIOFeatureUNet:
    """DIO ``UNet`` (§4.2): 3-D U-Net, multi-scale heads on the decoder. Keyword args as ``DIOFeatureUNet``."""
    return _variant("conv", False, kwargs)


def dio_lku(**kwargs: Any) -> DIOFeatureUNet:
    """DIO ``LKU`` (§4.2): large-kernel U-Net (LKU-Net blocks), heads on the decoder."""
    return _variant("large_kernel", False, kwargs)


def dio_unet_encoder(**kwargs: Any) -> DIOFeatureUNet:
    """DIO ``UNet-E`` (§4.2, Fig. 9b): a separate conv encoder per scale, no decoder."""
    return _variant("conv", True, kwargs)


def dio_lku_encoder(**kwargs: Any) -> DIOFeatureUNet:
    """DIO ``LKU-E`` (§4.2, Fig. 9b): a separate large-kernel encoder per scale, no decoder."""
    return _variant("large_kernel", True, kwargs)


def _intensity(**kwargs: Any) -> IntensityPyramid:
    return IntensityPyramid(**kwargs)


FEATURE_NETWORKS = {
    "unet": dio_unet,
    "lku": dio_lku,
    "unet_encoder": dio_unet_encoder,
    "lku_encoder": dio_lku_encoder,
    "intensity": _intensity,
}


def build_feature_network(name: str, **kwargs: Any) -> nn.Module:
    """Build a DIO feature network by name: ``unet``, ``lku``, ``unet_encoder``, ``lku_encoder``
    (the four of §4.2) or ``intensity`` (``IntensityPyramid``, the parameter-free baseline).

    ``kwargs`` go to the network; for ``intensity`` only ``scales`` is used (the learned networks'
    ``spatial_dims``, ``in_channels``, ``feature_channels`` and ``channels`` are ignored), so a bundle
    config can switch between them with one argument."""
    if name not in FEATURE_NETWORKS:
        raise ValueError(f"unknown feature network {name!r}; choose one of {sorted(FEATURE_NETWORKS)}.")
    if name == "intensity":
        kwargs = {k: v for k, v in kwargs.items() if k in ("scales", "sigma_per_scale", "truncated")}
    return FEATURE_NETWORKS[name](**kwargs)
