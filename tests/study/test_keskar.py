"""Keskar's setting: the convergence stop ends a real run at an epoch's end for the stated
reason, and the measures of a minimum are checked against NumPy."""

import json
import math
import os

import keras
import numpy as np
import pytest

from tfgap.study import keskar, small_batch_config
from tfgap.training import train


class _Model:
    stop_training = False


def _stop(**kwargs):
    stop = keskar.ConvergenceStop(**kwargs)
    stop.set_params({"steps": 3})
    stop.set_model(_Model())
    return stop


def _epochs(stop, losses, accuracies):
    """Feeds whole epochs of 3 steps; returns the epoch (1-based) at which it stopped."""
    for epoch, (loss, acc) in enumerate(zip(losses, accuracies), start=1):
        for batch in range(3):  # only the epoch's last step is read
            stop.on_train_batch_end(batch, {"loss": 99.0 if batch < 2 else loss,
                                            "accuracy": 1.0 if batch < 2 else acc,
                                            "step": 3 * (epoch - 1) + batch + 1})
        if stop.model.stop_training:
            return epoch
    return None


def test_stops_at_the_first_epoch_at_the_target_accuracy():
    stop = _stop(train_accuracy=0.99, patience=5)
    assert _epochs(stop, [1.0, 0.5, 0.1, 0.05], [0.6, 0.9, 0.991, 1.0]) == 3
    assert stop.stopped == {"reason": "train_accuracy", "step": 9, "epochs": 3,
                            "accuracy": 0.991, "loss": 0.1}


def test_stops_on_a_loss_plateau_after_patience_epochs():
    stop = _stop(train_accuracy=0.99, patience=2, min_delta=0.01)
    # 1.0 -> 0.5 improves; 0.499 and 0.496 are within 1% of 0.5: two epochs without progress.
    assert _epochs(stop, [1.0, 0.5, 0.499, 0.496, 0.1], [0.5] * 5) == 4
    assert stop.stopped["reason"] == "plateau" and stop.stopped["step"] == 12
    stop = _stop(patience=2, min_delta=0.01)
    assert _epochs(stop, [1.0, 0.9, 0.8, 0.7, 0.6], [0.5] * 5) is None  # always improving
    assert stop.stopped is None


def test_bad_arguments():
    with pytest.raises(ValueError, match="train_accuracy"):
        keskar.ConvergenceStop(train_accuracy=1.5)
    with pytest.raises(ValueError, match="patience"):
        keskar.ConvergenceStop(patience=0)


def test_loss_and_accuracy_against_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4)).astype("float32")
    y = rng.integers(0, 3, size=50)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    loss, acc = keskar.loss_and_accuracy(model, x, y, batch_size=16)
    w, b = (np.asarray(v, np.float64) for v in model.get_weights())
    logits = x.astype(np.float64) @ w + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert loss == pytest.approx(float(-np.mean(np.log(p[np.arange(50), y]))), rel=1e-6)
    assert acc == pytest.approx(float(np.mean(logits.argmax(1) == y)))


def test_measure_minimum_keys_and_hessian_of_a_linear_model():
    # Softmax regression on 3 examples: the Hessian's top eigenvalue from NumPy.
    x = np.eye(3, dtype="float32")
    y = np.array([0, 1, 2])
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, use_bias=False)])
    model.set_weights([2.0 * np.eye(3, dtype="float32")])
    out = keskar.measure_minimum(model, x, y, seed=0, hessian_iterations=200)
    assert set(out) == {"sharpness", "relative_sharpness", "hessian_top_eigenvalue",
                        "subset_loss", "subset_accuracy"}
    assert out["sharpness"] >= 0 and out["relative_sharpness"] >= 0
    # Each example's logits z = W^T x_i with x_i a basis vector: the Hessian is block diagonal,
    # one block diag(p) - p p^T per input coordinate, scaled by 1/3 (the mean over examples).
    z = 2.0 * np.eye(3)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    top = max(np.linalg.eigvalsh(np.diag(pi) - np.outer(pi, pi)).max() for pi in p) / 3.0
    assert out["hessian_top_eigenvalue"] == pytest.approx(top, rel=1e-3)


def test_relative_sharpness_closed_form():
    """One example, two classes, logits (a, b) = W: the loss log(1 + e^(b - a)) grows with
    b - a, so its maximum over the box |dW_i| <= eps |W_i| is at a - eps |a|, b + eps |b|;
    Keskar's box adds 1 to every side (eps (|W_i| + 1))."""
    a, b, eps = 3.0, -1.0, 0.05
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, use_bias=False)])
    model.set_weights([np.array([[a, b]], "float32")])
    x, y = np.ones((1, 1), "float32"), np.array([0])

    def loss(u, v):
        return math.log1p(math.exp(v - u))

    f0 = loss(a, b)
    expected = 100 * (loss(a - eps * abs(a), b + eps * abs(b)) - f0) / (1 + f0)
    got = keskar.relative_sharpness(model, x, y, epsilon=eps, max_iterations=20)
    assert got == pytest.approx(expected, rel=1e-4)
    keskar_box = 100 * (loss(a - eps * (abs(a) + 1), b + eps * (abs(b) + 1)) - f0) / (1 + f0)
    from tfgap import diagnostics
    assert diagnostics.sharpness(model, x, y, epsilon=eps, max_iterations=20,
                                 loss=keras.losses.SparseCategoricalCrossentropy(
                                     from_logits=True)) == pytest.approx(keskar_box, rel=1e-4)
    assert model.get_weights()[0].tolist() == [[a, b]]  # restored
    # A weight at 0 has a box of width 0 here (not in Keskar's).
    model.set_weights([np.array([[0.0, 0.0]], "float32")])
    assert keskar.relative_sharpness(model, x, y, epsilon=eps) == 0.0
    with pytest.raises(ValueError, match="epsilon"):
        keskar.relative_sharpness(model, x, y, epsilon=0.0)


def test_evaluate_weight_norm_and_stability_bound():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(37, 4)).astype("float32")
    y = rng.integers(0, 3, size=37)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    r = keskar.evaluate(model, x, y, batch_size=10)
    w, b = (np.asarray(v, np.float64) for v in model.get_weights())
    logits = x.astype(np.float64) @ w + b
    np.testing.assert_array_equal(r["correct"], logits.argmax(1) == y)
    assert r["accuracy"] == pytest.approx(float(np.mean(logits.argmax(1) == y)))
    assert keskar.weight_norm(model) == pytest.approx(
        math.sqrt(float(np.sum(w**2) + np.sum(b**2))), rel=1e-6)
    assert keskar.stability_bound(0.05, 0.9) == pytest.approx(76.0)
    assert keskar.stability_bound(0.1, 0.0) == pytest.approx(20.0)  # plain GD: 2 / eta


@pytest.mark.slow
def test_a_real_run_stops_when_converged(tmp_path):
    """A trainer run on 284 mock signals stops at the end of an epoch, before its cap."""
    config = small_batch_config(dataset="mnist1d", model="mlp", model_dir=str(tmp_path / "r"),
                                small_batch_size=32, lr=0.1, epochs=40, mock_data=True,
                                mock_examples=284, model_options={"mlp_width": 32},
                                preemption=False, verbose=0)
    stop = keskar.ConvergenceStop(train_accuracy=0.5, patience=100)
    result = train(config, callbacks=[stop])
    assert stop.stopped["reason"] == "train_accuracy"
    steps_per_epoch = result["steps_per_epoch"]
    assert result["global_step"] == stop.stopped["step"] < result["total_steps"]
    assert result["global_step"] % steps_per_epoch == 0  # at an epoch's end
    assert result["train"]["accuracy"] == pytest.approx(stop.stopped["accuracy"])
    with open(os.path.join(config.model_dir, "result.json")) as f:
        assert json.load(f)["status"] == "completed"
