"""The docstring examples of the run directory, checkpointing and the command line run."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["tfgap.training.rundir", "tfgap.training.checkpointing",
                                  "tfgap.recipes.cli", "tfgap._validation",
                                  "tfgap.training.noise_statistics",
                                  "tfgap.training.adascale", "tfgap.training.plan",
                                  "tfgap.training.batch_control"])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
