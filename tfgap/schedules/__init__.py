"""Learning-rate and batch-size schedules for large-batch training.

- `LargeBatchSchedule`: a small-batch regime adapted to a large batch
  (sqrt/linear scaling, regime adaptation, warm-up; Hoffer et al. 2017);
  `model.fit(..., epochs=schedule.fit_epochs)` trains every step it plans.
- `stretch_factor`, `adapted_epochs`, `adapted_steps`,
  `learning_rate_multiplier`: the regime arithmetic, in one place.
- `batch_size_phases`, `fit_batch_size_schedule`, `BatchSizePhase`: grow the
  batch instead of decaying the rate (Smith et al. 2018).
"""

from tfgap.schedules.batch_size import BatchSizePhase, batch_size_phases, fit_batch_size_schedule
from tfgap.schedules.large_batch import LargeBatchSchedule
from tfgap.schedules.regime import (
    adapted_epochs,
    adapted_steps,
    learning_rate_multiplier,
    stretch_factor,
)

__all__ = [
    "BatchSizePhase",
    "LargeBatchSchedule",
    "adapted_epochs",
    "adapted_steps",
    "batch_size_phases",
    "fit_batch_size_schedule",
    "learning_rate_multiplier",
    "stretch_factor",
]
