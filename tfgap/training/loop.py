"""The distributed training and evaluation steps, and Keras-style progress.

One replica step computes, for its share `b = B / R` of the global batch `B`
over `R` replicas:

    loss_replica = sum_i CE(x_i, y_i) / B  +  sum(model.losses) / R

so that the gradients the Keras optimizer all-reduces (sums) over replicas
are those of `mean CE over the global batch + weight decay`, whatever `R` is.
Weight decay is coupled L2 in `model.losses` (gradient `weight_decay * w`).
Under `mixed_float16` the loss is scaled by the `LossScaleOptimizer`.

Steps return per-replica sums (loss, correct predictions, examples) reduced
over replicas, so the host sees global numbers under every strategy,
including several workers, and can stop at the first non-finite loss.
"""

import math
import sys
import time

import keras
import tensorflow as tf


def make_train_step(strategy, model, optimizer, step_var, *, global_batch_size, jit_compile=False):
    """A `tf.function(iterator) -> (loss, correct, count, grad_sq)` running one step.

    Args:
        strategy: the run's strategy (model and optimizer built in its scope).
        model: a Keras model returning logits.
        optimizer: a Keras optimizer (possibly a `LossScaleOptimizer`).
        step_var: an int64 `tf.Variable` incremented once per step.
        global_batch_size: `B`, the global batch size.
        jit_compile: XLA-compile the forward and backward pass.

    Returns:
        The step function. Its outputs are summed over replicas: the loss
        (mean over the global batch, plus weight decay), the number of correct
        predictions, the number of examples and the squared gradient norm.
    """
    num_replicas = strategy.num_replicas_in_sync
    scale_loss = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    global_batch = float(global_batch_size)

    def forward_backward(x, y):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(x, training=True), tf.float32)
            per_example = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
            loss = tf.reduce_sum(per_example) / global_batch
            if model.losses:
                loss += tf.add_n([tf.cast(l, tf.float32) for l in model.losses]) / num_replicas
            scaled = optimizer.scale_loss(loss) if scale_loss else loss
        grads = tape.gradient(scaled, model.trainable_variables)
        return loss, logits, grads

    if jit_compile:
        forward_backward = tf.function(forward_backward, jit_compile=True)

    def replica_step(x, y):
        y = tf.cast(y, tf.int32)
        loss, logits, grads = forward_backward(x, y)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        correct = tf.reduce_sum(
            tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), y), tf.float32)
        )
        count = tf.cast(tf.shape(y)[0], tf.float32)
        grad_sq = tf.add_n([tf.reduce_sum(tf.square(tf.cast(g, tf.float32))) for g in grads])
        return loss, correct, count, grad_sq

    @tf.function
    def train_step(iterator):
        x, y = next(iterator)
        outputs = strategy.run(replica_step, args=(x, y))
        reduced = [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in outputs]
        step_var.assign_add(1)
        return reduced

    return train_step


def make_eval_step(strategy, model):
    """A `tf.function(batch) -> (loss_sum, correct, count)` summed over replicas.

    Evaluation uses the moving statistics of the normalization layers
    (`training=False`): no ghost batches, any batch size, partial batches fine.
    """

    def replica_step(x, y):
        y = tf.cast(y, tf.int32)
        logits = tf.cast(model(x, training=False), tf.float32)
        per_example = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), y), tf.float32)
        count = tf.cast(tf.shape(y)[0], tf.float32)
        return tf.reduce_sum(per_example), tf.reduce_sum(correct), count

    @tf.function
    def eval_step(batch):
        x, y = batch
        outputs = strategy.run(replica_step, args=(x, y))
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for v in outputs]

    return eval_step


def evaluate(eval_step, dist_dataset):
    """Mean loss and accuracy over a distributed evaluation dataset."""
    loss = correct = count = 0.0
    for batch in dist_dataset:
        batch_loss, batch_correct, batch_count = eval_step(batch)
        loss += float(batch_loss)
        correct += float(batch_correct)
        count += float(batch_count)
    if count == 0:
        return {"test_loss": None, "test_accuracy": None}
    return {"test_loss": loss / count, "test_accuracy": correct / count}


def make_distance_fn(variables, initial):
    """A `tf.function() -> ||w - w_0||_2` over the trainable weights."""

    @tf.function
    def distance():
        total = tf.constant(0.0, tf.float64)
        for v, v0 in zip(variables, initial):
            diff = tf.cast(tf.convert_to_tensor(v), tf.float64) - tf.cast(v0, tf.float64)
            total += tf.reduce_sum(tf.square(diff))
        return tf.sqrt(total)

    return distance


class LogSpaced:
    """Log-spaced record steps: `ceil(10 ** (i / per_decade))`, i = 0, 1, ...

    That is 1, 2, 3, 4, 6, 7, 8, 10, 13, 16, 20, 26, 32, 40, 51, 64, 80, 100, ...
    (the steps of `tfgap.diagnostics.WeightDistance`), so `||w_t - w_0||`
    against `log t` has evenly spread points.

    Example:

    >>> due = LogSpaced()
    >>> [t for t in range(1, 30) if due(t)]
    [1, 2, 3, 4, 6, 7, 8, 10, 13, 16, 20, 26]
    """

    def __init__(self, per_decade=10):
        self.per_decade = per_decade
        self._index = 0

    def _at(self, index):
        return int(math.ceil(10.0 ** (index / self.per_decade) - 1e-9))

    def __call__(self, step):
        if step < self._at(self._index):
            return False
        while self._at(self._index) <= step:
            self._index += 1
        return True


class Progress:
    """Keras-style epoch progress: `Epoch i/N`, then a bar on a TTY or one line.

    Args:
        num_epochs: epochs of the run.
        verbose: 0 silent; 1 progress bar on a terminal, plain lines otherwise;
            2 one line per epoch.
        stream: where to print (default `sys.stdout`).
    """

    def __init__(self, num_epochs, verbose=1, stream=None):
        self.num_epochs = num_epochs
        self.verbose = verbose
        self.stream = stream or sys.stdout
        isatty = getattr(self.stream, "isatty", lambda: False)()
        self.use_bar = verbose == 1 and isatty
        self._bar = None

    def epoch_begin(self, epoch, steps, start_step=0):
        if not self.verbose:
            return
        print(f"Epoch {epoch + 1}/{self.num_epochs}", file=self.stream, flush=True)
        self._steps = steps
        self._start = time.time()
        self._done = start_step
        if self.use_bar:
            self._bar = keras.utils.Progbar(
                steps, stateful_metrics=["loss", "accuracy", "learning_rate"], unit_name="step"
            )
            if start_step:
                self._bar.update(start_step)

    def step(self, step_in_epoch, values):
        self._done = step_in_epoch
        if self._bar is not None:
            self._bar.update(step_in_epoch, [(k, v) for k, v in values.items() if v is not None],
                             finalize=False)

    def epoch_end(self, logs):
        if not self.verbose:
            return
        if self._bar is not None:
            self._bar.update(self._steps, finalize=True)
            self._bar = None
        seconds = time.time() - self._start
        parts = [f"{self._done}/{self._steps}", f"{seconds:.0f}s"]
        parts += [f"{k}: {_format(v)}" for k, v in logs.items() if v is not None]
        print(" - ".join(parts), file=self.stream, flush=True)


def _format(value):
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    return str(value)
