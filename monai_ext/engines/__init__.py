"""Ignite engines built on ``monai.engines`` for registration networks.

Classes are imported on first access (``monai_ext.engines.GradientSurgeryTrainer``), so importing
one engine does not import the others.
"""

from __future__ import annotations

from monai_ext.lazy_exports import lazy_exports

__all__ = [
    "GradientSurgeryTrainer",
    "RegistrationEvaluator",
    "InferenceComparison",
    "InfererBoundNetwork",
    "RandomState",
    "all_reduce_gradients",
    "distributed_world_size",
]

_LOCATIONS = {
    "GradientSurgeryTrainer": "monai_ext.engines.gradient_surgery_trainer",
    "RegistrationEvaluator": "monai_ext.engines.registration_evaluator",
    "InferenceComparison": "monai_ext.engines.inference_comparison",
    "InfererBoundNetwork": "monai_ext.engines.inferer_bound_network",
    "RandomState": "monai_ext.engines.random_state",
    "all_reduce_gradients": "monai_ext.engines.distributed_gradients",
    "distributed_world_size": "monai_ext.engines.distributed_gradients",
}


__getattr__, __dir__ = lazy_exports(__name__, _LOCATIONS, __all__)
