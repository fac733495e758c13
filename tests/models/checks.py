"""Shared checks for the model tests: closed-form counts and structural probes."""

import keras
import numpy as np

import tfgap


def conv(k, cin, cout):
    """Weights of a bias-free k x k convolution."""
    return k * k * cin * cout


def dense(fan_in, units, bias=False):
    return fan_in * units + (units if bias else 0)


def norm(channels):
    """Trainable weights of a norm layer: gamma and beta."""
    return 2 * channels


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def norm_layers(model):
    return [layer for layer in model.layers if "normalization" in type(layer).__name__.lower()]


def assert_norms(model, count, virtual_batch_size):
    layers = norm_layers(model)
    assert len(layers) == count
    for layer in layers:
        assert type(layer) is tfgap.layers.GhostBatchNormalization, type(layer)
        assert layer.virtual_batch_size == virtual_batch_size


def kernels(model):
    """Kernels of every Dense and Conv2D layer, found independently of the factory."""
    out = []
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
            out.append(np.asarray(layer.kernel, dtype=np.float64))
    return out


def assert_weight_decay(model, weight_decay):
    """model.losses == [wd / 2 * ||W||^2 for every kernel W], nothing else."""
    expected = sorted(weight_decay / 2.0 * float(np.sum(w**2)) for w in kernels(model))
    got = sorted(float(loss) for loss in model.losses)
    assert len(got) == len(expected)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
