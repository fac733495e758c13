"""The runnable docstring examples of tfgap.tuning (the search-space helpers)."""

import doctest

from tfgap.tuning import hypermodel


def test_hypermodel_docstring_examples():
    failures, tried = doctest.testmod(hypermodel, verbose=False)
    assert tried >= 4 and failures == 0
