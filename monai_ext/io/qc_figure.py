"""Quality-control figure of one registration: fixed / moving / warped / grid / Jacobian."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from monai.utils import convert_to_numpy

from monai_ext.io.atomic import atomic_write_path
from monai_ext.metrics.jacobian import jacobian_determinant

__all__ = ["save_registration_figure"]


def _central_slice(image: np.ndarray, ddf: np.ndarray | None = None):
    """Middle slice along the last axis of a 3-D volume (and the in-plane DDF components)."""
    if image.ndim == 2:
        return image, ddf
    k = image.shape[-1] // 2
    return image[..., k], None if ddf is None else ddf[:2, ..., k]


def save_registration_figure(
    path: str | Path,
    fixed: torch.Tensor | np.ndarray,
    moving: torch.Tensor | np.ndarray,
    warped: torch.Tensor | np.ndarray,
    ddf: torch.Tensor | np.ndarray,
    title: str = "",
    grid_step: int = 4,
) -> Path:
    """Write a PNG with five panels: fixed, moving, warped moving, deformed grid, det(J).

    Args:
        path: output PNG path (written atomically).
        fixed, moving, warped: images ``(*spatial)`` or ``(1, *spatial)``, 2-D or 3-D (3-D shows the
            middle slice of the last axis).
        ddf: ``(ndim, *spatial)`` displacement in voxels (``monai_ext.spatial`` convention).
        title: figure title, e.g. the case name and its Dice.
        grid_step: spacing of the drawn grid lines in voxels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fixed, moving, warped, ddf = (convert_to_numpy(a, dtype=np.float32) for a in (fixed, moving, warped, ddf))
    fixed, moving, warped = (a[0] if a.ndim == ddf.ndim else a for a in (fixed, moving, warped))
    det = jacobian_determinant(torch.as_tensor(ddf)[None])[0].numpy()
    fixed_2d, ddf_2d = _central_slice(fixed, ddf)
    moving_2d, _ = _central_slice(moving)
    warped_2d, _ = _central_slice(warped)
    det_2d, _ = _central_slice(det)

    fig, axes = plt.subplots(1, 5, figsize=(17, 3.8))
    for ax, img, name in zip(axes[:3], (fixed_2d, moving_2d, warped_2d), ("fixed", "moving", "warped moving")):
        ax.imshow(img, cmap="gray", vmin=0.0, vmax=max(float(fixed_2d.max()), 1e-6))
        ax.set_title(name)
    # deformed grid: the fixed grid point x is drawn at x + u(x), where it samples the moving image
    ax = axes[3]
    rows, cols = np.meshgrid(np.arange(ddf_2d.shape[1]), np.arange(ddf_2d.shape[2]), indexing="ij")
    mapped_r, mapped_c = rows + ddf_2d[0], cols + ddf_2d[1]
    for r in range(0, ddf_2d.shape[1], grid_step):
        ax.plot(mapped_c[r, :], mapped_r[r, :], color="tab:blue", linewidth=0.6)
    for c in range(0, ddf_2d.shape[2], grid_step):
        ax.plot(mapped_c[:, c], mapped_r[:, c], color="tab:blue", linewidth=0.6)
    ax.set_xlim(-0.5, ddf_2d.shape[2] - 0.5)
    ax.set_ylim(ddf_2d.shape[1] - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.set_title("deformation grid")
    im = axes[4].imshow(det_2d, cmap="RdBu_r", vmin=0.0, vmax=2.0)
    axes[4].contour(det_2d, levels=[0.0], colors="k", linewidths=0.8)
    axes[4].set_title(f"det J ({100.0 * float((det < 0).mean()):.2f}% < 0)")
    fig.colorbar(im, ax=axes[4], fraction=0.046, pad=0.04)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.92) if title else None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
