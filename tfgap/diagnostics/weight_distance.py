"""Distance of the weights from their initial values ("ultra-slow diffusion").

`weight_distance` is the one definition of `||w - w_0||_2`; the
`WeightDistance` callback and the trainer (`tfgap.training.train`, inside a
compiled function) both compute it with it.
"""

import math

import keras
from keras import ops

from tfgap import backend
from tfgap.diagnostics.diffusion import LogSpacedSteps, fit_diffusion_slope


def squared_distances(weights, initial_weights):
    """`sum((w - w_0) ** 2)` of each tensor: the squares behind `weight_distance`.

    Computed with `keras.ops` where the tensors are (no copy to the host), in
    float64 where the backend has it (`tfgap.backend.supports_x64`; float32
    on JAX without `jax_enable_x64`). Works eagerly and inside compiled code.

    Args:
        weights: list of variables or tensors, the current weights `w`.
        initial_weights: list of variables or tensors of the same shapes, `w_0`.

    Returns:
        A list of scalar tensors, one per weight.

    Example:

    >>> import numpy as np
    >>> w0 = [np.zeros(2, "float32"), np.zeros((), "float32")]
    >>> w = [np.array([3.0, 4.0], "float32"), np.array(12.0, "float32")]
    >>> [float(s) for s in squared_distances(w, w0)]
    [25.0, 144.0]
    """
    weights, initial_weights = list(weights), list(initial_weights)
    if len(weights) != len(initial_weights):
        raise ValueError(
            f"Expected as many weights as initial weights. Received: {len(weights)} weights "
            f"and {len(initial_weights)} initial weights."
        )
    dtype = "float64" if backend.supports_x64() else "float32"
    return [ops.sum(ops.square(ops.cast(w, dtype) - ops.cast(w0, dtype)))
            for w, w0 in zip(weights, initial_weights)]


def weight_distance(weights, initial_weights):
    """`||w - w_0||_2`: the distance of all the weights together from their initial values.

    The square root of the sum of `squared_distances` (summed in order), a
    scalar tensor. The trainer calls it inside a `tf.function` over the
    model's variables and its checkpointed initial weights, so that a record
    costs no copy of the weights to the host.

    Args:
        weights: list of variables or tensors, the current weights `w`.
        initial_weights: list of variables or tensors of the same shapes, `w_0`.

    Returns:
        A scalar tensor (float64 where the backend has it).

    Example:

    >>> import numpy as np
    >>> w0 = [np.zeros(2, "float32"), np.zeros((), "float32")]
    >>> w = [np.array([3.0, 4.0], "float32"), np.array(12.0, "float32")]
    >>> float(weight_distance(w, w0))    # sqrt(9 + 16 + 144)
    13.0
    """
    squared = squared_distances(weights, initial_weights)
    total = ops.zeros((), squared[0].dtype) if squared else ops.zeros(())
    for value in squared:
        total = total + value
    return ops.sqrt(total)


class WeightDistance(keras.callbacks.Callback):
    """Tracks `||w_t - w_0||_2`, the distance of the weights from initialization.

    Hoffer et al. (2017) observe that the weights move away from their
    initialization like a random walk on a random potential, whose distance
    grows only logarithmically with the number of updates `t`:

    ```
    ||w_t - w_0||_2 ~ a * log(t) + b
    ```

    With plain large-batch training the slope `a` differs between batch sizes;
    after square-root learning-rate scaling and Ghost Batch Normalization the
    curves coincide, and regime adaptation (more updates) lets the large batch
    travel as far as the small one. The distance is the signal for when to
    drop the learning rate.

    As a callback, it snapshots the trainable weights when training begins,
    adds `weight_distance` (over all trainable weights) to the logs of every
    epoch (so it lands in `History` and TensorBoard), and records
    `(step, distance)` with per-layer distances at log-spaced steps,
    `records_per_decade` per factor of 10 (`tfgap.diagnostics.LogSpacedSteps`:
    1, 2, 3, 4, 6, 7, 8, 10, 13, 16, 20, 26, 32, 40, 51, 64, 80, 100, ... for
    r = 10). `diffusion_slope()` fits the law above to the record
    (`tfgap.diagnostics.fit_diffusion_slope`). Steps count optimizer updates
    (training batches) since the snapshot, across epochs and across calls to
    `fit`; `reset()` starts over. It works on every Keras backend and under a
    `tf.distribute` strategy; the distances are `squared_distances` of the
    weights where they are, in float64 where the backend has it (float32 on
    JAX without `jax_enable_x64`), and only the per-tensor sums come to the
    host. Under JAX,
    `fit` keeps the training state off the model between batches; the
    callback syncs it back only at record steps (and at the end of epochs, as
    Keras does), not after every batch.

    Without `model.fit`: a custom training loop uses the same object through
    `start(model)`, then `record(step)` (always records) or `maybe_record(step)`
    (records only at log-spaced steps), and `distance()` at any time.

    Per-layer distances are keyed by the variable's path without its last
    component (e.g. `"sequential/dense"`), so a layer's kernel and bias are
    summed together.

    Paper: Hoffer, Hubara & Soudry, "Train longer, generalize better: closing
    the generalization gap in large batch training of neural networks", NIPS
    2017 (arXiv 1705.08741), section 3 and Figure 1.

    Args:
        records_per_decade: log-spaced records per factor 10 of steps (>= 1).

    Attributes:
        steps: the recorded steps (list of int).
        distances: the total distance at each recorded step (list of float).
        layer_distances: dict from layer path to the list of its distances at
            the recorded steps.
        records: the `(step, distance)` pairs.

    Example:

    >>> import numpy as np, keras
    >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> y = x.sum(axis=1, keepdims=True)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> wd = WeightDistance()
    >>> history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[wd])
    >>> len(history.history["weight_distance"]), wd.steps[:5]
    (2, [1, 2, 3, 4, 6])

    In a custom training loop:

    >>> wd = WeightDistance().start(model)
    >>> for step in range(1, 4):
    ...     _ = model.train_on_batch(x[:4], y[:4])
    ...     _ = wd.maybe_record(step)
    >>> wd.steps
    [1, 2, 3]
    """

    def __init__(self, records_per_decade=10):
        super().__init__()
        if isinstance(records_per_decade, bool) or int(records_per_decade) < 1:
            raise ValueError(
                f"Expected records_per_decade >= 1; received {records_per_decade!r}."
            )
        self.records_per_decade = int(records_per_decade)
        self._initial = None
        self._snapshot_model = None
        self.reset()

    # -- public API for any training loop -----------------------------------
    def reset(self):
        """Forgets the snapshot and the record; the next start snapshots anew."""
        self._initial = None
        self._snapshot_model = None
        self._base_iterations = None
        self._batches = 0
        self._epoch_start = 0
        self._due = LogSpacedSteps(self.records_per_decade)
        self.steps = []
        self.distances = []
        self.layer_distances = {}
        return self

    def start(self, model=None):
        """Snapshots the current trainable weights of `model` as `w_0`.

        Args:
            model: the model to track (default: the model set by Keras).

        Returns:
            self, so that `wd = WeightDistance().start(model)` reads well.
        """
        if model is not None:
            self.set_model(model)
        model = self._require_model()
        self.reset()
        variables = model.trainable_variables
        # A copy through the host: no buffer shared with the variable (or donated by JAX).
        self._initial = [ops.convert_to_tensor(ops.convert_to_numpy(v)) for v in variables]
        self._paths = [_layer_path(v) for v in variables]
        self._snapshot_model = model
        return self

    def distance(self):
        """The current `||w_t - w_0||_2` over all trainable weights (a float)."""
        return math.sqrt(sum(self._squared_by_layer().values()))

    def current_layer_distances(self):
        """The current distance of each layer's weights (dict path -> float)."""
        return {k: math.sqrt(v) for k, v in self._squared_by_layer().items()}

    def record(self, step):
        """Records `(step, distance)` and the per-layer distances; returns the distance."""
        squared = self._squared_by_layer()
        total = math.sqrt(sum(squared.values()))
        self.steps.append(int(step))
        self.distances.append(total)
        for path, value in squared.items():
            self.layer_distances.setdefault(path, []).append(math.sqrt(value))
        return total

    def maybe_record(self, step):
        """Records if `step` reached the next log-spaced step; returns the distance or None."""
        if not self._due(int(step)):
            return None
        return self.record(step)

    @property
    def records(self):
        """The `(step, distance)` pairs recorded so far."""
        return list(zip(self.steps, self.distances))

    def diffusion_slope(self, min_step=1):
        """Least-squares fit of `distance = a * log(step) + b` over the record.

        Args:
            min_step: ignore records before this step (the first few updates
                are often transient).

        Returns:
            The tuple `(a, b)`; `a` is the diffusion slope.
        """
        return fit_diffusion_slope(self.steps, self.distances, min_step)

    # -- Keras callback hooks -------------------------------------------------
    def on_train_begin(self, logs=None):
        if self._initial is None or self._snapshot_model is not self.model:
            self.start()
            self._base_iterations = self._iterations()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._batches

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last batch of the execution in this epoch (also with
        # steps_per_execution > 1), so this counts batches without touching
        # the model: under JAX, reading the model syncs the training state
        # back to it, which only record steps pay for.
        self._batches = self._epoch_start + int(batch) + 1
        if self._batches < self._due.next_step:
            return
        # The optimizer's update count is exact (e.g. when a loss-scale
        # optimizer skips a step).
        iterations = self._iterations()
        if iterations is None or self._base_iterations is None:
            step = self._batches
        else:
            step = iterations - self._base_iterations
        self.maybe_record(step)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["weight_distance"] = self.distance()

    # -- internals -------------------------------------------------------------
    def _require_model(self):
        model = getattr(self, "_model", None) or getattr(self, "model", None)
        if model is None:
            raise ValueError(
                "Expected a model: pass it to start(model) or use the callback in fit(); "
                "received none."
            )
        return model

    def _iterations(self):
        optimizer = getattr(self.model, "optimizer", None)
        iterations = getattr(optimizer, "iterations", None)
        return None if iterations is None else int(keras.ops.convert_to_numpy(iterations))

    def _squared_by_layer(self):
        if self._initial is None:
            raise ValueError(
                "Expected a weight snapshot: call start(model) (fit() does it) before "
                "asking for a distance; received none."
            )
        model = self._snapshot_model
        if hasattr(model, "jax_state_sync"):
            model.jax_state_sync()  # JAX's fit holds the state off the model
        variables = model.trainable_variables
        if len(variables) != len(self._initial):
            raise ValueError(
                f"Expected {len(self._initial)} trainable variables as at the snapshot; "
                f"the model now has {len(variables)}. Call start() again."
            )
        squared = squared_distances(variables, self._initial)
        squared = ops.convert_to_numpy(ops.stack(squared)) if squared else []  # one transfer
        out = {}
        for path, value in zip(self._paths, squared):
            out[path] = out.get(path, 0.0) + float(value)
        return out


def _layer_path(variable):
    path = getattr(variable, "path", None) or variable.name
    return path.rsplit("/", 1)[0] if "/" in path else path
