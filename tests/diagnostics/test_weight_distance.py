"""Tests of the WeightDistance callback against distances computed by hand."""

import keras
import numpy as np
import pytest

from tfgap.diagnostics import WeightDistance
from tfgap.diagnostics.weight_distance import squared_distances, weight_distance

# ceil(10 ** (k / 10)) up to 32, written out.
LOG_STEPS_TO_32 = [1, 2, 3, 4, 6, 7, 8, 10, 13, 16, 20, 26, 32]


def make_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, name="hidden"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(1, name="out"),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    return x, (x @ np.arange(1.0, 5.0)[:, None]).astype("float32")


def manual_distance(before, after):
    return float(np.sqrt(sum(np.sum((np.float64(a) - b) ** 2) for a, b in zip(after, before))))


def test_epoch_logs_match_manual_distance():
    model = make_model()
    x, y = data()
    w0 = [np.array(v.numpy()) for v in model.trainable_variables]
    per_epoch = []
    keep = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: per_epoch.append(
            [np.array(v.numpy()) for v in model.trainable_variables]
        )
    )
    wd = WeightDistance()
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[wd, keep])
    logged = history.history["weight_distance"]
    expected = [manual_distance(w0, w) for w in per_epoch]
    assert expected[1] > expected[0] > 0
    np.testing.assert_allclose(logged, expected, rtol=1e-6)
    # Log-spaced records over 2 epochs x 16 steps.
    assert wd.steps == LOG_STEPS_TO_32
    assert wd.records[-1] == (32, pytest.approx(expected[1], rel=1e-6))
    # Per-layer distances (kernel and bias together); BN moving stats are not weights.
    hidden = [0, 1]  # hidden/kernel, hidden/bias
    layer = {path.rsplit("/", 1)[-1]: d for path, d in wd.layer_distances.items()}
    assert sorted(layer) == ["bn", "hidden", "out"]
    want_hidden = manual_distance([w0[i] for i in hidden], [per_epoch[1][i] for i in hidden])
    assert layer["hidden"][-1] == pytest.approx(want_hidden, rel=1e-6)
    assert np.sqrt(sum(d[-1] ** 2 for d in layer.values())) == pytest.approx(expected[1])


def test_second_fit_continues_from_the_first_snapshot():
    model = make_model()
    x, y = data()
    w0 = [np.array(v.numpy()) for v in model.trainable_variables]
    wd = WeightDistance(records_per_decade=1)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[wd])
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[wd])
    w = [v.numpy() for v in model.trainable_variables]
    assert wd.distance() == pytest.approx(manual_distance(w0, w), rel=1e-6)
    assert wd.steps == [1, 10]  # 16 steps in all; one record per decade


def test_steps_count_updates_with_steps_per_execution():
    model = make_model()
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=4)
    x, y = data()
    wd = WeightDistance()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[wd])
    assert wd.steps == [4, 8, 12, 16, 20, 28, 32]


def test_under_mirrored_strategy(two_cpus):
    with two_cpus.scope():
        model = make_model()
    x, y = data()
    w0 = [np.array(v.numpy()) for v in model.trainable_variables]
    wd = WeightDistance()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[wd])
    w = [v.numpy() for v in model.trainable_variables]
    assert history.history["weight_distance"][0] == pytest.approx(manual_distance(w0, w), 1e-6)
    assert wd.steps == [1, 2, 3, 4, 6, 7, 8]


def test_custom_loop_api_and_diffusion_slope():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    kernel = model.trainable_variables[0]
    kernel.assign(np.zeros((2, 1), "float32"))
    wd = WeightDistance().start(model)
    direction = np.array([[0.6], [0.8]], "float32")  # unit norm
    for t in range(1, 101):
        kernel.assign(direction * (0.25 * np.log(t) + 1.5))
        wd.maybe_record(t)
    assert wd.steps[:4] == [1, 2, 3, 4] and wd.steps[-1] == 100
    a, b = wd.diffusion_slope()
    assert a == pytest.approx(0.25, rel=1e-5) and b == pytest.approx(1.5, rel=1e-5)
    assert wd.record(250) == pytest.approx(0.25 * np.log(100) + 1.5, rel=1e-6)
    assert wd.distance() == pytest.approx(0.25 * np.log(100) + 1.5, rel=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="records_per_decade"):
        WeightDistance(records_per_decade=0)
    with pytest.raises(ValueError, match="start"):
        WeightDistance().distance()
    wd = WeightDistance().start(make_model())
    wd.record(5)
    with pytest.raises(ValueError, match="two or more"):
        wd.diffusion_slope()


def test_weight_distance_function_eager_and_compiled():
    import tensorflow as tf

    rng = np.random.default_rng(1)
    shapes = [(5, 3), (3,), (), (2, 2, 2)]
    w0 = [rng.normal(size=s).astype("float32") for s in shapes]
    w = [a + rng.normal(size=a.shape).astype("float32") * 1e-3 for a in w0]
    per_tensor = [np.sum((np.float64(a) - np.float64(b)) ** 2) for a, b in zip(w, w0)]
    got = [float(v) for v in squared_distances(w, w0)]
    np.testing.assert_allclose(got, per_tensor, rtol=1e-12)
    assert float(weight_distance(w, w0)) == pytest.approx(np.sqrt(sum(per_tensor)), rel=1e-12)
    # As the trainer calls it: compiled, over variables and variable snapshots.
    variables = [tf.Variable(a) for a in w]
    initial = [tf.Variable(a) for a in w0]
    compiled = tf.function(lambda: weight_distance(variables, initial))
    assert float(compiled()) == pytest.approx(np.sqrt(sum(per_tensor)), rel=1e-12)
    variables[0].assign(w0[0])  # read at call time, not at trace time
    assert float(compiled()) == pytest.approx(np.sqrt(sum(per_tensor[1:])), rel=1e-12)
    assert float(weight_distance([], [])) == 0.0
    with pytest.raises(ValueError, match="as many weights as initial weights"):
        weight_distance(w, w0[:2])
