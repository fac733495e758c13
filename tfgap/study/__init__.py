"""The generalization-gap study: Table 1, controls, ablations, Keskar's claim, one trainer.

`python -m tfgap.recipes.study` trains Hoffer et al.'s Table 1 regimes
(`SB`, `LB`, `LB+LR`, `LB+LR+GBN`, `LB+LR+GBN+RA`), the controls that tell
the updates from the remedies (`LB+RA`, `SB (LB's updates)`), `SB` and `LB`
trained to convergence under one stopping rule and rate (Keskar's setting,
like with like), and ablations that separate GBN's mechanisms (ghost noise
against moving-statistics updates, BN momentum, ghost size at `+LR`) beside
the alternatives `LB+LARS` and `LB+SAM`, over several seeds with
`tfgap.training.train`, in parallel worker processes; rows that differ only
in BN's moving statistics come from one training. It writes a table
(`results.json`, `results.csv`, `results.md`, stdout), the claims it
decided from the runs with paired intervals and tests, figures, and the
`LB+LR+GBN+RA` SavedModel.

- `REGIMES` (Table 1's names), `study_regimes`, `Regime`, `small_batch_config`,
  `regime_config`, `regime_configs`, `trainings`: the rows as data,
  `TrainConfig` changes from the small-batch base (`tfgap.study.regimes`).
- `run_study`: train, measure, aggregate, judge, plot (`tfgap.study.runner`).
- `tfgap.study.stats`: paired t intervals, Holm, TOST, three outcomes.
- `tfgap.study.claims`: the claims, decided from the runs by those rules.
- `tfgap.study.moving`: several BN moving-statistics rules from one training.
- `tfgap.study.keskar`: the convergence stop and the measures of a minimum.
- `tfgap.study.report`: aggregation, tables, CSV, JSON and Markdown.
- `tfgap.study.plots`: the figures (matplotlib Agg canvas, no pyplot).
- `tfgap.study.docs`: the README's and docs/study.md's numbers and claim
  sentences, rendered from the committed results file.
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
    trainings,
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
    "trainings",
]
