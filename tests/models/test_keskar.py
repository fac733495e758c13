import numpy as np
import pytest

from tfgap.models import build_model

from tests.models.checks import (
    assert_norms, assert_weight_decay, conv, dense, norm, trainable_count,
)


def _same_pool(size):
    """Output size of a stride-2 max-pool with "same" padding."""
    return -(-size // 2)


def shallow_count(size, channels, classes):
    s = _same_pool(_same_pool(size))
    return (conv(5, channels, 64) + conv(5, 64, 64) + 2 * norm(64)
            + dense(s * s * 64, 384) + norm(384) + dense(384, 192) + norm(192)
            + dense(192, classes, bias=True))


def vgg_count(size, channels, classes):
    widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    total, cin = 0, channels
    for w in widths:
        total += conv(3, cin, w) + norm(w)
        cin = w
    for _ in range(5):
        size = _same_pool(size)
    return total + dense(size * size * 512, 512) + norm(512) + dense(512, classes, bias=True)


@pytest.mark.parametrize("name, classes", [("c1", 10), ("c3", 100)])
def test_shallow_structure(name, classes):
    model = build_model(name, num_classes=classes, input_shape=(32, 32, 3), ghost_batch_size=16,
                        weight_decay=5e-4, seed=0)
    assert trainable_count(model) == shallow_count(32, 3, classes)
    assert_norms(model, 4, 16)
    assert_weight_decay(model, 5e-4)
    assert model.output_shape == (None, classes)
    assert model.name == name


def test_shallow_forward_and_fit_step():
    import keras

    model = build_model("c1", num_classes=10, input_shape=(12, 12, 3), ghost_batch_size=4, seed=0)
    assert trainable_count(model) == shallow_count(12, 3, 10)
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
    x = np.random.default_rng(0).normal(size=(16, 12, 12, 3)).astype("float32")
    history = model.fit(x, np.arange(16) % 10, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("name, classes, size", [("c2", 10, 32), ("c4", 100, 8)])
def test_vgg_structure(name, classes, size):
    model = build_model(name, num_classes=classes, input_shape=(size, size, 3),
                        weight_decay=5e-4, seed=0)
    assert trainable_count(model) == vgg_count(size, 3, classes)
    assert_norms(model, 14, None)
    assert_weight_decay(model, 5e-4)
    dropout = [layer.rate for layer in model.layers if type(layer).__name__ == "Dropout"]
    assert dropout == [0.3, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.5, 0.5]
    out = model(np.zeros((2, size, size, 3), "float32"))
    assert tuple(out.shape) == (2, classes)
