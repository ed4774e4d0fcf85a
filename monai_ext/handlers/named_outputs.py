"""Output transforms that pick named scalars from an engine's output for logging handlers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from monai.handlers import from_engine

__all__ = ["named_outputs"]


def named_outputs(names: Mapping[str, str]) -> Callable[[Any], dict[str, Any]]:
    """``output_transform`` for ``StatsHandler`` / ``TensorBoardStatsHandler``: ``{label: output[key]}``
    for each ``label: key`` of ``names``, read from the first item of a decollated output as
    ``monai.handlers.from_engine(keys, first=True)`` reads it, e.g.
    ``{"loss": "loss", "similarity": "similarity_loss"}``."""
    labels, keys = list(names), list(names.values())
    pick = from_engine(keys, first=True)

    def transform(output: Any) -> dict[str, Any]:
        values = pick(output)
        # from_engine returns the value itself for one key, a tuple for several
        return dict(zip(labels, values if len(keys) > 1 else (values,)))

    return transform
