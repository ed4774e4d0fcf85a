"""Every yes/no option of every bundle config reads as typed on the command line: true / false /
True / False / 1 / 0 (any case), anything else refused with an error naming the option."""

from __future__ import annotations

import json

import pytest

from helpers import BUNDLES, bundle_config

# (bundle, config files as stacked by `monai.bundle run`, flag)
CASES = []
for bundle_dir in sorted(BUNDLES.iterdir()):
    configs = bundle_dir / "configs"
    for name in ("train.json", "inference.json", "evaluate.json"):
        if not (configs / name).exists():
            continue
        stack = ["train.json", name] if name == "evaluate.json" else [name]
        flags = json.loads((configs / name).read_text()).get("flags", {})
        flags = list(flags) + [
            k.split("#", 1)[1] for k in json.loads((configs / name).read_text()) if k.startswith("flags#")
        ]
        CASES += [(bundle_dir.name, stack, flag) for flag in flags]


def test_every_bundle_declares_its_flags():
    assert {(b, f) for b, _, f in CASES} >= {
        (bundle, "resume") for bundle in ("gsmorph_cardiac", "gradicon_brain", "unigradicon_io", "dio_brain")
    } | {(bundle, "load_pretrain") for bundle in ("gsmorph_cardiac", "gradicon_brain", "unigradicon_io", "dio_brain")}


@pytest.mark.parametrize("bundle, stack, flag", CASES, ids=[f"{b}-{s[-1]}-{f}" for b, s, f in CASES])
def test_flag_reads_as_typed(bundle, stack, flag):
    for typed, expected in (("false", False), ("False", False), ("0", False), ("TRUE", True), ("1", True)):
        parser = bundle_config(bundle, *stack, **{flag: typed})
        assert parser.get_parsed_content(f"flags#{flag}") is expected, (flag, typed)
    with pytest.raises(Exception) as raised:
        bundle_config(bundle, *stack, **{flag: "maybe"}).get_parsed_content(f"flags#{flag}")
    # MONAI wraps it ("Failed to instantiate component ..."); the cause names the option
    messages, error = [], raised.value
    while error is not None:
        messages.append(str(error))
        error = error.__cause__
    assert any(f"{flag} must be true or false" in m for m in messages), messages
