import keras
import numpy as np
import pytest
import tensorflow as tf

import tfgap
from tfgap.models import available_models, build_model, model_options

from tests.models import checks

ALL = ["alexnet_bn", "c1", "c2", "c3", "c4", "cnn1d", "f1", "mlp", "resnet44", "resnet50",
       "wrn16_4"]


def test_available_models():
    assert available_models() == ALL


def test_model_options():
    assert model_options("mlp") == {"mlp_width": 256, "mlp_depth": 3}
    assert model_options("resnet44") == {"shortcut": "zero_pad", "zero_init_residual": False}
    assert model_options("wrn16_4") == {"dropout_rate": 0.0}
    assert model_options("c1") == {}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "resnet18"}, r"Expected one of \['alexnet_bn'.*Received: name='resnet18'"),
        ({"num_classes": 0}, "num_classes=0"),
        ({"num_classes": "10"}, "num_classes='10'"),
        ({"num_classes": True}, "num_classes=True"),
        ({"ghost_batch_size": -1}, "ghost_batch_size=-1"),
        ({"ghost_batch_size": 2.5}, "ghost_batch_size=2.5"),
        ({"input_shape": (40,)}, r"\(height, width, channels\).*input_shape=\(40,\)"),
        ({"input_shape": (8, 0, 3)}, "positive integers"),
        ({"input_shape": None}, "input_shape=None"),
        ({"weight_decay": -1e-4}, "weight_decay=-0.0001"),
        ({"weight_decay": "1e-4"}, "weight_decay='1e-4'"),
        ({"bn_momentum": 1.0}, "bn_momentum=1.0"),
        ({"seed": 1.5}, "seed=1.5"),
        ({"width": 3}, r"Unknown option\(s\) \['width'\].*Expected a subset of \[\]"),
        ({"moving_update": "bogus"}, "moving_update='bogus'"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"name": "c1", "num_classes": 10, "input_shape": (8, 8, 3), **kwargs}
    with pytest.raises(ValueError, match=match):
        build_model(args.pop("name"), **args)


def test_bad_network_options():
    with pytest.raises(ValueError, match="mlp_width=0"):
        build_model("mlp", num_classes=10, input_shape=(40,), mlp_width=0)
    with pytest.raises(ValueError, match="shortcut='option_c'"):
        build_model("resnet44", num_classes=10, input_shape=(8, 8, 3), shortcut="option_c")
    with pytest.raises(ValueError, match="dropout_rate=1.0"):
        build_model("wrn16_4", num_classes=10, input_shape=(8, 8, 3), dropout_rate=1.0)
    with pytest.raises(ValueError, match=r"at least 63x63.*input_shape=\(32, 32, 3\)"):
        build_model("alexnet_bn", num_classes=10, input_shape=(32, 32, 3))


def _weights(model):
    return [np.asarray(w) for w in model.weights]


def test_numpy_integers_are_accepted():
    model = build_model("mlp", num_classes=np.int64(3), input_shape=(np.int64(40),),
                        ghost_batch_size=np.int32(4), seed=np.int64(1), mlp_width=8)
    assert model.output_shape == (None, 3)
    assert model.get_layer("norm1").virtual_batch_size == 4


def test_seed_makes_init_deterministic():
    x = np.random.default_rng(0).normal(size=(8, 16, 16, 3)).astype("float32")
    a = build_model("c1", num_classes=10, input_shape=(16, 16, 3), seed=3)
    b = build_model("c1", num_classes=10, input_shape=(16, 16, 3), seed=3)
    c = build_model("c1", num_classes=10, input_shape=(16, 16, 3), seed=4)
    for wa, wb in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(_weights(a), _weights(c)))
    # Dropout masks are seeded too: the same training-mode output.
    np.testing.assert_array_equal(np.asarray(a(x, training=True)), np.asarray(b(x, training=True)))


def test_initializer_statistics():
    """Conv kernels ~ N(0, 2 / (k*k*filters)); dense kernels ~ U(+-1/sqrt(fan_in))."""
    model = build_model("c1", num_classes=10, input_shape=(16, 16, 3), seed=0)
    conv = np.asarray(model.get_layer("conv2").kernel)  # 5x5x64x64
    assert conv.mean() == pytest.approx(0.0, abs=5e-3)
    assert conv.std() == pytest.approx(np.sqrt(2.0 / (5 * 5 * 64)), rel=0.02)
    dense = np.asarray(model.get_layer("dense1").kernel)  # 4*4*64 x 384
    limit = 1.0 / np.sqrt(4 * 4 * 64)
    assert np.abs(dense).max() <= limit
    assert dense.std() == pytest.approx(limit / np.sqrt(3.0), rel=0.02)
    assert model.get_layer("dense1").bias is None
    np.testing.assert_array_equal(np.asarray(model.get_layer("logits").bias), np.zeros(10))


def test_weight_decay_gradient_is_wd_times_w():
    wd = 5e-4
    model = build_model("c1", num_classes=10, input_shape=(8, 8, 3), weight_decay=wd, seed=0)
    checks.assert_weight_decay(model, wd)
    kernel = model.get_layer("conv1").kernel
    with tf.GradientTape() as tape:
        penalty = tf.add_n(model.losses)
    grad = tape.gradient(penalty, kernel)
    np.testing.assert_allclose(np.asarray(grad), wd * np.asarray(kernel), rtol=1e-5, atol=1e-9)


def test_no_weight_decay_no_losses():
    model = build_model("mlp", num_classes=10, input_shape=(40,))
    assert model.losses == []


def test_mixed_precision_logits_are_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model(
            "resnet44", num_classes=10, input_shape=(8, 8, 3), ghost_batch_size=4, seed=0
        )
        assert model.get_layer("stem_conv").compute_dtype == "float16"
        out = model(np.ones((8, 8, 8, 3), "float32"), training=True)
        assert out.dtype == "float32"
        assert np.all(np.isfinite(np.asarray(out)))
        mlp = build_model("mlp", num_classes=10, input_shape=(40,), weight_decay=1e-4, seed=0)
        mlp.compile(optimizer=keras.optimizers.SGD(0.1), loss=_xent(), jit_compile=False)
        x = np.random.default_rng(0).normal(size=(16, 40)).astype("float32")
        history = mlp.fit(x, np.arange(16) % 10, batch_size=8, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _xent():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def test_mirrored_strategy_fit(two_cpus):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 40)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    with two_cpus.scope():
        model = build_model(
            "mlp", num_classes=2, input_shape=(40,), ghost_batch_size=8, weight_decay=1e-4,
            mlp_width=32, seed=0,
        )
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss=_xent(),
                      jit_compile=False)
    assert isinstance(model.trainable_weights[0].value, tf.distribute.DistributedValues)
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_export_serves_any_batch_size(tmp_path):
    model = build_model("c1", num_classes=10, input_shape=(8, 8, 3), ghost_batch_size=4, seed=0)
    x = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype("float32")
    model(x, training=True)  # move the moving statistics away from their initial values
    model.export(str(tmp_path / "export"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "export"))
    for n in (3, 5):
        np.testing.assert_allclose(
            np.asarray(served.serve(tf.constant(x[:n]))),
            np.asarray(model(x[:n], training=False)),
            rtol=1e-4, atol=1e-5,
        )


def test_keras_file_round_trip(tmp_path):
    model = build_model("resnet44", num_classes=10, input_shape=(8, 8, 3), ghost_batch_size=4,
                        seed=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(1).normal(size=(4, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)
    checks.assert_norms(loaded, 43, 4)
    assert isinstance(loaded.get_layer("stage2_block1_shortcut"), tfgap.models.ZeroPadShortcut)
