"""Tests of monai_ext.data.RandomPairDataset: random inter-subject pairs, seeding, keys, coverage."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from monai.data import DataLoader
from monai.transforms import Randomizable
from monai.utils import set_determinism

from monai_ext.data import RandomPairDataset


def _entries(n: int, label: bool = False, mask: bool = False) -> list[dict]:
    entries = []
    for i in range(n):
        entry = {"image": f"img{i}.nii.gz", "subject": f"s{i}"}
        if label:
            entry["label"] = f"lab{i}.nii.gz"
        if mask:
            entry["mask"] = f"mask{i}.nii.gz"
        entries.append(entry)
    return entries


def _subjects(dataset) -> list[tuple[str, str]]:
    return [(p["fixed_subject"], p["moving_subject"]) for p in (dataset[i] for i in range(len(dataset)))]


class AddNoise(Randomizable):
    """A random transform: adds one draw of its own random state to the pair."""

    def randomize(self, data=None):
        self.value = self.R.rand()

    def __call__(self, pair):
        self.randomize()
        return {**pair, "noise": self.value}


def test_length_and_distinct_pairs():
    dataset = RandomPairDataset(_entries(3), num_pairs=200, seed=0)
    assert len(dataset) == 200
    pairs = _subjects(dataset)
    assert all(fixed != moving for fixed, moving in pairs)
    with pytest.raises(IndexError):
        dataset[200]


def test_every_ordered_pair_appears_about_equally_often():
    n, draws = 4, 1200
    counts = Counter(_subjects(RandomPairDataset(_entries(n), num_pairs=draws, seed=1)))
    expected = {(f"s{a}", f"s{b}") for a, b in itertools.permutations(range(n), 2)}
    assert set(counts) == expected  # all 12 ordered pairs, never a self-pair
    # uniform: 100 per pair, binomial std ~ 9.6; a 4-sigma band
    assert all(60 <= c <= 140 for c in counts.values()), counts


def test_keys_follow_the_entries():
    dataset = RandomPairDataset(_entries(5, label=True, mask=True), num_pairs=20, seed=2)
    for i in range(len(dataset)):
        pair = dataset[i]
        assert set(pair) == {
            f"{role}_{kind}" for role in ("fixed", "moving") for kind in ("image", "label", "mask", "subject")
        }
        for role in ("fixed", "moving"):
            k = pair[f"{role}_subject"][1:]  # every key of one role comes from the same entry
            assert (pair[f"{role}_image"], pair[f"{role}_label"], pair[f"{role}_mask"]) == (
                f"img{k}.nii.gz",
                f"lab{k}.nii.gz",
                f"mask{k}.nii.gz",
            )
    only_images = RandomPairDataset([{"img": "a"}, {"img": "b"}], num_pairs=1, image_key="img")[0]
    assert only_images in ({"fixed_image": "a", "moving_image": "b"}, {"fixed_image": "b", "moving_image": "a"})
    renamed = RandomPairDataset([{"t1": "a", "seg": "x"}, {"t1": "b", "seg": "y"}], 1, image_key="t1", label_key="seg")
    pair = renamed[0]
    assert {(pair["fixed_image"], pair["fixed_label"]), (pair["moving_image"], pair["moving_label"])} == {
        ("a", "x"),
        ("b", "y"),
    }


def test_reproducible_with_seed_and_set_random_state():
    first = _subjects(RandomPairDataset(_entries(10), num_pairs=30, seed=3))
    assert _subjects(RandomPairDataset(_entries(10), num_pairs=30, seed=3)) == first
    dataset = RandomPairDataset(_entries(10), num_pairs=30, seed=4)
    other = _subjects(dataset)
    assert other != first
    assert _subjects(dataset) != other  # next epoch: new pairs
    dataset.set_random_state(seed=3)
    assert _subjects(dataset) == first
    dataset.set_random_state(state=np.random.RandomState(3))
    assert _subjects(dataset) == first


def test_transform_is_applied_and_reseeded_with_the_dataset():
    def tag(pair):
        return {**pair, "tag": pair["fixed_subject"] + ">" + pair["moving_subject"]}

    pair = RandomPairDataset(_entries(4), num_pairs=1, transform=tag, seed=0)[0]
    assert pair["tag"] == pair["fixed_subject"] + ">" + pair["moving_subject"]
    # random transforms inside are seeded from the dataset's state (MONAI's set_rnd stops at the dataset)
    a = RandomPairDataset(_entries(4), num_pairs=5, transform=AddNoise(), seed=5)
    b = RandomPairDataset(_entries(4), num_pairs=5, transform=AddNoise(), seed=5)
    noise = [a[i]["noise"] for i in range(5)]
    assert noise == [b[i]["noise"] for i in range(5)]
    a.set_random_state(seed=5)
    assert [a[i]["noise"] for i in range(5)] == noise
    c = RandomPairDataset(_entries(4), num_pairs=5, transform=AddNoise(), seed=6)
    assert [c[i]["noise"] for i in range(5)] != noise


def _loader_pairs(dataset, num_workers: int) -> list[list[tuple[str, str]]]:
    loader = DataLoader(dataset, batch_size=2, num_workers=num_workers)
    return [list(zip(batch["fixed_subject"], batch["moving_subject"])) for batch in loader]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_monai_dataloader_and_set_determinism_seed_it(num_workers):
    try:
        runs = []
        for _ in range(2):
            set_determinism(seed=7)
            runs.append(_loader_pairs(RandomPairDataset(_entries(50), num_pairs=8), num_workers))
        assert runs[0] == runs[1]
        assert len(runs[0]) == 4 and all(f != m for batch in runs[0] for f, m in batch)
        if num_workers == 2:  # batches alternate between the workers, which must draw differently
            assert runs[0][0] != runs[0][1]
        set_determinism(seed=8)
        assert _loader_pairs(RandomPairDataset(_entries(50), num_pairs=8), num_workers) != runs[0]
    finally:
        set_determinism(seed=None)


@pytest.mark.parametrize(
    "data, num_pairs, message",
    [
        (_entries(1), 4, "at least 2 entries"),
        ([], 4, "at least 2 entries"),
        (_entries(3), 0, "num_pairs"),
        (_entries(3), 2.5, "num_pairs"),
        ([{"image": "a"}, {"label": "b"}], 4, r"entry 1 .* no 'image'"),
        ([{"image": "a"}, "b.nii.gz"], 4, "entry 1 .* not a dictionary"),
        (
            [{"image": "a", "label": "x"}, {"image": "b"}, {"image": "c", "label": None}],
            4,
            r"'label' key but entries 1, 2",
        ),
    ],
)
def test_bad_input(data, num_pairs, message):
    with pytest.raises(ValueError, match=message):
        RandomPairDataset(data, num_pairs=num_pairs)
