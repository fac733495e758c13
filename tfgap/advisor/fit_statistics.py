"""`GradientStatisticsModel`: the gradient noise scale from `model.fit`'s own gradients.

A `keras.callbacks.Callback` never sees gradients, so the statistics come
from a `keras.Model` wrapper whose `train_step` computes them (as `tfgap.SAM`
does for its second pass). TensorFlow backend only.
"""

import keras

from tfgap import backend
from tfgap._wrapped_model import from_wrapper_config, wrapper_config
from tfgap.advisor.gradient_statistics import (
    DEFAULT_DECAY,
    STATE_KEYS,
    NoiseStatistics,
    two_batch_formulas,
)

backend.require_tensorflow("tfgap.advisor.GradientStatisticsModel")

import tensorflow as tf  # noqa: E402

_MOMENTS = ("norm_sq", "trace", "norm_sq_sq", "trace_sq", "cross")


@keras.saving.register_keras_serializable(package="tfgap")
class GradientStatisticsModel(keras.Model):
    """Trains `model` with `model.fit` and measures `B_simple` from its training gradients.

    Each step computes small gradients and their mean, in training mode on
    the batch `fit` gives (your augmentation, dropout and normalization):

    - one replica: the batch is split into two halves, each run forward and
      backward on its own; the step applies the mean of the two half-batch
      gradients, which is the whole batch's gradient (with plain Batch
      Normalization each half is normalized with its own statistics, as
      ghost batches of half the batch; without batch statistics the forward
      is the plain one). Small batch `b = n / 2`, big `B = n`.
    - several replicas (`tf.distribute`): each replica's gradient of its own
      mean loss against their all-reduced mean (one extra all-reduce of the
      gradients per step); the optimizer gets the replicas' gradients as
      usual. `b` = the per-replica batch, `B` the global one.

    The squared norms give unbiased estimates of `|G|^2` and `tr(Sigma)`
    (`tfgap.advisor.two_batch_estimates`), folded into bias-corrected moving
    averages in float64 variables of this model (so they are saved with
    its weights), exactly as `tfgap.advisor.NoiseStatistics` does on the
    host. A step whose batch does not split into equal small batches (an odd
    last batch) is trained but not measured. The logs carry `b_simple`,
    `grad_norm_sq` and `trace_sigma` (the averages after the step), so
    `history.history["b_simple"]` is the value at each epoch's end;
    `noise_statistics()` returns the `NoiseStatistics` (with its error).

    Paper: McCandlish et al. 2018, "An Empirical Model of Large-Batch
    Training" (arXiv 1812.06162), Appendix A.

    Args:
        model: the `keras.Model` to train (its call is this model's call);
            available as `inner_model`.
        decay: the moving averages' decay in [0, 1) (default 0.99).
        **kwargs: `keras.Model` arguments such as `name`.

    Example:

    >>> import numpy as np
    >>> inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> model = GradientStatisticsModel(inner, decay=0.9)
    >>> model.compile(optimizer=keras.optimizers.SGD(0.1),
    ...               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(256, 4)).astype("float32"), rng.integers(0, 3, 256)
    >>> history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    >>> stats = model.noise_statistics()
    >>> int(stats.count), stats.small_batch, stats.big_batch, "b_simple" in history.history
    (16, 16.0, 32.0, True)
    """

    def __init__(self, model, decay=DEFAULT_DECAY, **kwargs):
        if not isinstance(model, keras.layers.Layer):
            raise ValueError(
                "Expected `model` to be a keras.Model (or layer). Received: "
                f"model={model!r} of type {type(model).__name__}.")
        NoiseStatistics(1, 2, decay)  # checks decay (GradientStatisticsError names it)
        super().__init__(**kwargs)
        self.inner_model = model
        self.decay = float(decay)
        self._moments = {key: self.add_weight(shape=(), dtype="float64", initializer="zeros",
                                              trainable=False, name=key,
                                              aggregation="only_first_replica")
                         for key in (*_MOMENTS, "count", "small_batch", "big_batch")}
        if model.built:
            self.built = True

    def call(self, inputs, training=None):
        return self.inner_model(inputs, training=training)

    def _loss_and_gradients(self, x, y, sample_weight, variables):
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                     training=True)
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
        return loss, y_pred, grads

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        variables = list(self.trainable_variables)
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        n = tf.shape(tf.nest.flatten(x)[0])[0]
        if replicas == 1:
            half = n // 2

            def part(t, first):
                return None if t is None else (t[:half] if first else t[half:])

            pieces = [tf.nest.map_structure(lambda t, f=first: part(t, f), (x, y, sample_weight))
                      for first in (True, False)]
            results = [self._loss_and_gradients(*piece, variables) for piece in pieces]
            loss = (results[0][0] + results[1][0]) / 2.0
            y_pred = tf.concat([results[0][1], results[1][1]], axis=0)
            small = [r[2] for r in results]
            grads = [(a + b) / 2.0 for a, b in zip(*small)]
            small_sq = (_squared_norm(small[0]) + _squared_norm(small[1])) / 2.0
            big_sq = _squared_norm(grads)
            small_batch, big_batch = tf.cast(half, tf.float64), tf.cast(n, tf.float64)
            measured = tf.logical_and(tf.equal(2 * half, n), half > 0)
        else:
            # compute_loss divides by the replicas: the replica's own mean-loss gradient
            # is `replicas * g_r`, their mean the all-reduced sum.
            loss, y_pred, grads = self._loss_and_gradients(x, y, sample_weight, variables)
            reduced = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
            small_sq = context.all_reduce(
                tf.distribute.ReduceOp.SUM, _squared_norm(grads)) * float(replicas)
            big_sq = _squared_norm(reduced)
            count = tf.cast(n, tf.float64)
            total, total_sq = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                                 [count, count * count])
            # Equal per-replica batches iff R sum(n_r^2) = (sum n_r)^2 (Cauchy-Schwarz).
            small_batch, big_batch = total / replicas, total
            measured = tf.equal(total_sq * replicas, total * total)
        scale = tf.cast(self.optimizer.scale_loss(tf.constant(1.0)), tf.float64)
        self._update(tf.cast(small_sq, tf.float64) / scale ** 2,
                     tf.cast(big_sq, tf.float64) / scale ** 2, small_batch, big_batch, measured)
        self.optimizer.apply(grads, variables)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss * tf.cast(replicas, loss.dtype), sample_weight=n)
        logs = self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        logs.update(self._statistics())
        return logs

    def _update(self, small_sq, big_sq, small_batch, big_batch, measured):
        m = self._moments
        # Unmeasured steps (one half empty) get the batch sizes 1 and 2, so that nothing
        # divides by zero; their values are dropped below.
        b = tf.where(measured, small_batch, 1.0)
        big = tf.where(measured, big_batch, 2.0)
        norm_sq, trace = two_batch_formulas(small_sq, big_sq, b, big)
        ok = tf.logical_and(measured, tf.logical_and(tf.math.is_finite(norm_sq),
                                                     tf.math.is_finite(trace)))
        d = tf.where(ok, tf.constant(self.decay, tf.float64), tf.constant(1.0, tf.float64))
        values = {"norm_sq": norm_sq, "trace": trace, "norm_sq_sq": norm_sq * norm_sq,
                  "trace_sq": trace * trace, "cross": norm_sq * trace}
        for key, value in values.items():
            m[key].assign(d * m[key] + (1.0 - d) * tf.where(ok, value, tf.zeros_like(value)))
        m["count"].assign_add(tf.where(ok, 1.0, 0.0))
        m["small_batch"].assign(tf.where(ok, b, m["small_batch"]))
        m["big_batch"].assign(tf.where(ok, big, m["big_batch"]))

    def _statistics(self):
        m = self._moments
        correction = 1.0 - tf.constant(self.decay, tf.float64) ** m["count"]
        safe = tf.where(correction > 0, correction, 1.0)
        norm_sq, trace = m["norm_sq"] / safe, m["trace"] / safe
        nan = tf.constant(float("nan"), tf.float64)
        b_simple = tf.where(tf.logical_and(correction > 0, norm_sq > 0),
                            trace / tf.where(norm_sq > 0, norm_sq, 1.0), nan)
        return {"grad_norm_sq": tf.where(correction > 0, norm_sq, nan),
                "trace_sigma": tf.where(correction > 0, trace, nan), "b_simple": b_simple}

    def noise_statistics(self):
        """The moving averages so far as a host `tfgap.advisor.NoiseStatistics`.

        Returns `None` before any measured step.
        """
        values = {key: float(keras.ops.convert_to_numpy(v)) for key, v in self._moments.items()}
        if not values["count"]:
            return None
        state = dict(values, decay=self.decay)
        return NoiseStatistics.from_state({key: state[key] for key in STATE_KEYS})

    def get_config(self):
        return wrapper_config(super().get_config(), self.inner_model, decay=self.decay)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return from_wrapper_config(cls, config, custom_objects)


def _squared_norm(tensors):
    return tf.add_n([tf.reduce_sum(tf.square(tf.cast(t, tf.float32))) for t in tensors])
