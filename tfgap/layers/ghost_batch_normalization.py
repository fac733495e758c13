"""Ghost Batch Normalization (Hoffer, Hubara & Soudry, 2017) for Keras 3."""

import keras
import numpy as np
from keras import ops

MOVING_UPDATES = ("sequential", "averaged", "full_batch")


@keras.saving.register_keras_serializable(package="tfgap")
class GhostBatchNormalization(keras.layers.BatchNormalization):
    """Batch normalization over contiguous "ghost" sub-batches.

    Large-batch training generalizes worse partly because batch normalization
    sees one huge batch: its statistics are nearly noise-free. Ghost Batch
    Normalization (GBN) cuts each training batch into contiguous ghost batches
    of `virtual_batch_size` examples along axis 0 and normalizes each one
    with its own statistics, restoring the noise of small-batch training,
    while gamma and beta stay shared. At inference there is no ghosting: the
    layer uses its moving statistics, for any batch size.

    For ghost batch `l` of `n_l` examples (the last one may be smaller when
    the batch is not divisible), with every non-channel axis reduced:

    ```
    mu_l  = mean(x_l)                      # biased, per channel
    var_l = mean((x_l - mu_l) ** 2)
    y_l   = gamma * (x_l - mu_l) / sqrt(var_l + epsilon) + beta
    ```

    The moving statistics follow one of three rules (`m` = `momentum`,
    `k` ghost batches in the batch, statistics `s_1..s_k` in order):

    ```
    "sequential":  moving <- m**k * moving + sum_l (1 - m) * m**(k - l) * s_l
                   (exactly k ordinary steps, one per ghost batch: Algorithm 1)
    "averaged":    moving <- m * moving + (1 - m) * sum_l n_l * s_l / n
                   (one step with the size-weighted ghost mean: the tf.keras 2 rule)
    "full_batch":  moving <- m * moving + (1 - m) * s_batch
                   (one step with the exact whole-batch mean and variance,
                   pooled from the ghost moments)
    ```

    With `virtual_batch_size=None`, or a size at least the batch, the layer
    computes what `keras.layers.BatchNormalization` computes, masks included.

    **Masks** (from `Embedding(mask_zero=True)`, `Masking`, or the `mask`
    argument) are those of `BatchNormalization`: a boolean tensor of the
    input's shape without its last axis, broadcast along it. Each ghost
    batch's mean and variance are then taken over its unmasked values only
    (`n_l` counts them, per channel), as `BatchNormalization` weights its
    moments; every value, masked or not, is normalized with its ghost's
    statistics, and the mask is passed on. A ghost batch with no unmasked
    value has statistics 0 and 0 (no NaN) and contributes nothing to the
    moving statistics: `"sequential"` skips it (one step per non-empty ghost
    batch), `"averaged"` and `"full_batch"` weight it by its count, zero. A
    batch with no unmasked value at all leaves the moving statistics
    unchanged. (That one case differs from `BatchNormalization`, which then
    moves them towards mean 0 and variance 0; `virtual_batch_size=None` runs
    the parent's code and does the same.)

    **Speed.** When the batch is a multiple of `virtual_batch_size` (or
    smaller than it), the ghost statistics come from a reshape to
    `(ghosts, virtual_batch_size, ...)` and the reductions plain BN uses, so a
    training step costs what plain BN's costs, with or without XLA: no
    gather, no scatter, the same casts under mixed precision (statistics and
    normalization in float32, outputs in the compute dtype, as in
    `BatchNormalization`). Other batch sizes go through segment sums over
    ghost ids, which handle the smaller last ghost batch but lower to
    gathers and scatters. The path is chosen once per trace: in Python when
    the batch size is static (always under JAX and PyTorch); when it is
    `None`, both are traced and a `cond` on `batch % virtual_batch_size`
    picks one per step (XLA compiles for concrete shapes and drops the branch
    not taken). Both paths compute the same numbers, with or without a mask.

    **Backends.** Everything is `keras.ops`: the layer runs on TensorFlow,
    JAX and PyTorch, in `model.fit` with `jit_compile=True` where Keras
    compiles (TensorFlow, JAX), and gives the same numbers on all three.

    **Distribution.** Every device ghosts its own shard of the batch, and the
    moving statistics are the mean over devices of what each device's shard
    gives by the rule above. Under a `tf.distribute` strategy each replica
    calls the layer on its shard; the moving mean and variance are created
    with `aggregation="mean"`, so each update is averaged over the replicas
    and every replica holds the same value, which is what `predict`, `save`
    and `export` see. (Keras' own `BatchNormalization` keeps an unaggregated
    copy per replica, which drifts apart and is exported from replica 0
    only; this layer fixes that also for `virtual_batch_size=None`.) Under a
    `keras.distribution` (`DataParallel` on JAX) the layer sees the global
    batch: it splits it into one contiguous shard per device of the batch
    axis, ghosts each shard on its own (ghost batches restart at every shard)
    and averages the shards' moving statistics itself, so both give the same
    numbers. The batch must then divide by the number of devices.

    `renorm=True` is refused with ghost batches: batch renormalization
    corrects each batch's statistics towards the moving ones so that
    training depends less on the batch, while GBN exists to keep each ghost
    batch's own statistics and their noise; the two pull in opposite
    directions, and no reference defines their combination.
    `synchronized=True` (statistics over all replicas) contradicts ghost
    batches by definition. Both work with `virtual_batch_size=None`.

    Reference:
    - [Hoffer, Hubara & Soudry, 2017](https://arxiv.org/abs/1705.08741),
      "Train longer, generalize better".

    Args:
        virtual_batch_size: `None` or a positive integer, the ghost batch
            size. `None` disables ghosting.
        moving_update: One of `"sequential"` (default), `"averaged"` or
            `"full_batch"`; how the moving statistics follow training (see
            above). Ignored when `virtual_batch_size` is `None`.
        **kwargs: Every argument of `keras.layers.BatchNormalization`
            (`axis`, `momentum`, `epsilon`, `center`, `scale`, the
            initializers, regularizers and constraints, `name`, `dtype`...).
            `renorm=True` and `synchronized=True` are supported only with
            `virtual_batch_size=None` (see above).

    Call arguments:
        inputs: Tensor of rank 2 to 5.
        training: Python boolean or boolean tensor. `True` normalizes with
            ghost-batch statistics and updates the moving statistics;
            `False` or `None` uses the moving statistics.
        mask: Optional boolean tensor of the inputs' shape without the last
            axis; `False` marks the values left out of the statistics.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> layer = GhostBatchNormalization(virtual_batch_size=4, momentum=0.9)
    >>> x = np.random.default_rng(0).normal(size=(10, 3)).astype("float32")
    >>> y = ops.convert_to_numpy(layer(x, training=True))  # ghosts of 4, 4 and 2
    >>> y.shape
    (10, 3)
    >>> bool(np.abs(y[:4].mean(axis=0)).max() < 1e-5)  # each ghost: its own statistics
    True

    With a mask, here over the time steps of sequences of length 5:

    >>> sequences = np.random.default_rng(1).normal(size=(8, 5, 3)).astype("float32")
    >>> mask = np.arange(5) < np.array([5, 3, 2, 4, 1, 5, 2, 3])[:, None]
    >>> masked = GhostBatchNormalization(virtual_batch_size=4)
    >>> y = ops.convert_to_numpy(masked(sequences, training=True, mask=mask))
    >>> bool(np.abs(y[:4][mask[:4]].mean(axis=0)).max() < 1e-5)  # unmasked values only
    True
    """

    def __init__(self, virtual_batch_size=None, moving_update="sequential", **kwargs):
        if virtual_batch_size is not None:
            if isinstance(virtual_batch_size, bool) or not _is_integral(virtual_batch_size):
                raise ValueError(
                    "`virtual_batch_size` must be None or a positive integer. "
                    f"Received: virtual_batch_size={virtual_batch_size!r}"
                )
            virtual_batch_size = int(virtual_batch_size)
            if virtual_batch_size < 1:
                raise ValueError(
                    "`virtual_batch_size` must be None or a positive integer. "
                    f"Received: virtual_batch_size={virtual_batch_size}"
                )
        if moving_update not in MOVING_UPDATES:
            raise ValueError(
                f"`moving_update` must be one of {MOVING_UPDATES}. "
                f"Received: moving_update={moving_update!r}"
            )
        axis = kwargs.get("axis", -1)
        if isinstance(axis, (list, tuple)) or not _is_integral(axis):
            raise ValueError(
                "`axis` must be a single integer, the channel axis. "
                f"Received: axis={axis!r}"
            )
        if int(axis) == 0:
            raise ValueError(
                "`axis` must not be the batch axis 0: it is the channel axis "
                "(-1 for channels-last, 1 for channels-first). Received: axis=0"
            )
        if virtual_batch_size is not None:
            reasons = {
                "renorm": "batch renormalization pulls each batch's statistics "
                          "towards the moving ones, while ghost batches keep their own",
                "synchronized": "statistics over all replicas contradict "
                                "per-ghost statistics",
            }
            for option, reason in reasons.items():
                if kwargs.get(option, False):
                    raise ValueError(
                        f"`{option}=True` is not supported together with "
                        f"ghost batches: {reason}. Received: {option}=True, "
                        f"virtual_batch_size={virtual_batch_size}. Use "
                        f"virtual_batch_size=None for {option}."
                    )
        super().__init__(**kwargs)
        self.virtual_batch_size = virtual_batch_size
        self.moving_update = moving_update

    def add_weight(self, *args, **kwargs):
        # The parent's build creates the moving statistics through this
        # public method; averaging them over replicas is what makes saving
        # and exporting under a strategy well defined.
        if kwargs.get("name") in ("moving_mean", "moving_variance", "moving_stddev"):
            kwargs["aggregation"] = "mean"
        return super().add_weight(*args, **kwargs)

    def build(self, input_shape):
        rank = len(input_shape)
        if not 2 <= rank <= 5:
            raise ValueError(
                "GhostBatchNormalization expects inputs of rank 2 to 5. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if not -rank < self.axis < rank or self.axis % rank == 0:
            raise ValueError(
                f"`axis` must be a non-batch axis of the rank-{rank} input, "
                f"in [1, {rank - 1}] or [{-rank + 1}, -1]. Received: "
                f"axis={self.axis}, input_shape={tuple(input_shape)}"
            )
        super().build(input_shape)

    def call(self, inputs, training=None, mask=None):
        parent_call = super().call
        if self.virtual_batch_size is None:
            return parent_call(inputs, training=training, mask=mask)
        if mask is not None and len(mask.shape) != len(inputs.shape) - 1:
            raise ValueError(
                "The mask must have one dimension less than the inputs (it "
                "covers every axis but the last). Received: "
                f"mask.shape={tuple(mask.shape)}, inputs.shape={tuple(inputs.shape)}"
            )
        if not self.trainable or training is None or training is False:
            return parent_call(inputs, training=False, mask=mask)
        if training is True:
            return self._ghost_call(inputs, mask)
        # A tensor-valued `training` picks the branch at run time; both
        # branches are built, so ghosting is never silently skipped.
        return ops.cond(
            ops.cast(training, "bool"),
            lambda: self._ghost_call(inputs, mask),
            lambda: parent_call(inputs, training=False, mask=mask),
        )

    def _ghost_call(self, inputs, mask=None):
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        if mask is not None:
            # As in `BatchNormalization`: the mask covers every axis but the
            # last and is broadcast along it.
            mask = ops.broadcast_to(ops.expand_dims(ops.cast(mask, "bool"), -1), ops.shape(x))
        size = self.virtual_batch_size
        dims = ops.shape(x)
        batch = x.shape[0]
        shards = _data_shards()
        if shards > 1 and (batch is None or batch % shards):
            raise ValueError(
                "Under a keras.distribution with the batch split over "
                f"{shards} devices, GhostBatchNormalization needs a static "
                f"batch size divisible by {shards}. Received: batch size {batch}"
            )
        if batch is not None:
            # Static batch: the path is chosen here, in Python, once per trace.
            # Each shard (the whole batch without a keras.distribution) is
            # cut into ghosts of its own.
            shard = batch // shards
            if shard % size == 0 or shard < size:
                ghost_size = size if shard % size == 0 else shard
                shape = self._grouped_shape(x, ghost_size)
                outputs, new_mean, new_variance = self._reshaped_ghosts(
                    ops.reshape(x, shape),
                    None if mask is None else ops.reshape(mask, shape), shards)
                outputs = ops.reshape(outputs, dims)
            else:
                outputs, new_mean, new_variance = self._segment_ghosts(x, mask, shards)
        else:
            # Dynamic batch: both paths are traced and the batch picks one at
            # run time. The reshapes stay outside the `cond` (so that XLA,
            # which compiles for the concrete batch, sees constant shapes) and
            # are valid for any batch: a ragged one becomes one "ghost" of the
            # whole batch, which only the segment branch then reads.
            batch = dims[0]
            divisible = ops.equal(batch % size, 0)
            ghost_size = ops.where(divisible, size, batch)
            shape = self._grouped_shape(x, ghost_size)
            grouped = ops.reshape(x, shape)
            grouped_mask = None if mask is None else ops.reshape(mask, shape)

            def segment_branch():
                outputs, new_mean, new_variance = self._segment_ghosts(x, mask)
                return ops.reshape(outputs, ops.shape(grouped)), new_mean, new_variance

            outputs, new_mean, new_variance = ops.cond(
                ops.logical_or(divisible, ops.less(batch, size)),
                lambda: self._reshaped_ghosts(grouped, grouped_mask),
                segment_branch,
            )
            outputs = ops.reshape(outputs, dims)
        self.moving_mean.assign(ops.cast(new_mean, self.moving_mean.dtype))
        self.moving_variance.assign(ops.cast(new_variance, self.moving_variance.dtype))
        return ops.cast(outputs, self.compute_dtype)

    def _grouped_shape(self, x, ghost_size):
        """(ghosts, ghost_size * before, channels[, after]) for an input x.

        `before` and `after` are the products of the axes before and after
        the channel axis (batch excluded). Merging them leaves one reduced
        axis (two when channels come first) next to the channels, the
        shape XLA reduces fastest; it is a reshape of a contiguous tensor,
        so it copies nothing.
        """
        rank = len(x.shape)
        channel_axis = self.axis % rank
        dims = ops.shape(x)

        def product(axes):
            result = 1
            for a in axes:
                result = result * dims[a]
            return result

        shape = [-1, ghost_size * product(range(1, channel_axis)), dims[channel_axis]]
        if channel_axis < rank - 1:
            shape.append(product(range(channel_axis + 1, rank)))
        return tuple(shape)

    def _reshaped_ghosts(self, grouped, grouped_mask=None, shards=1):
        """Equal ghost batches, from `grouped` of shape `_grouped_shape`.

        This is plain BN's computation (`ops.moments`, then one multiply and
        one add on the inputs) with the ghosts on their own axis: no gather,
        no scatter. `grouped_mask` (the broadcast boolean mask, grouped the
        same way) restricts the statistics to the unmasked values. Returns the
        outputs in the shape of `grouped`.
        """
        channels = grouped.shape[2]
        channels_last = len(grouped.shape) == 3
        counts = None
        if grouped_mask is not None:
            axes = [1] if channels_last else [1, 3]
            weights = ops.cast(grouped_mask, grouped.dtype)
            counts = ops.sum(weights, axis=axes, keepdims=True)
            # An all-masked ghost has statistics 0 and 0, not NaN; the moving
            # statistics then skip it.
            safe_counts = ops.maximum(counts, 1.0)
            mean = ops.sum(ops.where(grouped_mask, grouped, 0.0), axis=axes,
                           keepdims=True) / safe_counts
            centered = ops.where(grouped_mask, grouped - ops.stop_gradient(mean), 0.0)
            variance = ops.sum(ops.square(centered), axis=axes, keepdims=True) / safe_counts
            counts = ops.reshape(counts, (-1, channels))
        elif channels_last:
            mean, variance = ops.moments(grouped, axes=[1], keepdims=True)
        else:
            # Reducing the minor axis first, then the example axis, is faster
            # than one reduction over both, with and without XLA. The ghost
            # batches have equal sizes, so the mean of means is the mean.
            def ghost_mean(t):
                return ops.mean(ops.mean(t, axis=3, keepdims=True), axis=1, keepdims=True)

            mean = ghost_mean(grouped)
            variance = ghost_mean(ops.square(grouped - ops.stop_gradient(mean)))

        def param(weight):  # broadcast against (ghosts, 1, channels[, 1])
            weight = ops.cast(weight, grouped.dtype)
            return weight if channels_last else ops.reshape(weight, (channels, 1))

        inv = ops.rsqrt(variance + self.epsilon)
        if self.scale:
            inv = inv * param(self.gamma)
        shift = -mean * inv
        if self.center:
            shift = shift + param(self.beta)
        new_mean, new_variance = self._moving_statistics(
            ops.reshape(mean, (-1, channels)), ops.reshape(variance, (-1, channels)),
            counts, masked=grouped_mask is not None, shards=shards)
        return grouped * inv + shift, new_mean, new_variance

    def _segment_ghosts(self, x, mask=None, shards=1):
        """Ghost batches of any sizes (the last one of each shard smaller) by segment sums."""
        rank = len(x.shape)
        channel_axis = self.axis % rank
        spatial_axes = [a for a in range(1, rank) if a != channel_axis]
        # Per-example statistics are (batch, channels); this shape broadcasts
        # them back against the input.
        stat_shape = [-1] + [1] * (rank - 1)
        stat_shape[channel_axis] = x.shape[channel_axis]

        shape = ops.shape(x)
        batch = shape[0]
        size = self.virtual_batch_size
        positions = ops.arange(batch, dtype="int32")
        if shards == 1:
            num_ghosts = (batch + size - 1) // size
            ghost_ids = ops.floor_divide(positions, size)
        else:  # a static batch: ghosts restart at every shard
            shard = batch // shards
            per_shard = (shard + size - 1) // size
            num_ghosts = shards * per_shard
            ghost_ids = (ops.floor_divide(positions, shard) * per_shard
                         + ops.floor_divide(positions % shard, size))

        def per_example_sum(t):
            return ops.sum(t, axis=spatial_axes) if spatial_axes else t

        def ghost_sum(per_example_values):
            return ops.segment_sum(per_example_values, ghost_ids, num_segments=num_ghosts)

        if mask is None:
            per_example = 1
            for a in spatial_axes:
                per_example = per_example * shape[a]
            examples = ghost_sum(ops.ones((batch,), dtype=x.dtype))
            counts = ops.expand_dims(examples * ops.cast(per_example, x.dtype), -1)
            safe_counts = counts

            def masked(t):
                return t
        else:
            counts = ghost_sum(per_example_sum(ops.cast(mask, x.dtype)))  # (ghosts, channels)
            safe_counts = ops.maximum(counts, 1.0)

            def masked(t):
                return ops.where(mask, t, 0.0)

        mean = ghost_sum(per_example_sum(masked(x))) / safe_counts  # (ghosts, channels)
        mean_x = ops.reshape(ops.take(mean, ghost_ids, axis=0), stat_shape)
        # The mean's gradient through the variance is zero at the mean, so it
        # is stopped there, as tf.nn.moments does.
        centered = x - ops.stop_gradient(mean_x)
        variance = ghost_sum(per_example_sum(ops.square(masked(centered)))) / safe_counts

        inv = ops.rsqrt(ops.take(variance, ghost_ids, axis=0) + self.epsilon)
        if self.scale:
            inv = inv * ops.cast(self.gamma, x.dtype)
        scale_x = ops.reshape(inv, stat_shape)
        outputs = (x - mean_x) * scale_x
        if self.center:
            outputs = outputs + ops.reshape(ops.cast(self.beta, x.dtype), stat_shape[1:])

        new_mean, new_variance = self._moving_statistics(
            mean, variance, counts, masked=mask is not None, shards=shards)
        return outputs, new_mean, new_variance

    def _moving_statistics(self, mean, variance, counts=None, masked=False, shards=1):
        """The new moving mean and variance from (ghosts, channels) statistics.

        The ghosts are in batch order, `ghosts / shards` per shard. `counts`
        holds how many values each ghost's statistics cover, of shape
        `(ghosts, 1)` or `(ghosts, channels)`; `None` means equal counts. With
        `masked`, a ghost whose count is zero is skipped, and a shard whose
        ghosts are all empty leaves the moving statistics as they are. Each
        shard follows the rule on its own ghosts; the result is the mean over
        the shards (what `aggregation="mean"` does under `tf.distribute`).
        """
        mean = ops.stop_gradient(mean)
        variance = ops.stop_gradient(variance)
        m = self.momentum
        moving_mean = ops.cast(self.moving_mean, mean.dtype)
        moving_variance = ops.cast(self.moving_variance, mean.dtype)

        def by_shard(t):  # (ghosts, c) -> (shards, ghosts per shard, c)
            return ops.reshape(t, (shards, -1, t.shape[-1]))

        if self.moving_update == "sequential" and not masked:
            # k steps in closed form: the l-th of k ghost statistics ends up
            # weighted by (1 - m) * m**(k - l), the old value by m**k.
            num_ghosts = mean.shape[0]
            if num_ghosts is not None:  # constants, computed once per trace
                k = num_ghosts // shards
                weights = np.float64(m) ** np.arange(k - 1, -1, -1) * (1.0 - m)
                weights = np.tile(weights, shards) / shards  # the mean over shards
                weights = ops.convert_to_tensor(weights[:, None], mean.dtype)
                decay = float(m) ** k
            else:  # a dynamic batch: one shard
                num_ghosts = ops.shape(mean)[0]
                k = ops.cast(num_ghosts, mean.dtype)
                exponents = k - 1.0 - ops.cast(ops.arange(num_ghosts), mean.dtype)
                weights = (1.0 - m) * ops.power(ops.cast(m, mean.dtype), exponents)[:, None]
                decay = ops.power(ops.cast(m, mean.dtype), k)
            new_mean = decay * moving_mean + ops.sum(weights * mean, axis=0)
            new_variance = decay * moving_variance + ops.sum(weights * variance, axis=0)
            return new_mean, new_variance

        if self.moving_update == "sequential":
            # One step per non-empty ghost: ghost l is weighted by
            # (1 - m) * m**(non-empty ghosts after it in its shard).
            steps = by_shard(ops.cast(counts > 0, mean.dtype))
            total = ops.sum(steps, axis=1, keepdims=True)
            after = total - ops.cumsum(steps, axis=1)
            m_t = ops.cast(m, mean.dtype)
            weights = steps * (1.0 - m) * ops.power(m_t, after)
            decay = ops.mean(ops.power(m_t, total), axis=(0, 1))

            def advance(moving, stat):
                return decay * moving + ops.sum(weights * by_shard(stat), axis=(0, 1)) / shards

            return advance(moving_mean, mean), advance(moving_variance, variance)

        # "averaged" and "full_batch": one step per shard with its pooled
        # statistics (ghosts weighted by their counts).
        mean_s, variance_s = by_shard(mean), by_shard(variance)
        if counts is None:
            def pool(t):
                return ops.mean(t, axis=1, keepdims=True)
            present = None
        else:
            counts_s = by_shard(counts)
            shard_counts = ops.sum(counts_s, axis=1, keepdims=True)
            fractions = counts_s / ops.maximum(shard_counts, 1.0)

            def pool(t):
                return ops.sum(fractions * t, axis=1, keepdims=True)
            present = ops.cast(shard_counts > 0, mean.dtype) if masked else None
        batch_mean = pool(mean_s)
        if self.moving_update == "averaged":
            batch_variance = pool(variance_s)
        else:
            # Law of total variance: within-ghost plus between-ghost.
            batch_variance = pool(variance_s + ops.square(mean_s - batch_mean))

        def step(moving, stat):
            change = stat - moving
            if present is not None:  # an empty shard does not move it
                change = present * change
            return moving + (1.0 - m) * ops.mean(change, axis=(0, 1))

        return step(moving_mean, batch_mean), step(moving_variance, batch_variance)

    def get_config(self):
        base_config = super().get_config()
        config = {
            "virtual_batch_size": self.virtual_batch_size,
            "moving_update": self.moving_update,
        }
        return {**base_config, **config}


def _data_shards():
    """How many devices a `keras.distribution` splits the batch over (1 without one)."""
    distribution = keras.distribution.distribution()
    if distribution is None or distribution.batch_dim_name is None:
        return 1
    mesh = distribution.device_mesh
    names = list(mesh.axis_names)
    if distribution.batch_dim_name not in names:
        return 1
    return int(mesh.shape[names.index(distribution.batch_dim_name)])


def _is_integral(value):
    try:
        return int(value) == value
    except (TypeError, ValueError):
        return False
