"""The generalization-gap study: Table 1's five regimes on one trainer.

`python -m tfgap.recipes.study` trains `SB`, `LB`, `LB+LR`, `LB+LR+GBN` and
`LB+LR+GBN+RA` (Hoffer et al. 2017) over several seeds with
`tfgap.training.train`, then writes a table (`results.json`, `results.csv`,
stdout), figures (test error vs epochs and updates, `||w_t - w_0||` vs
`log t`, Keskar's SB <-> LB interpolation) and the `LB+LR+GBN+RA` SavedModel.

- `REGIMES`, `small_batch_config`, `regime_config`, `regime_configs`: the
  regimes as `TrainConfig` transforms (`tfgap.study.regimes`).
- `run_study`: train, measure, aggregate, plot (`tfgap.study.runner`).
- `tfgap.study.report`: aggregation, table, CSV and JSON.
- `tfgap.study.plots`: the figures (matplotlib Agg canvas, no pyplot).
- `sweep_learning_rate`, `summarize_sweep`: the `SB` learning-rate sweep,
  chosen on the validation split (`tfgap.study.sweep`).

Accuracies are reported on the validation split (carved from the training
split) and on the test split; every choice is made on validation.
"""

from tfgap.study.regimes import (
    MNIST1D_DEFAULTS,
    REGIMES,
    regime_config,
    regime_configs,
    slug,
    small_batch_config,
)
from tfgap.study.runner import run_study
from tfgap.study.sweep import summarize_sweep, sweep_learning_rate

__all__ = [
    "MNIST1D_DEFAULTS",
    "REGIMES",
    "regime_config",
    "regime_configs",
    "run_study",
    "slug",
    "small_batch_config",
    "summarize_sweep",
    "sweep_learning_rate",
]
