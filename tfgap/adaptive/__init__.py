"""Adaptive large-batch training: the learning rate and the batch from the gradient noise.

AdaScale (Johnson, Agrawal, Gu & Guestrin 2020, "AdaScale SGD: A
User-Friendly Algorithm for Distributed Training", arXiv 2007.05105) runs a
learning-rate regime written for a base batch `b0` at a batch `B >= b0`:
each step's rate is the base schedule, read at the progress `tau` (in
`b0`-steps), times the gain `r = (1 + B_simple / b0) / (1 + B_simple / B)`,
and `tau` advances by `r`. `B_simple` is the gradient noise scale that
`tfgap.advisor` measures from the training gradients.

- `adascale_gain(b_simple, base_batch, batch)`: the gain (NumPy);
  `gain_formula`: its arithmetic for NumPy or `keras.ops`.
- `Progress`: the host's float64 progress, with a checkpointable state.
- `AdaScaleLearningRate(schedule)`: `gain * schedule(progress)` as an
  optimizer's `learning_rate`, over two float64 variables.
- `AdaScaleModel(model, base_batch_size)` (TensorFlow backend): all of it
  in `model.fit`, on `tfgap.advisor.GradientStatisticsModel`'s statistics.

The adaptive batch size's building blocks are the submodules
`tfgap.adaptive.goodput` (choosing the batch by goodput) and
`tfgap.adaptive.rebatch` (an epoch's order in batches of changing size).
"""

from tfgap.adaptive.gain import Progress, adascale_gain, gain_formula
from tfgap.adaptive.schedule import AdaScaleLearningRate

__all__ = ["AdaScaleLearningRate", "AdaScaleModel", "Progress", "adascale_gain",
           "gain_formula"]

# TensorFlow-backend only (tf.GradientTape, tf.distribute): imported on first use, so that
# importing tfgap.adaptive imports no TensorFlow under JAX or PyTorch.
_LAZY = {"AdaScaleModel": "tfgap.adaptive.fit"}


def __getattr__(name):
    if name in _LAZY:
        import importlib  # noqa: PLC0415

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfgap.adaptive' has no attribute {name!r}")
