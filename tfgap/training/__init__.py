"""The one trainer for every strategy.

- `TrainConfig`: every resolved setting of a run (validated, JSON round-trip).
- `train(config, *, strategy=None, callbacks=())`: the custom distributed loop;
  resumes from `config.model_dir`, exports a SavedModel, writes `result.json`.
- `plan_steps`: the one place where epochs become steps (regime adaptation).
- `make_strategy`, `split_logical_cpus`, `resolve_strategy_name`: strategies by name.
- `export_saved_model`: atomic SavedModel export serving raw inputs.
- Errors: `ConfigError` (a `ValueError`), `NonFiniteLossError`, `Preempted`.
"""

from tfgap.training.checkpointing import Preempted
from tfgap.training.config import ConfigError, TrainConfig, parse_regime_adaptation
from tfgap.training.export import export_saved_model
from tfgap.training.steps import StepPlan, plan_steps
from tfgap.training.strategy import make_strategy, resolve_strategy_name, split_logical_cpus
from tfgap.training.trainer import NonFiniteLossError, read_result, train

__all__ = [
    "ConfigError",
    "NonFiniteLossError",
    "Preempted",
    "StepPlan",
    "TrainConfig",
    "export_saved_model",
    "make_strategy",
    "parse_regime_adaptation",
    "plan_steps",
    "read_result",
    "resolve_strategy_name",
    "split_logical_cpus",
    "train",
]
