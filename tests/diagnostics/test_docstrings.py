"""The docstring examples of tfgap.diagnostics run and print what they show."""

import doctest
import importlib

import pytest

MODULES = ["diffusion", "hessian", "interpolation", "noise_scale", "sharpness", "weight_distance"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"tfgap.diagnostics.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
