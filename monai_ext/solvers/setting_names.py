"""How results tables name a solver setting: ``SGD (free-form)``, ``Adam (diffeomorphic)``, ..."""

from __future__ import annotations

__all__ = ["solver_setting_name"]

OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam"}
TRANSFORM_NAMES = {"freeform": "free-form"}


def solver_setting_name(
    optimizer: str,
    transform: str,
    label_prompt_weight: float = 0.0,
    landmark_prompt_weight: float = 0.0,
    prefix: str = "",
    same_as: str | None = None,
    affine_stage: bool = False,
) -> str:
    """``<prefix><Optimizer> (<transform>)`` (``(affine + <transform>)`` after an affine stage), then
    `` + label prompt`` / `` + landmark prompt`` for the
    prompts in use (weight > 0), and ``, test-time`` when the name equals ``same_as`` (a setting chosen
    at test time that repeats the training one)."""
    transform_name = TRANSFORM_NAMES.get(transform, transform)
    if affine_stage:
        transform_name = f"affine + {transform_name}"
    name = f"{prefix}{OPTIMIZER_NAMES.get(optimizer, optimizer)} ({transform_name})"
    if float(label_prompt_weight) > 0:
        name += " + label prompt"
    if float(landmark_prompt_weight) > 0:
        name += " + landmark prompt"
    if same_as is not None and name == same_as:
        name += ", test-time"
    return name
