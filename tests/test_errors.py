"""Tests of monai_ext.errors: the InputError behind wrapped exceptions, and the short report."""

from __future__ import annotations

import subprocess
import sys

import pytest
from monai.data import DataLoader, Dataset
from monai.transforms import Compose, Lambda

from monai_ext.errors import CheckpointError, InputError, input_error_message


def _raise(_):
    raise InputError("image a.nii.gz contains NaN.")


@pytest.mark.parametrize("num_workers", [0, 1])
def test_message_found_through_monai_wrapping_and_loader_workers(num_workers):
    loader = DataLoader(Dataset([1], transform=Compose([Lambda(_raise)])), num_workers=num_workers)
    with pytest.raises(Exception) as caught:
        next(iter(loader))
    # MONAI wraps it in "applying transform ..."; a worker re-raises it as text
    assert not isinstance(caught.value, InputError)
    assert input_error_message(caught.value) == "image a.nii.gz contains NaN."


def test_other_errors_have_no_message():
    try:
        try:
            raise KeyError("x")
        except KeyError as e:
            raise RuntimeError("wrapped") from e
    except RuntimeError as e:
        assert input_error_message(e) is None
    assert input_error_message(CheckpointError("checkpoint m.pt is empty.")) == "checkpoint m.pt is empty."


SCRIPT = """
import logging, sys
from monai_ext.errors import InputError, report_input_errors
logging.basicConfig(level=logging.INFO)
report_input_errors(debug={debug})
try:
    raise {error}
except Exception as e:
    logging.getLogger("engine").exception("run stopped")
    raise RuntimeError("Failed to evaluate ConfigExpression") from e
"""


@pytest.mark.parametrize("debug", [False, True])
def test_report_is_one_line_and_debug_keeps_the_traceback(debug):
    script = SCRIPT.format(debug=debug, error="InputError('label b.nii.gz has values [9] outside [0, 1, 2, 3].')")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "label b.nii.gz has values [9] outside [0, 1, 2, 3]." in result.stderr
    if debug:
        assert result.stderr.count("Traceback") >= 2
    else:
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-2] == "error: label b.nii.gz has values [9] outside [0, 1, 2, 3]."


def test_bugs_keep_their_traceback():
    script = SCRIPT.format(debug=False, error="ZeroDivisionError('a bug')")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" in result.stderr and "ZeroDivisionError: a bug" in result.stderr
    assert "error:" not in result.stderr
