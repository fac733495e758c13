"""The `Example:` sections of the schedules' docstrings run and print what they show."""

import doctest

import pytest

from tfgap.schedules import batch_size, large_batch, regime


@pytest.mark.parametrize("module", [regime, large_batch, batch_size],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
