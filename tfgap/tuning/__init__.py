"""Keras Tuner search of the ghost batch size and the learning rate (`python -m tfgap.recipes.tune`).

- `GhostBatchHyperModel`: `build(hp)` picks `ghost_batch_size`, `fit(hp, ...)`
  the learning-rate multiplier (and optionally the regime-adaptation factor)
  and trains through `tfgap.training.train`.
- `ghost_batch_candidates`, `regime_adaptation_candidates`: the search space.
- `make_tuner`, `run_search`, `finish_search`: Hyperband, Bayesian
  optimization or random search, resumable, choosing on the validation split
  (`OBJECTIVE` = "val_accuracy") and writing the best setting as a
  `TrainConfig` JSON (and, with `export_dir`, the best trial's network as a
  SavedModel); the chosen trial's test accuracy (`HELD_OUT_METRIC`) is only
  reported. `trial_number`: a trial's "Trial #N" as Keras Tuner prints it.

The tuner depends on `tfgap.training` and the library, never on the command
line: `python -m tfgap.recipes.tune` builds the config from a recipe's flags
and writes the best one back as that recipe's flagfile
(`tfgap.recipes.recipe_flags.write_flagfile`). Needs the TensorFlow backend.
"""

# Before anything imports TensorFlow: the tuner trains through tfgap.training.
from tfgap import backend

backend.require_tensorflow("tfgap.tuning")

from tfgap.tuning.hypermodel import (  # noqa: E402
    HELD_OUT_METRIC,
    OBJECTIVE,
    GhostBatchHyperModel,
    ghost_batch_candidates,
    regime_adaptation_candidates,
)
from tfgap.tuning.search import (  # noqa: E402
    TUNERS,
    finish_search,
    make_tuner,
    run_search,
    trial_number,
)

__all__ = [
    "HELD_OUT_METRIC",
    "OBJECTIVE",
    "TUNERS",
    "GhostBatchHyperModel",
    "finish_search",
    "ghost_batch_candidates",
    "make_tuner",
    "regime_adaptation_candidates",
    "run_search",
    "trial_number",
]
