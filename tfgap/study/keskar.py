"""Keskar et al.'s setting in the study: train to convergence, then measure the minimum.

- `ConvergenceStop`: a callback that ends a `tfgap.training.train` run at the
  end of the first epoch whose training accuracy reaches `train_accuracy`
  (99%), or once the epoch's training loss has not improved by `min_delta`
  (relative) for `patience` epochs: "until the loss stops improving".
- `measure_minimum`: the measures of one trained model on a fixed subset of
  the training data: Keskar's eps-sharpness in the full weight space (every
  run of the study) and, for the convergence comparison, in a random
  100-dimensional subspace, plus the top eigenvalue of the loss Hessian and
  the loss and accuracy on the subset (`tfgap.diagnostics`).

Paper: Keskar, Mudigere, Nocedal, Smelyanskiy & Tang, "On Large-Batch
Training for Deep Learning: Generalization Gap and Sharp Minima", ICLR 2017
(arXiv 1609.04836): metric 2.1 with eps = 1e-3, Tables 3 (full space) and 4
(random subspace of dimension 100), measured at the minimizers training
converged to.
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
    total, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        logits = np.asarray(model(x[start:start + batch_size], training=False), np.float64)
        labels = np.asarray(y[start:start + batch_size]).astype(np.int64).ravel()
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        total += float(-log_probs[np.arange(len(labels)), labels].sum())
        correct += int((logits.argmax(axis=1) == labels).sum())
    return total / len(x), correct / len(x)


def measure_minimum(model, x, y, *, seed, epsilon=1e-3, iterations=10, full=False,
                    subspace_dim=100, hessian_iterations=15):
    """The measures of a trained model on the fixed subset `(x, y)` of the training data.

    Args:
        model: the trained Keras model (logits).
        x, y: the examples (the same for every run of a study).
        seed: seed of the sharpness' random start and subspace, and of the
            power iteration's start.
        epsilon: Keskar's box size.
        iterations: L-BFGS-B iterations of each sharpness.
        full: also the subspace sharpness and the Hessian's top eigenvalue
            (the convergence comparison); else only the full-space sharpness.
        subspace_dim: the random subspace's dimension (Keskar: 100).
        hessian_iterations: the most power iterations (relative tolerance 1e-3).

    Returns:
        A dict: `sharpness` (full space, percent), `subset_loss`,
        `subset_accuracy`, and with `full` `sharpness_subspace` and
        `hessian_top_eigenvalue` (else None).
    """
    out = {"sharpness": diagnostics.sharpness(model, x, y, epsilon=epsilon,
                                              max_iterations=iterations, seed=seed,
                                              loss=_loss()),
           "sharpness_subspace": None, "hessian_top_eigenvalue": None}
    out["subset_loss"], out["subset_accuracy"] = loss_and_accuracy(model, x, y)
    if full:
        n = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        out["sharpness_subspace"] = diagnostics.sharpness(
            model, x, y, epsilon=epsilon, subspace_dim=min(int(subspace_dim), n),
            max_iterations=iterations, seed=seed, loss=_loss())
        out["hessian_top_eigenvalue"] = diagnostics.hessian_top_eigenvalue(
            model, x, y, max_iterations=hessian_iterations, tolerance=1e-3, seed=seed,
            loss=_loss())
    return out
