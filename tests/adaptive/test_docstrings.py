"""The docstring examples of tfgap.adaptive run and print what they show."""

import doctest
import importlib

import pytest

MODULES = ["fit", "gain", "schedule"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"tfgap.adaptive.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
