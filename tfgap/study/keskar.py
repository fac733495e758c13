"""Keskar et al.'s setting in the study: train to convergence, then measure the minimum.

- `ConvergenceStop`: a callback that ends a `tfgap.training.train` run at the
  end of the first epoch whose training accuracy reaches `train_accuracy`
  (99%), or once the epoch's training loss has not improved by `min_delta`
  (relative) for `patience` epochs: "until the loss stops improving".
- `measure_minimum`: the measures of one trained model on a fixed subset of
  the training data: Keskar's eps-sharpness in the full weight space, a
  scale-invariant variant of it (`relative_sharpness`: a box of side
  `eps * |w_i|`), the top eigenvalue of the loss Hessian and the loss and
  accuracy on the subset (`tfgap.diagnostics`); beside them `weight_norm`
  and `stability_bound` (the eigenvalue momentum SGD is stable at).
- `evaluate`: loss, accuracy and per-example correctness on a split.

Paper: Keskar, Mudigere, Nocedal, Smelyanskiy & Tang, "On Large-Batch
Training for Deep Learning: Generalization Gap and Sharp Minima", ICLR 2017
(arXiv 1609.04836): metric 2.1 with eps = 1e-3, Table 3 (full space),
measured at the minimizers training converged to.
"""

import math

import keras
import numpy as np

from tfgap import diagnostics

CONVERGED_ACCURACY = 0.99


class ConvergenceStop(keras.callbacks.Callback):
    """Stops a run when it has converged (Keskar's setting), at an epoch's end.

    At the last step of every epoch (the trainer's batch logs then hold the
    epoch's running `loss` and `accuracy`, in training mode), the run stops
    if `accuracy >= train_accuracy`, or if the epoch's loss has not fallen
    below `(1 - min_delta) * best` for `patience` epochs in a row (`best`:
    the lowest epoch loss so far). `stopped` then says why and when.

    Args:
        train_accuracy: the training accuracy that counts as converged.
        patience: epochs without a relative improvement of `min_delta`.
        min_delta: the relative loss improvement that resets the patience.

    Example:

    >>> stop = ConvergenceStop(train_accuracy=0.99, patience=2)
    >>> stop.set_params({"steps": 2})
    >>> class Model: stop_training = False
    >>> stop.set_model(Model())
    >>> for step, (loss, acc) in enumerate([(1.0, 0.5), (0.8, 0.7), (0.5, 0.995)]):
    ...     stop.on_train_batch_end(1, {"loss": loss, "accuracy": acc, "step": 2 * step + 2})
    >>> stop.model.stop_training, stop.stopped
    (True, {'reason': 'train_accuracy', 'step': 6, 'epochs': 3, 'accuracy': 0.995, 'loss': 0.5})
    """

    def __init__(self, train_accuracy=CONVERGED_ACCURACY, patience=10, min_delta=0.01):
        super().__init__()
        if not 0.0 < float(train_accuracy) <= 1.0:
            raise ValueError(f"Expected train_accuracy in (0, 1]. Received: {train_accuracy!r}")
        if int(patience) < 1:
            raise ValueError(f"Expected patience >= 1. Received: patience={patience!r}")
        self.train_accuracy = float(train_accuracy)
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best = math.inf
        self.wait = 0
        self.epochs = 0
        self.stopped = None

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        if batch + 1 < int(self.params.get("steps") or 1):
            return  # not the epoch's last step
        self.epochs += 1
        loss, accuracy = logs.get("loss"), logs.get("accuracy")
        reason = None
        if accuracy is not None and accuracy >= self.train_accuracy:
            reason = "train_accuracy"
        elif loss is not None:
            if loss < (1.0 - self.min_delta) * self.best:
                self.best, self.wait = loss, 0
            else:
                self.wait += 1
                if self.wait >= self.patience:
                    reason = "plateau"
        if reason:
            self.model.stop_training = True
            self.stopped = {"reason": reason, "step": int(logs.get("step", 0)),
                            "epochs": self.epochs, "accuracy": accuracy, "loss": loss}


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def evaluate(model, x, y, batch_size=1024):
    """Loss, accuracy and per-example correctness of `model` (inference mode) on arrays.

    The cross-entropy is computed in float64 from the logits; `correct[i]` is
    whether example `i`'s largest logit is its label's (the first largest on
    a tie, as `argmax`).

    Returns:
        A dict: `loss` (mean cross-entropy), `accuracy` and `correct` (a bool
        array, one entry per example).

    Example:

    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, use_bias=False)])
    >>> m.set_weights([np.eye(2, dtype="float32")])
    >>> r = evaluate(m, np.eye(2, dtype="float32"), np.array([0, 0]))
    >>> round(r["loss"], 4), r["accuracy"], r["correct"].tolist()  # -log(e / (e + 1)), ...
    (0.8133, 0.5, [True, False])
    """
    total, correct = 0.0, []
    for start in range(0, len(x), batch_size):
        logits = np.asarray(model(x[start:start + batch_size], training=False), np.float64)
        labels = np.asarray(y[start:start + batch_size]).astype(np.int64).ravel()
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        total += float(-log_probs[np.arange(len(labels)), labels].sum())
        correct.append(logits.argmax(axis=1) == labels)
    correct = np.concatenate(correct) if correct else np.zeros(0, bool)
    return {"loss": total / len(x), "accuracy": float(correct.mean()), "correct": correct}


def loss_and_accuracy(model, x, y, batch_size=1024):
    """Mean cross-entropy and accuracy of `model` (inference mode) on arrays, in float64.

    Example:

    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, use_bias=False)])
    >>> m.set_weights([np.eye(2, dtype="float32")])
    >>> loss, acc = loss_and_accuracy(m, np.eye(2, dtype="float32"), np.array([0, 1]))
    >>> round(loss, 4), acc  # -log(e / (e + 1))
    (0.3133, 1.0)
    """
    r = evaluate(model, x, y, batch_size)
    return r["loss"], r["accuracy"]


def weight_norm(model):
    """`||w||`: the L2 norm of all the model's trainable weights together (float64).

    Example:

    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> m.set_weights([np.array([[3.0], [0.0]], "float32"), np.array([4.0], "float32")])
    >>> weight_norm(m)
    5.0
    """
    return float(math.sqrt(sum(float(np.sum(np.square(np.asarray(w.numpy(), np.float64))))
                               for w in model.trainable_weights)))


def stability_bound(learning_rate, momentum):
    """`2 (1 + beta) / eta`: the largest Hessian eigenvalue momentum SGD is stable at.

    On a quadratic, heavy-ball SGD with rate `eta` and momentum `beta`
    diverges along an eigendirection whose curvature exceeds this bound;
    training with a fixed rate is known to settle near it ("the edge of
    stability": Cohen, Kaur, Li, Kolter & Talwalkar 2021, arXiv 2103.00065,
    with momentum in their Appendix). A top eigenvalue close to the bound is
    set by the learning rate the run ended at, not by the batch size.

    Example:

    >>> round(stability_bound(0.05, 0.9), 6)
    76.0
    """
    return 2.0 * (1.0 + float(momentum)) / float(learning_rate)


def relative_sharpness(model, x, y, *, epsilon=1e-3, max_iterations=10, seed=0):
    """A scale-invariant variant of Keskar's sharpness: a box of side `eps * |w_i|`.

    Keskar's metric 2.1 (`tfgap.diagnostics.sharpness`) maximizes the loss
    over `|z_i| <= eps * (|w_i| + 1)`; the `+ 1` makes the box depend on the
    weights' scale, which BN leaves free (a kernel followed by BN can be
    scaled without changing the function, and a smaller kernel then looks
    sharper). Here the box is relative to each weight,

        C = { z : |z_i| <= eps * |w_i| },
        phi = 100 * (max_{z in C} f(w + z) - f(w)) / (1 + f(w)),

    so scaling a BN-normalized kernel by `c` scales its box by `c` and leaves
    the loss surface inside it unchanged (up to BN's epsilon and the
    inexact maximization). The maximum is found as Keskar's: `max_iterations`
    iterations of L-BFGS-B from a small random point of the box, the largest
    loss seen kept (a lower bound of the box maximum, never negative). `f` is
    the mean cross-entropy (from logits) over `(x, y)` plus `model.losses`,
    BN in inference mode; the weights are restored bit for bit.

    Example:

    >>> import keras, numpy as np
    >>> x = np.eye(2, dtype="float32")
    >>> m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, use_bias=False)])
    >>> m.set_weights([np.array([[2.0, 0.0], [0.0, 2.0]], "float32")])
    >>> phi = relative_sharpness(m, x, np.array([0, 1]), epsilon=0.1)
    >>> bool(phi > 0), m.get_weights()[0].tolist()  # restored
    (True, [[2.0, 0.0], [0.0, 2.0]])
    """
    import scipy.optimize  # noqa: PLC0415

    from tfgap.diagnostics import _evaluation  # noqa: PLC0415

    epsilon = float(epsilon)
    if not (epsilon > 0.0 and math.isfinite(epsilon)):
        raise ValueError(f"Expected a finite epsilon > 0. Received: epsilon={epsilon!r}")
    if int(max_iterations) < 1:
        raise ValueError(f"Expected max_iterations >= 1. Received: {max_iterations!r}")
    evaluator = _evaluation.LossEvaluator(model, _loss(), _evaluation.as_dataset(x, y))
    rng = np.random.default_rng(seed)
    saved = _evaluation.snapshot(evaluator.variables)
    try:
        w0 = evaluator.get_flat()
        bound = epsilon * np.abs(w0)
        f0 = evaluator.value()
        best = [f0]

        def negative(z):
            evaluator.set_flat(w0 + z)
            value, grad = evaluator.value_and_gradient()
            if math.isfinite(value):
                best[0] = max(best[0], value)
            return -value, -grad

        start = rng.uniform(-1.0, 1.0, size=bound.shape) * bound * _START_FRACTION
        scipy.optimize.minimize(negative, start, jac=True, method="L-BFGS-B",
                                bounds=scipy.optimize.Bounds(-bound, bound),
                                options={"maxiter": int(max_iterations)})
    finally:
        _evaluation.restore(evaluator.variables, saved)
    return float(100.0 * (best[0] - f0) / (1.0 + f0))


# The random start's size, as a fraction of the box (tfgap.diagnostics.sharpness's).
_START_FRACTION = 1e-2


def measure_minimum(model, x, y, *, seed, epsilon=1e-3, iterations=10,
                    hessian_iterations=15):
    """The measures of a trained model's minimum on the fixed subset `(x, y)` of the training data.

    Args:
        model: the trained Keras model (logits).
        x, y: the examples (the same for every run of a study).
        seed: seed of the sharpness' random starts and of the power
            iteration's start.
        epsilon: the box size of both sharpness measures.
        iterations: L-BFGS-B iterations of each sharpness.
        hessian_iterations: the most power iterations (relative tolerance 1e-3).

    Returns:
        A dict: `sharpness` (Keskar's metric 2.1, full space, percent),
        `relative_sharpness` (`relative_sharpness`, percent),
        `hessian_top_eigenvalue`, `subset_loss` and `subset_accuracy`.
    """
    out = {"sharpness": diagnostics.sharpness(model, x, y, epsilon=epsilon,
                                              max_iterations=iterations, seed=seed,
                                              loss=_loss()),
           "relative_sharpness": relative_sharpness(model, x, y, epsilon=epsilon,
                                                    max_iterations=iterations, seed=seed),
           "hessian_top_eigenvalue": diagnostics.hessian_top_eigenvalue(
               model, x, y, max_iterations=hessian_iterations, tolerance=1e-3, seed=seed,
               loss=_loss())}
    out["subset_loss"], out["subset_accuracy"] = loss_and_accuracy(model, x, y)
    return out
