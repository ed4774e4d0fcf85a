"""The summary ``monai-register`` prints after a registration."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from monai_ext.cli.register_options import RegisterOptions
from monai_ext.cli.register_pipeline import IO_SETTINGS
from monai_ext.inferers import InstanceOptimizationInferer, NetworkGridInferer
from monai_ext.metrics.jacobian import negative_jacobian_fraction

__all__ = ["registration_summary"]


def registration_summary(
    options: RegisterOptions,
    inferer: NetworkGridInferer,
    ddf: torch.Tensor,
    dice_line: str | None,
    written: list[Path],
    registration_time: float,
    total_time: float,
) -> str:
    """Mode, IO loss and conflict rate, negative-Jacobian fraction, Dice, times and files written."""
    steps, io_mode, size = options.steps, options.io_mode, options.size
    optimised = isinstance(inferer, InstanceOptimizationInferer)
    if optimised:
        mode_line = f"instance optimisation ({io_mode}), {steps} step{'s' if steps > 1 else ''}: {IO_SETTINGS}"
    else:
        mode_line = "direct inference"
    lines = [
        f"registered {options.sources['moving']} -> {options.sources['fixed']}",
        f"  mode: {mode_line}; network grid {'x'.join(map(str, size))}; device {options.device}",
    ]
    if optimised and inferer.last_losses:
        losses = inferer.last_losses
        line = f"  IO loss (LNCC + lambda GradICON): {losses[0]:.5f} at the first step, {losses[-1]:.5f} at the last"
        rates = [r for r in inferer.last_conflict_rates if math.isfinite(r)]
        if rates:  # measured by the projected mode: fraction of parameter tensors in conflict
            line += f"; mean conflict rate {sum(rates) / len(rates):.3f}"
        lines.append(line)
    njd = float(negative_jacobian_fraction(ddf)[0])
    lines.append(f"  negative Jacobian determinant: {njd:.4f} % of fixed-grid voxels")
    if dice_line:
        lines.append(f"  {dice_line}")
    lines.append(f"  time: {registration_time:.1f} s registration, {total_time:.1f} s total")
    lines.extend(f"  wrote {path}" for path in written)
    return "\n".join(lines)
