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
- `tfgap.advisor`: the batch-size advisor (McCandlish et al. 2018): the
  gradient noise scale with its standard error, predicted steps and examples
  per candidate batch, rates, ghost size and one recommendation
  (`python -m tfgap.recipes.advise`).
- `tfgap.adaptive`: AdaScale (Johnson et al. 2020): a base batch's
  learning-rate regime run at any batch, with a gain from the gradient noise
  scale (`adascale_gain`, `Progress`, `AdaScaleLearningRate`;
  `AdaScaleModel` for `model.fit`, TensorFlow backend).

Backends: `tfgap.layers`, `tfgap.models`, `tfgap.schedules`,
`tfgap.optimizers`, `tfgap.diagnostics` and `tfgap.backend` run on every
Keras backend (TensorFlow, JAX, PyTorch; see docs/backends.md). The trainer,
the recipes and `tfgap.SAM` use `tf.distribute` and `tf.GradientTape` and
need the TensorFlow backend.

Importing tfgap has no side effect other than registering its Keras objects.
Under the TensorFlow backend everything above is imported at once. Under JAX
or PyTorch, importing tfgap does not import TensorFlow, and `tfgap.sam` /
`tfgap.SAM` say that they need the TensorFlow backend.
"""

import importlib
import sys

from tfgap import _logs

_logs.quiet_for_command(sys.argv)  # `python -m tfgap.recipes....`: before Keras imports TF

import keras  # noqa: E402

from tfgap import (  # noqa: E402
    adaptive, advisor, backend, diagnostics, layers, models, optimizers, schedules,
)
from tfgap.layers import GhostBatchNormalization, ghostify  # noqa: E402
from tfgap.optimizers import LARS  # noqa: E402
from tfgap.schedules import LargeBatchSchedule  # noqa: E402

__version__ = "0.1.0"

# TensorFlow-backend only: name -> (module, attribute or None for the module
# itself), imported at once under TensorFlow, an ImportError under the others.
_TENSORFLOW_ONLY = {
    "sam": ("tfgap.sam", None),
    "SAM": ("tfgap.sam", "SAM"),
}


def _load(name, table):
    module_name, attribute = table[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __getattr__(name):
    if name in _TENSORFLOW_ONLY:
        backend.require_tensorflow(f"tfgap.{name}")
        return _load(name, _TENSORFLOW_ONLY)
    raise AttributeError(f"module 'tfgap' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_TENSORFLOW_ONLY))


if keras.backend.backend() == "tensorflow":
    for _name in _TENSORFLOW_ONLY:
        _load(_name, _TENSORFLOW_ONLY)
    del _name
