"""The one trainer for every strategy.

- `TrainConfig`: every resolved setting of a run (validated, JSON round-trip).
- `train(config, *, strategy=None, callbacks=())`: the custom distributed loop;
  resumes from `config.model_dir`, exports a SavedModel, writes `result.json`,
  returns a `TrainResult` (the record and the trained model).
- `build_model(config)`: the network a config trains (every caller builds it here).
- `plan_steps`: the one place where epochs become steps (regime adaptation).
- `make_strategy`, `split_logical_cpus`, `resolve_strategy_name`: strategies by name.
- `export_saved_model`: atomic SavedModel export serving raw inputs.
- Errors: `ConfigError` (a `ValueError`), `NonFiniteLossError`, `Preempted` (SIGTERM) and
  `Interrupted` (Ctrl-C), `CheckpointError` (no intact checkpoint to resume), `RunDirError`
  and `RunDirBusy` (a run directory that cannot be used, or another process training in it).
- `rundir`: the run directory's file names and files (`write_json`, `read_result`,
  `finished_result`, `restore_model`).

The trainer is built on `tf.distribute` and needs the TensorFlow backend of
Keras: under another backend, importing `tfgap.training` raises one clear
`ImportError` (`tfgap.backend.require_tensorflow`).
"""

from tfgap import backend

backend.require_tensorflow("tfgap.training")  # before anything imports TensorFlow

from tfgap.training.checkpointing import CheckpointError, Interrupted, Preempted  # noqa: E402
from tfgap.training.config import (  # noqa: E402
    ConfigError,
    TrainConfig,
    parse_regime_adaptation,
)
from tfgap.training.export import (  # noqa: E402
    ExportPathError,
    check_export_path,
    export_saved_model,
)
from tfgap.training.strategy import (  # noqa: E402
    make_strategy,
    resolve_strategy_name,
    split_logical_cpus,
)
from tfgap.training.rundir import (  # noqa: E402
    RunDirBusy,
    RunDirError,
    finished_result,
    read_result,
    restore_model,
    write_json,
)
from tfgap.training.build import build_model  # noqa: E402
from tfgap.training.plan import StepPlan, plan_steps  # noqa: E402
from tfgap.training.result import TrainResult  # noqa: E402
from tfgap.training.trainer import NonFiniteLossError, train  # noqa: E402

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ExportPathError",
    "Interrupted",
    "NonFiniteLossError",
    "Preempted",
    "RunDirBusy",
    "RunDirError",
    "StepPlan",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "check_export_path",
    "finished_result",
    "export_saved_model",
    "make_strategy",
    "parse_regime_adaptation",
    "plan_steps",
    "read_result",
    "resolve_strategy_name",
    "restore_model",
    "split_logical_cpus",
    "train",
    "write_json",
]
