"""ghostify: BN -> GBN model surgery with weights carried over."""

import numpy as np
import pytest
import keras

from tfgap import GhostBatchNormalization
from tfgap.layers import ghostify


def _randomize_bn(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers() if hasattr(model, "_flatten_layers") else model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, c))
            layer.beta.assign(rng.normal(0, 0.1, c))
            layer.moving_mean.assign(rng.normal(0, 0.1, c))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, c))


def test_ghostify_keras_application_keeps_inference_output():
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35,
                                           classes=5)
    _randomize_bn(model)
    ghosted = ghostify(model, virtual_batch_size=2, moving_update="averaged")
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    gbns = [l for l in ghosted.layers if isinstance(l, GhostBatchNormalization)]
    assert len(bns) > 10 and len(gbns) == len(bns)
    assert all(l.virtual_batch_size == 2 and l.moving_update == "averaged" for l in gbns)
    assert all(l.momentum == b.momentum and l.epsilon == b.epsilon for l, b in zip(gbns, bns))
    assert not any(isinstance(l, GhostBatchNormalization) for l in model.layers)  # untouched
    x = np.random.default_rng(1).uniform(-1, 1, (3, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(ghosted(x, training=False), model(x, training=False),
                               rtol=1e-5, atol=1e-5)
    # And it trains with ghost batches: a batch of 3 is cut into 2 + 1.
    ghosted(x, training=True)


def test_ghostify_sequential_with_nested_model():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4),
                              keras.layers.BatchNormalization()])
    outer = keras.Sequential([keras.Input((4,)), inner, keras.layers.BatchNormalization(),
                              keras.layers.Dense(2)])
    outer(np.ones((2, 4), "float32"))
    _randomize_bn(inner, 1)
    ghosted = ghostify(outer, 8)
    assert isinstance(ghosted.layers[0].layers[-1], GhostBatchNormalization)
    assert isinstance(ghosted.layers[1], GhostBatchNormalization)
    x = np.random.default_rng(2).normal(size=(5, 4)).astype("float32")
    np.testing.assert_allclose(ghosted(x), outer(x), rtol=1e-5, atol=1e-6)


def test_ghostify_rejects_subclassed_models_and_bad_arguments():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.bn = keras.layers.BatchNormalization()

        def call(self, x):
            return self.bn(x)

    with pytest.raises(ValueError, match="subclassed"):
        ghostify(Subclassed(), 8)
    model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization()])
    with pytest.raises(ValueError, match="virtual_batch_size"):
        ghostify(model, 0)
    with pytest.raises(ValueError, match="moving_update"):
        ghostify(model, 8, moving_update="bogus")
    renorm = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(renorm=True)])
    with pytest.raises(ValueError, match="renorm"):
        ghostify(renorm, 8)
