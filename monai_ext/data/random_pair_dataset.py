"""Inter-subject training pairs drawn at random from a list of images (new pairs every epoch)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.data.utils import set_rnd
from monai.transforms import Randomizable, apply_transform
from monai.utils import MAX_SEED
from torch.utils.data import Dataset

__all__ = ["RandomPairDataset"]

ROLES = ("fixed", "moving")


class RandomPairDataset(Dataset, Randomizable):
    """Dataset of ``num_pairs`` random ordered pairs (fixed != moving) of entries of ``data``.

    Inter-subject registration networks (GradICON section 5, LUMIR) are trained on pairs of two
    different images drawn uniformly at random, a new pair at every draw, rather than on a fixed
    list of pairs. Each ``__getitem__`` draws the moving entry uniformly from the ``n`` entries
    and the fixed entry uniformly from the other ``n - 1``, so every one of the ``n (n - 1)``
    ordered pairs has probability ``1 / (n (n - 1))``, and returns ``transform(pair)`` with::

        {"fixed_image", "moving_image",            # always
         "fixed_label", "moving_label",            # when the entries have labels
         "fixed_mask", "moving_mask",              # when the entries have masks
         "fixed_subject", "moving_subject"}        # when the entries name their subject

    The index only sets the epoch length (``len(dataset) == num_pairs``): the pair depends on the
    random state, not on the index, so each epoch sees new pairs.

    The dataset is ``monai.transforms.Randomizable``: MONAI's ``DataLoader`` reseeds it from
    torch's generator (so ``monai.utils.set_determinism`` fixes the pairs), and its
    ``worker_init_fn`` gives each worker its own seed. ``set_random_state`` also reseeds the random
    transforms inside ``transform`` from the dataset's state, because MONAI's ``set_rnd`` does not
    look inside an object that is randomizable itself.

    Args:
        data: entries like data_prep's ``"training_images"``: ``{"image": path, "label": path,
            "mask": path, "subject": str}``, ``image`` required, the others optional but then
            present in every entry or in none (so that batches collate). ``None`` counts as absent.
        num_pairs: pairs per epoch (``len`` of the dataset), at least 1.
        transform: callable applied to each pair dictionary (e.g. ``LoadImaged`` and augmentation).
        seed: seed of the pair draws; None draws one from the operating system.
        image_key, label_key, mask_key, subject_key: keys of ``data``'s entries.

    Raises:
        ValueError: fewer than two entries, ``num_pairs < 1``, an entry that is not a mapping or
            has no ``image_key``, or a label/mask/subject key found in some entries only.
    """

    def __init__(
        self,
        data: Sequence[Mapping[Hashable, Any]],
        num_pairs: int,
        transform: Callable | None = None,
        seed: int | None = None,
        image_key: str = "image",
        label_key: str = "label",
        mask_key: str = "mask",
        subject_key: str = "subject",
    ) -> None:
        entries = list(data)
        if len(entries) < 2:
            raise ValueError(
                f"RandomPairDataset needs at least 2 entries to draw pairs of different images, got {len(entries)}."
            )
        if int(num_pairs) != num_pairs or num_pairs < 1:
            raise ValueError(f"num_pairs must be a positive integer, got {num_pairs!r}.")
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                raise ValueError(f"entry {i} of data is not a dictionary: {entry!r}.")
            if entry.get(image_key) is None:
                raise ValueError(
                    f"entry {i} of data has no {image_key!r} key (the image to register): {dict(entry)!r}."
                )
        # output name suffix -> key of the entries; the image is required, the others optional
        self.keys = {"image": image_key}
        for suffix, key in (("label", label_key), ("mask", mask_key), ("subject", subject_key)):
            missing = [i for i, entry in enumerate(entries) if entry.get(key) is None]
            if len(missing) == len(entries):
                continue
            if missing:
                shown = ", ".join(str(i) for i in missing[:10]) + (", ..." if len(missing) > 10 else "")
                raise ValueError(
                    f"{len(entries) - len(missing)} of {len(entries)} entries of data have a {key!r} key but "
                    f"entries {shown} do not: give it for every entry or for none (batches must share keys)."
                )
            self.keys[suffix] = key
        self.data = entries
        self.num_pairs = int(num_pairs)
        self.transform = transform
        self._moving_index = self._fixed_index = 0
        self.set_random_state(seed=seed)

    def __len__(self) -> int:
        return self.num_pairs

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandomPairDataset:
        """Seed the pair draws (as ``Randomizable``) and, from them, the random transforms in ``transform``."""
        super().set_random_state(seed=seed, state=state)
        if self.transform is not None:
            set_rnd(self.transform, seed=int(self.R.randint(MAX_SEED, dtype="uint32")))
        return self

    def randomize(self, data: Any = None) -> None:
        """Draw the moving index uniformly, then the fixed index uniformly among the others."""
        n = len(self.data)
        self._moving_index = int(self.R.randint(n))
        fixed = int(self.R.randint(n - 1))
        self._fixed_index = fixed + 1 if fixed >= self._moving_index else fixed

    def __getitem__(self, index: int) -> Any:
        if not -self.num_pairs <= index < self.num_pairs:
            raise IndexError(f"index {index} is out of range for {self.num_pairs} pairs.")
        self.randomize()
        pair: dict[str, Any] = {}
        for role, i in zip(ROLES, (self._fixed_index, self._moving_index)):
            for suffix, key in self.keys.items():
                pair[f"{role}_{suffix}"] = self.data[i][key]
        return apply_transform(self.transform, pair) if self.transform is not None else pair
