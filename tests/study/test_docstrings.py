"""The docstring examples of tfgap.study run and print what they show."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["regimes", "report", "sweep", "claims", "keskar", "plots",
                                  "runner", "moving", "docs"])
def test_docstring_examples(name):
    module = importlib.import_module(f"tfgap.study.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_plots_do_not_touch_the_global_backend():
    import matplotlib

    before = matplotlib.get_backend()
    from tfgap.study import plots

    fig = plots.plot_weight_distance({"SB": [{"distance_record": [[0, 0.0], [1, 0.1],
                                                                  [2, 0.3]]}]})
    assert len(fig.axes) == 1
    assert matplotlib.get_backend() == before
