"""The docstring examples of tfgap.advisor run and print what they show."""

import doctest
import importlib

import pytest

MODULES = ["advice", "curvature", "fit_statistics", "gradient_statistics", "measure", "noise",
           "tradeoff", "user_model"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"tfgap.advisor.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
