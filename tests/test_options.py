"""Mode checks and yes/no flags: accepted spellings and errors that name the argument."""

from __future__ import annotations

import pytest

from monai_ext.options import check_option, flag


@pytest.mark.parametrize(
    "value, expected",
    [(True, True), (False, False), (1, True), (0, False), ("true", True), ("False", False), ("FALSE", False)]
    + [("0", False), ("1", True), ("yes", True), ("no", False), (" off ", False), ("On", True)],
)
def test_flag_spellings(value, expected):
    assert flag(value, "resume") is expected


@pytest.mark.parametrize("value", ["maybe", "", 2, -1, 0.5, None, "tru"])
def test_flag_refuses_anything_else_naming_the_option(value):
    with pytest.raises(ValueError, match="validate_at_start must be true or false"):
        flag(value, "validate_at_start")


def test_check_option_names_the_argument_and_lists_the_choices():
    assert check_option("mode", "SGD", ("sgd", "adam"), lower=True) == "sgd"
    with pytest.raises(ValueError, match=r"optimizer must be one of 'sgd', 'adam'; got 'lbfgs'"):
        check_option("optimizer", "lbfgs", ("sgd", "adam"))
