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
    computes what `keras.layers.BatchNormalization` computes.

    **Speed.** When the batch is a multiple of `virtual_batch_size` (or
    smaller than it), the ghost statistics come from a reshape to
    `(ghosts, virtual_batch_size, ...)` and the reductions plain BN uses, so a
    training step costs what plain BN's costs, with or without XLA: no
    gather, no scatter, the same casts under mixed precision (statistics and
    normalization in float32, outputs in the compute dtype, as in
    `BatchNormalization`). Other batch sizes go through segment sums over
    ghost ids, which handle the smaller last ghost batch but lower to
    gathers and scatters. The path is chosen once per trace: in Python when
    the batch size is static; when it is `None`, both are traced and a
    `cond` on `batch % virtual_batch_size` picks one per step (XLA compiles
    for concrete shapes and drops the branch not taken). Both paths compute
    the same numbers.

    **Distribution.** Under a `tf.distribute` strategy every replica ghosts
    its own shard. The moving mean and variance are created with
    `aggregation="mean"`: each update is averaged over the replicas, so
    every replica holds the same value, equal to the mean of what the
    replicas computed, and that value is what `predict`, `save` and `export`
    see. Keras' own `BatchNormalization` keeps an unaggregated copy per
    replica, which drifts apart and is exported from replica 0 only; this
    layer fixes that also for `virtual_batch_size=None`.

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
            `renorm=True`, `synchronized=True` and masking are supported only
            with `virtual_batch_size=None`.

    Call arguments:
        inputs: Tensor of rank 2 to 5.
        training: Python boolean or boolean tensor. `True` normalizes with
            ghost-batch statistics and updates the moving statistics;
            `False` or `None` uses the moving statistics.
        mask: Only without ghosting, as in `BatchNormalization`.

    Example:

    >>> import numpy as np
    >>> layer = GhostBatchNormalization(virtual_batch_size=4, momentum=0.9)
    >>> x = np.random.default_rng(0).normal(size=(10, 3)).astype("float32")
    >>> y = layer(x, training=True)   # ghost batches of 4, 4 and 2 examples
    >>> y.shape
    TensorShape([10, 3])
    >>> np.abs(np.asarray(y[:4]).mean(axis=0)).max() < 1e-5  # own statistics
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
            for option in ("renorm", "synchronized"):
                if kwargs.get(option, False):
                    raise ValueError(
                        f"`{option}=True` is not supported together with "
                        "ghost batches: ghost statistics are per sub-batch "
                        f"by definition. Received: {option}=True, "
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
        if mask is not None:
            raise ValueError(
                "Masking is not supported with ghost batches. Received a "
                f"mask with virtual_batch_size={self.virtual_batch_size}; "
                "use virtual_batch_size=None."
            )
        if not self.trainable or training is None or training is False:
            return parent_call(inputs, training=False)
        if training is True:
            return self._ghost_call(inputs)
        # A tensor-valued `training` picks the branch at run time; both
        # branches are built, so ghosting is never silently skipped.
        return ops.cond(
            ops.cast(training, "bool"),
            lambda: self._ghost_call(inputs),
            lambda: parent_call(inputs, training=False),
        )

    def _ghost_call(self, inputs):
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        size = self.virtual_batch_size
        dims = ops.shape(x)
        batch = x.shape[0]
        if batch is not None:
            # Static batch: the path is chosen here, in Python, once per trace.
            if batch % size == 0 or batch < size:
                ghost_size = size if batch % size == 0 else batch
                grouped = ops.reshape(x, self._grouped_shape(x, ghost_size))
                outputs, new_mean, new_variance = self._reshaped_ghosts(grouped)
                outputs = ops.reshape(outputs, dims)
            else:
                outputs, new_mean, new_variance = self._segment_ghosts(x)
        else:
            # Dynamic batch: both paths are traced and the batch picks one at
            # run time. The reshapes stay outside the `cond` (so that XLA,
            # which compiles for the concrete batch, sees constant shapes) and
            # are valid for any batch: a ragged one becomes one "ghost" of the
            # whole batch, which only the segment branch then reads.
            batch = dims[0]
            divisible = ops.equal(batch % size, 0)
            ghost_size = ops.where(divisible, size, batch)
            grouped = ops.reshape(x, self._grouped_shape(x, ghost_size))

            def segment_branch():
                outputs, new_mean, new_variance = self._segment_ghosts(x)
                return ops.reshape(outputs, ops.shape(grouped)), new_mean, new_variance

            outputs, new_mean, new_variance = ops.cond(
                ops.logical_or(divisible, ops.less(batch, size)),
                lambda: self._reshaped_ghosts(grouped),
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

    def _reshaped_ghosts(self, grouped):
        """Equal ghost batches, from `grouped` of shape `_grouped_shape`.

        This is plain BN's computation (`ops.moments`, then one multiply and
        one add on the inputs) with the ghosts on their own axis: no gather,
        no scatter. Returns the outputs in the shape of `grouped`.
        """
        channels = grouped.shape[2]
        channels_last = len(grouped.shape) == 3
        if channels_last:
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
            ops.reshape(mean, (-1, channels)), ops.reshape(variance, (-1, channels)))
        return grouped * inv + shift, new_mean, new_variance

    def _segment_ghosts(self, x):
        """Ghost batches of any sizes (the last one smaller) by segment sums."""
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
        num_ghosts = (batch + size - 1) // size
        ghost_ids = ops.floor_divide(ops.arange(batch, dtype="int32"), size)

        per_example = 1
        for a in spatial_axes:
            per_example = per_example * shape[a]
        examples = ops.segment_sum(
            ops.ones((batch,), dtype=x.dtype), ghost_ids, num_segments=num_ghosts
        )
        counts = ops.expand_dims(examples * ops.cast(per_example, x.dtype), -1)

        def per_example_sum(t):
            return ops.sum(t, axis=spatial_axes) if spatial_axes else t

        def ghost_mean(per_example_values):
            sums = ops.segment_sum(per_example_values, ghost_ids, num_segments=num_ghosts)
            return sums / counts

        mean = ghost_mean(per_example_sum(x))  # (ghosts, channels)
        mean_x = ops.reshape(ops.take(mean, ghost_ids, axis=0), stat_shape)
        # The mean's gradient through the variance is zero at the mean, so it
        # is stopped there, as tf.nn.moments does.
        centered = x - ops.stop_gradient(mean_x)
        variance = ghost_mean(per_example_sum(ops.square(centered)))

        inv = ops.rsqrt(ops.take(variance, ghost_ids, axis=0) + self.epsilon)
        if self.scale:
            inv = inv * ops.cast(self.gamma, x.dtype)
        scale_x = ops.reshape(inv, stat_shape)
        outputs = (x - mean_x) * scale_x
        if self.center:
            outputs = outputs + ops.reshape(ops.cast(self.beta, x.dtype), stat_shape[1:])

        fractions = examples / ops.cast(batch, x.dtype)
        new_mean, new_variance = self._moving_statistics(mean, variance, fractions)
        return outputs, new_mean, new_variance

    def _moving_statistics(self, mean, variance, fractions=None):
        """The new moving mean and variance from (ghosts, channels) statistics.

        `fractions` holds each ghost batch's share of the batch; `None` means
        equal shares.
        """
        mean = ops.stop_gradient(mean)
        variance = ops.stop_gradient(variance)
        m = self.momentum
        moving_mean = ops.cast(self.moving_mean, mean.dtype)
        moving_variance = ops.cast(self.moving_variance, mean.dtype)
        if self.moving_update == "sequential":
            # k steps in closed form: the l-th of k ghost statistics ends up
            # weighted by (1 - m) * m**(k - l), the old value by m**k.
            num_ghosts = mean.shape[0]
            if num_ghosts is not None:  # constants, computed once per trace
                weights = np.float64(m) ** np.arange(num_ghosts - 1, -1, -1) * (1.0 - m)
                weights = ops.convert_to_tensor(weights[:, None], mean.dtype)
                decay = float(m) ** num_ghosts
            else:
                num_ghosts = ops.shape(mean)[0]
                k = ops.cast(num_ghosts, mean.dtype)
                exponents = k - 1.0 - ops.cast(ops.arange(num_ghosts), mean.dtype)
                weights = (1.0 - m) * ops.power(ops.cast(m, mean.dtype), exponents)[:, None]
                decay = ops.power(ops.cast(m, mean.dtype), k)
            new_mean = decay * moving_mean + ops.sum(weights * mean, axis=0)
            new_variance = decay * moving_variance + ops.sum(weights * variance, axis=0)
            return new_mean, new_variance

        def batch_average(t):
            if fractions is None:
                return ops.mean(t, axis=0)
            return ops.sum(fractions[:, None] * t, axis=0)

        batch_mean = batch_average(mean)
        if self.moving_update == "averaged":
            batch_variance = batch_average(variance)
        else:
            # Law of total variance: within-ghost plus between-ghost.
            batch_variance = batch_average(variance + ops.square(mean - batch_mean[None, :]))
        new_mean = m * moving_mean + (1.0 - m) * batch_mean
        new_variance = m * moving_variance + (1.0 - m) * batch_variance
        return new_mean, new_variance

    def get_config(self):
        base_config = super().get_config()
        config = {
            "virtual_batch_size": self.virtual_batch_size,
            "moving_update": self.moving_update,
        }
        return {**base_config, **config}


def _is_integral(value):
    try:
        return int(value) == value
    except (TypeError, ValueError):
        return False
