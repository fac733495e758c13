"""Keras Tuner search of the ghost batch size and the learning rate (`python -m tfgap.recipes.tune`).

- `GhostBatchHyperModel`: `build(hp)` picks `ghost_batch_size`, `fit(hp, ...)`
  the learning-rate multiplier (and optionally the regime-adaptation factor)
  and trains through `tfgap.training.train`.
- `ghost_batch_candidates`, `regime_adaptation_candidates`: the search space.
- `make_tuner`, `run_search`, `finish_search`: Hyperband, Bayesian
  optimization or random search, resumable, choosing on the validation split
  (`OBJECTIVE` = "val_accuracy") and writing the best setting as a recipe
  flagfile; the chosen trial's test accuracy (`HELD_OUT_METRIC`) is only
  reported.
- `available_recipes`, `parse_recipe`, `config_flags`, `write_recipe_file`:
  recipes by name and configs as flagfiles.
"""

from tfgap.tuning.hypermodel import (
    HELD_OUT_METRIC,
    OBJECTIVE,
    GhostBatchHyperModel,
    ghost_batch_candidates,
    regime_adaptation_candidates,
)
from tfgap.tuning.recipe_files import (
    available_recipes,
    config_flags,
    parse_recipe,
    write_recipe_file,
)
from tfgap.tuning.search import TUNERS, finish_search, make_tuner, run_search

__all__ = [
    "HELD_OUT_METRIC",
    "OBJECTIVE",
    "TUNERS",
    "GhostBatchHyperModel",
    "available_recipes",
    "config_flags",
    "finish_search",
    "ghost_batch_candidates",
    "make_tuner",
    "parse_recipe",
    "regime_adaptation_candidates",
    "run_search",
    "write_recipe_file",
]
