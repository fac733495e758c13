"""The trainer's input: split sizes, the training iterators, the evaluation datasets.

- `count_splits(config)`: the sizes of `train`, `validation` and `test` as
  trained and evaluated; fails within seconds when the data is missing.
  `num_examples(config, split)`: one split's size, as counted there.
- `TrainInput`: distributed training iterators, each epoch's batches from a
  pipeline seeded by `(seed, epoch)` (so a resume needs no data state).
- `eval_dataset`: a split as the evaluation step reads it.
"""

import dataclasses
import math

import tensorflow as tf

from tfgap import data
from tfgap.training.config import ConfigError

EVAL_SPLITS = ("validation", "test")


@dataclasses.dataclass(frozen=True)
class Splits:
    """The sizes of the three splits, as trained and evaluated."""

    num_train: int
    num_validation: int
    num_test: int


def data_kwargs(config):
    return dict(data_dir=config.data_dir, download=config.download,
                mock_data=config.mock_data, mock_examples=config.mock_examples,
                synthetic=config.synthetic, validation_examples=config.validation_examples)


def num_examples(config, split):
    """Examples of `split` as `config` reads it (real data counted as prepared on disk)."""
    return data.num_examples(
        config.dataset, split, mock_data=config.mock_data, mock_examples=config.mock_examples,
        data_dir=config.data_dir if not (config.mock_data or config.synthetic) else None,
        validation_examples=config.validation_examples, synthetic=config.synthetic)


def count_splits(config):
    """The split sizes; fails within seconds when the data is missing or the split is bad."""
    try:
        data.build_dataset(config.dataset, "test", batch_size=1, training=False,
                           **data_kwargs(config))
        sizes = {split: num_examples(config, split) for split in ("train", "validation", "test")}
    except ValueError as e:  # a validation size the training split cannot give
        raise ConfigError(str(e)) from e
    if config.synthetic:
        # Synthetic data measures training throughput: an epoch keeps the real
        # dataset's length, but evaluating whole fake splits (50,000 ImageNet
        # images) would only cost time, so `mock_examples` are evaluated.
        for split in EVAL_SPLITS:
            sizes[split] = min(sizes[split], config.mock_examples)
    splits = Splits(sizes["train"], sizes["validation"], sizes["test"])
    total = splits.num_train + splits.num_validation
    if config.batch_size > total:
        raise ConfigError(
            f"Expected `batch_size` at most the {total} training examples of "
            f"{config.dataset!r} (one global batch per step). Received: "
            f"batch_size={config.batch_size}")
    if splits.num_train < config.batch_size:
        raise ConfigError(
            f"Expected validation_examples to leave at least one global batch "
            f"(batch_size={config.batch_size}) of the {total} training examples of "
            f"{config.dataset!r}; at most {total - config.batch_size} can be held out. "
            f"Received: validation_examples={splits.num_validation}"
        )
    return splits


def epoch_seed(seed, epoch):
    return (int(seed) * 1_000_003 + int(epoch)) % (2**31 - 1)


class TrainInput:
    """Distributed training iterators, one per window of consecutive epochs.

    Epoch `e` reads the first `plan.steps_in_epoch(e)` steps of a pipeline
    seeded by `(seed, e)` (after the steps already taken, on resume). A window
    of `W` epochs concatenates those pipelines into one distributed dataset,
    so one iterator (and its prefetching) serves `W` epochs: the batches are
    exactly those of one pipeline per epoch, without building an iterator per
    epoch. `W` covers about `window_steps` steps (1 epoch for long epochs).

    With a `batch_control` (`adaptive="batch"`) each epoch is read at its own
    global batch, decided as it starts (`W` = 1): the first
    `batch_control.steps_in_epoch(e)` batches of that pipeline, so no
    example is read twice in an epoch. With `batch_decision_steps` the batch
    may change within an epoch: one iterator then serves the whole epoch in
    per-replica batches of `base_batch_size` (`b0`), and a step at global
    batch `B` reads `parts(B) = B / b0` of them per replica and joins them
    (`step_functions.make_train_step(parts=)`): a change of batch builds no
    pipeline and skips nothing, and the epoch's examples are read in one
    order whatever the batches.
    """

    def __init__(self, config, strategy, plan, per_replica_batch,
                 window_steps=256, max_window_epochs=32, batch_control=None):
        self.config, self.strategy, self.plan = config, strategy, plan
        self.per_replica_batch = per_replica_batch
        self.batch_control = batch_control
        self.layout = batch_control or plan
        self.window_epochs = 1 if batch_control else max(
            1, min(max_window_epochs, math.ceil(window_steps / plan.steps_per_epoch)))
        self._iterator = None
        self._next_epoch = self._window_end = None

    def parts(self, batch):
        """Elements of the iterator a step at global batch `batch` reads (see the class)."""
        control = self.batch_control
        if control is None or not control.decision_steps:
            return 1
        return batch // self.config.base_batch_size

    def iterator(self, epoch, skip_steps):
        """The iterator positioned at step `skip_steps` of epoch `epoch`, to the epoch's end."""
        if (self._iterator is None or skip_steps or epoch != self._next_epoch
                or epoch >= self._window_end):
            end = min(self.plan.num_epochs, epoch + self.window_epochs)
            dist_ds = self._dataset(epoch, end, skip_steps)
            self._iterator = iter(dist_ds)
            self._window_end = end
        self._next_epoch = epoch + 1
        return self._iterator

    def _dataset(self, start, end, skip_steps):
        def dataset_fn(context):
            replicas_here = context.num_replicas_in_sync // context.num_input_pipelines
            ds = None
            for epoch in range(start, end):
                part = self._part(context, epoch, skip_steps if epoch == start else 0,
                                  replicas_here)
                ds = part if ds is None else ds.concatenate(part)
            if end - start > 1:
                ds = ds.prefetch(2)  # starts the next epoch's pipeline ahead of time
            return ds

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def _part(self, context, epoch, skip, replicas_here):
        """One input pipeline's batches of epoch `epoch` from its step `skip` to the epoch's end.

        A global step takes `replicas_here` consecutive per-replica batches of a pipeline
        (`parts(B)` times that with `batch_decision_steps`). Then the epoch's pipeline is
        built at the per-replica batch of `base_batch_size` (its order does not depend on
        the batch), the examples the epoch read before the step are skipped in those small
        batches (the offset is a multiple of `base_batch_size`, as every candidate is; only a
        resume skips), and it ends after the epoch's last whole `base_batch_size`: the steps
        stop where fewer examples than their batch are left.
        """
        control, replicas = self.batch_control, context.num_replicas_in_sync
        if control is None or not control.decision_steps:
            per_replica = (self.per_replica_batch if control is None else
                           control.batch_of(epoch) // replicas)
            part = self._pipeline(context, epoch, per_replica)
            if skip:
                part = part.skip(skip * replicas_here)
            return part.take((self.layout.steps_in_epoch(epoch) - skip) * replicas_here)
        base = self.config.base_batch_size
        _, offset, _ = control.read_position(control.first_step(epoch) + skip)
        part = self._pipeline(context, epoch, base // replicas)
        if offset:
            part = part.skip(offset // base * replicas_here)
        return part.take((control.num_train - offset) // base * replicas_here)

    def _pipeline(self, context, epoch, per_replica):
        """Epoch `epoch`'s training pipeline (seeded by `(seed, epoch)`, repeated) for one
        input pipeline, in per-replica batches of `per_replica`."""
        config = self.config
        return data.build_dataset(
            config.dataset, "train", batch_size=per_replica, training=True,
            seed=epoch_seed(config.seed, epoch), input_context=context,
            drop_remainder=True, repeat=True, **data_kwargs(config),
        )


def eval_dataset(config, strategy, split, num_examples, static_shapes):
    ds = data.build_dataset(
        config.dataset, split, batch_size=config.global_eval_batch_size, training=False,
        seed=config.seed, drop_remainder=static_shapes, **data_kwargs(config),
    )
    if config.synthetic:
        # The synthetic splits have the real ones' length; evaluate only
        # `num_examples` (`mock_examples`) of them: a throughput run is not scored.
        ds = ds.take(max(1, -(-num_examples // config.global_eval_batch_size)))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(ds.with_options(options))
