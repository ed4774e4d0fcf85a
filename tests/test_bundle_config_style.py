"""Bundle configs read like the model zoo's: logic lives in ``monai_ext`` (named with ``_target_``), not
in ``$`` expressions, and no line is longer than 120 characters. Checked on every config file
(``metadata.json`` is indented by 2 so that its ``schema`` line, MONAI's schema URL read verbatim by
``verify_metadata``, fits)."""

from __future__ import annotations

import json
import re

import pytest

from helpers import BUNDLES

CONFIGS = sorted(BUNDLES.glob("*/configs/*.json"))


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_config_is_declarative(path):
    lines = enumerate(path.read_text().splitlines(), 1)
    long_lines = [n for n, line in lines if len(line) > 120]
    assert not long_lines, f"{path}: lines longer than 120 characters: {long_lines}"
    expressions = [text for text in _strings(json.loads(path.read_text())) if text.startswith("$")]
    for text in expressions:
        assert not re.search(r"\blambda\b[^:]*:|\bprint\(", text), f"{path}: {text!r}"
        assert len(re.findall(r"\bif\b", text)) <= 1, f"{path}: nested conditional {text!r}"
