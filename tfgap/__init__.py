"""tfgap: large-batch training without the generalization gap, for Keras 3.

Public API:

- `tfgap.GhostBatchNormalization` (`tfgap.layers`): Ghost Batch Normalization
  (Hoffer et al. 2017) as a `keras.layers.BatchNormalization` subclass, and
  `tfgap.layers.ghostify` to apply it to an existing model.
- `tfgap.LargeBatchSchedule` (`tfgap.schedules`): sqrt/linear learning-rate
  scaling with regime adaptation and warm-up; batch-size phases (Smith et al.).
- `tfgap.diagnostics`: weight distance, Keskar sharpness, Hessian curvature,
  gradient noise scale, 1-D interpolation.
- `tfgap.models`: the papers' networks with the normalization layer injected;
  `tfgap.data`: input pipelines; `tfgap.training`: the one trainer behind
  the recipes (`python -m tfgap.recipes.<name>`).
- `tfgap.LARS` (`tfgap.optimizers`): layer-wise adaptive rate scaling
  (You, Gitman & Ginsburg 2017), a Keras optimizer.
- `tfgap.SAM` (`tfgap.sam`): Sharpness-Aware Minimization (Foret et al. 2021;
  adaptive: Kwon et al. 2021) as a `keras.Model` wrapper for `model.fit`.

Importing tfgap has no side effect other than registering its Keras objects.
"""

from tfgap import diagnostics, layers, models, schedules
from tfgap.layers import GhostBatchNormalization, ghostify
from tfgap.schedules import LargeBatchSchedule
from tfgap import optimizers, sam
from tfgap.optimizers import LARS
from tfgap.sam import SAM

__version__ = "0.1.0"
