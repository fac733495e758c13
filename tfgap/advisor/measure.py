"""The short measurement run: the noise scale along a few hundred small-batch steps."""

import dataclasses
import os
import shutil
import tempfile
import time

import numpy as np

from tfgap.advisor.noise import DEFAULT_NUM_CHUNKS, NoiseScaleTracker


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What the short run measured.

    Attributes:
        estimates: the `NoiseScaleEstimate`s, by step.
        steps: the optimizer steps of the run.
        num_train_examples: the training examples of one epoch.
        seconds: the wall time of the run (training and measurements).
    """

    estimates: tuple
    steps: int
    num_train_examples: int
    seconds: float


def measurement_steps(steps, num_points):
    """`num_points` steps spread evenly over a run of `steps` steps, ending at `steps`.

    Example:

    >>> measurement_steps(240, 4)
    [60, 120, 180, 240]
    """
    steps, num_points = int(steps), int(num_points)
    if steps < 1 or num_points < 1:
        raise ValueError(f"Expected steps >= 1 and num_points >= 1; received steps={steps}, "
                         f"num_points={num_points}.")
    return sorted({max(1, round(steps * i / num_points)) for i in range(1, num_points + 1)})


def num_train_examples(config):
    """The training examples of one epoch of `config` (validation split carved out)."""
    from tfgap.training import inputs  # noqa: PLC0415

    return inputs.num_examples(config, "train")


def measure_run(config, *, steps, num_points=4, noise_examples=4096,
                num_chunks=DEFAULT_NUM_CHUNKS, stream=None):
    """Trains `config` for `steps` steps and measures `B_simple` along the way.

    The run is `config` (the trusted small-batch regime: its data, model,
    rates and batch `config.batch_size`) cut to `steps` optimizer steps,
    trained by `tfgap.training.train` in a temporary directory that is
    removed afterwards (no checkpoint, no export). At `num_points` evenly
    spaced steps (the last at `steps`) `measure_noise_scale` runs on the first
    `noise_examples` training examples (evaluation preprocessing, the same
    examples each time), with the run's batch as the estimator's small batch.

    Args:
        config: a `tfgap.training.TrainConfig`.
        steps: optimizer steps of the short run (>= 1).
        num_points: measurements along the run.
        noise_examples: examples of each measurement (at most the training
            split); at least `2 * num_chunks` small batches.
        num_chunks: disjoint chunks per measurement (for the error bar).
        stream: where the trainer prints (default: nothing is printed).

    Returns:
        A `Measurement`.
    """
    import keras  # noqa: PLC0415

    from tfgap.data import fixed_examples  # noqa: PLC0415
    from tfgap.training import train  # noqa: PLC0415

    start = time.time()
    n = num_train_examples(config)
    per_epoch = n // config.batch_size
    if per_epoch < 1:
        raise ValueError(f"Expected batch_size <= the {n} training examples; received "
                         f"{config.batch_size}.")
    at_steps = measurement_steps(steps, num_points)
    noise_examples = min(int(noise_examples), n)
    x, y = fixed_examples(config.dataset, "train", noise_examples, data_dir=config.data_dir,
                          mock_data=config.mock_data, mock_examples=config.mock_examples,
                          synthetic=config.synthetic,
                          validation_examples=config.validation_examples)
    tracker = NoiseScaleTracker(
        x, y, batch_size=config.batch_size, at_steps=at_steps, num_chunks=num_chunks,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model_dir = tempfile.mkdtemp(prefix="tfgap_advise_")
    try:
        short = config.replace(
            model_dir=model_dir, export_dir=None, epochs=int(steps) / per_epoch,
            steps_per_execution=1, preemption=False, verbose=0 if stream is None else
            config.verbose, eval_every_epochs=10**6, checkpoint_every_seconds=10**9)
        with open(os.devnull, "w") as null:
            train(short, callbacks=[tracker], stream=stream or null)
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)
    return Measurement(estimates=tuple(tracker.estimates), steps=int(steps),
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
