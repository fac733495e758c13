"""LARS against the float64 NumPy reference, in `model.fit`, and through serialization."""

import copy
import doctest
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfgap
from tfgap.optimizers import LARS, lars
from tests.optimizers.reference import lars_reference

SHAPES = {"kernel": (3, 4), "conv_kernel": (2, 2, 3), "bias": (4,), "gamma": (4,)}


def _variables(seed=0, zero=()):
    rng = np.random.default_rng(seed)
    values = {name: (np.zeros(shape) if name in zero else rng.normal(size=shape))
              .astype("float32") for name, shape in SHAPES.items()}
    variables = [keras.Variable(v, name=name) for name, v in values.items()]
    return variables, list(values.values())


def _gradients(steps, seed=1, zero=()):
    rng = np.random.default_rng(seed)
    return [[(np.zeros(shape) if name in zero else rng.normal(size=shape) * 0.5)
             .astype("float32") for name, shape in SHAPES.items()] for _ in range(steps)]


def _run(optimizer, variables, gradient_steps):
    for grads in gradient_steps:
        optimizer.apply(grads, variables)
    return [keras.ops.convert_to_numpy(v) for v in variables]


def _assert_close(actual, expected):
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=2e-5, atol=1e-6)


DENOMINATORS = pytest.mark.parametrize("denominator", ["norm_of_sum", "sum_of_norms"])


@DENOMINATORS
@pytest.mark.parametrize("momentum,weight_decay,nesterov,exclude_1d", [
    (0.9, 0.0, False, True),
    (0.9, 5e-2, False, True),
    (0.9, 5e-2, True, True),
    (0.0, 5e-2, False, True),
    (0.8, 1e-1, False, False),
    (0.8, 1e-1, True, False),
])
def test_steps_match_numpy(momentum, weight_decay, nesterov, exclude_1d, denominator):
    variables, initial = _variables()
    grads = _gradients(4)
    optimizer = LARS(learning_rate=0.5, momentum=momentum, eta=0.02,
                     weight_decay=weight_decay, nesterov=nesterov, exclude_1d=exclude_1d,
                     trust_denominator=denominator)
    actual = _run(optimizer, variables, grads)
    mask = [True, True, not exclude_1d, not exclude_1d]
    expected = lars_reference(initial, grads, [0.5] * 4, momentum, 0.02, weight_decay,
                              nesterov, decays=mask, adapts=mask,
                              trust_denominator=denominator)
    _assert_close(actual, expected)
    # The coupled decay is not also applied by Keras' base class (decoupled).
    assert optimizer.weight_decay is None
    assert optimizer.coupled_weight_decay == weight_decay


def test_trust_ratio_changes_the_step():
    # Guards the reference comparison: with adaptation the result differs
    # clearly from momentum SGD at the same rate.
    variables, initial = _variables()
    grads = _gradients(3)
    actual = _run(LARS(learning_rate=0.5, eta=0.02), variables, grads)
    sgd = lars_reference(initial, grads, [0.5] * 3, 0.9, 0.02, 0.0, False,
                         decays=[False] * 4, adapts=[False] * 4)
    assert np.abs(actual[0] - sgd[0]).max() > 0.1


@DENOMINATORS
def test_exclusion_by_name_and_by_variable(denominator):
    # conv_kernel is adapted without decay: its sum_of_norms denominator is ||g|| alone.
    variables, initial = _variables()
    grads = _gradients(3)
    optimizer = LARS(learning_rate=0.3, momentum=0.9, eta=0.05, weight_decay=0.1,
                     trust_denominator=denominator)
    optimizer.exclude_from_weight_decay(var_names=["conv_"])
    optimizer.exclude_from_adaptation(var_list=[variables[0]])
    actual = _run(optimizer, variables, grads)
    expected = lars_reference(initial, grads, [0.3] * 3, 0.9, 0.05, 0.1, False,
                              decays=[True, False, False, False],
                              adapts=[False, True, False, False],
                              trust_denominator=denominator)
    _assert_close(actual, expected)


@DENOMINATORS
def test_exclusion_from_adaptation_by_name_keeps_1d_rule_switchable(denominator):
    variables, initial = _variables()
    grads = _gradients(2)
    optimizer = LARS(learning_rate=0.3, momentum=0.5, eta=0.05, weight_decay=0.1,
                     exclude_1d=False, trust_denominator=denominator)
    optimizer.exclude_from_adaptation(var_names=["gamma", "^kernel$"])
    actual = _run(optimizer, variables, grads)
    expected = lars_reference(initial, grads, [0.3] * 2, 0.5, 0.05, 0.1, False,
                              decays=[True, True, True, True],
                              adapts=[False, True, True, False],
                              trust_denominator=denominator)
    _assert_close(actual, expected)


def test_exclusions_only_before_build():
    variables, _ = _variables()
    optimizer = LARS()
    optimizer.build(variables)
    with pytest.raises(ValueError, match="before the optimizer is built"):
        optimizer.exclude_from_adaptation(var_names=["kernel"])
    with pytest.raises(ValueError, match="before the optimizer is built"):
        optimizer.exclude_from_weight_decay(var_names=["kernel"])


def test_zero_weights_and_zero_gradients_use_trust_one():
    # kernel: zero weights -> trust 1, the step is lr * g (not 0, not NaN).
    # conv_kernel: zero gradient without decay -> trust 1, only momentum moves it.
    variables, initial = _variables(zero=("kernel",))
    grads = _gradients(1) + _gradients(2, seed=3, zero=("conv_kernel",))
    optimizer = LARS(learning_rate=0.2, momentum=0.9, eta=0.01)
    actual = _run(optimizer, variables, grads)
    assert all(np.isfinite(a).all() for a in actual)
    expected = lars_reference(initial, grads, [0.2] * 3, 0.9, 0.01, 0.0, False,
                              decays=[True, True, False, False],
                              adapts=[True, True, False, False])
    _assert_close(actual, expected)
    # First step on the zero kernel is plain SGD: -lr * g.
    variables, _ = _variables(zero=("kernel",))
    _run(LARS(learning_rate=0.2, momentum=0.0, eta=0.01), variables, grads[:1])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variables[0]),
                               -0.2 * grads[0][0], rtol=1e-6)


@DENOMINATORS
def test_zero_norms_with_weight_decay(denominator):
    # kernel: w = 0 -> trust 1 in both forms (and g' = g), the first step is -lr * g.
    # conv_kernel: g = 0 with wd > 0 -> g' = wd * w; sum_of_norms conditions on the raw
    # ||g|| (trust 1, step lr * wd * w), norm_of_sum divides by ||wd * w|| (trust
    # eta / wd, step lr * eta * w).
    lr, eta, wd = 0.2, 0.01, 0.1
    zero_grads = _gradients(3, seed=3, zero=("conv_kernel",))
    variables, initial = _variables(zero=("kernel",))
    _run(LARS(lr, momentum=0.0, eta=eta, weight_decay=wd, trust_denominator=denominator),
         variables, zero_grads[:1])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variables[0]),
                               -lr * zero_grads[0][0], rtol=1e-6)
    conv_step = {"sum_of_norms": lr * wd, "norm_of_sum": lr * eta}[denominator] * initial[1]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variables[1]),
                               initial[1] - conv_step, rtol=1e-5, atol=1e-7)
    # Several momentum steps against the reference, finite throughout.
    variables, _ = _variables(zero=("kernel",))
    actual = _run(LARS(lr, momentum=0.9, eta=eta, weight_decay=wd,
                       trust_denominator=denominator), variables, zero_grads)
    assert all(np.isfinite(a).all() for a in actual)
    expected = lars_reference(initial, zero_grads, [lr] * 3, 0.9, eta, wd, False,
                              decays=[True, True, False, False],
                              adapts=[True, True, False, False],
                              trust_denominator=denominator)
    _assert_close(actual, expected)


def test_denominators_differ_only_with_weight_decay():
    # Guards the option: with wd > 0 the adapted kernels move differently (by much more
    # than the tolerance), with wd = 0 both forms are the same optimizer.
    def final(denominator, weight_decay):
        variables, _ = _variables()
        return _run(LARS(0.5, momentum=0.9, eta=0.02, weight_decay=weight_decay,
                         trust_denominator=denominator), variables, _gradients(3))

    decayed = [final(d, 0.1) for d in ("norm_of_sum", "sum_of_norms")]
    for kernel in (0, 1):
        assert np.abs(decayed[0][kernel] - decayed[1][kernel]).max() > 1e-3
    for bias in (2, 3):   # excluded: plain momentum SGD in both
        np.testing.assert_array_equal(decayed[0][bias], decayed[1][bias])
    _assert_close(final("norm_of_sum", 0.0), final("sum_of_norms", 0.0))


def test_sum_of_norms_in_a_jit_compiled_function():
    variables, initial = _variables(zero=("kernel",))
    grads = _gradients(1) + _gradients(2, seed=3, zero=("conv_kernel",))
    optimizer = LARS(0.2, momentum=0.9, eta=0.01, weight_decay=0.1,
                     trust_denominator="sum_of_norms")
    optimizer.build(variables)
    step = tf.function(lambda g: optimizer.apply(g, variables), jit_compile=True)
    for g in grads:
        step([tf.constant(x) for x in g])
    expected = lars_reference(initial, grads, [0.2] * 3, 0.9, 0.01, 0.1, False,
                              decays=[True, True, False, False],
                              adapts=[True, True, False, False],
                              trust_denominator="sum_of_norms")
    _assert_close([keras.ops.convert_to_numpy(v) for v in variables], expected)


def test_learning_rate_schedule_matches_numpy():
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([1, 3], [0.5, 0.1, 0.02])
    variables, initial = _variables()
    grads = _gradients(4)
    actual = _run(LARS(learning_rate=schedule, momentum=0.9, eta=0.02, weight_decay=0.01),
                  variables, grads)
    expected = lars_reference(initial, grads, [0.5, 0.5, 0.1, 0.1], 0.9, 0.02, 0.01, False,
                              decays=[True, True, False, False],
                              adapts=[True, True, False, False])
    _assert_close(actual, expected)


@pytest.mark.parametrize("kwargs,match", [
    ({"eta": -0.1}, r"`eta`.*>= 0.*eta=-0.1"),
    ({"eta": float("nan")}, r"`eta`.*eta=nan"),
    ({"weight_decay": -1e-4}, r"`weight_decay`.*weight_decay=-0.0001"),
    ({"weight_decay": float("inf")}, r"`weight_decay`.*weight_decay=inf"),
    ({"learning_rate": -0.1}, r"`learning_rate`.*learning_rate=-0.1"),
    ({"learning_rate": float("inf")}, r"`learning_rate`.*learning_rate=inf"),
    ({"momentum": 1.0}, r"`momentum`.*\[0, 1\).*momentum=1.0"),
    ({"momentum": -0.5}, r"`momentum`.*\[0, 1\).*momentum=-0.5"),
    ({"momentum": "0.9"}, r"`momentum`.*momentum='0.9'"),
])
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LARS(**kwargs)


@pytest.mark.parametrize("value", ["Sum_of_norms", "sum-of-norms", "", None, 1, ["norm_of_sum"]])
def test_invalid_trust_denominator(value):
    expected = ("Expected `trust_denominator` to be one of 'norm_of_sum' or 'sum_of_norms', "
                f"but received trust_denominator={value!r}.")
    with pytest.raises(ValueError, match=re.escape(expected)):
        LARS(trust_denominator=value)


def test_get_config_round_trip():
    schedule = tfgap.LargeBatchSchedule(boundaries=[2], values=[0.1, 0.01], base_batch_size=8,
                                        batch_size=32, steps_per_epoch=5)
    optimizer = LARS(learning_rate=schedule, momentum=0.8, eta=0.002, weight_decay=5e-4,
                     nesterov=True, exclude_1d=False, trust_denominator="sum_of_norms",
                     clipnorm=1.0)
    config = optimizer.get_config()
    assert config["weight_decay"] == 5e-4 and config["eta"] == 0.002
    assert config["trust_denominator"] == "sum_of_norms"
    restored = LARS.from_config(copy.deepcopy(config))  # Keras mutates the dict
    assert restored.get_config() == config
    np.testing.assert_allclose(float(restored.learning_rate), float(schedule(0)))
    assert restored.coupled_weight_decay == 5e-4 and restored.weight_decay is None
    assert restored.trust_denominator == "sum_of_norms"
    # The default is stored too; a config without the key (written before the option)
    # loads with the default.
    default = LARS().get_config()
    assert default.pop("trust_denominator") == "norm_of_sum"
    assert LARS.from_config(default).trust_denominator == "norm_of_sum"
    by_name = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(by_name, LARS) and by_name.get_config() == config


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, :3].sum(axis=1) > 0).astype("int32")
    return x, y


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(16, use_bias=False),
        tfgap.GhostBatchNormalization(virtual_batch_size=8),
        keras.layers.ReLU(),
        keras.layers.Dense(2),
    ])


def test_fit_with_a_schedule_and_save_load_round_trip(tmp_path):
    x, y = _data()
    schedule = keras.optimizers.schedules.CosineDecay(0.5, decay_steps=20)
    model = _model()
    model.compile(optimizer=LARS(schedule, eta=0.01, weight_decay=1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert model.evaluate(x, y, verbose=0) < before
    assert int(model.optimizer.iterations) == 12

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.optimizer, LARS)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))
    # Training resumes identically: same velocities, same schedule position.
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_docstring_example():
    result = doctest.testmod(lars, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
