"""The `Example:` sections of the schedules' docstrings (and of the checks they share with
the training settings, `tfgap._validation`) run and print what they show."""

import doctest

import pytest

from tfgap import _validation
from tfgap.schedules import batch_size, large_batch, regime


@pytest.mark.parametrize("module", [regime, large_batch, batch_size, _validation],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
