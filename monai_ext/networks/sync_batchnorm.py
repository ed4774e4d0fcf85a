"""BatchNorm synchronised across processes where it can be (multi-GPU training)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["sync_batchnorm_on_cuda"]


def sync_batchnorm_on_cuda(network: nn.Module) -> nn.Module:
    """``torch.nn.SyncBatchNorm.convert_sync_batchnorm(network)`` when CUDA is available (SyncBatchNorm
    runs on CUDA only); the network unchanged on the CPU (gloo), where every rank keeps its own statistics."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(network) if torch.cuda.is_available() else network
