"""The random state of a training run as a checkpointable object, so that a resumed run draws the
same data order, pairs and augmentations as an uninterrupted one."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import Randomizable

__all__ = ["RandomState", "randomizables"]


def randomizables(root: Any) -> list[Randomizable]:
    """Every ``monai.transforms.Randomizable`` reachable from ``root`` through attributes, lists,
    tuples and dicts, in a fixed depth-first order (the objects MONAI's ``set_rnd`` reseeds)."""
    found: list[Randomizable] = []
    seen: set[int] = set()

    def visit(obj: Any, depth: int) -> None:
        if id(obj) in seen or depth > 16 or isinstance(obj, (str, bytes, int, float, torch.Tensor, np.ndarray)):
            return
        seen.add(id(obj))
        if isinstance(obj, Randomizable):
            found.append(obj)
        if isinstance(obj, dict):
            children = list(obj.values())
        elif isinstance(obj, (list, tuple)):
            children = list(obj)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            children = [v for k, v in sorted(vars(obj).items()) if k != "R"]
        else:
            children = []
        for child in children:
            visit(child, depth + 1)

    visit(root, 0)
    return found


def _numpy_state_to_lists(state: tuple) -> list:
    # ``torch.load(weights_only=True)`` refuses numpy arrays, so the Mersenne Twister keys go as a tensor.
    name, keys, pos, has_gauss, cached = state
    return [name, torch.as_tensor(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)]


def _numpy_state_from_lists(state: Sequence) -> tuple:
    name, keys, pos, has_gauss, cached = state
    return (name, np.asarray(torch.as_tensor(keys).numpy(), dtype=np.uint32), int(pos), int(has_gauss), float(cached))


class RandomState:
    """``state_dict()`` / ``load_state_dict()`` of every random generator a training run draws from:
    PyTorch's (CPU and CUDA), NumPy's and Python's global generators, and the ``R`` generator of
    each MONAI ``Randomizable`` inside ``objects`` (datasets, transforms).

    Put it in the trainer's checkpoint (``save_dict`` / ``load_dict``) beside the model and the
    optimiser: saved at the end of an epoch and restored when the resumed run starts, the next
    epoch's shuffling, pair draws and augmentations are those of the uninterrupted run. The
    DataLoader's workers are seeded from PyTorch's generator at every epoch, so they follow.
    """

    def __init__(self, objects: Sequence[Any] = ()) -> None:
        self.objects = list(objects)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": _numpy_state_to_lists(np.random.get_state()),
            "python": [*random.getstate()[1], random.getstate()[0]],
            "randomizables": [_numpy_state_to_lists(r.R.get_state()) for r in randomizables(self.objects)],
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
        np.random.set_state(_numpy_state_from_lists(state["numpy"]))
        *internal, version = state["python"]
        random.setstate((int(version), tuple(int(v) for v in internal), None))
        targets = randomizables(self.objects)
        if len(targets) != len(state["randomizables"]):
            raise ValueError(
                f"the checkpoint holds {len(state['randomizables'])} random transform states, this run has "
                f"{len(targets)}: it was written by a different training configuration."
            )
        for target, saved in zip(targets, state["randomizables"]):
            target.R.set_state(_numpy_state_from_lists(saved))
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
