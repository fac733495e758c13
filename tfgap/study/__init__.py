"""The generalization-gap study: Table 1, its ablations and Keskar's claim, on one trainer.

`python -m tfgap.recipes.study` trains Hoffer et al.'s Table 1 regimes
(`SB`, `LB`, `LB+LR`, `LB+LR+GBN`, `LB+LR+GBN+RA`), `LB` trained to
convergence, and ablations that separate GBN's mechanisms (ghost noise
against moving-statistics updates, BN momentum, ghost size) beside the
alternatives `LB+LARS` and `LB+SAM`, over several seeds with
`tfgap.training.train`; then writes a table (`results.json`, `results.csv`,
`results.md`, stdout), the claims it decided from the runs, figures, and the
`LB+LR+GBN+RA` SavedModel.

- `REGIMES` (Table 1's names), `study_regimes`, `Regime`, `small_batch_config`,
  `regime_config`, `regime_configs`: the rows as data, `TrainConfig` changes
  from the small-batch base (`tfgap.study.regimes`).
- `run_study`: train, measure, aggregate, judge, plot (`tfgap.study.runner`).
- `tfgap.study.claims`: the claims, decided by small pure functions.
- `tfgap.study.keskar`: the convergence stop and the measures of a minimum.
- `tfgap.study.report`: aggregation, tables, CSV, JSON and Markdown.
- `tfgap.study.plots`: the figures (matplotlib Agg canvas, no pyplot).
- `sweep_learning_rate`, `sweep_setting`, `summarize_sweep`: the sweeps
  behind the defaults, chosen on the validation split (`tfgap.study.sweep`).

Accuracies are reported on the validation split (carved from the training
split) and on the test split; every choice is made on validation.
"""

from tfgap.study.regimes import (
    MNIST1D_DEFAULTS,
    REGIMES,
    Regime,
    regime_config,
    regime_configs,
    slug,
    small_batch_config,
    study_regimes,
)
from tfgap.study.runner import run_study
from tfgap.study.sweep import summarize_sweep, sweep_learning_rate, sweep_setting

__all__ = [
    "MNIST1D_DEFAULTS",
    "REGIMES",
    "Regime",
    "regime_config",
    "regime_configs",
    "run_study",
    "slug",
    "small_batch_config",
    "study_regimes",
    "summarize_sweep",
    "sweep_learning_rate",
    "sweep_setting",
]
