"""Evaluation metrics: Jacobian-based regularity (NJD, NDV, SDlogJ), Dice / HD95 per label, MSE, landmark TRE;
the LUMIR / Learn2Reg leaderboard scores as their evaluators define them (``monai_ext.metrics.leaderboard``)."""

from __future__ import annotations

from .intensity import mean_squared_error
from .jacobian import (
    foreground_interior,
    jacobian_determinant,
    negative_jacobian_fraction,
    non_diffeomorphic_volume,
    simplex_jacobian_determinants,
    std_log_jacobian,
)
from .label_set_dice import LabelSetDiceMetric
from .landmarks import TRE_METHODS, landmark_centroids, target_registration_error, tre_from_landmark_maps
from .segmentation import dice_per_label, hd95_per_label

__all__ = [
    "jacobian_determinant",
    "negative_jacobian_fraction",
    "std_log_jacobian",
    "simplex_jacobian_determinants",
    "non_diffeomorphic_volume",
    "foreground_interior",
    "dice_per_label",
    "hd95_per_label",
    "LabelSetDiceMetric",
    "mean_squared_error",
    "landmark_centroids",
    "target_registration_error",
    "tre_from_landmark_maps",
    "TRE_METHODS",
]
