import keras
import numpy as np
import pytest

import tfgap
from tfgap.models import ZeroPadShortcut, build_model

from tests.models.checks import (
    assert_norms, assert_weight_decay, conv, dense, norm, trainable_count,
)


def resnet44_count(classes, projection):
    total = conv(3, 3, 16) + norm(16)
    cin = 16
    for filters in (16, 32, 64):
        for _ in range(7):
            total += conv(3, cin, filters) + conv(3, filters, filters) + 2 * norm(filters)
            if cin != filters and projection:
                total += conv(1, cin, filters) + norm(filters)
            cin = filters
    return total + dense(64, classes, bias=True)


def test_resnet44_structure():
    model = build_model("resnet44", num_classes=10, input_shape=(32, 32, 3), ghost_batch_size=32,
                        weight_decay=1e-4, seed=0)
    expected = resnet44_count(10, projection=False)
    assert expected == 658_586  # He et al. 2016, Table 6: 0.66M
    assert trainable_count(model) == expected
    assert_norms(model, 43, 32)
    assert_weight_decay(model, 1e-4)
    assert model.output_shape == (None, 10)
    assert len([l for l in model.layers if isinstance(l, ZeroPadShortcut)]) == 2


def test_resnet44_projection_and_zero_init():
    model = build_model("resnet44", num_classes=100, input_shape=(8, 8, 3),
                        shortcut="projection", zero_init_residual=True, seed=0)
    assert trainable_count(model) == resnet44_count(100, projection=True)
    assert_norms(model, 45, None)
    gammas = {l.name: np.asarray(l.gamma) for l in model.layers
              if isinstance(l, tfgap.layers.GhostBatchNormalization)}
    assert all(np.all(g == 0) for n, g in gammas.items() if n.endswith("_norm2"))
    assert all(np.all(g == 1) for n, g in gammas.items() if not n.endswith("_norm2"))
    out = model(np.ones((4, 8, 8, 3), "float32"), training=True)
    assert tuple(out.shape) == (4, 100)


def test_resnet44_zero_init_blocks_start_as_identity():
    """With gamma = 0 closing each block, a stage-1 block maps its ReLU'd input to itself."""
    model = build_model("resnet44", num_classes=10, input_shape=(8, 8, 3),
                        zero_init_residual=True, seed=0)
    probe = keras.Model(model.input, [model.get_layer("stem_relu").output,
                                      model.get_layer("stage1_block7_out").output])
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    stem, stage1 = probe(x, training=False)
    np.testing.assert_allclose(np.asarray(stage1), np.asarray(stem), rtol=1e-6, atol=1e-6)


def _reference_shortcut(x, filters, strides):
    y = x[:, ::strides, ::strides, :]
    extra = filters - x.shape[-1]
    return np.pad(y, [(0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)])


@pytest.mark.parametrize("shape, filters, strides", [((2, 8, 8, 16), 32, 2), ((1, 5, 7, 3), 8, 2),
                                                     ((2, 4, 4, 4), 4, 1)])
def test_zero_pad_shortcut_matches_numpy(shape, filters, strides):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    layer = ZeroPadShortcut(filters, strides)
    y = np.asarray(layer(x))
    np.testing.assert_array_equal(y, _reference_shortcut(x, filters, strides))
    assert layer.compute_output_shape(shape) == y.shape


def test_zero_pad_shortcut_config_and_errors():
    layer = ZeroPadShortcut(64, 2, name="sc")
    clone = ZeroPadShortcut.from_config(layer.get_config())
    assert (clone.filters, clone.strides, clone.name) == (64, 2, "sc")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, ZeroPadShortcut) and restored.filters == 64
    with pytest.raises(ValueError, match="filters=0"):
        ZeroPadShortcut(0)
    with pytest.raises(ValueError, match="input_shape=\\(2, 4, 4, 8\\)"):
        ZeroPadShortcut(4)(np.zeros((2, 4, 4, 8), "float32"))
