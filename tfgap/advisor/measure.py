"""The short measurement run: `B_simple` from its training gradients, `B_noise` at its end."""

import dataclasses
import math
import os
import shutil
import tempfile
import time

import numpy as np

from tfgap import _validation

DEFAULT_NOISE_EXAMPLES = 4096
DEFAULT_NUM_DRAWS = 32


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What the short run measured.

    Attributes:
        b_simple: `B_simple = tr(Sigma) / |G|^2` at the end of the run: the
            ratio of the trainer's moving averages (`noise_statistics`), from
            the training gradients themselves; `None` if not defined.
        b_simple_stderr: its standard error (`None` below two steps).
        grad_norm_sq, trace_sigma: the moving averages of `|G|^2` and
            `tr(Sigma)` at the end of the run.
        by_epoch: the same four values at each epoch's end (`history.json`'s
            `epoch`, `step`, `grad_norm_sq`, `trace_sigma`, `b_simple`,
            `b_simple_stderr`), a tuple of dicts.
        statistics_decay: the moving averages' decay.
        noise_scales: `tfgap.advisor.NoiseScales` of `measure_noise_scales` on
            the trained model (`B_noise`, `eps_max`), or `None` when both the
            Hessian and the Gauss-Newton curvature along `G` came out not
            positive (`noise_scales_error` says so).
        noise_scales_error: that message, or `None`.
        curvature_batch_size: the small batch of the curvature draws.
        noise_examples: the training examples the draws sample from.
        steps: the optimizer steps of the run.
        num_train_examples: the training examples of one epoch.
        seconds: the wall time of the run and the measurements.
    """

    b_simple: float | None
    b_simple_stderr: float | None
    grad_norm_sq: float | None
    trace_sigma: float | None
    by_epoch: tuple
    statistics_decay: float
    noise_scales: object
    noise_scales_error: str | None
    curvature_batch_size: int
    noise_examples: int
    steps: int
    num_train_examples: int
    seconds: float


_LOGGED = ("grad_norm_sq", "trace_sigma", "b_simple", "b_simple_stderr")


def num_train_examples(config):
    """The training examples of one epoch of `config` (validation split carved out)."""
    from tfgap.training import inputs  # noqa: PLC0415

    return inputs.num_examples(config, "train")


def training_loss(config):
    """The trainer's per-example training loss of `config`: cross-entropy of the logits.

    With `config.label_smoothing = s`, against `(1 - s) one-hot + s / classes`
    (as `tfgap.training.make_train_step`); `model.losses` (weight decay) are
    added by `measure_noise_scales`.

    Example:

    >>> import numpy as np
    >>> from tfgap.training import TrainConfig
    >>> config = TrainConfig(dataset="mnist1d", model="mlp", model_dir="/tmp/unused", epochs=1.0,
    ...                      batch_size=50, label_smoothing=0.1)
    >>> loss = training_loss(config)
    >>> logits = np.log(np.array([[0.5, 0.25, 0.25]], "float32"))
    >>> want = -(0.9 * np.log(0.5) + 0.1 / 3 * np.log([0.5, 0.25, 0.25]).sum())
    >>> bool(np.isclose(float(loss(np.array([0]), logits)[0]), want))
    True
    """
    import keras  # noqa: PLC0415

    smoothing = float(config.label_smoothing)
    if not smoothing:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)

    def smoothed(y, logits):
        targets = keras.ops.one_hot(keras.ops.cast(y, "int32"), keras.ops.shape(logits)[-1])
        return keras.losses.categorical_crossentropy(targets, logits, from_logits=True,
                                                     label_smoothing=smoothing)

    return smoothed


def statistics_decay(steps):
    """The moving averages' decay for a measurement run of `steps` steps: `(s - 2) / (s + 2)`.

    Its horizon `(1 + d) / (1 - d) = s / 2` steps: `B_simple` at the end of
    the run averages about its second half (clipped to [0.5, 0.999]).

    Example:

    >>> statistics_decay(98), round(statistics_decay(448), 4), statistics_decay(2)
    (0.96, 0.9911, 0.5)
    """
    steps = _validation.integer("steps", steps, minimum=1)
    return min(max((steps - 2) / (steps + 2), 0.5), 0.999)


def curvature_batch_size(batch_size, b_simple, num_examples, small_batches=4):
    """The small batch of the curvature draws: the doubling of `batch_size` nearest `B_simple`.

    The two-batch estimates separate `G^T M G` from `tr(M Sigma) / b`; their
    spread is smallest relative to their means when the two terms are
    comparable, at `b` near the noise scale. From the measured `B_simple`
    (a lower estimate of `B_noise`), in log distance, at most what
    `small_batches + 1` batches of the data allow.

    Example:

    >>> curvature_batch_size(16, 125.6, 2000), curvature_batch_size(16, 3.0, 2000)
    (128, 16)
    """
    b = int(batch_size)
    if not (b_simple is not None and math.isfinite(b_simple) and b_simple > b):
        return b
    while 2 * b <= num_examples // (small_batches + 1) and abs(
            math.log(2 * b / b_simple)) < abs(math.log(b / b_simple)):
        b *= 2
    return b


def measure_run(config, *, steps, decay=None, noise_examples=DEFAULT_NOISE_EXAMPLES,
                num_draws=DEFAULT_NUM_DRAWS, model_dir=None, stream=None):
    """Trains `config` for `steps` steps; `B_simple` from its gradients, `B_noise` at its end.

    1. **The run**: `config` (the trusted small-batch regime: its data,
       augmentation, model, rates and batch `config.batch_size`) cut to
       `steps` optimizer steps, trained by `tfgap.training.train` with
       `noise_statistics=True`: each step's own training-mode gradients
       (the run's augmentation, dropout and batch normalization) give
       `|G_b|^2` and `|G_B|^2` (two half batches on one replica, replicas
       against their all-reduced sum on several), folded into moving averages
       of `|G|^2` and `tr(Sigma)` with decay `decay` (default
       `statistics_decay(steps)`: about the run's
       second half). `B_simple` and its standard error are their values at
       the end of the run (the last entry of `history.json`).
    2. **`B_noise` and `eps_max`** of the trained model,
       `tfgap.advisor.measure_noise_scales`: `num_draws` draws of training-mode
       gradients and Hessian-vector products on independent batches sampled
       from the first `noise_examples` training examples
       (`tfgap.data.fixed_examples`, evaluation preprocessing), at the
       doubling of the batch nearest `B_simple`
       (`curvature_batch_size`).

    The run goes to `model_dir` (kept), or to a temporary directory that is
    removed afterwards; no export.

    Args:
        config: a `tfgap.training.TrainConfig`.
        steps: optimizer steps of the short run (>= 2, for the standard error).
        decay: the moving averages' decay (default: `statistics_decay(steps)`).
        noise_examples: training examples the curvature draws sample from
            (at most the training split).
        num_draws: independent draws of `measure_noise_scales` (>= 2).
        model_dir: where the run is written (default: a temporary directory).
        stream: where the trainer prints (default: nothing is printed).

    Returns:
        A `Measurement`.

    Raises:
        ValueError: `steps < 2`, a batch larger than the training split, or
            `num_draws < 2`.
        tfgap.training.ConfigError: settings `noise_statistics` cannot use
            (e.g. an odd batch on one replica).

    Example:

    ```python
    from tfgap.advisor import measure_run
    from tfgap.training import TrainConfig
    config = TrainConfig(dataset="mnist1d", model="mlp", model_dir="/tmp/unused",
                         batch_size=50, base_batch_size=50, lr_values=(0.04,), epochs=10.0)
    m = measure_run(config, steps=400)
    print(m.b_simple, m.b_simple_stderr, m.noise_scales.b_noise, m.noise_scales.eps_max)
    ```
    """
    from tfgap.advisor.curvature import measure_noise_scales  # noqa: PLC0415
    from tfgap.advisor.gradient_statistics import GradientStatisticsError  # noqa: PLC0415
    from tfgap.data import fixed_examples  # noqa: PLC0415
    from tfgap.training import train  # noqa: PLC0415

    start = time.time()
    steps = int(steps)
    if steps < 2:
        raise ValueError(f"Expected steps >= 2 (the standard error of B_simple needs two "
                         f"steps). Received: steps={steps}")
    if int(num_draws) < 2:
        raise ValueError(f"Expected num_draws >= 2. Received: num_draws={num_draws}")
    n = num_train_examples(config)
    per_epoch = n // config.batch_size
    if per_epoch < 1:
        raise ValueError(f"Expected batch_size <= the {n} training examples; received "
                         f"{config.batch_size}.")
    decay = statistics_decay(steps) if decay is None else float(decay)
    short = config.replace(
        epochs=steps / per_epoch, noise_statistics=True, noise_statistics_decay=decay,
        export_dir=None, steps_per_execution=1, preemption=False,
        verbose=0 if stream is None else config.verbose, eval_every_epochs=10**6,
        checkpoint_every_seconds=10**9)
    temporary = model_dir is None
    model_dir = tempfile.mkdtemp(prefix="tfgap_advise_") if temporary else model_dir
    try:
        with open(os.devnull, "w") as null:
            result = train(short.replace(model_dir=model_dir), stream=stream or null)
    finally:
        if temporary:
            shutil.rmtree(model_dir, ignore_errors=True)
    by_epoch = tuple({"epoch": h["epoch"], "step": h["step"],
                      **{k: h.get(k) for k in _LOGGED}} for h in result.history)
    last = by_epoch[-1]
    noise_examples = min(int(noise_examples), n)
    x, y = fixed_examples(config.dataset, "train", noise_examples, data_dir=config.data_dir,
                          mock_data=config.mock_data, mock_examples=config.mock_examples,
                          synthetic=config.synthetic,
                          validation_examples=config.validation_examples)
    b = curvature_batch_size(config.batch_size, last["b_simple"], noise_examples)
    try:
        scales, error = measure_noise_scales(
            result.model, x, y, batch_size=b, num_draws=int(num_draws), seed=config.seed,
            loss=training_loss(config)), None
    except GradientStatisticsError as e:
        scales, error = None, str(e)
    return Measurement(
        b_simple=last["b_simple"], b_simple_stderr=last["b_simple_stderr"],
        grad_norm_sq=last["grad_norm_sq"], trace_sigma=last["trace_sigma"], by_epoch=by_epoch,
        statistics_decay=decay, noise_scales=scales, noise_scales_error=error,
        curvature_batch_size=b, noise_examples=noise_examples, steps=steps,
        num_train_examples=n, seconds=time.time() - start)


def measure_step_times(config, per_replica_batch_sizes, *, steps=3):
    """Seconds per training step of `config`'s model at each per-replica batch size.

    One device, random inputs of the dataset's shape, SGD on the mean
    cross-entropy: the compute of one replica's step (communication between
    replicas is not measured). The first step of each size is not timed.

    Returns:
        `{per-replica batch: seconds per step}` (the median of `steps` steps).
    """
    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    from tfgap import data  # noqa: PLC0415
    from tfgap.training import build_model  # noqa: PLC0415

    spec = data.get_spec(config.dataset)
    # Plain BN: a ghost size need not divide every per-replica batch timed here.
    model = build_model(config.replace(ghost_batch_size=0))
    optimizer = keras.optimizers.SGD(learning_rate=1e-6, momentum=config.momentum)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(reduce_retracing=True)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True)) + sum(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    rng = np.random.default_rng(0)
    times = {}
    for b in sorted({int(b) for b in per_replica_batch_sizes}):
        x = tf.constant(rng.normal(size=(b, *spec.input_shape)).astype("float32"))
        y = tf.constant(rng.integers(0, spec.num_classes, size=b).astype("int32"))
        step(x, y).numpy()
        seconds = []
        for _ in range(int(steps)):
            t0 = time.perf_counter()
            step(x, y).numpy()
            seconds.append(time.perf_counter() - t0)
        times[b] = float(np.median(seconds))
    return times
