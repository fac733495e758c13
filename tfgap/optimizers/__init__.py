"""Large-batch optimizers: LARS (You, Gitman & Ginsburg, 2017)."""

from tfgap.optimizers.lars import LARS

__all__ = ["LARS"]
