"""`advise_model`: the batch-size advice for your own compiled Keras model, in one call.

TensorFlow backend only (the measurement run trains through
`tfgap.advisor.GradientStatisticsModel`).
"""

import math
import numbers

import keras
import numpy as np

from tfgap import _validation, backend
from tfgap.advisor.advice import advise
from tfgap.advisor.curvature import check_dataset, measure_noise_scales
from tfgap.advisor.gradient_statistics import GradientStatisticsError
from tfgap.advisor.measure import curvature_batch_size, statistics_decay

backend.require_tensorflow("tfgap.advisor.advise_model")

import tensorflow as tf  # noqa: E402

from tfgap.advisor.fit_statistics import GradientStatisticsModel  # noqa: E402

MIN_STEPS, MAX_STEPS = 100, 1000


def measurement_steps(steps_per_epoch):
    """The default length of the measurement run: two epochs, within [100, 1000] steps.

    `B_simple` grows as the loss leaves its first transient, so a run of a
    few steps measures too little; two epochs let the gradient settle on the
    data, 100 steps at least give the moving averages (decay
    `(steps - 2) / (steps + 2)`, whose horizon `(1 + d) / (1 - d)` is the
    second half of the run) enough independent steps, and 1000 bound the
    cost on large data sets. Unknown epoch length (an infinite dataset): 1000.

    Example:

    >>> measurement_steps(10), measurement_steps(200), measurement_steps(5000)
    (100, 400, 1000)
    """
    if steps_per_epoch is None:
        return MAX_STEPS
    return int(min(max(2 * steps_per_epoch, MIN_STEPS), MAX_STEPS))


def advise_model(model, x, y=None, *, batch_size, max_batch_size, epochs, steps=None,
                 validation_data=None, num_draws=32, num_train_examples=None, seed=0,
                 verbose=0):
    """Measures your compiled model on your data and advises the batch size to train at.

    1. **A short run** of `model.fit` at `batch_size` through
       `tfgap.advisor.GradientStatisticsModel` (a fresh copy of the compiled
       optimizer, from its config; the compiled loss), `steps` steps
       (default `measurement_steps`: two epochs within [100, 1000]), which
       measures `B_simple` from the training gradients themselves (moving
       averages over about the run's second half).
    2. **`B_noise` and `eps_max`** at the end of the run,
       `tfgap.advisor.measure_noise_scales` (training-mode gradients and
       Hessian-vector products on independent batches, `num_draws` draws;
       for arrays at the small batch `curvature_batch_size`, for a dataset
       at its own batches).
    3. **The advice**, `tfgap.advisor.advise`: `B_crit = B_simple` (`B_noise`
       and `eps_opt` reported beside it), candidates (doublings of
       `batch_size` up to `max_batch_size`) with their cost relative to the
       minimum, the one closest to `B_crit`, and its learning rate (your
       optimizer's rate times AdaScale's gain from `B_simple` for SGD; the
       sqrt rule for other optimizers).

    **Your model is not modified**: the run trains its layers, then every
    variable (weights, normalization statistics, random-seed state) is
    restored bit for bit; its optimizer is not used.

    What `model.fit` needs: `advice.fit_arguments()` gives the batch size,
    a `tfgap.LargeBatchSchedule` for the optimizer (the constant rate
    adapted: warm-up, regime adaptation to the predicted steps) and the
    epochs to pass `fit`.

    Paper: McCandlish et al. 2018, "An Empirical Model of Large-Batch
    Training" (arXiv 1812.06162).

    Args:
        model: a compiled `keras.Model` (optimizer and one loss).
        x: input array(s), or a batched `tf.data.Dataset` of `(x, y)` batches
            of `batch_size` (shuffle it; it is repeated for the run).
        y: targets for arrays; `None` with a dataset.
        batch_size: the small batch you would train at (an int > 0).
        max_batch_size: the largest batch to consider (>= `batch_size`).
        epochs: how long you would train at `batch_size`, in epochs (the
            predicted steps scale from it).
        steps: the measurement run's steps (default: `measurement_steps`).
        validation_data: passed to the run's `fit` (its last values are
            recorded in `advice.settings`).
        num_draws: `measure_noise_scales`' draws.
        num_train_examples: examples per epoch, for a dataset of unknown
            length (default: arrays' length, or the dataset's batches times
            `batch_size`).
        seed: the shuffle and sampling seed.
        verbose: `fit`'s verbosity.

    Returns:
        A `tfgap.advisor.Advice`.

    Raises:
        ValueError: bad input, naming what was received and what was expected.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"Expected a compiled keras.Model. Received: model={model!r} of type "
                         f"{type(model).__name__}.")
    if getattr(model, "optimizer", None) is None or getattr(model, "loss", None) is None:
        raise ValueError(
            f"Expected a compiled model (model.compile(optimizer=..., loss=...)). Received "
            f"model {model.name!r}, not compiled"
            + ("" if getattr(model, "optimizer", None) is None else " with a loss") + ".")
    batch_size = _validation.integer("batch_size", batch_size, minimum=1)
    max_batch_size = _validation.integer("max_batch_size", max_batch_size, minimum=1)
    if max_batch_size < batch_size:
        raise ValueError(f"Expected max_batch_size >= batch_size={batch_size}. Received: "
                         f"max_batch_size={max_batch_size}")
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Real) or not epochs > 0:
        raise ValueError(f"Expected `epochs` (how long you would train at batch_size) to be a "
                         f"number > 0. Received: epochs={epochs!r}")
    dataset, n = _training_data(model, x, y, batch_size, num_train_examples, seed)
    per_epoch = n // batch_size if n else None
    if per_epoch is not None and per_epoch < 1:
        raise ValueError(f"Expected batch_size <= the {n} training examples. Received: "
                         f"batch_size={batch_size}")
    steps = (measurement_steps(per_epoch) if steps is None
             else _validation.integer("steps", steps, minimum=1))
    decay = statistics_decay(steps)

    optimizer = model.optimizer.__class__.from_config(model.optimizer.get_config())
    momentum = (float(getattr(optimizer, "momentum", 0.0))
                if isinstance(optimizer, keras.optimizers.SGD) else None)
    learning_rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    saved = [np.array(keras.ops.convert_to_numpy(v), copy=True) for v in model.variables]
    try:
        wrapper = GradientStatisticsModel(model, decay=decay)
        wrapper.compile(optimizer=optimizer, loss=model.loss)
        history = wrapper.fit(dataset, epochs=1, steps_per_epoch=steps, shuffle=False,
                              validation_data=validation_data, verbose=verbose)
        stats = wrapper.noise_statistics()
        if stats is None:
            raise ValueError("Expected the measurement run to measure at least one step. "
                             "Received batches that never split into two halves.")
        warning = None
        try:
            if backend.is_tf_dataset(x):
                scales = measure_noise_scales(model, x, num_draws=num_draws, seed=seed)
            else:
                scales = measure_noise_scales(
                    model, x, y, batch_size=curvature_batch_size(
                        batch_size, stats.b_simple, n), num_draws=num_draws, seed=seed)
        except GradientStatisticsError as e:
            scales, warning = None, f"B_noise not measured: {e}"
    finally:
        for v, value in zip(model.variables, saved):
            v.assign(value)
    settings = {
        "model": model.name, "optimizer": type(optimizer).__name__, "measure_steps": steps,
        "statistics_decay": decay, "num_draws": num_draws,
        "curvature_product": None if scales is None else scales.product,
        "final_logs": {k: float(v[-1]) for k, v in history.history.items()
                       if v and np.isfinite(v[-1])},
    }
    values = stats.values()
    advice = advise(
        values["b_simple"] if values["b_simple"] is not None else math.nan,
        b_simple_stderr=values["b_simple_stderr"] or 0.0, small_batch_size=batch_size,
        epochs=float(epochs), num_train_examples=n, learning_rate=learning_rate,
        max_batch_size=max_batch_size, batch_norm=_has_batch_norm(model),
        noise_scales=scales, momentum=momentum, settings=settings)
    if warning:
        import dataclasses  # noqa: PLC0415

        advice = dataclasses.replace(advice, warnings=advice.warnings + (warning,))
    return advice


def _training_data(model, x, y, batch_size, num_train_examples, seed):
    """`(repeated dataset of batch_size batches, examples per epoch)`."""
    if backend.is_tf_dataset(x):
        if y is not None:
            raise ValueError("Expected y=None when x is a tf.data.Dataset (it yields (x, y)). "
                             f"Received y of type {type(y).__name__}.")
        check_dataset(x, model)
        first = next(iter(x))
        got = int(keras.tree.flatten(first[0])[0].shape[0])
        if got != batch_size:
            raise ValueError(f"Expected a dataset batched by batch_size={batch_size}. Received "
                             f"a first batch of {got} examples.")
        n = num_train_examples
        if n is None:
            cardinality = int(x.cardinality())
            if cardinality < 0:
                raise ValueError(
                    "Expected num_train_examples= for a tf.data.Dataset of unknown or infinite "
                    f"length. Received a dataset of cardinality {cardinality}.")
            n = cardinality * batch_size
        return x.repeat(), _validation.integer("num_train_examples", n, minimum=1)
    if y is None:
        raise ValueError("Expected targets `y` with array inputs (or a tf.data.Dataset of "
                         "(x, y) batches). Received: y=None")
    n = int(keras.tree.flatten(x)[0].shape[0])
    if int(np.shape(y)[0]) != n:
        raise ValueError(f"Expected x and y with the same number of examples. Received {n} "
                         f"and {int(np.shape(y)[0])}.")
    dataset = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(n, seed=seed).repeat()
               .batch(batch_size, drop_remainder=True))
    return dataset, n


def _has_batch_norm(model):
    return any(isinstance(layer, keras.layers.BatchNormalization)
               or "BatchNormalization" in type(layer).__name__
               for layer in model._flatten_layers(include_self=False))

