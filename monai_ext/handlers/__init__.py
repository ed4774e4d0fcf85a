"""Ignite handlers for registration evaluation and inference outputs."""

from .augmentation_schedule import AugmentationSchedule
from .best_model_saver import BestModelSaver
from .checked_checkpoint_loader import CheckedCheckpointLoader
from .label_set_dice import LabelSetDice
from .leaderboard_scores import LeaderboardScoresHandler
from .method_comparison import format_method_comparison, read_metrics_summary, write_method_comparison
from .named_outputs import named_outputs
from .registration_metrics import RegistrationMetricsHandler, format_results_table
from .registration_writer import RegistrationWriter
from .training_checkpoint import TrainingCheckpoint

__all__ = [
    "AugmentationSchedule",
    "BestModelSaver",
    "CheckedCheckpointLoader",
    "TrainingCheckpoint",
    "LabelSetDice",
    "LeaderboardScoresHandler",
    "RegistrationMetricsHandler",
    "RegistrationWriter",
    "format_results_table",
    "format_method_comparison",
    "read_metrics_summary",
    "write_method_comparison",
    "named_outputs",
]
