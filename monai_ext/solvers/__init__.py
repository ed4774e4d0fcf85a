"""DIO's differentiable multi-scale optimisation layer (dio.md §3.2-3.3, Algorithm 2)."""

from .dissimilarity import FeatureLNCC, FeatureMSE, build_dissimilarity
from .implicit import ImplicitSpec, conjugate_gradient, implicit_solution
from .multiscale_solver import MultiScaleSolver, SolverResult
from .prompts import LabelPrompt, LandmarkPrompt, Prompt
from .setting_names import solver_setting_name
from .step_rules import AdamStep, SGDStep, build_step_rule
from .transform_models import Affine, FreeForm, GreedyDiffeomorphic, StationaryVelocity, build_transform_model

__all__ = [
    "MultiScaleSolver",
    "SolverResult",
    "FeatureMSE",
    "FeatureLNCC",
    "build_dissimilarity",
    "ImplicitSpec",
    "implicit_solution",
    "conjugate_gradient",
    "Prompt",
    "LabelPrompt",
    "LandmarkPrompt",
    "SGDStep",
    "AdamStep",
    "build_step_rule",
    "FreeForm",
    "GreedyDiffeomorphic",
    "StationaryVelocity",
    "Affine",
    "build_transform_model",
    "solver_setting_name",
]
