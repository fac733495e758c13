"""BN's moving statistics under several rules from one training: `MovingStatistics`.

Batch normalization's momentum and its ghost-batch rule (`moving_update`)
only decide how the moving mean and variance follow the batch statistics;
the forward and backward passes, hence the weights, never read them in
training. Two runs that differ only in these settings therefore train
bit-identically and differ only in the moving statistics used at inference.
`MovingStatistics` keeps, beside the model's own, the moving statistics that
other rules would have produced, in the same training steps and from the
same batch (or ghost-batch) statistics, so one training gives every such
row of the study (`tfgap.study.regimes.trainings`).

How: before the trainer traces its step function (`set_model`), every
normalization layer of the model gets, per extra rule, a pair of shadow
variables, and its instance is wrapped so that each training call also
advances them:

- a `GhostBatchNormalization` with ghost batches: its moving-statistics rule
  (`GhostBatchNormalization._moving_statistics`, the one home of the
  "sequential", "averaged" and "full_batch" rules) is applied to the shadow
  variables with the rule's momentum and `moving_update`, on the ghost
  statistics the layer computed;
- plain BN (`virtual_batch_size=None`, or `keras.layers.BatchNormalization`):
  Keras' update `moving * momentum + batch * (1 - momentum)` on the batch
  moments the layer computed (`moving_update` means nothing there).

The shadow statistics are those a run trained with the rule would end with,
bit for bit (the study's tests train both and compare). They are only valid
for a run trained from its first step in one call of `train`: a resumed run
has lost them (`complete` is then False and `statistics()` refuses).

Example:

>>> import keras, numpy as np
>>> from tfgap.layers import GhostBatchNormalization
>>> model = keras.Sequential([keras.Input((3,)), GhostBatchNormalization(
...     virtual_batch_size=2, momentum=0.9, name="bn")])
>>> keep = MovingStatistics({"slow": (0.99, "averaged")})
>>> keep.set_model(model)
>>> x = np.arange(12, dtype="float32").reshape(4, 3)
>>> _ = model(x, training=True)  # ghosts [0:2] and [2:4], one training call
>>> ghosts = x.reshape(2, 2, 3).mean(axis=1)  # each ghost's mean
>>> expected = 0.99 * 0.0 + 0.01 * ghosts.mean(axis=0)  # "averaged": one step, pooled
>>> np.allclose(keep.statistics()["slow"]["bn"]["moving_mean"], expected)
True
"""

import contextlib

import keras
import numpy as np
from keras import ops

from tfgap.layers import GhostBatchNormalization

STATISTICS = ("moving_mean", "moving_variance")


def norm_layers(model):
    """The model's batch-normalization layers (GBN or Keras BN), in model order."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)]


def read_statistics(model):
    """`{layer name: {"moving_mean": array, "moving_variance": array}}` of every BN layer."""
    return {layer.name: {k: np.array(getattr(layer, k).numpy()) for k in STATISTICS}
            for layer in norm_layers(model)}


@contextlib.contextmanager
def swapped(model, statistics):
    """Gives the model's BN layers `statistics` (as `read_statistics` returns) for a while.

    The model's own moving statistics are put back on exit, bit for bit,
    also when an exception interrupts.

    Example:

    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((2,)),
    ...                           keras.layers.BatchNormalization(name="bn")])
    >>> other = {"bn": {"moving_mean": np.array([1.0, 2.0], "float32"),
    ...                 "moving_variance": np.array([4.0, 4.0], "float32")}}
    >>> with swapped(model, other):
    ...     print(model(np.zeros((1, 2), "float32")).numpy().round(2))
    [[-0.5 -1. ]]
    >>> read_statistics(model)["bn"]["moving_mean"]
    array([0., 0.], dtype=float32)
    """
    layers = {layer.name: layer for layer in norm_layers(model)}
    missing = sorted(set(layers) ^ set(statistics))
    if missing:
        raise ValueError(f"Expected moving statistics for exactly the model's BN layers "
                         f"{sorted(layers)}. Received layers that differ: {missing}")
    saved = read_statistics(model)
    try:
        for name, layer in layers.items():
            for key in STATISTICS:
                getattr(layer, key).assign(statistics[name][key])
        yield model
    finally:
        for name, layer in layers.items():
            for key in STATISTICS:
                getattr(layer, key).assign(saved[name][key])


class _Shadow:
    """The attributes `GhostBatchNormalization._moving_statistics` reads, for one rule."""

    def __init__(self, layer, momentum, moving_update):
        import tensorflow as tf  # noqa: PLC0415  (the study trains with TensorFlow)

        self.momentum, self.moving_update = float(momentum), moving_update
        self.moving_mean = tf.Variable(np.array(layer.moving_mean.numpy()), trainable=False)
        self.moving_variance = tf.Variable(np.array(layer.moving_variance.numpy()),
                                           trainable=False)

    def keras_step(self, mean, variance):
        """Keras' plain-BN update, with the expressions of `BatchNormalization.call`."""
        moving_mean = ops.cast(self.moving_mean, mean.dtype)
        moving_variance = ops.cast(self.moving_variance, variance.dtype)
        self.moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            moving_variance * self.momentum + variance * (1.0 - self.momentum))

    def ghost_step(self, mean, variance, counts, masked, shards):
        """The GBN rule `moving_update` at `momentum`, as the layer itself applies it."""
        new_mean, new_variance = GhostBatchNormalization._moving_statistics(
            self, mean, variance, counts, masked, shards)
        self.moving_mean.assign(ops.cast(new_mean, self.moving_mean.dtype))
        self.moving_variance.assign(ops.cast(new_variance, self.moving_variance.dtype))


class MovingStatistics(keras.callbacks.Callback):
    """Keeps the moving statistics of other BN rules beside the model's own, in one training.

    Pass it among `tfgap.training.train`'s callbacks; after the run,
    `statistics()[rule][layer]` holds the `moving_mean` and `moving_variance`
    a run with that rule would have ended with (see the module docstring).
    It must get the model before the first training step is traced (the
    trainer calls `set_model` first), on a single replica.

    Args:
        rules: `{name: (momentum, moving_update)}`, each a BN momentum (Keras
            convention, weight on the old value) and a `GhostBatchNormalization`
            `moving_update` (`"sequential"`, `"averaged"` or `"full_batch"`).

    Attributes:
        complete: False when the training did not start at its first step
            (a resumed run), whose earlier steps the shadows never saw.
    """

    def __init__(self, rules):
        super().__init__()
        self.rules = {str(k): (float(m), str(u)) for k, (m, u) in dict(rules).items()}
        for name, (momentum, update) in self.rules.items():
            if not 0.0 <= momentum < 1.0:
                raise ValueError(f"Expected a momentum in [0, 1) for rule {name!r}. "
                                 f"Received: {momentum!r}")
            if update not in ("sequential", "averaged", "full_batch"):
                raise ValueError(f"Expected moving_update 'sequential', 'averaged' or "
                                 f"'full_batch' for rule {name!r}. Received: {update!r}")
        self.shadows = {}
        self.complete = True
        self._first_step_seen = False

    def set_model(self, model):
        super().set_model(model)
        if self.shadows:
            return  # already attached (the trainer may set the model more than once)
        for layer in norm_layers(model):
            _check_layer(layer)
            shadows = {name: _Shadow(layer, m, u) for name, (m, u) in self.rules.items()}
            self.shadows[layer.name] = shadows
            if getattr(layer, "virtual_batch_size", None) is None:
                layer._moments = _after_moments(layer._moments, shadows)
            else:
                layer._moving_statistics = _before_rule(layer._moving_statistics, shadows)

    def on_train_batch_end(self, batch, logs=None):
        if not self._first_step_seen:
            self._first_step_seen = True
            step = (logs or {}).get("step")
            if step is not None and int(step) != 1:
                self.complete = False

    def statistics(self):
        """`{rule: {layer name: {"moving_mean": array, "moving_variance": array}}}`.

        Raises:
            RuntimeError: the training was resumed (`complete` is False).
        """
        if not self.complete:
            raise RuntimeError("The run was resumed from a checkpoint: the moving statistics "
                               "of the other rules missed its earlier steps. Train it anew.")
        return {rule: {layer: {k: np.array(getattr(shadows[rule], k).numpy())
                               for k in STATISTICS}
                       for layer, shadows in self.shadows.items()}
                for rule in self.rules}


def _check_layer(layer):
    if getattr(layer, "renorm", False):
        raise ValueError(f"Layer {layer.name!r} uses batch renormalization: its moving "
                         "statistics follow other rules; MovingStatistics does not keep them.")
    value = getattr(layer.moving_mean, "value", None)
    replicas = getattr(value, "values", None)
    if replicas is not None and len(replicas) > 1:
        raise ValueError(f"Layer {layer.name!r} is mirrored over {len(replicas)} replicas; "
                         "MovingStatistics keeps its statistics on a single replica only.")


def _after_moments(moments, shadows):
    def wrapped(inputs, mask):
        mean, variance = moments(inputs, mask)
        for shadow in shadows.values():
            shadow.keras_step(mean, variance)
        return mean, variance

    return wrapped


def _before_rule(rule, shadows):
    def wrapped(mean, variance, counts=None, masked=False, shards=1):
        for shadow in shadows.values():
            shadow.ghost_step(mean, variance, counts, masked, shards)
        return rule(mean, variance, counts, masked, shards)

    return wrapped


def save(path, statistics):
    """Writes `MovingStatistics.statistics()` to a `.npz` file (`load` reads it back)."""
    arrays = {f"{rule}/{layer}/{key}": value
              for rule, layers in statistics.items()
              for layer, values in layers.items() for key, value in values.items()}
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load(path):
    """The statistics `save` wrote: `{rule: {layer: {"moving_mean", "moving_variance"}}}`."""
    out = {}
    with np.load(path) as arrays:
        for name in arrays.files:
            rule, layer, key = name.rsplit("/", 2)
            out.setdefault(rule, {}).setdefault(layer, {})[key] = np.array(arrays[name])
    return out
