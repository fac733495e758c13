"""Batch-size schedules: grow the batch instead of decaying the learning rate.

Smith, Kindermans, Ying & Le 2018 ("Don't decay the learning rate, increase
the batch size", arXiv 1711.00489) observe that the SGD noise scale is
proportional to `lr / B`: dividing the rate by `f` or multiplying the batch by
`f` are the same regime, and the larger batch needs `f` times fewer updates.
`batch_size_phases` turns a small-batch regime into such phases;
`fit_batch_size_schedule` trains them with `model.fit`, one call per phase.
"""

import dataclasses
import math

import keras

from tfgap import backend
from tfgap import _validation as checks


@dataclasses.dataclass(frozen=True)
class BatchSizePhase:
    """One phase of a batch-size schedule: epochs `[start_epoch, end_epoch)`
    trained at `batch_size` (global) with `learning_rate`."""

    start_epoch: int
    end_epoch: int
    batch_size: int
    learning_rate: float

    @property
    def epochs(self):
        """Number of epochs in the phase."""
        return self.end_epoch - self.start_epoch


def batch_size_phases(
    boundaries, values, base_batch_size, max_batch_size, epochs, batch_multiple=1
):
    """Phases that replace each learning-rate decay by a batch-size increase.

    The small-batch regime (rate `values[i]` from epoch `boundaries[i - 1]`, at
    `base_batch_size`) becomes one phase per regime segment, with the same
    epochs. Each decay by a factor `f` grows the batch by `f` instead, until
    `max_batch_size`; from there on the rate decays by what the batch could
    not absorb. Both keep the noise scale `lr / B` of the regime exactly:

    ```
    batch_i = min(max_batch_size,
                  batch_multiple * round(base_batch_size * values[0] / values[i]
                                         / batch_multiple))     (halves up)
    lr_i    = values[i] * batch_i / base_batch_size
    ```

    so the rate stays `values[0]` while the batch grows (exactly, when the
    factors are whole numbers). Keep the ghost batch size of
    `GhostBatchNormalization` fixed across phases: set `batch_multiple` to the
    ghost batch size times the number of replicas so that every phase splits
    into whole ghost batches.

    Paper: Smith, Kindermans, Ying & Le 2018, "Don't decay the learning rate,
    increase the batch size" (arXiv 1711.00489).

    Args:
        boundaries: Strictly increasing whole epochs, each in `(0, epochs)`.
        values: Positive, non-increasing rates, one more than `boundaries`.
        base_batch_size: Positive int, the batch size of the regime, a
            multiple of `batch_multiple`.
        max_batch_size: Positive int >= `base_batch_size`, a multiple of
            `batch_multiple`; the batch never grows past it.
        epochs: Positive int, the total length of the regime in epochs.
        batch_multiple: Positive int, every batch size is a multiple of it.

    Returns:
        A list of `BatchSizePhase`, one per regime segment, contiguous from
        epoch 0 to `epochs`.

    Example:

    >>> for phase in batch_size_phases([10, 20, 30], [0.1, 0.01, 0.001, 0.0001],
    ...                                base_batch_size=128, max_batch_size=4096,
    ...                                epochs=40):
    ...     print(phase)
    BatchSizePhase(start_epoch=0, end_epoch=10, batch_size=128, learning_rate=0.1)
    BatchSizePhase(start_epoch=10, end_epoch=20, batch_size=1280, learning_rate=0.1)
    BatchSizePhase(start_epoch=20, end_epoch=30, batch_size=4096, learning_rate=0.032)
    BatchSizePhase(start_epoch=30, end_epoch=40, batch_size=4096, learning_rate=0.0032)
    """
    epochs = checks.positive_int("epochs", epochs)
    boundaries = list(checks.number_list("boundaries", boundaries))
    values = list(checks.number_list("values", values))
    checks.one_value_per_phase(boundaries, values)
    checks.strictly_increasing("boundaries", boundaries)
    for b in boundaries:
        if b != int(b) or not 0 < b < epochs:
            raise ValueError(
                f"Expected `boundaries` to be whole epochs in (0, epochs={epochs}) (model.fit "
                f"trains whole epochs). Received: boundaries={boundaries}"
            )
    for v in values:
        if v <= 0:
            raise ValueError(f"Expected `values` to be positive. Received: values={values}")
    for a, b in zip(values, values[1:]):
        if b > a:
            raise ValueError(
                "Expected `values` to be non-increasing (each change a decay that a larger "
                f"batch can replace). Received: values={values}"
            )
    base_batch_size = checks.positive_int("base_batch_size", base_batch_size)
    max_batch_size = checks.positive_int("max_batch_size", max_batch_size)
    batch_multiple = checks.positive_int("batch_multiple", batch_multiple)
    if max_batch_size < base_batch_size:
        raise ValueError(
            f"Expected `max_batch_size` >= base_batch_size={base_batch_size}. Received: "
            f"max_batch_size={max_batch_size}"
        )
    for name, size in (("base_batch_size", base_batch_size), ("max_batch_size", max_batch_size)):
        if size % batch_multiple:
            raise ValueError(
                f"Expected `{name}` to be a multiple of batch_multiple={batch_multiple}. "
                f"Received: {name}={size}"
            )

    starts = [0] + [int(b) for b in boundaries]
    ends = starts[1:] + [epochs]
    phases = []
    for start, end, value in zip(starts, ends, values):
        units = checks.round_half_up(base_batch_size * values[0] / value / batch_multiple)
        batch = min(max_batch_size, batch_multiple * units)
        phases.append(
            BatchSizePhase(
                start_epoch=start,
                end_epoch=end,
                batch_size=batch,
                learning_rate=value * batch / base_batch_size,
            )
        )
    return phases


def _check_phases(phases):
    phases = list(phases)
    if not phases:
        raise ValueError("Expected at least one phase. Received: phases=[]")
    for i, phase in enumerate(phases):
        if not isinstance(phase, BatchSizePhase):
            raise ValueError(
                f"Expected `phases` to hold `BatchSizePhase` objects. Received: "
                f"phases[{i}]={phase!r}"
            )
        if phase.end_epoch <= phase.start_epoch or phase.batch_size <= 0:
            raise ValueError(
                "Expected every phase to have end_epoch > start_epoch and batch_size > 0. "
                f"Received: phases[{i}]={phase}"
            )
        if i and phase.start_epoch != phases[i - 1].end_epoch:
            raise ValueError(
                "Expected contiguous phases (each starting where the previous one ends). "
                f"Received: phases[{i - 1}]={phases[i - 1]} and phases[{i}]={phase}"
            )
    return phases


def fit_batch_size_schedule(
    model,
    dataset,
    phases,
    *,
    num_examples=None,
    drop_remainder=False,
    initial_epoch=0,
    **fit_kwargs,
):
    """Trains `model` through batch-size `phases`, one `model.fit` per phase.

    Each phase re-batches the training data at its batch size, sets the
    optimizer's learning rate, and calls
    `model.fit(..., initial_epoch=phase.start_epoch, epochs=phase.end_epoch)`,
    so the epoch count continues across phases (callbacks and logs see one run)
    and the optimizer keeps its state: momentum slots and `iterations`. It
    runs on every Keras backend (a `tf.data.Dataset` feeds `model.fit` under
    JAX and PyTorch too; arrays need no TensorFlow at all). The
    model is untouched between phases, so a `GhostBatchNormalization` keeps its
    ghost batch size while the batch grows (choose `batch_multiple` in
    `batch_size_phases` so that every batch splits into whole ghost batches).
    Compile and build the model under a distribution strategy as usual;
    `model.fit` distributes each re-batched dataset with the global batch size
    of the phase.

    Args:
        model: A compiled `keras.Model` whose optimizer was created with a float
            `learning_rate` (a `LearningRateSchedule` cannot be set per phase).
        dataset: Either an unbatched `tf.data.Dataset` of training examples
            (shuffle it before passing; `.batch` is applied per phase), a
            tuple `(x, y)` or `(x, y, sample_weight)` of arrays (passed to
            `model.fit` with the phase's `batch_size`; `fit` shuffles them
            unless `shuffle=False`), or a callable `batch_size -> data`
            giving batched data that `model.fit` accepts (a `tf.data.Dataset`,
            a `keras.utils.PyDataset`, a PyTorch `DataLoader`, ...).
        phases: A list of `BatchSizePhase` (see `batch_size_phases`),
            contiguous.
        num_examples: Optional int. If given, each phase passes
            `steps_per_epoch = ceil(num_examples / batch_size)` (`floor` with
            `drop_remainder`), which repeated (infinite) datasets need. Not
            for arrays (their length is known).
        drop_remainder: Whether `.batch` drops the last partial batch (a
            dataset only; `model.fit` keeps the partial batch of arrays).
        initial_epoch: Int; phases ending at or before it are skipped and the
            phase containing it resumes there (e.g. after restoring a
            checkpoint).
        **fit_kwargs: Passed to every `model.fit` call (`callbacks`, `verbose`,
            `validation_data`, ...), except `epochs`, `initial_epoch`,
            `batch_size` and `steps_per_epoch`, which the phases decide.

    Returns:
        A `keras.callbacks.History` merging the phases: `history.epoch` and
        every `history.history[key]` run over all trained epochs, and
        `history.history["batch_size"]` gives the batch of each epoch.

    Example:

    ```python
    phases = batch_size_phases([10, 20], [0.1, 0.01, 0.001],
                               base_batch_size=128, max_batch_size=1024,
                               epochs=30)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss=...)
    history = fit_batch_size_schedule(model, train_examples.shuffle(10_000),
                                      phases, verbose=2)
    ```
    """
    phases = _check_phases(phases)
    for key in ("epochs", "initial_epoch", "batch_size", "steps_per_epoch"):
        if key in fit_kwargs:
            raise ValueError(
                f"Expected no `{key}` argument (the phases decide it). Received: "
                f"{key}={fit_kwargs[key]!r}"
            )
    is_dataset = backend.is_tf_dataset(dataset)
    arrays = None
    if isinstance(dataset, tuple) and len(dataset) in (2, 3):
        arrays = dataset
    elif not (is_dataset or callable(dataset)):
        raise ValueError(
            "Expected `dataset` to be an unbatched tf.data.Dataset, a tuple (x, y) of arrays "
            f"or a callable batch_size -> data. Received: dataset={dataset!r}"
        )
    if num_examples is not None:
        num_examples = checks.positive_int("num_examples", num_examples)
    if arrays is not None and (num_examples is not None or drop_remainder):
        raise ValueError(
            "Expected num_examples=None and drop_remainder=False with a tuple of arrays "
            "(model.fit batches arrays itself). Received: "
            f"num_examples={num_examples!r}, drop_remainder={drop_remainder!r}"
        )
    if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, int) or not (
        phases[0].start_epoch <= initial_epoch < phases[-1].end_epoch
    ):
        raise ValueError(
            f"Expected `initial_epoch` to be an int in [{phases[0].start_epoch}, "
            f"{phases[-1].end_epoch}). Received: initial_epoch={initial_epoch!r}"
        )
    if getattr(model, "optimizer", None) is None:
        raise ValueError("Expected a compiled model. Received: a model without an optimizer.")

    if arrays is None:
        # tf.data pipelines shuffle themselves; fit's shuffle=True would only warn.
        fit_kwargs.setdefault("shuffle", False)
    merged = keras.callbacks.History()
    merged.set_model(model)
    merged.epoch, merged.history = [], {}
    for phase in phases:
        if phase.end_epoch <= initial_epoch:
            continue
        try:
            model.optimizer.learning_rate = phase.learning_rate
        except TypeError:
            raise ValueError(
                "Expected an optimizer created with a float `learning_rate` (the phases set it). "
                f"Received: {type(model.optimizer).__name__} with a LearningRateSchedule."
            ) from None
        data = {}
        if arrays is not None:
            data = dict(zip(("x", "y", "sample_weight"), arrays), batch_size=phase.batch_size)
        elif is_dataset:
            data["x"] = dataset.batch(phase.batch_size, drop_remainder=drop_remainder)
        else:
            data["x"] = dataset(phase.batch_size)
        steps = None
        if num_examples is not None:
            rounding = math.floor if drop_remainder else math.ceil
            steps = max(1, rounding(num_examples / phase.batch_size))
        history = model.fit(
            **data,
            initial_epoch=max(initial_epoch, phase.start_epoch),
            epochs=phase.end_epoch,
            steps_per_epoch=steps,
            **fit_kwargs,
        )
        merged.params = history.params
        merged.epoch.extend(history.epoch)
        for key, values in history.history.items():
            merged.history.setdefault(key, []).extend(values)
        merged.history.setdefault("batch_size", []).extend([phase.batch_size] * len(history.epoch))
    return merged
