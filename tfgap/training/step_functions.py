"""The compiled functions of a run: the distributed training steps and the evaluation.

One replica step computes, for its share `b = B / R` of the global batch `B`
over `R` replicas:

    loss_replica = sum_i CE_s(x_i, y_i) / B  +  sum(model.losses) / R

so that the gradients the Keras optimizer all-reduces (sums) over replicas
are those of `mean CE over the global batch + weight decay`, whatever `R` is.
`CE_s` is the cross-entropy with label smoothing `s` (Szegedy et al. 2016): the
target is `(1 - s) one_hot(y) + s / C` over `C` classes (`s = 0`: plain
cross-entropy). Weight decay is coupled L2 in `model.losses` (gradient
`weight_decay * w`), or LARS's own.
Under `mixed_float16` the loss is scaled by the `LossScaleOptimizer`.

Steps return per-replica sums (loss, correct predictions, examples) reduced
over replicas, so the host sees global numbers under every strategy,
including several workers. Several steps run per `tf.function` call and
their numbers come back together (one host sync per call); the in-graph loop
stops at the first non-finite loss, so no step runs after it.
"""

import warnings

import keras
import tensorflow as tf

from tfgap import sam


def make_train_step(strategy, model, optimizer, step_var, *, global_batch_size, jit_compile=False,
                    sam_rho=0.0, sam_adaptive=False, label_smoothing=0.0,
                    noise_statistics=False, adascale=None, parts=1):
    """A `tf.function(iterator, num_steps) -> [n, 5] float32` running up to `num_steps` steps.

    Several optimizer steps run in one call (an in-graph `tf.range` loop over
    the iterator, like Keras' `steps_per_execution`), so the host pays the
    call and the device-to-host copy once per call, not once per step. The
    loop stops after the first step whose loss or squared gradient norm is
    not finite (that step is applied, as a one-step call would), so no step
    ever runs after a non-finite one. The loop body is the same whatever
    `num_steps` is (one trace), so grouping steps never changes the numbers.

    Args:
        strategy: the run's strategy (model and optimizer built in its scope).
        model: a Keras model returning logits.
        optimizer: a Keras optimizer (possibly a `LossScaleOptimizer`).
        step_var: an int64 `tf.Variable` incremented once per step.
        global_batch_size: `B`, the global batch size.
        jit_compile: XLA-compile the forward and backward pass.
        sam_rho: with `sam_rho > 0`, each step is a Sharpness-Aware
            Minimization step (Foret et al. 2021): the gradient applied is the
            one at `w + e`, `e` from the global gradient at `w`, computed by
            `tfgap.sam.sharpness_aware_gradients` (the pass at `w + e` changes
            no moving statistics; it is not XLA-compiled).
        sam_adaptive: ASAM's scale-invariant perturbation (Kwon et al. 2021).
        label_smoothing: `s` in [0, 1), the label smoothing of the training
            loss (the loss row reports the smoothed loss).
        noise_statistics: also return, per step, the squared norms that
            `tfgap.advisor.NoiseStatistics` needs (columns 6 and 7, see
            below). Off (the default), the step is the plain one: the same
            Python functions and the same graph, 5 columns.
        adascale: the optimizer's `tfgap.adaptive.AdaScaleLearningRate`
            (`adaptive="lr"`), or `None` (the default: no op of it in the
            graph). After each step the graph advances its progress by its
            gain (`rate.advance()`; under a `LossScaleOptimizer`, by the gain
            times the iterations the optimizer advanced, so a skipped step
            does not count). The gain itself is the host's to assign between
            calls: it is constant within a call.
        parts: elements of the iterator each step reads (>= 1): each replica's
            `parts` consecutive batches joined into its batch of the step
            (`adaptive="batch"` with `batch_decision_steps`: one pipeline of
            `base_batch_size` batches serves every global batch of an epoch).

    **Noise statistics.** Two squared norms per step, from the gradients the
    step computes anyway, in training mode (the run's augmentation, dropout
    and normalization):

    - `|G_b|^2`, the mean over the step's small gradients of their squared
      norms, each the gradient of its own mean loss (plus regularization);
    - `|G_B|^2`, the squared norm of the step's gradient (their mean).

    Over `R > 1` replicas the small gradients are the replicas': replica
    `r`'s gradient `g_r` is of `sum CE / B + reg / R`, so its own mean-loss
    gradient is `R g_r` (`b = B / R`); the step's gradient is the all-reduced
    `sum_r g_r`, for which the step runs one extra all-reduce of the
    gradients (the optimizer still gets `g_r` and reduces them as always, so
    the update is bitwise the one without statistics). On one replica the
    batch is split into two halves of `b = B / 2`, each run forward and
    backward on its own (`sum CE_half / B + reg / 2`), and the step applies
    the sum of the two half gradients. With no batch statistics, or Ghost
    Batch Normalization whose ghost batch divides `B / 2` (moving averages
    updated ghost by ghost in the same order), the forward is the plain
    step's; the update differs only by rounding. With plain Batch
    Normalization each half is normalized with its own statistics (as ghost
    batches of `B / 2`). Under loss scaling the norms are unscaled.

    Returns:
        The step function. Row `i` of its output is step `i`'s
        `(loss, correct, count, grad_sq, learning_rate)`: summed over replicas,
        the loss (mean over the global batch, plus weight decay), the number of
        correct predictions, the number of examples and the squared gradient
        norm; and the learning rate the optimizer applied, read from its own
        schedule at its own iteration count (under a `LossScaleOptimizer` the
        count does not advance on a skipped step, and neither does the rate). It
        has `num_steps` rows, or fewer when a step was not finite (the last row
        is then that step). With `noise_statistics`, two more columns:
        `|G_b|^2` and `|G_B|^2` (see above).
    """
    num_replicas = strategy.num_replicas_in_sync
    scale_loss = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    global_batch = float(global_batch_size)

    def losses(x, y, shares=num_replicas):
        """`(loss, logits, scaled loss)` of this share of the batch (one of `shares`)."""
        logits = tf.cast(model(x, training=True), tf.float32)
        if label_smoothing:
            per_example = keras.losses.categorical_crossentropy(
                tf.one_hot(y, tf.shape(logits)[-1]), logits, from_logits=True,
                label_smoothing=label_smoothing)
        else:
            per_example = keras.losses.sparse_categorical_crossentropy(y, logits,
                                                                       from_logits=True)
        loss = tf.reduce_sum(per_example) / global_batch
        if model.losses:
            loss += tf.add_n([tf.cast(l, tf.float32) for l in model.losses]) / shares
        return loss, logits, optimizer.scale_loss(loss) if scale_loss else loss

    def forward_backward(x, y, shares=num_replicas):
        with tf.GradientTape() as tape:
            loss, logits, scaled = losses(x, y, shares)
        grads = tape.gradient(scaled, model.trainable_variables)
        return loss, logits, grads

    if jit_compile:
        forward_backward = tf.function(forward_backward, jit_compile=True)

    def replica_step(x, y):
        y = tf.cast(y, tf.int32)
        loss, logits, grads = forward_backward(x, y)
        if sam_rho:
            grads = sam.sharpness_aware_gradients(lambda: losses(x, y)[2],
                                                  model.trainable_variables, grads, sam_rho,
                                                  sam_adaptive)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        correct = tf.reduce_sum(
            tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), y), tf.float32)
        )
        count = tf.cast(tf.shape(y)[0], tf.float32)
        grad_sq = tf.add_n([tf.reduce_sum(tf.square(tf.cast(g, tf.float32))) for g in grads])
        return loss, correct, count, grad_sq

    width = 5
    if noise_statistics:
        replica_step = _measured_replica_step(
            model, optimizer, num_replicas=num_replicas, scale_loss=scale_loss, losses=losses,
            forward_backward=forward_backward, sam_rho=sam_rho, sam_adaptive=sam_adaptive)
        width = 7

    def run_step(x, y):
        return strategy.run(replica_step, args=(x, y))

    def next_batch(iterator):
        if parts == 1:
            return next(iterator)
        pieces = [next(iterator) for _ in range(parts)]
        return strategy.run(_joined, args=tuple(pieces))

    if adascale is not None:
        run_step = _advancing(run_step, optimizer, adascale, scale_loss)

    @tf.function
    def train_steps(iterator, num_steps):
        rows = tf.TensorArray(tf.float32, size=0, dynamic_size=True,
                              element_shape=tf.TensorShape([width]))
        for i in tf.range(num_steps):
            x, y = next_batch(iterator)
            learning_rate = tf.cast(optimizer.learning_rate, tf.float32)
            outputs = run_step(x, y)
            sums = [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in outputs]
            reduced = tf.stack(sums[:4] + [learning_rate] + sums[4:])
            step_var.assign_add(1)
            rows = rows.write(i, reduced)
            # The reduced numbers are the same on every worker: all stop together.
            if not tf.reduce_all(tf.math.is_finite(reduced)):
                break
        return rows.stack()

    return train_steps


def _joined(*pieces):
    """One replica's `(x, y)` batches, joined in order into one batch."""
    return tuple(tf.concat([piece[k] for piece in pieces], axis=0) for k in range(2))


def _advancing(run_step, optimizer, rate, scale_loss):
    """`run_step`, then the AdaScale progress advanced by the gain (see `make_train_step`)."""

    def step_and_advance(x, y):
        if not scale_loss:
            outputs = run_step(x, y)
            rate.advance()
            return outputs
        iterations = _read(optimizer.iterations)
        outputs = run_step(x, y)
        applied = tf.cast(_read(optimizer.iterations) - iterations, tf.float64)
        rate.progress.assign_add(tf.cast(_read(rate.gain), tf.float64) * applied)
        return outputs

    return step_and_advance


def _read(variable):
    """A variable's value now, as a tensor (Keras variables: their TensorFlow variable)."""
    return tf.identity(variable.value if isinstance(variable, keras.Variable) else variable)


def _squared_norm(tensors):
    return tf.add_n([tf.reduce_sum(tf.square(tf.cast(t, tf.float32))) for t in tensors])


def _measured_replica_step(model, optimizer, *, num_replicas, scale_loss, losses,
                           forward_backward, sam_rho, sam_adaptive):
    """The replica step with `noise_statistics` (see `make_train_step`).

    `losses` and `forward_backward` are the plain step's, with the number of
    shares the regularization is split into (two halves on one replica).
    Returns `(loss, correct, count, grad_sq, small_sq, big_sq)` per replica,
    each to be summed over replicas: `small_sq` sums to `|G_b|^2` and
    `big_sq` to `|G_B|^2`.
    """
    variables = model.trainable_variables

    def dense(grads):
        return [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]

    def half_forward_backward(x, y):
        loss, logits, grads = forward_backward(x, y, 2)  # half the regularization each
        return loss, logits, dense(grads)

    def unscale(value):
        if not scale_loss:
            return value
        scale = tf.cast(optimizer.dynamic_scale, tf.float32)
        return value / (scale * scale)

    def replica_step(x, y):
        y = tf.cast(y, tf.int32)
        if num_replicas == 1:
            half = tf.shape(y)[0] // 2
            first = tf.nest.map_structure(lambda t: t[:half], x)
            second = tf.nest.map_structure(lambda t: t[half:], x)
            loss_a, logits_a, grads_a = half_forward_backward(first, y[:half])
            loss_b, logits_b, grads_b = half_forward_backward(second, y[half:])
            loss, logits = loss_a + loss_b, tf.concat([logits_a, logits_b], axis=0)
            grads = [a + b for a, b in zip(grads_a, grads_b)]
            # The two half-batch mean-loss gradients are 2 g_a and 2 g_b.
            small_sq = unscale(2.0 * (_squared_norm(grads_a) + _squared_norm(grads_b)))
            big_sq = unscale(_squared_norm(grads))
        else:
            loss, logits, grads = forward_backward(x, y)
            grads = dense(grads)
            reduced = tf.distribute.get_replica_context().all_reduce(
                tf.distribute.ReduceOp.SUM, grads)
            # Summed over replicas: mean_r |R g_r|^2 = R sum_r |g_r|^2, and |sum_r g_r|^2.
            small_sq = unscale(num_replicas * _squared_norm(grads))
            big_sq = unscale(_squared_norm(reduced)) / num_replicas
        if sam_rho:
            grads = sam.sharpness_aware_gradients(lambda: losses(x, y)[2], variables, grads,
                                                  sam_rho, sam_adaptive)
        optimizer.apply_gradients(zip(grads, variables))
        correct = tf.reduce_sum(
            tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), y), tf.float32)
        )
        count = tf.cast(tf.shape(y)[0], tf.float32)
        return loss, correct, count, _squared_norm(grads), small_sq, big_sq

    return replica_step


def make_eval_step(strategy, model):
    """A `tf.function(batch) -> (loss_sum, correct, count)` summed over replicas.

    Evaluation uses the moving statistics of the normalization layers
    (`training=False`): no ghost batches, any batch size, partial batches fine.
    """

    def sums(x, y):
        y = tf.cast(y, tf.int32)
        logits = tf.cast(model(x, training=False), tf.float32)
        per_example = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), y), tf.float32)
        count = tf.cast(tf.shape(y)[0], tf.float32)
        return tf.reduce_sum(per_example), tf.reduce_sum(correct), count

    def replica_step(x, y):
        # The last partial batch can leave a replica nothing to evaluate (a split smaller
        # than the replicas); some kernels fail on an empty batch, so it is skipped.
        zero = tf.constant(0.0, tf.float32)
        return tf.cond(tf.shape(y)[0] > 0, lambda: sums(x, y), lambda: (zero, zero, zero))

    @tf.function
    def eval_step(batch):
        x, y = batch
        outputs = strategy.run(replica_step, args=(x, y))
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in outputs]

    return eval_step


def make_evaluate(strategy, model, dist_dataset):
    """A `tf.function() -> (loss_sum, correct, count)` over a whole distributed dataset.

    The loop over the evaluation batches runs in the graph and accumulates
    the per-batch sums in float64 on the device, so an evaluation is one
    call and one device-to-host copy, not one per batch.
    """
    eval_step = make_eval_step(strategy, model)

    @tf.function
    def evaluate_all():
        totals = [tf.constant(0.0, tf.float64)] * 3
        for batch in dist_dataset:
            totals = [t + tf.cast(v, tf.float64) for t, v in zip(totals, eval_step(batch))]
        return tf.stack(totals)

    return evaluate_all


def evaluate(evaluate_all, prefix="test_"):
    """`{prefix + "loss", prefix + "accuracy"}`: means from a `make_evaluate` function.

    Keras' names: `val_loss` and `val_accuracy` for the validation split
    (`prefix="val_"`), `test_loss` and `test_accuracy` for the test split.
    """
    with warnings.catch_warnings():  # tf.data's note on reading options while tracing
        warnings.filterwarnings("ignore", message="To make it possible to preserve tf.data")
        totals = evaluate_all().numpy()
    loss, correct, count = (float(v) for v in totals)
    if count == 0:
        return {f"{prefix}loss": None, f"{prefix}accuracy": None}
    return {f"{prefix}loss": loss / count, f"{prefix}accuracy": correct / count}
