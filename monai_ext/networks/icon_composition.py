"""ICON's composition operators Down{} and TwoStep{} on DDFs, and the GradICON / uniGradICON networks.

GradICON §4.1 builds its multi-resolution, multi-step network from atomic registration networks
with two operators (from ICON):

- ``Down{Phi}[A, B] = Phi[AvgPool(A, 2), AvgPool(B, 2)]``,
- ``TS{Phi, Psi}[A, B] = Phi[A, B] o Psi[A o Phi[A, B], B]``,

and Eq. (12): ``Stage1 = TS{Down{TS{Down{Psi_1}, Psi_2}}, Psi_3}``, ``Stage2 = TS{Stage1, Psi_4}``.
uniGradICON (io_gradient_projection.md §2.2 / §3.2) is Stage2 on a 175^3 grid: atoms at 1/4,
1/2, 1 and 1 of the grid.

The operators here pass tensors, not closures. Each registration step returns its
*displacement chain*: the list of atomic DDFs (each in voxels of the grid it was predicted on),
ordered as they act on coordinates. Evaluating the chain maps a point ``x`` through
``x <- x + interpolate(D_k, x)`` for each field in turn, which is the paper's definition (an atom's
field ``D`` is the function ``x -> x + interpolate(D, x)``, §4.1) and ICON's numerics exactly:
bilinear / trilinear interpolation, border padding, grid corners aligned (``align_corners=True``),
a coarse field evaluated at the fine points directly. ``forward`` returns the chain evaluated on
the input grid, a DDF in the ``monai_ext.spatial`` convention; for a chain of two fields on one
grid this is ``compose_ddf``, for one coarse field it is ``resize_ddf``.

Module and parameter names (``netPhi``, ``netPsi``, ``net``) follow ICON's ``TwoStepRegistration``,
``DownsampleRegistration`` and ``FunctionFromVectorField``, so the state dict of an ICON network of
the same structure (GradICON Stage1 / Stage2, uniGradICON / multiGradICON ``Step_2_final.trch``)
loads with ``load_state_dict`` as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from monai_ext.errors import CheckpointError
from monai_ext.io.checkpoint import read_checkpoint
from monai_ext.spatial import chain_displacement, evaluate_displacement_chain, normalized_identity, sample_at_points

from .icon_unet import TallUNet2

__all__ = [
    "RegistrationStep",
    "DisplacementFieldRegistration",
    "DownsampleRegistration",
    "TwoStepRegistration",
    "gradicon_stage1",
    "gradicon_stage2",
    "unigradicon_network",
    "UNIGRADICON_INPUT_SHAPE",
    "load_icon_state_dict",
    "load_unigradicon_weights",
]

UNIGRADICON_INPUT_SHAPE = (175, 175, 175)


class RegistrationStep(nn.Module):
    """A registration network as a composable step: ``[moving, fixed]`` -> displacement chain -> DDF.

    Subclasses implement ``displacement_chain(x)``; ``forward(x)`` evaluates it on the input grid.

    Args:
        input_shape: optional spatial size the network is meant for (for example 175^3 for
            uniGradICON); ``forward`` then rejects other sizes with a ``ValueError``.

    Input:
        ``(B, 2 * C, *spatial)``: moving image channels first, then fixed image channels.
    Output:
        DDF ``(B, ndim, *spatial)`` in voxels, pull-back convention of ``monai_ext.spatial``.
    """

    # A real type, not the string ``from __future__ import annotations`` would make of a class-body
    # annotation: TorchScript reads it to type the attribute (None or a list).
    __annotations__ = {"input_shape": Optional[List[int]]}

    def __init__(self, input_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        self.input_shape = None if input_shape is None else [int(s) for s in input_shape]

    def displacement_chain(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Atomic DDFs ``(B, ndim, *M_k)`` (voxels of their own grids) in the order they act on coordinates."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (4, 5):
            raise ValueError(f"expected (B, C, *spatial) with 2 or 3 spatial dims, got {list(x.shape)}.")
        spatial = list(x.shape[2:])
        expected = self.input_shape
        if expected is not None and spatial != expected:
            raise ValueError(f"this network expects spatial size {expected}, got input {list(x.shape)}.")
        return evaluate_displacement_chain(self.displacement_chain(x), spatial)


def _as_step(net: nn.Module, name: str) -> RegistrationStep:
    if isinstance(net, RegistrationStep):
        return net
    if isinstance(net, nn.Module):
        return DisplacementFieldRegistration(net)
    raise ValueError(f"{name} must be a torch.nn.Module mapping [moving, fixed] to a DDF, got {type(net).__name__}.")


class DisplacementFieldRegistration(RegistrationStep):
    """Atomic step: a network that returns a DDF, used as the transform ``x -> x + interpolate(D, x)``.

    ICON's ``FunctionFromVectorField`` (GradICON §4.1, last paragraph); the network is stored as
    ``net`` as in ICON, so state-dict keys match.

    Args:
        net: any module mapping ``(B, 2C, *spatial)`` to a DDF ``(B, ndim, *spatial)`` in voxels,
            for example ``TallUNet2``.
        input_shape: see ``RegistrationStep``.
    """

    def __init__(self, net: nn.Module, input_shape: Sequence[int] | None = None) -> None:
        super().__init__(input_shape)
        if not isinstance(net, nn.Module):
            raise ValueError(f"net must be a torch.nn.Module, got {type(net).__name__}.")
        self.net = net

    def displacement_chain(self, x: torch.Tensor) -> List[torch.Tensor]:
        return [self.net(x)]


class DownsampleRegistration(RegistrationStep):
    """``Down{Phi}[A, B] = Phi[AvgPool(A, 2), AvgPool(B, 2)]`` (GradICON §4.1).

    Both images are average-pooled by 2 with ``ceil_mode=True`` (as ICON: an odd size ``N`` becomes
    ``(N + 1) / 2``, the last cell averaging the one remaining voxel); the wrapped step runs on
    them and its fields stay on the coarse grid. ``forward`` evaluates them at the full-resolution
    grid points (same field of view, corners aligned), which for a single atom equals
    ``monai_ext.spatial.resize_ddf`` of the coarse DDF.

    Args:
        net: a ``RegistrationStep`` or a module returning a DDF (wrapped in
            ``DisplacementFieldRegistration``); stored as ``net`` (ICON's name).
        input_shape: see ``RegistrationStep``.
    """

    def __init__(self, net: nn.Module, input_shape: Sequence[int] | None = None) -> None:
        super().__init__(input_shape)
        self.net = _as_step(net, "net")

    def displacement_chain(self, x: torch.Tensor) -> List[torch.Tensor]:
        if x.dim() == 4:
            low = F.avg_pool2d(x, 2, ceil_mode=True)
        else:
            low = F.avg_pool3d(x, 2, ceil_mode=True)
        return self.net.displacement_chain(low)


class TwoStepRegistration(RegistrationStep):
    """``TS{Phi, Psi}[A, B] = Phi[A, B] o Psi[A o Phi[A, B], B]`` (GradICON §4.1).

    ``u_phi = Phi(A, B)``; the moving image is warped with it (bilinear, border); ``Psi`` registers
    the warped moving image to the fixed one; the result maps ``x -> phi(psi(x))``. In DDF terms
    (``monai_ext.spatial``) this is ``compose_ddf(u_phi, u_psi)``, evaluated through the chains so
    that, like ICON, nested and coarse fields are interpolated at the final points rather than
    resampled to the grid first.

    Args:
        net_phi: first step (``RegistrationStep`` or DDF network), stored as ``netPhi`` (ICON's name).
        net_psi: second step, stored as ``netPsi``.
        input_shape: see ``RegistrationStep``.

    Input:
        ``(B, 2 * C, *spatial)`` with the ``C`` moving channels first (``C`` = half the channels).
    """

    def __init__(self, net_phi: nn.Module, net_psi: nn.Module, input_shape: Sequence[int] | None = None) -> None:
        super().__init__(input_shape)
        self.netPhi = _as_step(net_phi, "net_phi")
        self.netPsi = _as_step(net_psi, "net_psi")

    def displacement_chain(self, x: torch.Tensor) -> List[torch.Tensor]:
        channels = x.shape[1]
        if channels % 2 != 0:
            raise ValueError(f"expected [moving, fixed] with an even channel count, got input {list(x.shape)}.")
        moving = x[:, : channels // 2]
        fixed = x[:, channels // 2 :]
        spatial = list(x.shape[2:])
        chain_phi = self.netPhi.displacement_chain(x)
        # moving o phi: phi evaluated (through its chain) on this grid, then the image sampled there
        points = normalized_identity(spatial, x) + chain_displacement(chain_phi, spatial, None)
        warped = sample_at_points(moving, points)
        chain_psi = self.netPsi.displacement_chain(torch.cat([warped, fixed], dim=1))
        # (phi o psi)(x) = phi(psi(x)): psi's fields act on coordinates first
        return chain_psi + chain_phi


def gradicon_stage1(
    spatial_dims: int = 3, in_channels: int = 2, input_shape: Sequence[int] | None = None
) -> TwoStepRegistration:
    """GradICON Stage1 = ``TS{Down{TS{Down{Psi_1}, Psi_2}}, Psi_3}`` (Eq. 12), ``Psi_i`` = ``TallUNet2``.

    Atoms at 1/4, 1/2 and full resolution. Every spatial size must be at least 65 (the 1/4
    resolution atom needs 17 voxels per axis), see ``TallUNet2``.

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of the ``[moving, fixed]`` input (2 for single-channel images).
        input_shape: optional spatial size that ``forward`` enforces.
    """

    def atom() -> TallUNet2:
        return TallUNet2(spatial_dims, in_channels)

    half_resolution = TwoStepRegistration(DownsampleRegistration(atom()), atom())
    return TwoStepRegistration(DownsampleRegistration(half_resolution), atom(), input_shape=input_shape)


def gradicon_stage2(
    stage1: RegistrationStep | None = None,
    spatial_dims: int | None = None,
    in_channels: int | None = None,
    input_shape: Sequence[int] | None = None,
    stage1_weights: str | Path | None = None,
) -> TwoStepRegistration:
    """GradICON Stage2 = ``TS{Stage1, Psi_4}`` (Eq. 12): a fourth, full-resolution ``TallUNet2`` step.

    Args:
        stage1: a (trained) Stage1 network, used as is (its parameters are shared, not copied);
            default: a new ``gradicon_stage1``.
        spatial_dims, in_channels: of the new atom; default: read from ``stage1``'s ``TallUNet2``
            atoms (3 and 2 when ``stage1`` is None).
        input_shape: optional spatial size that ``forward`` enforces; default: ``stage1``'s.
        stage1_weights: a trained Stage1's state dict file (``torch.save``d, read with
            ``weights_only=True``), loaded into ``stage1`` first: GradICON trains Stage2 starting from
            the trained Stage1 (§4.2).
    """
    if stage1 is None:
        stage1 = gradicon_stage1(spatial_dims or 3, in_channels or 2, input_shape)
    if not isinstance(stage1, RegistrationStep):
        raise ValueError(f"stage1 must be a RegistrationStep (see gradicon_stage1), got {type(stage1).__name__}.")
    if stage1_weights:
        if not Path(stage1_weights).is_file():
            raise CheckpointError(f"Stage1 weights {stage1_weights} do not exist (train Stage1 first).")
        state_dict = read_checkpoint(stage1_weights)
        try:
            stage1.load_state_dict(state_dict)
        except RuntimeError as error:
            raise CheckpointError(
                f"checkpoint {stage1_weights} does not fit GradICON's Stage1 network: {str(error).splitlines()[0]}"
            ) from error
    atoms = [m for m in stage1.modules() if isinstance(m, TallUNet2)]
    if spatial_dims is None or in_channels is None:
        if not atoms:
            raise ValueError("stage1 holds no TallUNet2 atom: give spatial_dims and in_channels explicitly.")
        spatial_dims = atoms[0].spatial_dims if spatial_dims is None else spatial_dims
        in_channels = atoms[0].downConvs[0].in_channels if in_channels is None else in_channels
    if input_shape is None:
        input_shape = stage1.input_shape
    return TwoStepRegistration(stage1, TallUNet2(spatial_dims, in_channels), input_shape=input_shape)


def unigradicon_network(input_shape: Sequence[int] | None = UNIGRADICON_INPUT_SHAPE) -> TwoStepRegistration:
    """uniGradICON / multiGradICON: 3-D GradICON Stage2 for single-channel images on a 175^3 grid.

    The architecture of ``unigradicon.make_network(input_shape, include_last_step=True)``'s
    ``regis_net``: four ``TallUNet2`` atoms at 1/4, 1/2, 1 and 1 of the grid
    (io_gradient_projection.md §2.2). Its state dict has the keys of the official
    ``Step_2_final.trch``; load that file with ``load_unigradicon_weights``.

    Args:
        input_shape: spatial size enforced by ``forward`` (the official weights were trained at
            175^3; resize images to it); None accepts any size of at least 65 per axis.
    """
    return gradicon_stage2(gradicon_stage1(3, 2), input_shape=input_shape)


def load_icon_state_dict(model: nn.Module, state_dict: Mapping[str, Any], source: str = "state_dict") -> nn.Module:
    """Load an ICON-family state dict (``regis_net`` of GradICON / uniGradICON) into ``model``.

    Our module tree has ICON's names, so keys load unchanged; a ``regis_net.`` prefix on every key
    (the state dict of ICON's whole ``GradientICON`` / ``GradientICONSparse`` loss module) is
    removed. Loading is strict.

    Args:
        model: the network, for example ``unigradicon_network()`` or ``gradicon_stage2()``.
        state_dict: mapping of parameter / buffer names to tensors.
        source: name used in error messages (the file it came from).

    Returns:
        ``model``, with the weights loaded.

    Raises:
        ValueError: keys missing or unexpected, or shapes differ, with the first offending names.
    """
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(
            f"{source}: expected a state dict (mapping of names to tensors), got {type(state_dict).__name__}."
        )
    prefix = "regis_net."
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        raise ValueError(
            f"{source}: state dict does not match the network: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]}."
        )
    wrong_shape = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if state_dict[k].shape != v.shape
    ]
    if wrong_shape:
        raise ValueError(
            f"{source}: {len(wrong_shape)} tensors have the wrong shape (given vs network): {wrong_shape[:3]}."
        )
    model.load_state_dict(dict(state_dict), strict=True)
    return model


def load_unigradicon_weights(model: nn.Module, path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Load an official uniGradICON / multiGradICON (or ICON-trained GradICON) weight file into ``model``.

    The file is a ``torch.save``d state dict of ICON's ``regis_net`` (``Step_2_final.trch``);
    it is read with ``weights_only=True``. See ``load_icon_state_dict``.

    Args:
        model: for example ``unigradicon_network()``.
        path: the weight file.
        map_location: device the tensors are loaded to before copying into ``model``.

    Returns:
        ``model``, with the weights loaded.
    """
    state_dict = read_checkpoint(path, map_location=map_location)
    return load_icon_state_dict(model, state_dict, source=str(path))
