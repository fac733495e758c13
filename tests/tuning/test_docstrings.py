"""The runnable docstring examples of tfgap.tuning (the search-space helpers, trial numbers)."""

import doctest

from tfgap.tuning import hypermodel, search


def test_hypermodel_docstring_examples():
    failures, tried = doctest.testmod(hypermodel, verbose=False)
    assert tried >= 4 and failures == 0


def test_search_docstring_examples():
    failures, tried = doctest.testmod(search, verbose=False)
    assert tried >= 2 and failures == 0
