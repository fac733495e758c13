"""The study's 1-D CNN (`tfgap.models` "cnn1d"): structure against closed-form counts."""

import keras
import numpy as np
import pytest

import tfgap
from tfgap.models import build_model, model_options


def _count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_default_structure_and_count():
    model = build_model("cnn1d", num_classes=10, input_shape=(40,), ghost_batch_size=32,
                        weight_decay=1e-4, seed=0)
    assert model_options("cnn1d") == {"cnn_filters": 32, "cnn_depth": 3, "cnn_kernel": 5}
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv1D)]
    assert [c.filters for c in convs] == [32, 64, 64]
    assert all(c.kernel_size == (5,) and not c.use_bias for c in convs)
    norms = [layer for layer in model.layers
             if isinstance(layer, tfgap.layers.GhostBatchNormalization)]
    assert [n.virtual_batch_size for n in norms] == [32, 32, 32]
    # 40 -> 20 -> 10 -> 5 samples after the pools; 64 channels; flatten 320 -> 10 logits.
    expected = 5 * 1 * 32 + 5 * 32 * 64 + 5 * 64 * 64 + 2 * (32 + 64 + 64) + 320 * 10 + 10
    assert _count(model) == expected == 34_410
    assert len(model.losses) == 4  # L2 on the three conv kernels and the logits kernel
    out = model(np.zeros((6, 40), "float32"), training=False)
    assert tuple(out.shape) == (6, 10) and out.dtype == "float32"


def test_options_and_rank2_inputs():
    model = build_model("cnn1d", num_classes=3, input_shape=(33, 2), cnn_filters=8,
                        cnn_depth=2, cnn_kernel=3)
    # 33 -> 17 -> 9 ("same" pooling rounds up); channels 8, 16.
    expected = 3 * 2 * 8 + 3 * 8 * 16 + 2 * (8 + 16) + 9 * 16 * 3 + 3
    assert _count(model) == expected
    assert model.output_shape == (None, 3)


def test_same_seed_same_weights_and_bad_options():
    a = build_model("cnn1d", num_classes=10, input_shape=(40,), seed=3)
    b = build_model("cnn1d", num_classes=10, input_shape=(40,), seed=3)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    with pytest.raises(ValueError, match="cnn_depth=0"):
        build_model("cnn1d", num_classes=10, input_shape=(40,), cnn_depth=0)
    with pytest.raises(ValueError, match=r"\(length,\) or \(length, channels\)"):
        build_model("cnn1d", num_classes=10, input_shape=(8, 8, 1))
